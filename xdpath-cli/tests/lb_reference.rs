//! The reference balancer of `xdpath bench` (`xdpath-ebpf/src/reflb.rs`,
//! Katran's per-packet work) configured as the bench configures it, run
//! through `BPF_PROG_TEST_RUN`: every frame to the VIP must leave as a
//! correct IPIP packet to the backend the Maglev ring holds at the flow's
//! jhash slot, through the fixed next hop; a flow's later frames must hit
//! its connection-table entry; what is not for the VIP must pass.
//!
//! Needs root and a kernel with BPF.

use xdpath_core::build::{doc_v6, FrameSpec, Network, Transport};
use xdpath_core::reflb::{flow_hash, ring_slot, FlowKey, STAT_LRU_MISS};
use xdpath_core::wire::checksum;
use xdpath_core::wire::tcp::{FLAG_ACK, FLAG_SYN};
use xdpath_lab::bench::lb::reference::{self, BACKENDS, SOURCE_PREFIX};
use xdpath_lab::bench::lb::{NEXT_HOP, VIP4};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const FLOWS: u16 = 300;

fn flow_frame(index: u16, flags: u8) -> Vec<u8> {
    let [high, low] = index.to_be_bytes();
    FrameSpec::new(
        Network::V4([10, 9, high, low], VIP4),
        Transport::Tcp {
            source_port: 20_000 + index,
            destination_port: 80,
            flags,
        },
    )
    .with_payload(&[0x5a; 33])
    .build()
}

/// The backend the reference must pick for `frame`, computed from the
/// frame's bytes and the bench's Maglev table.
fn expected_backend(frame: &[u8], ring: &[u32]) -> [u8; 4] {
    let word = |at: usize| u32::from_ne_bytes(frame[at..at + 4].try_into().expect("4 bytes"));
    let key = FlowKey {
        source: [word(26), 0, 0, 0],
        destination: [word(30), 0, 0, 0],
        ports: word(34),
        protocol: frame[23],
        pad: [0; 3],
    };
    let slot = ring_slot(0, flow_hash(&key)) as usize;
    BACKENDS[ring[slot] as usize]
}

/// Checks one encapsulated output field by field.
fn check_ipip(input: &[u8], output: &[u8], backend: [u8; 4]) {
    assert_eq!(output.len(), input.len() + 20, "20 bytes of outer header");
    assert_eq!(output[0..6], NEXT_HOP, "to the fixed next hop");
    assert_eq!(
        output[6..12],
        input[0..6],
        "from the frame's old destination"
    );
    assert_eq!(output[12..14], [0x08, 0x00], "IPv4");
    let outer = &output[14..34];
    assert_eq!(outer[0], 0x45, "version 4, no options");
    assert_eq!(outer[1], input[15], "the inner TOS");
    let inner_length = u16::from_be_bytes([input[16], input[17]]);
    assert_eq!(
        u16::from_be_bytes([outer[2], outer[3]]),
        inner_length + 20,
        "total length"
    );
    assert_eq!(outer[6..8], [0, 0], "not a fragment");
    assert_eq!(outer[8], 64, "TTL");
    assert_eq!(outer[9], 4, "protocol IPIP");
    assert_eq!(checksum::of(outer), 0, "header checksum: {outer:02x?}");
    assert_eq!(
        outer[12..14],
        SOURCE_PREFIX[..2],
        "outer source in 172.16/16"
    );
    assert_eq!(outer[16..20], backend, "to the Maglev-chosen backend");
    assert_eq!(output[34..], input[14..], "the inner packet unchanged");
}

#[test]
fn the_reference_balancer_sends_ipip_to_the_maglev_backend_and_remembers_flows() {
    xdpath_lab::needs_root!();
    let mut program = reference::load_configured(1 << 17).expect("load the reference");
    let ring = reference::ring().expect("the Maglev table");
    let mut chosen = std::collections::BTreeMap::new();
    for index in 0..FLOWS {
        let frame = flow_frame(index, FLAG_SYN);
        let (action, output) = program.test_run_output(&frame).expect("test run");
        assert_eq!(action, XDP_TX, "flow {index}");
        let backend = expected_backend(&frame, &ring);
        check_ipip(&frame, &output, backend);
        *chosen.entry(backend).or_insert(0u32) += 1;
    }
    assert_eq!(
        chosen.len(),
        BACKENDS.len(),
        "every backend gets flows: {chosen:?}"
    );
    let misses = reference::misses(&program).expect("stats");
    assert_eq!(misses, u64::from(FLOWS), "each new flow misses once");

    // The flows' ACKs hit their entries: no new miss, the same backend.
    for index in 0..FLOWS {
        let frame = flow_frame(index, FLAG_ACK);
        let (action, output) = program.test_run_output(&frame).expect("test run");
        assert_eq!(action, XDP_TX);
        check_ipip(&frame, &output, expected_backend(&frame, &ring));
    }
    assert_eq!(reference::misses(&program).expect("stats"), misses);
    let vip = reference::stat(&program, 0).expect("stats");
    assert_eq!(vip.v1, 2 * u64::from(FLOWS), "the VIP's packets");
    let first = flow_frame(0, FLAG_ACK);
    let ip_length = u64::from(u16::from_be_bytes([first[16], first[17]]));
    assert_eq!(vip.v2, 2 * u64::from(FLOWS) * ip_length, "the VIP's bytes");

    // As Katran, a SYN is never looked up: sent again, it is a miss again
    // (a TCP SYN miss), routed by the ring to the same backend.
    let frame = flow_frame(0, FLAG_SYN);
    let (action, output) = program.test_run_output(&frame).expect("test run");
    assert_eq!(action, XDP_TX);
    check_ipip(&frame, &output, expected_backend(&frame, &ring));
    assert_eq!(reference::misses(&program).expect("stats"), misses + 1);
    let tcp_misses = reference::stat(&program, STAT_LRU_MISS).expect("stats");
    assert_eq!(
        (tcp_misses.v1, tcp_misses.v2),
        (misses + 1, 0),
        "SYN misses"
    );
    assert_eq!(
        reference::clear(&mut program).expect("clear"),
        usize::from(FLOWS)
    );
}

#[test]
fn the_reference_balancer_passes_what_is_not_for_its_vip() {
    xdpath_lab::needs_root!();
    let mut program = reference::load_configured(1 << 17).expect("load the reference");
    let syn = |destination_port| Transport::Tcp {
        source_port: 40_000,
        destination_port,
        flags: FLAG_SYN,
    };
    let passing = [
        FrameSpec::new(Network::V4([10, 0, 9, 9], [203, 0, 113, 11]), syn(80)).build(),
        FrameSpec::new(Network::V4([10, 0, 9, 9], VIP4), syn(81)).build(),
        FrameSpec::new(Network::V6(doc_v6(1), doc_v6(2)), syn(80)).build(),
        FrameSpec::new(Network::V4([10, 0, 9, 9], VIP4), Transport::EchoRequest).build(),
    ];
    for frame in &passing {
        let (action, output) = program.test_run_output(frame).expect("test run");
        assert_eq!(action, XDP_PASS);
        assert_eq!(&output, frame, "passed unchanged");
    }
    // A fragment to the VIP is dropped, as Katran does.
    let mut fragment = flow_frame(1, FLAG_SYN);
    fragment[20] |= 0x20;
    assert_eq!(program.test_run(&fragment).expect("test run"), XDP_DROP);
    assert_eq!(reference::misses(&program).expect("stats"), 0);
}
