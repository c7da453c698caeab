//! A rollback whose waiter is gone or late: carried out by the next
//! command (and said so), never twice, and never claimed cancelled by
//! `confirm` once overdue.

use std::process::Output;

use super::*;

/// The pid of the waiter (`xdpath apply --rollback-at DEADLINE`).
fn waiter(deadline: u64) -> Option<i32> {
    let wanted = format!("--rollback-at\0{deadline}\0");
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|line| String::from_utf8_lossy(&line).contains(&wanted))
        })
}

fn signal(pid: i32, signal: libc::c_int) {
    // SAFETY: kill has no memory preconditions.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {pid}");
}

/// Sleeps until `deadline` (Unix time) plus `extra`.
fn sleep_past(deadline: u64, extra: Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    std::thread::sleep(Duration::from_secs(deadline).saturating_sub(now) + extra);
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Applies `first`, then `second` with `--confirm 2s`; returns the
/// deadline and the waiter's pid.
fn armed(bed: &TestBed) -> (String, String, u64, i32) {
    let first = write(
        bed,
        "first",
        &config(bed, Some("drop"), "53", &[("10.0.0.11", 2)]),
    );
    let second = write(
        bed,
        "second",
        &config(
            bed,
            Some("drop"),
            "53",
            &[("10.0.0.11", 2), ("10.0.0.13", 1)],
        ),
    );
    xdpath_ok_warned(bed, &["apply", "-f", &first]);
    // Long enough that the waiter is found (and killed or stopped) well
    // before its deadline on a loaded machine: with 2 s it had rolled
    // back by itself once while the full suite ran beside it.
    let armed = json(bed, &["apply", "-f", &second, "--confirm", "8s"]);
    let deadline = armed["rollback"]["deadline"].as_u64().expect("a deadline");
    let mut pid = None;
    assert!(
        wait_for(Duration::from_secs(5), || {
            pid = waiter(deadline);
            pid.is_some()
        }),
        "no waiter for {deadline}"
    );
    (first, second, deadline, pid.unwrap_or_default())
}

#[test]
fn a_killed_waiters_rollback_is_carried_out_by_the_next_command() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let (first, _, deadline, pid) = armed(&bed);
    signal(pid, libc::SIGKILL);
    sleep_past(deadline, Duration::from_millis(1500));
    assert!(
        backends(&bed).contains_key("10.0.0.13"),
        "rolled back with no waiter"
    );
    // Any command: it rolls back first and says so, on stderr.
    let checked = xdpath(&bed, &["state", "check"]);
    let said = stderr(&checked);
    assert!(checked.status.success(), "{said}");
    assert!(
        said.contains("overdue") && said.contains("carried out now"),
        "{said}"
    );
    assert!(!backends(&bed).contains_key("10.0.0.13"), "not rolled back");
    assert_eq!(json(&bed, &["plan", "-f", &first])["empty"], true);
    let pending = bed.a().state_dir().join("rollback/pending.json");
    assert!(!pending.exists(), "still pending");
    // Confirm does not claim to cancel it: it says it was carried out.
    let confirmed = json(&bed, &["confirm"]);
    assert_eq!(confirmed["pending"], false, "{confirmed}");
    assert_eq!(
        confirmed["last_rollback"]["deadline"], deadline,
        "{confirmed}"
    );
    let text = xdpath_ok_warned(&bed, &["confirm"]);
    assert!(
        text.contains("nothing to confirm") && text.contains("carried out"),
        "{text}"
    );
}

#[test]
fn a_late_waiter_keeps_its_rollback_and_confirm_refuses_an_overdue_one() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let (first, _, deadline, pid) = armed(&bed);
    signal(pid, libc::SIGSTOP);
    sleep_past(deadline, Duration::from_millis(1500));
    // The waiter is alive: no other command takes its rollback yet, and
    // confirm refuses in one line to cancel what is overdue.
    xdpath_ok_warned(&bed, &["state", "check"]);
    assert!(
        backends(&bed).contains_key("10.0.0.13"),
        "taken from a live waiter"
    );
    let refused = xdpath(&bed, &["confirm"]);
    let said = stderr(&refused);
    assert!(
        !refused.status.success(),
        "confirm of an overdue rollback: {said}"
    );
    // One error line; the warning that the waiter still runs may stand
    // before it once the rollback is more than the grace overdue (a slow
    // machine).
    let errors: Vec<&str> = said
        .lines()
        .filter(|line| !line.starts_with("xdpath: warning:"))
        .collect();
    assert_eq!(errors.len(), 1, "{said}");
    assert!(
        errors[0].starts_with("xdpath: error:") && errors[0].contains("overdue"),
        "{said}"
    );
    // Woken, the waiter carries it out, once.
    signal(pid, libc::SIGCONT);
    assert!(
        wait_for(Duration::from_secs(5), || !backends(&bed)
            .contains_key("10.0.0.13")),
        "the waiter did not roll back"
    );
    assert!(wait_for(Duration::from_secs(5), || waiter(deadline).is_none()));
    assert_eq!(json(&bed, &["plan", "-f", &first])["empty"], true);
}
