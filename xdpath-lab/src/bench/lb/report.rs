//! The section's report: its row types, how rows are made from samples,
//! and the printed tables.

use super::state::Family;
use crate::bench::{mean, median};

/// One row of the load-balancer table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LbRow {
    /// What ran, and which path.
    pub program: String,
    /// `IPv4` or `IPv6` (the frames of the row, and the family its ratios
    /// compare against).
    pub family: String,
    /// Kernel-reported ns per packet: the median over rounds (or trials) of
    /// each round's mean over its frames.
    pub ns_per_packet: f64,
    /// 10⁹ / `ns_per_packet`.
    pub packets_per_second: f64,
    /// `ns_per_packet` / the empty program's (same family, same method).
    pub ratio_to_empty: f64,
    /// `ns_per_packet` / xdp-filter's (same family, same method).
    pub ratio_to_xdp_filter: Option<f64>,
    /// `ns_per_packet` minus the empty program's: the program's own work
    /// without the test-run loop.
    pub net_ns: f64,
    /// `net_ns` / xdp-filter's `net_ns`.
    pub net_ratio_to_xdp_filter: Option<f64>,
    /// Each round's (or trial's) figure.
    pub per_round_ns: Vec<f64>,
    /// Single runs: the median over rounds of each round's median run
    /// (whole ns). Repeated rows: the wall-clock ns per packet.
    pub median_run_ns: f64,
}

/// xdpath's balancer beside the reference balancer (Katran's per-packet
/// work) over the same IPv4 frames, in the same rounds.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReferenceRatio {
    /// Which path.
    pub row: String,
    /// xdpath's kernel-reported ns per packet.
    pub xdpath_ns: f64,
    /// The reference's.
    pub reference_ns: f64,
    /// `xdpath_ns` / `reference_ns`.
    pub ratio: f64,
    /// The same with the empty program's ns taken off both.
    pub net_ratio: f64,
    /// xdpath's median single run (whole ns).
    pub xdpath_median_run_ns: f64,
    /// The reference's.
    pub reference_median_run_ns: f64,
}

/// A multi-CPU row per CPU: every CPU's thread running its own flows at
/// the same time.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MultiCpuRow {
    /// What ran, and which path.
    pub program: String,
    /// The CPUs, one pinned thread each.
    pub cpus: Vec<usize>,
    /// Each CPU's kernel-reported ns per packet (median over rounds of the
    /// round's mean).
    pub per_cpu_ns: Vec<f64>,
    /// Σ over the CPUs of 10⁹ / its ns.
    pub aggregate_packets_per_second: f64,
}

/// What a multi-repeat test run of one VIP frame did to the connection
/// table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RepeatCheck {
    /// Repeats asked for.
    pub repeat: u32,
    /// Connection-table lookups the run made (hits + misses).
    pub lookups: u64,
    /// The last repeat's action.
    pub last_action: u32,
}

/// One Maglev build row.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MaglevRow {
    /// Backends.
    pub backends: usize,
    /// How the weights were chosen.
    pub weights: String,
    /// Table size.
    pub size: u32,
    /// Builds timed.
    pub builds: usize,
    /// Median build time, ms.
    pub median_ms: f64,
    /// Fastest build, ms.
    pub min_ms: f64,
    /// Slowest build, ms.
    pub max_ms: f64,
}

/// The load-balancer section of the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LbReport {
    /// The method, in words.
    pub method: String,
    /// The measured object's connection table (type, size, flags).
    pub connection_table: String,
    /// Flows per family and round.
    pub flows: u32,
    /// Rounds.
    pub rounds: usize,
    /// Single runs over distinct frames: misses, hits, and the baselines.
    pub single_runs: Vec<LbRow>,
    /// xdpath over the reference balancer, row by row (IPv4).
    pub reference: Vec<ReferenceRatio>,
    /// The multi-CPU rows per CPU, with the aggregate packets/s.
    pub multi_cpu: Vec<MultiCpuRow>,
    /// `repeat` runs of one frame not addressed to a VIP (the balancer
    /// enabled but not used), beside the baselines.
    pub repeated: Vec<LbRow>,
    /// Why the hit path cannot be timed with `repeat > 1`.
    pub repeat_check: RepeatCheck,
    /// Connection-table hits counted by the kernel over the measured passes.
    pub counted_hits: u64,
    /// Connection-table misses counted by the kernel over the measured
    /// passes.
    pub counted_misses: u64,
    /// Maglev table builds.
    pub maglev: Vec<MaglevRow>,
    /// Why the xdp-filter peer did not run, if it did not.
    pub peer_skipped: Option<String>,
}

impl LbReport {
    /// Prints the section as tables.
    pub fn print(&self) {
        println!(
            "LOAD BALANCER: {} flows per family x {} rounds; {}",
            self.flows, self.rounds, self.connection_table
        );
        println!("method:  {}", self.method);
        println!(
            "repeat check: a {}-repeat test run of one VIP frame made {} connection-table lookup(s), last action {}",
            self.repeat_check.repeat, self.repeat_check.lookups, self.repeat_check.last_action
        );
        println!(
            "connection-table counters over the measured passes: {} hits, {} misses",
            self.counted_hits, self.counted_misses
        );
        println!();
        print_rows("ONE RUN PER FRAME", &self.single_runs, "median run");
        println!();
        println!(
            "{:<40} {:>10} {:>10} {:>8} {:>8} {:>12}",
            "XDPATH / REFERENCE (IPv4 IPIP)", "xdpath ns", "ref ns", "ratio", "net", "median runs"
        );
        for row in &self.reference {
            println!(
                "{:<40} {:>10.1} {:>10.1} {:>7.2}x {:>7.2}x {:>5.0} / {:<5.0}",
                row.row,
                row.xdpath_ns,
                row.reference_ns,
                row.ratio,
                row.net_ratio,
                row.xdpath_median_run_ns,
                row.reference_median_run_ns
            );
        }
        println!();
        if let Some(first) = self.multi_cpu.first() {
            println!(
                "{:<40} {:>28} {:>12}",
                format!("LB ON {} CPUs AT ONCE {:?}", first.cpus.len(), first.cpus),
                "per CPU ns",
                "total Mpps"
            );
            for row in &self.multi_cpu {
                let per_cpu: Vec<String> =
                    row.per_cpu_ns.iter().map(|ns| format!("{ns:.1}")).collect();
                println!(
                    "{:<40} {:>28} {:>12.2}",
                    row.program,
                    per_cpu.join(" / "),
                    row.aggregate_packets_per_second / 1e6
                );
            }
            println!();
        }
        print_rows("REPEATED, frame not to a VIP", &self.repeated, "wall ns");
        if let Some(reason) = &self.peer_skipped {
            println!("xdp-filter peer skipped: {reason}");
        }
        println!();
        println!(
            "{:<18} {:<26} {:>7} {:>10} {:>10} {:>10}",
            "MAGLEV BUILD", "weights", "size", "median ms", "min ms", "max ms"
        );
        for row in &self.maglev {
            println!(
                "{:<18} {:<26} {:>7} {:>10.2} {:>10.2} {:>10.2}",
                format!("{} backends", row.backends),
                row.weights,
                row.size,
                row.median_ms,
                row.min_ms,
                row.max_ms
            );
        }
    }
}

fn print_rows(title: &str, rows: &[LbRow], last: &str) {
    println!(
        "{:<40} {:>4} {:>9} {:>7} {:>8} {:>9} {:>7} {:>9} {:>10}",
        title, "fam", "ns/pkt", "Mpps", "x empty", "x filter", "net ns", "net x flt", last
    );
    let ratio = |value: Option<f64>| value.map_or("-".to_string(), |r| format!("{r:.2}x"));
    for row in rows {
        println!(
            "{:<40} {:>4} {:>9.2} {:>7.2} {:>7.2}x {:>9} {:>7.2} {:>9} {:>10.2}",
            row.program,
            row.family,
            row.ns_per_packet,
            row.packets_per_second / 1e6,
            row.ratio_to_empty,
            ratio(row.ratio_to_xdp_filter),
            row.net_ns,
            ratio(row.net_ratio_to_xdp_filter),
            row.median_run_ns,
        );
    }
}

/// One row's samples, a pair per round (or trial): the figure's sample
/// and the last column's. Single runs: (mean over the pass, median run);
/// repeated rows: (kernel-reported ns, wall-clock ns).
#[derive(Default)]
pub(super) struct Samples(Vec<(f64, f64)>);

impl Samples {
    /// A single-run pass: each run's kernel-reported ns.
    pub(super) fn push_pass(&mut self, runs: &[u64]) {
        let mut sorted: Vec<f64> = runs.iter().map(|&ns| ns as f64).collect();
        // Whole ns, so the f64 sum is exact.
        let mean = mean(&sorted);
        self.0.push((mean, median(&mut sorted)));
    }

    /// A repeated trial: (kernel-reported ns, wall-clock ns) per run.
    pub(super) fn push_trial(&mut self, trial: (f64, f64)) {
        self.0.push(trial);
    }

    /// No round or trial ran (the row is left out).
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn per_round(&self) -> Vec<f64> {
        self.0.iter().map(|sample| sample.0).collect()
    }

    /// The row's figure: the median over rounds.
    pub(super) fn figure(&self) -> f64 {
        median(&mut self.per_round())
    }

    pub(super) fn last_column(&self) -> f64 {
        median(&mut self.0.iter().map(|sample| sample.1).collect::<Vec<_>>())
    }

    /// The table row; `baselines` are the same family's and method's
    /// (empty ns, xdp-filter ns if it ran).
    pub(super) fn row(
        &self,
        program: &str,
        family: Family,
        baselines: (f64, Option<f64>),
    ) -> LbRow {
        let ns = self.figure();
        let (empty, peer) = baselines;
        let net = ns - empty;
        LbRow {
            program: program.into(),
            family: family.name().into(),
            ns_per_packet: ns,
            packets_per_second: if ns > 0.0 { 1e9 / ns } else { 0.0 },
            ratio_to_empty: ns / empty,
            ratio_to_xdp_filter: peer.map(|peer| ns / peer),
            net_ns: net,
            net_ratio_to_xdp_filter: peer.map(|peer| net / (peer - empty)),
            per_round_ns: self.per_round(),
            median_run_ns: self.last_column(),
        }
    }
}
