//! Rows of tenant traffic in tunnels: VXLAN (UDP 4789) and Geneve (UDP
//! 6081, options skipped) frames judged on their VNI and inner headers by
//! the rules and limits that name a VNI, on their outer headers by the
//! others; malformed and truncated tunnel headers judged on the outer
//! headers, a tunnel around an inner frame the parser refuses dropped.

use super::*;
use xdpath_core::build::{
    geneve_frame, geneve_header, tunnelled, vxlan_frame, vxlan_header, UNDERLAY,
};

/// The tenant addresses: a VM and its peer in the overlay.
const VM: [u8; 4] = [10, 0, 0, 5];
const PEER: [u8; 4] = [10, 0, 0, 9];
const OTHER_VM: [u8; 4] = [10, 0, 0, 6];
/// The outer class of every tunnel frame here (UDP over IPv4).
const OUTER: Reason = Reason::Ipv4Udp;

/// An inner UDP frame from `source` to `PEER`, port 53.
fn inner_udp(source: [u8; 4]) -> Vec<u8> {
    FrameSpec::new(Network::V4(source, PEER), Transport::udp(1000, 53)).build()
}

/// An inner IPv6 TCP SYN from 2001:db8::5 to 2001:db8::9, port `port`.
fn inner_tcp6(port: u16) -> Vec<u8> {
    FrameSpec::new(
        Network::V6(doc_v6(5), doc_v6(9)),
        Transport::tcp(40000, port, SYN),
    )
    .build()
}

fn vxlan(vni: u32, inner: &[u8]) -> Vec<u8> {
    vxlan_frame(vni, inner)
}

/// The same tunnel over an IPv6 underlay.
fn vxlan_over_v6(vni: u32, inner: &[u8]) -> Vec<u8> {
    tunnelled(
        Network::V6(doc_v6(1), doc_v6(2)),
        4789,
        &vxlan_header(vni),
        inner,
    )
}

/// A state of rule-file text and one rate limit of its own words.
fn with_limit(text: &str, limit: xdpath::api::LimitArgs) -> FilterState {
    let mut state = rules(text);
    state.rate_limits = vec![xdpath::control::ops::limit_spec(&limit, 1).expect("a valid limit")];
    state
}

/// Every tunnel row.
// Long: a table of fixture rows.
pub(crate) fn tunnel_rows() -> Vec<Row> {
    let vni_rule = "--vni 1001 --src 10.0.0.5/32 --action drop";
    let mut no_flag = vxlan_header(1001);
    no_flag[0] = 0;
    let mut long_options = geneve_header(1001, 0);
    long_options[0] = 0x3f;
    let mut not_ethernet = geneve_header(1001, 0);
    not_ethernet[2..4].copy_from_slice(&[0x08, 0x00]);
    let inner = inner_udp(VM);
    vec![
        row(
            "a --vni rule drops its VNI's frames from its inner source, and no others",
            rules(vni_rule),
            vec![
                drop(vxlan(1001, &inner), Reason::RuleDeny),
                pass(vxlan(1002, &inner), OUTER),
                pass(vxlan(1001, &inner_udp(OTHER_VM)), OUTER),
                pass(udp_from(VM), OUTER),
                drop(geneve_frame(1001, 0, &inner), Reason::RuleDeny),
                drop(geneve_frame(1001, 8, &inner), Reason::RuleDeny),
                drop(geneve_frame(1001, 252, &inner), Reason::RuleDeny),
                pass(geneve_frame(1002, 8, &inner), OUTER),
                drop(vxlan_over_v6(1001, &inner), Reason::RuleDeny),
                pass(tunnelled(UNDERLAY, 4790, &vxlan_header(1001), &inner), OUTER),
            ],
        ),
        row(
            "malformed and truncated tunnel headers are judged on their outer headers",
            rules(vni_rule),
            vec![
                pass(tunnelled(UNDERLAY, 4789, &no_flag, &inner), OUTER),
                pass(tunnelled(UNDERLAY, 4789, &vxlan_header(1001)[..4], &[]), OUTER),
                pass(tunnelled(UNDERLAY, 6081, &geneve_header(1001, 0)[..7], &[]), OUTER),
                pass(tunnelled(UNDERLAY, 6081, &not_ethernet, &inner), OUTER),
            ],
        ),
        row(
            "a tunnel around an inner frame the parser refuses is dropped, with the inner frame's reason",
            rules(vni_rule),
            vec![
                drop(tunnelled(UNDERLAY, 4789, &vxlan_header(1001), &inner[..13]), Reason::TruncatedEthernet),
                drop(tunnelled(UNDERLAY, 4789, &vxlan_header(1001), &inner[..30]), Reason::TruncatedIpv4),
                drop(tunnelled(UNDERLAY, 4789, &vxlan_header(1001), &inner[..40]), Reason::Ipv4LengthBeyondFrame),
                drop(tunnelled(UNDERLAY, 6081, &long_options, &inner), Reason::TruncatedEthernet),
                // Shapes the stack behind a VXLAN device accepts (found by
                // a hostile test: the tenant's listener got them), of any
                // VNI: nine destination-options headers, and an IPv4 first
                // fragment with 8 bytes of its TCP SYN.
                drop(vxlan(1001, &nine_destination_options()), Reason::TooManyIpv6Extensions),
                drop(vxlan(1002, &nine_destination_options()), Reason::TooManyIpv6Extensions),
                drop(vxlan(1001, &tiny_first_fragment()), Reason::TruncatedTcp),
            ],
        ),
        row(
            "an inner IPv6 frame in Geneve with options, by VNI, source and port",
            rules("--vni 7 --src 2001:db8::5/128 --proto tcp --dport 22 --action drop"),
            vec![
                drop(geneve_frame(7, 16, &inner_tcp6(22)), Reason::RuleDeny),
                pass(geneve_frame(7, 16, &inner_tcp6(80)), OUTER),
                pass(geneve_frame(8, 16, &inner_tcp6(22)), OUTER),
                drop(vxlan(7, &inner_tcp6(22)), Reason::RuleDeny),
                pass(tcp6(22, SYN), Reason::Ipv6Tcp),
            ],
        ),
        row(
            "rules without --vni match the outer headers of tunnelled frames",
            rules(&format!("--src 10.0.0.5/32 --action drop\n{vni_rule}\n--src 198.51.100.1/32 --proto udp --dport 6081 --action drop")),
            vec![
                drop(vxlan(1001, &inner), Reason::RuleDeny),
                pass(vxlan(1002, &inner), OUTER),
                drop(udp_from(VM), Reason::RuleDeny),
                drop(geneve_frame(5, 0, &inner_udp(OTHER_VM)), Reason::RuleDeny),
            ],
        ),
        row(
            "a tunnelled frame passes only if both layers pass",
            default_drop(
                rules("--vni 1001 --src 10.0.0.0/24 --action pass\n--src 198.51.100.1/32 --vni 1002 --action drop"),
                false,
            ),
            vec![
                drop(vxlan(1001, &inner), Reason::DefaultDeny),
                drop(udp_from(VM), Reason::DefaultDeny),
            ],
        ),
        row(
            "an inner allow does not open the outer layer; an outer allow does not open the inner",
            rules("--src 198.51.100.1/32 --action pass\n--vni 1001 --src 10.0.0.5/32 --action drop\n--vni 1001 --src 10.0.0.6/32 --action pass\n--src 198.51.100.9/32 --action drop"),
            vec![
                drop(vxlan(1001, &inner), Reason::RuleDeny),
                pass(vxlan(1001, &inner_udp(OTHER_VM)), OUTER),
                drop(
                    tunnelled(Network::V4([198, 51, 100, 9], [198, 51, 100, 2]), 4789, &vxlan_header(1001), &inner_udp(OTHER_VM)),
                    Reason::RuleDeny,
                ),
            ],
        ),
        row(
            "a --vni rate limit counts its VNI's frames per inner source",
            with_limit(
                "",
                xdpath::api::LimitArgs {
                    pps: Some("1".into()),
                    burst: Some("1".into()),
                    per: "src".into(),
                    vni: Some("1001".into()),
                    ..xdpath::api::LimitArgs::default()
                },
            ),
            vec![
                pass(vxlan(1001, &inner), OUTER),
                drop(vxlan(1001, &inner), Reason::RateLimited),
                pass(vxlan(1001, &inner_udp(OTHER_VM)), OUTER),
                pass(vxlan(1002, &inner), OUTER),
                pass(vxlan(1002, &inner), OUTER),
                pass(udp_from(VM), OUTER),
                pass(udp_from(VM), OUTER),
            ],
        ),
        row(
            "ARP across the overlay: no inner rule of ::/0 judges it",
            rules("--vni 1001 --src ::/0 --action drop"),
            vec![
                pass(vxlan(1001, &super::non_ip::arp()), OUTER),
                pass(vxlan(1001, &super::non_ip::arp()), OUTER),
            ],
        ),
        row(
            "a --vni limit of one inner destination (the address table) counts only its VNI's frames to it",
            with_limit(
                "",
                xdpath::api::LimitArgs {
                    pps: Some("1".into()),
                    burst: Some("1".into()),
                    per: "dst".into(),
                    scope: Some("10.0.0.9/32".into()),
                    vni: Some("1001".into()),
                    ..xdpath::api::LimitArgs::default()
                },
            ),
            vec![
                pass(vxlan(1001, &inner), OUTER),
                drop(vxlan(1001, &inner_udp(OTHER_VM)), Reason::RateLimited),
                pass(vxlan(1002, &inner), OUTER),
                pass(udp_from(VM), OUTER),
                pass(udp_from(VM), OUTER),
            ],
        ),
    ]
}

/// `state` with `prefix` blocked inside `vni`, expiring at `expires_at`.
fn tunnel_blocked(
    mut state: FilterState,
    prefix: &str,
    vni: u32,
    expires_at: Option<u64>,
) -> FilterState {
    state.blocklist.push(BlockSpec {
        prefix: parse_cidr(prefix).expect("valid"),
        expires_at,
        vni: Some(vni),
    });
    state
}

/// The rows of the blocklist by VNI: inner sources of one VNI, beside the
/// plain blocklist of outer sources, rules first, expiry.
// Long: a table of fixture rows.
pub(crate) fn tunnel_block_rows(now: u64) -> Vec<Row> {
    let inner = inner_udp(VM);
    let other = inner_udp(OTHER_VM);
    let inner_rules = "--vni 1001 --src 10.0.0.5/32 --action drop\n--vni 1001 --src 10.0.0.6/32 --action pass\n--vni 1002 --src 10.0.0.0/24 --action admit";
    vec![
        row(
            "a blocklist entry with a VNI drops that VNI's frames from its inner prefix, and no others",
            tunnel_blocked(
                tunnel_blocked(FilterState::default(), "10.0.0.5/32", 1001, None),
                "2001:db8::/64",
                7,
                None,
            ),
            vec![
                drop(vxlan(1001, &inner), Reason::Blocklisted),
                drop(geneve_frame(1001, 8, &inner), Reason::Blocklisted),
                drop(vxlan_over_v6(1001, &inner), Reason::Blocklisted),
                pass(vxlan(1001, &other), OUTER),
                pass(vxlan(1002, &inner), OUTER),
                pass(udp_from(VM), OUTER),
                drop(geneve_frame(7, 16, &inner_tcp6(22)), Reason::Blocklisted),
                pass(geneve_frame(8, 16, &inner_tcp6(22)), OUTER),
                pass(vxlan(7, &inner), OUTER),
            ],
        ),
        row(
            "the plain blocklist judges outer sources only, tunnelled or not",
            tunnel_blocked(blocked("10.0.0.5/32", None), "10.0.0.9/32", 1001, None),
            vec![
                pass(vxlan(1001, &inner), OUTER),
                drop(udp_from(VM), Reason::Blocklisted),
            ],
        ),
        row(
            "an outer blocked source is dropped whatever it carries",
            tunnel_blocked(blocked("198.51.100.1/32", None), "10.0.0.9/32", 1001, None),
            vec![
                drop(vxlan(1001, &inner), Reason::Blocklisted),
                drop(vxlan(1002, &other), Reason::Blocklisted),
            ],
        ),
        row(
            "inner rules go first: a --vni deny is a rule drop, a --vni pass opens its VNI's blocklist",
            tunnel_blocked(rules(inner_rules), "10.0.0.0/24", 1001, None),
            vec![
                drop(vxlan(1001, &inner), Reason::RuleDeny),
                pass(vxlan(1001, &other), OUTER),
                drop(vxlan(1001, &inner_udp([10, 0, 0, 7])), Reason::Blocklisted),
                pass(vxlan(1002, &inner), OUTER),
            ],
        ),
        row(
            "an admit rule leaves the blocklist of its VNI in force",
            tunnel_blocked(rules(inner_rules), "10.0.0.5/32", 1002, None),
            vec![
                drop(vxlan(1002, &inner), Reason::Blocklisted),
                pass(vxlan(1002, &other), OUTER),
            ],
        ),
        row(
            "a blocklist entry with a VNI expires",
            expiring(now),
            vec![
                pass(vxlan(1001, &inner), OUTER),
                pass(vxlan(1001, &inner), OUTER),
                drop(vxlan(1001, &other), Reason::Blocklisted),
            ],
        ),
    ]
}

/// 10.0.0.5 blocked in VNI 1001 until 100 s ago, 10.0.0.6 for a day more.
fn expiring(now: u64) -> FilterState {
    tunnel_blocked(
        tunnel_blocked(FilterState::default(), "10.0.0.5/32", 1001, Some(now - 100)),
        "10.0.0.6/32",
        1001,
        Some(now + 86_400),
    )
}

/// The entries of the kernel program's tunnel blocklist.
fn kernel_tunnel_blocks(program: &mut LoadedProgram) -> usize {
    let map = program
        .ebpf_mut()
        .map_mut(abi::map::TUNNEL_BLOCKLIST)
        .expect(abi::map::TUNNEL_BLOCKLIST);
    let trie = aya::maps::LpmTrie::<&mut aya::maps::MapData, [u8; 20], [u8; 16]>::try_from(map)
        .expect("TUNNEL_BLOCKLIST is a trie");
    trie.keys().count()
}

/// The data path deletes an expired blocklist entry with a VNI when a
/// frame meets it, in both builds, and keeps the others.
#[test]
fn an_expired_tunnel_block_entry_is_deleted_when_met() {
    xdpath_lab::needs_root!();
    let now = wall_now();
    let state = expiring(now);
    let mut program =
        Reused::take_sparing(InterfaceConfig::default(), SPARED).expect("a fresh XDP program");
    let mut maps = KernelMaps::of_program(&program).expect("maps");
    install_fresh(&mut maps, &state, &no_interfaces_but_lo, now).expect("install");
    let mut native = NativeTables::new(InterfaceConfig::default());
    native.set_now_ns(monotonic_now_ns());
    install_fresh(&mut native, &state, &no_interfaces_but_lo, now).expect("install");
    let native_blocks = |native: &NativeTables| {
        native
            .tunnel_blocklist
            .values()
            .map(|prefixes| prefixes.len())
            .sum::<usize>()
    };
    assert_eq!(
        (kernel_tunnel_blocks(&mut program), native_blocks(&native)),
        (2, 2)
    );
    let frame = vxlan(1001, &inner_udp(VM));
    assert_eq!(program.test_run(&frame).expect("run"), Action::Pass as u32);
    let outcome = pipeline::process(&SlicePacket::new(&frame), &mut native);
    assert_eq!(outcome.action, Action::Pass);
    assert_eq!(
        (kernel_tunnel_blocks(&mut program), native_blocks(&native)),
        (1, 1),
        "the expired entry is gone, the other stays"
    );
}

/// A plain UDP frame (no tunnel) from `source`.
fn udp_from(source: [u8; 4]) -> Vec<u8> {
    FrameSpec::new(Network::V4(source, PEER), Transport::udp(1000, 53)).build()
}
