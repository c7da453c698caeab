//! The load balancer through both builds: each frame runs through the
//! kernel (`BPF_PROG_TEST_RUN` on a fresh program whose maps hold the
//! balancer state) and through the native pipeline with the same state.
//! Katran-style fixture rows `{description, input, expected verdict,
//! expected output, expected connection-table effect}`:
//!
//! - verdict, reason (the kernel's from its counters) and output bytes must
//!   be equal in both builds;
//! - after every row the balancer state of both builds (the two connection
//!   tables, connection-table hits and misses, per-VIP and per-backend
//!   counters) must be equal, and must have changed exactly as the row
//!   says: a bare SYN places its flow in the new-flow table, any other
//!   packet in the established table, and a hit on the new-flow table by a
//!   packet past the SYN copies the entry to the established table;
//! - an encapsulated output is checked field by field (MACs, outer header,
//!   lengths, checksum, TTL, outer source and flow label and GUE source
//!   port from the flow hash, the backend the Maglev table picks, inner
//!   packet unchanged).
//!
//! Decapsulation on a backend is in `lb_decap_fixtures.rs`; the round trip
//! (the balancer's own output decapsulated) is here.
//!
//! Needs root and a kernel with BPF.

use std::collections::BTreeSet;
use xdpath_core::abi;

use aya::maps::{HashMap as BpfHashMap, Map, MapData, PerCpuArray};
use aya::Ebpf;
use xdpath::control::kernel::KernelMaps;
use xdpath::dataplane::LoadedProgram;
use xdpath::lb::install::CompiledLb;
use xdpath::lb::maglev::{build_table, MaglevBackend};
use xdpath_core::build::{doc_v6, FrameSpec, Network, Transport};
use xdpath_core::flood::FloodPlan;
use xdpath_core::lb::{
    flow_hash, mac_value, outer_source, Backend, Connection, ConnectionKey, LbConfig, Vip, VipKey,
    ENCAP_GUE, ENCAP_IPIP, LB_ENABLED, LB_FIXED_NEXT_HOP, MAX_CONNECTIONS, VIP_NO_CONNTRACK,
    VIP_SOURCE_HASH,
};
use xdpath_core::parse::ipv4_mapped;
use xdpath_core::stats::counter_index;
use xdpath_core::wire::checksum;
use xdpath_core::wire::tcp::{FLAG_ACK, FLAG_SYN};
use xdpath_core::{
    parse, pipeline, Action, FrameBuffer, InterfaceConfig, NativeTables, Reason, SlicePacket,
};

const VIP4: [u8; 4] = [203, 0, 113, 10];
const NO_BACKEND_VIP4: [u8; 4] = [203, 0, 113, 11];
/// IPv4 VIP with GUE (so that IPv4 goes into GUE too).
const GUE_VIP4: [u8; 4] = [203, 0, 113, 12];
/// IPv4 VIP without a connection table.
const STATELESS_VIP4: [u8; 4] = [203, 0, 113, 13];
const CLIENT4: [u8; 4] = [192, 0, 2, 1];
const ROUTER4: [u8; 4] = [198, 51, 100, 254];
const NEXT_HOP: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
const RING: u32 = 65_537;
const GUE_PORT: u16 = 6080;
/// VIP slots and backend slots the snapshots read.
const VIP_SLOTS: u32 = 8;
const BACKEND_SLOTS: u32 = 3;

fn vip6() -> [u8; 16] {
    doc_v6(0x10)
}

/// The all-ports, source-hashed IPv6 UDP VIP.
fn vip6_all() -> [u8; 16] {
    doc_v6(0x20)
}

/// IPv6 VIP with IPIP (so that IPv6 goes into IPIP too).
fn ipip_vip6() -> [u8; 16] {
    doc_v6(0x30)
}

fn client6() -> [u8; 16] {
    doc_v6(1)
}

fn router6() -> [u8; 16] {
    doc_v6(0xfe)
}

// ---- the balancer's state

fn backends() -> Vec<(u32, [u8; 16])> {
    vec![
        (0, ipv4_mapped([10, 0, 0, 1])),
        (1, ipv4_mapped([10, 0, 0, 2])),
        (2, doc_v6(0x33)),
    ]
}

fn vip_key(address: [u8; 16], port: u16, protocol: u8) -> VipKey {
    VipKey {
        address,
        port,
        protocol,
        reserved: [0; 5],
    }
}

fn vip(index: u32, ring: u32, flags: u8, encap: u8) -> Vip {
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
/// IPIP, no connection table.
fn vips() -> Vec<(VipKey, Vip)> {
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
    ]
}

/// A Maglev table over `backends()` with these weights (0 drains).
fn maglev(weights: [u32; 3]) -> Vec<u32> {
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

fn lb_config() -> LbConfig {
    let mut config = LbConfig {
        flags: LB_ENABLED | LB_FIXED_NEXT_HOP,
        source_v4_len: 96 + 16,
        source_v6_len: 64,
        next_hop_mac: mac_value(NEXT_HOP),
        ..LbConfig::default()
    };
    config.source_v4 = ipv4_mapped([172, 16, 0, 0]);
    config.source_v6 = doc_v6(0xff00);
    config
}

fn backend_entries() -> Vec<(u32, Backend)> {
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
                    reserved: [0; 3],
                },
            )
        })
        .collect()
}

/// The balancer with `table` as ring `ring` (the VIPs of ring 0 moved to
/// it), ring 2 empty.
fn state(ring: u32, table: Vec<u32>) -> CompiledLb {
    let mut vips = vips();
    for (_, vip) in &mut vips {
        if vip.ring == 0 {
            vip.ring = ring;
        }
    }
    CompiledLb {
        config: lb_config(),
        vips,
        rings: vec![(ring, table), (2, vec![u32::MAX; RING as usize])],
        backends: backend_entries(),
    }
}

// ---- frames

fn tcp4(source_port: u16, destination: [u8; 4]) -> Vec<u8> {
    FrameSpec::new(
        Network::V4(CLIENT4, destination),
        Transport::Tcp {
            source_port,
            destination_port: 80,
            flags: FLAG_SYN,
        },
    )
    .with_payload(b"GET / HTTP/1.1\r\n\r\n")
    .build()
}

/// A later segment (ACK) of the flow `tcp4(source_port, VIP4)` opens.
fn ack4(source_port: u16) -> Vec<u8> {
    FrameSpec::new(
        Network::V4(CLIENT4, VIP4),
        Transport::tcp(source_port, 80, FLAG_ACK),
    )
    .with_payload(b"GET / HTTP/1.1\r\n\r\n")
    .build()
}

fn tcp6(source_port: u16) -> Vec<u8> {
    FrameSpec::new(
        Network::V6(client6(), vip6()),
        Transport::Tcp {
            source_port,
            destination_port: 443,
            flags: FLAG_SYN,
        },
    )
    .build()
}

fn udp4(source: [u8; 4], port: u16) -> Vec<u8> {
    FrameSpec::new(
        Network::V4(source, VIP4),
        Transport::Udp {
            source_port: 5000,
            destination_port: port,
        },
    )
    .with_payload(&[7; 40])
    .build()
}

fn udp6(source: [u8; 16]) -> Vec<u8> {
    FrameSpec::new(Network::V6(source, vip6_all()), Transport::udp(5000, 5353))
        .with_payload(&[9; 30])
        .build()
}

/// What a VIP sent its client, as an ICMP error quotes it: the IP header
/// (its length the whole 1,400-byte packet's) and 8 transport bytes.
fn reply(network: Network, transport: Transport) -> Vec<u8> {
    let header = match network {
        Network::V4(..) => 20,
        Network::V6(..) => 40,
    };
    let frame = FrameSpec::new(network, transport)
        .with_payload(&[0; 1400])
        .build();
    frame[14..14 + header + 8].to_vec()
}

/// An ICMP error from a router to `destination` quoting `quoted`.
fn icmp4(destination: [u8; 4], kind: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    // Next-hop MTU 1400 (meaningful for "fragmentation needed" only).
    let mut message = vec![kind, code, 0, 0, 0, 0, 0x05, 0x78];
    message.extend_from_slice(quoted);
    FrameSpec::new(Network::V4(ROUTER4, destination), Transport::Other(1))
        .with_payload(&message)
        .build()
}

/// An ICMPv6 error from a router to `destination` quoting `quoted`.
fn icmp6(destination: [u8; 16], kind: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    // MTU 1280 (meaningful for "packet too big" only).
    let mut message = vec![kind, code, 0, 0, 0, 0, 0x05, 0x00];
    message.extend_from_slice(quoted);
    FrameSpec::new(Network::V6(router6(), destination), Transport::Other(58))
        .with_payload(&message)
        .build()
}

/// ICMP "fragmentation needed" (3/4) to VIP4 about its reply to
/// `client:client_port` from `vip_port`.
fn too_big4(client: [u8; 4], transport: Transport) -> Vec<u8> {
    icmp4(VIP4, 3, 4, &reply(Network::V4(VIP4, client), transport))
}

/// ICMPv6 "packet too big" (2/0) to `vip` about its reply to `client`.
fn too_big6(vip: [u8; 16], client: [u8; 16], transport: Transport) -> Vec<u8> {
    icmp6(vip, 2, 0, &reply(Network::V6(vip, client), transport))
}

/// An IPv4 frame made a fragment (MF, offset in 8-byte units), its header
/// checksum redone.
fn fragment4(mut frame: Vec<u8>, more: bool, offset: u16) -> Vec<u8> {
    let field = offset | if more { 0x2000 } else { 0 };
    frame[20..22].copy_from_slice(&field.to_be_bytes());
    frame[24..26].fill(0);
    let checksum = checksum::of_parts(&[&frame[14..34]]);
    frame[24..26].copy_from_slice(&checksum.to_be_bytes());
    frame
}

/// An IPv4 packet carrying `protocol` with `body` and no transport header
/// of its own (a later fragment's payload).
fn raw4(source: [u8; 4], protocol: u8, body: &[u8]) -> Vec<u8> {
    FrameSpec::new(Network::V4(source, VIP4), Transport::Other(protocol))
        .with_payload(body)
        .build()
}

/// An IPv6 packet with a fragment header (offset in 8-byte units) before
/// `next_header` and `body`.
fn fragment6(network: Network, next_header: u8, offset: u16, more: bool, body: &[u8]) -> Vec<u8> {
    let field = offset << 3 | u16::from(more);
    let mut payload = vec![next_header, 0];
    payload.extend_from_slice(&field.to_be_bytes());
    payload.extend_from_slice(&0x1234_5678_u32.to_be_bytes());
    payload.extend_from_slice(body);
    FrameSpec::new(network, Transport::Other(44))
        .with_payload(&payload)
        .build()
}

// ---- what the balancer should do with a frame

fn be16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

fn mapped(bytes: &[u8]) -> [u8; 16] {
    ipv4_mapped(bytes[..4].try_into().expect("4 bytes"))
}

/// A flow, client → VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tuple {
    source: [u8; 16],
    destination: [u8; 16],
    source_port: u16,
    destination_port: u16,
    protocol: u8,
}

impl Tuple {
    /// The connection-table key's bytes (`ConnectionKey`, host order).
    fn key_bytes(&self) -> Vec<u8> {
        let mut bytes = self.source.to_vec();
        bytes.extend_from_slice(&self.destination);
        bytes.extend_from_slice(&self.source_port.to_ne_bytes());
        bytes.extend_from_slice(&self.destination_port.to_ne_bytes());
        bytes.extend_from_slice(&[self.protocol, 0, 0, 0]);
        bytes
    }
}

/// The flow the balancer places a frame by: for ICMP "fragmentation
/// needed" and ICMPv6 "packet too big", the quoted header (the VIP's reply)
/// turned round; else the frame's own. Read here independently of the
/// data path's `quoted_flow`.
fn tuple_of(frame: &[u8]) -> Tuple {
    let parsed = parse(&SlicePacket::new(frame)).expect("a well-formed frame");
    let key = parsed.key;
    if !is_too_big(frame) {
        return Tuple {
            source: key.source,
            destination: key.destination,
            source_port: key.source_port,
            destination_port: key.destination_port,
            protocol: key.protocol,
        };
    }
    let quoted = &frame[usize::from(parsed.l4_offset) + 8..];
    let (source, destination, protocol, ports) = if quoted[0] >> 4 == 4 {
        let header = 4 * usize::from(quoted[0] & 0x0f);
        (
            mapped(&quoted[16..]),
            mapped(&quoted[12..]),
            quoted[9],
            &quoted[header..],
        )
    } else {
        (
            quoted[24..40].try_into().expect("16 bytes"),
            quoted[8..24].try_into().expect("16 bytes"),
            quoted[6],
            &quoted[40..],
        )
    };
    Tuple {
        source,
        destination,
        source_port: be16(&ports[2..]),
        destination_port: be16(ports),
        protocol,
    }
}

/// Whether `frame` is an ICMP "fragmentation needed" or ICMPv6 "packet too
/// big" (steered by the flow it quotes).
fn is_too_big(frame: &[u8]) -> bool {
    let key = parse(&SlicePacket::new(frame))
        .expect("a well-formed frame")
        .key;
    match (key.ip_version, key.protocol) {
        (4, 1) => key.destination_port == 3 << 8 | 4,
        (6, 58) => key.destination_port >> 8 == 2,
        _ => false,
    }
}

/// Whether `frame` is a bare TCP SYN (SYN without ACK): it places its flow
/// in the new-flow table, and does not copy it to the established one.
fn is_bare_syn(frame: &[u8]) -> bool {
    let key = parse(&SlicePacket::new(frame))
        .expect("a well-formed frame")
        .key;
    key.protocol == 6 && key.tcp_flags & (FLAG_SYN | FLAG_ACK) == FLAG_SYN
}

/// The VIP of a flow: its port's, else its all-ports one.
fn vip_of(tuple: &Tuple) -> Vip {
    let vips = vips();
    let find = |port: u16| {
        vips.iter()
            .find(|(key, _)| {
                key.address == tuple.destination
                    && key.port == port
                    && key.protocol == tuple.protocol
            })
            .map(|(_, vip)| *vip)
    };
    find(tuple.destination_port)
        .or_else(|| find(0))
        .expect("a flow to a VIP")
}

fn hash_of(tuple: &Tuple, vip: &Vip) -> u32 {
    flow_hash(
        &tuple.source,
        tuple.source_port,
        tuple.destination_port,
        tuple.protocol,
        vip.flags & VIP_SOURCE_HASH != 0,
    )
}

/// The backend `table` gives the flow of `frame`.
fn maglev_pick(table: &[u32], frame: &[u8]) -> [u8; 16] {
    let tuple = tuple_of(frame);
    let slot = hash_of(&tuple, &vip_of(&tuple)) % RING;
    let index = table[slot as usize];
    backends()[index as usize].1
}

/// The outer destination (the backend) of an encapsulated frame.
fn outer_destination(output: &[u8]) -> [u8; 16] {
    match be16(&output[12..]) {
        0x0800 => mapped(&output[30..]),
        _ => output[38..54].try_into().expect("16 bytes"),
    }
}

fn backend_index(address: [u8; 16]) -> usize {
    backends()
        .iter()
        .position(|(_, backend)| *backend == address)
        .expect("a backend")
}

/// Checks an encapsulated frame field by field and returns its backend.
/// The outer source, IPv6 flow label and GUE source port must come from
/// the flow's hash; the inner packet must be the input's IP packet, byte
/// for byte; the L2 header keeps the input's VLAN tags.
fn check_output(description: &str, input: &[u8], output: &[u8]) -> [u8; 16] {
    let l3 = usize::from(
        parse(&SlicePacket::new(input))
            .expect("a well-formed frame")
            .l3_offset,
    );
    let tuple = tuple_of(input);
    let vip = vip_of(&tuple);
    let hash = hash_of(&tuple, &vip);
    let inner = &input[l3..];
    let inner_ipv4 = inner[0] >> 4 == 4;
    let tos = if inner_ipv4 {
        inner[1]
    } else {
        inner[0] << 4 | inner[1] >> 4
    };
    let protocol = match (vip.encap, inner_ipv4) {
        (ENCAP_GUE, _) => 17,
        (_, true) => 4,
        (_, false) => 41,
    };
    assert_eq!(&output[..6], &NEXT_HOP, "{description}: next hop MAC");
    assert_eq!(&output[6..12], &input[..6], "{description}: our MAC");
    assert_eq!(
        &output[12..l3 - 2],
        &input[12..l3 - 2],
        "{description}: VLAN tags kept"
    );
    let outer = &output[l3..];
    let (mut at, backend) = match be16(&output[l3 - 2..]) {
        0x0800 => (20, check_outer_v4(description, outer, protocol, tos, hash)),
        0x86dd => (40, check_outer_v6(description, outer, protocol, tos, hash)),
        other => panic!("{description}: outer EtherType {other:#x}"),
    };
    assert!(
        backends().iter().any(|(_, address)| *address == backend),
        "{description}: outer destination is a backend"
    );
    if vip.encap == ENCAP_GUE {
        check_gue(description, &outer[at..], vip.gue_port, hash);
        at += 8;
    }
    assert_eq!(&outer[at..], inner, "{description}: inner packet unchanged");
    backend
}

/// The outer IPv4 header (`outer` runs to the frame's end); returns the
/// destination.
fn check_outer_v4(description: &str, outer: &[u8], protocol: u8, tos: u8, hash: u32) -> [u8; 16] {
    let header = &outer[..20];
    assert_eq!(header[0], 0x45, "{description}: IPv4, IHL 5");
    assert_eq!(header[1], tos, "{description}: TOS of the inner packet");
    assert_eq!(
        usize::from(be16(&header[2..])),
        outer.len(),
        "{description}: total length"
    );
    assert_eq!(&header[4..8], &[0; 4], "{description}: id 0, no flags");
    assert_eq!(header[8], 64, "{description}: TTL");
    assert_eq!(header[9], protocol, "{description}: protocol");
    assert_eq!(checksum::of(header), 0, "{description}: checksum");
    let config = lb_config();
    let source = outer_source(&config.source_v4, config.source_v4_len, hash);
    assert_eq!(&header[12..14], &[172, 16], "{description}: source prefix");
    assert_eq!(
        &header[12..16],
        &source[12..],
        "{description}: source host bits from the flow hash"
    );
    mapped(&header[16..])
}

/// The outer IPv6 header; returns the destination.
fn check_outer_v6(description: &str, outer: &[u8], protocol: u8, tos: u8, hash: u32) -> [u8; 16] {
    let header = &outer[..40];
    let first = u32::from_be_bytes(header[..4].try_into().expect("4 bytes"));
    assert_eq!(first >> 28, 6, "{description}: IPv6");
    assert_eq!((first >> 20) as u8, tos, "{description}: traffic class");
    assert_eq!(
        first & 0xf_ffff,
        hash & 0xf_ffff,
        "{description}: flow label from the flow hash"
    );
    assert_eq!(
        usize::from(be16(&header[4..])),
        outer.len() - 40,
        "{description}: payload length"
    );
    assert_eq!(header[6], protocol, "{description}: next header");
    assert_eq!(header[7], 64, "{description}: hop limit");
    let config = lb_config();
    let source = outer_source(&config.source_v6, config.source_v6_len, hash);
    assert_eq!(&header[8..16], &doc_v6(0xff00)[..8], "{description}: /64");
    assert_eq!(
        &header[8..24],
        &source,
        "{description}: source host bits from the flow hash"
    );
    header[24..40].try_into().expect("16 bytes")
}

/// The GUE UDP header (`udp` runs to the frame's end).
fn check_gue(description: &str, udp: &[u8], port: u16, hash: u32) {
    assert_eq!(
        be16(udp),
        0x8000 | (hash as u16 & 0x7fff),
        "{description}: ephemeral source port from the flow hash"
    );
    assert_eq!(be16(&udp[2..]), port, "{description}: GUE port");
    assert_eq!(
        usize::from(be16(&udp[4..])),
        udp.len(),
        "{description}: UDP length"
    );
    assert_eq!(be16(&udp[6..]), 0, "{description}: UDP checksum 0");
}

// ---- both builds

/// One frame's result, the same in both builds.
struct Ran {
    action: Action,
    reason: Reason,
    output: Vec<u8>,
}

/// The balancer's state: the established and the new-flow tables (key
/// bytes, backend, generation), hits and misses, `[packets, bytes, new
/// flows]` per VIP and per backend slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Snapshot {
    hits: u64,
    misses: u64,
    connections: BTreeSet<(Vec<u8>, u32, u32)>,
    new_connections: BTreeSet<(Vec<u8>, u32, u32)>,
    vips: Vec<[u64; 3]>,
    backends: Vec<[u64; 3]>,
}

fn bpf_map<'a>(ebpf: &'a Ebpf, name: &str) -> &'a Map {
    ebpf.map(name)
        .unwrap_or_else(|| panic!("no map {name} in the object"))
}

/// A per-CPU u64 slot summed over CPUs.
fn per_cpu_u64(ebpf: &Ebpf, name: &str, slot: u32) -> u64 {
    let array = PerCpuArray::<&MapData, u64>::try_from(bpf_map(ebpf, name)).expect("per-CPU u64");
    array.get(&slot, 0).expect("slot").iter().sum()
}

/// A per-CPU `LbCounter` (three u64: packets, bytes, new flows) summed.
fn per_cpu_counter(ebpf: &Ebpf, name: &str, slot: u32) -> [u64; 3] {
    let array =
        PerCpuArray::<&MapData, [u64; 3]>::try_from(bpf_map(ebpf, name)).expect("LbCounter");
    array
        .get(&slot, 0)
        .expect("slot")
        .iter()
        .fold([0; 3], |sum, cpu| {
            [sum[0] + cpu[0], sum[1] + cpu[1], sum[2] + cpu[2]]
        })
}

/// A connection table of the kernel's as (key bytes, backend, generation).
fn kernel_table(ebpf: &Ebpf, name: &str) -> BTreeSet<(Vec<u8>, u32, u32)> {
    // ConnectionKey is 40 bytes, Connection two u32.
    let table = BpfHashMap::<&MapData, [u8; 40], [u32; 2]>::try_from(bpf_map(ebpf, name))
        .unwrap_or_else(|error| panic!("{name}: {error}"));
    table
        .iter()
        .map(|entry| {
            let (key, value) = entry.expect("connection");
            (key.to_vec(), value[0], value[1])
        })
        .collect()
}

fn kernel_snapshot(ebpf: &Ebpf) -> Snapshot {
    Snapshot {
        hits: per_cpu_u64(ebpf, abi::map::CONN_STATS, 0),
        misses: per_cpu_u64(ebpf, abi::map::CONN_STATS, 1),
        connections: kernel_table(ebpf, abi::map::CONNECTIONS),
        new_connections: kernel_table(ebpf, abi::map::NEW_CONNECTIONS),
        vips: (0..VIP_SLOTS)
            .map(|slot| per_cpu_counter(ebpf, abi::map::VIP_STATS, slot))
            .collect(),
        backends: (0..BACKEND_SLOTS)
            .map(|slot| per_cpu_counter(ebpf, abi::map::BACKEND_STATS, slot))
            .collect(),
    }
}

/// A connection table of the native build's, as [`kernel_table`].
fn native_table(
    table: &std::collections::HashMap<ConnectionKey, Connection>,
) -> BTreeSet<(Vec<u8>, u32, u32)> {
    table
        .iter()
        .map(|(key, value)| {
            let tuple = Tuple {
                source: key.source,
                destination: key.destination,
                source_port: key.source_port,
                destination_port: key.destination_port,
                protocol: key.protocol,
            };
            assert_eq!(key.reserved, [0; 3], "reserved bytes of a connection key");
            (tuple.key_bytes(), value.backend, value.generation)
        })
        .collect()
}

fn native_snapshot(tables: &NativeTables) -> Snapshot {
    let counter = |stats: &std::collections::HashMap<u32, xdpath_core::lb::LbCounter>, slot| {
        stats
            .get(&slot)
            .map_or([0; 3], |c| [c.packets, c.bytes, c.new_flows])
    };
    Snapshot {
        hits: tables.lb.connection_stats[0],
        misses: tables.lb.connection_stats[1],
        connections: native_table(&tables.lb.connections),
        new_connections: native_table(&tables.lb.new_connections),
        vips: (0..VIP_SLOTS)
            .map(|slot| counter(&tables.lb.vip_stats, slot))
            .collect(),
        backends: (0..BACKEND_SLOTS)
            .map(|slot| counter(&tables.lb.backend_stats, slot))
            .collect(),
    }
}

/// The kernel program and the native tables, fed the same frames.
struct Builds {
    program: LoadedProgram,
    native: NativeTables,
}

impl Builds {
    /// A balancer with `table` as its Maglev ring.
    fn balancer(table: Vec<u32>) -> Self {
        let program = LoadedProgram::load(InterfaceConfig::default()).expect("load (needs root)");
        let mut builds = Self {
            program,
            native: NativeTables::default(),
        };
        builds.install(&state(0, table));
        builds
    }

    /// A backend decapsulating IPIP and GUE (to `GUE_PORT`) addressed to
    /// `local`.
    fn decapsulator(local: &[[u8; 16]]) -> Self {
        let config = InterfaceConfig::default().with_decap(true, GUE_PORT);
        let mut program = LoadedProgram::load(config).expect("load (needs root)");
        let map = program
            .ebpf_mut()
            .map_mut(abi::map::LOCAL_ADDRESSES)
            .expect(abi::map::LOCAL_ADDRESSES);
        let mut addresses = BpfHashMap::<&mut MapData, [u8; 16], u8>::try_from(map)
            .expect(abi::map::LOCAL_ADDRESSES);
        let mut native = NativeTables::new(config);
        for address in local {
            addresses.insert(address, 1, 0).expect("insert");
            native.lb.local_addresses.insert(*address);
        }
        Self { program, native }
    }

    fn install(&mut self, state: &CompiledLb) {
        let maps = KernelMaps::of_program(&self.program).expect("maps");
        state.install_kernel(&maps).expect("install");
        state.install_native(&mut self.native);
    }

    /// Runs `frame` through both builds: the action, the reason (the
    /// kernel's from the one counter slot it bumped) and the output bytes
    /// must agree.
    fn run(&mut self, description: &str, frame: &[u8]) -> Ran {
        let before = self.program.counters().expect("counters");
        let (code, output) = self.program.test_run_output(frame).expect("test run");
        let after = self.program.counters().expect("counters");
        let mut buffer = FrameBuffer::new(frame);
        let verdict = pipeline::process_frame(&mut buffer, &mut self.native);
        let (action, reason) = (verdict.outcome.action, verdict.outcome.reason);
        assert_eq!(
            code, action as u32,
            "{description}: kernel action (native: {action:?}, {reason:?})"
        );
        let bumped: Vec<usize> = (0..before.len())
            .filter(|&slot| before[slot] != after[slot])
            .collect();
        assert_eq!(
            bumped,
            vec![counter_index(action, reason) as usize],
            "{description}: kernel reason (native: {reason:?})"
        );
        assert_eq!(
            output,
            buffer.bytes(),
            "{description}: kernel and native output"
        );
        Ran {
            action,
            reason,
            output,
        }
    }

    /// The balancer state, equal in both builds.
    fn snapshot(&mut self, description: &str) -> Snapshot {
        let kernel = kernel_snapshot(self.program.ebpf_mut());
        let native = native_snapshot(&self.native);
        assert_eq!(kernel, native, "{description}: kernel and native state");
        native
    }
}

// ---- fixture rows

/// What a row's output must be.
#[derive(Clone, Copy, Debug)]
enum Output {
    /// Encapsulated (checked field by field) to the backend the Maglev
    /// table gives the flow.
    Encapsulated,
    /// Encapsulated (checked field by field) to row `n`'s backend.
    SameBackendAs(usize),
    /// Row `n`'s output, byte for byte (checked field by field too).
    SameAs(usize),
    /// The input, unchanged.
    Unchanged,
    /// None (dropped).
    Dropped,
}

/// What a row does to the connection table and the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    /// Not consulted: state as it was.
    Untouched,
    /// A miss placing the flow: one connection more, a new flow counted.
    NewFlow,
    /// A hit on the flow's connection: packets and bytes counted.
    Hit,
    /// An ICMP error of a flow the table does not hold: a miss, nothing
    /// recorded, packets and bytes counted but no new flow.
    IcmpMiss,
    /// A miss with no backend: nothing else.
    NoBackend,
    /// A VIP without a connection table: no lookup, nothing recorded;
    /// every frame is placed by the Maglev table and counted a new flow.
    Stateless,
}

struct Row {
    description: String,
    frame: Vec<u8>,
    action: Action,
    reason: Reason,
    output: Output,
    table: Table,
}

fn forwarded(description: impl Into<String>, frame: Vec<u8>, output: Output, table: Table) -> Row {
    Row {
        description: description.into(),
        frame,
        action: Action::Tx,
        reason: Reason::LbForwarded,
        output,
        table,
    }
}

fn passed(description: impl Into<String>, frame: Vec<u8>, reason: Reason) -> Row {
    Row {
        description: description.into(),
        frame,
        action: Action::Pass,
        reason,
        output: Output::Unchanged,
        table: Table::Untouched,
    }
}

fn dropped(description: impl Into<String>, frame: Vec<u8>, reason: Reason, table: Table) -> Row {
    Row {
        description: description.into(),
        frame,
        action: Action::Drop,
        reason,
        output: Output::Dropped,
        table,
    }
}

/// Rows, and where the basic ones are (for later rows to refer to).
#[derive(Default)]
struct Rows {
    rows: Vec<Row>,
    tcp4: Vec<usize>,
    tcp6: Vec<usize>,
    udp4: Vec<usize>,
    udp6: Vec<usize>,
}

impl Rows {
    fn add(&mut self, row: Row) -> usize {
        self.rows.push(row);
        self.rows.len() - 1
    }
}

const UDP4_SOURCES: [[u8; 4]; 3] = [[192, 0, 2, 7], [198, 51, 100, 9], [192, 0, 2, 200]];

fn udp6_sources() -> [[u8; 16]; 3] {
    [doc_v6(7), doc_v6(0x900), doc_v6(0xc8)]
}

/// New flows of every kind, and frames that are not for a VIP.
fn basic_rows() -> Rows {
    let mut rows = Rows::default();
    for port in 40000..=40005 {
        let row = forwarded(
            format!("ipv4 tcp to the IPIP VIP from port {port}"),
            tcp4(port, VIP4),
            Output::Encapsulated,
            Table::NewFlow,
        );
        let id = rows.add(row);
        rows.tcp4.push(id);
        let row = forwarded(
            format!("ipv6 tcp to the GUE VIP from port {port}"),
            tcp6(port),
            Output::Encapsulated,
            Table::NewFlow,
        );
        let id = rows.add(row);
        rows.tcp6.push(id);
    }
    for source in UDP4_SOURCES {
        let row = forwarded(
            format!("udp from {source:?} to the all-ports VIP"),
            udp4(source, 9999),
            Output::Encapsulated,
            Table::NewFlow,
        );
        let id = rows.add(row);
        rows.udp4.push(id);
    }
    for source in udp6_sources() {
        let row = forwarded(
            format!("ipv6 udp from {source:x?} to the all-ports GUE VIP"),
            udp6(source),
            Output::Encapsulated,
            Table::NewFlow,
        );
        let id = rows.add(row);
        rows.udp6.push(id);
    }
    for port in 40000..=40005 {
        let frame = FrameSpec::new(
            Network::V4(CLIENT4, GUE_VIP4),
            Transport::tcp(port, 443, FLAG_SYN),
        );
        rows.add(forwarded(
            format!("ipv4 tcp to the GUE VIP from port {port}"),
            frame.build(),
            Output::Encapsulated,
            Table::NewFlow,
        ));
        let frame = FrameSpec::new(
            Network::V6(client6(), ipip_vip6()),
            Transport::tcp(port, 80, FLAG_SYN),
        );
        rows.add(forwarded(
            format!("ipv6 tcp to the IPIP VIP from port {port}"),
            frame.with_payload(&[3; 10]).build(),
            Output::Encapsulated,
            Table::NewFlow,
        ));
    }
    let vlan = FrameSpec::new(
        Network::V4(CLIENT4, VIP4),
        Transport::tcp(40100, 80, FLAG_SYN),
    )
    .with_vlans(&[42])
    .build();
    rows.add(forwarded(
        "ipv4 tcp with an 802.1Q tag to the IPIP VIP",
        vlan,
        Output::Encapsulated,
        Table::NewFlow,
    ));
    let qinq = FrameSpec::new(
        Network::V6(client6(), vip6()),
        Transport::tcp(40100, 443, FLAG_SYN),
    )
    .with_vlans(&[42, 7])
    .build();
    rows.add(forwarded(
        "ipv6 tcp with two VLAN tags to the GUE VIP",
        qinq,
        Output::Encapsulated,
        Table::NewFlow,
    ));
    let other_port = FrameSpec::new(Network::V4(CLIENT4, VIP4), Transport::tcp(1, 81, FLAG_SYN));
    rows.add(passed(
        "tcp to a port the VIP does not serve",
        other_port.build(),
        Reason::Ipv4Tcp,
    ));
    rows.add(passed(
        "tcp to an address that is no VIP",
        tcp4(40000, [203, 0, 113, 99]),
        Reason::Ipv4Tcp,
    ));
    rows.add(dropped(
        "a VIP with no backend",
        tcp4(40000, NO_BACKEND_VIP4),
        Reason::LbNoBackend,
        Table::NoBackend,
    ));
    rows
}

/// A flow's later packets hit the connection table.
fn conntrack_rows(rows: &mut Rows) {
    let first = rows.tcp4[0];
    rows.add(forwarded(
        "the same ipv4 frame again: a hit, the same output",
        tcp4(40000, VIP4),
        Output::SameAs(first),
        Table::Hit,
    ));
    let ack = FrameSpec::new(
        Network::V6(client6(), vip6()),
        Transport::tcp(40002, 443, FLAG_ACK),
    )
    .with_payload(&[1; 100])
    .build();
    let first = rows.tcp6[2];
    rows.add(forwarded(
        "a later ipv6 segment of the flow from 40002: a hit",
        ack,
        Output::SameBackendAs(first),
        Table::Hit,
    ));
    let first = rows.tcp4[4];
    rows.add(forwarded(
        "the ACK of an ipv4 flow seen only as its SYN: a hit, copied to the established table",
        ack4(40004),
        Output::SameBackendAs(first),
        Table::Hit,
    ));
    rows.add(forwarded(
        "that flow's SYN again: a hit in the established table",
        tcp4(40004, VIP4),
        Output::SameAs(first),
        Table::Hit,
    ));
    rows.add(forwarded(
        "an ACK of a flow the tables do not hold: placed in the established table",
        ack4(40050),
        Output::Encapsulated,
        Table::NewFlow,
    ));
    let first = rows.udp4[1];
    rows.add(forwarded(
        "the udp flow from 198.51.100.9 again: a hit",
        udp4(UDP4_SOURCES[1], 9999),
        Output::SameAs(first),
        Table::Hit,
    ));
    let first = rows.udp4[1];
    rows.add(forwarded(
        "udp from 198.51.100.9 to another port: the client's entry, a hit",
        udp4(UDP4_SOURCES[1], 53),
        Output::SameBackendAs(first),
        Table::Hit,
    ));
    let first = rows.udp6[0];
    rows.add(forwarded(
        "the ipv6 udp flow from 2001:db8::7 again: a hit",
        udp6(udp6_sources()[0]),
        Output::SameAs(first),
        Table::Hit,
    ));
    let first = rows.add(forwarded(
        "tcp to the VIP without a connection table",
        tcp4(40000, STATELESS_VIP4),
        Output::Encapsulated,
        Table::Stateless,
    ));
    rows.add(forwarded(
        "the same frame again: still no connection table",
        tcp4(40000, STATELESS_VIP4),
        Output::SameAs(first),
        Table::Stateless,
    ));
}

/// ICMP too-big steering (mod.rs): sent to the backend of the flow it
/// quotes, never recorded as a flow of its own; other ICMP is not for a
/// VIP.
fn icmp_rows(rows: &mut Rows) {
    let quoted = Transport::tcp(80, 40001, FLAG_ACK);
    let established = rows.tcp4[1];
    rows.add(forwarded(
        "icmp frag-needed about the IPIP VIP's reply to 192.0.2.1:40001",
        too_big4(CLIENT4, quoted),
        Output::SameBackendAs(established),
        Table::Hit,
    ));
    let quoted = Transport::tcp(443, 40001, FLAG_ACK);
    let established = rows.tcp6[1];
    rows.add(forwarded(
        "icmpv6 too-big about the GUE VIP's reply to [2001:db8::1]:40001",
        too_big6(vip6(), client6(), quoted),
        Output::SameBackendAs(established),
        Table::Hit,
    ));
    // The quoted header with 4 bytes of options (IHL 6): the ports follow.
    let mut quoted = reply(
        Network::V4(VIP4, CLIENT4),
        Transport::tcp(80, 40003, FLAG_ACK),
    );
    quoted.splice(20..20, [1, 1, 1, 1]);
    quoted[0] = 0x46;
    let established = rows.tcp4[3];
    rows.add(forwarded(
        "icmp frag-needed quoting a header with IPv4 options (IHL 6)",
        icmp4(VIP4, 3, 4, &quoted),
        Output::SameBackendAs(established),
        Table::Hit,
    ));
    let established = rows.udp4[0];
    rows.add(forwarded(
        "icmp frag-needed about the all-ports VIP's udp reply to 192.0.2.7:5000",
        too_big4(UDP4_SOURCES[0], Transport::udp(9999, 5000)),
        Output::SameBackendAs(established),
        Table::Hit,
    ));
    let established = rows.udp6[1];
    rows.add(forwarded(
        "icmpv6 too-big about the all-ports GUE VIP's udp reply",
        too_big6(vip6_all(), udp6_sources()[1], Transport::udp(5353, 5000)),
        Output::SameBackendAs(established),
        Table::Hit,
    ));
    unknown_flow_icmp_rows(rows);
    unsteered_icmp_rows(rows);
}

/// Too-big for flows the table does not hold: balanced like the flow, not
/// recorded (the flow's first packet afterwards is a miss).
fn unknown_flow_icmp_rows(rows: &mut Rows) {
    let icmp = rows.add(forwarded(
        "icmp frag-needed about a flow the table does not hold (port 45000)",
        too_big4(CLIENT4, Transport::tcp(80, 45000, FLAG_ACK)),
        Output::Encapsulated,
        Table::IcmpMiss,
    ));
    rows.add(forwarded(
        "that flow's first packet afterwards: a miss, the same backend",
        tcp4(45000, VIP4),
        Output::SameBackendAs(icmp),
        Table::NewFlow,
    ));
    let icmp = rows.add(forwarded(
        "icmpv6 too-big about a flow the table does not hold (port 45000)",
        too_big6(vip6(), client6(), Transport::tcp(443, 45000, FLAG_ACK)),
        Output::Encapsulated,
        Table::IcmpMiss,
    ));
    rows.add(forwarded(
        "that ipv6 flow's first packet afterwards: a miss, the same backend",
        tcp6(45000),
        Output::SameBackendAs(icmp),
        Table::NewFlow,
    ));
    rows.add(dropped(
        "icmp frag-needed about the reply of a VIP with no backend",
        icmp4(
            NO_BACKEND_VIP4,
            3,
            4,
            &reply(
                Network::V4(NO_BACKEND_VIP4, CLIENT4),
                Transport::tcp(80, 40000, FLAG_ACK),
            ),
        ),
        Reason::LbNoBackend,
        Table::NoBackend,
    ));
}

/// ICMP that is not too-big about a VIP's flow goes to the stack as it is.
fn unsteered_icmp_rows(rows: &mut Rows) {
    rows.add(passed(
        "icmp frag-needed about a port the VIP does not serve",
        too_big4(CLIENT4, Transport::tcp(81, 40001, FLAG_ACK)),
        Reason::Ipv4Icmp,
    ));
    rows.add(passed(
        "icmpv6 too-big about a port the VIP does not serve",
        too_big6(vip6(), client6(), Transport::tcp(444, 40001, FLAG_ACK)),
        Reason::Ipv6Icmp,
    ));
    let quoted = reply(
        Network::V4(VIP4, CLIENT4),
        Transport::tcp(80, 40001, FLAG_ACK),
    );
    rows.add(passed(
        "icmp port-unreachable (3/3) about a served flow: only too-big is steered",
        icmp4(VIP4, 3, 3, &quoted),
        Reason::Ipv4Icmp,
    ));
    rows.add(passed(
        "icmp frag-needed whose quote stops before the ports",
        icmp4(VIP4, 3, 4, &quoted[..20]),
        Reason::Ipv4Icmp,
    ));
    let quoted = reply(
        Network::V6(vip6(), client6()),
        Transport::tcp(443, 40001, FLAG_ACK),
    );
    rows.add(passed(
        "icmpv6 destination-unreachable (1/4) about a served flow",
        icmp6(vip6(), 1, 4, &quoted),
        Reason::Ipv6Icmp,
    ));
    rows.add(passed(
        "icmpv6 too-big whose quote stops before the ports",
        icmp6(vip6(), 2, 0, &quoted[..40]),
        Reason::Ipv6Icmp,
    ));
    // Destination options (PadN) before the ICMPv6 header: the quote is
    // only looked for straight after the fixed header (stage.rs).
    let mut message = vec![58, 0, 1, 4, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0x05, 0x00];
    message.extend_from_slice(&quoted);
    let behind_options = FrameSpec::new(Network::V6(router6(), vip6()), Transport::Other(60))
        .with_payload(&message)
        .build();
    rows.add(passed(
        "icmpv6 too-big behind an extension header",
        behind_options,
        Reason::Ipv6Icmp,
    ));
}

/// The fragment policy (mod.rs): a VIP that hashes on ports drops the
/// fragments it sees (`lb-fragment`); later fragments carry no port, so
/// only an all-ports VIP sees them; a source-hashed VIP balances every
/// fragment (with the source's other flows).
fn fragment_rows(rows: &mut Rows) {
    rows.add(dropped(
        "ipv4 first fragment of tcp to the port VIP",
        fragment4(tcp4(46000, VIP4), true, 0),
        Reason::LbFragment,
        Table::Untouched,
    ));
    rows.add(passed(
        "ipv4 later fragment of tcp to the port VIP: no port, not the VIP's",
        fragment4(raw4(CLIENT4, 6, &[0xab; 64]), false, 185),
        Reason::Ipv4Tcp,
    ));
    let network = Network::V6(client6(), vip6());
    rows.add(dropped(
        "ipv6 first fragment of tcp to the port VIP",
        fragment6(network, 6, 0, true, &tcp6(46000)[54..]),
        Reason::LbFragment,
        Table::Untouched,
    ));
    rows.add(passed(
        "ipv6 later fragment of tcp to the port VIP: no port, not the VIP's",
        fragment6(network, 6, 185, false, &[0xab; 64]),
        Reason::Ipv6Tcp,
    ));
    rows.add(forwarded(
        "ipv6 atomic fragment (offset 0, M clear) to the port VIP: no fragment",
        fragment6(network, 6, 0, false, &tcp6(46001)[54..]),
        Output::Encapsulated,
        Table::NewFlow,
    ));
    let source = UDP4_SOURCES[0];
    let later = rows.add(forwarded(
        "ipv4 later fragment of udp from 192.0.2.7 to the all-ports VIP: the client's entry",
        fragment4(raw4(source, 17, &[0xcd; 64]), false, 185),
        Output::SameBackendAs(rows.udp4[0]),
        Table::Hit,
    ));
    rows.add(forwarded(
        "another later udp fragment from 192.0.2.7: a hit",
        fragment4(raw4(source, 17, &[0xef; 32]), true, 370),
        Output::SameBackendAs(later),
        Table::Hit,
    ));
    let network = Network::V6(udp6_sources()[2], vip6_all());
    rows.add(forwarded(
        "ipv6 later fragment of udp to the all-ports GUE VIP: the client's entry",
        fragment6(network, 17, 185, false, &[0xcd; 64]),
        Output::SameBackendAs(rows.udp6[2]),
        Table::Hit,
    ));
}

/// The state a row leaves, from the state before it and the backend its
/// output went to.
fn expected_state(row: &Row, before: &Snapshot, backend: Option<[u8; 16]>) -> Snapshot {
    let mut expected = before.clone();
    let mut count = |new_flow: u64| {
        let mut tuple = tuple_of(&row.frame);
        let vip_value = vip_of(&tuple);
        let vip = vip_value.index as usize;
        let backend = backend_index(backend.expect("an encapsulated output"));
        let bytes = row.frame.len() as u64;
        for counter in [&mut expected.vips[vip], &mut expected.backends[backend]] {
            counter[0] += 1;
            counter[1] += bytes;
            counter[2] += new_flow;
        }
        // A source-hashed VIP keeps one entry per client.
        if vip_value.flags & VIP_SOURCE_HASH != 0 {
            tuple.source_port = 0;
            tuple.destination_port = 0;
        }
        (tuple.key_bytes(), backend as u32, 1)
    };
    let opening = is_bare_syn(&row.frame);
    match row.table {
        Table::Untouched => {}
        Table::NewFlow => {
            let connection = count(1);
            expected.misses += 1;
            if opening {
                expected.new_connections.insert(connection);
            } else {
                expected.connections.insert(connection);
            }
        }
        Table::Hit => {
            let connection = count(0);
            expected.hits += 1;
            let established = before.connections.contains(&connection);
            assert!(
                established || before.new_connections.contains(&connection),
                "{}: a hit on the flow's own connection and backend",
                row.description
            );
            // Past its SYN, a flow found only in the new-flow table is
            // copied to the established one (an ICMP error is no packet of
            // the flow).
            if !established && !opening && !is_too_big(&row.frame) {
                expected.connections.insert(connection);
            }
        }
        Table::IcmpMiss => {
            count(0);
            expected.misses += 1;
        }
        Table::NoBackend => expected.misses += 1,
        Table::Stateless => {
            count(1);
        }
    }
    expected
}

/// Runs the rows in order on one balancer (Maglev table `table`); returns
/// the outputs.
fn check_rows(table: Vec<u32>, rows: &Rows) -> Vec<Vec<u8>> {
    let mut builds = Builds::balancer(table.clone());
    let mut outputs: Vec<Vec<u8>> = Vec::new();
    for row in &rows.rows {
        let description = row.description.as_str();
        let before = builds.snapshot(description);
        let ran = builds.run(description, &row.frame);
        assert_eq!(
            (ran.action, ran.reason),
            (row.action, row.reason),
            "{description}: verdict"
        );
        let backend = match row.output {
            Output::Encapsulated => {
                let backend = check_output(description, &row.frame, &ran.output);
                let pick = maglev_pick(&table, &row.frame);
                assert_eq!(backend, pick, "{description}: the Maglev table's backend");
                Some(backend)
            }
            Output::SameBackendAs(other) => {
                let backend = check_output(description, &row.frame, &ran.output);
                let expected = outer_destination(&outputs[other]);
                assert_eq!(backend, expected, "{description}: row {other}'s backend");
                Some(backend)
            }
            Output::SameAs(other) => {
                let backend = check_output(description, &row.frame, &ran.output);
                assert_eq!(
                    ran.output, outputs[other],
                    "{description}: row {other}'s output"
                );
                Some(backend)
            }
            Output::Unchanged => {
                assert_eq!(ran.output, row.frame, "{description}: unchanged");
                None
            }
            Output::Dropped => None,
        };
        let after = builds.snapshot(description);
        let expected = expected_state(row, &before, backend);
        assert_eq!(
            after, expected,
            "{description}: connection table and counters"
        );
        outputs.push(ran.output);
    }
    outputs
}

#[test]
fn kernel_and_native_balance_alike() {
    xdpath_lab::needs_root!();
    let rows = basic_rows();
    let outputs = check_rows(maglev([1, 1, 1]), &rows);
    // Every mix of outer family, inner family and encapsulation was seen.
    let mut mixes = BTreeSet::new();
    for (row, output) in rows.rows.iter().zip(&outputs) {
        if row.action == Action::Tx {
            let tuple = tuple_of(&row.frame);
            let outer_ipv4 = outer_destination(output)[..12] == ipv4_mapped([0; 4])[..12];
            let inner_ipv4 = tuple.source[..12] == ipv4_mapped([0; 4])[..12];
            mixes.insert((outer_ipv4, inner_ipv4, vip_of(&tuple).encap));
        }
    }
    assert_eq!(mixes.len(), 8, "every mix covered: {mixes:?}");
}

#[test]
fn connection_table_hits_and_misses() {
    xdpath_lab::needs_root!();
    let mut rows = basic_rows();
    conntrack_rows(&mut rows);
    check_rows(maglev([1, 1, 1]), &rows);
}

#[test]
fn icmp_too_big_goes_to_the_backend_of_the_flow_it_quotes() {
    xdpath_lab::needs_root!();
    let mut rows = basic_rows();
    icmp_rows(&mut rows);
    check_rows(maglev([1, 1, 1]), &rows);
}

#[test]
fn fragments_follow_the_documented_policy() {
    xdpath_lab::needs_root!();
    let mut rows = basic_rows();
    fragment_rows(&mut rows);
    check_rows(maglev([1, 1, 1]), &rows);
}

/// A real first fragment of a UDP datagram: the UDP length is the whole
/// datagram's, beyond the fragment. mod.rs: a source-hashed VIP balances
/// every fragment (here with the source's flow to the same port: a hit).
#[test]
fn a_first_ipv4_udp_fragment_reaches_a_source_hashed_vip() {
    xdpath_lab::needs_root!();
    let mut rows = basic_rows();
    let mut first = udp4(UDP4_SOURCES[2], 9999);
    // UDP length 48; this fragment keeps the header and 32 bytes (a
    // multiple of 8).
    first.truncate(14 + 20 + 8 + 32);
    first[16..18].copy_from_slice(&(20u16 + 8 + 32).to_be_bytes());
    let udp = rows.udp4[2];
    rows.add(forwarded(
        "ipv4 first fragment of udp from 192.0.2.200 to the all-ports VIP",
        fragment4(first, true, 0),
        Output::SameBackendAs(udp),
        Table::Hit,
    ));
    check_rows(maglev([1, 1, 1]), &rows);
}

/// The same over IPv6 (fragment header, M set, offset 0).
#[test]
fn a_first_ipv6_udp_fragment_reaches_a_source_hashed_vip() {
    xdpath_lab::needs_root!();
    let mut rows = basic_rows();
    let source = udp6_sources()[2];
    let full = udp6(source);
    // UDP length 38; this fragment keeps the header and 16 bytes.
    let network = Network::V6(source, vip6_all());
    let udp = rows.udp6[2];
    rows.add(forwarded(
        "ipv6 first fragment of udp to the all-ports GUE VIP",
        fragment6(network, 17, 0, true, &full[54..54 + 8 + 16]),
        Output::SameBackendAs(udp),
        Table::Hit,
    ));
    check_rows(maglev([1, 1, 1]), &rows);
}

// ---- counters, draining, the round trip

#[test]
fn hits_misses_and_lb_counters_in_both_builds() {
    xdpath_lab::needs_root!();
    let mut builds = Builds::balancer(maglev([1, 1, 1]));
    for (frame, vip) in [(tcp4(42000, VIP4), 0), (tcp6(42000), 1)] {
        let bytes = frame.len() as u64;
        let before = builds.snapshot("before");
        let first = builds.run("a flow's first frame", &frame);
        let backend = backend_index(outer_destination(&first.output));
        let after = builds.snapshot("after the first frame");
        assert_eq!(after.misses, before.misses + 1, "the first frame misses");
        assert_eq!(after.hits, before.hits, "the first frame misses");
        assert_eq!(after.vips[vip], [1, bytes, 1], "VIP counter");
        assert_eq!(after.backends[backend][2], before.backends[backend][2] + 1);
        builds.run("the flow's second frame", &frame);
        let again = builds.snapshot("after the second frame");
        assert_eq!(again.hits, after.hits + 1, "the second frame hits");
        assert_eq!(again.misses, after.misses, "the second frame hits");
        assert_eq!(again.vips[vip], [2, 2 * bytes, 1], "VIP counter");
        let delta: Vec<u64> = (0..3)
            .map(|field| again.backends[backend][field] - before.backends[backend][field])
            .collect();
        assert_eq!(delta, vec![2, 2 * bytes, 1], "backend counter");
    }
}

#[test]
fn connections_keep_their_backend_when_the_table_changes() {
    xdpath_lab::needs_root!();
    let mut builds = Builds::balancer(maglev([1, 1, 1]));
    let frame = tcp4(41000, VIP4);
    let before = builds.run("first", &frame).output;
    // A new table that sends everything to backend 1 (10.0.0.2), swapped in
    // by rewriting the VIPs to ring 1.
    builds.install(&state(1, vec![1; RING as usize]));
    let after = builds.run("established", &frame).output;
    assert_eq!(before, after, "an established flow keeps its backend");
    let new_flow = builds.run("new", &tcp4(41001, VIP4)).output;
    assert_eq!(
        &new_flow[30..34],
        &[10, 0, 0, 2],
        "a new flow follows the new table"
    );
}

#[test]
fn a_drained_backend_keeps_its_flows_and_gets_no_new_ones() {
    xdpath_lab::needs_root!();
    let full = maglev([1, 1, 1]);
    let mut builds = Builds::balancer(full.clone());
    let established: Vec<(Vec<u8>, Vec<u8>)> = (43000..43012)
        .flat_map(|port| [tcp4(port, VIP4), tcp6(port)])
        .map(|frame| {
            let output = builds.run("established", &frame).output;
            (frame, output)
        })
        .collect();
    let drained = backend_index(outer_destination(&established[0].1));
    let mut weights = [1; 3];
    weights[drained] = 0;
    let table = maglev(weights);
    assert!(!table.contains(&(drained as u32)), "drained: in no slot");
    // Still in BACKENDS (same generation): only the ring changes.
    builds.install(&state(1, table.clone()));
    for (frame, output) in &established {
        let before = builds.snapshot("established after the drain");
        let ran = builds.run("established after the drain", frame);
        assert_eq!(&ran.output, output, "an established flow keeps its backend");
        let after = builds.snapshot("established after the drain");
        assert_eq!(after.hits, before.hits + 1, "a connection-table hit");
    }
    let icmp = too_big4(CLIENT4, Transport::tcp(80, 43000, FLAG_ACK));
    let ran = builds.run("too-big for the drained backend's flow", &icmp);
    assert_eq!(
        outer_destination(&ran.output),
        outer_destination(&established[0].1),
        "too-big follows the flow to the drained backend"
    );
    let mut diverted = 0;
    for port in 44000..44064 {
        for frame in [tcp4(port, VIP4), tcp6(port)] {
            let ran = builds.run("a new flow after the drain", &frame);
            let backend = check_output("a new flow after the drain", &frame, &ran.output);
            assert_ne!(
                backend_index(backend),
                drained,
                "no new flow to a drained backend"
            );
            assert_eq!(backend, maglev_pick(&table, &frame), "the new table's pick");
            diverted += usize::from(backend_index(maglev_pick(&full, &frame)) == drained);
        }
    }
    assert!(
        diverted > 0,
        "some new flows would have gone to the drained backend"
    );
}

#[test]
fn decapsulating_the_balancers_output_gives_back_the_client_packet() {
    xdpath_lab::needs_root!();
    let mut rows = basic_rows();
    icmp_rows(&mut rows);
    fragment_rows(&mut rows);
    let mut balancer = Builds::balancer(maglev([1, 1, 1]));
    let local: Vec<[u8; 16]> = backends().iter().map(|(_, address)| *address).collect();
    let mut backend = Builds::decapsulator(&local);
    for row in &rows.rows {
        let description = row.description.as_str();
        let encapsulated = balancer.run(description, &row.frame);
        if encapsulated.action != Action::Tx {
            continue;
        }
        let ran = backend.run(description, &encapsulated.output);
        let reason = match vip_of(&tuple_of(&row.frame)).encap {
            ENCAP_GUE => Reason::DecapGue,
            _ => Reason::DecapIpip,
        };
        assert_eq!(
            (ran.action, ran.reason),
            (Action::Pass, reason),
            "{description}: decapsulated"
        );
        assert_eq!(
            &ran.output[..12],
            &encapsulated.output[..12],
            "{description}: the MACs it came with"
        );
        assert_eq!(
            &ran.output[12..],
            &row.frame[12..],
            "{description}: the client's tags, EtherType and IP packet"
        );
    }
}

/// The adaptive SYN flood of issue 14, item 14 (two bare SYNs per random
/// flow), with twice as many flows as the established table holds, evicts
/// no established flow in either build: after their backend is drained,
/// the flows' next segments still go to it.
#[test]
fn a_syn_flood_does_not_evict_established_flows() {
    xdpath_lab::needs_root!();
    let mut builds = Builds::balancer(maglev([1, 1, 1]));
    let established: Vec<(u16, usize)> = (50_000..50_064u16)
        .map(|port| {
            builds.run("a flow's SYN", &tcp4(port, VIP4));
            let ran = builds.run("its ACK", &ack4(port));
            (port, backend_index(outer_destination(&ran.output)))
        })
        .collect();
    let before = builds.snapshot("established flows");
    assert_eq!(before.connections.len(), established.len());
    let plan = FloodPlan {
        seed: 14,
        ..FloodPlan::default()
    };
    for flow in 0..2 * u64::from(MAX_CONNECTIONS) {
        let source = plan.source(flow);
        let syn = FrameSpec::new(
            Network::V4(source.address, VIP4),
            Transport::tcp(source.port, 80, FLAG_SYN),
        )
        .build();
        for _ in 0..2 {
            let code = builds.program.test_run(&syn).expect("test run");
            let native = pipeline::process_frame(&mut FrameBuffer::new(&syn), &mut builds.native);
            assert_eq!(
                (code, native.outcome.action),
                (Action::Tx as u32, Action::Tx),
                "flood flow {flow}"
            );
        }
    }
    let kernel = kernel_table(builds.program.ebpf_mut(), abi::map::CONNECTIONS);
    assert_eq!(kernel, before.connections, "the kernel's established table");
    let native = native_table(&builds.native.lb.connections);
    assert_eq!(native, before.connections, "the native established table");
    let drained = established[0].1;
    let mut weights = [1; 3];
    weights[drained] = 0;
    builds.install(&state(1, maglev(weights)));
    for (port, backend) in &established {
        let ran = builds.run(
            "an established flow after the flood and the drain",
            &ack4(*port),
        );
        assert_eq!(
            backend_index(outer_destination(&ran.output)),
            *backend,
            "the flow from port {port}"
        );
    }
}
