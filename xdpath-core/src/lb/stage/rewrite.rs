//! Rewriting a balanced frame: the outer headers of its encapsulation,
//! the Ethernet addresses of the next hop and the VLAN tags put back.

use super::flow::l3_offset;
use crate::lb::*;
use crate::packet::PacketMut;
use crate::parse::FlowKey;

/// Where an encapsulated frame goes (a BPF function takes at most five
/// arguments, hence one struct; aligned for the eBPF stack).
#[repr(C, align(8))]
pub(super) struct Target {
    pub(super) backend: Backend,
    pub(super) vip: Vip,
    pub(super) destination_mac: u64,
    pub(super) source_mac: u64,
    pub(super) hash: u32,
}

/// Puts the outer headers between the L2 header (kept, with its VLAN tags)
/// and the inner IP packet. Not inlined, for its own stack frame.
#[inline(never)]
pub(super) fn encapsulate<P: PacketMut>(
    packet: &mut P,
    key: &FlowKey,
    config: &LbConfig,
    target: &Target,
) -> bool {
    let (backend, vip, hash) = (&target.backend, &target.vip, target.hash);
    let l3 = l3_offset(key);
    let outer_source = if backend.family == 4 {
        outer_source(&config.source_v4, config.source_v4_len, hash)
    } else {
        outer_source(&config.source_v6, config.source_v6_len, hash)
    };
    let inner_ipv4 = key.ip_version == 4;
    let (inner_length, tos) = if inner_ipv4 {
        let Some(tos) = packet.load::<u8>(l3 + 1) else {
            return false;
        };
        let Some(length) = packet.load::<u16>(l3 + 2) else {
            return false;
        };
        (u16::from_be(length), tos)
    } else {
        let Some(first) = packet.load::<u16>(l3) else {
            return false;
        };
        let Some(payload) = packet.load::<u16>(l3 + 4) else {
            return false;
        };
        (
            u16::from_be(payload).saturating_add(40),
            (u16::from_be(first) >> 4) as u8,
        )
    };
    let tags: u64 = if key.vlan_count == 0 {
        0
    } else {
        match packet.load::<u64>(12) {
            Some(tags) => tags,
            None => return false,
        }
    };
    let spec = OuterSpec {
        source: outer_source,
        destination: backend.address,
        hash,
        inner_length,
        gue_port: if vip.encap == ENCAP_GUE {
            vip.gue_port
        } else {
            0
        },
        outer_ipv4: backend.family == 4,
        inner_ipv4,
        tos,
    };
    if !packet.adjust_head(-(spec.length() as i32)) {
        return false;
    }
    // Short-circuit: a failed write ends it (one verifier state, not two).
    write_ethernet(packet, target.destination_mac, target.source_mac)
        && write_tags(packet, key.vlan_count, tags)
        && store_be16(packet, l3 - 2, spec.ethertype())
        && write_outer(packet, l3, &spec)
}

/// The two MACs of an Ethernet header (48-bit values), in two stores:
/// the destination and the source's first two bytes, then the rest.
#[inline(always)]
fn write_ethernet<P: PacketMut>(packet: &mut P, destination: u64, source: u64) -> bool {
    let first = (destination << 16 | (source >> 32 & 0xffff)).to_be();
    packet.store(0, first) && store_be32(packet, 8, source as u32)
}

/// Puts back the VLAN tags read before a head adjustment (as raw bytes).
#[inline(always)]
pub(super) fn write_tags<P: PacketMut>(packet: &mut P, vlan_count: u8, tags: u64) -> bool {
    match vlan_count {
        0 => true,
        1 => {
            let [t0, t1, t2, t3, _, _, _, _] = tags.to_ne_bytes();
            packet.store(12, u32::from_ne_bytes([t0, t1, t2, t3]))
        }
        _ => packet.store(12, tags),
    }
}
