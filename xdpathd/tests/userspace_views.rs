//! The daemon's views of an interface a user-space runtime serves
//! (`xdpath run --userspace`): `/v1/stats` and `/metrics` list it with the
//! runtime's counters, and `/v1/rules` counts its rule hits (hostile obs
//! F4: the interface was absent from both, and the rule's hits were the
//! kernel map's, which the runtime never writes).
//!
//! Needs root and ping.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use xdpath_lab::testenv::Side;

use common::{in_namespace, xdpath_cli, Daemon};

/// The runtime, stopped on drop.
struct Runtime(Child);

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `check` for up to `limit`.
fn within(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_daemon_reports_what_a_user_space_runtime_enforces() {
    xdpath_lab::needs_root!();
    let bed = xdpath_lab::testenv::TestBed::new().expect("the test bed");
    let daemon = Daemon::in_bed(&bed, "userspace-views");
    let interface = bed.a().interface.clone();
    let added = daemon.ok(
        "POST",
        "/v1/rules",
        Some(r#"{"dst":"0.0.0.0/0","proto":"icmp","action":"drop"}"#),
    );
    let id = added["id"].as_u64().expect("the rule's id");
    let _runtime = Runtime(
        in_namespace(&bed.a().path, &xdpath_cli().display().to_string())
            .args(["run", "--userspace", &interface, "--duration", "30"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the runtime"),
    );
    let a4 = bed.a().ipv4.to_string();
    let hits = || -> u64 {
        let rules = daemon.ok("GET", "/v1/rules", None);
        rules
            .as_array()
            .and_then(|rules| rules.iter().find(|rule| rule["id"].as_u64() == Some(id)))
            .and_then(|rule| rule["hits"].as_u64())
            .unwrap_or(0)
    };
    // Pings from B, dropped by the runtime by the rule, until its
    // snapshot counts them (the runtime takes a moment to start).
    let counted = within(Duration::from_secs(15), || {
        let _ = bed.exec(Side::B, "ping", ["-c", "2", "-i", "0.2", "-W", "1", &a4]);
        hits() >= 1
    });
    assert!(
        counted,
        "/v1/rules counts the runtime's drops as rule {id}'s hits: {}",
        daemon.ok("GET", "/v1/rules", None)
    );

    let stats = daemon.ok("GET", "/v1/stats", None);
    let row = stats["interfaces"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|row| row["interface"] == interface.as_str())
        })
        .unwrap_or_else(|| panic!("{interface} in /v1/stats: {stats}"));
    assert_eq!(row["userspace"], true, "{row}");
    let denied = row["counters"].as_array().is_some_and(|counters| {
        counters.iter().any(|counter| {
            counter["reason"] == "rule-deny" && counter["packets"].as_u64() >= Some(1)
        })
    });
    assert!(denied, "the runtime's rule drops in /v1/stats: {row}");

    let (_, metrics) = daemon.call("GET", "/metrics", None);
    let metrics = metrics.as_str().unwrap_or_default();
    let series = format!("interface=\"{interface}\"");
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("xdpath_packets_total")
                && line.contains(&series)
                && line.contains("rule-deny")),
        "the runtime's interface in /metrics: {metrics}"
    );
}
