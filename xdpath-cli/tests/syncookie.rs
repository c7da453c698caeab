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

const XDPATH: &str = env!("CARGO_BIN_EXE_xdpath");

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const CLIENT4: [u8; 4] = [192, 0, 2, 1];
const SERVER4: [u8; 4] = [198, 51, 100, 2];
const CLIENT6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const SERVER6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const CLIENT_PORT: u16 = 40_000;
const SERVER_PORT: u16 = 8080;
const CLIENT_SEQ: u32 = 0x1234_5678;
/// MSS, SACK permitted, timestamps, NOP, window scale: what Linux sends.
const LINUX_SYN_OPTIONS: [u8; 20] = [
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
];

#[repr(transparent)]
#[derive(Clone, Copy)]
struct PodFilterConfig(FilterConfig);
// SAFETY: FilterConfig is #[repr(C)]: three u32 and four u8, no padding.
unsafe impl Pod for PodFilterConfig {}

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "these tests need root");
}

/// Turns SYN-cookie mode on in a `FILTER_CONFIG` map.
fn enable_cookie_flag(map: &mut Map) {
    let mut config: Array<&mut MapData, PodFilterConfig> =
        Array::try_from(map).expect("FILTER_CONFIG is an array");
    let mut current = config.get(&0, 0).expect("read FILTER_CONFIG").0;
    current.flags |= FILTER_SYN_COOKIES;
    config
        .set(0, PodFilterConfig(current), 0)
        .expect("write FILTER_CONFIG");
}

/// Sets `ports` in a `SYNCOOKIE_PORTS` bitmap.
fn protect_ports(map: &mut Map, ports: &[u16]) {
    let mut bitmap: Array<&mut MapData, u64> =
        Array::try_from(map).expect("SYNCOOKIE_PORTS is an array");
    for &port in ports {
        let word = u32::from(port / 64);
        let value = bitmap.get(&word, 0).expect("read SYNCOOKIE_PORTS");
        bitmap
            .set(word, value | 1 << (port % 64), 0)
            .expect("write SYNCOOKIE_PORTS");
    }
}

/// A fresh instance (not attached) with cookies on for `SERVER_PORT`.
fn loaded_with_cookies() -> LoadedProgram {
    require_root();
    let mut program = LoadedProgram::load(InterfaceConfig::default()).expect("load xdpath");
    let ebpf = program.ebpf_mut();
    enable_cookie_flag(
        ebpf.map_mut(abi::map::FILTER_CONFIG)
            .expect(abi::map::FILTER_CONFIG),
    );
    protect_ports(
        ebpf.map_mut(abi::map::SYNCOOKIE_PORTS)
            .expect(abi::map::SYNCOOKIE_PORTS),
        &[SERVER_PORT],
    );
    program
}

#[derive(Clone, Copy)]
enum Net {
    V4,
    V6,
}

/// A TCP segment from the client to the server in an Ethernet frame.
#[allow(clippy::too_many_arguments)]
fn tcp_frame(
    net: Net,
    vlans: &[u16],
    flags: u8,
    seq: u32,
    ack: u32,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    tcp.extend_from_slice(&SERVER_PORT.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.push(((20 + options.len()) / 4) as u8 * 16);
    tcp.push(flags);
    tcp.extend_from_slice(&64_240u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    tcp.extend_from_slice(options);
    tcp.extend_from_slice(payload);
    let (ip, pseudo) = match net {
        Net::V4 => {
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
            ip.extend_from_slice(&[0, 1, 0x40, 0, 63, 6, 0, 0]);
            ip.extend_from_slice(&CLIENT4);
            ip.extend_from_slice(&SERVER4);
            let checksum = checksum::of(&ip);
            ip[10..12].copy_from_slice(&checksum.to_be_bytes());
            (ip, pseudo_header(&CLIENT4, &SERVER4, tcp.len()))
        }
        Net::V6 => {
            let mut ip = vec![0x60, 0, 0, 0];
            ip.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            ip.extend_from_slice(&[6, 63]);
            ip.extend_from_slice(&CLIENT6);
            ip.extend_from_slice(&SERVER6);
            (ip, pseudo_header(&CLIENT6, &SERVER6, tcp.len()))
        }
    };
    let checksum = checksum::of_parts(&[&pseudo, &tcp]);
    tcp[16..18].copy_from_slice(&checksum.to_be_bytes());
    let mut frame = Vec::new();
    frame.extend_from_slice(&SERVER_MAC);
    frame.extend_from_slice(&CLIENT_MAC);
    let ethertype: u16 = match net {
        Net::V4 => 0x0800,
        Net::V6 => 0x86dd,
    };
    for (index, vlan) in vlans.iter().enumerate() {
        let tpid: u16 = if index == 0 && vlans.len() == 2 {
            0x88a8
        } else {
            0x8100
        };
        frame.extend_from_slice(&tpid.to_be_bytes());
        frame.extend_from_slice(&vlan.to_be_bytes());
    }
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&tcp);
    frame
}

/// The TCP pseudo-header (IPv4 or IPv6 by address length).
fn pseudo_header(source: &[u8], destination: &[u8], tcp_len: usize) -> Vec<u8> {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(source);
    pseudo.extend_from_slice(destination);
    if source.len() == 4 {
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(tcp_len as u16).to_be_bytes());
    } else {
        pseudo.extend_from_slice(&(tcp_len as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 6]);
    }
    pseudo
}

fn counter(program: &LoadedProgram, action: Action, reason: Reason) -> Counter {
    program.counters().expect("read counters")[counter_index(action, reason) as usize]
}

/// Checks the SYN-ACK byte by byte and returns its cookie (seq) and MSS.
fn check_syn_ack(net: Net, vlans: &[u16], reply: &[u8]) -> (u32, u16) {
    let l3 = 14 + 4 * vlans.len();
    let ip_len = match net {
        Net::V4 => 20,
        Net::V6 => 40,
    };
    assert_eq!(reply.len(), l3 + ip_len + 24, "Ethernet + IP + 24-byte TCP");
    assert_eq!(&reply[0..6], &CLIENT_MAC, "destination MAC is the client's");
    assert_eq!(&reply[6..12], &SERVER_MAC, "source MAC is the server's");
    for (index, vlan) in vlans.iter().enumerate() {
        let at = 12 + 4 * index;
        let tpid: u16 = if index == 0 && vlans.len() == 2 {
            0x88a8
        } else {
            0x8100
        };
        assert_eq!(&reply[at..at + 2], &tpid.to_be_bytes(), "tag {index} kept");
        assert_eq!(
            &reply[at + 2..at + 4],
            &vlan.to_be_bytes(),
            "VLAN id {index} kept"
        );
    }
    let ip = &reply[l3..l3 + ip_len];
    let tcp = &reply[l3 + ip_len..];
    let pseudo = match net {
        Net::V4 => {
            assert_eq!(&reply[l3 - 2..l3], &[0x08, 0x00]);
            assert_eq!(ip[0], 0x45, "IPv4, no options");
            assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 44, "total length");
            assert_eq!(
                u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff,
                0,
                "no fragment"
            );
            assert_eq!(ip[8], 64, "TTL");
            assert_eq!(ip[9], 6, "TCP");
            assert_eq!(&ip[12..16], &SERVER4, "source is the server");
            assert_eq!(&ip[16..20], &CLIENT4, "destination is the client");
            assert_eq!(checksum::of(ip), 0, "IPv4 header checksum");
            pseudo_header(&SERVER4, &CLIENT4, 24)
        }
        Net::V6 => {
            assert_eq!(&reply[l3 - 2..l3], &[0x86, 0xdd]);
            assert_eq!(ip[0] >> 4, 6);
            assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 24, "payload length");
            assert_eq!(ip[6], 6, "next header TCP");
            assert_eq!(ip[7], 64, "hop limit");
            assert_eq!(&ip[8..24], &SERVER6, "source is the server");
            assert_eq!(&ip[24..40], &CLIENT6, "destination is the client");
            pseudo_header(&SERVER6, &CLIENT6, 24)
        }
    };
    assert_eq!(u16::from_be_bytes([tcp[0], tcp[1]]), SERVER_PORT);
    assert_eq!(u16::from_be_bytes([tcp[2], tcp[3]]), CLIENT_PORT);
    let cookie = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    assert_eq!(
        u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]),
        CLIENT_SEQ.wrapping_add(1),
        "ack = client seq + 1"
    );
    assert_eq!(tcp[12], 0x60, "data offset 6 words");
    assert_eq!(tcp[13], SYN | ACK, "flags SYN|ACK");
    assert_ne!(u16::from_be_bytes([tcp[14], tcp[15]]), 0, "a window");
    assert_eq!(&tcp[18..20], &[0, 0], "urgent pointer");
    assert_eq!(&tcp[20..22], &[2, 4], "MSS option");
    let mss = u16::from_be_bytes([tcp[22], tcp[23]]);
    assert_eq!(checksum::of_parts(&[&pseudo, tcp]), 0, "TCP checksum");
    (cookie, mss)
}

/// Runs the cookie round trip of one kind of frame: the first SYN goes to
/// the kernel (it keeps the listener in cookie mode), the next is answered;
/// the cookie's ACK passes, a wrong one is dropped.
fn round_trip(net: Net, vlans: &[u16], options: &[u8], payload: &[u8], expected_mss: u16) {
    let mut program = loaded_with_cookies();
    let syn = tcp_frame(net, vlans, SYN, CLIENT_SEQ, 0, options, payload);
    let class = match net {
        Net::V4 => Reason::Ipv4Tcp,
        Net::V6 => Reason::Ipv6Tcp,
    };
    let first = program.test_run(&syn).expect("test run");
    assert_eq!(
        first,
        Action::Pass as u32,
        "the first SYN a second goes to the kernel"
    );
    let (action, reply) = program.test_run_output(&syn).expect("test run");
    assert_eq!(action, Action::Tx as u32, "the next is answered at XDP");
    let (cookie, mss) = check_syn_ack(net, vlans, &reply);
    assert_eq!(mss, expected_mss, "MSS");
    // The kernel's reply is the core's, byte for byte, given the kernel's
    // cookie and MSS: the SYN-ACK is built by one piece of code.
    let native = xdpath_core::syncookie::reply_frame(&syn, 14 + 4 * vlans.len(), cookie, mss)
        .expect("the core builds a reply");
    assert_eq!(reply, native, "kernel and core SYN-ACKs differ");
    let sent = counter(&program, Action::Tx, Reason::SynCookieSent);
    assert_eq!(sent.packets, 1);
    assert_eq!(sent.bytes, reply.len() as u64);

    let seq = CLIENT_SEQ.wrapping_add(1);
    let good = tcp_frame(net, vlans, ACK, seq, cookie.wrapping_add(1), &[], &[]);
    assert_eq!(
        program.test_run(&good).expect("test run"),
        Action::Pass as u32
    );
    let data = tcp_frame(
        net,
        vlans,
        ACK | PSH,
        seq,
        cookie.wrapping_add(1),
        &[],
        b"GET /",
    );
    assert_eq!(
        program.test_run(&data).expect("test run"),
        Action::Pass as u32
    );
    // Linux cookies carry the MSS index (0 to 3) in their low bits, so a
    // cookie a little off can still check; these are off by more.
    for wrong in [cookie.wrapping_add(0x101), cookie ^ 0x0100_0000, 0] {
        let bad = tcp_frame(net, vlans, ACK, seq, wrong, &[], &[]);
        assert_eq!(
            program.test_run(&bad).expect("test run"),
            Action::Drop as u32,
            "ACK {wrong:#x} against cookie {cookie:#x}"
        );
    }
    // A cookie from another client's SYN does not check for this one.
    let mut other = tcp_frame(net, vlans, ACK, seq, cookie.wrapping_add(1), &[], &[]);
    let port_at = 14
        + 4 * vlans.len()
        + match net {
            Net::V4 => 20,
            Net::V6 => 40,
        };
    other[port_at + 1] ^= 1;
    assert_eq!(
        program.test_run(&other).expect("test run"),
        Action::Drop as u32
    );
    assert_eq!(
        counter(&program, Action::Drop, Reason::SynCookieInvalid).packets,
        4
    );
    assert_eq!(counter(&program, Action::Pass, class).packets, 3);
}

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

/// A SYN like `tcp_frame`'s (no tags, Linux's options) from `source`, its
/// checksums made again.
fn syn_from(net: Net, source: &[u8]) -> Vec<u8> {
    let mut frame = tcp_frame(net, &[], SYN, CLIENT_SEQ, 0, &LINUX_SYN_OPTIONS, &[]);
    let (ip_len, source_at, server): (usize, usize, &[u8]) = match net {
        Net::V4 => (20, 14 + 12, &SERVER4),
        Net::V6 => (40, 14 + 8, &SERVER6),
    };
    frame[source_at..source_at + source.len()].copy_from_slice(source);
    if ip_len == 20 {
        frame[14 + 10..14 + 12].fill(0);
        let checksum = checksum::of_parts(&[&frame[14..34]]);
        frame[14 + 10..14 + 12].copy_from_slice(&checksum.to_be_bytes());
    }
    let tcp_at = 14 + ip_len;
    frame[tcp_at + 16..tcp_at + 18].fill(0);
    let pseudo = pseudo_header(source, server, frame.len() - tcp_at);
    let checksum = checksum::of_parts(&[&pseudo, &frame[tcp_at..]]);
    frame[tcp_at + 16..tcp_at + 18].copy_from_slice(&checksum.to_be_bytes());
    frame
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

/// A TCP server in a namespace: answers each connection's request line
/// with `REPLY_BYTES` bytes, until dropped.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const REPLY_BYTES: usize = 256 * 1024;

impl Server {
    fn start(namespace: &Path, port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = namespace.to_path_buf();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            xdpath::netns::enter(&path).expect("enter namespace A");
            let listener = TcpListener::bind(("::", port)).expect("bind the listener (dual stack)");
            listener.set_nonblocking(true).expect("nonblocking");
            ready_tx.send(()).expect("ready");
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).expect("blocking");
                        stream
                            .set_read_timeout(Some(Duration::from_secs(5)))
                            .expect("timeout");
                        let mut request = [0u8; 64];
                        let _ = stream.read(&mut request);
                        let _ = stream.write_all(&vec![b'x'; REPLY_BYTES]);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the listener is up");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Connects from namespace B and fetches the reply; the byte count.
fn fetch(bed: &TestBed, address: IpAddr, port: u16) -> std::io::Result<usize> {
    bed.run_in_b(move || -> std::io::Result<usize> {
        let mut stream =
            TcpStream::connect_timeout(&SocketAddr::new(address, port), Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"GET /\n")?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply)?;
        Ok(reply.len())
    })?
}

/// A bed with xdpath attached in A (native), cookies on for `port`, the
/// listener's namespace in cookie mode, and NAPI on B's veth so XDP_TX
/// frames reach it.
fn cookie_bed(port: u16) -> TestBed {
    require_root();
    let bed = TestBed::new().expect("build the test bed");
    bed.exec_ok(Side::A, "sysctl", ["-q", "-w", "net.ipv4.tcp_syncookies=2"])
        .expect("tcp_syncookies=2 in A");
    // A default route, as real hosts have: the kernel only stamps its
    // listener's cookie window (tcp_synq_overflow) for a SYN it can route a
    // SYN-ACK back to, and the SYNs a flood lets through are spoofed.
    let (via4, via6) = (bed.b().ipv4.to_string(), bed.b().ipv6.to_string());
    bed.exec_ok(Side::A, "ip", ["route", "add", "default", "via", &via4])
        .expect("IPv4 default route in A");
    bed.exec_ok(
        Side::A,
        "ip",
        ["-6", "route", "add", "default", "via", &via6],
    )
    .expect("IPv6 default route in A");
    // veth hands XDP_TX frames to its peer's XDP receive ring, which is
    // only served while the peer has an XDP program too: attach xdpath
    // (nothing configured, so it passes everything) on B's end.
    let peer = bed.b().interface.clone();
    let output = bed
        .exec(Side::B, XDPATH, ["attach", &peer, "--mode", "native"])
        .expect("run xdpath attach in B");
    assert!(
        output.status.success(),
        "attach in B: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let interface = bed.a().interface.clone();
    let output = bed
        .exec(Side::A, XDPATH, ["attach", &interface, "--mode", "native"])
        .expect("run xdpath attach");
    assert!(
        output.status.success(),
        "attach: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shared = bed.a().pin_dir().join(SHARED_DIR_NAME);
    let open = |name: &str| {
        let data = MapData::from_pin(shared.join(name)).expect("open pinned map");
        Map::Array(data)
    };
    protect_ports(&mut open(abi::map::SYNCOOKIE_PORTS), &[port]);
    enable_cookie_flag(&mut open(abi::map::FILTER_CONFIG));
    bed
}

fn interface_counter(bed: &TestBed, action: Action, reason: Reason) -> Counter {
    let interface = bed.a().interface.clone();
    bed.run_in_a(move || xdpath::dataplane::interface_counters(&interface))
        .expect("run in A")
        .expect("read counters")[counter_index(action, reason) as usize]
}

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

fn syn_recv_count(bed: &TestBed) -> usize {
    let output = bed
        .exec_ok(Side::A, "ss", ["-Htn", "state", "syn-recv"])
        .expect("ss in A");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count()
}
