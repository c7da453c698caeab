//! `ratelimit add` of a limit of one address (kept in the address table,
//! written entry by entry) with each of its bpf() calls failing in turn:
//! the old limits or the new ones, read back with no difference.

use super::*;

/// Adds a limit of one address with each of the add's bpf() calls failing
/// in turn, beside `existing` limits made first: a failed add leaves the
/// listing as it was, a successful one is undone; `state check` is clean
/// after each (nothing left for the next command to put right).
fn each_call_failing(test: &str, existing: &[&[&str]]) {
    if !strace_or_skip(test) {
        return;
    }
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface, "--mode", "generic"]);
    for args in existing {
        xdpath_ok(&bed, args);
    }
    let old = listing(&bed, &["--json", "ratelimit", "list"]);
    let add = [
        "ratelimit",
        "add",
        "--pps",
        "100",
        "--per",
        "dst",
        "--scope",
        "10.77.0.2/32",
    ];
    let (calls, id) = count_calls(&bed, &add);
    let listed = listing(&bed, &["--json", "ratelimit", "list"]);
    assert!(
        listed
            .as_array()
            .is_some_and(|limits| limits.iter().all(|limit| limit["table"] == "address")),
        "every limit in the address table: {listed}"
    );
    xdpath_ok(&bed, &["ratelimit", "del", &id]);
    let mut failed = 0;
    for call in 1..=calls {
        let output = under_strace(&bed, &add, Some(call), None);
        assert_run(&bed, &add, call, &output);
        if output.status.success() {
            let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            xdpath_ok(&bed, &["state", "check"]);
            xdpath_ok(&bed, &["ratelimit", "del", &id]);
        } else {
            failed += 1;
            let now = listing(&bed, &["--json", "ratelimit", "list"]);
            assert_eq!(now, old, "call {call}");
        }
        xdpath_ok(&bed, &["state", "check"]);
    }
    assert!(failed > 0, "no injected failure made the add fail");
}

#[test]
fn address_limit_add_with_each_bpf_call_failing_leaves_old_or_new() {
    xdpath_lab::needs_root!();
    each_call_failing(
        "address_limit_add_with_each_bpf_call_failing_leaves_old_or_new",
        &[&[
            "ratelimit",
            "add",
            "--pps",
            "1000",
            "--per",
            "dst",
            "--scope",
            "10.77.0.1/32",
        ]],
    );
}

/// The first limit of all: a failure leaves no limit (the address
/// table's entry written before the failure is taken out again, though
/// the state holds no limit to compare it with).
#[test]
fn the_first_address_limit_with_each_bpf_call_failing_leaves_none_or_it() {
    xdpath_lab::needs_root!();
    each_call_failing(
        "the_first_address_limit_with_each_bpf_call_failing_leaves_none_or_it",
        &[],
    );
}
