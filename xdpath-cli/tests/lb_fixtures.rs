//! The load balancer through both builds: each frame runs through the
//! kernel (`BPF_PROG_TEST_RUN` on a program as freshly loaded, from the
//! binary's pool with every map put back, see `xdpath_testing::reuse`,
//! whose maps hold the balancer state) and through the native pipeline with the same state.
//! Katran-style fixture rows `{description, input, expected verdict,
//! expected output, expected connection-table effect}`:
//!
//! - verdict, reason (the kernel's from its counters) and output bytes must
//!   be equal in both builds;
//! - after every row the balancer state of both builds (the two connection
//!   tables, connection-table hits and misses, per-VIP and per-backend
//!   counters) must be equal, and must have changed exactly as the row
//!   says: a bare SYN or a first datagram places its flow in the new-flow
//!   table, a TCP segment past the SYN in the established table, and a hit
//!   on the new-flow table by a frame that is not a bare SYN copies the
//!   entry to the established table;
//! - an encapsulated output is checked field by field (MACs, outer header,
//!   lengths, checksum, TTL, outer source and flow label and GUE source
//!   port from the flow hash, the backend the Maglev table picks, inner
//!   packet unchanged).
//!
//! Decapsulation on a backend is in `lb_decap_fixtures.rs`; the round trip
//! (the balancer's own output decapsulated) is here.
//!
//! Needs root and a kernel with BPF.

#[path = "lb_fixtures/allow_rows.rs"]
mod allow_rows;
#[path = "lb_fixtures/builds.rs"]
mod builds;
#[path = "lb_fixtures/check.rs"]
mod check;
#[path = "lb_fixtures/frames.rs"]
mod frames;
#[path = "lb_fixtures/icmp_rows.rs"]
mod icmp_rows;
#[path = "lb_fixtures/outputs.rs"]
mod outputs;
#[path = "lb_fixtures/rows.rs"]
mod rows;
#[path = "lb_fixtures/sample_rows.rs"]
mod sample_rows;
#[path = "lb_fixtures/state.rs"]
mod state;
#[path = "lb_fixtures/too_big_rows.rs"]
mod too_big_rows;

use std::collections::BTreeSet;
use xdpath_core::abi;

use aya::maps::{HashMap as BpfHashMap, Map, MapData, PerCpuArray};
use aya::Ebpf;
use xdpath::control::kernel::KernelMaps;
use xdpath::lb::install::CompiledLb;
use xdpath::lb::maglev::{build_table, MaglevBackend};
use xdpath_core::build::{doc_v6, FrameSpec, Network, Transport};
use xdpath_core::flood::FloodPlan;
use xdpath_core::lb::{
    encap_hash, flow_hash, mac_value, outer_source, vip_drop_index, AllowKey, Backend, Connection,
    ConnectionKey, LbConfig, NewFlowPlace, NewFlowSlot, Vip, VipKey, BACKEND_OUT_OF_RING,
    ENCAP_GUE, ENCAP_IPIP, LB_ENABLED, LB_ESTABLISHED_BY_SLOT, LB_FIXED_NEXT_HOP, MAX_CONNECTIONS,
    NEW_FLOW_SEED, NEW_FLOW_SLOTS, VIP_ALLOW_LIST, VIP_DROP_REASONS, VIP_DROP_SLOTS,
    VIP_NO_CONNTRACK, VIP_SAMPLED, VIP_SOURCE_HASH,
};
use xdpath_core::parse::ipv4_mapped;
use xdpath_core::stats::counter_index;
use xdpath_core::wire::checksum;
use xdpath_core::wire::tcp::{FLAG_ACK, FLAG_SYN};
use xdpath_core::{
    parse, pipeline, Action, FrameBuffer, InterfaceConfig, NativeTables, Reason, SlicePacket,
};
use xdpath_testing::reuse::Reused;

use allow_rows::*;
use builds::*;
use check::*;
use frames::*;
use icmp_rows::*;
use outputs::*;
use rows::*;
use state::*;

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
fn allow_lists_admit_their_sources_and_drop_the_others() {
    xdpath_lab::needs_root!();
    let mut rows = basic_rows();
    allow_rows(&mut rows);
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
    // Each flow's SYN, then its ACK (the flow established); the ACK again
    // after the drain.
    let ack6 = |port| {
        FrameSpec::new(
            Network::V6(client6(), vip6()),
            Transport::tcp(port, 443, FLAG_ACK),
        )
        .build()
    };
    let established: Vec<(Vec<u8>, Vec<u8>)> = (43000..43012)
        .flat_map(|port| [(tcp4(port, VIP4), ack4(port)), (tcp6(port), ack6(port))])
        .map(|(syn, ack)| {
            builds.run("a flow's SYN", &syn);
            let output = builds.run("established", &ack).output;
            (ack, output)
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

/// A client that opens a connection again from the same port (the server
/// closed the last one, so the port is free at once) starts a new flow:
/// once the old flow's backend is drained, the new SYN and its ACKs go to
/// the ring's backend in both builds, not to the drained one the
/// established table still named for that 5-tuple. A SYN on a flow whose
/// backend is still in the ring keeps that backend.
#[test]
fn a_connection_on_a_reused_port_is_placed_afresh() {
    xdpath_lab::needs_root!();
    let mut builds = Builds::balancer(maglev([1, 1, 1]));
    // Flows seen only as their SYN (held in the new-flow table), to be
    // opened again after the drain.
    let opening: Vec<(u16, usize)> = (46_000..46_064u16)
        .map(|port| {
            let ran = builds.run("a SYN not answered yet", &tcp4(port, VIP4));
            (port, backend_index(outer_destination(&ran.output)))
        })
        .collect();
    let established = establish(&mut builds, 45_000..45_064);
    let drained = established[0].1;
    // Drained, and the other two weighted 1 and 5: the ring moves flows
    // between those two as well.
    let mut weights = [5; 3];
    weights[(drained + 1) % 3] = 1;
    weights[drained] = 0;
    let table = maglev(weights);
    builds.install(&state(1, table.clone()));
    let mut reused = 0;
    for (port, _) in established
        .iter()
        .filter(|(_, backend)| *backend == drained)
    {
        let syn = tcp4(*port, VIP4);
        let before = builds.snapshot("before the reused port's SYN");
        let ran = builds.run("a new connection's SYN on a reused port", &syn);
        let backend = check_output("the reused port's SYN", &syn, &ran.output);
        assert_ne!(
            backend_index(backend),
            drained,
            "port {port}: not the drained backend"
        );
        assert_eq!(
            backend,
            maglev_pick(&table, &syn),
            "port {port}: the ring's pick"
        );
        let after = builds.snapshot("after the reused port's SYN");
        assert_eq!(after.misses, before.misses + 1, "port {port}: a new flow");
        for segment in ["its ACK", "a later segment"] {
            let ran = builds.run(segment, &ack4(*port));
            assert_eq!(
                outer_destination(&ran.output),
                backend,
                "port {port}: {segment} follows its SYN"
            );
        }
        reused += 1;
    }
    assert!(reused > 0, "flows on the drained backend");
    // A SYN whose new-flow slot names the drained backend (sent again, or
    // a port reused after its flow's established entry was evicted) is
    // placed by the ring too.
    let mut resent = 0;
    for (port, _) in opening.iter().filter(|(_, backend)| *backend == drained) {
        let syn = tcp4(*port, VIP4);
        let ran = builds.run("a SYN again, its slot's backend drained", &syn);
        let backend = check_output("the SYN again", &syn, &ran.output);
        assert_eq!(
            backend,
            maglev_pick(&table, &syn),
            "port {port}: the ring's pick"
        );
        resent += 1;
    }
    assert!(resent > 0, "SYNs on the drained backend");
    // A SYN on a flow whose backend is still in the ring keeps to it, so
    // that a spoofed SYN cannot move an established flow (here some would
    // move: the ring without the drained backend picks others for them).
    let mut kept_off_the_ring = 0;
    for (port, backend) in established
        .iter()
        .filter(|(_, backend)| *backend != drained)
    {
        let syn = tcp4(*port, VIP4);
        let ran = builds.run("a SYN on a flow of a backend in the ring", &syn);
        assert_eq!(
            backend_index(outer_destination(&ran.output)),
            *backend,
            "port {port}: the flow's backend"
        );
        let ran = builds.run("its ACK", &ack4(*port));
        assert_eq!(backend_index(outer_destination(&ran.output)), *backend);
        kept_off_the_ring += usize::from(backend_index(maglev_pick(&table, &syn)) != *backend);
    }
    assert!(
        kept_off_the_ring > 0,
        "some flows the new ring would place elsewhere"
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
    flood_keeps_established_flows(14, 2, |_, source| {
        FrameSpec::new(
            Network::V4(source.address, VIP4),
            Transport::tcp(source.port, 80, FLAG_SYN),
        )
        .build()
    });
}

/// A flood of one datagram per spoofed flow, with twice as many flows as
/// the established table holds, evicts no established flow in either
/// build: a UDP flow reaches that table only with its second datagram.
/// (The UDP VIP is hashed on the source, a flow per client: each datagram
/// comes from an address of its own in 100.64.0.0/10, since two random
/// ones that met would be one client's second frame.)
#[test]
fn a_flood_of_one_datagram_per_flow_does_not_evict_established_flows() {
    xdpath_lab::needs_root!();
    flood_keeps_established_flows(15, 1, |flow, source| {
        let [_, _, _, _, _, high, middle, low] = flow.to_be_bytes();
        let client = [100, 64 | (high & 0x3f), middle, low];
        FrameSpec::new(Network::V4(client, VIP4), Transport::udp(source.port, 53)).build()
    });
}

/// Establishes 64 flows, sends `frames_per_flow` frames of each of twice
/// as many random flows as the established table holds (`frame` of the
/// flow's number and source), checks that both builds' established tables
/// are as before, then drains the first flow's backend and checks that
/// every established flow still goes to its own.
fn flood_keeps_established_flows(
    seed: u64,
    frames_per_flow: u32,
    frame: impl Fn(u64, xdpath_core::flood::FlowSource) -> Vec<u8>,
) {
    let mut builds = Builds::balancer(maglev([1, 1, 1]));
    let established = establish(&mut builds, 50_000..50_064);
    let before = builds.snapshot("established flows");
    assert_eq!(before.connections.len(), established.len());
    let plan = FloodPlan {
        seed,
        ..FloodPlan::default()
    };
    for flow in 0..2 * u64::from(MAX_CONNECTIONS) {
        let flood = frame(flow, plan.source(flow));
        for _ in 0..frames_per_flow {
            let code = builds.program.test_run(&flood).expect("test run");
            let native = pipeline::process_frame(&mut FrameBuffer::new(&flood), &mut builds.native);
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
