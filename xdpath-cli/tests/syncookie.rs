//! SYN-cookie mode (kernel only): the `xdpath_syncookie` stage.
//!
//! 1. Fixtures through `BPF_PROG_TEST_RUN`: a SYN comes back as a SYN-ACK
//!    with the kernel's cookie (checked byte by byte, checksums recomputed
//!    here), IPv4, IPv6 and VLAN-tagged; the cookie's ACK passes, an ACK
//!    with a wrong cookie is dropped.
//! 2. End to end in namespaces: a real client in B connects to a listener
//!    in A (`tcp_syncookies=2`) through xdpath's cookies and transfers data.
//! 3. Under a spoofed SYN flood from B (hping3), A holds no half-open
//!    sockets and a real client still connects.
//!
//! Needs root and a kernel with BPF.

#[path = "syncookie/frames.rs"]
mod frames;
#[path = "syncookie/live.rs"]
mod live;
#[path = "syncookie/program.rs"]
mod program;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xdpath_core::abi;

use aya::maps::{Array, Map, MapData};
use aya::Pod;
use xdpath::dataplane::{LoadedProgram, SHARED_DIR_NAME};
use xdpath_core::filter::{FilterConfig, FILTER_SYN_COOKIES};
use xdpath_core::stats::counter_index;
use xdpath_core::wire::checksum;
use xdpath_core::{Action, Counter, InterfaceConfig, Reason};
use xdpath_lab::testenv::{Side, TestBed};
use xdpath_testing::reuse::Reused;

use frames::*;
use live::*;
use program::*;

const XDPATH: &str = env!("CARGO_BIN_EXE_xdpath");

#[test]
fn ipv4_syn_gets_a_cookie_syn_ack() {
    xdpath_lab::needs_root!();
    round_trip(Net::V4, &[], &LINUX_SYN_OPTIONS, &[], 1460);
}

#[test]
fn ipv6_syn_gets_a_cookie_syn_ack() {
    xdpath_lab::needs_root!();
    round_trip(Net::V6, &[], &LINUX_SYN_OPTIONS, &[], 1440);
}

#[test]
fn vlan_tagged_syn_keeps_its_tags() {
    xdpath_lab::needs_root!();
    round_trip(Net::V4, &[100], &LINUX_SYN_OPTIONS, &[], 1460);
    round_trip(Net::V6, &[100, 200], &LINUX_SYN_OPTIONS, &[], 1440);
}

#[test]
fn syn_without_options_grows_and_with_payload_shrinks() {
    xdpath_lab::needs_root!();
    // No MSS option: the kernel's default (536), and the frame grows by 4.
    round_trip(Net::V4, &[], &[], &[], 536);
    // A SYN with data: the data is not echoed.
    round_trip(Net::V4, &[], &LINUX_SYN_OPTIONS, &[0xaa; 100], 1460);
}

#[test]
fn other_ports_and_flags_are_untouched() {
    xdpath_lab::needs_root!();
    let mut program = loaded_with_cookies();
    // Warm the per-port throttle so a SYN would be answered.
    let syn = tcp_frame(Net::V4, &[], SYN, CLIENT_SEQ, 0, &LINUX_SYN_OPTIONS, &[]);
    assert_eq!(program.test_run(&syn).expect("run"), Action::Pass as u32);
    // A SYN-ACK, a RST and a FIN|ACK... the SYN-ACK and RST are not for the
    // stage; a SYN to another port is not protected.
    let syn_ack = tcp_frame(Net::V4, &[], SYN | ACK, 1, 1, &[], &[]);
    assert_eq!(
        program.test_run(&syn_ack).expect("run"),
        Action::Pass as u32
    );
    let rst = tcp_frame(Net::V4, &[], 0x04, 1, 0, &[], &[]);
    assert_eq!(program.test_run(&rst).expect("run"), Action::Pass as u32);
    let mut other_port = syn.clone();
    other_port[14 + 20 + 3] ^= 1;
    assert_eq!(
        program.test_run(&other_port).expect("run"),
        Action::Pass as u32
    );
    assert_eq!(
        counter(&program, Action::Tx, Reason::SynCookieSent).packets,
        0
    );
}

#[test]
fn a_syn_to_a_vip_is_the_balancers_not_a_cookie() {
    xdpath_lab::needs_root!();
    use xdpath::control::kernel::KernelMaps;
    use xdpath::lb::install::CompiledLb;
    use xdpath_core::lb::{LbConfig, Vip, VipKey, ENCAP_IPIP, LB_ENABLED};
    use xdpath_core::parse::ipv4_mapped;
    let mut program = loaded_with_cookies();
    // The protected port is also a VIP's (one with no backend yet): its
    // SYNs are the balancer's, never answered with a cookie.
    let vip = VipKey {
        address: ipv4_mapped(SERVER4),
        port: SERVER_PORT,
        protocol: 6,
        reserved: [0; 5],
    };
    let mut config = LbConfig {
        flags: LB_ENABLED,
        ..LbConfig::default()
    };
    config.set_vip_addresses([&vip.address]);
    let balancer = CompiledLb {
        config,
        vips: vec![(
            vip,
            Vip {
                index: 0,
                ring: 0,
                ring_size: 7,
                gue_port: 0,
                flags: 0,
                encap: ENCAP_IPIP,
            },
        )],
        rings: vec![(0, vec![xdpath_core::lb::NO_BACKEND; 7])],
        backends: Vec::new(),
        allow: Vec::new(),
        sample_rates: Vec::new(),
    };
    let maps = KernelMaps::of_program(&program).expect("maps");
    balancer.install_kernel(&maps).expect("install the VIP");
    let syn = syn_from(Net::V4, &CLIENT4);
    for _ in 0..3 {
        assert_eq!(
            program.test_run(&syn).expect("run"),
            Action::Drop as u32,
            "the balancer's verdict (no backend), not a SYN-ACK"
        );
    }
    assert_eq!(
        counter(&program, Action::Tx, Reason::SynCookieSent).packets,
        0
    );
    assert_eq!(
        counter(&program, Action::Drop, Reason::LbNoBackend).packets,
        3
    );
}

#[test]
fn martian_sources_do_not_spend_the_kernels_turn() {
    xdpath_lab::needs_root!();
    // A flood's random sources include ones the kernel drops before TCP
    // (loopback, multicast, 0/8, class E); had one of them taken the
    // second's turn, the listener's cookie window would not be renewed and
    // a real client's cookie ACK would be refused with a reset.
    let mut multicast6 = [0u8; 16];
    multicast6[..2].copy_from_slice(&[0xff, 0x02]);
    multicast6[15] = 1;
    let mut loopback6 = [0u8; 16];
    loopback6[15] = 1;
    let cases: [(Net, Vec<u8>); 7] = [
        (Net::V4, vec![127, 0, 0, 1]),
        (Net::V4, vec![0, 9, 9, 9]),
        (Net::V4, vec![224, 0, 0, 5]),
        (Net::V4, vec![250, 1, 2, 3]),
        (Net::V4, vec![255, 255, 255, 255]),
        (Net::V6, multicast6.to_vec()),
        (Net::V6, loopback6.to_vec()),
    ];
    for (net, source) in cases {
        let mut program = loaded_with_cookies();
        let plain = match net {
            Net::V4 => syn_from(Net::V4, &CLIENT4),
            Net::V6 => syn_from(Net::V6, &CLIENT6),
        };
        let spoofed = syn_from(net, &source);
        assert_eq!(
            program.test_run(&spoofed).expect("test run"),
            Action::Tx as u32,
            "a SYN from {source:?} is answered at XDP, not given the turn"
        );
        assert_eq!(
            program.test_run(&plain).expect("test run"),
            Action::Pass as u32,
            "the turn is still there for a SYN from a real source"
        );
    }
}

// ---- end to end

#[test]
fn real_client_connects_through_cookies() {
    xdpath_lab::needs_root!();
    let port = 8081;
    let bed = cookie_bed(port);
    let _server = Server::start(&bed.a().path, port);
    let v4 = IpAddr::V4(bed.a().ipv4);
    let v6 = IpAddr::V6(bed.a().ipv6);
    // The first SYN of the second goes to the kernel; the rest get XDP's
    // cookies. Both kinds of connection must work.
    for round in 0..3 {
        for address in [v4, v6] {
            let started = Instant::now();
            let got = fetch(&bed, address, port)
                .unwrap_or_else(|error| panic!("fetch {round} from {address}: {error}"));
            assert_eq!(got, REPLY_BYTES, "bytes from {address}");
            // A SYN-ACK lost on the way would cost a 1 s SYN retransmission.
            assert!(
                started.elapsed() < Duration::from_millis(800),
                "connection {round} to {address} took {:?}",
                started.elapsed()
            );
        }
    }
    // One SYN went to the kernel (the first of the second), the others
    // were answered at XDP.
    let sent = interface_counter(&bed, Action::Tx, Reason::SynCookieSent);
    assert!(sent.packets >= 1, "syn-cookie-sent: {sent:?}");
    let invalid = interface_counter(&bed, Action::Drop, Reason::SynCookieInvalid);
    assert_eq!(invalid.packets, 0, "no valid ACK dropped");
}

#[test]
fn syn_flood_leaves_no_half_open_sockets() {
    xdpath_lab::needs_root!();
    let port = 8082;
    let bed = cookie_bed(port);
    let _server = Server::start(&bed.a().path, port);
    let target = bed.a().ipv4.to_string();
    let mut flood = bed.command(Side::B, "timeout");
    flood
        .args([
            "3",
            "hping3",
            "-q",
            "-S",
            "-p",
            &port.to_string(),
            "--flood",
            "--rand-source",
        ])
        .arg(&target)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut flood = flood.spawn().expect("start hping3");
    std::thread::sleep(Duration::from_millis(1000));
    // During the flood: a real client connects and transfers data.
    let started = Instant::now();
    let got = fetch(&bed, IpAddr::V4(bed.a().ipv4), port).expect("fetch under the flood");
    assert_eq!(got, REPLY_BYTES);
    let half_open = syn_recv_count(&bed);
    let _ = flood.wait();
    eprintln!(
        "fetched under flood in {:?}; {half_open} syn-recv sockets",
        started.elapsed()
    );
    assert!(
        half_open <= 2,
        "{half_open} half-open sockets in A during the flood"
    );
    let sent = interface_counter(&bed, Action::Tx, Reason::SynCookieSent);
    assert!(
        sent.packets > 1000,
        "the flood was answered at XDP: {sent:?}"
    );
    // And after it.
    assert_eq!(syn_recv_count(&bed), 0);
    assert_eq!(
        fetch(&bed, IpAddr::V4(bed.a().ipv4), port).expect("fetch after"),
        REPLY_BYTES
    );
}
