//! Steering to CPUs end to end (needs root): xdpath on namespace A's veth
//! hands the frames it passes to the stack to every CPU by flow hash
//! (a CPU map), and parallel TCP flows from namespace B still arrive whole
//! while their frames are spread over the CPUs.

mod common;

use common::{bed, json, xdpath, xdpath_ok};
use xdpath_lab::testenv::{Side, TestBed};

fn steered(bed: &TestBed) -> Vec<(u32, u64)> {
    bed.run_in_a(xdpath::dataplane::steer::steered)
        .expect("run in A")
        .expect("steering counters")
}

#[test]
fn flows_are_spread_over_the_cpus_and_arrive_whole() {
    xdpath_lab::needs_root!();
    let cpus = std::thread::available_parallelism().map_or(1, |count| count.get());
    let bed = bed();
    let interface = bed.a().interface.clone();
    // Checksums in software: a frame handed to another CPU leaves its
    // checksum-offload state behind.
    bed.exec_ok(Side::B, "ethtool", ["-K", &bed.b().interface, "tx", "off"])
        .expect("ethtool");
    xdpath_ok(&bed, &["attach", &interface, "--mode", "native"]);
    let report = json(&xdpath_ok(
        &bed,
        &[
            "--json",
            "steer",
            "enable",
            &interface,
            "--cpus",
            "all",
            "--queue-size",
            "1024",
        ],
    ));
    assert_eq!(
        report["cpus"].as_array().map(Vec::len),
        Some(cpus),
        "{report}"
    );

    let address = bed.a().ipv4.to_string();
    let mut server = bed
        .command(Side::A, "iperf3")
        .args(["-s", "-1", "-B", &address])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 server");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let client = bed
        .exec(
            Side::B,
            "iperf3",
            ["-c", &address, "-P", "8", "-t", "2", "-J"],
        )
        .expect("iperf3 client");
    let _ = server.wait();
    assert!(
        client.status.success(),
        "{}",
        String::from_utf8_lossy(&client.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&client.stdout).expect("JSON");
    let received = result["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    assert!(received > 1_000_000, "received {received} bytes");

    let counts = steered(&bed);
    let total: u64 = counts.iter().map(|(_, count)| count).sum();
    assert!(total > 1000, "{counts:?}");
    for (cpu, count) in &counts {
        // Eight flows over the CPUs: each CPU gets a real share.
        assert!(
            *count * 10 >= total / cpus as u64,
            "CPU {cpu} got {count} of {total} frames: {counts:?}"
        );
    }
    let stats = json(&xdpath_ok(&bed, &["--json", "stats", &interface]));
    assert!(xdpath::stats::packets_in_json(&stats, "redirect", Some("ipv4-tcp")) >= total / 2);

    // Off: nothing more is steered, and traffic still flows.
    xdpath_ok(&bed, &["steer", "disable", &interface]);
    let before: u64 = steered(&bed).iter().map(|(_, count)| count).sum();
    let ping = bed
        .exec(Side::B, "ping", ["-c", "3", "-i", "0.1", &address])
        .expect("ping");
    assert!(ping.status.success());
    let after: u64 = steered(&bed).iter().map(|(_, count)| count).sum();
    assert_eq!(before, after, "steered after disable");
}

#[test]
fn bad_steering_input_is_refused_clearly() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    let output = xdpath(&bed, &["steer", "enable", &interface]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains(&interface));
    xdpath_ok(&bed, &["attach", &interface]);
    for (args, message) in [
        (vec!["--cpus", "999"], "CPU 999 does not exist"),
        (vec!["--cpus", "0,x"], "is not a CPU number or range"),
        (vec!["--queue-size", "1"], "queue size 1 is out of range"),
    ] {
        let mut full = vec!["steer", "enable", interface.as_str()];
        full.extend(args);
        let output = xdpath(&bed, &full);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(message),
            "{full:?}: {stderr}"
        );
    }
    let status = json(&xdpath_ok(&bed, &["--json", "status"]));
    assert_eq!(status[0]["interface"], interface.as_str());
}
