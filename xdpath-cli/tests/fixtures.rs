//! The fixture table: hand-made frames, each with the verdict and the reason
//! both builds must give it, run through the kernel (`BPF_PROG_TEST_RUN`,
//! reason read back from the counters) and through the native build, under
//! both malformed-frame policies.
//!
//! Needs root and a kernel with BPF (it loads the XDP program).

use xdpath::dataplane::LoadedProgram;
use xdpath_core::build::{doc_v6, FrameSpec, Network, Transport};
use xdpath_core::stats::counter_index;
use xdpath_core::wire::protocol;
use xdpath_core::{
    parse, pipeline, Action, Counter, FlowKey, Fragment, InterfaceConfig, MalformedPolicy,
    NativeTables, Reason, SlicePacket,
};

/// Ethernet header length; `BPF_PROG_TEST_RUN` refuses shorter frames.
const ETH_HLEN: usize = 14;

const A4: [u8; 4] = [192, 0, 2, 1];
const B4: [u8; 4] = [198, 51, 100, 2];

/// One row: a frame and what both builds must make of it. The verdict is
/// Pass under the default policy; under `MalformedPolicy::Drop` it is Drop
/// for exactly the malformed reasons.
struct Fixture {
    description: &'static str,
    frame: Vec<u8>,
    reason: Reason,
}

impl Fixture {
    fn expected_action(&self, policy: MalformedPolicy) -> Action {
        match policy {
            MalformedPolicy::Drop if self.reason.is_malformed() => Action::Drop,
            _ => Action::Pass,
        }
    }
}

fn row(description: &'static str, frame: Vec<u8>, reason: Reason) -> Fixture {
    Fixture {
        description,
        frame,
        reason,
    }
}

// ---------------------------------------------------------------- builders

fn v4() -> Network {
    Network::V4(A4, B4)
}

fn v6() -> Network {
    Network::V6(doc_v6(1), doc_v6(2))
}

fn tcp(source_port: u16, destination_port: u16, flags: u8) -> Transport {
    Transport::tcp(source_port, destination_port, flags)
}

fn udp(source_port: u16, destination_port: u16) -> Transport {
    Transport::udp(source_port, destination_port)
}

fn build(network: Network, transport: Transport) -> Vec<u8> {
    FrameSpec::new(network, transport).build()
}

fn build_vlan(vlans: &[u16], network: Network, transport: Transport) -> Vec<u8> {
    FrameSpec::new(network, transport).with_vlans(vlans).build()
}

fn with_payload(network: Network, transport: Transport, payload: &[u8]) -> Vec<u8> {
    FrameSpec::new(network, transport)
        .with_payload(payload)
        .build()
}

/// An Ethernet frame of any EtherType (no VLAN) and payload.
fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An ARP request (28 bytes) padded to the 60-byte minimum.
fn arp() -> Vec<u8> {
    let mut body = vec![0, 1, 8, 0, 6, 4, 0, 1];
    body.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
    body.extend_from_slice(&A4);
    body.extend_from_slice(&[0; 6]);
    body.extend_from_slice(&B4);
    body.resize(46, 0);
    ethernet(0x0806, &body)
}

/// Sets a big-endian u16 at `at`.
fn put16(frame: &mut [u8], at: usize, value: u16) {
    frame[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Applies `damage` to a frame.
fn damaged(mut frame: Vec<u8>, damage: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    damage(&mut frame);
    frame
}

/// A frame cut to `length` bytes.
fn cut(mut frame: Vec<u8>, length: usize) -> Vec<u8> {
    frame.truncate(length);
    frame
}

// IPv4 (no VLAN): header at 14, transport at 34.
const V4: usize = 14;
const V4_L4: usize = 34;
// IPv6 (no VLAN): header at 14, the first header after it at 54.
const V6: usize = 14;
const V6_L4: usize = 54;

/// Inserts four bytes of IPv4 options (NOPs) and fixes IHL and total length.
fn with_ipv4_options(frame: Vec<u8>) -> Vec<u8> {
    let mut out = frame[..V4_L4].to_vec();
    out.extend_from_slice(&[1, 1, 1, 1]);
    out.extend_from_slice(&frame[V4_L4..]);
    out[V4] = 0x46;
    let total = u16::from_be_bytes([out[V4 + 2], out[V4 + 3]]) + 4;
    put16(&mut out, V4 + 2, total);
    out
}

/// An IPv6 extension header for [`v6_chain`].
#[derive(Clone, Copy)]
enum Ext {
    HopByHop(usize),
    Routing(usize),
    DestinationOptions(usize),
    /// An AH of this many bytes (a multiple of 4, at least 12).
    Ah(usize),
    /// A fragment header: offset in 8-byte units, more-fragments flag.
    Fragment(u16, bool),
}

impl Ext {
    fn kind(self) -> u8 {
        match self {
            Self::HopByHop(_) => protocol::HOP_BY_HOP,
            Self::Routing(_) => protocol::ROUTING,
            Self::DestinationOptions(_) => protocol::DESTINATION_OPTIONS,
            Self::Ah(_) => protocol::AH,
            Self::Fragment(..) => protocol::FRAGMENT,
        }
    }

    fn bytes(self, next: u8) -> Vec<u8> {
        match self {
            Self::HopByHop(length) | Self::Routing(length) | Self::DestinationOptions(length) => {
                assert!(length >= 8 && length % 8 == 0 && length <= 2048);
                let mut bytes = vec![0u8; length];
                bytes[0] = next;
                bytes[1] = (length / 8 - 1) as u8;
                if matches!(self, Self::Routing(_)) {
                    bytes[2] = 4; // segment routing, segments left 0
                }
                bytes
            }
            Self::Ah(length) => {
                assert!(length >= 12 && length % 4 == 0);
                let mut bytes = vec![0u8; length];
                bytes[0] = next;
                bytes[1] = (length / 4 - 2) as u8;
                bytes[4..8].copy_from_slice(&0x100u32.to_be_bytes()); // SPI
                bytes[8..12].copy_from_slice(&1u32.to_be_bytes()); // sequence
                bytes
            }
            Self::Fragment(offset, more) => {
                let mut bytes = vec![next, 0, 0, 0, 0, 0, 0x12, 0x34];
                put16(&mut bytes, 2, offset << 3 | u16::from(more));
                bytes
            }
        }
    }
}

/// An IPv6 frame whose payload is `chain`, then `l4` (the bytes of header
/// `last`).
fn v6_chain(vlans: &[u16], chain: &[Ext], last: u8, l4: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (index, ext) in chain.iter().enumerate() {
        let next = chain
            .get(index + 1)
            .map_or(last, |following| following.kind());
        payload.extend_from_slice(&ext.bytes(next));
    }
    payload.extend_from_slice(l4);
    let first = chain.first().map_or(last, |ext| ext.kind());
    FrameSpec::new(v6(), Transport::Other(first))
        .with_vlans(vlans)
        .with_payload(&payload)
        .build()
}

/// A bare TCP header with a data offset in words.
fn tcp_bytes(source_port: u16, destination_port: u16, flags: u8, data_offset: u8) -> Vec<u8> {
    let mut bytes = vec![0u8; 20];
    put16(&mut bytes, 0, source_port);
    put16(&mut bytes, 2, destination_port);
    bytes[12] = data_offset << 4;
    bytes[13] = flags;
    bytes
}

/// A bare UDP header with the given length field and `payload` bytes.
fn udp_bytes(source_port: u16, destination_port: u16, payload: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; 8 + payload];
    put16(&mut bytes, 0, source_port);
    put16(&mut bytes, 2, destination_port);
    put16(&mut bytes, 4, (8 + payload) as u16);
    bytes
}

const SYN: u8 = 0x02;
const SYN_ACK: u8 = 0x12;
const PSH_ACK: u8 = 0x18;

// ------------------------------------------------------------------- table

fn fixtures() -> Vec<Fixture> {
    use Reason::*;
    let web = || build(v4(), tcp(40000, 443, SYN));
    let dns = || with_payload(v4(), udp(5353, 53), &[0xab; 12]);
    let dns6 = || with_payload(v6(), udp(5353, 53), &[0xab; 12]);
    let web6 = || build(v6(), tcp(40000, 443, SYN_ACK));
    vec![
        // Classes.
        row("ipv4 tcp syn", web(), Ipv4Tcp),
        row(
            "ipv4 tcp with payload",
            with_payload(v4(), tcp(1, 2, PSH_ACK), b"hello"),
            Ipv4Tcp,
        ),
        row(
            "ipv4 tcp with ip options (ihl 6)",
            with_ipv4_options(web()),
            Ipv4Tcp,
        ),
        row(
            "ipv4 tcp padded to 60 bytes (ethernet trailer)",
            damaged(web(), |f| f.resize(60, 0)),
            Ipv4Tcp,
        ),
        row("ipv4 udp", dns(), Ipv4Udp),
        row(
            "ipv4 icmp echo request",
            build(v4(), Transport::EchoRequest),
            Ipv4Icmp,
        ),
        row(
            "ipv4 gre",
            with_payload(v4(), Transport::Other(protocol::GRE), &[0; 4]),
            Ipv4Other,
        ),
        row(
            "ipv4 esp",
            with_payload(v4(), Transport::Other(protocol::ESP), &[0; 16]),
            Ipv4Other,
        ),
        row(
            "ipv4 carrying icmpv6's number",
            with_payload(v4(), Transport::Other(protocol::ICMPV6), &[0; 8]),
            Ipv4Other,
        ),
        row("ipv6 tcp syn-ack", web6(), Ipv6Tcp),
        row("ipv6 udp", dns6(), Ipv6Udp),
        row(
            "ipv6 icmpv6 echo request",
            build(v6(), Transport::EchoRequest),
            Ipv6Icmp,
        ),
        row(
            "ipv6 no next header",
            build(v6(), Transport::Other(protocol::NO_NEXT_HEADER)),
            Ipv6Other,
        ),
        row(
            "ipv6 carrying icmp(v4)'s number",
            with_payload(v6(), Transport::Other(protocol::ICMP), &[8, 0, 0, 0]),
            Ipv6Other,
        ),
        row("arp request", arp(), NonIp),
        row("lldp", ethernet(0x88cc, &[0; 46]), NonIp),
        row(
            "bare ethernet header, ipx ethertype",
            ethernet(0x8137, &[]),
            NonIp,
        ),
        // VLANs.
        row(
            "802.1q vlan 100, ipv4 udp",
            build_vlan(&[100], v4(), udp(1000, 2000)),
            Ipv4Udp,
        ),
        row(
            "qinq 100/200, ipv6 tcp",
            build_vlan(&[100, 200], v6(), tcp(1, 2, SYN)),
            Ipv6Tcp,
        ),
        row(
            "legacy qinq 0x9100 outer tag, ipv4 tcp",
            damaged(build_vlan(&[7, 8], v4(), tcp(1, 2, SYN)), |f| {
                put16(f, 12, 0x9100)
            }),
            Ipv4Tcp,
        ),
        row(
            "vlan arp",
            damaged(arp(), |f| f.splice(12..12, [0x81, 0, 0, 5]).for_each(drop)),
            NonIp,
        ),
        // IPv4 fragments.
        row(
            "ipv4 first fragment (mf, offset 0), udp",
            damaged(dns(), |f| put16(f, V4 + 6, 0x2000)),
            Ipv4Udp,
        ),
        row(
            "ipv4 later fragment (offset 185), udp: no l4 header",
            damaged(dns(), |f| put16(f, V4 + 6, 185)),
            Ipv4Udp,
        ),
        row(
            "ipv4 last fragment with 4 bytes of tcp payload (would be truncated tcp)",
            damaged(
                with_payload(v4(), Transport::Other(protocol::TCP), &[1, 2, 3, 4]),
                |f| put16(f, V4 + 6, 100),
            ),
            Ipv4Tcp,
        ),
        // IPv6 extension headers.
        row(
            "ipv6 hop-by-hop + routing + fragment (first) + dest-options, tcp",
            v6_chain(
                &[],
                &[
                    Ext::HopByHop(8),
                    Ext::Routing(24),
                    Ext::Fragment(0, true),
                    Ext::DestinationOptions(16),
                ],
                protocol::TCP,
                &tcp_bytes(40000, 22, SYN, 5),
            ),
            Ipv6Tcp,
        ),
        row(
            "ipv6 later fragment, udp: no l4 header",
            v6_chain(&[], &[Ext::Fragment(100, false)], protocol::UDP, &[1, 2, 3]),
            Ipv6Udp,
        ),
        row(
            "ipv6 later fragment, then what looks like an extension header",
            v6_chain(
                &[],
                &[Ext::Fragment(1, true)],
                protocol::HOP_BY_HOP,
                &[0; 8],
            ),
            Ipv6Other,
        ),
        row(
            "ipv6 atomic fragment (offset 0, no mf), udp",
            v6_chain(
                &[],
                &[Ext::Fragment(0, false)],
                protocol::UDP,
                &udp_bytes(7, 9, 0),
            ),
            Ipv6Udp,
        ),
        row(
            "ipv6 ah, tcp",
            v6_chain(&[], &[Ext::Ah(24)], protocol::TCP, &tcp_bytes(1, 2, SYN, 5)),
            Ipv6Tcp,
        ),
        row(
            "ipv6 ah, esp",
            v6_chain(&[], &[Ext::Ah(16)], protocol::ESP, &[0; 16]),
            Ipv6Other,
        ),
        row(
            "ipv6 8 extension headers (the most walked), udp",
            v6_chain(
                &[],
                &[Ext::DestinationOptions(8); 8],
                protocol::UDP,
                &udp_bytes(1, 2, 0),
            ),
            Ipv6Udp,
        ),
        row(
            "ipv6 9 extension headers",
            v6_chain(
                &[],
                &[Ext::DestinationOptions(8); 9],
                protocol::UDP,
                &udp_bytes(1, 2, 0),
            ),
            TooManyIpv6Extensions,
        ),
        row(
            "ipv6 8 extension headers then a fragment header",
            v6_chain(
                &[],
                &[
                    [Ext::HopByHop(8)].as_slice(),
                    &[Ext::DestinationOptions(8); 7],
                    &[Ext::Fragment(0, true)],
                ]
                .concat(),
                protocol::UDP,
                &udp_bytes(1, 2, 0),
            ),
            TooManyIpv6Extensions,
        ),
        row(
            "ipv6 extension chain: tcp at offset 1022 (just inside the bound)",
            v6_chain(
                &[],
                &[Ext::DestinationOptions(968)],
                protocol::TCP,
                &tcp_bytes(1, 2, SYN, 5),
            ),
            Ipv6Tcp,
        ),
        row(
            "vlan ipv6 extension chain: tcp at offset 1026 (just beyond the bound)",
            v6_chain(
                &[9],
                &[Ext::DestinationOptions(968)],
                protocol::TCP,
                &tcp_bytes(1, 2, SYN, 5),
            ),
            HeadersTooLong,
        ),
        row(
            "ipv6 2 KiB dest-options then an extension header beyond 1024",
            v6_chain(
                &[],
                &[Ext::DestinationOptions(2048), Ext::HopByHop(8)],
                protocol::UDP,
                &udp_bytes(1, 2, 0),
            ),
            HeadersTooLong,
        ),
        row(
            "ipv6 big dest-options chain: udp beyond 1024",
            v6_chain(
                &[],
                &[Ext::DestinationOptions(504), Ext::DestinationOptions(504)],
                protocol::UDP,
                &udp_bytes(1, 2, 0),
            ),
            HeadersTooLong,
        ),
        row(
            "ipv6 fragment header at 1022: a later fragment's payload beyond 1024 is not read",
            v6_chain(
                &[],
                &[
                    Ext::DestinationOptions(504),
                    Ext::DestinationOptions(464),
                    Ext::Fragment(3, true),
                ],
                protocol::UDP,
                &[0; 4],
            ),
            Ipv6Udp,
        ),
        // Malformed: Ethernet and VLAN.
        row("empty frame", Vec::new(), TruncatedEthernet),
        row("13-byte frame", cut(web(), 13), TruncatedEthernet),
        row(
            "vlan tag cut short",
            cut(build_vlan(&[100], v4(), udp(1, 2)), 16),
            TruncatedVlan,
        ),
        row(
            "qinq inner tag cut short",
            cut(build_vlan(&[100, 200], v4(), udp(1, 2)), 20),
            TruncatedVlan,
        ),
        row(
            "three vlan tags",
            damaged(build_vlan(&[1, 2], v4(), udp(1, 2)), |f| {
                f.splice(16..16, [0x81, 0, 0, 3]).for_each(drop)
            }),
            TooManyVlanTags,
        ),
        // Malformed: IPv4.
        row("ipv4 header cut short", cut(web(), V4 + 19), TruncatedIpv4),
        row(
            "vlan, ipv4 header cut short",
            cut(build_vlan(&[5], v4(), udp(1, 2)), 18 + 12),
            TruncatedIpv4,
        ),
        row(
            "ipv4 ethertype, version 6",
            damaged(web(), |f| f[V4] = 0x65),
            BadIpv4Version,
        ),
        row(
            "ipv4 ihl 4 (16 bytes)",
            damaged(web(), |f| f[V4] = 0x44),
            BadIpv4HeaderLength,
        ),
        row(
            "ipv4 ihl 0",
            damaged(web(), |f| f[V4] = 0x40),
            BadIpv4HeaderLength,
        ),
        row(
            "ipv4 ihl 15 beyond total length 40",
            damaged(web(), |f| f[V4] = 0x4f),
            Ipv4LengthBelowHeader,
        ),
        row(
            "ipv4 total length 10, below the header",
            damaged(web(), |f| put16(f, V4 + 2, 10)),
            Ipv4LengthBelowHeader,
        ),
        row(
            "ipv4 total length beyond the frame",
            damaged(web(), |f| put16(f, V4 + 2, 41)),
            Ipv4LengthBeyondFrame,
        ),
        row(
            "ipv4 frame cut inside the payload",
            cut(dns(), 50),
            Ipv4LengthBeyondFrame,
        ),
        // Malformed: IPv6.
        row("ipv6 header cut short", cut(web6(), V6 + 39), TruncatedIpv6),
        row(
            "ipv6 ethertype, version 4",
            damaged(web6(), |f| f[V6] = 0x40),
            BadIpv6Version,
        ),
        row(
            "ipv6 payload length beyond the frame",
            damaged(web6(), |f| put16(f, V6 + 4, 21)),
            Ipv6LengthBeyondFrame,
        ),
        row(
            "ipv6 hop-by-hop longer than the payload",
            // The header claims 16 bytes; the payload has 8.
            damaged(
                v6_chain(&[], &[Ext::HopByHop(8)], protocol::UDP, &[]),
                |f| f[V6_L4 + 1] = 1,
            ),
            TruncatedIpv6Extension,
        ),
        row(
            "ipv6 one byte of hop-by-hop",
            with_payload(v6(), Transport::Other(protocol::HOP_BY_HOP), &[6]),
            TruncatedIpv6Extension,
        ),
        row(
            "ipv6 fragment header cut to 4 bytes",
            with_payload(v6(), Transport::Other(protocol::FRAGMENT), &[17, 0, 0, 1]),
            TruncatedIpv6Extension,
        ),
        row(
            "ipv6 ah longer than the payload",
            damaged(v6_chain(&[], &[Ext::Ah(12)], protocol::TCP, &[]), |f| {
                f[V6_L4 + 1] = 4
            }),
            TruncatedIpv6Extension,
        ),
        // Malformed: transport.
        row(
            "ipv4 tcp cut to 10 bytes",
            damaged(cut(web(), V4_L4 + 10), |f| put16(f, V4 + 2, 30)),
            TruncatedTcp,
        ),
        row(
            "ipv4 tcp beyond the ip total length (bytes present as padding)",
            damaged(web(), |f| put16(f, V4 + 2, 30)),
            TruncatedTcp,
        ),
        row(
            "ipv6 tcp cut to 19 bytes",
            damaged(cut(web6(), V6_L4 + 19), |f| put16(f, V6 + 4, 19)),
            TruncatedTcp,
        ),
        row(
            "tcp data offset 4",
            damaged(web(), |f| f[V4_L4 + 12] = 4 << 4),
            BadTcpDataOffset,
        ),
        row(
            "tcp data offset 0",
            damaged(web6(), |f| f[V6_L4 + 12] = 0),
            BadTcpDataOffset,
        ),
        row(
            "tcp data offset 15 beyond the payload",
            damaged(web(), |f| f[V4_L4 + 12] = 15 << 4),
            BadTcpDataOffset,
        ),
        row(
            "ipv4 udp cut to 7 bytes",
            damaged(cut(dns(), V4_L4 + 7), |f| put16(f, V4 + 2, 27)),
            TruncatedUdp,
        ),
        row(
            "ipv6 udp cut to 4 bytes",
            damaged(cut(dns6(), V6_L4 + 4), |f| put16(f, V6 + 4, 4)),
            TruncatedUdp,
        ),
        row(
            "udp length 7",
            damaged(dns(), |f| put16(f, V4_L4 + 4, 7)),
            BadUdpLength,
        ),
        row(
            "udp length beyond the ip payload",
            damaged(dns6(), |f| put16(f, V6_L4 + 4, 21)),
            BadUdpLength,
        ),
        row(
            "icmp cut to 7 bytes",
            damaged(cut(build(v4(), Transport::EchoRequest), V4_L4 + 7), |f| {
                put16(f, V4 + 2, 27)
            }),
            TruncatedIcmp,
        ),
        row(
            "icmpv6 cut to 3 bytes",
            damaged(cut(build(v6(), Transport::EchoRequest), V6_L4 + 3), |f| {
                put16(f, V6 + 4, 3)
            }),
            TruncatedIcmpv6,
        ),
        row(
            "ipv6 dest-options then icmpv6 cut to 2 bytes",
            v6_chain(
                &[],
                &[Ext::DestinationOptions(8)],
                protocol::ICMPV6,
                &[128, 0],
            ),
            TruncatedIcmpv6,
        ),
    ]
}

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
        let mut program =
            LoadedProgram::load(config).expect("load the XDP program (needs root and BPF)");
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
