//! UDP (RFC 768).

use super::be16;

/// A UDP header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpHeader {
    /// Source port, big-endian.
    pub source_port: [u8; 2],
    /// Destination port, big-endian.
    pub destination_port: [u8; 2],
    /// Length of header and payload, big-endian.
    pub length: [u8; 2],
    /// Checksum, big-endian (zero: none, over IPv4).
    pub checksum: [u8; 2],
}

impl UdpHeader {
    /// Header length in bytes.
    pub const LEN: usize = 8;

    port_accessors!();

    /// The length field in host order.
    #[inline(always)]
    pub const fn length(&self) -> usize {
        be16(self.length) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Packet, SlicePacket};

    /// 53 → 33000, length 12, checksum 0xbeef.
    const GOLDEN: [u8; 8] = [0x00, 0x35, 0x80, 0xe8, 0x00, 0x0c, 0xbe, 0xef];

    #[test]
    fn golden_fields() {
        let header: UdpHeader = SlicePacket::new(&GOLDEN).load(0).expect("fits");
        assert_eq!(header.source_port(), 53);
        assert_eq!(header.destination_port(), 33000);
        assert_eq!(header.length(), 12);
        assert_eq!(header.checksum, [0xbe, 0xef]);
    }
}
