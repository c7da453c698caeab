//! Tunnel headers carried in UDP: VXLAN (RFC 7348) and Geneve (RFC 8926).

/// The IANA UDP port of VXLAN.
pub const VXLAN_PORT: u16 = 4789;
/// The IANA UDP port of Geneve.
pub const GENEVE_PORT: u16 = 6081;
/// The VXLAN flag that says the VNI is valid ("I", RFC 7348 §5).
pub const VXLAN_FLAG_VNI: u8 = 0x08;
/// Geneve's protocol type of an Ethernet frame (Transparent Ethernet
/// Bridging).
pub const GENEVE_PROTOCOL_ETHERNET: u16 = 0x6558;
/// The largest VNI: 24 bits.
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// A VXLAN header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VxlanHeader {
    /// Flags (`VXLAN_FLAG_VNI`).
    pub flags: u8,
    /// Reserved.
    pub reserved: [u8; 3],
    /// The VNI, big-endian.
    pub vni: [u8; 3],
    /// Reserved.
    pub reserved_tail: u8,
}

impl VxlanHeader {
    /// Header length in bytes.
    pub const LEN: usize = 8;

    /// Whether the I flag is set (the VNI is valid).
    #[inline(always)]
    pub const fn has_vni(&self) -> bool {
        self.flags & VXLAN_FLAG_VNI != 0
    }

    /// The VNI in host order.
    #[inline(always)]
    pub const fn vni(&self) -> u32 {
        be24(self.vni)
    }
}

/// A Geneve header, without its options.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneveHeader {
    /// Version (2 bits) and options length in 4-byte words (6 bits).
    pub version_options: u8,
    /// The O (control) and C (critical options) flags.
    pub flags: u8,
    /// The protocol type of the payload, big-endian.
    pub protocol_type: [u8; 2],
    /// The VNI, big-endian.
    pub vni: [u8; 3],
    /// Reserved.
    pub reserved: u8,
}

impl GeneveHeader {
    /// Header length in bytes, without options.
    pub const LEN: usize = 8;

    /// The version (0 today).
    #[inline(always)]
    pub const fn version(&self) -> u8 {
        self.version_options >> 6
    }

    /// The options' length in bytes (0 to 252).
    #[inline(always)]
    pub const fn options_length(&self) -> usize {
        (self.version_options & 0x3f) as usize * 4
    }

    /// The payload's protocol type in host order.
    #[inline(always)]
    pub const fn protocol_type(&self) -> u16 {
        super::be16(self.protocol_type)
    }

    /// The VNI in host order.
    #[inline(always)]
    pub const fn vni(&self) -> u32 {
        be24(self.vni)
    }
}

#[inline(always)]
const fn be24(bytes: [u8; 3]) -> u32 {
    let [a, b, c] = bytes;
    (a as u32) << 16 | (b as u32) << 8 | c as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Packet, SlicePacket};

    /// VXLAN, I flag, VNI 1001 (0x0003e9).
    const VXLAN: [u8; 8] = [0x08, 0, 0, 0, 0x00, 0x03, 0xe9, 0];
    /// Geneve version 0, 8 bytes of options, protocol 0x6558, VNI 0xabcdef.
    const GENEVE: [u8; 8] = [0x02, 0x00, 0x65, 0x58, 0xab, 0xcd, 0xef, 0];

    #[test]
    fn golden_vxlan() {
        let header: VxlanHeader = SlicePacket::new(&VXLAN).load(0).expect("fits");
        assert!(header.has_vni());
        assert_eq!(header.vni(), 1001);
        assert_eq!(core::mem::size_of::<VxlanHeader>(), VxlanHeader::LEN);
    }

    #[test]
    fn golden_geneve() {
        let header: GeneveHeader = SlicePacket::new(&GENEVE).load(0).expect("fits");
        assert_eq!(header.version(), 0);
        assert_eq!(header.options_length(), 8);
        assert_eq!(header.protocol_type(), GENEVE_PROTOCOL_ETHERNET);
        assert_eq!(header.vni(), 0xab_cdef);
        assert_eq!(core::mem::size_of::<GeneveHeader>(), GeneveHeader::LEN);
    }
}
