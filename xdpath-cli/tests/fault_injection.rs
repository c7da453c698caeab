//! Every bpf() call of a change failing in turn (strace's fault injection,
//! ENOMEM): the command either succeeds or ends with one `xdpath: error:`
//! line, never panics, and leaves the kernel holding the old state or the
//! new one whole at once — no commit mark left for the next command to
//! put right, real pings answered as the old rules say, the saved state
//! read back with no difference. Needs root and strace (skipped, saying
//! why, without them).

#[path = "fault_injection/address_limits.rs"]
mod address_limits;
mod common;
#[path = "fault_injection/conn_table.rs"]
mod conn_table;
#[path = "fault_injection/pins.rs"]
mod pins;
#[path = "fault_injection/saves.rs"]
mod saves;

use std::io::Write;
use std::path::PathBuf;
use std::process::Output;

use common::{bed, json, ping_answered, text, xdpath, xdpath_ok, XDPATH};
use serde_json::Value;
use xdpath_lab::testenv::{Side, TestBed};

/// Whether strace runs here; otherwise says the test is skipped and why.
fn strace_or_skip(test: &str) -> bool {
    let found = std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        let _ = writeln!(
            std::io::stderr().lock(),
            "skipped: {test}: needs strace (its -e inject= fails the bpf() calls)"
        );
    }
    found
}

/// Which system calls a run traces and fails, and with what error.
struct Fault {
    /// strace's syscall list, e.g. `bpf` or `fsync,rename`.
    calls: &'static str,
    /// The errno name the `call`th of them fails with.
    error: &'static str,
}

/// The bpf() calls, failing with ENOMEM.
const BPF_ENOMEM: Fault = Fault {
    calls: "bpf",
    error: "ENOMEM",
};

/// `xdpath ARGS` in A under strace, with the `call`th of `fault`'s calls
/// failing (`None`: none fails), the calls traced into `trace` when given.
fn strace_run(
    bed: &TestBed,
    args: &[&str],
    fault: &Fault,
    call: Option<usize>,
    trace: Option<&PathBuf>,
) -> Output {
    let trace = trace.map_or_else(|| "/dev/null".to_owned(), |path| path.display().to_string());
    let filter = format!("trace={}", fault.calls);
    let mut command = vec!["-f", "-o", trace.as_str(), "-e", filter.as_str()];
    let inject =
        call.map(|call| format!("inject={}:error={}:when={call}", fault.calls, fault.error));
    if let Some(inject) = &inject {
        command.extend(["-e", inject.as_str()]);
    }
    command.push(XDPATH);
    command.extend_from_slice(args);
    bed.exec(Side::A, "strace", command).expect("run strace")
}

/// [`strace_run`] of the bpf() calls.
fn under_strace(
    bed: &TestBed,
    args: &[&str],
    call: Option<usize>,
    trace: Option<&PathBuf>,
) -> Output {
    strace_run(bed, args, &BPF_ENOMEM, call, trace)
}

/// `xdpath ARGS` in A under strace (the `call`th of `fault`'s calls
/// failing, if given): its output and those calls as traced, one line
/// each.
fn traced_calls(
    bed: &TestBed,
    args: &[&str],
    fault: &Fault,
    call: Option<usize>,
) -> (Output, Vec<String>) {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let trace = std::env::temp_dir().join(format!(
        "xdpath-fault-injection-{}-{run}.trace",
        std::process::id()
    ));
    let output = strace_run(bed, args, fault, call, Some(&trace));
    let text = std::fs::read_to_string(&trace).expect("strace's trace");
    let _ = std::fs::remove_file(&trace);
    let names: Vec<String> = fault
        .calls
        .split(',')
        .map(|name| format!("{name}("))
        .collect();
    let calls = text
        .lines()
        .filter(|line| names.iter().any(|name| line.contains(name.as_str())))
        .map(str::to_owned)
        .collect();
    (output, calls)
}

/// [`traced_calls`] of the bpf() calls.
fn traced(bed: &TestBed, args: &[&str], call: Option<usize>) -> (Output, Vec<String>) {
    traced_calls(bed, args, &BPF_ENOMEM, call)
}

/// The numbers (from 1) of the traced calls that `matches`.
fn calls_where(calls: &[String], matches: impl Fn(&str) -> bool) -> Vec<usize> {
    calls
        .iter()
        .enumerate()
        .filter(|(_, line)| matches(line))
        .map(|(index, _)| index + 1)
        .collect()
}

/// How many bpf() calls `xdpath ARGS` makes (it must succeed), and its
/// stdout.
fn count_calls(bed: &TestBed, args: &[&str]) -> (usize, String) {
    let (output, calls) = traced(bed, args, None);
    assert!(output.status.success(), "{}", text(&output));
    (
        calls.len(),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    )
}

/// `--json` output of `args` without the counters (which traffic moves).
fn listing(bed: &TestBed, args: &[&str]) -> Value {
    let mut value = json(&xdpath_ok(bed, args));
    strip_counters(&mut value);
    value
}

fn strip_counters(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for key in ["hits", "drops", "counters", "active_connections"] {
                map.remove(key);
            }
            map.values_mut().for_each(strip_counters);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_counters),
        _ => {}
    }
}

/// What one run with a failing call must show, before any other command
/// (each would put right what a killed writer left): no panic, no commit
/// mark left, and on failure exactly one `xdpath: error:` line.
fn assert_run(bed: &TestBed, args: &[&str], call: usize, output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(
        output.status.code(),
        Some(101),
        "call {call} failing: xdpath {args:?} panicked: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "call {call}: {stderr}");
    let marker = bed
        .a()
        .state_dir()
        .join(xdpath::control::commit_marker::COMMIT_MARKER);
    assert!(
        !marker.exists(),
        "call {call} failing: xdpath {args:?} ({}) left a commit mark: the kernel may hold part of the change until the next command",
        text(output)
    );
    if !output.status.success() {
        let lines: Vec<&str> = stderr.lines().collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with("xdpath: error: "),
            "call {call} failing: xdpath {args:?}: one error line: {stderr}"
        );
    }
}

/// `filter add` of a rule dropping B's pings, with each of its bpf() calls
/// failing in turn: a failed add leaves the old rules enforced (B's ping
/// answered) and listed; one that succeeds is undone for the next call.
#[test]
fn filter_add_with_each_bpf_call_failing_leaves_old_or_new() {
    xdpath_lab::needs_root!();
    if !strace_or_skip("filter_add_with_each_bpf_call_failing_leaves_old_or_new") {
        return;
    }
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface, "--mode", "generic"]);
    for args in [
        &[
            "filter",
            "add",
            "--src",
            "198.18.0.0/15",
            "--proto",
            "udp",
            "--action",
            "drop",
        ][..],
        &["block", "add", "192.0.2.0/24"],
        &["ratelimit", "add", "--pps", "1000", "--burst", "2000"],
        &["mgmt", "add", "198.51.100.0/24"],
    ] {
        xdpath_ok(&bed, args);
    }
    let old = listing(&bed, &["--json", "filter", "list"]);
    let peer = format!("{}/32", bed.b().ipv4);
    let add = [
        "filter", "add", "--src", &peer, "--proto", "icmp", "--action", "drop",
    ];
    let (calls, id) = count_calls(&bed, &add);
    xdpath_ok(&bed, &["filter", "del", &id]);
    assert!(calls > 50, "{calls} bpf calls");
    let mut failed = 0;
    for call in 1..=calls {
        let output = under_strace(&bed, &add, Some(call), None);
        assert_run(&bed, &add, call, &output);
        if output.status.success() {
            let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            xdpath_ok(&bed, &["state", "check"]);
            xdpath_ok(&bed, &["filter", "del", &id]);
        } else {
            failed += 1;
            assert!(
                ping_answered(&bed),
                "call {call} failing: {} — yet B's pings are dropped",
                text(&output)
            );
            assert_eq!(
                listing(&bed, &["--json", "filter", "list"]),
                old,
                "call {call}"
            );
            xdpath_ok(&bed, &["state", "check"]);
        }
    }
    assert!(failed > 0, "no injected failure made the add fail");
}

/// `lb backend set-weight` with each of its bpf() calls failing in turn:
/// a failed change leaves the old weights listed and their tables in the
/// kernel (read back); one that succeeds is undone for the next call.
#[test]
fn lb_set_weight_with_each_bpf_call_failing_leaves_old_or_new() {
    xdpath_lab::needs_root!();
    if !strace_or_skip("lb_set_weight_with_each_bpf_call_failing_leaves_old_or_new") {
        return;
    }
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface, "--mode", "generic"]);
    let vip = "203.0.113.10:80/tcp";
    for args in [
        &[
            "lb",
            "config",
            "--source-v4",
            "172.16.0.0/16",
            "--next-hop",
            "02:00:00:00:00:99",
        ][..],
        &["lb", "vip", "add", vip],
        &["lb", "backend", "add", vip, "10.0.0.1", "--weight", "3"],
        &["lb", "backend", "add", vip, "10.0.0.2"],
    ] {
        xdpath_ok(&bed, args);
    }
    let backends = ["--json", "lb", "backend", "list", vip];
    let old = listing(&bed, &backends);
    let change = ["lb", "backend", "set-weight", vip, "10.0.0.1", "7"];
    let undo = ["lb", "backend", "set-weight", vip, "10.0.0.1", "3"];
    let (calls, _) = count_calls(&bed, &change);
    xdpath_ok(&bed, &undo);
    assert!(calls > 50, "{calls} bpf calls");
    let mut failed = 0;
    for call in 1..=calls {
        let output = under_strace(&bed, &change, Some(call), None);
        assert_run(&bed, &change, call, &output);
        if output.status.success() {
            xdpath_ok(&bed, &["state", "check"]);
            xdpath_ok(&bed, &undo);
        } else {
            failed += 1;
            assert_eq!(listing(&bed, &backends), old, "call {call}");
            xdpath_ok(&bed, &["state", "check"]);
        }
    }
    assert!(failed > 0, "no injected failure made the change fail");
    let output = xdpath(&bed, &["state", "check"]);
    assert!(output.status.success(), "{}", text(&output));
}
