//! The differential fuzz: generated and mutated frames through the kernel
//! program (`BPF_PROG_TEST_RUN`) and the native build with the same state,
//! which must agree on every frame's verdict, reason, match (rule or VIP)
//! and output bytes, and on every counter, rule hit, limit drop and
//! balancer statistic after each round.
//!
//! A run is rounds of [`Options::round_frames`] frames, cycling through the
//! [`scenarios::Scenario`]s. Each scenario has one program, taken on its
//! first round from the pool of [`crate::reuse`] (as freshly loaded) and
//! given back after its last; before every round its tables are put back
//! as they were after setup ([`restore`]) and the native tables copied
//! afresh, which keeps every kernel table (connection table, token
//! buckets) far below its LRU size, where the kernel evicts and the native
//! build does not.
//!
//! Needs root (it loads programs). `scripts/fuzz.sh diff FRAMES` runs it
//! long; the test suite runs a short, bounded run.

pub mod builds;
pub mod frames;
mod headers;
pub use headers::fix_ipv4_checksum;
pub mod restore;
pub mod scenarios;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use xdpath_core::stats::counter_index;
use xdpath_core::{Action, Reason, COUNTER_SLOTS, REASON_SLOTS};

use builds::{Builds, ETH_HLEN};
use frames::{Generator, MAX_FRAME_LEN};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Frames in all.
    pub frames: u64,
    /// The seed everything is drawn from.
    pub seed: u64,
    /// Frames per round (per freshly loaded program).
    pub round_frames: usize,
    /// A directory of pcap files whose frames are mutated too.
    pub corpus: Option<PathBuf>,
    /// Disagreements kept in full in the report (all are counted).
    pub keep: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            frames: 20_000,
            seed: 1,
            round_frames: 4096,
            corpus: None,
            keep: 20,
        }
    }
}

/// Why a run could not go on (a disagreement is not an error: it is in the
/// report).
#[derive(Debug, thiserror::Error)]
pub enum DifferentialError {
    /// A scenario's state could not be built.
    #[error("scenario: {0}")]
    Scenario(String),
    /// A round's builds could not be set up.
    #[error("{scenario}: {step}: {detail}")]
    Setup {
        /// The scenario.
        scenario: &'static str,
        /// What was being done.
        step: String,
        /// Why it failed.
        detail: String,
    },
    /// A kernel map could not be read.
    #[error("reading {what}: {detail}")]
    Read {
        /// The map.
        what: String,
        /// Why.
        detail: String,
    },
    /// The corpus could not be read.
    #[error("{}: {detail}", path.display())]
    Corpus {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

/// One disagreement, with what reproduces it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Disagreement {
    /// The scenario whose state it ran against.
    pub scenario: &'static str,
    /// The round (a fresh program) it happened in.
    pub round: u64,
    /// The frame's number within the round (from 1); 0 for a round total.
    pub frame_number: usize,
    /// The frame, hex; empty for a round total.
    pub frame_hex: String,
    /// What differed.
    pub what: String,
}

/// What a run found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    /// Frames run.
    pub frames: u64,
    /// Of those, through the kernel as well (the rest were shorter than an
    /// Ethernet header, which a test run refuses: native only).
    pub kernel_frames: u64,
    /// Rounds.
    pub rounds: u64,
    /// Disagreements found (frames and round totals).
    pub disagreements: u64,
    /// The first of them in full.
    pub examples: Vec<Disagreement>,
    /// Frames per `action/reason` (the native build's verdict): what was
    /// covered.
    pub outcomes: BTreeMap<String, u64>,
    #[serde(skip)]
    slots: Vec<u64>,
    /// Seed frames mutated (the scenarios' and the corpus's).
    pub seed_frames: usize,
    /// Wall time.
    pub seconds: f64,
}

impl Report {
    /// Frames per second of wall time, both builds together.
    pub fn frames_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.frames as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// A few lines for people.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} frames ({} through the kernel) in {} rounds, {:.1} s ({:.0} frames/s): {} disagreements; {} distinct outcomes",
            self.frames,
            self.kernel_frames,
            self.rounds,
            self.seconds,
            self.frames_per_second(),
            self.disagreements,
            self.outcomes.len()
        );
        for example in &self.examples {
            // The head is what matters; the JSON report has every byte.
            let hex = &example.frame_hex;
            let shown = if hex.len() > 256 {
                format!("{}… ({} bytes)", &hex[..256], hex.len() / 2)
            } else {
                hex.clone()
            };
            text.push_str(&format!(
                "\n  {} round {} frame {}: {}\n    frame {shown}",
                example.scenario, example.round, example.frame_number, example.what
            ));
        }
        text
    }

    /// Names the covered `action/reason` slots.
    fn name_outcomes(&mut self) {
        self.outcomes = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, frames)| **frames != 0)
            .map(|(slot, frames)| {
                let action = Action::from_u32(slot as u32 / REASON_SLOTS).map_or("?", Action::name);
                let reason =
                    Reason::from_u8((slot as u32 % REASON_SLOTS) as u8).map_or("?", Reason::name);
                (format!("{action}/{reason}"), *frames)
            })
            .collect();
    }

    fn disagree(&mut self, keep: usize, disagreement: Disagreement) {
        self.disagreements += 1;
        if self.examples.len() < keep {
            self.examples.push(disagreement);
        }
    }
}

/// The frames of every pcap file in `dir` that fit a test run whole.
pub fn corpus_frames(dir: &Path) -> Result<Vec<Vec<u8>>, DifferentialError> {
    let error = |path: &Path, detail: String| DifferentialError::Corpus {
        path: path.into(),
        detail,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| error(dir, e.to_string()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "pcap")
        })
        .collect();
    paths.sort();
    let mut frames = Vec::new();
    for path in paths {
        // Files this reader refuses (damage) are skipped: the corpus is
        // tcpdump's, made to break readers. Frames it cannot make Ethernet
        // it skips itself.
        let Ok(reader) = xdpath::pcap::PcapReader::open(&path) else {
            continue;
        };
        frames.extend(
            reader
                .map_while(Result::ok)
                .map(|record| record.data)
                .filter(|data| (ETH_HLEN..=MAX_FRAME_LEN).contains(&data.len())),
        );
    }
    Ok(frames)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Runs the differential fuzz; `progress` sees the report after each
/// round.
pub fn run(
    options: &Options,
    mut progress: impl FnMut(&Report),
) -> Result<Report, DifferentialError> {
    let started = Instant::now();
    let scenarios = scenarios::scenarios().map_err(DifferentialError::Scenario)?;
    let corpus = match &options.corpus {
        Some(dir) => corpus_frames(dir)?,
        None => Vec::new(),
    };
    let mut report = Report {
        slots: vec![0; COUNTER_SLOTS as usize],
        ..Report::default()
    };
    let mut generators: Vec<Generator> = scenarios
        .iter()
        .enumerate()
        .map(|(index, scenario)| {
            let mut seeds = scenario.seeds.clone();
            seeds.extend(corpus.iter().cloned());
            report.seed_frames += seeds.len();
            Generator::new(
                options
                    .seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add(index as u64),
                scenario.vocabulary.clone(),
                seeds,
            )
        })
        .collect();
    let round_frames = options.round_frames.max(1) as u64;
    let rounds = options.frames.div_ceil(round_frames);
    let mut builds: Vec<Option<Builds>> = scenarios.iter().map(|_| None).collect();
    while report.frames < options.frames {
        let index = (report.rounds % scenarios.len() as u64) as usize;
        let scenario = &scenarios[index];
        let frames = round_frames.min(options.frames - report.frames) as usize;
        let round_builds = match &mut builds[index] {
            Some(existing) => existing,
            slot => slot.insert(Builds::new(scenario)?),
        };
        run_round(
            scenario,
            round_builds,
            &mut generators[index],
            frames,
            options,
            &mut report,
        )?;
        if report.rounds + scenarios.len() as u64 > rounds {
            // Its last round: the program goes back to the pool, for the
            // next scenario (a load is seconds of verifier time).
            builds[index] = None;
        }
        report.seconds = started.elapsed().as_secs_f64();
        report.name_outcomes();
        progress(&report);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn run_round(
    scenario: &scenarios::Scenario,
    builds: &mut Builds,
    generator: &mut Generator,
    frames: usize,
    options: &Options,
    report: &mut Report,
) -> Result<(), DifferentialError> {
    let round = report.rounds;
    report.rounds += 1;
    builds.reset()?;
    for number in 1..=frames {
        let frame = generator.frame();
        report.frames += 1;
        if frame.len() >= ETH_HLEN {
            report.kernel_frames += 1;
        }
        let ran = builds.run(&frame);
        if let Some(slot) = report
            .slots
            .get_mut(counter_index(ran.action, ran.reason) as usize)
        {
            *slot += 1;
        }
        if let Some(what) = ran.difference {
            report.disagree(
                options.keep,
                Disagreement {
                    scenario: scenario.name,
                    round,
                    frame_number: number,
                    frame_hex: hex(&frame),
                    what,
                },
            );
        }
    }
    for what in builds.totals()? {
        report.disagree(
            options.keep,
            Disagreement {
                scenario: scenario.name,
                round,
                frame_number: 0,
                frame_hex: String::new(),
                what,
            },
        );
    }
    Ok(())
}
