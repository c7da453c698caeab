//! `xdpath bench --cpus N`, the mix on N CPUs at once: one thread pinned
//! to each CPU runs every frame of the mix through one program with
//! `BPF_PROG_TEST_RUN` (`repeat` runs a frame), all threads starting each
//! program's pass together; programs in turn, trials interleaved. Per
//! CPU, the kernel-reported ns per packet (per frame the median over the
//! trials, then the mean over the mix); the aggregate packets/s is the sum
//! over the CPUs of 10⁹ / that CPU's ns (each CPU runs its own frames at
//! the same time as the others). The balancer's passes on N CPUs are in
//! the load-balancer section (`lb::multi_cpu`).

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Barrier;

use xdpath::dataplane::LoadedProgram;
use xdpath_core::abi;

use super::lb::testrun::{test_run, Subject};
use super::lb::{allowed_cpus, LbBenchError, PinnedThread};
use super::{mean, median, BenchError, BenchOptions};

/// The most CPUs `--cpus` takes.
pub const MAX_CPUS: usize = 64;

/// One program on N CPUs at once.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MultiCoreRow {
    /// What ran.
    pub program: String,
    /// The CPUs, one thread pinned to each.
    pub cpus: Vec<usize>,
    /// Kernel-reported ns per packet on each CPU (mean over the mix of the
    /// per-frame medians over trials).
    pub per_cpu_ns: Vec<f64>,
    /// The mean of `per_cpu_ns`.
    pub mean_ns: f64,
    /// Σ over the CPUs of 10⁹ / its ns: packets/s of all CPUs together.
    pub aggregate_packets_per_second: f64,
}

/// Runs the mix through xdpath (parse+count), xdpath with the filter
/// bench state, the empty program and xdp-filter (if it loads) on
/// `count` CPUs at once.
pub fn run(
    options: &BenchOptions,
    mix: &[(String, Vec<u8>)],
    count: usize,
) -> Result<Vec<MultiCoreRow>, BenchError> {
    let cpus = allowed_cpus(count).map_err(|error| BenchError::Options(error.to_string()))?;
    if cpus.len() < count {
        return Err(BenchError::Options(format!(
            "--cpus {count}: this process may run on {} CPU(s) only",
            cpus.len()
        )));
    }
    let subjects = load_subjects(options)?;
    let frames: Vec<&[u8]> = mix.iter().map(|(_, frame)| frame.as_slice()).collect();
    // [program][trial][cpu][frame] kernel-reported ns.
    let mut samples: Vec<Vec<Vec<Vec<f64>>>> = vec![Vec::new(); subjects.len()];
    for _ in 0..options.trials {
        for (subject, samples) in subjects.iter().zip(&mut samples) {
            samples.push(at_once(subject, &cpus, &frames, options.repeat)?);
        }
    }
    Ok(subjects
        .iter()
        .zip(&samples)
        .map(|(subject, trials)| row(&subject.label, &cpus, frames.len(), trials))
        .collect())
}

fn load_subjects(options: &BenchOptions) -> Result<Vec<Subject>, BenchError> {
    let lb_error = |error: LbBenchError| BenchError::Options(error.to_string());
    let wrap = |program: &str| {
        let program = program.to_string();
        move |source| BenchError::Program {
            program,
            source: Box::new(source),
        }
    };
    let object = options.object.as_deref();
    let mut subjects = vec![
        Subject::new(
            "xdpath (parse+count)",
            super::kernel::load_plain(object)?,
            abi::program::XDPATH,
        )
        .map_err(lb_error)?,
        Subject::new(
            "xdpath + filter (100k pfx)",
            super::kernel::load_filtered(object, options.address_limits())?,
            abi::program::XDPATH,
        )
        .map_err(lb_error)?,
        Subject::new(
            "empty (XDP_PASS)",
            LoadedProgram::load_empty().map_err(wrap("empty"))?,
            abi::program::EMPTY,
        )
        .map_err(lb_error)?,
    ];
    if let Ok(peer) = LoadedProgram::load_file(&options.peer, super::kernel::PEER_PROGRAM) {
        subjects.push(
            Subject::new(
                "xdp-filter xdpfilt_alw_all",
                peer,
                super::kernel::PEER_PROGRAM,
            )
            .map_err(lb_error)?,
        );
    }
    Ok(subjects)
}

/// One pass of `subject` over the mix on every CPU at once: per CPU, per
/// frame, kernel-reported ns.
fn at_once(
    subject: &Subject,
    cpus: &[usize],
    frames: &[&[u8]],
    repeat: u32,
) -> Result<Vec<Vec<f64>>, BenchError> {
    let barrier = Barrier::new(cpus.len());
    let program = subject.entry.as_fd();
    let results: Vec<Result<Vec<f64>, std::io::Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = cpus
            .iter()
            .map(|&cpu| {
                let barrier = &barrier;
                scope.spawn(move || pinned_mix(cpu, barrier, program, frames, repeat))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a benchmark thread panicked")))
            })
            .collect()
    });
    results
        .into_iter()
        .map(|result| {
            result.map_err(|source| BenchError::Options(format!("{}: {source}", subject.label)))
        })
        .collect()
}

/// One thread: pinned to `cpu`, waits for the others, then runs each
/// frame `repeat` times (after a short warm-up).
fn pinned_mix(
    cpu: usize,
    barrier: &Barrier,
    program: BorrowedFd<'_>,
    frames: &[&[u8]],
    repeat: u32,
) -> Result<Vec<f64>, std::io::Error> {
    let pinned = PinnedThread::to_cpu(cpu);
    // Every thread passes the barrier, pinned or not, so none waits for
    // ever.
    barrier.wait();
    let _pinned = pinned?;
    let mut per_frame = Vec::with_capacity(frames.len());
    for frame in frames {
        test_run(program, frame, repeat.min(10_000))?;
        let (_, ns) = test_run(program, frame, repeat)?;
        per_frame.push(f64::from(ns));
    }
    Ok(per_frame)
}

/// A program's row from its trials (`[trial][cpu][frame]`).
fn row(label: &str, cpus: &[usize], frames: usize, trials: &[Vec<Vec<f64>>]) -> MultiCoreRow {
    let per_cpu_ns: Vec<f64> = (0..cpus.len())
        .map(|cpu| {
            let per_frame: Vec<f64> = (0..frames)
                .map(|frame| {
                    let mut values: Vec<f64> = trials
                        .iter()
                        .filter_map(|trial| trial.get(cpu).and_then(|frames| frames.get(frame)))
                        .copied()
                        .collect();
                    median(&mut values)
                })
                .collect();
            mean(&per_frame)
        })
        .collect();
    let aggregate = per_cpu_ns
        .iter()
        .filter(|ns| **ns > 0.0)
        .map(|ns| 1e9 / ns)
        .sum();
    MultiCoreRow {
        program: label.into(),
        cpus: cpus.to_vec(),
        mean_ns: mean(&per_cpu_ns),
        per_cpu_ns,
        aggregate_packets_per_second: aggregate,
    }
}

/// Prints the rows.
pub fn print(rows: &[MultiCoreRow]) {
    let Some(first) = rows.first() else {
        return;
    };
    println!(
        "MIX ON {} CPUs AT ONCE (CPUs {:?}), kernel-reported",
        first.cpus.len(),
        first.cpus
    );
    println!(
        "{:<32} {:>10} {:>28} {:>12}",
        "program", "mean ns", "per CPU ns", "total Mpps"
    );
    for row in rows {
        let per_cpu: Vec<String> = row.per_cpu_ns.iter().map(|ns| format!("{ns:.1}")).collect();
        println!(
            "{:<32} {:>10.1} {:>28} {:>12.2}",
            row.program,
            row.mean_ns,
            per_cpu.join(" / "),
            row.aggregate_packets_per_second / 1e6
        );
    }
}
