//! Decapsulation on a load balancer's backend, through both builds: a
//! program configured `with_decap(true, 6080)` whose `LOCAL_ADDRESSES`
//! hold 10.0.0.1 and 2001:db8::1, and the native pipeline with the same
//! state. Fixture rows `{description, input, expected verdict, expected
//! output}`: action, reason (the kernel's from its counters) and output
//! bytes must be equal in both builds and equal to the row's.
//!
//! Decapsulated: the output is the Ethernet header (same MACs, same VLAN
//! tags, the inner family's EtherType) and the inner packet byte for byte.
//! Anything else goes to the stack unchanged, with its class (or, for a
//! malformed outer header, the parser's reason under the default policy,
//! pass).
//!
//! Each test takes a program as freshly loaded from the binary's pool
//! (`xdpath_testing::reuse`): one load serves the tests that follow.
//!
//! Needs root and a kernel with BPF.

#[path = "lb_decap_fixtures/frames.rs"]
mod frames;

use aya::maps::{HashMap as BpfHashMap, MapData};
use xdpath_core::abi;
use xdpath_core::build::{doc_v6, FrameSpec, Network, Transport};
use xdpath_core::parse::ipv4_mapped;
use xdpath_core::stats::counter_index;
use xdpath_core::wire::tcp::FLAG_SYN;
use xdpath_core::{pipeline, Action, FrameBuffer, InterfaceConfig, NativeTables, Reason};
use xdpath_testing::differential::fix_ipv4_checksum;
use xdpath_testing::reuse::Reused;

use frames::*;

// ---- rows

struct Row {
    description: &'static str,
    frame: Vec<u8>,
    action: Action,
    reason: Reason,
    output: Vec<u8>,
}

fn stripped(description: &'static str, frame: Vec<u8>, reason: Reason, inner: &[u8]) -> Row {
    Row {
        description,
        output: decapsulated(&frame, 14, inner),
        frame,
        action: Action::Pass,
        reason,
    }
}

fn unchanged(description: &'static str, frame: Vec<u8>, reason: Reason) -> Row {
    Row {
        description,
        output: frame.clone(),
        frame,
        action: Action::Pass,
        reason,
    }
}

/// IPIP and GUE in every family mix, addressed to a local address.
fn decapsulated_rows() -> Vec<Row> {
    let (v4, v6) = (inner4(), inner6());
    vec![
        stripped("4in4", ipip4(LOCAL4, &v4), Reason::DecapIpip, &v4),
        stripped("6in4", ipip4(LOCAL4, &v6), Reason::DecapIpip, &v6),
        stripped("4in6", ipip6(local6(), &v4), Reason::DecapIpip, &v4),
        stripped("6in6", ipip6(local6(), &v6), Reason::DecapIpip, &v6),
        stripped(
            "gue over ipv4, ipv4 inside",
            gue4(LOCAL4, GUE_PORT, &v4),
            Reason::DecapGue,
            &v4,
        ),
        stripped(
            "gue over ipv4, ipv6 inside",
            gue4(LOCAL4, GUE_PORT, &v6),
            Reason::DecapGue,
            &v6,
        ),
        stripped(
            "gue over ipv6, ipv4 inside",
            gue6(local6(), GUE_PORT, &v4),
            Reason::DecapGue,
            &v4,
        ),
        stripped(
            "gue over ipv6, ipv6 inside",
            gue6(local6(), GUE_PORT, &v6),
            Reason::DecapGue,
            &v6,
        ),
        stripped(
            "4in4 with IPv4 options (IHL 6)",
            with_ipv4_options(ipip4(LOCAL4, &v4)),
            Reason::DecapIpip,
            &v4,
        ),
        // The inner packet is the stack's to check.
        stripped(
            "ipip whose inner packet is one byte",
            ipip4(LOCAL4, &[0x45]),
            Reason::DecapIpip,
            &[0x45],
        ),
    ]
}

/// With VLAN tags: kept, the EtherType after them rewritten.
fn tagged_rows() -> Vec<Row> {
    let (v4, v6) = (inner4(), inner6());
    let tagged = outer(Network::V4(BALANCER4, LOCAL4), Transport::Other(41), &v6)
        .with_vlans(&[42])
        .build();
    let qinq = outer(
        Network::V6(balancer6(), local6()),
        Transport::udp(0x8123, GUE_PORT),
        &v4,
    )
    .with_vlans(&[42, 7])
    .build();
    vec![
        Row {
            description: "6in4 with an 802.1Q tag",
            output: decapsulated(&tagged, 18, &v6),
            frame: tagged,
            action: Action::Pass,
            reason: Reason::DecapIpip,
        },
        Row {
            description: "gue over ipv6 with two VLAN tags",
            output: decapsulated(&qinq, 22, &v4),
            frame: qinq,
            action: Action::Pass,
            reason: Reason::DecapGue,
        },
    ]
}

/// Not addressed to this host, not the GUE port, not a tunnel: unchanged.
fn not_ours_rows() -> Vec<Row> {
    let (v4, v6) = (inner4(), inner6());
    let from_gue_port = outer(
        Network::V4(BALANCER4, LOCAL4),
        Transport::udp(GUE_PORT, 5000),
        &v4,
    );
    vec![
        unchanged("4in4 to 10.0.0.2", ipip4(OTHER4, &v4), Reason::Ipv4Other),
        unchanged(
            "6in6 to 2001:db8::2",
            ipip6(other6(), &v6),
            Reason::Ipv6Other,
        ),
        unchanged(
            "gue to 10.0.0.2",
            gue4(OTHER4, GUE_PORT, &v4),
            Reason::Ipv4Udp,
        ),
        unchanged(
            "gue over ipv6 to 2001:db8::2",
            gue6(other6(), GUE_PORT, &v6),
            Reason::Ipv6Udp,
        ),
        unchanged(
            "udp to 10.0.0.1:6081",
            gue4(LOCAL4, GUE_PORT + 1, &v4),
            Reason::Ipv4Udp,
        ),
        unchanged(
            "udp over ipv6 to [2001:db8::1]:6081",
            gue6(local6(), GUE_PORT + 1, &v6),
            Reason::Ipv6Udp,
        ),
        unchanged(
            "udp from port 6080 to 10.0.0.1:5000",
            from_gue_port.build(),
            Reason::Ipv4Udp,
        ),
        unchanged(
            "tcp to 10.0.0.1",
            FrameSpec::new(
                Network::V4(BALANCER4, LOCAL4),
                Transport::tcp(1, 80, FLAG_SYN),
            )
            .build(),
            Reason::Ipv4Tcp,
        ),
    ]
}

/// Tunnels to a local address that are not stripped (stage.rs): outer
/// fragments, IPv6 extension headers before the tunnel, no IP inside.
fn not_stripped_rows() -> Vec<Row> {
    let v4 = inner4();
    vec![
        unchanged(
            "4in6 behind a hop-by-hop header",
            ipip6_behind(0, &v4),
            Reason::Ipv6Other,
        ),
        unchanged(
            "4in6 in an ipv6 first fragment",
            ipip6_behind(44, &v4),
            Reason::Ipv6Other,
        ),
        unchanged(
            "4in4 in an ipv4 first fragment",
            ipv4_fragment(ipip4(LOCAL4, &v4), true, 0),
            Reason::Ipv4Other,
        ),
        unchanged(
            "4in4 in an ipv4 later fragment",
            ipv4_fragment(ipip4(LOCAL4, &v4), false, 185),
            Reason::Ipv4Other,
        ),
        unchanged(
            "ipip with nothing after the outer header",
            ipip4(LOCAL4, &[]),
            Reason::Ipv4Other,
        ),
        unchanged(
            "ipip whose inner version is 0",
            ipip4(LOCAL4, &[0; 24]),
            Reason::Ipv4Other,
        ),
        unchanged(
            "gue with an empty payload",
            gue4(LOCAL4, GUE_PORT, &[]),
            Reason::Ipv4Udp,
        ),
        unchanged(
            "gue variant 0 (a GUE header, version bits 00)",
            gue4(LOCAL4, GUE_PORT, &[0, 4, 0, 0, 0x45]),
            Reason::Ipv4Udp,
        ),
    ]
}

/// Truncated or inconsistent outer headers: the parser's reason, passed
/// (the default malformed policy), unchanged; no panic in either build.
fn truncated_rows() -> Vec<Row> {
    let (v4, v6) = (inner4(), inner6());
    let mut long_ipv4 = ipip4(LOCAL4, &v4);
    long_ipv4[16..18].copy_from_slice(&1500u16.to_be_bytes());
    fix_ipv4_checksum(&mut long_ipv4);
    let mut long_ipv6 = ipip6(local6(), &v6);
    long_ipv6[18..20].copy_from_slice(&1500u16.to_be_bytes());
    // An IPv4 packet claiming 4 bytes of UDP header.
    let mut short_udp = gue4(LOCAL4, GUE_PORT, &[]);
    short_udp.truncate(14 + 20 + 4);
    short_udp[16..18].copy_from_slice(&24u16.to_be_bytes());
    fix_ipv4_checksum(&mut short_udp);
    let mut long_udp = gue6(local6(), GUE_PORT, &v4);
    long_udp[58..60].copy_from_slice(&1500u16.to_be_bytes());
    vec![
        unchanged(
            "outer ipv4 header cut at 10 bytes",
            ipip4(LOCAL4, &v4)[..24].to_vec(),
            Reason::TruncatedIpv4,
        ),
        unchanged(
            "outer ipv4 total length beyond the frame",
            long_ipv4,
            Reason::Ipv4LengthBeyondFrame,
        ),
        unchanged(
            "outer ipv6 header cut at 30 bytes",
            ipip6(local6(), &v4)[..44].to_vec(),
            Reason::TruncatedIpv6,
        ),
        unchanged(
            "outer ipv6 payload length beyond the frame",
            long_ipv6,
            Reason::Ipv6LengthBeyondFrame,
        ),
        unchanged(
            "gue: udp header cut at 4 bytes",
            short_udp,
            Reason::TruncatedUdp,
        ),
        unchanged(
            "gue over ipv6: udp length beyond the packet",
            long_udp,
            Reason::BadUdpLength,
        ),
    ]
}

// ---- both builds

/// The kernel program (pooled, as freshly loaded) and the native tables
/// of a backend.
struct Builds {
    program: Reused,
    native: NativeTables,
}

impl Builds {
    fn new() -> Self {
        let config = InterfaceConfig::default().with_decap(true, GUE_PORT);
        let mut program = Reused::take(config).expect("a fresh program (needs root)");
        let map = program
            .ebpf_mut()
            .map_mut(abi::map::LOCAL_ADDRESSES)
            .expect(abi::map::LOCAL_ADDRESSES);
        let mut local = BpfHashMap::<&mut MapData, [u8; 16], u8>::try_from(map)
            .expect(abi::map::LOCAL_ADDRESSES);
        let mut native = NativeTables::new(config);
        for address in [ipv4_mapped(LOCAL4), local6()] {
            local.insert(address, 1, 0).expect("insert");
            native.lb.local_addresses.insert(address);
        }
        Self { program, native }
    }

    /// Runs a row in both builds: they must agree with each other and with
    /// the row.
    fn check(&mut self, row: &Row) {
        let description = row.description;
        let before = self.program.counters().expect("counters");
        let (code, output) = self.program.test_run_output(&row.frame).expect("test run");
        let after = self.program.counters().expect("counters");
        let mut buffer = FrameBuffer::new(&row.frame);
        let verdict = pipeline::process_frame(&mut buffer, &mut self.native);
        let outcome = verdict.outcome;
        assert_eq!(
            (outcome.action, outcome.reason),
            (row.action, row.reason),
            "{description}: native verdict"
        );
        assert_eq!(code, row.action as u32, "{description}: kernel action");
        let bumped: Vec<usize> = (0..before.len())
            .filter(|&slot| before[slot] != after[slot])
            .collect();
        let slot = counter_index(row.action, row.reason) as usize;
        assert_eq!(bumped, vec![slot], "{description}: kernel reason");
        assert_eq!(output, buffer.bytes(), "{description}: kernel and native");
        assert_eq!(output, row.output, "{description}: output");
    }
}

fn check_rows(rows: Vec<Row>) {
    let mut builds = Builds::new();
    for row in &rows {
        builds.check(row);
    }
}

#[test]
fn tunnels_to_a_local_address_are_stripped() {
    xdpath_lab::needs_root!();
    check_rows(decapsulated_rows());
}

#[test]
fn vlan_tags_are_kept() {
    xdpath_lab::needs_root!();
    check_rows(tagged_rows());
}

#[test]
fn frames_not_for_this_backend_pass_unchanged() {
    xdpath_lab::needs_root!();
    check_rows(not_ours_rows());
}

#[test]
fn tunnels_the_decapsulator_does_not_strip_pass_unchanged() {
    xdpath_lab::needs_root!();
    check_rows(not_stripped_rows());
}

#[test]
fn truncated_outer_headers_pass_with_the_parsers_reason() {
    xdpath_lab::needs_root!();
    check_rows(truncated_rows());
}

#[test]
fn without_decap_nothing_is_stripped() {
    xdpath_lab::needs_root!();
    let mut program = Reused::take(InterfaceConfig::default()).expect("a fresh program");
    let mut native = NativeTables::default();
    native.lb.local_addresses.insert(ipv4_mapped(LOCAL4));
    for frame in [ipip4(LOCAL4, &inner4()), gue4(LOCAL4, GUE_PORT, &inner6())] {
        let (code, output) = program.test_run_output(&frame).expect("test run");
        let mut buffer = FrameBuffer::new(&frame);
        let verdict = pipeline::process_frame(&mut buffer, &mut native);
        assert_eq!(code, Action::Pass as u32, "kernel: passed");
        assert_eq!(output, frame, "kernel: unchanged");
        assert_eq!(verdict.outcome.action, Action::Pass, "native: passed");
        assert_eq!(buffer.bytes(), &frame[..], "native: unchanged");
    }
}
