//! End to end, in network namespaces (needs root): the `xdpath` binary
//! attaches inside namespace A of a test bed (run under
//! `nsenter --net=/run/netns/A`, as a user would), side B sends the mixed
//! traffic set and real pings, and `xdpath stats --json` must show exactly
//! what was sent.
//!
//! The test bed is quiet (static neighbours, no DAD, no router
//! solicitations, multicast reports over before the test starts), so every
//! counter is checked exactly, bytes included. Each test has its own bed, so
//! they run in parallel.

use std::path::Path;

mod common;

use common::{assert_counters_settle, bed, counters_of, json, xdpath_ok, XDPATH};
use serde_json::Value;
use xdpath_core::{Action, Counter, MalformedPolicy};
use xdpath_lab::testenv::{self, Side, TestBed};
use xdpath_lab::traffic::{Expected, Mix};

const PINGS: u64 = 3;
const PING_SIZE: u64 = 56;

fn attach(bed: &TestBed, extra: &[&str]) -> Value {
    let interface = bed.a().interface.as_str();
    let mut args = vec!["attach", interface, "--json"];
    args.extend_from_slice(extra);
    let reply = json(&xdpath_ok(bed, &args));
    assert_eq!(reply["interface"], interface);
    reply
}

/// The one entry of `xdpath status --json` in namespace A.
fn status(bed: &TestBed) -> Value {
    let statuses = json(&xdpath_ok(bed, &["status", "--json"]));
    let entries = statuses.as_array().expect("status is an array");
    assert_eq!(entries.len(), 1, "one attached interface: {statuses}");
    let entry = entries[0].clone();
    assert_eq!(entry["interface"], bed.a().interface.as_str());
    entry
}

/// `xdp` of `ip -j link show` for side A's veth, if any.
fn link_xdp(bed: &TestBed) -> Option<Value> {
    testenv::link_xdp(&bed.a().path, &bed.a().interface).expect("ip link show")
}

/// The counters as `xdpath stats IFACE --json` reports them.
fn stats(bed: &TestBed) -> Vec<Counter> {
    let interface = bed.a().interface.as_str();
    let report = json(&xdpath_ok(bed, &["stats", interface, "--json"]));
    let entries = report.as_array().expect("stats is an array");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["interface"], interface);
    counters_of(&entries[0]["counters"])
}

/// Waits until the counters equal `expected`, then checks they stay so.
fn assert_counters(bed: &TestBed, expected: &Expected) {
    assert_counters_settle(expected, || stats(bed), "stats");
}

fn send_mix(bed: &TestBed, mix: &Mix) {
    let mix = mix.clone();
    let interface = bed.b().interface.clone();
    bed.run_in_b(move || mix.send(&interface))
        .expect("enter namespace B")
        .expect("send the mix");
}

/// `ping -c PINGS` from B to A's address; every echo must be answered.
fn ping(bed: &TestBed, v6: bool) {
    let address = if v6 {
        bed.a().ipv6.to_string()
    } else {
        bed.a().ipv4.to_string()
    };
    let family = if v6 { "-6" } else { "-4" };
    let (count, size) = (PINGS.to_string(), PING_SIZE.to_string());
    let output = bed
        .exec(
            Side::B,
            "ping",
            [
                family, "-n", "-q", "-c", &count, "-i", "0.2", "-W", "2", "-s", &size, &address,
            ],
        )
        .expect("run ping");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ping {address} failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains(&format!("{PINGS} packets transmitted, {PINGS} received")),
        "{text}"
    );
}

fn pings_expected(expected: &mut Expected) {
    expected
        .add_pings(false, PINGS, PING_SIZE)
        .add_pings(true, PINGS, PING_SIZE);
}

fn assert_detached(bed: &TestBed) {
    let interface = bed.a().interface.as_str();
    let reply = json(&xdpath_ok(bed, &["detach", interface, "--json"]));
    assert_eq!(reply["detached"], true);
    assert_eq!(link_xdp(bed), None, "no XDP program left on {interface}");
    assert!(
        !bed.a().interface_pin_dir().exists(),
        "{} still exists",
        bed.a().interface_pin_dir().display()
    );
    assert_eq!(
        json(&xdpath_ok(bed, &["status", "--json"])),
        serde_json::json!([])
    );
}

fn assert_program(bed: &TestBed, status: &Value, mode: &str, kernel_mode: u64) -> u64 {
    assert_eq!(status["mode"], mode, "{status}");
    assert_eq!(status["healthy"], true, "{status}");
    let id = status["program_id"].as_u64().expect("a program id");
    assert!(id > 0);
    let tag = status["program_tag"].as_str().expect("a program tag");
    assert_eq!(tag.len(), 16, "{tag}");
    assert!(tag.chars().all(|c| c.is_ascii_hexdigit()), "{tag}");
    let xdp = link_xdp(bed).expect("an XDP program on the interface");
    assert_eq!(xdp["mode"], kernel_mode, "{xdp}");
    assert_eq!(xdp["prog"]["id"], id, "{xdp}");
    assert_eq!(xdp["prog"]["tag"], tag, "{xdp}");
    assert!(bed.a().interface_pin_dir().join("link").exists());
    id
}

#[test]
fn native_attach_through_the_cli_counts_the_mix_and_pings_exactly_and_detach_cleans_up() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let reply = attach(&bed, &["--mode", "native"]);
    assert_eq!(reply["mode"], "native");
    let status = status(&bed);
    assert_program(&bed, &status, "native", 1);
    assert_eq!(status["malformed"], "pass");
    assert_eq!(
        status["ifindex"].as_u64(),
        Some(u64::from(if_index_in_a(&bed)))
    );
    assert_counters(&bed, &Expected::default());

    let mix = Mix::for_bed(&bed);
    send_mix(&bed, &mix);
    ping(&bed, false);
    ping(&bed, true);
    let mut expected = mix.expected(MalformedPolicy::Pass);
    pings_expected(&mut expected);
    assert_eq!(expected.packets_with(Action::Drop), 0);
    assert_counters(&bed, &expected);

    // Every interface when none is named: the same one.
    let all = json(&xdpath_ok(&bed, &["stats", "--json"]));
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    assert_eq!(all[0]["interface"], bed.a().interface.as_str());

    assert_detached(&bed);
}

#[test]
fn malformed_drop_drops_the_malformed_frames_while_pings_still_succeed() {
    xdpath_lab::needs_root!();
    let bed = bed();
    attach(&bed, &["--mode", "native", "--malformed", "drop"]);
    let status = status(&bed);
    assert_program(&bed, &status, "native", 1);
    assert_eq!(status["malformed"], "drop");

    let mix = Mix::for_bed(&bed);
    send_mix(&bed, &mix);
    ping(&bed, false);
    ping(&bed, true);
    let mut expected = mix.expected(MalformedPolicy::Drop);
    pings_expected(&mut expected);
    assert_eq!(expected.packets_with(Action::Drop), mix.malformed() as u64);
    assert!(mix.malformed() >= 10);
    assert_counters(&bed, &expected);
    assert_detached(&bed);
}

#[test]
fn the_program_keeps_counting_after_the_cli_has_exited() {
    xdpath_lab::needs_root!();
    let bed = bed();
    // `xdpath attach` returns: from here on only the pins hold the program.
    attach(&bed, &["--mode", "native"]);
    let id = assert_program(&bed, &status(&bed), "native", 1);
    let mix = Mix::for_bed(&bed);
    let once = mix.expected(MalformedPolicy::Pass);
    for round in 1..=3 {
        send_mix(&bed, &mix);
        let mut expected = Expected::default();
        expected.add_all(&once, round);
        assert_counters(&bed, &expected);
        assert_eq!(status(&bed)["program_id"], id, "still the same program");
    }
    assert_detached(&bed);
}

#[test]
fn generic_mode_attach_counts_the_same_traffic() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let reply = attach(&bed, &["--mode", "generic"]);
    assert_eq!(reply["mode"], "generic");
    let status = status(&bed);
    assert_program(&bed, &status, "generic", 2);

    let mix = Mix::for_bed(&bed);
    send_mix(&bed, &mix);
    ping(&bed, false);
    ping(&bed, true);
    let mut expected = mix.expected(MalformedPolicy::Pass);
    pings_expected(&mut expected);
    assert_counters(&bed, &expected);
    assert_detached(&bed);
}

#[test]
fn dropping_the_test_bed_removes_namespaces_and_pins() {
    xdpath_lab::needs_root!();
    let bed = bed();
    attach(&bed, &["--mode", "native"]);
    let (a, b) = (bed.a().clone(), bed.b().clone());
    assert!(a.interface_pin_dir().join("link").exists());
    drop(bed);
    assert!(
        !a.pin_dir().exists(),
        "{} left behind",
        a.pin_dir().display()
    );
    assert!(!b.pin_dir().exists());
    assert!(
        !Path::new(&a.path).exists(),
        "{} left behind",
        a.path.display()
    );
    assert!(
        !Path::new(&b.path).exists(),
        "{} left behind",
        b.path.display()
    );
}

fn if_index_in_a(bed: &TestBed) -> u32 {
    let interface = std::ffi::CString::new(bed.a().interface.as_str()).expect("no NUL");
    // SAFETY: if_nametoindex reads a valid C string.
    bed.run_in_a(move || unsafe { libc::if_nametoindex(interface.as_ptr()) })
        .expect("enter namespace A")
}

#[test]
fn sweep_stale_removes_the_namespaces_and_pins_of_dead_runs_only() {
    xdpath_lab::needs_root!();
    let live = bed();
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("pid_max")
        .trim()
        .parse()
        .expect("a number");
    let dead = (2..pid_max)
        .rev()
        .find(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        .expect("a free pid");
    let name = format!("xdpt-{dead}-1-a");
    let path = Path::new(xdpath_lab::testenv::NETNS_DIR).join(&name);
    let status = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .expect("ip netns add");
    assert!(status.success());
    let key = xdpath::netns::key_of(&path).expect("key");
    let pins = xdpath::dataplane::namespace_dir_of(&key).join("xdpt0");
    std::fs::create_dir_all(&pins).expect("a stale pin directory");

    let removed = TestBed::sweep_stale().expect("sweep");
    assert!(removed.contains(&name), "{removed:?}");
    assert!(!path.exists());
    assert!(!pins.parent().expect("namespace dir").exists());
    // Beds of live processes (this one) stay.
    assert!(live.a().path.exists() && live.b().path.exists());
    assert!(!removed.contains(&live.a().namespace));
}

/// Under `ip netns exec` (its own mount namespace with a fresh /sys, so no
/// bpffs), `attach` is refused in one error line instead of reporting an
/// attach whose pins, and program, vanish when the command exits; nothing
/// is attached. The same attach through `nsenter` (the bed's way) works.
#[test]
fn attach_under_ip_netns_exec_is_refused_not_lost() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    let output = std::process::Command::new("ip")
        .args(["netns", "exec", &bed.a().namespace])
        .args([XDPATH, "attach", &interface, "--mode", "generic"])
        .output()
        .expect("ip netns exec");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "attach reported success: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("xdpath: error: ") && stderr.contains("ip netns exec"),
        "{stderr}"
    );
    assert!(link_xdp(&bed).is_none(), "nothing is attached");
    attach(&bed, &[]);
    assert!(link_xdp(&bed).is_some());
}
