//! Every bpf() call of a change failing in turn (strace's fault injection,
//! ENOMEM): the command either succeeds or ends with one `xdpath: error:`
//! line, never panics, and leaves the kernel holding the old state or the
//! new one whole at once — no commit mark left for the next command to
//! put right, real pings answered as the old rules say, the saved state
//! read back with no difference. Needs root and strace (skipped, saying
//! why, without them).

mod common;

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

/// `xdpath ARGS` in A under strace, with the `call`th bpf() call failing
/// with ENOMEM (`None`: none fails), the calls traced into `trace` when
/// given.
fn under_strace(
    bed: &TestBed,
    args: &[&str],
    call: Option<usize>,
    trace: Option<&PathBuf>,
) -> Output {
    let trace = trace.map_or_else(|| "/dev/null".to_owned(), |path| path.display().to_string());
    let mut command = vec!["-f", "-o", trace.as_str(), "-e", "trace=bpf"];
    let inject = call.map(|call| format!("inject=bpf:error=ENOMEM:when={call}"));
    if let Some(inject) = &inject {
        command.extend(["-e", inject.as_str()]);
    }
    command.push(XDPATH);
    command.extend_from_slice(args);
    bed.exec(Side::A, "strace", command).expect("run strace")
}

/// How many bpf() calls `xdpath ARGS` makes (it must succeed), and its
/// stdout.
fn count_calls(bed: &TestBed, args: &[&str]) -> (usize, String) {
    let trace = std::env::temp_dir().join(format!(
        "xdpath-fault-injection-{}-{}.trace",
        std::process::id(),
        args.join("-").replace('/', "_")
    ));
    let output = under_strace(bed, args, None, Some(&trace));
    let calls = std::fs::read_to_string(&trace).expect("strace's trace");
    let _ = std::fs::remove_file(&trace);
    assert!(output.status.success(), "{}", text(&output));
    (
        calls.lines().filter(|line| line.contains("bpf(")).count(),
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

/// The program id and attach time `status --json` shows for A's interface.
fn program_of(bed: &TestBed) -> (Value, Value) {
    let status = json(&xdpath_ok(bed, &["--json", "status"]));
    let row = &status[0];
    (row["program_id"].clone(), row["attached_since"].clone())
}

/// A second `attach` of an attached interface whose META pin cannot be
/// read (the first read failing, and the one `attach` makes before it
/// would remove stale pins): refused, and the running program, its pins
/// and its rules stay — a pin that cannot be read is not a link that is
/// gone. `status` with each of its calls failing in turn never says the
/// interface is gone, nor that it runs an older program.
#[test]
fn unreadable_pins_are_not_taken_for_a_link_that_is_gone() {
    xdpath_lab::needs_root!();
    if !strace_or_skip("unreadable_pins_are_not_taken_for_a_link_that_is_gone") {
        return;
    }
    let bed = bed();
    let interface = bed.a().interface.clone();
    let attach = ["attach", interface.as_str(), "--mode", "generic"];
    xdpath_ok(&bed, &attach);
    let peer = format!("{}/32", bed.b().ipv4);
    xdpath_ok(
        &bed,
        &[
            "filter", "add", "--src", &peer, "--proto", "icmp", "--action", "drop",
        ],
    );
    let before = program_of(&bed);
    let trace = std::env::temp_dir().join(format!(
        "xdpath-fault-injection-{}-attach.trace",
        std::process::id()
    ));
    // The first META read fails at its first, second or third call.
    for first in 1..=3 {
        let output = under_strace(&bed, &attach, Some(first), Some(&trace));
        let calls = std::fs::read_to_string(&trace).expect("strace's trace");
        let bpf: Vec<&str> = calls.lines().filter(|line| line.contains("bpf(")).collect();
        assert_run(&bed, &attach, first, &output);
        assert!(!output.status.success(), "{}", text(&output));
        // The same call of the next META read fails too, when there is one.
        let reads: Vec<usize> = bpf
            .iter()
            .enumerate()
            .filter(|(_, line)| line.contains("/META\""))
            .map(|(index, _)| index + 1)
            .collect();
        if let Some(&second) = reads.get(1) {
            let second = second + first - 1;
            let both = format!(
                "inject=bpf:error=ENOMEM:when={first}..{second}+{}",
                second - first
            );
            let mut command = vec!["-f", "-o", "/dev/null", "-e", "trace=bpf", "-e", &both];
            command.push(XDPATH);
            command.extend_from_slice(&attach);
            let output = bed.exec(Side::A, "strace", command).expect("run strace");
            assert_run(&bed, &attach, second, &output);
            assert!(
                !output.status.success(),
                "calls {first} and {second} failing: a second attach succeeded: {}",
                text(&output)
            );
        }
        assert!(!ping_answered(&bed), "call {first}: the rule is enforced");
        assert_eq!(program_of(&bed), before, "call {first}: the same program");
    }
    let _ = std::fs::remove_file(&trace);
    let (calls, _) = count_calls(&bed, &["--json", "status"]);
    for call in 1..=calls {
        let output = under_strace(&bed, &["--json", "status"], Some(call), None);
        assert_run(&bed, &["status"], call, &output);
        if output.status.success() {
            let status = json(&String::from_utf8_lossy(&output.stdout));
            assert_eq!(
                status[0]["healthy"], true,
                "call {call} failing: status says {interface} is gone: {status}"
            );
            // This build's program knows every feature: a read that
            // failed is said as such, not as an older program.
            assert_eq!(
                status[0]["older_program"],
                Value::Null,
                "call {call} failing: status says an older program runs: {status}"
            );
        }
    }
    xdpath_ok(&bed, &["state", "check"]);
}

/// `reload` whose first read of the list of loaded programs fails: refused
/// in one line that does not say the running program is gone, and the
/// same program keeps running.
#[test]
fn reload_with_the_program_list_unreadable_does_not_say_the_program_is_gone() {
    xdpath_lab::needs_root!();
    if !strace_or_skip("reload_with_the_program_list_unreadable_does_not_say_the_program_is_gone") {
        return;
    }
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface, "--mode", "generic"]);
    let reload = ["reload", interface.as_str()];
    let trace = std::env::temp_dir().join(format!(
        "xdpath-fault-injection-{}-reload.trace",
        std::process::id()
    ));
    let output = under_strace(&bed, &reload, None, Some(&trace));
    assert!(output.status.success(), "{}", text(&output));
    let calls = std::fs::read_to_string(&trace).expect("strace's trace");
    let _ = std::fs::remove_file(&trace);
    let first = calls
        .lines()
        .filter(|line| line.contains("bpf("))
        .position(|line| line.contains("BPF_PROG_GET_NEXT_ID"))
        .expect("reload lists the loaded programs")
        + 1;
    let before = program_of(&bed);
    let output = under_strace(&bed, &reload, Some(first), None);
    assert_run(&bed, &reload, first, &output);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        !text(&output).contains("is gone"),
        "a failed read is no word that the program is gone: {}",
        text(&output)
    );
    assert_eq!(program_of(&bed), before, "the same program runs");
    assert_eq!(program_of(&bed), before, "the same program runs");
    xdpath_ok(&bed, &["state", "check"]);
}

/// `apply` of a config that adds a rule, with each read of the attached
/// interface's META and CONFIG pins failing in turn: refused in one line
/// or done, and never by taking the running interface for a stale one —
/// the same program keeps running, attached when it was, and the apply
/// says it changed the rule only.
#[test]
fn apply_with_unreadable_pins_keeps_the_running_program() {
    xdpath_lab::needs_root!();
    if !strace_or_skip("apply_with_unreadable_pins_keeps_the_running_program") {
        return;
    }
    let bed = bed();
    let interface = bed.a().interface.clone();
    let peer = bed.b().ipv4.to_string();
    let file = |name: &str, rule: bool| {
        let path = std::env::temp_dir().join(format!(
            "xdpath-fault-injection-{}-{name}.toml",
            std::process::id()
        ));
        let mut text = format!("[[interface]]\nname = \"{interface}\"\nmode = \"generic\"\n");
        if rule {
            text += &format!(
                "[[filter.rule]]\nid = 7\nsrc = \"{peer}/32\"\nproto = \"icmp\"\naction = \"drop\"\n"
            );
        }
        std::fs::write(&path, text).expect("config file");
        path.display().to_string()
    };
    let (plain, with_rule) = (file("plain", false), file("rule", true));
    xdpath_ok(&bed, &["apply", "-f", &plain]);
    let before = program_of(&bed);
    let apply = ["apply", "-f", with_rule.as_str()];
    let trace = std::env::temp_dir().join(format!(
        "xdpath-fault-injection-{}-apply.trace",
        std::process::id()
    ));
    // Where the apply reads the pins: traced once without a failure, then
    // the plain config put back.
    let output = under_strace(&bed, &apply, None, Some(&trace));
    assert!(output.status.success(), "{}", text(&output));
    xdpath_ok(&bed, &["apply", "-f", &plain]);
    let calls = std::fs::read_to_string(&trace).expect("strace's trace");
    let _ = std::fs::remove_file(&trace);
    let reads: Vec<usize> = calls
        .lines()
        .filter(|line| line.contains("bpf("))
        .enumerate()
        .filter(|(_, line)| line.contains("/META\"") || line.contains("/CONFIG\""))
        .map(|(index, _)| index + 1)
        .collect();
    assert!(reads.len() >= 2, "the apply reads META and CONFIG: {calls}");
    // The pin opens and the reads after each (an open is one call, its
    // lookup the next).
    for call in reads.iter().flat_map(|&open| [open, open + 1]) {
        let output = under_strace(&bed, &apply, Some(call), None);
        assert_run(&bed, &apply, call, &output);
        assert_eq!(
            program_of(&bed),
            before,
            "call {call} failing: the interface was attached again ({})",
            text(&output)
        );
        // Done, it made the rule and nothing else (it had said the
        // interface was gone and counted its reattach as a change).
        if output.status.success() {
            let said = text(&output);
            assert!(
                said.contains("applied 1 change") && !said.contains("interface"),
                "call {call} failing: {said}"
            );
        }
        xdpath_ok(&bed, &["state", "check"]);
        xdpath_ok(&bed, &["apply", "-f", &plain]);
    }
    for path in [plain, with_rule] {
        let _ = std::fs::remove_file(path);
    }
}

/// `reload` whose first open of a shared map's pin fails (ENOMEM):
/// refused in a line naming that pin and the cause, not the pin aya then
/// failed to make ("BPF_OBJ_PIN failed: File exists"), and the same
/// program runs. The call's number comes from a trace of a reload just
/// before; the reload first lists every program loaded on the host, so
/// a program loaded or freed between the two (another test's) moves it,
/// and a try that missed is made again.
#[test]
fn reload_with_a_shared_pin_unreadable_names_the_pin() {
    xdpath_lab::needs_root!();
    if !strace_or_skip("reload_with_a_shared_pin_unreadable_names_the_pin") {
        return;
    }
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface, "--mode", "generic"]);
    let reload = ["reload", interface.as_str()];
    let trace = std::env::temp_dir().join(format!(
        "xdpath-fault-injection-{}-reload-shared.trace",
        std::process::id()
    ));
    let mut named = None;
    for _ in 0..10 {
        let output = under_strace(&bed, &reload, None, Some(&trace));
        assert!(output.status.success(), "{}", text(&output));
        let calls = std::fs::read_to_string(&trace).expect("strace's trace");
        let shared = calls
            .lines()
            .filter(|line| line.contains("bpf("))
            .position(|line| line.contains("BPF_OBJ_GET") && line.contains("/:shared/"))
            .expect("reload opens the shared maps' pins")
            + 1;
        // The replaced program is freed a moment after the reload.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let before = program_of(&bed);
        let output = under_strace(&bed, &reload, Some(shared), None);
        assert_run(&bed, &reload, shared, &output);
        let said = text(&output);
        assert!(
            !said.contains("File exists"),
            "call {shared} failing: {said}"
        );
        if !output.status.success() {
            assert_eq!(program_of(&bed), before, "the same program runs");
        }
        if said.contains("/:shared/") {
            named = Some(said);
            break;
        }
    }
    let _ = std::fs::remove_file(&trace);
    let said = named.expect("one of ten tries failed the shared pin's open");
    assert!(
        said.contains("cannot open the pinned map") && said.contains("Cannot allocate memory"),
        "{said}"
    );
    xdpath_ok(&bed, &["state", "check"]);
}

/// `filter del` with the read of the running program's feature word
/// failing: the delete needs no feature, so it is made (it was refused
/// with the read's error).
#[test]
fn a_change_needing_no_feature_is_made_when_the_feature_word_cannot_be_read() {
    xdpath_lab::needs_root!();
    if !strace_or_skip("a_change_needing_no_feature_is_made_when_the_feature_word_cannot_be_read") {
        return;
    }
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface, "--mode", "generic"]);
    let add = [
        "filter",
        "add",
        "--src",
        "198.51.100.0/24",
        "--action",
        "drop",
    ];
    let id = |bed: &TestBed| {
        let rules = json(&xdpath_ok(bed, &["--json", "filter", "list"]));
        rules["rules"][0]["id"]
            .as_u64()
            .expect("a rule")
            .to_string()
    };
    xdpath_ok(&bed, &add);
    let rule = id(&bed);
    let del = ["filter", "del", rule.as_str()];
    let trace = std::env::temp_dir().join(format!(
        "xdpath-fault-injection-{}-del.trace",
        std::process::id()
    ));
    let output = under_strace(&bed, &del, None, Some(&trace));
    assert!(output.status.success(), "{}", text(&output));
    let calls = std::fs::read_to_string(&trace).expect("strace's trace");
    let _ = std::fs::remove_file(&trace);
    let opens: Vec<usize> = calls
        .lines()
        .filter(|line| line.contains("bpf("))
        .enumerate()
        .filter(|(_, line)| line.contains("/FEATURES\""))
        .map(|(index, _)| index + 1)
        .collect();
    assert!(
        !opens.is_empty(),
        "filter del reads the feature word: {calls}"
    );
    for call in opens.iter().flat_map(|&open| [open, open + 1]) {
        xdpath_ok(&bed, &add);
        let rule = id(&bed);
        let del = ["filter", "del", rule.as_str()];
        let output = under_strace(&bed, &del, Some(call), None);
        assert_run(&bed, &del, call, &output);
        assert!(
            output.status.success(),
            "call {call} failing: a delete refused: {}",
            text(&output)
        );
        let rules = json(&xdpath_ok(&bed, &["--json", "filter", "list"]));
        assert_eq!(
            rules["rules"],
            serde_json::json!([]),
            "call {call}: {rules}"
        );
    }
    xdpath_ok(&bed, &["state", "check"]);
}
