//! The user-space runtime (`xdpath run --userspace`) on live traffic, in
//! namespaces:
//!
//! 1. Parity: the same state (filter rules, a blocklisted source, a VIP
//!    with IPIP to a backend) and the same frames (the traffic mix with its
//!    malformed frames, rule hits, balanced SYNs), once through the kernel
//!    program and once through the runtime. The counters must be equal, the
//!    frames handed to the stack byte for byte the same (captured on the
//!    interface, and on the TAP device), and the encapsulated frames sent
//!    back out the same.
//! 2. A user's view: ping (IPv4, IPv6) and HTTP (curl to a server in A)
//!    work through the runtime's exception path; a rule added while it runs
//!    takes effect within seconds and goes away again; `xdpath stats`
//!    shows its counters.
//! 3. Bad input: no `--userspace`, no such interface, a queue that does not
//!    exist, the kernel program already attached: clear errors.
//! 4. `--threads` on two queues ([`threads`]): both threads serve, the
//!    counters add up, rules reach every thread, rate limits are shared.
//!
//! Needs root.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use xdpath_lab::testenv::router::{Node, RouterBed};
use xdpath_lab::testenv::{has_xdp_program, nsenter, Side, TestBed};

mod common;
#[path = "userspace/lifecycle.rs"]
mod lifecycle;
#[path = "userspace/probes.rs"]
mod probes;
#[path = "userspace/runtime.rs"]
mod runtime;
#[path = "userspace/threads.rs"]
mod threads;

use common::{bed, xdpath_in, XDPATH};
use xdpath::userspace::tap_name;
use xdpath_core::build::{FrameSpec, Network, Transport};
use xdpath_lab::traffic::{self, Mix};

use probes::*;
use runtime::*;

const VIP: [u8; 4] = [203, 0, 113, 10];
const BLOCKED: [u8; 4] = [192, 0, 2, 77];

/// Runs xdpath in a side's namespace and returns its stdout; panics with
/// its stderr on failure.
fn xdpath(bed: &TestBed, side: Side, args: &[&str]) -> String {
    let output = xdpath_in(bed, side, args);
    assert!(
        output.status.success(),
        "xdpath {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs xdpath expecting failure; its stderr.
/// Adds a rule dropping UDP to port 9999 on `side`; returns its id.
fn drop_udp_9999(bed: &TestBed, side: Side) -> String {
    xdpath(
        bed,
        side,
        &[
            "filter",
            "add",
            "--dst",
            "0.0.0.0/0",
            "--proto",
            "udp",
            "--dport",
            "9999",
            "--action",
            "drop",
        ],
    )
}

fn xdpath_fails(bed: &TestBed, side: Side, args: &[&str]) -> String {
    let output = xdpath_in(bed, side, args);
    assert!(!output.status.success(), "xdpath {args:?} should fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn kernel_and_userspace_agree_on_live_traffic() {
    xdpath_lab::needs_root!();
    agree_on_live_traffic(false);
}

/// The same with `--threads` on two queues: the balancer's answers
/// (XDP_TX, encapsulated) from both threads.
#[test]
fn kernel_and_userspace_threads_agree_on_live_traffic() {
    xdpath_lab::needs_root!();
    agree_on_live_traffic(true);
}

fn agree_on_live_traffic(threads: bool) {
    let bed = bed();
    if threads {
        threads::two_queues(&bed);
    }
    let interface = bed.a().interface.clone();
    configure(&bed);
    // B needs an XDP program of its own for A's XDP_TX frames to reach it.
    let b_interface = bed.b().interface.clone();
    xdpath(&bed, Side::B, &["attach", &b_interface, "--mode", "native"]);

    xdpath(
        &bed,
        Side::A,
        &[
            "attach",
            &interface,
            "--mode",
            "native",
            "--malformed",
            "drop",
        ],
    );
    let (kernel_stack, kernel_b) = send_and_capture(&bed, &interface);
    let kernel_counters = counters(&bed);
    xdpath(&bed, Side::A, &["detach", &interface]);

    let extra: &[&str] = if threads {
        &["--malformed", "drop", "--threads"]
    } else {
        &["--malformed", "drop"]
    };
    let runtime = Runtime::start(&bed, extra);
    let (user_stack, user_b) = send_and_capture(&bed, &tap_name(&interface));
    let report = runtime.stop();
    let user_counters = counters(&bed);
    if threads {
        threads::both_threads_served(&report);
    }

    // The run did what the state says, so the comparison means something.
    let get = |action: &str, reason: &str| {
        kernel_counters
            .get(&(action.to_string(), reason.to_string()))
            .map_or(0, |counter| counter.0)
    };
    // UDP to 9999, and the mix's well-formed IPv6 TCP from B.
    assert!(
        get("drop", "rule-deny") >= 2,
        "rule drops: {kernel_counters:?}"
    );
    assert_eq!(get("drop", "blocklisted"), 1, "{kernel_counters:?}");
    assert_eq!(get("tx", "lb-forwarded"), 8, "{kernel_counters:?}");
    assert_eq!(get("tx", "lb-too-big"), 1, "{kernel_counters:?}");
    assert!(!kernel_stack.is_empty(), "frames reached the stack");

    assert_eq!(kernel_counters, user_counters, "the same counters");
    assert_eq!(
        report["tallies"]["to_stack"].as_u64(),
        Some(user_stack.len() as u64),
        "every passed frame went to the TAP device: {report}"
    );
    assert_eq!(
        kernel_stack, user_stack,
        "the same frames reached the stack"
    );
    let (kernel_tx, user_tx) = (encapsulated(&kernel_b), encapsulated(&user_b));
    assert_eq!(kernel_tx.len(), 8, "every VIP SYN came back encapsulated");
    assert_eq!(kernel_tx, user_tx, "the same encapsulated frames");
    let (kernel_icmp, user_icmp) = (too_big_answers(&kernel_b), too_big_answers(&user_b));
    assert_eq!(kernel_icmp.len(), 1, "the full-size segment was answered");
    assert_eq!(kernel_icmp, user_icmp, "the same ICMP answers");
}

// Long: one runtime's life in order (ping and HTTP, a rule added and
// removed, the TAP route, stats), each step on the state the last left.
#[test]
fn ping_and_http_work_through_the_runtime_and_rules_follow_changes() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let (a4, a6) = (bed.a().ipv4.to_string(), bed.a().ipv6.to_string());
    let server = bed
        .command(Side::A, "python3")
        .args(["-m", "http.server", "8000", "--bind", "::"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(HttpServer)
        .expect("start the HTTP server");
    // veth hands TCP over with its checksum left to offload; the frames
    // reach user space as they are, and the stack behind the TAP device
    // would refuse them. B computes its checksums itself, as a NIC's
    // frames arrive.
    let b_interface = bed.b().interface.clone();
    bed.exec_ok(Side::B, "ethtool", ["-K", &b_interface, "tx", "off"])
        .expect("checksums in software in B");
    let runtime = Runtime::start(&bed, &[]);

    assert!(ping(&bed, &a4), "IPv4 ping through the runtime");
    assert!(ping(&bed, &a6), "IPv6 ping through the runtime");
    let url = format!("http://{a4}:8000/Cargo.toml");
    let fetched = within(Duration::from_secs(5), || {
        bed.exec(Side::B, "curl", ["-sf", "-m", "2", &url])
            .is_ok_and(|output| output.status.success() && output.stdout.starts_with(b"[package]"))
    });
    assert!(fetched, "curl {url} through the runtime");

    // A rule added while it runs is taken within a couple of seconds...
    let id = xdpath(
        &bed,
        Side::A,
        &[
            "filter",
            "add",
            "--dst",
            "0.0.0.0/0",
            "--proto",
            "icmp",
            "--action",
            "drop",
        ],
    );
    let id = id.trim().to_string();
    assert!(
        within(Duration::from_secs(5), || !ping(&bed, &a4)),
        "the ICMP rule takes effect"
    );
    assert!(ping(&bed, &a6), "IPv6 is not covered by the IPv4 rule");
    // Its hits are the runtime's, and the listing shows them (hostile obs
    // F4: they were reported nowhere). The snapshot is written every
    // housekeeping pass.
    let rule_hits = || -> u64 {
        let listed: serde_json::Value =
            serde_json::from_str(&xdpath(&bed, Side::A, &["--json", "filter", "list"]))
                .expect("filter list's JSON");
        listed["rules"]
            .as_array()
            .and_then(|rules| {
                rules
                    .iter()
                    .find(|rule| rule["id"].as_u64().is_some_and(|n| n.to_string() == id))
            })
            .and_then(|rule| rule["hits"].as_u64())
            .unwrap_or(0)
    };
    assert!(
        within(Duration::from_secs(5), || rule_hits() >= 1),
        "the runtime's drops by rule {id} are listed as its hits"
    );
    // ... and goes away the same way.
    xdpath(&bed, Side::A, &["filter", "del", &id]);
    assert!(
        within(Duration::from_secs(5), || ping(&bed, &a4)),
        "pings come back once the rule is gone"
    );

    // What the stack sends out of the TAP device leaves by the interface:
    // a route through the TAP device makes A's kernel ask for a neighbour
    // there, and B sees the ARP request on the wire.
    let tap = tap_name(&bed.a().interface);
    bed.exec_ok(
        Side::A,
        "ip",
        ["route", "add", "198.51.100.0/24", "dev", &tap],
    )
    .expect("a route through the TAP device");
    let b_interface = bed.b().interface.clone();
    let at_b = capture(&bed.b().path, &b_interface, Duration::from_millis(1500));
    let _ = bed.exec(Side::A, "ping", ["-c", "1", "-W", "1", "198.51.100.9"]);
    let asked = at_b.join().expect("capture at B").iter().any(|frame| {
        frame.get(12..14) == Some(&[0x08, 0x06]) && frame.get(38..42) == Some(&[198, 51, 100, 9])
    });
    assert!(asked, "A's ARP request through the TAP device reached B");

    // `xdpath stats` shows the runtime's counters while it runs.
    let interface = bed.a().interface.clone();
    let live = counters(&bed);
    let drops = live
        .get(&("drop".to_string(), "rule-deny".to_string()))
        .map_or(0, |counter| counter.0);
    assert!(drops >= 1, "the rule's drops are counted: {live:?}");
    let report = runtime.stop();
    assert_eq!(report["interface"], interface.as_str());
    assert!(report["tallies"]["reloads"].as_u64() >= Some(2), "{report}");
    assert!(report["tallies"]["to_stack"].as_u64() > Some(5), "{report}");
    assert!(
        report["tallies"]["from_stack"].as_u64() >= Some(1),
        "what the stack sent out of the TAP device was counted: {report}"
    );
    drop(server);
}

#[test]
fn bad_input_gets_clear_errors() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    let error = xdpath_fails(&bed, Side::A, &["run", &interface]);
    assert!(error.contains("needs --userspace"), "{error}");
    let error = xdpath_fails(&bed, Side::A, &["run", "--userspace", "nosuch0"]);
    assert!(error.contains("no interface nosuch0"), "{error}");
    let error = xdpath_fails(
        &bed,
        Side::A,
        &["run", "--userspace", &interface, "--queues", "4"],
    );
    assert!(
        error.contains("queue 1") || error.contains("queue"),
        "{error}"
    );
    let error = xdpath_fails(
        &bed,
        Side::A,
        &["run", "--userspace", &interface, "--duration", "0"],
    );
    assert!(error.contains("--duration"), "{error}");
    // Nothing was left behind by the failed starts: no TAP device, and
    // the stack still has the interface.
    let links = bed
        .exec_ok(Side::A, "ip", ["-o", "link", "show"])
        .expect("ip link");
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains("xtap-"),
        "no TAP device left"
    );
    assert!(ping(&bed, &bed.a().ipv4.to_string()), "A still answers");

    xdpath(&bed, Side::A, &["attach", &interface]);
    let error = xdpath_fails(
        &bed,
        Side::A,
        &["run", "--userspace", &interface, "--duration", "1"],
    );
    assert!(error.contains("kernel program is attached"), "{error}");
}

#[test]
fn redirects_leave_by_the_egress_interface_as_in_the_kernel() {
    xdpath_lab::needs_root!();
    let bed = RouterBed::new().expect("router bed");
    let router = bed.path(Node::Router);
    let h2 = bed.path(Node::H2);
    let in_router = |args: &[&str]| xdpath_at(&router, args);
    // A VIP on the router whose one backend, h2, lies behind its second
    // port: the balancer's next hop is a redirect out of r2.
    in_router(&[
        "lb",
        "config",
        "--source-v4",
        "172.16.0.0/16",
        "--source-v6",
        "fd00:172::/64",
    ]);
    let vip = format!("{}.{}.{}.{}:80/tcp", VIP[0], VIP[1], VIP[2], VIP[3]);
    in_router(&["lb", "vip", "add", &vip]);
    in_router(&["lb", "backend", "add", &vip, &bed.h2.ipv4.to_string()]);
    // h2 needs an XDP program for the kernel's redirected frames to
    // arrive (veth); it passes everything.
    xdpath_at(&h2, &["attach", &bed.h2.interface, "--mode", "native"]);
    let syns: Vec<Vec<u8>> = (42_000..42_006)
        .map(|port| {
            FrameSpec::new(
                Network::V4(bed.h1.ipv4.octets(), VIP),
                Transport::tcp(port, 80, 0x02),
            )
            .with_macs(bed.h1.mac, bed.r1.mac)
            .build()
        })
        .collect();
    let send = |syns: Vec<Vec<u8>>| encapsulated(&through_router(&bed, syns));

    in_router(&["attach", &bed.r1.interface, "--mode", "native"]);
    let kernel = send(syns.clone());
    in_router(&["detach", &bed.r1.interface]);

    let runtime = Runtime::start_in(&router, &bed.r1.interface, &["--exception", "drop"]);
    let user = send(syns);
    let report = runtime.stop();

    assert_eq!(kernel.len(), 6, "every SYN reached h2 encapsulated");
    assert_eq!(kernel, user, "the same frames out of r2");
    assert_eq!(report["tallies"]["redirected"], 6, "{report}");
}

#[test]
fn neighbours_resolve_on_the_interface_while_the_runtime_runs() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let runtime = Runtime::start(&bed, &[]);
    // Forget the bed's static neighbours on both sides: from here on ARP
    // and neighbour discovery must work, both ways.
    for side in [Side::A, Side::B] {
        let interface = bed.side(side).interface.clone();
        bed.exec_ok(
            side,
            "ip",
            ["neigh", "flush", "dev", &interface, "nud", "all"],
        )
        .expect("flush neighbours");
    }
    let (a4, a6) = (bed.a().ipv4.to_string(), bed.a().ipv6.to_string());
    let (b4, b6) = (bed.b().ipv4.to_string(), bed.b().ipv6.to_string());
    assert!(
        within(Duration::from_secs(5), || ping(&bed, &a4)),
        "B resolves A over ARP and pings it"
    );
    assert!(
        within(Duration::from_secs(5), || ping(&bed, &a6)),
        "B resolves A over neighbour discovery and pings it"
    );
    // A's kernel resolves B on its own interface: the answers reach it
    // there, not through the TAP device.
    bed.exec_ok(
        Side::A,
        "ip",
        ["neigh", "flush", "dev", &bed.a().interface, "nud", "all"],
    )
    .expect("flush A's neighbours");
    for address in [&b4, &b6] {
        let answered = within(Duration::from_secs(5), || {
            bed.exec(Side::A, "ping", ["-c", "1", "-W", "1", address.as_str()])
                .is_ok_and(|output| output.status.success())
        });
        assert!(answered, "A pings {address}");
    }
    let neighbours = bed
        .exec_ok(Side::A, "ip", ["neigh", "show", "dev", &bed.a().interface])
        .expect("A's neighbours");
    let table = String::from_utf8_lossy(&neighbours.stdout).into_owned();
    assert!(
        table.contains(&b4) && table.contains(&b6) && table.contains("lladdr"),
        "A learned B on its interface: {table}"
    );
    let report = runtime.stop();
    assert!(
        report["tallies"]["to_stack"].as_u64() >= Some(4),
        "{report}"
    );
}

#[test]
fn forwarding_matches_the_kernel() {
    xdpath_lab::needs_root!();
    let bed = RouterBed::new().expect("router bed");
    let (router, h2) = (bed.path(Node::Router), bed.path(Node::H2));
    // The egress port forwards in the kernel (its device map entry is what
    // the kernel program redirects through); h2 has a program so that
    // redirected frames reach it over veth.
    xdpath_at(&router, &["attach", &bed.r2.interface, "--mode", "native"]);
    xdpath_at(&router, &["forward", "enable", &bed.r2.interface]);
    xdpath_at(&h2, &["attach", &bed.h2.interface, "--mode", "native"]);
    let frames: Vec<Vec<u8>> = (0..4u16)
        .flat_map(|port| {
            [
                Network::V4(bed.h1.ipv4.octets(), bed.h2.ipv4.octets()),
                Network::V6(bed.h1.ipv6.octets(), bed.h2.ipv6.octets()),
            ]
            .map(|network| {
                FrameSpec::new(network, Transport::udp(43_000 + port, 7000))
                    .with_payload(b"forwarded")
                    .with_macs(bed.h1.mac, bed.r1.mac)
                    .build()
            })
        })
        .collect();
    let send = |frames: Vec<Vec<u8>>| udp_7000(&through_router(&bed, frames));

    xdpath_at(&router, &["attach", &bed.r1.interface, "--mode", "native"]);
    xdpath_at(&router, &["forward", "enable", &bed.r1.interface]);
    let kernel = send(frames.clone());
    xdpath_at(&router, &["detach", &bed.r1.interface]);

    let runtime = Runtime::start_in(
        &router,
        &bed.r1.interface,
        &["--forward", "--exception", "drop"],
    );
    let user = send(frames);
    let report = runtime.stop();

    assert_eq!(kernel.len(), 8, "every frame reached h2");
    let ipv4 = kernel
        .iter()
        .find(|frame| frame[12..14] == [0x08, 0x00])
        .expect("IPv4");
    assert_eq!(ipv4[22], 63, "TTL decremented");
    assert_eq!(&ipv4[0..6], &bed.h2.mac, "to h2's MAC");
    assert_eq!(kernel, user, "the same frames out of r2, byte for byte");
    assert_eq!(report["tallies"]["redirected"], 8, "{report}");
    let forwarded = report["counters"]
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["reason"] == "forwarded"))
        .map(|row| row["packets"].clone());
    assert_eq!(forwarded, Some(serde_json::json!(8)), "{report}");
}
