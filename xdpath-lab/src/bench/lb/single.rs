//! The single-run passes: the repeat check, then per round and family the
//! misses (the flows' SYNs), the first ACKs (each copies its flow from the
//! new-flow table to the established one), the hits (the ACKs again) and
//! the baselines over the same frames, each pass checked against
//! `CONN_STATS`; the multi-CPU passes after each round.

use std::os::fd::AsFd;

use xdpath_core::Action;

use super::multi_cpu::concurrent_round;
use super::programs::{clear_connections, connection_counts, new_flow_seed, Programs};
use super::reference;
use super::report::{LbRow, MultiCpuRow, ReferenceRatio, RepeatCheck, Samples};
use super::state::{flow_frames, new_flow_collisions, Family};
use super::testrun::test_run;
use super::LbBenchError;
use xdpath_core::wire::tcp::{FLAG_ACK, FLAG_SYN};

/// Repeats of the repeat check (one VIP frame, one test run).
const REPEAT_CHECK: u32 = 1_000;

// A family's rows, in table order: the `row` of `SingleRuns::samples`.
const MISS: usize = 0;
const FIRST_ACK: usize = 1;
const HIT: usize = 2;
const HIT_ONE_FLOW: usize = 3;
const PLAIN: usize = 4;
const EMPTY: usize = 5;
const PEER: usize = 6;
const MISS_ALL_CPUS: usize = 7;
const HIT_ALL_CPUS: usize = 8;
// The reference balancer's (IPv4 only).
const REF_MISS: usize = 9;
const REF_HIT: usize = 10;
const REF_HIT_ONE_FLOW: usize = 11;
const REF_MISS_ALL_CPUS: usize = 12;
const REF_HIT_ALL_CPUS: usize = 13;
const ROWS: usize = 14;
/// xdpath's rows and the reference's row of the same frames.
const REFERENCE_PAIRS: [(usize, usize); 5] = [
    (MISS, REF_MISS),
    (HIT, REF_HIT),
    (HIT_ONE_FLOW, REF_HIT_ONE_FLOW),
    (MISS_ALL_CPUS, REF_MISS_ALL_CPUS),
    (HIT_ALL_CPUS, REF_HIT_ALL_CPUS),
];

/// Why the hit path cannot be timed with `repeat > 1`: a multi-repeat run
/// of one VIP frame, on a fresh flow of its own, makes one lookup. Leaves
/// the connection table empty.
pub(super) fn repeat_check(programs: &mut Programs) -> Result<RepeatCheck, LbBenchError> {
    let balancer = &mut programs.balancer;
    clear_connections(&mut balancer.program, &programs.maps)?;
    let before = connection_counts(&programs.maps)?;
    let check_frame = flow_frames(Family::V4, 255, 1, FLAG_SYN).concat();
    let (last_action, _) =
        test_run(balancer.entry.as_fd(), &check_frame, REPEAT_CHECK).map_err(|source| {
            LbBenchError::TestRun {
                program: balancer.label.clone(),
                source,
            }
        })?;
    let after = connection_counts(&programs.maps)?;
    clear_connections(&mut balancer.program, &programs.maps)?;
    Ok(RepeatCheck {
        repeat: REPEAT_CHECK,
        lookups: (after.0 - before.0) + (after.1 - before.1),
        last_action,
    })
}

/// What the single-run passes gathered.
pub(super) struct SingleRuns {
    /// `[family][row]`, rows as `MISS` to `HIT_ALL_CPUS` name them (the
    /// multi-CPU rows run IPv4 only).
    samples: [[Samples; ROWS]; 2],
    /// The multi-CPU rows per CPU: `[row][thread]` (IPv4).
    per_cpu: [Vec<Samples>; ROWS],
    /// Connection-table hits counted by the kernel.
    pub(super) counted_hits: u64,
    /// Connection-table misses counted by the kernel.
    pub(super) counted_misses: u64,
}

/// Runs `rounds` rounds of `flows` flows per family (and the multi-CPU
/// rows with `flows` flows per CPU of `cpus`, when given).
pub(super) fn measure(
    programs: &mut Programs,
    cpus: Option<&[usize]>,
    flows: u32,
    rounds: usize,
) -> Result<SingleRuns, LbBenchError> {
    let mut runs = SingleRuns {
        samples: Default::default(),
        per_cpu: Default::default(),
        counted_hits: 0,
        counted_misses: 0,
    };
    let total = u64::from(flows);
    for round in 0..rounds {
        for (slot, family) in Family::BOTH.into_iter().enumerate() {
            family_round(programs, &mut runs, slot, family, round, flows)?;
        }
        let held = clear_connections(&mut programs.balancer.program, &programs.maps)?;
        if held as u64 != 2 * total {
            return Err(LbBenchError::Counters(format!(
                "round {round}: the established table held {held} entries after {} flows",
                2 * total
            )));
        }
        if let Some(cpus) = cpus {
            concurrent_rounds(programs, &mut runs, cpus, round, flows)?;
        }
    }
    Ok(runs)
}

/// One round of the multi-CPU rows, xdpath's then the reference's: each
/// CPU's thread sends its flows' ACKs twice (misses, then hits), all at
/// once.
fn concurrent_rounds(
    programs: &mut Programs,
    runs: &mut SingleRuns,
    cpus: &[usize],
    round: usize,
    flows: u32,
) -> Result<(), LbBenchError> {
    let maps = &programs.maps;
    let counts = || connection_counts(maps);
    let (misses, hits) = concurrent_round(&programs.balancer, &counts, cpus, round, flows)?;
    runs.counted_misses += misses.iter().map(|runs| runs.len() as u64).sum::<u64>();
    runs.counted_hits += hits.iter().map(|runs| runs.len() as u64).sum::<u64>();
    runs.push_concurrent(MISS_ALL_CPUS, &misses);
    runs.push_concurrent(HIT_ALL_CPUS, &hits);
    clear_connections(&mut programs.balancer.program, &programs.maps)?;
    let program = &programs.reference.program;
    let counts = || reference::hits_and_misses(program);
    let (misses, hits) = concurrent_round(&programs.reference, &counts, cpus, round, flows)?;
    runs.push_concurrent(REF_MISS_ALL_CPUS, &misses);
    runs.push_concurrent(REF_HIT_ALL_CPUS, &hits);
    reference::clear(&mut programs.reference.program)?;
    Ok(())
}

/// The reference over one round's IPv4 frames, right after xdpath's
/// passes: the SYNs (misses), the ACKs (hits), the first flow's ACK as
/// many times (hits on one entry), each pass checked against its
/// counters; its table emptied after.
fn reference_round(
    programs: &mut Programs,
    runs: &mut SingleRuns,
    round: usize,
    frames: &[Vec<u8>],
    acks: &[Vec<u8>],
) -> Result<(), LbBenchError> {
    let tx = Action::Tx as u32;
    let reference = &programs.reference;
    let total = frames.len() as u64;
    let mut counts = vec![reference::hits_and_misses(&reference.program)?];
    let misses = reference.pass(frames, Some(tx))?;
    counts.push(reference::hits_and_misses(&reference.program)?);
    let hits = reference.pass(acks, Some(tx))?;
    counts.push(reference::hits_and_misses(&reference.program)?);
    let one_flow = vec![acks.first().cloned().unwrap_or_default(); acks.len()];
    let hot = reference.pass(&one_flow, Some(tx))?;
    counts.push(reference::hits_and_misses(&reference.program)?);
    let passes: Vec<(u64, u64)> = counts
        .windows(2)
        .map(|pair| (pair[1].0 - pair[0].0, pair[1].1 - pair[0].1))
        .collect();
    let expected = [(0, total), (total, 0), (total, 0)];
    if passes != expected {
        return Err(LbBenchError::Counters(format!(
            "round {round}, reference balancer: (hits, misses) of {total} new flows' SYNs, \
             their ACKs and one flow's ACK {total} times: {passes:?}, expected {expected:?}"
        )));
    }
    let samples = &mut runs.samples[0];
    samples[REF_MISS].push_pass(&misses);
    samples[REF_HIT].push_pass(&hits);
    samples[REF_HIT_ONE_FLOW].push_pass(&hot);
    let held = reference::clear(&mut programs.reference.program)?;
    if held as u64 != total {
        return Err(LbBenchError::Counters(format!(
            "round {round}, reference balancer: its table held {held} entries after {total} flows"
        )));
    }
    Ok(())
}

/// One round of one family: misses (SYNs), first ACKs, hits (the ACKs
/// again), hits on one flow, each pass checked against the counters, then
/// the baselines over the SYNs.
fn family_round(
    programs: &mut Programs,
    runs: &mut SingleRuns,
    slot: usize,
    family: Family,
    round: usize,
    flows: u32,
) -> Result<(), LbBenchError> {
    let (tx, pass) = (Action::Tx as u32, Action::Pass as u32);
    let (balancer, maps) = (&programs.balancer, &programs.maps);
    let total = u64::from(flows);
    let frames = flow_frames(family, round, flows, FLAG_SYN);
    let acks = flow_frames(family, round, flows, FLAG_ACK);
    let mut counts = vec![connection_counts(maps)?];
    let misses = balancer.pass(&frames, Some(tx))?;
    counts.push(connection_counts(maps)?);
    let first_acks = balancer.pass(&acks, Some(tx))?;
    counts.push(connection_counts(maps)?);
    let hits = balancer.pass(&acks, Some(tx))?;
    counts.push(connection_counts(maps)?);
    // The same number of hits on one flow: its bucket and entry stay in the
    // cache, which tells the table's cache misses from the rest of the hit
    // path.
    let one_flow = vec![acks.first().cloned().unwrap_or_default(); acks.len()];
    let hot = balancer.pass(&one_flow, Some(tx))?;
    counts.push(connection_counts(maps)?);
    let passes: Vec<(u64, u64)> = counts
        .windows(2)
        .map(|pair| (pair[1].0 - pair[0].0, pair[1].1 - pair[0].1))
        .collect();
    // A first ACK whose SYN's slot a later SYN took is a miss.
    let pushed_out = new_flow_collisions(&frames, new_flow_seed(maps)?);
    let expected = [
        (0, total),
        (total - pushed_out, pushed_out),
        (total, 0),
        (total, 0),
    ];
    if passes != expected {
        return Err(LbBenchError::Counters(format!(
            "round {round}, {}: (hits, misses) of {flows} new flows' SYNs, first ACKs, ACKs \
             again and one flow's ACK {flows} times: {passes:?}, expected {expected:?}",
            family.name(),
        )));
    }
    runs.counted_hits += 3 * total - pushed_out;
    runs.counted_misses += total + pushed_out;
    let samples = &mut runs.samples[slot];
    samples[MISS].push_pass(&misses);
    samples[FIRST_ACK].push_pass(&first_acks);
    samples[HIT].push_pass(&hits);
    samples[HIT_ONE_FLOW].push_pass(&hot);
    samples[PLAIN].push_pass(&programs.plain.pass(&frames, Some(pass))?);
    samples[EMPTY].push_pass(&programs.empty.pass(&frames, Some(pass))?);
    if let Some(peer) = &programs.peer {
        samples[PEER].push_pass(&peer.pass(&frames, None)?);
    }
    if family == Family::V4 {
        reference_round(programs, runs, round, &frames, &acks)?;
    }
    Ok(())
}

impl SingleRuns {
    /// The table rows, IPv4's then IPv6's; `cpus` is how many the
    /// multi-CPU rows used.
    pub(super) fn rows(&self, peer_ran: bool, cpus: usize) -> Vec<LbRow> {
        let mut rows = Vec::new();
        for (slot, family) in Family::BOTH.into_iter().enumerate() {
            let samples = &self.samples[slot];
            let baselines = (
                samples[EMPTY].figure(),
                peer_ran.then(|| samples[PEER].figure()),
            );
            let encap = family.encap();
            let names: [String; ROWS] = [
                format!("xdpath LB {encap}: conn-table miss"),
                format!("xdpath LB {encap}: first ACK (to established)"),
                format!("xdpath LB {encap}: conn-table hit"),
                format!("xdpath LB {encap}: hit, one flow"),
                "xdpath, no LB state".to_string(),
                "empty (XDP_PASS)".to_string(),
                "xdp-filter xdpfilt_alw_all".to_string(),
                format!("xdpath LB {encap}: miss, {cpus} CPUs at once"),
                format!("xdpath LB {encap}: hit, {cpus} CPUs at once"),
                format!("reference LB {encap}: conn-table miss"),
                format!("reference LB {encap}: conn-table hit"),
                format!("reference LB {encap}: hit, one flow"),
                format!("reference LB {encap}: miss, {cpus} CPUs at once"),
                format!("reference LB {encap}: hit, {cpus} CPUs at once"),
            ];
            for (samples, name) in samples.iter().zip(&names) {
                // Rows that did not run (no peer, one CPU, IPv6 on all CPUs).
                if samples.is_empty() {
                    continue;
                }
                rows.push(samples.row(name, family, baselines));
            }
        }
        rows
    }
}

impl SingleRuns {
    /// A multi-CPU pass: every thread's runs, into the row and into the
    /// row's per-CPU samples.
    fn push_concurrent(&mut self, row: usize, per_thread: &[Vec<u64>]) {
        self.samples[0][row].push_pass(&per_thread.concat());
        let per_cpu = &mut self.per_cpu[row];
        per_cpu.resize_with(per_thread.len(), Samples::default);
        for (samples, runs) in per_cpu.iter_mut().zip(per_thread) {
            samples.push_pass(runs);
        }
    }

    /// The multi-CPU rows with each CPU's figure and the aggregate
    /// packets/s.
    pub(super) fn multi_cpu_rows(&self, cpus: &[usize]) -> Vec<MultiCpuRow> {
        let rows = [
            (MISS_ALL_CPUS, "xdpath LB IPIP: miss"),
            (HIT_ALL_CPUS, "xdpath LB IPIP: hit"),
            (REF_MISS_ALL_CPUS, "reference LB IPIP: miss"),
            (REF_HIT_ALL_CPUS, "reference LB IPIP: hit"),
        ];
        rows.iter()
            .filter(|(row, _)| !self.per_cpu[*row].is_empty())
            .map(|&(row, program)| {
                let per_cpu_ns: Vec<f64> = self.per_cpu[row].iter().map(Samples::figure).collect();
                MultiCpuRow {
                    program: program.into(),
                    cpus: cpus.to_vec(),
                    aggregate_packets_per_second: per_cpu_ns
                        .iter()
                        .filter(|ns| **ns > 0.0)
                        .map(|ns| 1e9 / ns)
                        .sum(),
                    per_cpu_ns,
                }
            })
            .collect()
    }

    /// xdpath's figure over the reference's, per IPv4 row both ran.
    pub(super) fn reference_ratios(&self, cpus: usize) -> Vec<ReferenceRatio> {
        let samples = &self.samples[0];
        let empty = samples[EMPTY].figure();
        let names = [
            "conn-table miss".to_string(),
            "conn-table hit (20k flows)".to_string(),
            "hit, one flow".to_string(),
            format!("miss, {cpus} CPUs at once"),
            format!("hit, {cpus} CPUs at once"),
        ];
        REFERENCE_PAIRS
            .iter()
            .zip(names)
            .filter(|((ours, theirs), _)| {
                !samples[*ours].is_empty() && !samples[*theirs].is_empty()
            })
            .map(|(&(ours, theirs), row)| {
                let (xdpath_ns, reference_ns) = (samples[ours].figure(), samples[theirs].figure());
                ReferenceRatio {
                    row,
                    xdpath_ns,
                    reference_ns,
                    ratio: xdpath_ns / reference_ns,
                    net_ratio: (xdpath_ns - empty) / (reference_ns - empty),
                    xdpath_median_run_ns: samples[ours].last_column(),
                    reference_median_run_ns: samples[theirs].last_column(),
                }
            })
            .collect()
    }
}
