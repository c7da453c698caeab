//! IPv4 (RFC 791).

use super::be16;

/// The "more fragments" flag within the flags/fragment-offset field (host order).
pub const FLAG_MORE_FRAGMENTS: u16 = 0x2000;
/// The "don't fragment" flag (host order).
pub const FLAG_DONT_FRAGMENT: u16 = 0x4000;
/// The fragment offset bits, in units of 8 bytes (host order).
pub const FRAGMENT_OFFSET_MASK: u16 = 0x1fff;

/// The fixed 20 bytes of an IPv4 header; options follow, per the IHL.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Version (high nibble) and header length in 32-bit words (low nibble).
    pub version_ihl: u8,
    /// DSCP and ECN.
    pub tos: u8,
    /// Total length of header and payload, big-endian.
    pub total_length: [u8; 2],
    /// Identification, big-endian.
    pub identification: [u8; 2],
    /// Flags (3 bits) and fragment offset (13 bits), big-endian.
    pub flags_fragment: [u8; 2],
    /// Time to live.
    pub ttl: u8,
    /// Payload protocol.
    pub protocol: u8,
    /// Header checksum, big-endian.
    pub checksum: [u8; 2],
    /// Source address.
    pub source: [u8; 4],
    /// Destination address.
    pub destination: [u8; 4],
}

impl Ipv4Header {
    /// Length of the fixed header in bytes.
    pub const LEN: usize = 20;
    /// Byte offset of the total length, from the `#[repr(C)]` layout.
    pub const VERSION_IHL: usize = core::mem::offset_of!(Ipv4Header, version_ihl);
    /// Offset of the total length, big-endian.
    pub const TOTAL_LENGTH: usize = core::mem::offset_of!(Ipv4Header, total_length);
    /// Byte offset of the identification.
    pub const IDENTIFICATION: usize = core::mem::offset_of!(Ipv4Header, identification);
    /// Byte offset of the TTL.
    pub const TTL: usize = core::mem::offset_of!(Ipv4Header, ttl);
    /// Byte offset of the protocol.
    pub const PROTOCOL: usize = core::mem::offset_of!(Ipv4Header, protocol);
    /// Byte offset of the header checksum.
    pub const CHECKSUM: usize = core::mem::offset_of!(Ipv4Header, checksum);
    /// Byte offset of the source address.
    pub const SOURCE: usize = core::mem::offset_of!(Ipv4Header, source);
    /// Byte offset of the destination address.
    pub const DESTINATION: usize = core::mem::offset_of!(Ipv4Header, destination);

    /// The version field.
    #[inline(always)]
    pub const fn version(&self) -> u8 {
        self.version_ihl >> 4
    }

    /// Header length in bytes, options included (IHL × 4).
    #[inline(always)]
    pub const fn header_length(&self) -> usize {
        ((self.version_ihl & 0x0f) as usize) * 4
    }

    /// Total length in host order.
    #[inline(always)]
    pub const fn total_length(&self) -> usize {
        be16(self.total_length) as usize
    }

    /// Fragment offset in bytes.
    #[inline(always)]
    pub const fn fragment_offset(&self) -> u16 {
        (be16(self.flags_fragment) & FRAGMENT_OFFSET_MASK) << 3
    }

    /// The "more fragments" flag.
    #[inline(always)]
    pub const fn more_fragments(&self) -> bool {
        be16(self.flags_fragment) & FLAG_MORE_FRAGMENTS != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Packet, SlicePacket};

    /// 192.0.2.1 → 198.51.100.2, TCP, TTL 64, total 40, DF, checksum 0xb2c9... as
    /// computed by the kernel for this header.
    const GOLDEN: [u8; 20] = [
        0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 0xc0, 0x00, 0x02,
        0x01, 0xc6, 0x33, 0x64, 0x02,
    ];

    #[test]
    fn golden_fields() {
        let header: Ipv4Header = SlicePacket::new(&GOLDEN).load(0).expect("fits");
        assert_eq!(header.version(), 4);
        assert_eq!(header.header_length(), 20);
        assert_eq!(header.total_length(), 40);
        assert_eq!(header.protocol, 6);
        assert_eq!(header.ttl, 64);
        assert_eq!(header.source, [192, 0, 2, 1]);
        assert_eq!(header.destination, [198, 51, 100, 2]);
        assert_eq!(header.fragment_offset(), 0);
        assert!(!header.more_fragments());
        assert_eq!(core::mem::size_of::<Ipv4Header>(), Ipv4Header::LEN);
    }

    #[test]
    fn fragment_fields() {
        let mut bytes = GOLDEN;
        // MF set, offset 185 (×8 = 1480 bytes).
        bytes[6] = 0x20;
        bytes[7] = 0xb9;
        let header: Ipv4Header = SlicePacket::new(&bytes).load(0).expect("fits");
        assert!(header.more_fragments());
        assert_eq!(header.fragment_offset(), 1480);
    }
}
