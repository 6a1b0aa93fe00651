//! Whether any program on this machine has a UDP socket bound where a datagram went,
//! read from the kernel's socket tables (/proc/net/udp and udp6). A datagram sent to a
//! loopback port nobody is bound to is discarded by the kernel on arrival, and UDP does
//! not tell an unconnected sender; the analysis says so instead of "not received within
//! the loss timeout".

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// How long a reading of the tables answers every question: at most one read a
/// second, however many datagrams time out (a tick may conclude 20,000).
const FRESH: Duration = Duration::from_secs(1);

/// The local addresses of the UDP sockets in a kernel table's text.
fn bound_in(text: &str, v6: bool) -> Vec<SocketAddr> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let local = line.split_whitespace().nth(1)?;
            let (ip, port) = local.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            // The kernel prints each 32-bit word of the address as a host-order number.
            let words: Option<Vec<[u8; 4]>> = (0..ip.len() / 8)
                .map(|i| {
                    u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16)
                        .ok()
                        .map(u32::to_ne_bytes)
                })
                .collect();
            let bytes: Vec<u8> = words?.concat();
            let ip = match (v6, bytes.len()) {
                (false, 4) => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
                (true, 16) => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
                _ => return None,
            };
            Some(SocketAddr::new(ip, port))
        })
        .collect()
}

/// Whether a socket bound at `bound` receives what is sent to `to`: the same port, and
/// the same address or the unspecified one (an IPv6 one also takes IPv4 unless it was
/// made IPv6-only, which the table does not say; it is counted as receiving).
fn receives(bound: SocketAddr, to: SocketAddr) -> bool {
    if bound.port() != to.port() {
        return false;
    }
    match (bound.ip(), to.ip()) {
        (b, t) if b == t => true,
        (IpAddr::V4(b), IpAddr::V4(_)) => b.is_unspecified(),
        (IpAddr::V6(b), IpAddr::V6(_)) => b.is_unspecified(),
        (IpAddr::V6(b), IpAddr::V4(t)) => b.is_unspecified() || b.to_ipv4_mapped() == Some(t),
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

/// Answers "is anybody bound there?" for loopback destinations, from a reading of the
/// kernel's tables at most a second old.
#[derive(Debug, Default)]
pub struct Listeners {
    /// When the tables were read, and the addresses bound, by port.
    reading: Option<(Instant, HashMap<u16, Vec<SocketAddr>>)>,
}

impl Listeners {
    /// `Some(false)` when `to` is a loopback address no UDP socket on this machine is
    /// bound to; `Some(true)` when one is; `None` when it cannot be told (not loopback:
    /// another machine's sockets are not in these tables; or the tables are unreadable).
    pub fn anybody_bound(&mut self, to: SocketAddr) -> Option<bool> {
        if !to.ip().to_canonical().is_loopback() {
            return None;
        }
        let stale = self
            .reading
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= FRESH);
        if stale {
            self.reading = read_tables().map(|t| (Instant::now(), t));
        }
        let (_, by_port) = self.reading.as_ref()?;
        Some(
            by_port
                .get(&to.port())
                .is_some_and(|bound| bound.iter().any(|&b| receives(b, to))),
        )
    }
}

/// The UDP sockets bound on this machine, by port; `None` when neither table reads.
fn read_tables() -> Option<HashMap<u16, Vec<SocketAddr>>> {
    let mut by_port: HashMap<u16, Vec<SocketAddr>> = HashMap::new();
    let mut read = false;
    for (path, v6) in [("/proc/net/udp", false), ("/proc/net/udp6", true)] {
        if let Ok(text) = std::fs::read_to_string(path) {
            read = true;
            for bound in bound_in(&text, v6) {
                by_port.entry(bound.port()).or_default().push(bound);
            }
        }
    }
    read.then_some(by_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_tables_are_read_as_addresses() {
        let udp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  10: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 2345 2 0000000000000000 0
  11: 00000000:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2346 2 0000000000000000 0
";
        if cfg!(target_endian = "little") {
            assert_eq!(
                bound_in(udp, false),
                [
                    "127.0.0.1:53".parse::<SocketAddr>().unwrap(),
                    "0.0.0.0:8080".parse().unwrap()
                ]
            );
        }
        let udp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
   3: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2347 2 0000000000000000 0
";
        if cfg!(target_endian = "little") {
            assert_eq!(
                bound_in(udp6, true),
                ["[::1]:8081".parse::<SocketAddr>().unwrap()]
            );
        }
    }

    #[test]
    fn who_receives_what() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(receives(a("127.0.0.1:9"), a("127.0.0.1:9")));
        assert!(receives(a("0.0.0.0:9"), a("127.0.0.1:9")));
        assert!(receives(a("[::]:9"), a("127.0.0.1:9")));
        assert!(receives(a("[::ffff:127.0.0.1]:9"), a("127.0.0.1:9")));
        assert!(!receives(a("127.0.0.2:9"), a("127.0.0.1:9")));
        assert!(!receives(a("127.0.0.1:10"), a("127.0.0.1:9")));
        assert!(!receives(a("0.0.0.0:9"), a("[::1]:9")));
    }

    #[test]
    fn a_real_socket_is_found_and_a_closed_one_is_not() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let mut listeners = Listeners::default();
        assert_eq!(listeners.anybody_bound(addr), Some(true));
        drop(socket);
        let mut fresh = Listeners::default();
        assert_eq!(fresh.anybody_bound(addr), Some(false));
        assert_eq!(
            fresh.anybody_bound("10.1.2.3:9".parse().unwrap()),
            None,
            "another machine's sockets are not in this one's tables"
        );
    }
}
