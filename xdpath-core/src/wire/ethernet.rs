//! Ethernet II and 802.1Q / 802.1ad tags.

use super::be16;

/// EtherType IPv4 (host order; `0x08 0x00` on the wire).
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType ARP (host order).
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType IPv6 (host order; `0x86 0xdd` on the wire).
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of an 802.1Q customer tag (host order).
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of an 802.1ad service tag, QinQ's outer tag (host order).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// The pre-standard QinQ EtherType some switches still send (host order).
pub const ETHERTYPE_QINQ_LEGACY: u16 = 0x9100;

/// True for the EtherTypes that introduce a VLAN tag.
#[inline(always)]
pub const fn is_vlan_ethertype(ethertype: u16) -> bool {
    matches!(
        ethertype,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_LEGACY
    )
}

/// An Ethernet II header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetHeader {
    /// Destination MAC.
    pub destination: [u8; 6],
    /// Source MAC.
    pub source: [u8; 6],
    /// EtherType, big-endian.
    pub ethertype: [u8; 2],
}

impl EthernetHeader {
    /// Header length in bytes.
    pub const LEN: usize = 14;

    /// EtherType in host order.
    #[inline(always)]
    pub const fn ethertype(&self) -> u16 {
        be16(self.ethertype)
    }
}

/// The four bytes after a VLAN EtherType: tag control and the next EtherType.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanTag {
    /// Priority (3 bits), drop eligible (1), VLAN id (12), big-endian.
    pub tci: [u8; 2],
    /// The EtherType that follows, big-endian.
    pub ethertype: [u8; 2],
}

impl VlanTag {
    /// Tag length in bytes.
    pub const LEN: usize = 4;

    /// The 12-bit VLAN id.
    #[inline(always)]
    pub const fn vlan_id(&self) -> u16 {
        be16(self.tci) & 0x0fff
    }

    /// The next EtherType in host order.
    #[inline(always)]
    pub const fn ethertype(&self) -> u16 {
        be16(self.ethertype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Packet, SlicePacket};

    /// Broadcast ARP request head: dst ff:.., src 02:00:00:00:00:01, type 0x0806.
    const GOLDEN_ETHERNET: [u8; 14] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06,
    ];
    /// 802.1Q tag: priority 5, VLAN 100, then IPv4.
    const GOLDEN_VLAN: [u8; 4] = [0xa0, 0x64, 0x08, 0x00];

    #[test]
    fn ethernet_golden() {
        let header: EthernetHeader = SlicePacket::new(&GOLDEN_ETHERNET).load(0).expect("fits");
        assert_eq!(header.destination, [0xff; 6]);
        assert_eq!(header.source, [2, 0, 0, 0, 0, 1]);
        assert_eq!(header.ethertype(), ETHERTYPE_ARP);
        assert_eq!(core::mem::size_of::<EthernetHeader>(), EthernetHeader::LEN);
        assert!(SlicePacket::new(&GOLDEN_ETHERNET[..13])
            .load::<EthernetHeader>(0)
            .is_none());
    }

    #[test]
    fn vlan_golden() {
        let tag: VlanTag = SlicePacket::new(&GOLDEN_VLAN).load(0).expect("fits");
        assert_eq!(tag.vlan_id(), 100);
        assert_eq!(tag.ethertype(), ETHERTYPE_IPV4);
        assert!(
            is_vlan_ethertype(0x8100) && is_vlan_ethertype(0x88a8) && !is_vlan_ethertype(0x0800)
        );
    }
}
