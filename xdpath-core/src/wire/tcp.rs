//! TCP (RFC 9293).

/// FIN flag bit in [`TcpHeader::flags`].
pub const FLAG_FIN: u8 = 0x01;
/// SYN flag bit.
pub const FLAG_SYN: u8 = 0x02;
/// RST flag bit.
pub const FLAG_RST: u8 = 0x04;
/// PSH flag bit.
pub const FLAG_PSH: u8 = 0x08;
/// ACK flag bit.
pub const FLAG_ACK: u8 = 0x10;
/// URG flag bit.
pub const FLAG_URG: u8 = 0x20;

/// The fixed 20 bytes of a TCP header; options follow, per the data offset.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpHeader {
    /// Source port, big-endian.
    pub source_port: [u8; 2],
    /// Destination port, big-endian.
    pub destination_port: [u8; 2],
    /// Sequence number, big-endian.
    pub sequence: [u8; 4],
    /// Acknowledgment number, big-endian.
    pub acknowledgment: [u8; 4],
    /// Data offset in 32-bit words (high nibble), reserved bits.
    pub data_offset: u8,
    /// CWR ECE URG ACK PSH RST SYN FIN.
    pub flags: u8,
    /// Window, big-endian.
    pub window: [u8; 2],
    /// Checksum, big-endian.
    pub checksum: [u8; 2],
    /// Urgent pointer, big-endian.
    pub urgent: [u8; 2],
}

impl TcpHeader {
    /// Length of the fixed header in bytes.
    pub const LEN: usize = 20;
    /// Offset of the source port (the destination port follows it).
    pub const SOURCE_PORT: usize = core::mem::offset_of!(TcpHeader, source_port);
    /// Offset of the data offset byte (header length in words, high nibble).
    pub const DATA_OFFSET: usize = core::mem::offset_of!(TcpHeader, data_offset);
    /// Offset of the flags byte.
    pub const FLAGS: usize = core::mem::offset_of!(TcpHeader, flags);

    port_accessors!();

    /// Header length in bytes, options included.
    #[inline(always)]
    pub const fn header_length(&self) -> usize {
        ((self.data_offset >> 4) as usize) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Packet, SlicePacket};

    /// 40000 → 80, SYN, data offset 10 words (with options), window 64240.
    const GOLDEN: [u8; 20] = [
        0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn golden_fields() {
        let header: TcpHeader = SlicePacket::new(&GOLDEN).load(0).expect("fits");
        assert_eq!(header.source_port(), 40000);
        assert_eq!(header.destination_port(), 80);
        assert_eq!(header.header_length(), 40);
        assert_eq!(header.flags, FLAG_SYN);
        assert_eq!(core::mem::size_of::<TcpHeader>(), TcpHeader::LEN);
    }
}
