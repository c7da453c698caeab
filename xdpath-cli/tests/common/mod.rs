//! Helpers shared by the end-to-end tests: the test bed, the CLI run inside
//! a namespace, and real servers (nginx) started in one. A test that needs
//! root starts with `xdpath_lab::needs_root!()` (`xdpath_lab::testenv`): skipped
//! for another user, failed where `CI` or `XDPATH_REQUIRE_ROOT=1` is set.
#![allow(
    dead_code,
    reason = "each test binary uses its own subset of these helpers"
)]

pub mod background;
pub mod cli;
pub mod tshark;

use std::path::PathBuf;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use xdpath_core::stats::counter_index;
use xdpath_core::{Action, Counter, Reason, COUNTER_SLOTS};
#[allow(unused_imports, reason = "not every test binary fetches")]
pub use xdpath_lab::servers::{self, fetch, fetch_many, Nginx};
use xdpath_lab::testenv::lb::{LbBed, Role};
use xdpath_lab::testenv::{Side, TestBed};
use xdpath_lab::traffic::Expected;

/// The CLI under test.
pub const XDPATH: &str = env!("CARGO_BIN_EXE_xdpath");

/// Fails the test unless it runs as root: a backstop for helpers that need
/// it. A test that needs root starts with `xdpath_lab::needs_root!()`, which
/// skips it (or fails it in CI) before it gets here.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root: start it with xdpath_lab::needs_root!()"
    );
}

/// A fresh test bed; the test needs root (`xdpath_lab::needs_root!()`).
pub fn bed() -> TestBed {
    require_root();
    TestBed::new().expect("build the test bed")
}

/// Runs `xdpath ARGS` inside a side's namespace.
pub fn xdpath_in(bed: &TestBed, side: Side, args: &[&str]) -> Output {
    bed.exec(side, XDPATH, args)
        .expect("run xdpath under nsenter")
}

/// Runs `xdpath ARGS` inside namespace A.
pub fn xdpath(bed: &TestBed, args: &[&str]) -> Output {
    xdpath_in(bed, Side::A, args)
}

/// Runs `xdpath ARGS` inside namespace A; it must succeed and write nothing
/// to stderr. Returns stdout.
pub fn xdpath_ok(bed: &TestBed, args: &[&str]) -> String {
    let output = xdpath_succeeding(bed, args);
    assert!(
        output.stderr.is_empty(),
        "xdpath {args:?} wrote to stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Runs `xdpath ARGS` inside namespace A; it must succeed, and may warn on
/// stderr. Returns stdout.
pub fn xdpath_ok_warned(bed: &TestBed, args: &[&str]) -> String {
    String::from_utf8(xdpath_succeeding(bed, args).stdout).expect("UTF-8 output")
}

/// Runs `xdpath ARGS` inside namespace A; it must succeed.
fn xdpath_succeeding(bed: &TestBed, args: &[&str]) -> Output {
    let output = xdpath(bed, args);
    assert!(
        output.status.success(),
        "xdpath {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `xdpath ARGS` in `role`'s namespace of a balancer bed; it must
/// succeed. Returns stdout.
pub fn xdpath_ok_in(bed: &LbBed, role: Role, args: &[&str]) -> String {
    let output = bed.exec(role, XDPATH, args).expect("run xdpath");
    assert!(
        output.status.success(),
        "xdpath {args:?} in {}: {}",
        role.name(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The pcap files in `dir`, sorted.
pub fn pcap_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{dir}: {error}"))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "pcap")
        })
        .collect();
    files.sort();
    files
}

/// Parses JSON or fails the test with the text.
pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
}

/// Sets a sysctl inside a side's namespace.
pub fn sysctl(bed: &TestBed, side: Side, setting: &str) {
    bed.exec_ok(side, "sysctl", ["-q", "-w", setting])
        .expect("sysctl");
}

/// nginx on side A (see `xdpath_lab::servers`); the test fails if it cannot start.
pub fn nginx(bed: &TestBed, backlog: u32) -> Nginx {
    Nginx::start(bed, backlog).expect("start nginx in namespace A")
}

/// hping3 in namespace B for `seconds`.
pub fn hping3(bed: &TestBed, seconds: u32, args: &[&str]) -> Child {
    servers::hping3(bed, seconds, args).expect("start hping3")
}

/// The counters of one interface's `counters` rows in `xdpath stats
/// --json`, by slot: each row names a known action and reason, once, and
/// says whether the reason is a malformed one.
pub fn counters_of(rows: &Value) -> Vec<Counter> {
    let mut counters = vec![Counter::default(); COUNTER_SLOTS as usize];
    for row in rows.as_array().expect("counters array") {
        let action = Action::ALL
            .into_iter()
            .find(|action| row["action"] == action.name())
            .expect("known action");
        let reason = Reason::ALL
            .into_iter()
            .find(|reason| row["reason"] == reason.name())
            .expect("known reason");
        assert_eq!(row["malformed"], reason.is_malformed());
        let slot = &mut counters[counter_index(action, reason) as usize];
        assert_eq!(*slot, Counter::default(), "one row per counter");
        *slot = Counter {
            packets: row["packets"].as_u64().expect("packets"),
            bytes: row["bytes"].as_u64().expect("bytes"),
        };
    }
    counters
}

/// Waits until the counters `read` returns equal `expected` (frames are
/// counted asynchronously), then checks they stay so: nothing else
/// arrives. `when` says where in the test, for the failures.
pub fn assert_counters_settle(expected: &Expected, read: impl Fn() -> Vec<Counter>, when: &str) {
    let start = Instant::now();
    let mut differences = expected.differences(&read());
    while !differences.is_empty() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(25));
        differences = expected.differences(&read());
    }
    assert!(
        differences.is_empty(),
        "{when}: counters differ from the traffic sent:\n{}",
        differences.join("\n")
    );
    std::thread::sleep(Duration::from_millis(300));
    let differences = expected.differences(&read());
    assert!(
        differences.is_empty(),
        "{when}: more frames were counted than sent:\n{}",
        differences.join("\n")
    );
}

/// The `(verdict, reason)` packet count from `xdpath stats --json` in A.
pub fn counted(stats: &Value, action: &str, reason: &str) -> u64 {
    xdpath::stats::packets_in_json(stats, action, Some(reason))
}

/// One ping from B to A: answered or not.
pub fn ping_answered(bed: &TestBed) -> bool {
    let address = bed.a().ipv4.to_string();
    bed.exec(Side::B, "ping", ["-c", "1", "-W", "1", address.as_str()])
        .expect("ping")
        .status
        .success()
}

/// A command's stdout then its stderr, for an assertion's message.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
