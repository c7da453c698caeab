//! The runtime's lifecycle: the note that names it to `attach` (removed,
//! with its directory, when it ends), and a deleted interface, which
//! stops it with an error instead of leaving it to serve nothing.

use super::*;
use crate::threads::two_queues;

/// `attach` on an interface the user-space runtime serves names the
/// runtime (issue 13, item 7), and changes nothing: the runtime keeps it.
#[test]
fn attach_names_the_runtime_that_serves_the_interface() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    let runtime = Runtime::start(&bed, &["--exception", "drop"]);
    let error = xdpath_fails(&bed, Side::A, &["attach", &interface, "--mode", "generic"]);
    let pid = runtime.child.id();
    assert!(
        error.contains(&format!("served by `xdpath run --userspace` (pid {pid})")),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(
        has_xdp_program(&bed.a().path, &interface),
        "the runtime lost its program"
    );
    let notes: Vec<std::path::PathBuf> = std::fs::read_dir("/run/xdpath")
        .expect("the runtime's notes")
        .flatten()
        .map(|entry| entry.path().join(format!("userspace-{interface}")))
        .filter(|note| note.exists())
        .collect();
    assert_eq!(notes.len(), 1, "one note names the runtime: {notes:?}");
    drop(runtime);
    let directory = notes[0].parent().expect("the namespace's directory");
    assert!(
        !directory.exists(),
        "{} is left behind once its last runtime has gone",
        directory.display()
    );
}

/// Deletes A's interface under a running runtime: it must end within
/// a few seconds (its housekeeping checks once a second), fail, and say
/// why in one line.
fn deleted_interface_stops_the_runtime(threads: bool) {
    xdpath_lab::needs_root!();
    let bed = bed();
    if threads {
        two_queues(&bed);
    }
    let interface = bed.a().interface.clone();
    let extra: &[&str] = if threads {
        &["--exception", "drop", "--threads"]
    } else {
        &["--exception", "drop"]
    };
    let mut runtime = Runtime::start(&bed, extra);
    bed.exec_ok(Side::A, "ip", ["link", "del", &interface])
        .expect("delete A's interface");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = runtime.child.try_wait().expect("poll the runtime") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the runtime still runs 10 s after its interface was deleted"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = runtime.child.stderr.take() {
        use std::io::Read;
        pipe.read_to_string(&mut stderr)
            .expect("the runtime's errors");
    }
    assert!(!status.success(), "the runtime ended well: {stderr}");
    let stderr = stderr.trim();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("xdpath: error: ")
            && stderr.contains(&format!("\"{interface}\" is gone")),
        "{stderr}"
    );
}

#[test]
fn a_deleted_interface_stops_the_runtime_with_an_error() {
    deleted_interface_stops_the_runtime(false);
}

#[test]
fn a_deleted_interface_stops_every_thread_with_an_error() {
    deleted_interface_stops_the_runtime(true);
}

/// A renamed interface is the same interface (the sockets and the
/// program are bound to its index): the runtime serves on, and stops
/// cleanly when asked.
#[test]
fn a_renamed_interface_is_served_on() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    let runtime = Runtime::start(&bed, &["--exception", "drop"]);
    let renamed = "xdpren0";
    for args in [
        vec!["link", "set", "dev", interface.as_str(), "down"],
        vec!["link", "set", "dev", interface.as_str(), "name", renamed],
        vec!["link", "set", "dev", renamed, "up"],
    ] {
        bed.exec_ok(Side::A, "ip", args)
            .expect("rename A's interface");
    }
    // Past two housekeeping checks.
    std::thread::sleep(Duration::from_millis(2500));
    let mut runtime = runtime;
    assert!(
        runtime
            .child
            .try_wait()
            .expect("poll the runtime")
            .is_none(),
        "the runtime stopped when its interface was renamed"
    );
    let report = runtime.stop();
    assert_eq!(report["interface"], interface.as_str(), "{report}");
}
