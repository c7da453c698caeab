//! `export --rate N` cut short: killed with SIGKILL it leaves its rate
//! neither recorded as the interface's (what comes back after a reboot)
//! nor in force after the next command, which puts the operator's back
//! and says so; an operator's `sample` made while it runs is kept when it
//! ends. Needs root: real processes in a test bed's namespaces.

mod common;

use std::time::Duration;

use common::background::{ended_within, signal, spawn_ready};
use common::{bed, json, text, xdpath, xdpath_ok};
use serde_json::Value;
use xdpath_lab::testenv::TestBed;

/// The sampling rate the kernel runs A's interface with.
fn kernel_rate(bed: &TestBed) -> Value {
    json(&xdpath_ok(bed, &["--json", "status"]))[0]["sample_rate"].clone()
}

/// The sampling rate recorded for A's interface (what comes back after a
/// reboot).
fn recorded_rate(bed: &TestBed) -> Value {
    let path = bed.a().state_dir().join("interfaces.json");
    let saved = json(&std::fs::read_to_string(&path).expect("interfaces.json"));
    saved["interfaces"][&bed.a().interface]["sample_rate"].clone()
}

fn export_args<'a>(collector: &'a str, interface: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["export", "ipfix", "--collector", collector, "--rate", "3"];
    args.extend_from_slice(more);
    args.push(interface);
    args
}

#[test]
fn an_export_killed_leaves_the_operators_rate_recorded_and_in_force() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    let collector = format!("{}:4739", bed.b().ipv4);
    xdpath_ok(&bed, &["attach", &interface]);
    xdpath_ok(&bed, &["sample", &interface, "7"]);
    let export = spawn_ready(&bed, &export_args(&collector, &interface, &[]), "exporting");
    // The run's rate in the kernel; the operator's in the record, even
    // after a command that records what the interfaces run.
    assert_eq!(kernel_rate(&bed), 3);
    assert_eq!(recorded_rate(&bed), 7);
    signal(&export, libc::SIGKILL);
    ended_within(export, Duration::from_secs(5), "the killed export");
    assert_eq!(recorded_rate(&bed), 7);
    // The next command puts the operator's rate back, and says so.
    let output = xdpath(&bed, &["--json", "status"]);
    assert!(output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ended without putting the sampling rates back"),
        "{stderr}"
    );
    assert_eq!(
        json(&String::from_utf8_lossy(&output.stdout))[0]["sample_rate"],
        7
    );
    assert_eq!(recorded_rate(&bed), 7);
    xdpath_ok(&bed, &["state", "check"]);

    // An operator's rate set while an export runs is kept when it ends.
    let export = spawn_ready(
        &bed,
        &export_args(&collector, &interface, &["--duration", "2"]),
        "exporting",
    );
    xdpath_ok(&bed, &["sample", &interface, "50"]);
    assert_eq!(recorded_rate(&bed), 50);
    let output = ended_within(export, Duration::from_secs(10), "the export");
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(kernel_rate(&bed), 50);
    assert_eq!(recorded_rate(&bed), 50);
}
