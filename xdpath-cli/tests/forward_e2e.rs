//! L3 forwarding at XDP end to end (needs root): a router namespace
//! between two hosts, xdpath forwarding on both router ports. ping (IPv4
//! and IPv6), TCP and UDP (iperf3) cross it, the router's counters show
//! the XDP path took them, a route change in the kernel is followed at
//! once, a TTL that runs out is left to the stack (which answers), and bad
//! input is refused clearly.

use std::process::Output;

use serde_json::Value;
use xdpath_lab::testenv::router::{Node, RouterBed};

const XDPATH: &str = env!("CARGO_BIN_EXE_xdpath");

fn xdpath(bed: &RouterBed, node: Node, args: &[&str]) -> Output {
    bed.exec(node, XDPATH, args).expect("run xdpath")
}

fn xdpath_ok(bed: &RouterBed, node: Node, args: &[&str]) -> String {
    let output = xdpath(bed, node, args);
    assert!(
        output.status.success(),
        "xdpath {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The bed with xdpath forwarding on both router ports; the hosts run
/// xdpath too (a veth end receives redirected frames only when its peer
/// runs an XDP program).
fn forwarding_bed() -> RouterBed {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "needs root (scripts/test.sh)"
    );
    let bed = RouterBed::new().expect("router bed");
    for (node, port) in [
        (Node::H1, &bed.h1),
        (Node::Router, &bed.r1),
        (Node::Router, &bed.r2),
        (Node::H2, &bed.h2),
    ] {
        xdpath_ok(&bed, node, &["attach", &port.interface, "--mode", "native"]);
    }
    for port in [&bed.r1, &bed.r2] {
        xdpath_ok(&bed, Node::Router, &["forward", "enable", &port.interface]);
    }
    bed
}

/// `(verdict, reason)` packets on a router port.
fn counted(bed: &RouterBed, interface: &str, action: &str, reason: &str) -> u64 {
    let stats: Value = serde_json::from_str(&xdpath_ok(
        bed,
        Node::Router,
        &["--json", "stats", interface],
    ))
    .expect("stats JSON");
    xdpath::stats::packets_in_json(&stats, action, Some(reason))
}

fn forwarded(bed: &RouterBed) -> (u64, u64) {
    (
        counted(bed, &bed.r1.interface, "redirect", "forwarded"),
        counted(bed, &bed.r2.interface, "redirect", "forwarded"),
    )
}

fn ping(bed: &RouterBed, target: &str, extra: &[&str]) -> Output {
    let mut args = vec!["-n", "-c", "5", "-i", "0.05", "-W", "1"];
    args.extend_from_slice(extra);
    args.push(target);
    bed.exec(Node::H1, "ping", &args).expect("ping")
}

/// An iperf3 server on h2 for one test, once it listens.
fn iperf3_server(bed: &RouterBed, address: &str) -> std::process::Child {
    let server = bed
        .command(Node::H2, "iperf3")
        .args(["-s", "-1", "-B", address])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 server");
    std::thread::sleep(std::time::Duration::from_millis(300));
    server
}

#[test]
fn ping_tcp_and_udp_are_forwarded_at_xdp_and_routes_are_followed() {
    xdpath_lab::needs_root!();
    let bed = forwarding_bed();
    let (h2_v4, h2_v6) = (bed.h2.ipv4.to_string(), bed.h2.ipv6.to_string());

    // ping, both families: requests forwarded on r1, replies on r2.
    let before = forwarded(&bed);
    for target in [&h2_v4, &h2_v6] {
        let output = ping(&bed, target, &[]);
        assert!(output.status.success(), "ping {target}: {output:?}");
    }
    let after = forwarded(&bed);
    assert!(
        after.0 - before.0 >= 10,
        "echo requests forwarded on r1: {before:?} -> {after:?}"
    );
    assert!(
        after.1 - before.1 >= 10,
        "echo replies forwarded on r2: {before:?} -> {after:?}"
    );

    // TCP and UDP with iperf3.
    let mut server = iperf3_server(&bed, &h2_v4);
    let before = forwarded(&bed);
    let tcp = bed
        .exec(Node::H1, "iperf3", ["-c", &h2_v4, "-t", "2", "-J"])
        .expect("iperf3 client");
    let _ = server.wait();
    assert!(
        tcp.status.success(),
        "iperf3 tcp: {}",
        String::from_utf8_lossy(&tcp.stderr)
    );
    let report: Value = serde_json::from_slice(&tcp.stdout).expect("iperf3 JSON");
    let received = report["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    assert!(received > 1_000_000, "TCP bytes received: {received}");
    let after = forwarded(&bed);
    let segments = (received / 1500) / 2;
    assert!(
        after.0 - before.0 >= segments,
        "TCP data forwarded at XDP: {before:?} -> {after:?}"
    );
    assert!(after.1 - before.1 > 0, "TCP ACKs forwarded at XDP");

    let mut server = iperf3_server(&bed, &h2_v4);
    let before = forwarded(&bed);
    let udp = bed
        .exec(
            Node::H1,
            "iperf3",
            ["-c", &h2_v4, "-u", "-b", "20M", "-t", "1", "-J"],
        )
        .expect("iperf3 udp");
    let _ = server.wait();
    assert!(
        udp.status.success(),
        "iperf3 udp: {}",
        String::from_utf8_lossy(&udp.stderr)
    );
    let report: Value = serde_json::from_slice(&udp.stdout).expect("iperf3 JSON");
    let datagrams = report["end"]["sum"]["packets"].as_u64().unwrap_or(0);
    let lost = report["end"]["sum"]["lost_packets"]
        .as_u64()
        .unwrap_or(u64::MAX);
    assert!(datagrams > 100, "{datagrams} UDP datagrams");
    assert_eq!(lost, 0, "UDP datagrams lost");
    let after = forwarded(&bed);
    assert!(
        after.0 - before.0 >= datagrams,
        "UDP forwarded at XDP: {before:?} -> {after:?}"
    );

    // A route change in the kernel is followed at once: a blackhole for
    // h2, then gone again.
    let host_route = format!("{h2_v4}/32");
    bed.exec_ok(
        Node::Router,
        "ip",
        ["route", "add", "blackhole", &host_route],
    )
    .expect("blackhole route");
    let output = ping(&bed, &h2_v4, &["-c", "3"]);
    assert!(
        !output.status.success(),
        "ping through a blackhole route answered"
    );
    bed.exec_ok(
        Node::Router,
        "ip",
        ["route", "del", "blackhole", &host_route],
    )
    .expect("delete the route");
    assert!(
        ping(&bed, &h2_v4, &[]).status.success(),
        "ping after the route came back"
    );

    // A TTL that runs out at the router is left to its stack, which
    // answers with time exceeded (ping exits non-zero, saying so).
    let before = counted(&bed, &bed.r1.interface, "pass", "forward-ttl-expired");
    let output = ping(&bed, &h2_v4, &["-t", "1", "-c", "2"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Time to live exceeded"), "{text}");
    let after = counted(&bed, &bed.r1.interface, "pass", "forward-ttl-expired");
    assert_eq!(after - before, 2, "TTL 1 frames left to the stack");
}

#[test]
fn forwarding_off_leaves_frames_to_the_stack() {
    xdpath_lab::needs_root!();
    let bed = forwarding_bed();
    for port in [&bed.r1, &bed.r2] {
        xdpath_ok(&bed, Node::Router, &["forward", "disable", &port.interface]);
    }
    let before = forwarded(&bed);
    let output = ping(&bed, &bed.h2.ipv4.to_string(), &[]);
    assert!(output.status.success(), "the stack forwards: {output:?}");
    assert_eq!(forwarded(&bed), before, "nothing forwarded at XDP");
    // One port on: routed out of the other, frames go to the stack.
    xdpath_ok(
        &bed,
        Node::Router,
        &["forward", "enable", &bed.r1.interface],
    );
    let before = counted(&bed, &bed.r1.interface, "pass", "forward-egress-off");
    assert!(ping(&bed, &bed.h2.ipv4.to_string(), &[]).status.success());
    let after = counted(&bed, &bed.r1.interface, "pass", "forward-egress-off");
    assert_eq!(
        after - before,
        5,
        "requests routed out of a port that does not forward"
    );
}

#[test]
fn bad_forwarding_input_is_refused_clearly() {
    xdpath_lab::needs_root!();
    let bed = RouterBed::new().expect("router bed");
    let r1 = bed.r1.interface.clone();
    // Not attached.
    let output = xdpath(&bed, Node::Router, &["forward", "enable", &r1]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("not attached to {r1}")) || stderr.contains(&r1),
        "{stderr}"
    );
    // An interface without routes.
    bed.exec_ok(
        Node::Router,
        "ip",
        [
            "link", "add", "xrbare0", "type", "veth", "peer", "name", "xrbare1",
        ],
    )
    .expect("a bare veth pair");
    bed.exec_ok(Node::Router, "ip", ["link", "set", "xrbare0", "up"])
        .expect("up");
    xdpath_ok(
        &bed,
        Node::Router,
        &["attach", "xrbare0", "--mode", "generic"],
    );
    let output = xdpath(&bed, Node::Router, &["forward", "enable", "xrbare0"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("xrbare0 has no route"), "{stderr}");
    // Forwarding off in the namespace.
    xdpath_ok(&bed, Node::Router, &["attach", &r1, "--mode", "native"]);
    bed.exec_ok(
        Node::Router,
        "sysctl",
        [
            "-q",
            "-w",
            "net.ipv4.conf.all.forwarding=0",
            "net.ipv6.conf.all.forwarding=0",
        ],
    )
    .expect("sysctl");
    let output = xdpath(&bed, Node::Router, &["forward", "enable", &r1]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("forwards neither IPv4 nor IPv6"),
        "{stderr}"
    );
    // Nothing changed: the interfaces do not forward.
    let status: Value =
        serde_json::from_str(&xdpath_ok(&bed, Node::Router, &["--json", "status"])).unwrap();
    let rows = status.as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2, "{status}");
    assert!(rows.iter().all(|row| row["forward"] == false), "{status}");
    let stderr = String::from_utf8_lossy(
        &xdpath(&bed, Node::Router, &["forward", "enable", "nosuch0"]).stderr,
    )
    .into_owned();
    assert!(stderr.contains("nosuch0"), "{stderr}");
}

#[test]
fn a_config_file_turns_forwarding_on_and_off_in_place() {
    xdpath_lab::needs_root!();
    let bed = RouterBed::new().expect("router bed");
    for (node, port) in [(Node::H1, &bed.h1), (Node::H2, &bed.h2)] {
        xdpath_ok(&bed, node, &["attach", &port.interface, "--mode", "native"]);
    }
    let file = std::env::temp_dir().join(format!("xdpath-forward-{}.toml", std::process::id()));
    let write = |forward: bool| {
        let text = format!(
            "[[interface]]\nname = \"{}\"\nmode = \"native\"\nforward = {forward}\n\n\
             [[interface]]\nname = \"{}\"\nmode = \"native\"\nforward = {forward}\n",
            bed.r1.interface, bed.r2.interface
        );
        std::fs::write(&file, text).expect("write the config");
    };
    let path = file.display().to_string();
    write(true);
    xdpath_ok(&bed, Node::Router, &["apply", "-f", &path]);
    let before = forwarded(&bed);
    assert!(ping(&bed, &bed.h2.ipv4.to_string(), &[]).status.success());
    let after = forwarded(&bed);
    assert!(
        after.0 - before.0 >= 5,
        "forwarded at XDP after apply: {before:?} -> {after:?}"
    );
    // Off again, in place: the programs stay (same program ids).
    let ids = |bed: &RouterBed| {
        let status: Value =
            serde_json::from_str(&xdpath_ok(bed, Node::Router, &["--json", "status"])).unwrap();
        status
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|row| row["program_id"].clone())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let programs = ids(&bed);
    write(false);
    let plan = xdpath_ok(&bed, Node::Router, &["plan", "-f", &path]);
    assert!(plan.contains("forward"), "{plan}");
    xdpath_ok(&bed, Node::Router, &["apply", "-f", &path]);
    assert_eq!(ids(&bed), programs, "interfaces attached again");
    let before = forwarded(&bed);
    assert!(ping(&bed, &bed.h2.ipv4.to_string(), &[]).status.success());
    assert_eq!(
        forwarded(&bed),
        before,
        "forwarded at XDP after forward = false"
    );
    let _ = std::fs::remove_file(&file);
}
