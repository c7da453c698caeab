//! Bad input through the `xdpath` binary (needs root): each case must exit
//! non-zero with exactly one stderr line, `xdpath: error: ...`, naming the
//! interface and the problem, and change nothing: `xdpath status --json`,
//! the interface's XDP program and the pins are the same before and after.
//!
//! Every case runs inside namespace A of its own test bed, under
//! `nsenter --net=/run/netns/A`.

mod common;

use common::{bed, xdpath, xdpath_ok};
use serde_json::Value;
use xdpath_lab::testenv::{link_xdp, Side, TestBed};

/// An XDP program of xdp-tools (package xdp-tools): a foreign program.
const FOREIGN_OBJECT: &str = "/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_alw_all.o";

/// Everything a failed command must leave alone.
#[derive(Debug, PartialEq)]
struct State {
    status: Value,
    xdp: Option<Value>,
    pins: Vec<String>,
}

fn state(bed: &TestBed) -> State {
    let status = serde_json::from_str(&xdpath_ok(bed, &["status", "--json"])).expect("status JSON");
    let xdp = link_xdp(&bed.a().path, &bed.a().interface).expect("ip link show");
    let mut pins: Vec<String> = walk(&bed.a().pin_dir());
    pins.sort();
    State { status, xdp, pins }
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        found.push(path.display().to_string());
        if path.is_dir() {
            found.extend(walk(&path));
        }
    }
    found
}

/// Runs a command that must fail; checks the one error line mentions every
/// one of `needles`, and returns that line.
fn fails(bed: &TestBed, args: &[&str], needles: &[&str]) -> String {
    let output = xdpath(bed, args);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success(), "xdpath {args:?} succeeded");
    assert_eq!(output.status.code(), Some(1), "xdpath {args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "xdpath {args:?}: exactly one stderr line, got {stderr:?}"
    );
    let line = lines[0];
    assert!(line.starts_with("xdpath: error: "), "{line}");
    for needle in needles {
        assert!(
            line.contains(needle),
            "{line:?} does not mention {needle:?}"
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    if args.contains(&"--json") {
        let reply: Value = serde_json::from_str(&stdout).expect("a JSON error on stdout");
        assert_eq!(
            reply["error"].as_str(),
            line.strip_prefix("xdpath: error: "),
            "the JSON error is the stderr message"
        );
    } else {
        assert!(stdout.is_empty(), "nothing on stdout: {stdout}");
    }
    line.to_string()
}

/// `fails` and nothing changed.
fn fails_without_change(bed: &TestBed, args: &[&str], needles: &[&str]) -> String {
    let before = state(bed);
    let line = fails(bed, args, needles);
    assert_eq!(state(bed), before, "xdpath {args:?} changed the state");
    line
}

#[test]
fn attach_to_a_missing_interface() {
    xdpath_lab::needs_root!();
    let bed = bed();
    fails_without_change(
        &bed,
        &["attach", "xdpt-missing0"],
        &["xdpt-missing0", "does not exist"],
    );
    fails_without_change(
        &bed,
        &["attach", "xdpt-missing0", "--json"],
        &["xdpt-missing0", "does not exist"],
    );
    // The other end of the pair lives in namespace B, not here.
    let other = bed.b().interface.as_str();
    fails_without_change(
        &bed,
        &["attach", other, "--mode", "native"],
        &[other, "does not exist"],
    );
    let long = "an-interface-name-too-long";
    fails_without_change(
        &bed,
        &["attach", long],
        &[long, "not a valid interface name"],
    );
    assert_eq!(state(&bed).status, serde_json::json!([]));
}

#[test]
fn a_second_attach_to_the_same_interface() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.as_str();
    xdpath_ok(&bed, &["attach", interface, "--mode", "native"]);
    let first = state(&bed);
    let id = first.status[0]["program_id"]
        .as_u64()
        .expect("a program id");
    assert_eq!(
        first.xdp.as_ref().map(|xdp| xdp["prog"]["id"].clone()),
        Some(id.into())
    );
    for extra in [
        &[][..],
        &["--mode", "native"],
        &["--mode", "generic"],
        &["--malformed", "drop"],
    ] {
        let mut args = vec!["attach", interface];
        args.extend_from_slice(extra);
        fails_without_change(
            &bed,
            &args,
            &[interface, "already attached", "xdpath detach"],
        );
    }
    let after = state(&bed);
    assert_eq!(
        after.status[0]["program_id"].as_u64(),
        Some(id),
        "the first program is still attached"
    );
    assert_eq!(after.status[0]["malformed"], "pass");
}

#[test]
fn detach_where_nothing_is_attached() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.as_str();
    fails_without_change(&bed, &["detach", interface], &[interface, "not attached"]);
    fails_without_change(
        &bed,
        &["detach", interface, "--json"],
        &[interface, "not attached"],
    );
    fails_without_change(
        &bed,
        &["detach", "xdpt-missing0"],
        &["xdpt-missing0", "not attached"],
    );
    // Attached and detached once: a second detach is an error again.
    xdpath_ok(&bed, &["attach", interface]);
    xdpath_ok(&bed, &["detach", interface]);
    fails_without_change(&bed, &["detach", interface], &[interface, "not attached"]);
}

#[test]
fn offload_mode_on_a_veth() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.as_str();
    let before = state(&bed);
    assert_eq!(before.xdp, None);
    let line = fails_without_change(
        &bed,
        &["attach", interface, "--mode", "offload"],
        &[interface, "offload"],
    );
    assert!(!line.contains("[]"), "an unhelpful message: {line}");
    let after = state(&bed);
    assert_eq!(after.xdp, None, "nothing attached");
    assert!(after.pins.is_empty(), "no pins: {:?}", after.pins);
    assert!(!bed.a().interface_pin_dir().exists());
}

#[test]
fn stats_for_an_interface_xdpath_is_not_attached_to() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.as_str();
    fails_without_change(&bed, &["stats", interface], &[interface, "not attached"]);
    fails_without_change(
        &bed,
        &["stats", interface, "--json"],
        &[interface, "not attached"],
    );
    fails_without_change(
        &bed,
        &["stats", "xdpt-missing0"],
        &["xdpt-missing0", "not attached"],
    );
    // Without an interface there is nothing to report, which is no error.
    let all: Value = serde_json::from_str(&xdpath_ok(&bed, &["stats", "--json"])).expect("JSON");
    assert_eq!(all, serde_json::json!([]));
}

#[test]
fn attach_over_a_foreign_xdp_program() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.as_str();
    bed.exec_ok(
        Side::A,
        "ip",
        [
            "link",
            "set",
            "dev",
            interface,
            "xdp",
            "obj",
            FOREIGN_OBJECT,
            "sec",
            "xdp",
        ],
    )
    .expect("load xdp-tools' xdpfilt_alw_all.o with ip");
    let before = state(&bed);
    let foreign = before.xdp.clone().expect("the foreign program is attached");
    assert_eq!(foreign["prog"]["name"], "xdpfilt_alw_all", "{foreign}");
    assert_eq!(before.status, serde_json::json!([]));
    for mode in ["auto", "native", "generic"] {
        fails_without_change(
            &bed,
            &["attach", interface, "--mode", mode],
            &[
                interface,
                "XDP program that xdpath did not attach",
                "xdp off",
            ],
        );
    }
    fails_without_change(&bed, &["detach", interface], &[interface, "not attached"]);
    assert_eq!(
        state(&bed).xdp,
        Some(foreign),
        "the foreign program is untouched"
    );
}
