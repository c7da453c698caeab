//! A change whose state cannot be saved (a full disk: each `fsync` and
//! `rename` of the command failing in turn with ENOSPC) changes nothing:
//! the maps were written first, so the command puts them back before it
//! says so. Before, the kernel kept the change (and the next command made
//! it permanent) while the command reported an error.

use super::*;

/// The file calls a save makes (the temporary file's and the directory's
/// syncs, and the rename into place), failing with ENOSPC.
const FULL_DISK: Fault = Fault {
    calls: "fsync,rename,renameat,renameat2",
    error: "ENOSPC",
};

/// `xdpath ARGS` in A under strace, the `call`th of its [`FULL_DISK`]
/// calls failing (`None`: none fails); its output and how many such calls
/// it made.
fn with_full_disk(bed: &TestBed, args: &[&str], call: Option<usize>) -> (Output, usize) {
    let (output, calls) = traced_calls(bed, args, &FULL_DISK, call);
    (output, calls.len())
}

/// Runs `change` with each of its file calls failing in turn. A failed
/// run must leave `view` as `old` (and `still_old` true) with the saved
/// state enforced; a run that succeeds is undone by `undo` (given its
/// stdout).
fn each_save_failing(
    bed: &TestBed,
    change: &[&str],
    undo: &dyn Fn(&TestBed, &str),
    view: &[&str],
    still_old: &dyn Fn(&TestBed) -> bool,
) {
    let old = listing(bed, view);
    let (output, calls) = with_full_disk(bed, change, None);
    assert!(output.status.success(), "{}", text(&output));
    undo(bed, &String::from_utf8_lossy(&output.stdout));
    assert!(calls >= 3, "{calls} file calls");
    let mut failed = 0;
    for call in 1..=calls {
        let (output, _) = with_full_disk(bed, change, Some(call));
        assert_run(bed, change, call, &output);
        if output.status.success() {
            xdpath_ok(bed, &["state", "check"]);
            undo(bed, &String::from_utf8_lossy(&output.stdout));
            continue;
        }
        failed += 1;
        assert!(
            still_old(bed),
            "call {call} failing: {} — yet the change is enforced",
            text(&output)
        );
        assert_eq!(listing(bed, view), old, "call {call}: {}", text(&output));
        xdpath_ok(bed, &["state", "check"]);
    }
    assert!(failed > 0, "no injected failure made {change:?} fail");
}

#[test]
fn a_change_whose_state_cannot_be_saved_changes_nothing() {
    xdpath_lab::needs_root!();
    if !strace_or_skip("a_change_whose_state_cannot_be_saved_changes_nothing") {
        return;
    }
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface, "--mode", "generic"]);
    xdpath_ok(
        &bed,
        &[
            "filter",
            "add",
            "--src",
            "198.18.0.0/15",
            "--action",
            "drop",
        ],
    );
    let peer = format!("{}/32", bed.b().ipv4);
    let add = ["filter", "add", "--src", &peer, "--action", "drop"];
    each_save_failing(
        &bed,
        &add,
        &|bed, id| {
            xdpath_ok(bed, &["filter", "del", id.trim()]);
        },
        &["--json", "filter", "list"],
        &|bed| ping_answered(bed),
    );

    let vip = "203.0.113.10:80/tcp";
    xdpath_ok(
        &bed,
        &[
            "lb",
            "config",
            "--source-v4",
            "172.16.0.0/16",
            "--next-hop",
            "02:00:00:00:00:99",
        ],
    );
    xdpath_ok(&bed, &["lb", "vip", "add", vip]);
    let other = "203.0.113.11:80/tcp";
    each_save_failing(
        &bed,
        &["lb", "vip", "add", other],
        &|bed, _| {
            xdpath_ok(bed, &["lb", "vip", "del", other]);
        },
        &["--json", "lb", "vip", "list"],
        &|_| true,
    );
}
