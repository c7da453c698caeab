//! Command lines that do not parse (issue 14, item 9): each is one stderr
//! line starting `xdpath: error: `, exit status 2 (documented in
//! xdpath(8)), with clap's "did you mean" kept; `--help` and `--version`
//! still print on stdout and exit 0. And a closed stdout ends `xdpath`
//! quietly instead of with a panic.
//!
//! Every command runs in namespace A of its own test bed (needs root).

mod common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;

use common::cli::{binary, crashed, one_error, run_command_with_stdout, run_in, QUICK};
use common::{bed, xdpath_ok};
use xdpath_lab::testenv::Side;

#[test]
fn every_usage_error_is_one_line_and_exit_status_2() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["attach", &interface, "--mode", "natve"],
            vec![
                "invalid value \"natve\" for --mode <MODE>",
                "expected one of: auto, native, generic, offload",
                "did you mean native?",
            ],
        ),
        (
            vec![
                "filter",
                "add",
                "--src",
                "10.0.0.0/8",
                "--dport",
                "-1",
                "--action",
                "drop",
            ],
            vec!["unexpected argument \"-1\""],
        ),
        (
            vec!["status", "extra"],
            vec!["unexpected argument \"extra\""],
        ),
        (
            vec!["fliter", "list"],
            vec![
                "unknown command \"fliter\"",
                "did you mean steer or filter?",
            ],
        ),
        (
            vec!["filter", "add", "--source", "10.0.0.0/8"],
            vec!["unexpected argument \"--source\"", "did you mean --src?"],
        ),
        (
            vec!["filter"],
            vec!["`xdpath filter` needs a command: add, del, list, flush, default, load"],
        ),
        (vec![], vec!["`xdpath` needs a command: attach, detach"]),
        (
            vec!["attach"],
            vec!["missing required arguments: <INTERFACE>"],
        ),
        (
            vec![
                "lb",
                "vip",
                "add",
                "203.0.113.10:80/tcp",
                "--gue-port",
                "70000",
            ],
            vec![
                "invalid value \"70000\" for --gue-port <GUE_PORT>",
                "0..=65535",
            ],
        ),
        (
            vec!["top", "--interval", "soon"],
            vec!["invalid value \"soon\" for --interval <INTERVAL>"],
        ),
        (
            vec!["export", "sflow", "--collector", "nowhere", &interface],
            vec!["invalid value \"nowhere\" for --collector <COLLECTORS>"],
        ),
        (
            vec!["status", "a\nxdpath: error: forged\u{1b}[2J"],
            vec!["unexpected argument \"a\\nxdpath: error: forged\\u{1b}[2J\""],
        ),
        (
            vec!["capture", "--verdict", "dropped", "-w", "/nonexistent/x"],
            vec![
                "invalid value \"dropped\" for --verdict",
                "did you mean drop?",
            ],
        ),
    ];
    for (args, needles) in cases {
        let run = run_in(&bed, Side::A, &args, QUICK);
        assert!(run.stdout.is_empty(), "{args:?}: stdout {:?}", run.stdout);
        one_error(&run, 2, &needles);
        // With --json the same message, as JSON on stdout.
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(&args);
        let run = run_in(&bed, Side::A, &with_json, QUICK);
        assert!(!run.stdout.is_empty(), "{with_json:?}: no JSON error");
        one_error(&run, 2, &needles);
    }
    // Nothing was attached or written by any of them.
    assert_eq!(xdpath_ok(&bed, &["status", "--json"]).trim(), "[]");
}

#[test]
fn help_and_version_still_answer_on_stdout() {
    xdpath_lab::needs_root!();
    let bed = bed();
    for args in [
        &["--help"][..],
        &["-h"],
        &["filter", "--help"],
        &["help", "filter"],
        &["lb", "vip", "add", "--help"],
        &["--version"],
        &["-V"],
    ] {
        let run = run_in(&bed, Side::A, args, QUICK);
        assert_eq!(run.code(), Some(0), "{args:?}: {}", run.stderr);
        assert!(run.stderr.is_empty(), "{args:?}: {}", run.stderr);
        let stdout = String::from_utf8_lossy(&run.stdout);
        let expected = if args.contains(&"--version") || args.contains(&"-V") {
            "xdpath 0.1.0"
        } else {
            "Usage: xdpath"
        };
        assert!(stdout.contains(expected), "{args:?}: {stdout}");
    }
}

#[test]
fn a_closed_stdout_ends_xdpath_quietly() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both are fresh descriptors this test owns.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read_end);
    // `xdpath status | true`, with `true` long gone: the first write fails.
    let mut command = bed.command(Side::A, binary());
    command.arg("status");
    let run = run_command_with_stdout(command, QUICK, Stdio::from(write_end));
    assert!(run.status.is_some(), "{run:?}");
    assert!(!crashed(&run), "{run:?}");
    assert!(run.stderr.is_empty(), "nothing on stderr: {}", run.stderr);
}
