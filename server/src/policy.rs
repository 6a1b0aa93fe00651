//! Which addresses sockets may bind to and send to.
//!
//! socklab opens real sockets at a web page's request, so by default it keeps them on
//! loopback: nothing a lab does can reach another machine.

use std::net::{IpAddr, SocketAddr};

use crate::error::CommandError;
use socklab_protocol::ErrorCode;

/// The addresses the default policy allows, as a person would write them.
pub const LOOPBACK_RANGES: &str = "127.0.0.0/8 and ::1";

/// Decides whether a socket may bind to or send to an address.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {}

impl AddressPolicy {
    /// The default policy: loopback only.
    pub fn loopback_only() -> Self {
        AddressPolicy {}
    }

    /// May a socket bind to `addr`?
    pub fn check_bind(&self, addr: SocketAddr) -> Result<(), CommandError> {
        let ip = canonical(addr.ip());
        if ip.is_unspecified() {
            return Err(CommandError::new(
                ErrorCode::Forbidden,
                format!(
                    "binding to {ip} would listen on every network interface; socklab binds only to loopback addresses ({LOOPBACK_RANGES})"
                ),
            ));
        }
        if !ip.is_loopback() {
            return Err(CommandError::new(
                ErrorCode::Forbidden,
                format!(
                    "binding to {ip} is not allowed; socklab binds only to loopback addresses ({LOOPBACK_RANGES})"
                ),
            ));
        }
        Ok(())
    }

    /// May a socket send to `to`?
    pub fn check_destination(&self, to: SocketAddr) -> Result<(), CommandError> {
        if to.port() == 0 {
            return Err(CommandError::bad_address(format!(
                "{to} has port 0, which no socket can receive on; give the destination's real port"
            )));
        }
        let ip = canonical(to.ip());
        if !ip.is_loopback() {
            return Err(CommandError::new(
                ErrorCode::Forbidden,
                format!(
                    "sending to {ip} is not allowed; socklab sends only to loopback addresses ({LOOPBACK_RANGES})"
                ),
            ));
        }
        Ok(())
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is judged as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Parses an address as a person types it: `127.0.0.1:9000`, `[::1]:9000` or
/// `localhost:9000`. Host names other than `localhost` are refused: resolving them could
/// leave the machine.
pub fn parse_addr(text: &str) -> Result<SocketAddr, CommandError> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some((host, port)) = text.rsplit_once(':') {
        if host.eq_ignore_ascii_case("localhost") {
            let port = parse_port(port, text)?;
            return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
        }
        if text.parse::<IpAddr>().is_ok() {
            return Err(CommandError::bad_address(format!(
                "{text:?} has no port; IPv6 addresses need brackets, as in [::1]:9000"
            )));
        }
        if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
            parse_port(port, text)?;
        }
    } else if text.parse::<IpAddr>().is_ok() {
        return Err(CommandError::bad_address(format!(
            "{text:?} has no port; write host:port, as in 127.0.0.1:9000"
        )));
    }
    if text.is_empty() {
        return Err(CommandError::bad_address(
            "the address is empty; write host:port, as in 127.0.0.1:9000",
        ));
    }
    Err(CommandError::bad_address(format!(
        "{text:?} is not an address; write an IP address and port such as 127.0.0.1:9000 or [::1]:9000 (the only host name accepted is localhost)"
    )))
}

fn parse_port(port: &str, whole: &str) -> Result<u16, CommandError> {
    port.parse::<u16>().map_err(|_| {
        CommandError::bad_address(format!(
            "{whole:?} has port {port:?}; a port is a number from 0 to 65535"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_people_type() {
        let ok = [
            ("127.0.0.1:9000", "127.0.0.1:9000"),
            (" 127.0.0.1:0 ", "127.0.0.1:0"),
            ("[::1]:53", "[::1]:53"),
            ("localhost:7", "127.0.0.1:7"),
            ("LOCALHOST:7", "127.0.0.1:7"),
        ];
        for (text, want) in ok {
            assert_eq!(parse_addr(text).unwrap().to_string(), want, "{text}");
        }
        let bad = [
            ("", "the address is empty"),
            ("127.0.0.1", "has no port; write host:port"),
            ("::1", "has no port; IPv6 addresses need brackets"),
            ("127.0.0.1:70000", "a port is a number from 0 to 65535"),
            ("localhost:x", "a port is a number from 0 to 65535"),
            ("example.com:80", "is not an address"),
            ("hello", "is not an address"),
        ];
        for (text, want) in bad {
            let err = parse_addr(text).expect_err(text);
            assert_eq!(err.code, ErrorCode::BadAddress, "{text}");
            assert!(err.message.contains(want), "{text}: {}", err.message);
        }
    }

    #[test]
    fn loopback_only_policy() {
        let policy = AddressPolicy::loopback_only();
        let cases = [
            ("127.0.0.1:5", Ok(()), Ok(())),
            ("127.9.9.9:5", Ok(()), Ok(())),
            ("[::1]:5", Ok(()), Ok(())),
            ("[::ffff:127.0.0.1]:5", Ok(()), Ok(())),
            (
                "0.0.0.0:5",
                Err(ErrorCode::Forbidden),
                Err(ErrorCode::Forbidden),
            ),
            (
                "[::]:5",
                Err(ErrorCode::Forbidden),
                Err(ErrorCode::Forbidden),
            ),
            (
                "10.0.0.1:5",
                Err(ErrorCode::Forbidden),
                Err(ErrorCode::Forbidden),
            ),
            (
                "192.0.2.1:5",
                Err(ErrorCode::Forbidden),
                Err(ErrorCode::Forbidden),
            ),
            (
                "255.255.255.255:5",
                Err(ErrorCode::Forbidden),
                Err(ErrorCode::Forbidden),
            ),
            (
                "[2001:db8::1]:5",
                Err(ErrorCode::Forbidden),
                Err(ErrorCode::Forbidden),
            ),
        ];
        for (text, bind, send) in cases {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(
                policy.check_bind(addr).map_err(|e| e.code),
                bind,
                "bind {text}"
            );
            assert_eq!(
                policy.check_destination(addr).map_err(|e| e.code),
                send,
                "send {text}"
            );
        }
        let port_zero = policy.check_destination("127.0.0.1:0".parse().unwrap());
        assert_eq!(port_zero.map_err(|e| e.code), Err(ErrorCode::BadAddress));
    }
}
