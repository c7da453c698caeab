//! Sampling, export and capture end to end (needs root): xdpath on
//! namespace A's veth, hping3 traffic from namespace B, the exporters'
//! datagrams captured by tshark in namespace B (the collector) and decoded
//! there, and `xdpath capture` files opened with tshark.

mod common;
#[path = "observe_e2e/harness.rs"]
mod harness;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::tshark::{assert_clean, find_all, objects_with, one, strings, tshark};
use common::{bed, json, xdpath, xdpath_ok, XDPATH};
use serde_json::Value;
use xdpath_lab::testenv::{Side, TestBed};

use harness::*;

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

// Long: one export run, then each decoded field checked against what was
// sent, flow by flow.
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
        // The header's domain, and the sampling options records' scope.
        let domains = strings(packet, "cflow.od_id");
        assert!(domains.iter().all(|id| id == "42"), "{domains:?}");
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
        // octetDeltaCount counts IP octets (RFC 7012): the frame less its
        // 14-byte Ethernet header.
        assert_eq!(
            octets,
            frames * (UDP_FRAME_LEN - 14),
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

// Long: a table of refused inputs and their errors, then the good input.
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
