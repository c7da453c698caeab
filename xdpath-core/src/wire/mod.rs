//! Wire formats: header layouts with named fields, read in one bounds-checked
//! copy through [`crate::Packet::load`], then read through infallible
//! accessors. Every multi-byte field is stored as it is on the wire
//! (network byte order, big-endian); accessors return host order.
//!
//! Each header has golden byte vectors in its tests.

/// The port accessors of a transport header that starts with its source
/// and destination ports, two big-endian bytes each (TCP, RFC 9293; UDP,
/// RFC 768): written once, expanded into each header's `impl` so that
/// they stay inherent `const fn`s.
macro_rules! port_accessors {
    () => {
        /// Source port in host order.
        #[inline(always)]
        pub const fn source_port(&self) -> u16 {
            $crate::wire::be16(self.source_port)
        }

        /// Destination port in host order.
        #[inline(always)]
        pub const fn destination_port(&self) -> u16 {
            $crate::wire::be16(self.destination_port)
        }
    };
}

pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod tunnel;
pub mod udp;

pub use ethernet::{EthernetHeader, VlanTag};
pub use icmp::IcmpHeader;
pub use ipv4::Ipv4Header;
pub use ipv6::{Ipv6ExtensionHeader, Ipv6FragmentHeader, Ipv6Header};
pub use tcp::TcpHeader;
pub use tunnel::{GeneveHeader, VxlanHeader};
pub use udp::UdpHeader;

/// IP protocol numbers (one byte, no byte order).
pub mod protocol {
    /// IPv6 hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// IPv4 in IP (IPIP).
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 in IP.
    pub const IPV6: u8 = 41;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// GRE.
    pub const GRE: u8 = 47;
    /// Encapsulating security payload.
    pub const ESP: u8 = 50;
    /// Authentication header.
    pub const AH: u8 = 51;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header".
    pub const NO_NEXT_HEADER: u8 = 59;
    /// IPv6 destination options.
    pub const DESTINATION_OPTIONS: u8 = 60;
}

/// Reads a big-endian `u16` from two wire bytes.
#[inline(always)]
pub(crate) const fn be16(bytes: [u8; 2]) -> u16 {
    u16::from_be_bytes(bytes)
}

#[cfg(test)]
mod field_offsets {
    use super::{Ipv4Header, Ipv6Header, TcpHeader};

    /// The offsets derived from the `#[repr(C)]` layouts are the RFCs'.
    #[test]
    fn offsets_are_the_rfcs() {
        // RFC 791, section 3.1.
        assert_eq!(Ipv4Header::VERSION_IHL, 0);
        assert_eq!(Ipv4Header::TOTAL_LENGTH, 2);
        assert_eq!(Ipv4Header::IDENTIFICATION, 4);
        assert_eq!(Ipv4Header::TTL, 8);
        assert_eq!(Ipv4Header::PROTOCOL, 9);
        assert_eq!(Ipv4Header::CHECKSUM, 10);
        assert_eq!(Ipv4Header::SOURCE, 12);
        assert_eq!(Ipv4Header::DESTINATION, 16);
        assert_eq!(core::mem::size_of::<Ipv4Header>(), Ipv4Header::LEN);
        // RFC 8200, section 3.
        assert_eq!(Ipv6Header::PAYLOAD_LENGTH, 4);
        assert_eq!(Ipv6Header::NEXT_HEADER, 6);
        assert_eq!(Ipv6Header::HOP_LIMIT, 7);
        assert_eq!(Ipv6Header::SOURCE, 8);
        assert_eq!(Ipv6Header::DESTINATION, 24);
        assert_eq!(core::mem::size_of::<Ipv6Header>(), Ipv6Header::LEN);
        // RFC 9293, section 3.1.
        assert_eq!(TcpHeader::SOURCE_PORT, 0);
        assert_eq!(TcpHeader::DATA_OFFSET, 12);
        assert_eq!(TcpHeader::FLAGS, 13);
        assert_eq!(core::mem::size_of::<TcpHeader>(), TcpHeader::LEN);
    }
}
