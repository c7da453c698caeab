//! Reads of pins failing (META, CONFIG, FEATURES, the link, a shared
//! map's): never taken for a link that is gone or an older program,
//! never a reattach, the cause named.

use super::*;

/// The program id and attach time `status --json` shows for A's interface.
pub(crate) fn program_of(bed: &TestBed) -> (Value, Value) {
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
    // The first META read fails at its first, second or third call.
    for first in 1..=3 {
        let (output, bpf) = traced(&bed, &attach, Some(first));
        assert_run(&bed, &attach, first, &output);
        assert!(!output.status.success(), "{}", text(&output));
        // The same call of the next META read fails too, when there is one.
        let reads = calls_where(&bpf, |line| line.contains("/META\""));
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
    let (output, calls) = traced(&bed, &reload, None);
    assert!(output.status.success(), "{}", text(&output));
    let first = *calls_where(&calls, |line| line.contains("BPF_PROG_GET_NEXT_ID"))
        .first()
        .expect("reload lists the loaded programs");
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
    // Where the apply reads the pins: traced once without a failure, then
    // the plain config put back.
    let (output, calls) = traced(&bed, &apply, None);
    assert!(output.status.success(), "{}", text(&output));
    xdpath_ok(&bed, &["apply", "-f", &plain]);
    let reads = calls_where(&calls, |line| {
        line.contains("/META\"") || line.contains("/CONFIG\"")
    });
    assert!(
        reads.len() >= 2,
        "the apply reads META and CONFIG: {calls:?}"
    );
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
    let mut named = None;
    for _ in 0..10 {
        let (output, calls) = traced(&bed, &reload, None);
        assert!(output.status.success(), "{}", text(&output));
        let shared = *calls_where(&calls, |line| {
            line.contains("BPF_OBJ_GET") && line.contains("/:shared/")
        })
        .first()
        .expect("reload opens the shared maps' pins");
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
    let (output, calls) = traced(&bed, &del, None);
    assert!(output.status.success(), "{}", text(&output));
    let opens = calls_where(&calls, |line| line.contains("/FEATURES\""));
    assert!(
        !opens.is_empty(),
        "filter del reads the feature word: {calls:?}"
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
