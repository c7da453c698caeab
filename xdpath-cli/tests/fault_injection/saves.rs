//! A change whose state cannot be saved (a full disk: each `fsync` and
//! `rename` of the command failing in turn with ENOSPC) changes nothing:
//! the maps were written first, so the command puts them back before it
//! says so. Before, the kernel kept the change (and the next command made
//! it permanent) while the command reported an error.

use super::*;

/// The file calls a save makes: the temporary file's and the directory's
/// syncs, and the rename into place.
const FILE_CALLS: &str = "fsync,rename,renameat,renameat2";

/// `xdpath ARGS` in A under strace, the `call`th of its [`FILE_CALLS`]
/// failing with ENOSPC (`None`: none fails); its output and how many such
/// calls it made.
fn with_full_disk(bed: &TestBed, args: &[&str], call: Option<usize>) -> (Output, usize) {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let trace = std::env::temp_dir().join(format!(
        "xdpath-fault-injection-saves-{}-{run}.trace",
        std::process::id()
    ));
    let trace_text = trace.display().to_string();
    let filter = format!("trace={FILE_CALLS}");
    let inject = call.map(|call| format!("inject={FILE_CALLS}:error=ENOSPC:when={call}"));
    let mut command = vec!["-f", "-o", trace_text.as_str(), "-e", filter.as_str()];
    if let Some(inject) = &inject {
        command.extend(["-e", inject.as_str()]);
    }
    command.push(XDPATH);
    command.extend_from_slice(args);
    let output = bed.exec(Side::A, "strace", command).expect("run strace");
    let calls = std::fs::read_to_string(&trace)
        .expect("strace's trace")
        .lines()
        .filter(|line| {
            FILE_CALLS
                .split(',')
                .any(|name| line.contains(&format!("{name}(")))
        })
        .count();
    let _ = std::fs::remove_file(&trace);
    (output, calls)
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
