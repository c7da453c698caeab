//! `xdpath export sflow|ipfix IF` sends IF's flow samples and counters
//! only, though every attached interface of the namespace samples into
//! the same ring: on a router namespace with xdpath on both ports, both
//! sampling every frame and pinged through each, an export naming one
//! port sends nothing of the other. Needs root: a router bed, the
//! collector a socket on the router's loopback, tshark its judge.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::tshark::{assert_clean, objects_with, strings, tshark};
use common::{json, XDPATH};
use xdpath_lab::testenv::router::{Node, Port, RouterBed};

/// Echo requests sent to each router port.
const PINGS: &str = "10";

fn in_router(bed: &RouterBed, args: &[&str]) -> String {
    let output = bed.exec(Node::Router, XDPATH, args).expect("run xdpath");
    assert!(
        output.status.success(),
        "xdpath {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Both router ports attached, both sampling every frame.
fn sampling_router() -> RouterBed {
    let bed = RouterBed::new().expect("router bed");
    for port in [&bed.r1, &bed.r2] {
        in_router(&bed, &["attach", &port.interface]);
        in_router(&bed, &["sample", &port.interface, "1"]);
    }
    bed
}

fn ifindex(bed: &RouterBed, port: &Port) -> String {
    let output = bed
        .exec_ok(
            Node::Router,
            "ip",
            ["-j", "link", "show", "dev", &port.interface],
        )
        .expect("ip link");
    let links = json(&String::from_utf8_lossy(&output.stdout));
    links[0]["ifindex"].as_u64().expect("ifindex").to_string()
}

/// A collector on the router's loopback: a socket bound to `port` (so no
/// "port unreachable" comes back) and tshark writing its traffic to a
/// file.
struct Collector {
    sink: Child,
    tshark: Child,
    pcap: PathBuf,
}

impl Collector {
    fn start(bed: &RouterBed, port: u16) -> Self {
        let pcap = std::env::temp_dir().join(format!(
            "xdpath-export-interfaces-{}-{port}.pcap",
            std::process::id()
        ));
        let script = format!(
            "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('127.0.0.1', {port}))\nwhile True: s.recv(65535)"
        );
        let sink = bed
            .command(Node::Router, "python3")
            .args(["-c", &script])
            .spawn()
            .expect("start the collector socket");
        let filter = format!("udp port {port}");
        let tshark = tshark_capture(bed, &filter, &pcap);
        Self { sink, tshark, pcap }
    }

    /// Stops the capture; what tshark decodes of it, checked clean.
    fn packets(mut self, decode_as: &str) -> Vec<serde_json::Value> {
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.tshark.id() as i32, libc::SIGINT) };
        let _ = self.tshark.wait();
        let _ = self.sink.kill();
        let _ = self.sink.wait();
        let packets = tshark(&self.pcap, decode_as);
        assert!(!packets.is_empty(), "nothing reached the collector");
        assert_clean(&packets);
        packets
    }
}

/// tshark capturing `filter` on the router's loopback into `path`.
fn tshark_capture(bed: &RouterBed, filter: &str, path: &Path) -> Child {
    common::tshark::live_capture(bed.command(Node::Router, "tshark"), "lo", filter, path)
}

/// `xdpath export PROTOCOL` naming r1 only, to `collector`, while each
/// host pings its router port; returns once the export ended.
fn export_r1_while_both_ports_see_traffic(bed: &RouterBed, protocol: &str, collector: &str) {
    let mut export = bed
        .command(Node::Router, XDPATH)
        .args(["export", protocol, "--collector", collector])
        .args(["--counter-interval", "1", "--duration", "3"])
        .arg(&bed.r1.interface)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xdpath export");
    let stderr = export.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    match lines.next() {
        Some(Ok(line)) if line.contains("exporting") => {}
        other => panic!("xdpath export did not start: {other:?}"),
    }
    for (node, target) in [(Node::H1, &bed.r1), (Node::H2, &bed.r2)] {
        let target = target.ipv4.to_string();
        bed.exec_ok(
            node,
            "ping",
            ["-n", "-q", "-c", PINGS, "-i", "0.05", &target],
        )
        .expect("ping a router port");
    }
    let output = export.wait_with_output().expect("wait for the export");
    assert!(output.status.success(), "{output:?}");
}

/// Frames xdpath passed on `port`.
fn frames_passed(bed: &RouterBed, port: &Port) -> u64 {
    let stats = json(&in_router(bed, &["--json", "stats", &port.interface]));
    xdpath::stats::packets_in_json(&stats, "pass", None)
}

#[test]
fn sflow_export_sends_only_the_named_interfaces_samples_and_counters() {
    xdpath_lab::needs_root!();
    let bed = sampling_router();
    let (r1, r2) = (ifindex(&bed, &bed.r1), ifindex(&bed, &bed.r2));
    let collector = Collector::start(&bed, 6343);
    export_r1_while_both_ports_see_traffic(&bed, "sflow", "127.0.0.1:6343");
    let packets = collector.packets("udp.port==6343,sflow");
    // r2 saw the pings too, and sampled each: its samples were in the ring.
    assert!(frames_passed(&bed, &bed.r2) >= 10, "r2 saw no traffic");
    let inputs: Vec<String> = packets
        .iter()
        .flat_map(|packet| strings(packet, "sflow.flow_sample.input_interface"))
        .collect();
    assert!(inputs.len() >= 10, "r1's samples: {inputs:?}");
    assert!(
        inputs.iter().all(|input| *input == r1),
        "r1 is {r1}, r2 {r2}: {inputs:?}"
    );
    let counters: Vec<String> = packets
        .iter()
        .flat_map(|packet| objects_with(packet, "sflow_245.ifindex"))
        .flat_map(|record| strings(record, "sflow_245.ifindex"))
        .collect();
    assert!(!counters.is_empty(), "no counter sample");
    assert!(
        counters.iter().all(|index| *index == r1),
        "r1 is {r1}, r2 {r2}: {counters:?}"
    );
}

#[test]
fn ipfix_export_sends_only_the_named_interfaces_flows() {
    xdpath_lab::needs_root!();
    let bed = sampling_router();
    let (r1, r2) = (ifindex(&bed, &bed.r1), ifindex(&bed, &bed.r2));
    let collector = Collector::start(&bed, 4739);
    export_r1_while_both_ports_see_traffic(&bed, "ipfix", "127.0.0.1:4739");
    let packets = collector.packets("udp.port==4739,cflow");
    assert!(frames_passed(&bed, &bed.r2) >= 10, "r2 saw no traffic");
    let inputs: Vec<String> = packets
        .iter()
        .flat_map(|packet| strings(packet, "cflow.inputint"))
        .collect();
    assert!(!inputs.is_empty(), "no flow of r1");
    assert!(
        inputs.iter().all(|input| *input == r1),
        "r1 is {r1}, r2 {r2}: {inputs:?}"
    );
}
