//! Differential fuzzing (needs root): generated and mutated frames through
//! the kernel (`BPF_PROG_TEST_RUN`) and the native build with the same
//! state (`xdpath_testing::differential`): the same verdict, reason, matched rule
//! or VIP and output bytes for every frame, the same counters, rule hits,
//! limit drops and balancer statistics after every round; the kernel never
//! returns XDP_ABORTED.
//!
//! The suite runs a short bounded run. The long run is the ignored test
//! below (`scripts/fuzz.sh diff FRAMES`):
//!
//! ```text
//! XDPATH_FUZZ_FRAMES=10000000 XDPATH_FUZZ_SEED=1 \
//!   cargo test --release -p xdpath-cli --test differential -- --ignored --nocapture
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use xdpath_core::build::{FrameSpec, Network, Transport};
use xdpath_core::{InterfaceConfig, MalformedPolicy};
use xdpath_testing::differential::builds::Builds;
use xdpath_testing::differential::scenarios::scenarios;
use xdpath_testing::differential::{run, Options, Report};

/// tcpdump's test captures (testdata/tcpdump, in the repository).
fn corpus() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/tcpdump"));
    assert!(
        dir.is_dir(),
        "the tcpdump corpus is missing: {}",
        dir.display()
    );
    Some(dir)
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

fn assert_agreed(report: &Report) {
    eprintln!("{}", report.summary());
    assert_eq!(
        report.disagreements,
        0,
        "the builds disagree:\n{}",
        report.summary()
    );
}

#[test]
fn kernel_and_native_agree_on_generated_and_mutated_frames() {
    xdpath_lab::needs_root!();
    let options = Options {
        frames: 21_000,
        round_frames: 3_000,
        corpus: corpus(),
        ..Options::default()
    };
    let report = run(&options, |_| {}).expect("the differential run");
    assert_agreed(&report);
    assert_eq!(report.frames, 21_000);
    assert_eq!(report.rounds, 7, "one round per scenario");
    assert!(report.kernel_frames > 20_000, "{}", report.kernel_frames);
    // The frames reach well beyond the parser: filter and balancer
    // verdicts, malformed frames of many kinds, tunnels stripped.
    for outcome in [
        "drop/rule-deny",
        "drop/default-deny",
        "drop/blocklisted",
        "drop/rate-limited",
        "drop/tcp-syn-fin",
        "drop/amplification",
        "drop/fragment",
        "tx/lb-forwarded",
        "drop/lb-no-backend",
        "pass/decap-ipip",
        "pass/decap-gue",
        "drop/truncated-ethernet",
    ] {
        assert!(
            report.outcomes.contains_key(outcome),
            "no frame got {outcome}: {:?}",
            report.outcomes
        );
    }
    assert!(
        report.outcomes.len() >= 40,
        "only {} outcomes covered: {:?}",
        report.outcomes.len(),
        report.outcomes
    );
}

/// The harness catches a difference: with the native build's malformed
/// policy changed behind its back, a malformed frame is reported and a
/// well-formed one is not.
#[test]
fn a_difference_between_the_builds_is_reported() {
    xdpath_lab::needs_root!();
    let scenario = scenarios()
        .expect("scenarios")
        .into_iter()
        .find(|scenario| scenario.config == InterfaceConfig::new(MalformedPolicy::Pass))
        .expect("the malformed-pass scenario");
    let mut builds = Builds::new(&scenario).expect("builds (needs root)");
    builds.native_mut().config = InterfaceConfig::new(MalformedPolicy::Drop);
    let good = FrameSpec::new(
        Network::V4([192, 0, 2, 1], [198, 51, 100, 2]),
        Transport::udp(1, 2),
    )
    .build();
    let mut truncated = good.clone();
    truncated.truncate(30);
    assert_eq!(builds.run(&good).difference, None);
    let difference = builds.run(&truncated).difference.expect("a difference");
    assert!(
        difference.contains("kernel pass/truncated-ipv4")
            && difference.contains("native drop/truncated-ipv4"),
        "{difference}"
    );
    let totals = builds.totals().expect("totals");
    assert!(
        totals.iter().any(|what| what.contains("counters differ")),
        "{totals:?}"
    );
}

/// Every disagreement the fuzz found, kept in
/// `tests/data/differential_findings.txt`, through both builds with its
/// scenario's state.
#[test]
fn kernel_and_native_agree_on_every_finding() {
    xdpath_lab::needs_root!();
    let findings = include_str!("data/differential_findings.txt");
    let scenarios = scenarios().expect("scenarios");
    let mut checked = 0;
    for line in findings
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
    {
        let mut fields = line.split('\t');
        let (name, hex) = (
            fields.next().expect("a scenario"),
            fields.next().expect("a frame"),
        );
        let scenario = scenarios
            .iter()
            .find(|scenario| scenario.name == name)
            .unwrap_or_else(|| panic!("no scenario {name:?}"));
        let frame: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).expect("hex"))
            .collect();
        let mut builds = Builds::new(scenario).expect("builds (needs root)");
        assert_eq!(builds.run(&frame).difference, None, "{name}: {line}");
        assert_eq!(builds.totals().expect("totals"), Vec::<String>::new());
        checked += 1;
    }
    assert!(checked > 0, "no findings kept");
}

/// The long run: `XDPATH_FUZZ_FRAMES` frames (default 10^7) from seed
/// `XDPATH_FUZZ_SEED` (default 1), the corpus's frames mutated too;
/// progress every ten seconds; the report as JSON to `XDPATH_FUZZ_REPORT`
/// when set.
#[test]
#[ignore = "long: run by scripts/fuzz.sh diff"]
fn long_differential_fuzz() {
    xdpath_lab::needs_root!();
    let options = Options {
        frames: env_number("XDPATH_FUZZ_FRAMES", 10_000_000),
        seed: env_number("XDPATH_FUZZ_SEED", 1),
        corpus: corpus(),
        ..Options::default()
    };
    eprintln!(
        "differential fuzz: {} frames from seed {}",
        options.frames, options.seed
    );
    let mut last = Instant::now();
    let report = run(&options, |report| {
        if last.elapsed() >= Duration::from_secs(10) {
            last = Instant::now();
            eprintln!(
                "  {} frames, {} rounds, {:.0} frames/s, {} disagreements",
                report.frames,
                report.rounds,
                report.frames_per_second(),
                report.disagreements
            );
        }
    })
    .expect("the differential run");
    if let Ok(path) = std::env::var("XDPATH_FUZZ_REPORT") {
        let json = serde_json::to_string_pretty(&report).expect("report as JSON");
        std::fs::write(&path, json).unwrap_or_else(|error| panic!("{path}: {error}"));
    }
    for (outcome, frames) in &report.outcomes {
        eprintln!("  {outcome:<32} {frames}");
    }
    assert_agreed(&report);
}
