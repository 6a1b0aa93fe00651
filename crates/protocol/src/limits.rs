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

/// The largest receive buffer a `bind` may ask for, bytes (the kernel caps what it
/// grants at `net.core.rmem_max` anyway; beyond this the socket option would overflow).
pub const MAX_RECV_BUFFER_BYTES: u64 = 1 << 30;
