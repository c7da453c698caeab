//! Sampling, export and capture end to end (needs root): xdpath on
//! namespace A's veth, hping3 traffic from namespace B, the exporters'
//! datagrams captured by tshark in namespace B (the collector) and decoded
//! there, and `xdpath capture` files opened with tshark.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::tshark::{assert_clean, find_all, objects_with, one, strings, tshark};
use common::{bed, json, xdpath, xdpath_ok, XDPATH};
use serde_json::Value;
use xdpath_lab::testenv::{Side, TestBed};

/// The flow xdpath passes, and how many frames of it are sent.
const PASSED_PORT: u16 = 9999;
const PASSED_FRAMES: u64 = 20;
/// The flow a deny rule drops.
const DENIED_PORT: u16 = 9998;
const DENIED_FRAMES: u64 = 10;
/// hping3's UDP frames: Ethernet, IPv4, UDP, no data.
const UDP_FRAME_LEN: u64 = 14 + 20 + 8;

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("xdpath-observe-{}-{name}", std::process::id()))
}

/// A bed with xdpath on A and a rule dropping UDP to `DENIED_PORT`;
/// returns the rule id.
fn attached_bed() -> (TestBed, u64) {
    let bed = bed();
    xdpath_ok(&bed, &["attach", &bed.a().interface]);
    let port = DENIED_PORT.to_string();
    let added = json(&xdpath_ok(
        &bed,
        &[
            "--json",
            "filter",
            "add",
            "--src",
            "0.0.0.0/0",
            "--proto",
            "udp",
            "--dport",
            &port,
            "--action",
            "drop",
        ],
    ));
    let id = added["id"].as_u64().expect("rule id");
    (bed, id)
}

/// Sends `count` UDP frames from B (source port `source_port`) to A's
/// `port`, 2 ms apart.
fn send_udp(bed: &TestBed, source_port: u16, port: u16, count: u64) {
    let target = bed.a().ipv4.to_string();
    // hping3 exits non-zero when nothing answers; what counts is what
    // xdpath saw, checked by the callers.
    bed.exec(
        Side::B,
        "hping3",
        [
            "--udp",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "u2000",
            "-s",
            &source_port.to_string(),
            "-k",
            "-p",
            &port.to_string(),
            &target,
        ],
    )
    .expect("run hping3");
}

/// A collector in B: a socket bound to `port` (so B answers no datagram
/// with "port unreachable") and tshark capturing its traffic into `path`.
struct Collector {
    sink: Child,
    tshark: Child,
}

impl Collector {
    fn stop(mut self) {
        std::thread::sleep(Duration::from_millis(300));
        interrupt(&mut self.tshark);
        let _ = self.sink.kill();
        let _ = self.sink.wait();
    }
}

fn collector(bed: &TestBed, port: u16, path: &Path) -> Collector {
    let sink = bed
        .command(Side::B, "python3")
        .args([
            "-c",
            &format!(
                "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                 s.bind(('0.0.0.0', {port}))\nwhile True: s.recv(65535)"
            ),
        ])
        .spawn()
        .expect("start the collector socket");
    let tshark = tshark_capture(bed, &format!("udp port {port}"), path);
    Collector { sink, tshark }
}

/// tshark capturing `filter` on B's interface into `path`, once it says
/// it is capturing.
fn tshark_capture(bed: &TestBed, filter: &str, path: &Path) -> Child {
    let mut child = bed
        .command(Side::B, "tshark")
        .args(["-i", &bed.b().interface, "-f", filter, "-w"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tshark");
    let stderr = child.stderr.take().expect("tshark stderr");
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("Capturing on") => break,
            Some(Ok(_)) => continue,
            _ => panic!("tshark did not start capturing"),
        }
    }
    // Keep draining its stderr so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    // "Capturing on" can come a moment before the capture filter is in
    // place: an exporter's first datagram must not fall into that gap.
    std::thread::sleep(std::time::Duration::from_millis(300));
    child
}

fn interrupt(child: &mut Child) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    assert!(status.success() || status.code().is_none(), "{status}");
}

/// `xdpath ARGS` in A in the background; returns once it printed `ready`
/// on stderr.
fn background_xdpath(bed: &TestBed, args: &[&str], ready: &str) -> Child {
    let mut child = bed
        .command(Side::A, XDPATH)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xdpath");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    match lines.next() {
        Some(Ok(line)) if line.contains(ready) => {}
        Some(Ok(line)) => panic!("xdpath {args:?}: {line}"),
        _ => panic!("xdpath {args:?} ended before it was ready"),
    }
    child
}

fn finished(child: Child) -> String {
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("UTF-8")
}

fn ifindex(bed: &TestBed) -> String {
    // sysfs shows the host's interfaces: ask `ip` inside the namespace.
    let output = bed
        .exec_ok(
            Side::A,
            "ip",
            ["-j", "link", "show", "dev", &bed.a().interface],
        )
        .expect("ip link");
    let links = json(&String::from_utf8_lossy(&output.stdout));
    links[0]["ifindex"].as_u64().expect("ifindex").to_string()
}

/// The flow samples of sFlow datagrams whose sampled header is UDP from
/// B to A's `port`.
fn flow_samples_to<'a>(packets: &'a [Value], bed: &TestBed, port: u16) -> Vec<&'a Value> {
    packets
        .iter()
        .flat_map(|packet| objects_with(packet, "sflow.flow_sample.sampling_rate"))
        .filter(|flow| {
            strings(flow, "udp.dstport") == [port.to_string()]
                && strings(flow, "ip.src") == [bed.b().ipv4.to_string()]
        })
        .collect()
}

/// Runs `xdpath export PROTOCOL` (1 in 1, plus `options`) on A towards a
/// collector in B while the passed and denied flows are sent; returns the
/// exporter's counts and what tshark decoded at the collector, checked to
/// be clean and to hold every datagram the exporter counted.
fn export_to_collector(bed: &TestBed, protocol: &str, options: &[&str]) -> (Value, Vec<Value>) {
    let (port, decode_as, sent) = match protocol {
        "sflow" => (6343, "udp.port==6343,sflow", "/sflow/datagrams"),
        _ => (4739, "udp.port==4739,cflow", "/ipfix/messages"),
    };
    let pcap = scratch(&format!("{protocol}.pcap"));
    let collector = collector(bed, port, &pcap);
    let address = format!("{}:{port}", bed.b().ipv4);
    let mut args = vec![
        "--json",
        "export",
        protocol,
        "--collector",
        &address,
        "--rate",
        "1",
    ];
    args.extend_from_slice(options);
    args.push(&bed.a().interface);
    let exporter = background_xdpath(bed, &args, "exporting");
    send_udp(bed, 5555, PASSED_PORT, PASSED_FRAMES);
    send_udp(bed, 5556, DENIED_PORT, DENIED_FRAMES);
    let stats = json(&finished(exporter));
    collector.stop();
    let packets = tshark(&pcap, decode_as);
    assert!(
        !packets.is_empty(),
        "no {protocol} datagram reached the collector"
    );
    assert_clean(&packets);
    assert_eq!(
        Some(packets.len() as u64),
        stats.pointer(sent).and_then(Value::as_u64),
        "{stats}"
    );
    (stats, packets)
}

#[test]
fn sflow_datagrams_decode_in_tshark_with_the_values_sent() {
    xdpath_lab::needs_root!();
    let (bed, _rule) = attached_bed();
    let agent = bed.a().ipv4.to_string();
    let (stats, packets) = export_to_collector(
        &bed,
        "sflow",
        &[
            "--agent",
            &agent,
            "--sub-agent-id",
            "7",
            "--counter-interval",
            "1",
            "--duration",
            "3",
        ],
    );
    assert_eq!(stats["ring_lost"], 0, "{stats}");
    for packet in &packets {
        assert_eq!(one(packet, "sflow_245.version"), "5");
        assert_eq!(one(packet, "sflow_245.agent"), agent);
        assert_eq!(one(packet, "sflow_245.sub_agent_id"), "7");
    }
    let ifindex = ifindex(&bed);
    let passed = flow_samples_to(&packets, &bed, PASSED_PORT);
    let denied = flow_samples_to(&packets, &bed, DENIED_PORT);
    // At 1 in 1 every frame is a sample.
    assert_eq!(passed.len() as u64, PASSED_FRAMES);
    assert_eq!(denied.len() as u64, DENIED_FRAMES);
    for flow in passed.iter().chain(&denied) {
        assert_eq!(one(flow, "sflow.flow_sample.sampling_rate"), "1");
        assert_eq!(one(flow, "sflow.flow_sample.input_interface"), ifindex);
        assert_eq!(one(flow, "sflow.flow_sample.dropped_packets"), "0");
        // The frame as it arrived, plus the 4 bytes of FCS sFlow counts.
        assert_eq!(
            one(flow, "sflow_245.header.frame_length"),
            (UDP_FRAME_LEN + 4).to_string()
        );
        let pool: u64 = one(flow, "sflow.flow_sample.sample_pool").parse().unwrap();
        assert!(pool >= 1, "sample pool {pool}");
    }
    for flow in &denied {
        // Discarded (format 1), reason 258: ACL.
        assert_eq!(one(flow, "sflow.flow_sample.output_interface_format"), "1");
        assert_eq!(one(flow, "sflow.flow_sample.output_interface_value"), "258");
    }
    for flow in &passed {
        assert_eq!(one(flow, "sflow.flow_sample.output_interface_format"), "0");
    }
    // Counter samples of A's interface, with what xdpath counted.
    let counters: Vec<&Value> = packets
        .iter()
        .flat_map(|packet| objects_with(packet, "sflow_245.ifindex"))
        .filter(|record| one(record, "sflow_245.ifindex") == ifindex)
        .collect();
    assert!(!counters.is_empty(), "no counter sample of {ifindex}");
    let last = counters.last().unwrap();
    let in_packets: u64 = one(last, "sflow_245.ifinpkt").parse().unwrap();
    let discards: u64 = one(last, "sflow_245.ifindisc").parse().unwrap();
    assert!(
        in_packets >= PASSED_FRAMES + DENIED_FRAMES,
        "ifInUcastPkts {in_packets}"
    );
    assert_eq!(discards, DENIED_FRAMES, "ifInDiscards");
}

#[test]
fn ipfix_records_decode_in_tshark_with_the_flows_sent() {
    xdpath_lab::needs_root!();
    let (bed, _rule) = attached_bed();
    let (_stats, packets) = export_to_collector(
        &bed,
        "ipfix",
        &[
            "--idle-timeout",
            "1",
            "--active-timeout",
            "30",
            "--template-refresh",
            "1",
            "--observation-domain",
            "42",
            "--duration",
            "3.5",
        ],
    );
    for packet in &packets {
        assert_eq!(one(packet, "cflow.version"), "10");
        assert_eq!(one(packet, "cflow.od_id"), "42");
    }
    let template_ids: Vec<String> = packets
        .iter()
        .flat_map(|packet| strings(packet, "cflow.template_id"))
        .collect();
    assert!(
        template_ids.iter().any(|id| id == "256"),
        "{template_ids:?}"
    );
    let ifindex = ifindex(&bed);
    let flows: Vec<&Value> = packets
        .iter()
        .flat_map(|packet| objects_with(packet, "cflow.octets"))
        .filter(|flow| strings(flow, "cflow.srcaddr") == [bed.b().ipv4.to_string()])
        .collect();
    // forwardingStatus (RFC 7270): forwarded (1), reason unknown (0);
    // dropped (2), reason ACL deny (1).
    for (port, frames, status, code_field, code) in [
        (
            PASSED_PORT,
            PASSED_FRAMES,
            "1",
            "cflow.forwarding_status_forward_code",
            "0",
        ),
        (
            DENIED_PORT,
            DENIED_FRAMES,
            "2",
            "cflow.forwarding_status_drop_code",
            "1",
        ),
    ] {
        let records: Vec<&&Value> = flows
            .iter()
            .filter(|flow| one(flow, "cflow.dstport") == port.to_string())
            .collect();
        let packets: u64 = records
            .iter()
            .map(|flow| one(flow, "cflow.packets").parse::<u64>().unwrap())
            .sum();
        let octets: u64 = records
            .iter()
            .map(|flow| one(flow, "cflow.octets").parse::<u64>().unwrap())
            .sum();
        assert_eq!(packets, frames, "packets of the flow to {port}");
        assert_eq!(
            octets,
            frames * UDP_FRAME_LEN,
            "octets of the flow to {port}"
        );
        for flow in records {
            assert_eq!(one(flow, "cflow.dstaddr"), bed.a().ipv4.to_string());
            assert_eq!(one(flow, "cflow.protocol"), "17");
            assert_eq!(one(flow, "cflow.inputint"), ifindex);
            assert_eq!(
                one(flow, "cflow.forwarding_status"),
                status,
                "status of {port}"
            );
            assert_eq!(one(flow, code_field), code, "status code of {port}");
            let mut starts = Vec::new();
            find_all(flow, "cflow.abstimestart", &mut starts);
            assert_eq!(starts.len(), 1);
        }
    }
}

#[test]
fn capture_holds_exactly_the_frames_dropped() {
    xdpath_lab::needs_root!();
    let (bed, rule) = attached_bed();
    let file = scratch("drops.pcapng");
    let file_arg = file.display().to_string();
    let before = json(&xdpath_ok(&bed, &["--json", "stats", &bed.a().interface]));
    let capture = background_xdpath(
        &bed,
        &[
            "--json",
            "capture",
            "--iface",
            &bed.a().interface,
            "--verdict",
            "drop",
            "-w",
            &file_arg,
        ],
        "capturing",
    );
    send_udp(&bed, 5555, PASSED_PORT, PASSED_FRAMES);
    send_udp(&bed, 5556, DENIED_PORT, DENIED_FRAMES);
    bed.exec(
        Side::B,
        "ping",
        ["-c", "3", "-i", "0.05", &bed.a().ipv4.to_string()],
    )
    .expect("ping");
    // Every frame sent has been through XDP; then stop the capture.
    let deadline = Instant::now() + Duration::from_secs(5);
    let dropped = loop {
        let after = json(&xdpath_ok(&bed, &["--json", "stats", &bed.a().interface]));
        let dropped = common::counted(&after, "drop", "rule-deny")
            - common::counted(&before, "drop", "rule-deny");
        if dropped >= DENIED_FRAMES || Instant::now() > deadline {
            break dropped;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(capture.id() as i32, libc::SIGINT) };
    let report = json(&finished(capture));
    assert_eq!(dropped, DENIED_FRAMES);
    assert_eq!(report["packets"].as_u64(), Some(dropped), "{report}");
    assert_eq!(report["lost"], 0);

    let output = std::process::Command::new("tshark")
        .args(["-n", "-r", &file_arg, "-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "frame.comment",
            "-e",
            "ip.src",
            "-e",
            "udp.dstport",
            "-e",
            "frame.len",
        ])
        .output()
        .expect("tshark");
    assert!(output.status.success(), "{output:?}");
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as u64, DENIED_FRAMES, "{text}");
    let expected = format!(
        "verdict=drop reason=rule-deny rule={rule}|{}|{DENIED_PORT}|{UDP_FRAME_LEN}",
        bed.b().ipv4
    );
    for line in lines {
        assert_eq!(line, expected);
    }
}

#[test]
fn bad_observe_input_is_refused_clearly_and_changes_nothing() {
    xdpath_lab::needs_root!();
    let (bed, _) = attached_bed();
    let interface = bed.a().interface.clone();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["sample", &interface, "16777217"],
            "sampling rate \"16777217\"",
        ),
        (vec!["sample", &interface, "lots"], "is not a number"),
        (vec!["sample", "nosuchif0", "100"], "nosuchif0"),
        (
            vec![
                "capture",
                "--reason",
                "nonsense",
                "-w",
                "/tmp/xdpath-never.pcapng",
            ],
            "unknown reason \"nonsense\"",
        ),
        (
            vec!["capture", "--iface", "lo", "-w", "/tmp/xdpath-never.pcapng"],
            "xdpath is not attached to \"lo\"",
        ),
        (
            vec![
                "capture",
                "--snaplen",
                "0",
                "-w",
                "/tmp/xdpath-never.pcapng",
            ],
            "snap length 0",
        ),
        (
            vec![
                "export",
                "sflow",
                "--collector",
                "10.0.0.1:6343",
                &interface,
            ],
            "sampling is off",
        ),
        (
            vec![
                "export",
                "ipfix",
                "--collector",
                "10.0.0.1:4739",
                "--rate",
                "1",
                "lo",
            ],
            "xdpath is not attached to \"lo\"",
        ),
        (
            vec![
                "export",
                "ipfix",
                "--collector",
                "10.0.0.1:4739",
                "--rate",
                "1",
                "--idle-timeout",
                "0",
                &interface,
            ],
            "--idle-timeout must be a positive number",
        ),
        (
            vec!["top", "--interval", "0", "-n", "1"],
            "--interval must be",
        ),
    ];
    for (args, message) in cases {
        let output = xdpath(&bed, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert!(!Path::new("/tmp/xdpath-never.pcapng").exists());
    // The interface's rate is still off.
    let top = xdpath_ok(&bed, &["--json", "top", "-n", "1", "--interval", "0.2"]);
    let frame = json(top.lines().next().expect("one frame"));
    assert_eq!(frame["not_sampling"], serde_json::json!([interface]));
    // And the good input: a rate set in place, shown by status, then off.
    let rate_of = |bed: &TestBed| {
        let status = json(&xdpath_ok(bed, &["--json", "status"]));
        status[0]["sample_rate"].clone()
    };
    xdpath_ok(&bed, &["sample", &interface, "10"]);
    assert_eq!(rate_of(&bed), 10);
    xdpath_ok(&bed, &["sample", &interface, "off"]);
    assert_eq!(rate_of(&bed), 0);
}
