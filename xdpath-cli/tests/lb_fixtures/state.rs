//! The balancer state of the fixtures: VIPs, backends, the Maglev table
//! and the configuration, as the kernel maps and the native tables hold
//! them.

use super::*;

pub(crate) const VIP4: [u8; 4] = [203, 0, 113, 10];
pub(crate) const NO_BACKEND_VIP4: [u8; 4] = [203, 0, 113, 11];
/// IPv4 VIP with GUE (so that IPv4 goes into GUE too).
pub(crate) const GUE_VIP4: [u8; 4] = [203, 0, 113, 12];
/// IPv4 VIP without a connection table.
pub(crate) const STATELESS_VIP4: [u8; 4] = [203, 0, 113, 13];
/// IPv4 VIP with an allow list: 192.0.2.0/25, and `::/0` (which admits
/// IPv6 sources only).
pub(crate) const ALLOW_VIP4: [u8; 4] = [203, 0, 113, 14];
pub(crate) const CLIENT4: [u8; 4] = [192, 0, 2, 1];
pub(crate) const ROUTER4: [u8; 4] = [198, 51, 100, 254];
pub(crate) const NEXT_HOP: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
pub(crate) const RING: u32 = 65_537;
pub(crate) const GUE_PORT: u16 = 6080;
/// VIP slots and backend slots the snapshots read.
pub(crate) const VIP_SLOTS: u32 = 10;
pub(crate) const BACKEND_SLOTS: u32 = 3;

pub(crate) fn vip6() -> [u8; 16] {
    doc_v6(0x10)
}

/// The all-ports, source-hashed IPv6 UDP VIP.
pub(crate) fn vip6_all() -> [u8; 16] {
    doc_v6(0x20)
}

/// IPv6 VIP with IPIP (so that IPv6 goes into IPIP too).
pub(crate) fn ipip_vip6() -> [u8; 16] {
    doc_v6(0x30)
}

/// IPv6 VIP with an allow list: 2001:db8::/124, and `0.0.0.0/0` (which
/// admits IPv4 sources only).
pub(crate) fn allow_vip6() -> [u8; 16] {
    doc_v6(0x40)
}

pub(crate) fn client6() -> [u8; 16] {
    doc_v6(1)
}

pub(crate) fn router6() -> [u8; 16] {
    doc_v6(0xfe)
}

// ---- the balancer's state

pub(crate) fn backends() -> Vec<(u32, [u8; 16])> {
    vec![
        (0, ipv4_mapped([10, 0, 0, 1])),
        (1, ipv4_mapped([10, 0, 0, 2])),
        (2, doc_v6(0x33)),
    ]
}

pub(crate) fn vip_key(address: [u8; 16], port: u16, protocol: u8) -> VipKey {
    VipKey {
        address,
        port,
        protocol,
        reserved: [0; 5],
    }
}

pub(crate) fn vip(index: u32, ring: u32, flags: u8, encap: u8) -> Vip {
    Vip {
        index,
        ring,
        ring_size: RING,
        gue_port: if encap == ENCAP_GUE { GUE_PORT } else { 0 },
        flags,
        encap,
    }
}

/// VIP 0: 203.0.113.10:80/tcp, IPIP. VIP 1: [2001:db8::10]:443/tcp, GUE
/// to 6080. VIP 2: 203.0.113.10, all UDP ports, hashed on the source.
/// VIP 3: 203.0.113.11:80/tcp with an empty ring. VIP 4: 2001:db8::20,
/// all UDP ports, hashed on the source, GUE. VIP 5: 203.0.113.12:443/tcp,
/// GUE. VIP 6: [2001:db8::30]:80/tcp, IPIP. VIP 7: 203.0.113.13:80/tcp,
/// IPIP, no connection table. VIP 8: 203.0.113.14:80/tcp, IPIP, allow
/// list. VIP 9: [2001:db8::40]:443/tcp, GUE, allow list (`allow_keys`).
pub(crate) fn vips() -> Vec<(VipKey, Vip)> {
    vec![
        (vip_key(ipv4_mapped(VIP4), 80, 6), vip(0, 0, 0, ENCAP_IPIP)),
        (vip_key(vip6(), 443, 6), vip(1, 0, 0, ENCAP_GUE)),
        (
            vip_key(ipv4_mapped(VIP4), 0, 17),
            vip(2, 0, VIP_SOURCE_HASH, ENCAP_IPIP),
        ),
        (
            vip_key(ipv4_mapped(NO_BACKEND_VIP4), 80, 6),
            vip(3, 2, 0, ENCAP_IPIP),
        ),
        (
            vip_key(vip6_all(), 0, 17),
            vip(4, 0, VIP_SOURCE_HASH, ENCAP_GUE),
        ),
        (
            vip_key(ipv4_mapped(GUE_VIP4), 443, 6),
            vip(5, 0, 0, ENCAP_GUE),
        ),
        (vip_key(ipip_vip6(), 80, 6), vip(6, 0, 0, ENCAP_IPIP)),
        (
            vip_key(ipv4_mapped(STATELESS_VIP4), 80, 6),
            vip(7, 0, VIP_NO_CONNTRACK, ENCAP_IPIP),
        ),
        (
            vip_key(ipv4_mapped(ALLOW_VIP4), 80, 6),
            vip(8, 0, VIP_ALLOW_LIST, ENCAP_IPIP),
        ),
        (
            vip_key(allow_vip6(), 443, 6),
            vip(9, 0, VIP_ALLOW_LIST, ENCAP_GUE),
        ),
    ]
}

/// The allow lists of VIPs 8 and 9, as the trie holds them: each VIP also
/// lists the whole other family, which must not admit its own family's
/// sources (an IPv4-mapped IPv6 source is IPv6).
pub(crate) fn allow_keys() -> Vec<AllowKey> {
    vec![
        AllowKey::new(8, 4, &ipv4_mapped([192, 0, 2, 0]), 96 + 25),
        AllowKey::new(8, 6, &[0; 16], 0),
        AllowKey::new(9, 6, &doc_v6(0), 124),
        AllowKey::new(9, 4, &ipv4_mapped([0; 4]), 96),
    ]
}

/// A Maglev table over `backends()` with these weights (0 drains).
pub(crate) fn maglev(weights: [u32; 3]) -> Vec<u32> {
    let pool: Vec<MaglevBackend> = backends()
        .iter()
        .zip(weights)
        .map(|((_, address), weight)| MaglevBackend {
            address: *address,
            weight,
        })
        .collect();
    build_table(&pool, RING, 7).expect("table")
}

pub(crate) fn lb_config() -> LbConfig {
    let mut config = LbConfig {
        flags: LB_ENABLED | LB_FIXED_NEXT_HOP | LB_ESTABLISHED_BY_SLOT,
        source_v4_len: 96 + 16,
        source_v6_len: 64,
        next_hop_mac: mac_value(NEXT_HOP),
        ..LbConfig::default()
    };
    config.source_v4 = ipv4_mapped([172, 16, 0, 0]);
    config.source_v6 = doc_v6(0xff00);
    config
}

pub(crate) fn backend_entries() -> Vec<(u32, Backend)> {
    backends()
        .into_iter()
        .map(|(index, address)| {
            let family = if address[..12] == ipv4_mapped([0; 4])[..12] {
                4
            } else {
                6
            };
            (
                index,
                Backend {
                    address,
                    generation: 1,
                    family,
                    flags: 0,
                    // Every VIP shares these backends; they name VIP 0's
                    // slot, so that VIP's established flows take the
                    // kernel's fast path (`VIPS_BY_SLOT`) and the others'
                    // find another VIP there and take the usual lookups,
                    // the native build's way for all.
                    vip: 1,
                },
            )
        })
        .collect()
}

/// The balancer with `table` as ring `ring` (the VIPs of ring 0 moved to
/// it), ring 2 empty; a backend in no slot of `table` marked out of the
/// ring, as the control plane marks a drained one.
pub(crate) fn state(ring: u32, table: Vec<u32>) -> CompiledLb {
    let mut vips = vips();
    for (_, vip) in &mut vips {
        if vip.ring == 0 {
            vip.ring = ring;
        }
    }
    CompiledLb {
        config: lb_config(),
        vips,
        rings: vec![(ring, table.clone()), (2, vec![u32::MAX; RING as usize])],
        backends: backend_entries()
            .into_iter()
            .map(|(index, mut backend)| {
                if !table.contains(&index) {
                    backend.flags = BACKEND_OUT_OF_RING;
                }
                (index, backend)
            })
            .collect(),
        allow: allow_keys(),
        sample_rates: Vec::new(),
    }
}

// ---- frames
