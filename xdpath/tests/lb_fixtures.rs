//! The load balancer through both builds: each frame runs through the
//! kernel (`BPF_PROG_TEST_RUN` on a fresh program whose maps hold the
//! balancer state) and through the native pipeline with the same state;
//! verdict, reason and the output bytes must be equal, and the output is
//! checked field by field (outer header, lengths, checksum, inner packet
//! unchanged).
//!
//! Needs root and a kernel with BPF.

use xdpath::control::kernel::KernelMaps;
use xdpath::dataplane::LoadedProgram;
use xdpath::lb::install::CompiledLb;
use xdpath::lb::maglev::{build_table, MaglevBackend};
use xdpath_core::build::{doc_v6, internet_checksum, FrameSpec, Network, Transport};
use xdpath_core::lb::{
    mac_value, Backend, LbConfig, Vip, VipKey, ENCAP_GUE, ENCAP_IPIP, LB_ENABLED, LB_FIXED_NEXT_HOP,
};
use xdpath_core::parse::ipv4_mapped;
use xdpath_core::wire::tcp::FLAG_SYN;
use xdpath_core::{pipeline, Action, FrameBuffer, InterfaceConfig, NativeTables, Reason};

const VIP4: [u8; 4] = [203, 0, 113, 10];
const NEXT_HOP: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
const RING: u32 = 65_537;

fn backends() -> Vec<(u32, [u8; 16])> {
    vec![
        (0, ipv4_mapped([10, 0, 0, 1])),
        (1, ipv4_mapped([10, 0, 0, 2])),
        (2, doc_v6(0x33)),
    ]
}

/// VIP 0: 203.0.113.10:80/tcp, IPIP. VIP 1: [2001:db8::10]:443/tcp, GUE
/// to 6080. VIP 2: 203.0.113.10, all UDP ports, hashed on the source.
/// VIP 3: 203.0.113.11:80/tcp with an empty ring.
fn state() -> CompiledLb {
    let pool: Vec<MaglevBackend> = backends()
        .iter()
        .map(|(_, address)| MaglevBackend {
            address: *address,
            weight: 1,
        })
        .collect();
    let table = build_table(&pool, RING, 7).expect("table");
    let vip = |address: [u8; 16], port: u16, protocol: u8| VipKey {
        address,
        port,
        protocol,
        reserved: [0; 5],
    };
    let mut config = LbConfig {
        flags: LB_ENABLED | LB_FIXED_NEXT_HOP,
        source_v4_len: 96 + 16,
        source_v6_len: 64,
        next_hop_mac: mac_value(NEXT_HOP),
        ..LbConfig::default()
    };
    config.source_v4 = ipv4_mapped([172, 16, 0, 0]);
    config.source_v6 = doc_v6(0xff00);
    CompiledLb {
        config,
        vips: vec![
            (
                vip(ipv4_mapped(VIP4), 80, 6),
                Vip {
                    index: 0,
                    ring: 0,
                    ring_size: RING,
                    gue_port: 0,
                    flags: 0,
                    encap: ENCAP_IPIP,
                },
            ),
            (
                vip(doc_v6(0x10), 443, 6),
                Vip {
                    index: 1,
                    ring: 0,
                    ring_size: RING,
                    gue_port: 6080,
                    flags: 0,
                    encap: ENCAP_GUE,
                },
            ),
            (
                vip(ipv4_mapped(VIP4), 0, 17),
                Vip {
                    index: 2,
                    ring: 0,
                    ring_size: RING,
                    gue_port: 0,
                    flags: xdpath_core::lb::VIP_SOURCE_HASH,
                    encap: ENCAP_IPIP,
                },
            ),
            (
                vip(ipv4_mapped([203, 0, 113, 11]), 80, 6),
                Vip {
                    index: 3,
                    ring: 2,
                    ring_size: RING,
                    gue_port: 0,
                    flags: 0,
                    encap: ENCAP_IPIP,
                },
            ),
        ],
        rings: vec![(0, table), (2, vec![u32::MAX; RING as usize])],
        backends: backends()
            .into_iter()
            .map(|(index, address)| {
                (
                    index,
                    Backend {
                        address,
                        generation: 1,
                        family: if address[..12] == ipv4_mapped([0; 4])[..12] {
                            4
                        } else {
                            6
                        },
                        reserved: [0; 3],
                    },
                )
            })
            .collect(),
    }
}

fn tcp4(source_port: u16, destination: [u8; 4]) -> Vec<u8> {
    FrameSpec::new(
        Network::V4([192, 0, 2, 1], destination),
        Transport::Tcp {
            source_port,
            destination_port: 80,
            flags: FLAG_SYN,
        },
    )
    .with_payload(b"GET / HTTP/1.1\r\n\r\n")
    .build()
}

fn tcp6(source_port: u16) -> Vec<u8> {
    FrameSpec::new(
        Network::V6(doc_v6(1), doc_v6(0x10)),
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

struct Case {
    description: String,
    frame: Vec<u8>,
    action: Action,
    reason: Reason,
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for port in [40000, 40001, 40002, 40003, 40004, 40005] {
        cases.push(Case {
            description: format!("ipv4 tcp to the IPIP VIP from port {port}"),
            frame: tcp4(port, VIP4),
            action: Action::Tx,
            reason: Reason::LbForwarded,
        });
        cases.push(Case {
            description: format!("ipv6 tcp to the GUE VIP from port {port}"),
            frame: tcp6(port),
            action: Action::Tx,
            reason: Reason::LbForwarded,
        });
    }
    for source in [[192, 0, 2, 7], [198, 51, 100, 9], [192, 0, 2, 200]] {
        cases.push(Case {
            description: format!("udp from {source:?} to the all-ports VIP"),
            frame: udp4(source, 9999),
            action: Action::Tx,
            reason: Reason::LbForwarded,
        });
    }
    cases.push(Case {
        description: "tcp to a port the VIP does not serve".into(),
        frame: FrameSpec::new(
            Network::V4([192, 0, 2, 1], VIP4),
            Transport::Tcp {
                source_port: 1,
                destination_port: 81,
                flags: FLAG_SYN,
            },
        )
        .build(),
        action: Action::Pass,
        reason: Reason::Ipv4Tcp,
    });
    cases.push(Case {
        description: "a VIP with no backend".into(),
        frame: tcp4(40000, [203, 0, 113, 11]),
        action: Action::Drop,
        reason: Reason::LbNoBackend,
    });
    cases
}

fn load() -> (LoadedProgram, NativeTables) {
    let program = LoadedProgram::load(InterfaceConfig::default()).expect("load (needs root)");
    let maps = KernelMaps::of_program(&program).expect("maps");
    let state = state();
    state.install_kernel(&maps).expect("install");
    let mut native = NativeTables::default();
    state.install_native(&mut native);
    (program, native)
}

/// The outer header is well formed and the inner packet is the original
/// frame's IP packet, byte for byte.
fn check_output(description: &str, input: &[u8], output: &[u8]) {
    assert_eq!(&output[..6], &NEXT_HOP, "{description}: next hop MAC");
    assert_eq!(
        &output[6..12],
        &input[..6],
        "{description}: our MAC as source"
    );
    let ethertype = u16::from_be_bytes([output[12], output[13]]);
    let inner = &input[14..];
    let (outer_length, backend, protocol) = match ethertype {
        0x0800 => {
            let header = &output[14..34];
            assert_eq!(header[0], 0x45, "{description}: IPv4, IHL 5");
            assert_eq!(internet_checksum(&[header]), 0, "{description}: checksum");
            let total = u16::from_be_bytes([header[2], header[3]]) as usize;
            assert_eq!(total, output.len() - 14, "{description}: total length");
            assert_eq!(&header[12..14], &[172, 16], "{description}: source prefix");
            (
                20,
                ipv4_mapped(header[16..20].try_into().unwrap()),
                header[9],
            )
        }
        0x86dd => {
            let header = &output[14..54];
            assert_eq!(header[0] >> 4, 6, "{description}: IPv6");
            let payload = u16::from_be_bytes([header[4], header[5]]) as usize;
            assert_eq!(payload, output.len() - 54, "{description}: payload length");
            assert_eq!(
                &header[8..16],
                &doc_v6(0xff00)[..8],
                "{description}: source /64"
            );
            (40, header[24..40].try_into().unwrap(), header[6])
        }
        other => panic!("{description}: outer EtherType {other:#x}"),
    };
    assert!(
        backends().iter().any(|(_, address)| *address == backend),
        "{description}: outer destination is a backend"
    );
    let mut at = 14 + outer_length;
    if protocol == 17 {
        let udp = &output[at..at + 8];
        assert_eq!(
            u16::from_be_bytes([udp[2], udp[3]]),
            6080,
            "{description}: GUE port"
        );
        assert_eq!(
            u16::from_be_bytes([udp[4], udp[5]]) as usize,
            output.len() - at,
            "{description}: UDP length"
        );
        assert!(udp[0] & 0x80 != 0, "{description}: ephemeral source port");
        at += 8;
    } else {
        let expected = if inner[0] >> 4 == 4 { 4 } else { 41 };
        assert_eq!(protocol, expected, "{description}: IPIP protocol");
    }
    assert_eq!(
        &output[at..],
        inner,
        "{description}: inner packet unchanged"
    );
}

#[test]
fn kernel_and_native_balance_alike() {
    let (mut program, mut native) = load();
    for case in cases() {
        let (code, kernel_output) = program.test_run_output(&case.frame).expect("test run");
        let mut frame = FrameBuffer::new(&case.frame);
        let verdict = pipeline::process_frame(&mut frame, &mut native);
        assert_eq!(
            (verdict.outcome.action, verdict.outcome.reason),
            (case.action, case.reason),
            "{}: native",
            case.description
        );
        assert_eq!(
            code, case.action as u32,
            "{}: kernel action",
            case.description
        );
        if case.action == Action::Tx {
            assert_eq!(
                kernel_output,
                frame.bytes(),
                "{}: kernel and native output",
                case.description
            );
            check_output(&case.description, &case.frame, &kernel_output);
        }
    }
    // Both placed the same flows: one connection per TCP/UDP flow sent.
    assert_eq!(native.lb.connections.len(), 15);
}

#[test]
fn connections_keep_their_backend_when_the_table_changes() {
    let (mut program, mut native) = load();
    let frame = tcp4(41000, VIP4);
    let (_, before) = program.test_run_output(&frame).expect("run");
    // A new table that sends everything to backend 1 (10.0.0.2), swapped in
    // by rewriting the VIP to ring 1.
    let mut state = state();
    state.rings = vec![(1, vec![1; RING as usize])];
    for (_, vip) in &mut state.vips {
        vip.ring = 1;
    }
    state.vips.truncate(1);
    let maps = KernelMaps::of_program(&program).expect("maps");
    state.install_kernel(&maps).expect("install");
    let (_, after) = program.test_run_output(&frame).expect("run");
    assert_eq!(before, after, "an established flow keeps its backend");
    let (_, new_flow) = program.test_run_output(&tcp4(41001, VIP4)).expect("run");
    assert_eq!(
        &new_flow[30..34],
        &[10, 0, 0, 2],
        "a new flow follows the new table"
    );
    // The native build agrees.
    let mut first = FrameBuffer::new(&frame);
    pipeline::process_frame(&mut first, &mut native);
    state.install_native(&mut native);
    let mut again = FrameBuffer::new(&frame);
    pipeline::process_frame(&mut again, &mut native);
    assert_eq!(again.bytes(), &after[..]);
}
