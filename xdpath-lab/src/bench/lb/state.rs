//! What the section installs and sends: the balancer state (two VIPs, six
//! backends, two Maglev rings) and the frames of each pass.

use xdpath_core::build::{doc_v6, FrameSpec, Network, Transport};
use xdpath_core::lb::{
    mac_value, AllowKey, Backend, ConnectionKey, LbConfig, NewFlowPlace, Vip, VipKey, ENCAP_GUE,
    ENCAP_IPIP, LB_ENABLED, LB_ESTABLISHED_BY_SLOT, LB_FIXED_NEXT_HOP, MAX_ALLOW_PREFIXES,
    VIP_ALLOW_LIST,
};
use xdpath_core::parse::ipv4_mapped;
use xdpath_core::wire::tcp::FLAG_SYN;

use super::{LbBenchError, GUE_PORT, NEXT_HOP, RING_SIZE, VIP4, VIP6_LAST};
use xdpath::lb::install::CompiledLb;
use xdpath::lb::maglev::{build_table, MaglevBackend};

/// The destination of the repeated rows' frame: no VIP's address, and
/// outside the VIP filter of [`bench_state`] (a test checks), so the frame
/// stops before the balancing stage.
const NON_VIP: [u8; 4] = [198, 51, 100, 2];

/// The IPv6 VIP's address.
fn vip6() -> [u8; 16] {
    doc_v6(VIP6_LAST)
}

/// The settings: fixed next hop, outer sources 172.16.0.0/16 and
/// 2001:db8::ff00/64.
fn bench_config() -> LbConfig {
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

/// The most prefixes `--lb-allow` gives each of the two VIPs.
pub(super) const MAX_BENCH_ALLOW: u32 = MAX_ALLOW_PREFIXES / 2;

/// `count` allow-list prefixes for each VIP: the one holding its flows'
/// sources (10.0.0.0/8; 2001:db8:1::/48) last, after `count - 1` others
/// (/24s of 100.64.0.0/10; /48s of 2001:db8:8000::/33) that hold none.
fn allow_keys(count: u32) -> Vec<AllowKey> {
    let mut keys = Vec::new();
    for other in 0..count.saturating_sub(1) {
        let [_, _, high, low] = (other + (64 << 16)).to_be_bytes();
        keys.push(AllowKey::new(
            0,
            4,
            &ipv4_mapped([100, high, low, 0]),
            96 + 24,
        ));
        let mut v6 = doc_v6(0);
        v6[4..6].copy_from_slice(&(0x8000 | other as u16).to_be_bytes());
        keys.push(AllowKey::new(1, 6, &v6, 48));
    }
    if count > 0 {
        keys.push(AllowKey::new(0, 4, &ipv4_mapped([10, 0, 0, 0]), 96 + 8));
        let mut v6 = doc_v6(0);
        v6[4..6].copy_from_slice(&[0, 1]);
        keys.push(AllowKey::new(1, 6, &v6, 48));
    }
    keys
}

/// The benchmark's balancer state: the IPv4 VIP on ring 0 with three IPv4
/// backends (10.0.0.1-3, outer IPv4), the IPv6 VIP on ring 1 with three
/// IPv6 backends (2001:db8::31-33, GUE over IPv6), fixed next hop; with
/// `allow` > 0, an allow list of that many prefixes on each VIP.
pub fn bench_state(allow: u32) -> Result<CompiledLb, LbBenchError> {
    let flags = if allow > 0 { VIP_ALLOW_LIST } else { 0 };
    let v4: Vec<[u8; 16]> = (1..=3).map(|last| ipv4_mapped([10, 0, 0, last])).collect();
    let v6: Vec<[u8; 16]> = (0x31..=0x33).map(doc_v6).collect();
    let pool = |addresses: &[[u8; 16]]| -> Vec<MaglevBackend> {
        addresses
            .iter()
            .map(|address| MaglevBackend {
                address: *address,
                weight: 1,
            })
            .collect()
    };
    let ring4 = build_table(&pool(&v4), RING_SIZE, 7)?;
    // The table holds indices into its pool; the IPv6 backends sit at 3-5.
    let ring6: Vec<u32> = build_table(&pool(&v6), RING_SIZE, 7)?
        .into_iter()
        .map(|index| index + 3)
        .collect();
    let vip = |address: [u8; 16], port: u16| VipKey {
        address,
        port,
        protocol: 6,
        reserved: [0; 5],
    };
    let config = bench_config();
    let backends = v4
        .iter()
        .map(|address| (*address, 4))
        .chain(v6.iter().map(|address| (*address, 6)))
        .zip(0u32..)
        .map(|((address, family), index)| {
            (
                index,
                Backend {
                    address,
                    generation: 1,
                    family,
                    flags: 0,
                    // The IPv4 VIP is in slot 0, the IPv6 one in slot 1.
                    vip: if family == 4 { 1 } else { 2 },
                },
            )
        })
        .collect();
    Ok(CompiledLb {
        config,
        vips: vec![
            (
                vip(ipv4_mapped(VIP4), 80),
                Vip {
                    index: 0,
                    ring: 0,
                    ring_size: RING_SIZE,
                    gue_port: 0,
                    flags,
                    encap: ENCAP_IPIP,
                },
            ),
            (
                vip(vip6(), 443),
                Vip {
                    index: 1,
                    ring: 1,
                    ring_size: RING_SIZE,
                    gue_port: GUE_PORT,
                    flags,
                    encap: ENCAP_GUE,
                },
            ),
        ],
        rings: vec![(0, ring4), (1, ring6)],
        backends,
        allow: allow_keys(allow),
        sample_rates: Vec::new(),
    })
}

/// Address family of a set of frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Family {
    V4,
    V6,
}

impl Family {
    /// Both, in table order.
    pub(super) const BOTH: [Family; 2] = [Family::V4, Family::V6];

    pub(super) fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The encapsulation of the family's VIP.
    pub(super) fn encap(self) -> &'static str {
        match self {
            Family::V4 => "IPIP",
            Family::V6 => "GUE",
        }
    }
}

/// `flows` TCP segments with `flags` (a SYN opens a flow, an ACK follows
/// it) to the family's VIP, each of its own flow: source address and port
/// vary with the index, the source address also with the round, so no
/// round meets a flow an earlier one placed.
pub(super) fn flow_frames(family: Family, round: usize, flows: u32, flags: u8) -> Vec<Vec<u8>> {
    (0..flows)
        .map(|index| {
            let [_, _, high, low] = index.to_be_bytes();
            let round = (round % 256) as u8;
            let source_port = 1024 + (index % 60_000) as u16;
            let network = match family {
                Family::V4 => Network::V4([10, round, high, low], VIP4),
                Family::V6 => {
                    let mut source = doc_v6(0);
                    source[4..6].copy_from_slice(&[0, 1]);
                    source[13..16].copy_from_slice(&[round, high, low]);
                    Network::V6(source, vip6())
                }
            };
            let destination_port = match family {
                Family::V4 => 80,
                Family::V6 => 443,
            };
            FrameSpec::new(
                network,
                Transport::Tcp {
                    source_port,
                    destination_port,
                    flags,
                },
            )
            .build()
        })
        .collect()
}

/// How many of `frames`' flows (one pass, in order) lose their slot of
/// the new-flow table to a later flow of the pass: slots are taken by a
/// hash of the flow ([`NewFlowPlace`]), and a later SYN overwrites.
pub(super) fn new_flow_collisions(frames: &[Vec<u8>], seed: u64) -> u64 {
    let slots: std::collections::HashSet<u32> = frames
        .iter()
        .filter_map(|frame| xdpath_core::parse(&xdpath_core::SlicePacket::new(frame)).ok())
        .map(|parsed| {
            let key = parsed.key;
            let connection = ConnectionKey::new(
                &key.source,
                &key.destination,
                key.source_port,
                key.destination_port,
                key.protocol,
            );
            NewFlowPlace::of(&connection, seed).slot
        })
        .collect();
    (frames.len() - slots.len()) as u64
}

/// A TCP SYN to an address that is no VIP: the balancer passes the frame
/// unchanged (so `repeat` is valid).
pub(super) fn non_vip_frame() -> Vec<u8> {
    FrameSpec::new(
        Network::V4([192, 0, 2, 1], NON_VIP),
        Transport::Tcp {
            source_port: 40000,
            destination_port: 80,
            flags: FLAG_SYN,
        },
    )
    .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_frames_are_distinct_flows() {
        for family in Family::BOTH {
            let frames = flow_frames(family, 3, 20_000, FLAG_SYN);
            let unique: std::collections::HashSet<&Vec<u8>> = frames.iter().collect();
            assert_eq!(unique.len(), frames.len());
            // Another round's flows are new too.
            let other = flow_frames(family, 4, 20_000, FLAG_SYN);
            assert!(other.iter().all(|frame| !unique.contains(frame)));
        }
    }

    #[test]
    fn bench_state_rings_point_at_their_family() {
        let state = bench_state(0).expect("state");
        let family = |index: u32| {
            state
                .backends
                .iter()
                .find(|(at, _)| *at == index)
                .map(|(_, backend)| backend.family)
        };
        for (ring, slots) in &state.rings {
            let expected = if *ring == 0 { 4 } else { 6 };
            assert_eq!(slots.len(), RING_SIZE as usize);
            assert!(slots.iter().all(|&index| family(index) == Some(expected)));
        }
    }

    #[test]
    fn the_flows_sources_are_in_the_last_allowed_prefix_only() {
        let keys = allow_keys(100);
        assert_eq!(keys.len(), 200);
        let unique: std::collections::HashSet<&AllowKey> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "no prefix twice");
        assert_eq!(keys[198].address, ipv4_mapped([10, 0, 0, 0]));
        assert!(allow_keys(0).is_empty());
    }

    /// The repeated rows' "not a VIP" frame must be stopped by the VIP
    /// filter (before the tail call), or the row would time the stage.
    #[test]
    fn the_non_vip_frame_misses_the_vip_filter() {
        let config = bench_state(0).expect("state").live_config();
        assert!(config.may_be_vip(&ipv4_mapped(VIP4)));
        assert!(config.may_be_vip(&vip6()));
        assert!(!config.may_be_vip(&ipv4_mapped(NON_VIP)));
    }
}
