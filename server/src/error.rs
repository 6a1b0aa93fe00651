//! Refusals a client sees. Each becomes a protocol `error` event with a stable code and a
//! message written for the person who asked.

use std::io;
use std::net::SocketAddr;

use socklab_protocol::ErrorCode;

/// A command the server will not or could not carry out.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("{code}: {message}")]
pub struct CommandError {
    /// The stable code clients switch on.
    pub code: ErrorCode,
    /// Plain words for the person.
    pub message: String,
}

impl CommandError {
    /// A refusal with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CommandError {
            code,
            message: message.into(),
        }
    }

    /// The client's request was malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// The client named an address that cannot be used.
    pub fn bad_address(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadAddress, message)
    }

    /// The OS refused to bind `addr`.
    pub fn from_bind(err: &io::Error, addr: SocketAddr) -> Self {
        match err.kind() {
            io::ErrorKind::AddrInUse => Self::new(
                ErrorCode::AddressInUse,
                format!(
                    "{addr} is already in use by another socket; pick another port, or port 0 for any free one"
                ),
            ),
            io::ErrorKind::PermissionDenied if addr.port() != 0 && addr.port() < 1024 => Self::new(
                ErrorCode::PermissionDenied,
                format!(
                    "permission denied binding {addr}: ports below 1024 are privileged and need root (CAP_NET_BIND_SERVICE); use a port from 1024 up, or 0 for any free one"
                ),
            ),
            io::ErrorKind::PermissionDenied => Self::new(
                ErrorCode::PermissionDenied,
                format!("permission denied binding {addr}: {err}"),
            ),
            io::ErrorKind::AddrNotAvailable => Self::bad_address(format!(
                "{} is not an address of this machine, so nothing can be bound to it",
                addr.ip()
            )),
            _ => Self::new(ErrorCode::IoError, format!("cannot bind {addr}: {err}")),
        }
    }

    /// The OS refused to send to `to`.
    pub fn from_send(err: &io::Error, to: SocketAddr) -> Self {
        match err.kind() {
            // The kernel refuses a broadcast from a socket without SO_BROADCAST.
            io::ErrorKind::PermissionDenied
                if socklab_protocol::limits::looks_like_broadcast(to) =>
            {
                Self::new(
                    ErrorCode::PermissionDenied,
                    format!(
                        "{to} is a broadcast address, and this socket may not broadcast: bind a socket with \"broadcast\" ticked (it sets SO_BROADCAST) and send from that one"
                    ),
                )
            }
            io::ErrorKind::PermissionDenied => Self::new(
                ErrorCode::PermissionDenied,
                format!(
                    "the OS refused to send to {to} (permission denied): a firewall rule on this machine may forbid it"
                ),
            ),
            _ => Self::new(ErrorCode::IoError, format!("cannot send to {to}: {err}")),
        }
    }
}
