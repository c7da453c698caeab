//! Auto-mitigation end to end: xdpathd in namespace A samples its veth,
//! hping3 floods it from a spoofed source in namespace B, and the daemon
//! puts that source on the blocklist within the configured window, while
//! pings from B's own address keep being answered. In dry run the same
//! flood is only reported. Also: the sample-fed routes (`/v1/top`,
//! `/v1/telemetry`) and metrics, and a standalone `xdpath export` refused
//! while the daemon holds the sample ring.
//!
//! Needs root, hping3, ping and curl.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;
use xdpath_lab::testenv::{Side, TestBed};

use common::Daemon;

/// The flood's spoofed source.
const FLOODER: &str = "198.18.0.7";
/// Packets per second above which a source is blocked.
const THRESHOLD_PPS: u64 = 2000;
/// The rate-measuring window, ms.
const WINDOW_MS: u64 = 1000;

fn start(bed: &TestBed, name: &str) -> Daemon {
    Daemon::in_bed(bed, name)
}

fn config(bed: &TestBed, dry_run: bool) -> String {
    // The exporters send to B, where nothing listens: what is checked is
    // that the daemon runs them from its config and counts what it sent
    // (tshark's view of the datagrams is xdpath's observe_e2e test).
    format!(
        "[[interface]]\nname = \"{}\"\nsample_rate = 10\n\n\
         [export.sflow]\ncollectors = [\"{b}:6343\"]\ncounter_interval = \"1s\"\n\n\
         [export.ipfix]\ncollectors = [\"{b}:4739\"]\nidle_timeout = \"1s\"\n\n\
         [analytics]\ntop_window = \"2s\"\n\n\
         [mitigation]\nthreshold_pps = {THRESHOLD_PPS}\nwindow = \"{WINDOW_MS}ms\"\n\
         ttl = \"60s\"\ndry_run = {dry_run}\n",
        bed.a().interface,
        b = bed.b().ipv4,
    )
}

fn apply(daemon: &Daemon, text: &str) {
    let (status, body) = daemon.post_config("/v1/config", text, "application/toml");
    assert_eq!(status, 200, "{body}");
}

/// Waits until the daemon's consumer runs with mitigation as asked.
fn wait_running(daemon: &Daemon, dry_run: bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = daemon.ok("GET", "/v1/mitigation", None);
        if state["enabled"] == true && state["config"]["dry_run"] == dry_run {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "mitigation did not start: {state}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn flood(bed: &TestBed, seconds: u32) -> std::process::Child {
    let target = bed.a().ipv4.to_string();
    xdpath_lab::servers::hping3(
        bed,
        seconds,
        &["--udp", "-a", FLOODER, "-p", "7777", "--flood", &target],
    )
    .expect("hping3")
}

fn blocked(daemon: &Daemon) -> Vec<String> {
    let list = daemon.ok("GET", "/v1/blocklist", None);
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry["prefix"].as_str().map(str::to_string))
        .collect()
}

fn pings_answered(bed: &TestBed, count: u32) -> u32 {
    let target = bed.a().ipv4.to_string();
    let output = bed
        .exec(
            Side::B,
            "ping",
            [
                "-n",
                "-c",
                &count.to_string(),
                "-i",
                "0.05",
                "-W",
                "1",
                &target,
            ],
        )
        .expect("ping");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| {
            let (_, rest) = line.split_once(" packets transmitted, ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_flood_source_is_blocked_in_time_and_dry_run_only_reports() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let daemon = start(&bed, "mitigation");

    // Dry run: the flood is reported, not blocked.
    apply(&daemon, &config(&bed, true));
    wait_running(&daemon, true);
    let mut child = flood(&bed, 3);
    let _ = child.wait();
    let state = daemon.ok("GET", "/v1/mitigation", None);
    assert!(state["reported"].as_u64() >= Some(1), "{state}");
    assert_eq!(state["blocked"], 0, "{state}");
    let action = &state["actions"][0];
    assert_eq!(action["prefix"], FLOODER, "{state}");
    assert_eq!(action["dry_run"], true);
    assert!(action["rate_pps"].as_u64() > Some(THRESHOLD_PPS), "{state}");
    assert!(blocked(&daemon).is_empty(), "dry run blocked something");
    // The flood's source shows as the top talker.
    let top = daemon.ok("GET", "/v1/top?kind=sources&limit=3", None);
    assert!(top["running"] == true, "{top}");

    // For real: blocked within the window plus one consumer round.
    apply(&daemon, &config(&bed, false));
    wait_running(&daemon, false);
    let started = Instant::now();
    let mut child = flood(&bed, 6);
    let prefix = format!("{FLOODER}/32");
    let took = loop {
        if blocked(&daemon).contains(&prefix) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_millis(WINDOW_MS * 3),
            "{FLOODER} not blocked after {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("{FLOODER} blocked {took:?} after the flood started");
    // Legitimate traffic from B's own address, while the flood goes on.
    let answered = pings_answered(&bed, 20);
    let _ = child.wait();
    assert_eq!(answered, 20, "pings from {} lost", bed.b().ipv4);
    assert_eq!(
        blocked(&daemon),
        std::slice::from_ref(&prefix),
        "only the flooder"
    );
    let stats: Value = serde_json::from_str(&daemon.xdpath(&["--json", "stats"])).unwrap();
    assert!(xdpath::stats::packets_in_json(&stats, "drop", Some("blocklisted")) > 1000);
    let state = daemon.ok("GET", "/v1/mitigation", None);
    assert_eq!(state["blocked"], 1, "{state}");
    let last = state["actions"]
        .as_array()
        .and_then(|actions| actions.last())
        .cloned();
    let last = last.expect("an action");
    assert_eq!(
        (last["prefix"].as_str(), last["dry_run"].as_bool()),
        (Some(FLOODER), Some(false))
    );
    let (_, metrics) = daemon.call("GET", "/metrics", None);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert_eq!(
        metric(&metrics, "xdpath_mitigation_blocks_total"),
        1,
        "{metrics}"
    );
    assert!(metric(&metrics, "xdpath_samples_total") > 0);

    // The consumer's counts, and a standalone exporter refused while the
    // daemon holds the ring.
    let telemetry = daemon.ok("GET", "/v1/telemetry", None);
    assert_eq!(telemetry["running"], true, "{telemetry}");
    assert!(
        telemetry["stats"]["samples"].as_u64() > Some(100),
        "{telemetry}"
    );
    let interface = bed.a().interface.clone();
    let output = daemon
        .command(&common::xdpath_cli().display().to_string())
        .args([
            "export",
            "sflow",
            "--collector",
            "127.0.0.1:6343",
            &interface,
        ])
        .output()
        .expect("xdpath export");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("already read by another process"),
        "{stderr}"
    );
    // Bad queries are refused.
    for path in [
        "/v1/top?kind=planets",
        "/v1/top?by=volume",
        "/v1/top?limit=0",
    ] {
        let (status, body) = daemon.call("GET", path, None);
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_query", "{body}");
    }
}
