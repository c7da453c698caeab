//! The single-run passes: the repeat check, then per round and family the
//! misses (the flows' SYNs), the first ACKs (each copies its flow from the
//! new-flow table to the established one), the hits (the ACKs again) and
//! the baselines over the same frames, each pass checked against
//! `CONN_STATS`; the multi-CPU passes after each round.

use std::os::fd::AsFd;
use xdpath_core::abi;

use xdpath_core::Action;

use super::multi_cpu::concurrent_round;
use super::programs::{clear_connections, clear_table, connection_counts, Programs};
use super::report::{LbRow, RepeatCheck, Samples};
use super::state::{flow_frames, Family};
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
const ROWS: usize = 9;

/// Why the hit path cannot be timed with `repeat > 1`: a multi-repeat run
/// of one VIP frame, on a fresh flow of its own, makes one lookup. Leaves
/// the connection table empty.
pub(super) fn repeat_check(programs: &mut Programs) -> Result<RepeatCheck, LbBenchError> {
    let balancer = &mut programs.balancer;
    clear_connections(&mut balancer.program)?;
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
    clear_connections(&mut balancer.program)?;
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
    /// Connection-table hits counted by the kernel.
    pub(super) counted_hits: u64,
    /// Connection-table misses counted by the kernel.
    pub(super) counted_misses: u64,
}

/// Runs `rounds` rounds of `flows` flows per family (and per CPU of
/// `cpus`, when there are several).
pub(super) fn measure(
    programs: &mut Programs,
    cpus: &[usize],
    flows: u32,
    rounds: usize,
) -> Result<SingleRuns, LbBenchError> {
    let mut runs = SingleRuns {
        samples: Default::default(),
        counted_hits: 0,
        counted_misses: 0,
    };
    let total = u64::from(flows);
    for round in 0..rounds {
        for (slot, family) in Family::BOTH.into_iter().enumerate() {
            family_round(programs, &mut runs, slot, family, round, flows)?;
            // Every flow is established now: the new-flow table (half the
            // size) need not hold both families' at once.
            let opened = clear_table(&mut programs.balancer.program, abi::map::NEW_CONNECTIONS)?;
            if opened as u64 != total {
                return Err(LbBenchError::Counters(format!(
                    "round {round}, {}: the new-flow table held {opened} entries after \
                     {flows} SYNs",
                    family.name()
                )));
            }
        }
        let (held, _) = clear_connections(&mut programs.balancer.program)?;
        if held as u64 != 2 * total {
            return Err(LbBenchError::Counters(format!(
                "round {round}: the established table held {held} entries after {} flows",
                2 * total
            )));
        }
        if cpus.len() > 1 {
            let (misses, hits) =
                concurrent_round(&programs.balancer, &programs.maps, cpus, round, flows)?;
            runs.counted_hits += hits.len() as u64;
            runs.counted_misses += misses.len() as u64;
            runs.samples[0][MISS_ALL_CPUS].push_pass(&misses);
            runs.samples[0][HIT_ALL_CPUS].push_pass(&hits);
            clear_connections(&mut programs.balancer.program)?;
        }
    }
    Ok(runs)
}

/// One round of one family: misses (SYNs), first ACKs, hits (the ACKs
/// again), hits on one flow, each pass checked against the counters, then
/// the baselines over the SYNs.
fn family_round(
    programs: &Programs,
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
    let expected = [(0, total), (total, 0), (total, 0), (total, 0)];
    if passes != expected {
        return Err(LbBenchError::Counters(format!(
            "round {round}, {}: (hits, misses) of {flows} new flows' SYNs, first ACKs, ACKs \
             again and one flow's ACK {flows} times: {passes:?}, expected {expected:?}",
            family.name(),
        )));
    }
    runs.counted_hits += 3 * total;
    runs.counted_misses += total;
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
