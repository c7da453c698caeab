//! `xdpath bench`'s load-balancer section (issue 4's figures): the cost of
//! the whole `xdpath` program (parse → balance stage by tail call) on a
//! connection-table hit and on a miss, beside the empty program and
//! xdp-tools' `xdpfilt_alw_all.o` measured the same way over the same
//! frames, and the time to build Maglev tables.
//!
//! Why one run per frame: `BPF_PROG_TEST_RUN` with `repeat > 1` runs the
//! program again on the frame *as the previous run left it*. The balancer
//! encapsulates, so from the second repeat on the frame is an IPIP or GUE
//! packet to a backend, not a frame to the VIP: it never reaches the
//! connection table again (each benchmark run shows this, see
//! [`RepeatCheck`]). So every balancer figure here is the kernel-reported
//! duration of single runs (`repeat` = 1), averaged over many distinct
//! frames, and the peers run the same way over the same frames. A single
//! run's duration includes the test-run timer's own cost (two clock reads)
//! and starts with colder caches than a tight loop; the empty program's row
//! shows the fixed part, and `net` columns subtract it.
//!
//! A miss is the SYN of a flow the tables have never seen (placed in the
//! new-flow table); a first ACK is the same flow's next segment, found in
//! the new-flow table and copied to the established one; a hit is that
//! ACK sent again (found in the established table); a one-flow hit is the
//! first flow's ACK sent as many times (its table entry stays cached). The
//! `CONN_STATS` counters must show exactly one miss per frame of the first
//! pass and one hit per frame of the others, or the benchmark fails; but
//! a first ACK whose slot of the new-flow table a later SYN of the pass
//! took is a miss, and the benchmark works out how many from the flows
//! (about 7 % of 20,000). The
//! multi-CPU rows send ACKs of new flows (misses, placed in the
//! established table), then the same ACKs again (hits there), from one
//! thread per CPU at once, for the tables' locks.
//!
//! The reference balancer (`reference`), as Katran, never looks a SYN up:
//! its miss row is the ring and the insert alone, xdpath's a lookup in
//! each of its two tables before them.
//!
//! The parts: `state` (the balancer state and the frames), `testrun`
//! (`BPF_PROG_TEST_RUN` and the programs it runs), `programs` (loading
//! them all, the connection table), `single` (the single-run passes and
//! their counter checks), `multi_cpu` (pinning, all CPUs at once),
//! `repeated` (the rows of a frame to no VIP), `maglev` (table build
//! times) and `report` (rows and printing).

mod maglev;
mod multi_cpu;
mod programs;
pub mod reference;
mod repeated;
mod report;
mod single;
mod state;
pub(crate) mod testrun;

use std::path::PathBuf;

pub use maglev::maglev_rows;
pub use report::{LbReport, LbRow, MaglevRow, MultiCpuRow, ReferenceRatio, RepeatCheck};
pub use state::bench_state;

pub(crate) use multi_cpu::{allowed_cpus, PinnedThread};
use programs::Programs;
use xdpath::dataplane::DataplaneError;
use xdpath::lb::maglev::MaglevError;

/// The IPv4 VIP: 203.0.113.10:80/tcp, IPIP.
pub const VIP4: [u8; 4] = [203, 0, 113, 10];
/// The IPv6 VIP's last 16 bits: `[2001:db8::10]:443`/tcp, GUE.
pub const VIP6_LAST: u16 = 0x10;
/// The GUE destination port of the IPv6 VIP.
pub const GUE_PORT: u16 = 6080;
/// Maglev ring size of both VIPs.
pub const RING_SIZE: u32 = 65_537;
/// The fixed next hop's MAC (no FIB lookup).
pub const NEXT_HOP: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
/// Builds per Maglev row; the median is kept.
pub const MAGLEV_BUILDS: usize = 7;
/// The most flows a round may use: a round's IPv4 and IPv6 flows must fit
/// the established table together (`MAX_CONNECTIONS` = 2¹⁷), and in the
/// variant with per-CPU LRU lists one CPU's share of it (half on two
/// CPUs), so that no insert evicts.
pub const MAX_FLOWS: u32 = 32_768;
/// The most rounds (the round number is part of the flows' source
/// addresses).
pub const MAX_ROUNDS: usize = 32;
/// The most CPUs the multi-CPU rows use at once (`--cpus`; without it,
/// every CPU allowed up to [`DEFAULT_THREADS`]).
pub const MAX_THREADS: usize = 64;
/// The multi-CPU rows' CPUs without `--cpus`: every CPU allowed, at most
/// this many.
pub const DEFAULT_THREADS: usize = 4;

/// Options of the load-balancer section.
#[derive(Clone, Debug)]
pub struct LbBenchOptions {
    /// Distinct flows per family and round (each a miss, then a hit).
    pub flows: u32,
    /// Rounds; the median of the per-round means is kept.
    pub rounds: usize,
    /// Prefixes in each VIP's allow list (0: none).
    pub allow: u32,
    /// Repeats of the repeated (non-VIP frame) rows.
    pub repeat: u32,
    /// Trials of the repeated rows; the median is kept.
    pub trials: usize,
    /// The xdpath object to measure instead of the embedded one.
    pub object: Option<PathBuf>,
    /// The xdp-filter peer object.
    pub peer: PathBuf,
    /// The multi-CPU rows on exactly this many CPUs (one too: the
    /// scaling's baseline); `None`: every CPU allowed, at most
    /// [`DEFAULT_THREADS`], and no such rows on one CPU.
    pub cpus: Option<usize>,
    /// The kind of xdpath's connection tables (the reference's are always
    /// per CPU, as Katran's).
    pub connection_table: xdpath::dataplane::ConnectionTable,
}

/// Errors of the load-balancer benchmark.
#[derive(Debug, thiserror::Error)]
pub enum LbBenchError {
    /// Loading a program failed.
    #[error("program {program}: {source}")]
    Program {
        /// Which program.
        program: String,
        /// Why.
        source: Box<DataplaneError>,
    },
    /// Writing or reading the balancer's maps failed.
    #[error("balancer maps: {0}")]
    Maps(String),
    /// A Maglev table could not be built.
    #[error("maglev table: {0}")]
    Maglev(#[from] MaglevError),
    /// A program gave an unexpected verdict: the path measured is not the
    /// one named.
    #[error("{program}: frame {frame}: action {action}, expected {expected}")]
    Verdict {
        /// Which program.
        program: String,
        /// Index of the frame in its pass.
        frame: usize,
        /// The action it returned.
        action: u32,
        /// The action the path must end in.
        expected: u32,
    },
    /// The connection-table counters do not show the hits or misses the
    /// pass was meant to cause.
    #[error("connection table: {0}")]
    Counters(String),
    /// A test run failed.
    #[error("{program}: BPF_PROG_TEST_RUN: {source}")]
    TestRun {
        /// Which program.
        program: String,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// Pinning the thread to one CPU failed.
    #[error("pin the benchmark to one CPU: {0}")]
    Affinity(std::io::Error),
    /// A thread of the multi-CPU rows panicked.
    #[error("a benchmark thread panicked")]
    ThreadPanicked,
    /// Bad options.
    #[error("{0}")]
    Options(String),
}

/// Checks `--lb-flows` and `--lb-rounds` (before the rest of the bench
/// spends its time).
pub fn check_options(flows: u32, rounds: usize) -> Result<(), LbBenchError> {
    if flows == 0 || flows > MAX_FLOWS || rounds == 0 || rounds > MAX_ROUNDS {
        return Err(LbBenchError::Options(format!(
            "--lb-flows must be 1-{MAX_FLOWS} and --lb-rounds 1-{MAX_ROUNDS}"
        )));
    }
    Ok(())
}

/// Runs the load-balancer section.
pub fn run(options: &LbBenchOptions) -> Result<LbReport, LbBenchError> {
    check_options(options.flows, options.rounds)?;
    if options.repeat == 0 || options.trials == 0 {
        return Err(LbBenchError::Options(
            "--repeat and --trials must be at least 1".into(),
        ));
    }
    if options.allow > state::MAX_BENCH_ALLOW {
        return Err(LbBenchError::Options(format!(
            "--lb-allow must be 0-{}",
            state::MAX_BENCH_ALLOW
        )));
    }
    let mut programs = Programs::load(options)?;
    // The multi-CPU rows' CPUs, read before this thread is pinned to one.
    let wanted = options.cpus.unwrap_or(DEFAULT_THREADS);
    let cpus = allowed_cpus(wanted).map_err(LbBenchError::Affinity)?;
    if options.cpus.is_some() && cpus.len() < wanted {
        return Err(LbBenchError::Options(format!(
            "--cpus {wanted}: this process may run on {} CPU(s) only",
            cpus.len()
        )));
    }
    let pinned = PinnedThread::to_current_cpu().map_err(LbBenchError::Affinity)?;
    let repeat_check = single::repeat_check(&mut programs)?;
    let concurrent = cpus.len() > 1 || options.cpus.is_some();
    let single = single::measure(
        &mut programs,
        concurrent.then_some(cpus.as_slice()),
        options.flows,
        options.rounds,
    )?;
    let repeated = repeated::rows(&programs, options.repeat, options.trials)?;
    drop(pinned);
    let maglev = maglev_rows()?;
    Ok(LbReport {
        method: method(options, cpus.len()),
        connection_table: programs.connection_table,
        flows: options.flows,
        rounds: options.rounds,
        single_runs: single.rows(programs.peer.is_some(), cpus.len()),
        reference: single.reference_ratios(cpus.len()),
        multi_cpu: single.multi_cpu_rows(&cpus),
        repeated,
        repeat_check,
        counted_hits: single.counted_hits,
        counted_misses: single.counted_misses,
        maglev,
        peer_skipped: programs.peer_skipped,
    })
}

/// The method, in words, for the report.
fn method(options: &LbBenchOptions, cpus: usize) -> String {
    let flows = options.flows;
    format!(
        "one BPF_PROG_TEST_RUN per frame (repeat = 1) over {flows} distinct TCP flows per \
         family and round, each to the VIP from its own source address and port; the \
         kernel-reported duration (whole ns) averaged over the frames, median of {} rounds. \
         Per round and family: the balancer over the flows' SYNs (all misses, placed in the \
         new-flow table), then over their ACKs (hits there, each copied to the established \
         table; a miss where a later SYN took the flow's slot, counted exactly), then over the ACKs again (all hits in the established table), then as many \
         runs of the first flow's ACK (hits on one cached entry), then xdpath without LB \
         state, the empty program and xdp-filter over the SYNs, one run each; CONN_STATS \
         checked after every pass; the tables emptied between rounds. This thread pinned to \
         one CPU. Multi-CPU rows: one thread pinned to each of {} CPUs, {flows} new IPv4 \
         flows each, their ACKs twice (misses placed in the established table, then hits there), the threads \
         starting each pass together. Repeated rows: {} repeats of one frame to no VIP, \
         median of {} trials, kernel-reported (last column: wall-clock). net = ns minus the \
         empty program's. Maglev: build_table at size {}, median of {MAGLEV_BUILDS} builds.",
        options.rounds, cpus, options.repeat, options.trials, RING_SIZE
    )
}
