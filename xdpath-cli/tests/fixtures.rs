//! The fixture table: hand-made frames, each with the verdict and the reason
//! both builds must give it, run through the kernel (`BPF_PROG_TEST_RUN`,
//! reason read back from the counters) and through the native build, under
//! both malformed-frame policies.
//!
//! Needs root and a kernel with BPF (it loads the XDP program).

#[path = "fixtures/frames.rs"]
mod frames;
#[path = "fixtures/table.rs"]
mod table;

use xdpath_core::build::{doc_v6, FrameSpec, Network, Transport};
use xdpath_core::stats::counter_index;
use xdpath_core::wire::protocol;
use xdpath_core::{
    parse, pipeline, Action, Counter, FlowKey, Fragment, InterfaceConfig, MalformedPolicy,
    NativeTables, Reason, SlicePacket,
};

use frames::*;
use table::*;
use xdpath_testing::reuse::Reused;

// ------------------------------------------------------------------- tests

/// Every parser reason (classes and malformed); the filter's reasons have
/// their own table in `filter_fixtures.rs`.
#[test]
fn the_table_covers_every_parser_reason() {
    let table = fixtures();
    assert!(table.len() >= 40, "{} rows", table.len());
    for reason in Reason::ALL
        .into_iter()
        .filter(|reason| !reason.is_filter() && !reason.is_lb() && !reason.is_forward())
    {
        assert!(
            table.iter().any(|fixture| fixture.reason == reason),
            "no fixture for {reason:?}"
        );
    }
}

#[test]
fn native_build_matches_the_table() {
    let mut failures = Vec::new();
    for policy in [MalformedPolicy::Pass, MalformedPolicy::Drop] {
        for fixture in fixtures() {
            let mut tables = NativeTables::new(InterfaceConfig::new(policy));
            let outcome = pipeline::process(&SlicePacket::new(&fixture.frame), &mut tables);
            let expected = (fixture.expected_action(policy), fixture.reason);
            if (outcome.action, outcome.reason) != expected {
                failures.push(format!(
                    "{policy:?} {}: expected {expected:?}, got {:?}",
                    fixture.description,
                    (outcome.action, outcome.reason)
                ));
            }
            let counter = tables.counter(expected.0, expected.1);
            assert_eq!(
                counter,
                Counter {
                    packets: 1,
                    bytes: fixture.frame.len() as u64
                },
                "{}",
                fixture.description
            );
        }
    }
    assert!(
        failures.is_empty(),
        "native mismatches:\n{}",
        failures.join("\n")
    );
}

/// The one counter slot that changed between two snapshots, with its diff.
fn changed_slots(before: &[Counter], after: &[Counter]) -> Vec<(usize, Counter)> {
    before
        .iter()
        .zip(after)
        .enumerate()
        .filter(|(_, (before, after))| before != after)
        .map(|(index, (before, after))| {
            (
                index,
                Counter {
                    packets: after.packets - before.packets,
                    bytes: after.bytes - before.bytes,
                },
            )
        })
        .collect()
}

fn slot_name(index: usize) -> String {
    let action =
        Action::from_u32(index as u32 / xdpath_core::REASON_SLOTS).map_or("?", Action::name);
    let reason =
        Reason::from_u8((index as u32 % xdpath_core::REASON_SLOTS) as u8).map_or("?", Reason::name);
    format!("{action}/{reason}")
}

#[test]
fn kernel_and_native_match_the_table() {
    xdpath_lab::needs_root!();
    let mut failures = Vec::new();
    let mut kernel_runs = 0;
    for policy in [MalformedPolicy::Pass, MalformedPolicy::Drop] {
        let config = InterfaceConfig::new(policy);
        // The second policy's program is the first one, its maps put back.
        let mut program = Reused::take(config).expect("a fresh XDP program (needs root and BPF)");
        for fixture in fixtures() {
            let expected_action = fixture.expected_action(policy);
            let native = pipeline::process(
                &SlicePacket::new(&fixture.frame),
                &mut NativeTables::new(config),
            );
            let before = program.counters().expect("counters");
            let result = program.test_run(&fixture.frame);
            let after = program.counters().expect("counters");
            let changed = changed_slots(&before, &after);
            if fixture.frame.len() < ETH_HLEN {
                // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet
                // header (EINVAL): the kernel never sees them.
                assert!(
                    result.is_err(),
                    "{}: test_run took a {}-byte frame",
                    fixture.description,
                    fixture.frame.len()
                );
                assert!(
                    changed.is_empty(),
                    "{}: counters moved",
                    fixture.description
                );
                assert_eq!(native.reason, Reason::TruncatedEthernet);
                continue;
            }
            kernel_runs += 1;
            let code =
                result.unwrap_or_else(|error| panic!("{}: test_run: {error}", fixture.description));
            let kernel_action = Action::from_u32(code);
            let expected_slot = counter_index(expected_action, fixture.reason) as usize;
            let native_slot = counter_index(native.action, native.reason) as usize;
            let expected_change = vec![(
                expected_slot,
                Counter {
                    packets: 1,
                    bytes: fixture.frame.len() as u64,
                },
            )];
            if kernel_action != Some(expected_action)
                || changed != expected_change
                || native_slot != expected_slot
                || native.action != expected_action
            {
                failures.push(format!(
                    "{policy:?} {}: expected {}, kernel returned {code} and counted {:?}, native {}",
                    fixture.description,
                    slot_name(expected_slot),
                    changed.iter().map(|(slot, counter)| (slot_name(*slot), *counter)).collect::<Vec<_>>(),
                    slot_name(native_slot),
                ));
            }
        }
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
    assert!(kernel_runs >= 2 * 40);
}

fn key_of(frame: &[u8]) -> FlowKey {
    parse(&SlicePacket::new(frame))
        .unwrap_or_else(|reason| panic!("parse: {reason:?}"))
        .key
}

fn mapped(address: [u8; 4]) -> [u8; 16] {
    xdpath_core::parse::ipv4_mapped(address)
}

// Long: one block of assertions per frame shape, on the key it parses to.
#[test]
fn flow_keys() {
    let key = key_of(&build(v4(), tcp(40000, 443, SYN)));
    assert_eq!((key.source, key.destination), (mapped(A4), mapped(B4)));
    assert_eq!(
        (key.source_port, key.destination_port, key.tcp_flags),
        (40000, 443, SYN)
    );
    assert_eq!(
        (key.ip_version, key.protocol, key.ethertype),
        (4, protocol::TCP, 0x0800)
    );
    assert_eq!((key.vlan_count, key.fragment), (0, Fragment::None as u8));

    let key = key_of(&build_vlan(&[100, 200], v6(), udp(5353, 53)));
    assert_eq!(
        (key.vlan_count, key.vlan_outer, key.vlan_inner),
        (2, 100, 200)
    );
    assert_eq!(
        (key.ethertype, key.ip_version, key.protocol),
        (0x86dd, 6, protocol::UDP)
    );
    assert_eq!((key.source, key.destination), (doc_v6(1), doc_v6(2)));
    assert_eq!(
        (key.source_port, key.destination_port, key.tcp_flags),
        (5353, 53, 0)
    );

    let key = key_of(&build_vlan(&[4095], v4(), udp(1, 2)));
    assert_eq!(
        (key.vlan_count, key.vlan_outer, key.vlan_inner),
        (1, 4095, 0)
    );

    // ICMP: type << 8 | code in the destination port.
    let key = key_of(&build(v4(), Transport::EchoRequest));
    assert_eq!((key.source_port, key.destination_port), (0, 8 << 8));
    let key = key_of(&build(v6(), Transport::EchoRequest));
    assert_eq!(
        (key.protocol, key.destination_port),
        (protocol::ICMPV6, 128 << 8)
    );
    let unreachable = damaged(build(v4(), Transport::EchoRequest), |f| {
        f[V4_L4] = 3;
        f[V4_L4 + 1] = 4;
    });
    assert_eq!(key_of(&unreachable).destination_port, 3 << 8 | 4);

    // IPv4 fragments: the first has ports, later ones none.
    let dns = with_payload(v4(), udp(5353, 53), &[0; 12]);
    let first = key_of(&damaged(dns.clone(), |f| put16(f, V4 + 6, 0x2000)));
    assert_eq!(
        (first.fragment, first.source_port, first.destination_port),
        (Fragment::First as u8, 5353, 53)
    );
    let later = key_of(&damaged(dns, |f| put16(f, V4 + 6, 0x2000 | 185)));
    assert_eq!(
        (later.fragment, later.source_port, later.destination_port),
        (Fragment::Later as u8, 0, 0)
    );
    assert_eq!(later.protocol, protocol::UDP);

    // IPv6: the protocol after the chain, the fragment state.
    let chain = v6_chain(
        &[],
        &[
            Ext::HopByHop(8),
            Ext::Routing(24),
            Ext::Fragment(0, true),
            Ext::DestinationOptions(16),
        ],
        protocol::TCP,
        &tcp_bytes(40000, 22, PSH_ACK, 5),
    );
    let parsed = parse(&SlicePacket::new(&chain)).expect("well-formed");
    assert_eq!(parsed.l4_offset as usize, V6_L4 + 8 + 24 + 8 + 16);
    assert_eq!(parsed.payload_offset, parsed.l4_offset + 20);
    let key = parsed.key;
    assert_eq!(
        (key.protocol, key.fragment),
        (protocol::TCP, Fragment::First as u8)
    );
    assert_eq!(
        (key.source_port, key.destination_port, key.tcp_flags),
        (40000, 22, PSH_ACK)
    );

    let atomic = key_of(&v6_chain(
        &[],
        &[Ext::Fragment(0, false)],
        protocol::UDP,
        &udp_bytes(7, 9, 0),
    ));
    assert_eq!(
        (atomic.fragment, atomic.source_port, atomic.destination_port),
        (Fragment::None as u8, 7, 9)
    );

    let parsed = parse(&SlicePacket::new(&v6_chain(
        &[],
        &[Ext::Fragment(100, false)],
        protocol::UDP,
        &[1, 2, 3],
    )))
    .expect("well-formed");
    assert_eq!(
        (parsed.key.fragment, parsed.key.protocol),
        (Fragment::Later as u8, protocol::UDP)
    );
    assert_eq!(
        (
            parsed.key.source_port,
            parsed.l4_offset,
            parsed.payload_offset
        ),
        (0, 0, 0)
    );

    // Non-IP: the EtherType, no addresses.
    let key = key_of(&arp());
    assert_eq!(
        (key.ethertype, key.ip_version, key.source),
        (0x0806, 0, [0; 16])
    );
}
