//! A fuzz of the `xdpath` command line (issue 14, item 8): a few thousand
//! argument vectors over every subcommand, generated from a seed (valid
//! values, values just out of range, hostile text, mutations of the
//! vector), each run in namespace A of a test bed where xdpath is
//! attached. Whatever the input: never a panic, never exit 101, never a
//! hang; every failure exits 1 or 2 with exactly one stderr line starting
//! `xdpath: error: `, short and free of control characters (a refused
//! config file: one such line per mistake, as documented).
//!
//! Bounded: `XDPATH_FUZZ_RUNS` vectors (default 2500) or
//! `XDPATH_FUZZ_SECONDS` (default 240), whichever ends first;
//! `XDPATH_FUZZ_SEED` picks another sequence. Commands that run until
//! stopped always get a short bound (`top -n 1`, `--duration`), `bench`
//! always an out-of-range count (it would run for minutes), and
//! `apply --confirm` never a valid duration (it would leave a waiter).
//! Traffic goes only to loopback in the namespace (export collectors).
//!
//! Needs root.

mod common;

#[path = "cli_fuzz/generator.rs"]
mod generator;
#[path = "cli_fuzz/grammar.rs"]
mod grammar;

use std::time::{Duration, Instant};

use common::cli::{crashed, run_in, Run};
use common::{bed, xdpath_ok};
use generator::{Files, Generator};
use xdpath_lab::testenv::Side;

/// Longest run allowed for one vector: the bounded commands take under a
/// second; anything longer is a hang (a FIFO opened blocking, a duration
/// taken unbounded).
const HANG: Duration = Duration::from_secs(30);

/// Longest error line: input is quoted cut to 96 characters.
const MAX_ERROR_LINE: usize = 1024;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// What is wrong with a run of `command`, if anything.
fn judge(command: &str, run: &Run) -> Option<String> {
    if run.status.is_none() {
        return Some(format!("did not finish within {HANG:?}"));
    }
    if crashed(run) {
        return Some(format!("crashed: {:?}: {}", run.status, run.stderr));
    }
    let code = run.code()?;
    if code == 0 {
        return run
            .lines()
            .iter()
            .find(|line| !line.starts_with("xdpath: "))
            .map(|line| format!("succeeded with a stray stderr line {line:?}"));
    }
    if code != 1 && code != 2 {
        return Some(format!("exit status {code}"));
    }
    let lines = run.lines();
    // A refused config file is the one documented exception: a line per
    // mistake.
    let config = matches!(command, "plan" | "apply") && code == 1;
    if lines.is_empty() || (lines.len() > 1 && !config) {
        return Some(format!("{} stderr lines: {:?}", lines.len(), run.stderr));
    }
    lines.iter().find_map(|line| {
        if !line.starts_with("xdpath: error: ") {
            Some(format!("not an xdpath error line: {line:?}"))
        } else if line.len() > MAX_ERROR_LINE {
            Some(format!("an error line of {} bytes", line.len()))
        } else if line.chars().any(char::is_control) {
            Some(format!("control characters in {line:?}"))
        } else {
            None
        }
    })
}

#[test]
fn no_argument_vector_panics_hangs_or_breaks_the_error_format() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface]);
    let seed = env_number("XDPATH_FUZZ_SEED", 0x0014_5eed);
    let runs = env_number("XDPATH_FUZZ_RUNS", 2500);
    let budget = Duration::from_secs(env_number("XDPATH_FUZZ_SECONDS", 240));
    let files = Files::create(bed.number());
    let mut generator = Generator::new(seed, &interface, &files);
    let started = Instant::now();
    let (mut done, mut failed, mut refused) = (0u64, Vec::new(), 0u64);
    let mut covered = std::collections::BTreeSet::new();
    while done < runs && started.elapsed() < budget {
        let (command, args) = generator.next_vector();
        let run = run_in(&bed, Side::A, &args, HANG);
        if run.code() != Some(0) {
            refused += 1;
        }
        if let Some(problem) = judge(&command, &run) {
            failed.push(format!("#{done} xdpath {args:?}: {problem}"));
        }
        covered.insert(command);
        done += 1;
    }
    eprintln!(
        "cli fuzz: seed {seed:#x}: {done} vectors in {:.0?} ({refused} refused), {} failures",
        started.elapsed(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} failures:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(
        done >= 500.min(runs),
        "only {done} vectors ran in {budget:?}"
    );
    assert!(
        covered.len() >= grammar::COMMANDS,
        "subcommands covered: {covered:?}"
    );
    // Nothing was left behind: no process of this bed's namespace.
    let stray = std::process::Command::new("ip")
        .args(["netns", "pids", &bed.a().namespace])
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .expect("ip netns pids");
    assert!(stray.is_empty(), "processes left in the namespace: {stray}");
}
