//! IPv6 (RFC 8200) and the extension headers the parser walks.

use super::be16;

/// The fixed 40-byte IPv6 header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Header {
    /// Version (4 bits), traffic class (8), flow label (20), big-endian.
    pub version_class_flow: [u8; 4],
    /// Payload length (after this header), big-endian.
    pub payload_length: [u8; 2],
    /// The first next-header value.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source address.
    pub source: [u8; 16],
    /// Destination address.
    pub destination: [u8; 16],
}

impl Ipv6Header {
    /// Header length in bytes.
    pub const LEN: usize = 40;
    /// Byte offset of the payload length, from the `#[repr(C)]` layout.
    pub const PAYLOAD_LENGTH: usize = core::mem::offset_of!(Ipv6Header, payload_length);
    /// Byte offset of the next header.
    pub const NEXT_HEADER: usize = core::mem::offset_of!(Ipv6Header, next_header);
    /// Byte offset of the hop limit.
    pub const HOP_LIMIT: usize = core::mem::offset_of!(Ipv6Header, hop_limit);
    /// Byte offset of the source address.
    pub const SOURCE: usize = core::mem::offset_of!(Ipv6Header, source);
    /// Byte offset of the destination address.
    pub const DESTINATION: usize = core::mem::offset_of!(Ipv6Header, destination);

    /// The version field.
    #[inline(always)]
    pub const fn version(&self) -> u8 {
        self.version_class_flow[0] >> 4
    }

    /// Payload length in host order.
    #[inline(always)]
    pub const fn payload_length(&self) -> usize {
        be16(self.payload_length) as usize
    }
}

/// The first two bytes shared by hop-by-hop, routing, destination options
/// and AH headers.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6ExtensionHeader {
    /// The header after this one.
    pub next_header: u8,
    /// Length: in 8-byte units not counting the first 8 (most headers), or in
    /// 4-byte units not counting the first 8 (AH).
    pub length: u8,
}

impl Ipv6ExtensionHeader {
    /// Bytes read to learn an extension header's length.
    pub const LEN: usize = 2;

    /// Length in bytes of a hop-by-hop, routing or destination-options header.
    #[inline(always)]
    pub const fn options_length(&self) -> usize {
        (self.length as usize + 1) * 8
    }

    /// Length in bytes of an authentication header (RFC 4302).
    #[inline(always)]
    pub const fn ah_length(&self) -> usize {
        (self.length as usize + 2) * 4
    }
}

/// The IPv6 fragment header (RFC 8200 §4.5).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6FragmentHeader {
    /// The header after this one.
    pub next_header: u8,
    /// Reserved.
    pub reserved: u8,
    /// Fragment offset (13 bits, in 8-byte units), 2 reserved bits and the
    /// M flag, big-endian.
    pub offset_flags: [u8; 2],
    /// Identification, big-endian.
    pub identification: [u8; 4],
}

impl Ipv6FragmentHeader {
    /// Header length in bytes.
    pub const LEN: usize = 8;

    /// Fragment offset in bytes.
    #[inline(always)]
    pub const fn fragment_offset(&self) -> u16 {
        be16(self.offset_flags) & 0xfff8
    }

    /// The M ("more fragments") flag.
    #[inline(always)]
    pub const fn more_fragments(&self) -> bool {
        be16(self.offset_flags) & 1 != 0
    }
}

/// The second memory word of an IPv4-mapped address (`::ffff:a.b.c.d`),
/// masked by [`MAPPED_WORD_MASK`]: bytes 8..12 are `00 00 ff ff`.
const MAPPED_WORD: u64 = u64::from_ne_bytes([0, 0, 0xff, 0xff, 0, 0, 0, 0]);
/// The bytes of the second memory word that the mapping fixes.
const MAPPED_WORD_MASK: u64 = u64::from_ne_bytes([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);

/// Whether an address, as its two memory words (read from the packet or
/// an array in place), is IPv4-mapped (`::ffff:0:0/96`).
#[inline(always)]
pub const fn is_ipv4_mapped(words: [u64; 2]) -> bool {
    words[0] == 0 && words[1] & MAPPED_WORD_MASK == MAPPED_WORD
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Packet, SlicePacket};

    /// 2001:db8::1 → 2001:db8::2, payload 8, UDP, hop limit 64, flow label 0x12345.
    const GOLDEN: [u8; 40] = [
        0x60, 0x01, 0x23, 0x45, 0x00, 0x08, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
    ];
    /// Fragment header: next UDP, offset 1448 bytes (181 × 8), M set, id 0xdeadbeef.
    const GOLDEN_FRAGMENT: [u8; 8] = [0x11, 0x00, 0x05, 0xa9, 0xde, 0xad, 0xbe, 0xef];

    #[test]
    fn golden_fields() {
        let header: Ipv6Header = SlicePacket::new(&GOLDEN).load(0).expect("fits");
        assert_eq!(header.version(), 6);
        assert_eq!(header.payload_length(), 8);
        assert_eq!(header.next_header, 17);
        assert_eq!(header.hop_limit, 64);
        assert_eq!(header.destination[15], 2);
        assert_eq!(core::mem::size_of::<Ipv6Header>(), Ipv6Header::LEN);
    }

    #[test]
    fn fragment_golden() {
        let header: Ipv6FragmentHeader = SlicePacket::new(&GOLDEN_FRAGMENT).load(0).expect("fits");
        assert_eq!(header.next_header, 17);
        assert_eq!(header.fragment_offset(), 1448);
        assert!(header.more_fragments());
    }

    #[test]
    fn extension_lengths() {
        let options = Ipv6ExtensionHeader {
            next_header: 6,
            length: 1,
        };
        assert_eq!(options.options_length(), 16);
        // AH with a 96-bit ICV: payload length 4 → 24 bytes.
        let ah = Ipv6ExtensionHeader {
            next_header: 6,
            length: 4,
        };
        assert_eq!(ah.ah_length(), 24);
    }
}
