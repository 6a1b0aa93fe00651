//! Where a datagram socket is: an IP socket address, or a Unix domain socket's name.
//!
//! On the wire an endpoint is one string. An IP one is written as before
//! (`"127.0.0.1:5000"`, `"[::1]:5000"`), so clients that know only IP read it
//! unchanged; a Unix one starts with `unix:`:
//! - `"unix:/run/…/echo"`: a path (the kernel's name for a socket bound to a file);
//! - `"unix:@echo"`: a name in Linux's abstract namespace (no file);
//! - `"unix:"`: a socket that never bound a name (an unbound client). Nothing can be
//!   sent to it: it has no address to send to.
//!
//! In commands, `"unix:echo"` (a name without a `/`) means the socket of that name in
//! the session's own directory, which the server creates and removes.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a Unix endpoint's text starts with.
pub const UNIX_PREFIX: &str = "unix:";

/// An IP socket address or a Unix domain name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// An IPv4 or IPv6 socket address.
    Ip(SocketAddr),
    /// A Unix domain socket's name: the text after `unix:` (a path, `@` and an
    /// abstract name, or empty for an unnamed socket).
    Unix(Arc<str>),
}

impl Endpoint {
    /// A Unix endpoint of `name` (the text after `unix:`).
    pub fn unix(name: &str) -> Self {
        Endpoint::Unix(name.into())
    }

    /// The IP address, if it is one.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Endpoint::Ip(addr) => Some(*addr),
            Endpoint::Unix(_) => None,
        }
    }

    /// The Unix name (the text after `unix:`), if it is one.
    pub fn unix_name(&self) -> Option<&str> {
        match self {
            Endpoint::Ip(_) => None,
            Endpoint::Unix(name) => Some(name),
        }
    }

    /// A Unix socket that never bound a name: it can send, but nothing can answer it.
    pub fn is_unnamed(&self) -> bool {
        self.unix_name().is_some_and(str::is_empty)
    }

    /// An IPv6 address.
    pub fn is_ipv6(&self) -> bool {
        self.socket_addr().is_some_and(|a| a.is_ipv6())
    }

    /// A Unix endpoint.
    pub fn is_unix(&self) -> bool {
        matches!(self, Endpoint::Unix(_))
    }

    /// The family's name for a person: "IPv4", "IPv6" or "Unix".
    pub fn family(&self) -> &'static str {
        match self {
            Endpoint::Ip(SocketAddr::V4(_)) => "IPv4",
            Endpoint::Ip(SocketAddr::V6(_)) => "IPv6",
            Endpoint::Unix(_) => "Unix",
        }
    }

    /// Whether two endpoints are of the same family (one socket can send from one to
    /// the other).
    pub fn same_family(&self, other: &Endpoint) -> bool {
        self.family() == other.family()
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Endpoint::Ip(addr)
    }
}

impl PartialEq<SocketAddr> for Endpoint {
    fn eq(&self, other: &SocketAddr) -> bool {
        self.socket_addr() == Some(*other)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Ip(addr) => addr.fmt(f),
            Endpoint::Unix(name) => write!(f, "{UNIX_PREFIX}{name}"),
        }
    }
}

/// Text that is neither an IP socket address nor `unix:…`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address: give ip:port, [ipv6]:port or unix:name")]
pub struct EndpointParseError(pub String);

impl std::str::FromStr for Endpoint {
    type Err = EndpointParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(name) = text.strip_prefix(UNIX_PREFIX) {
            return Ok(Endpoint::unix(name));
        }
        text.parse::<SocketAddr>()
            .map(Endpoint::Ip)
            .map_err(|_| EndpointParseError(text.to_owned()))
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_endpoints_read_and_write_as_socket_addresses() {
        for text in ["127.0.0.1:5000", "[::1]:9"] {
            let e: Endpoint = text.parse().unwrap();
            assert_eq!(e, Endpoint::Ip(text.parse().unwrap()));
            assert_eq!(e.to_string(), text);
            assert_eq!(serde_json::to_string(&e).unwrap(), format!("\"{text}\""));
            assert_eq!(
                serde_json::from_str::<Endpoint>(&format!("\"{text}\"")).unwrap(),
                e
            );
        }
    }

    #[test]
    fn unix_endpoints_keep_their_name() {
        for (text, name, unnamed) in [
            ("unix:/tmp/x/echo", "/tmp/x/echo", false),
            ("unix:@echo", "@echo", false),
            ("unix:", "", true),
        ] {
            let e: Endpoint = text.parse().unwrap();
            assert_eq!(e.unix_name(), Some(name));
            assert_eq!(e.is_unnamed(), unnamed);
            assert_eq!(e.family(), "Unix");
            assert_eq!(e.to_string(), text);
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<Endpoint>(&json).unwrap(), e);
        }
    }

    #[test]
    fn other_text_is_refused_in_words() {
        let err = "localhost".parse::<Endpoint>().unwrap_err();
        assert!(err.to_string().contains("unix:name"), "{err}");
        assert!(serde_json::from_str::<Endpoint>("\"nope\"").is_err());
        assert!(!Endpoint::unix("@a").same_family(&"127.0.0.1:1".parse().unwrap()));
    }
}
