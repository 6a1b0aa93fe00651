//! Numbers the server enforces and the web app checks early, so both say the same thing.

/// The largest UDP payload over IPv4: 65,535 minus the 20-byte IP header and the 8-byte
/// UDP header.
pub const MAX_UDP_PAYLOAD_V4: usize = 65_507;

/// The largest UDP payload over IPv6 without jumbograms: 65,535 minus the 8-byte UDP
/// header (the IPv6 header is not counted in the payload length field).
pub const MAX_UDP_PAYLOAD_V6: usize = 65_527;

/// The largest payload a UDP datagram may carry to an address of the given family.
pub fn max_udp_payload(ipv6: bool) -> usize {
    if ipv6 {
        MAX_UDP_PAYLOAD_V6
    } else {
        MAX_UDP_PAYLOAD_V4
    }
}

/// The largest payload the lab sends in a Unix datagram (one fits a receive of
/// [`MAX_RECV_SIZE`] bytes; the kernel itself allows up to the sender's send buffer,
/// about 208 KiB by default).
pub const MAX_UNIX_PAYLOAD: usize = 65_536;

/// The largest receive buffer a `bind` may ask for, bytes (the kernel caps what it
/// grants at `net.core.rmem_max` anyway; beyond this the socket option would overflow).
pub const MAX_RECV_BUFFER_BYTES: u64 = 1 << 30;

/// The largest read size a socket may have (`bind`'s `recv_size`): a UDP length
/// field's maximum plus one; any datagram fits whole in a buffer this large.
pub const MAX_RECV_SIZE: u32 = 65_536;

/// The most departures one `link_sent` event lists; a pass of a link's timer that sends
/// more logs several events.
pub const MAX_LINK_SENT_PER_EVENT: usize = 256;

/// Whether `to` is a broadcast address as far as the address alone tells (the netmask is
/// not known): the limited broadcast 255.255.255.255, or an IPv4 address ending in 255
/// (a /24 or wider network's, such as 127.255.255.255 or 192.168.1.255). The server
/// words a refused broadcast by it, the page names broadcast flows by it.
pub fn looks_like_broadcast(to: std::net::SocketAddr) -> bool {
    match to.ip() {
        std::net::IpAddr::V4(ip) => ip.is_broadcast() || ip.octets()[3] == 255,
        std::net::IpAddr::V6(_) => false,
    }
}

/// The most events one `window` answers with.
pub const MAX_WINDOW_EVENTS: u32 = 10_000;

/// The most buckets one `aggregate` answer holds (as asked; the answer may have one
/// more where the range does not start on a bucket's edge).
pub const MAX_AGGREGATE_BUCKETS: u32 = 4096;

/// The least `keep_up` allows: a viewer is always sent this many events in a row.
pub const MIN_KEEP_UP: u64 = 1000;

/// The least rate `keep_up` takes, events a second.
pub const MIN_KEEP_UP_RATE: u64 = 1000;

#[cfg(test)]
mod tests {
    use super::looks_like_broadcast;

    #[test]
    fn broadcast_addresses_by_their_look() {
        for (addr, broadcast) in [
            ("255.255.255.255:9", true),
            ("127.255.255.255:9", true),
            ("192.168.1.255:9", true),
            ("127.0.0.1:9", false),
            ("[::1]:9", false),
        ] {
            assert_eq!(
                looks_like_broadcast(addr.parse().unwrap()),
                broadcast,
                "{addr}"
            );
        }
    }
}
