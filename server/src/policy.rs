//! Which addresses sockets may bind to and send to.
//!
//! socklab opens real sockets at a web page's request, so by default it keeps them on
//! loopback: nothing a lab does can reach another machine.

use std::net::{IpAddr, SocketAddr};

use crate::error::CommandError;
use socklab_protocol::ErrorCode;

/// The addresses the default policy allows, as a person would write them.
pub const LOOPBACK_RANGES: &str = "127.0.0.0/8 and ::1";

/// A network: an address and a prefix length, as in `10.0.0.0/8` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    /// Parses `10.0.0.0/8`, `fd00::/8`, or a single address (a /32 or /128). An
    /// IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is the IPv4 network it maps
    /// (`10.0.0.0/8`); its prefix must cover the 96 bits of the mapping.
    fn from_str(text: &str) -> Result<Self, String> {
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (text, None),
        };
        let net: IpAddr = ip.trim().parse().map_err(|_| {
            format!("{text:?} is not a network: write it as 10.0.0.0/8 or fd00::/8")
        })?;
        let max: u8 = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has a prefix length beyond {max}"))?,
            None => max,
        };
        let mapped = match net {
            IpAddr::V6(v6) => v6.to_ipv4_mapped(),
            IpAddr::V4(_) => None,
        };
        let Some(v4) = mapped else {
            return Ok(Cidr { net, prefix });
        };
        let prefix = prefix.checked_sub(96).ok_or_else(|| {
            format!(
                "{text:?} is an IPv4-mapped network whose prefix does not cover the mapping (at least /96); write the IPv4 network instead, such as {v4}/32"
            )
        })?;
        Ok(Cidr {
            net: IpAddr::V4(v4),
            prefix,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            // A prefix of 0 shifts by the whole width: no bits (every address), which
            // `checked_shl` reports as None. A prefix is never wider than its family
            // (the parser sees to it); if it were, nothing would match.
            (IpAddr::V4(net), IpAddr::V4(ip)) => match 32u32.checked_sub(u32::from(self.prefix)) {
                Some(host_bits) => {
                    let mask = u32::MAX.checked_shl(host_bits).unwrap_or(0);
                    u32::from(net) & mask == u32::from(ip) & mask
                }
                None => false,
            },
            (IpAddr::V6(net), IpAddr::V6(ip)) => match 128u32.checked_sub(u32::from(self.prefix)) {
                Some(host_bits) => {
                    let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
                    u128::from(net) & mask == u128::from(ip) & mask
                }
                None => false,
            },
            _ => false,
        }
    }
}

/// What a socket was opened for, beyond plain unicast.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketScope {
    /// It may send to broadcast addresses.
    pub broadcast: bool,
    /// It may send to multicast groups.
    pub multicast: bool,
}

/// Decides whether a socket may bind to or send to an address: loopback always, and
/// the networks the person who started socklab allowed with `--allow-net`.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allowed: Vec<Cidr>,
    /// Ports below 1024 may be bound (`--allow-privileged-ports`).
    privileged_ports: bool,
    /// Destination ports refused whatever the address (`--deny-port`).
    denied_ports: Vec<u16>,
}

/// The first port that is not privileged.
pub const FIRST_UNPRIVILEGED_PORT: u16 = 1024;

impl AddressPolicy {
    /// The default policy: loopback only.
    pub fn loopback_only() -> Self {
        AddressPolicy::default()
    }

    /// Loopback and these networks.
    pub fn new(allowed: Vec<Cidr>) -> Self {
        AddressPolicy {
            allowed,
            ..AddressPolicy::default()
        }
    }

    /// Lets sockets bind ports below 1024 (the OS still decides whether the server may).
    pub fn allow_privileged_ports(mut self, allow: bool) -> Self {
        self.privileged_ports = allow;
        self
    }

    /// Refuses sending to these ports, on any address.
    pub fn deny_ports(mut self, ports: Vec<u16>) -> Self {
        self.denied_ports = ports;
        self
    }

    fn allows(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|n| n.contains(ip))
    }

    fn allowed_text(&self) -> String {
        if self.allowed.is_empty() {
            format!("loopback addresses ({LOOPBACK_RANGES})")
        } else {
            let nets: Vec<String> = self.allowed.iter().map(Cidr::to_string).collect();
            format!("loopback ({LOOPBACK_RANGES}) and {}", nets.join(", "))
        }
    }

    /// May a socket bind to `addr`?
    pub fn check_bind(&self, addr: SocketAddr) -> Result<(), CommandError> {
        if (1..FIRST_UNPRIVILEGED_PORT).contains(&addr.port()) && !self.privileged_ports {
            return Err(CommandError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "port {} is privileged (below 1024); socklab binds ports from 1024 up, or 0 for any free one (start it with --allow-privileged-ports to allow this)",
                    addr.port()
                ),
            ));
        }
        let ip = canonical(addr.ip());
        if ip.is_loopback() || self.allows(ip) {
            return Ok(());
        }
        let whole = if ip.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
        let message = if ip.is_unspecified() {
            format!(
                "binding to {ip} would listen on every network interface; socklab binds only to {} (start it with --allow-net {whole} to allow this)",
                self.allowed_text()
            )
        } else {
            format!(
                "binding to {ip} is not allowed; socklab binds only to {} (start it with --allow-net {ip}/{} to allow this address)",
                self.allowed_text(),
                if ip.is_ipv4() { 32 } else { 128 }
            )
        };
        Err(CommandError::new(ErrorCode::Forbidden, message))
    }

    /// May a socket join the multicast group `group`? It must be one, and inside the
    /// networks the server was started with (no group is loopback).
    pub fn check_group(&self, group: IpAddr) -> Result<(), CommandError> {
        let ip = canonical(group);
        if !ip.is_multicast() {
            return Err(CommandError::bad_address(format!(
                "{ip} is not a multicast group: IPv4 groups are 224.0.0.0 to 239.255.255.255, IPv6 ones start with ff"
            )));
        }
        if !self.allows(ip) {
            let inside = if self.allowed.is_empty() {
                "the networks it was started with (--allow-net; there are none, and no group is a loopback address)".to_string()
            } else {
                let nets: Vec<String> = self.allowed.iter().map(Cidr::to_string).collect();
                nets.join(", ")
            };
            return Err(CommandError::new(
                ErrorCode::Forbidden,
                format!(
                    "joining {ip} is not allowed; socklab joins only groups inside {inside} (start it with --allow-net {ip}/{} to allow this group)",
                    if ip.is_ipv4() { 32 } else { 128 }
                ),
            ));
        }
        Ok(())
    }

    /// May a socket opened for `scope` send to `to`?
    pub fn check_destination(
        &self,
        to: SocketAddr,
        scope: SocketScope,
    ) -> Result<(), CommandError> {
        if to.port() == 0 {
            return Err(CommandError::bad_address(format!(
                "{to} has port 0, which no socket can receive on; give the destination's real port"
            )));
        }
        if self.denied_ports.contains(&to.port()) {
            return Err(CommandError::new(
                ErrorCode::Forbidden,
                format!(
                    "sending to port {} is not allowed on this server (--deny-port {})",
                    to.port(),
                    to.port()
                ),
            ));
        }
        let ip = canonical(to.ip());
        let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
        let multicast = ip.is_multicast();
        if !(ip.is_loopback() || self.allows(ip)) {
            let kind = if broadcast {
                "the broadcast address "
            } else if multicast {
                "the multicast group "
            } else {
                ""
            };
            return Err(CommandError::new(
                ErrorCode::Forbidden,
                format!(
                    "sending to {kind}{ip} is not allowed; socklab sends only to {} (start it with --allow-net {ip}/{} to allow this)",
                    self.allowed_text(),
                    if ip.is_ipv4() { 32 } else { 128 }
                ),
            ));
        }
        if broadcast && !scope.broadcast {
            return Err(CommandError::new(
                ErrorCode::Forbidden,
                format!(
                    "{ip} is a broadcast address: bind the socket with broadcast enabled to send to it"
                ),
            ));
        }
        if multicast && !scope.multicast {
            return Err(CommandError::new(
                ErrorCode::Forbidden,
                format!(
                    "{ip} is a multicast group: bind the socket with multicast enabled to send to it"
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
    fn ipv4_mapped_networks_are_the_ipv4_networks_they_map() {
        // (network as given, its canonical form, inside, outside)
        let cases = [
            ("::ffff:10.99.0.1", "10.99.0.1/32", "10.99.0.1", "10.99.0.2"),
            (
                "::ffff:10.99.0.0/120",
                "10.99.0.0/24",
                "10.99.0.200",
                "10.99.1.1",
            ),
            ("::ffff:0.0.0.0/96", "0.0.0.0/0", "192.0.2.1", "::2"),
            ("10.0.0.0/8", "10.0.0.0/8", "::ffff:10.1.2.3", "11.0.0.1"),
            ("0.0.0.0/0", "0.0.0.0/0", "203.0.113.9", "fd00::1"),
            ("fd00::/8", "fd00::/8", "fd12::1", "fe80::1"),
        ];
        for (text, canonical, inside, outside) in cases {
            let net: Cidr = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(net.to_string(), canonical, "{text}");
            assert!(
                net.contains(inside.parse().unwrap()),
                "{text} holds {inside}"
            );
            assert!(
                !net.contains(outside.parse().unwrap()),
                "{text} does not hold {outside}"
            );
        }
        let err = "::ffff:10.0.0.0/64".parse::<Cidr>().unwrap_err();
        assert!(err.contains("at least /96"), "{err}");
        for bad in ["10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_only_policy() {
        let policy = AddressPolicy::loopback_only();
        let cases = [
            ("127.0.0.1:5000", Ok(()), Ok(())),
            // Privileged ports: not bound (without the flag), but sent to.
            ("127.0.0.1:5", Err(ErrorCode::PermissionDenied), Ok(())),
            ("127.9.9.9:5000", Ok(()), Ok(())),
            ("[::1]:5000", Ok(()), Ok(())),
            ("[::ffff:127.0.0.1]:5000", Ok(()), Ok(())),
            (
                "0.0.0.0:5000",
                Err(ErrorCode::Forbidden),
                Err(ErrorCode::Forbidden),
            ),
            (
                "[::]:5000",
                Err(ErrorCode::Forbidden),
                Err(ErrorCode::Forbidden),
            ),
            (
                "10.0.0.1:5000",
                Err(ErrorCode::Forbidden),
                Err(ErrorCode::Forbidden),
            ),
            (
                "192.0.2.1:5000",
                Err(ErrorCode::Forbidden),
                Err(ErrorCode::Forbidden),
            ),
            (
                "255.255.255.255:5000",
                Err(ErrorCode::Forbidden),
                Err(ErrorCode::Forbidden),
            ),
            (
                "[2001:db8::1]:5000",
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
                policy
                    .check_destination(addr, SocketScope::default())
                    .map_err(|e| e.code),
                send,
                "send {text}"
            );
        }
        let port_zero =
            policy.check_destination("127.0.0.1:0".parse().unwrap(), SocketScope::default());
        assert_eq!(port_zero.map_err(|e| e.code), Err(ErrorCode::BadAddress));
    }

    #[test]
    fn allow_net_widens_the_policy() {
        let nets: Vec<Cidr> = [
            "10.99.0.0/24",
            "255.255.255.255",
            "239.1.2.0/24",
            "fd00::/8",
        ]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
        let policy = AddressPolicy::new(nets);
        let plain = SocketScope::default();
        let both = SocketScope {
            broadcast: true,
            multicast: true,
        };
        let cases = [
            ("10.99.0.7:9", plain, Ok(())),
            ("10.99.1.7:9", plain, Err(ErrorCode::Forbidden)),
            ("[fd12::1]:9", plain, Ok(())),
            ("[fe80::1]:9", plain, Err(ErrorCode::Forbidden)),
            ("255.255.255.255:9", plain, Err(ErrorCode::Forbidden)),
            ("255.255.255.255:9", both, Ok(())),
            ("239.1.2.3:9", plain, Err(ErrorCode::Forbidden)),
            ("239.1.2.3:9", both, Ok(())),
            ("239.9.9.9:9", both, Err(ErrorCode::Forbidden)),
            ("127.0.0.1:9", plain, Ok(())),
        ];
        for (to, scope, want) in cases {
            let got = policy
                .check_destination(to.parse().unwrap(), scope)
                .map_err(|e| e.code);
            assert_eq!(got, want, "{to} {scope:?}");
        }
        assert!(policy.check_bind("10.99.0.1:0".parse().unwrap()).is_ok());
        let err = policy.check_bind("0.0.0.0:0".parse().unwrap()).unwrap_err();
        assert!(
            err.message.contains("--allow-net 0.0.0.0/0"),
            "{}",
            err.message
        );
        let err = policy
            .check_destination("10.1.1.1:9".parse().unwrap(), plain)
            .unwrap_err();
        assert!(
            err.message.contains("10.99.0.0/24") && err.message.contains("--allow-net 10.1.1.1/32"),
            "{}",
            err.message
        );
        assert!("10.0.0.0/33".parse::<Cidr>().is_err() && "nonsense".parse::<Cidr>().is_err());
        assert!(
            "0.0.0.0/0"
                .parse::<Cidr>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }
}
