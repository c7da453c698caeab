//! CPU pinning, and the multi-CPU rows: one thread per CPU running the
//! balancer at once, for the connection table's locks.

use std::os::fd::{AsFd, BorrowedFd};

use xdpath_core::wire::tcp::FLAG_ACK;
use xdpath_core::Action;

use super::state::{flow_frames, Family};
use super::testrun::{run_frames, Subject};
use super::LbBenchError;

/// Keeps the calling thread on one CPU, and gives it back its CPU set
/// when dropped. Every run then meets the same per-CPU state (the per-CPU
/// LRU lists of the variant object among it), and a round's misses and
/// hits the same caches.
pub(crate) struct PinnedThread {
    previous: libc::cpu_set_t,
}

impl PinnedThread {
    /// Pins to the CPU the thread runs on.
    pub(crate) fn to_current_cpu() -> Result<Self, std::io::Error> {
        // SAFETY: no arguments; returns the CPU or -1.
        let cpu = unsafe { libc::sched_getcpu() };
        if cpu < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Self::to_cpu(cpu as usize)
    }

    /// Pins to `cpu`.
    pub(crate) fn to_cpu(cpu: usize) -> Result<Self, std::io::Error> {
        let previous = current_cpu_set()?;
        xdpath::userspace::pin_thread_to(cpu)?;
        Ok(Self { previous })
    }
}

impl Drop for PinnedThread {
    fn drop(&mut self) {
        // SAFETY: a pointer to the cpu_set_t read at creation. A failure
        // leaves the thread pinned, which only slows what follows.
        let _ = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &self.previous) };
    }
}

/// The calling thread's CPU set.
fn current_cpu_set() -> Result<libc::cpu_set_t, std::io::Error> {
    // SAFETY: cpu_set_t is plain data; all zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: a pointer to a cpu_set_t of the size given.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(set)
}

/// The CPUs this thread may run on, at most `limit` of them.
pub(crate) fn allowed_cpus(limit: usize) -> Result<Vec<usize>, std::io::Error> {
    let set = current_cpu_set()?;
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: every index is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .take(limit)
        .collect())
}

/// Each thread's runs' kernel-reported ns, in the order of its CPUs.
pub(super) type PerThread = Vec<Vec<u64>>;

/// The multi-CPU rows: misses, then hits, of `flows` new IPv4 flows per
/// CPU, one thread pinned to each CPU, all at once (the threads start each
/// pass together). Both passes send the flows' ACKs: the first finds no
/// entry and places one (for xdpath in its established table), the second
/// finds it there. (Not SYNs: the reference, as Katran, never looks a SYN
/// up, so a second SYN would be a miss again.)
/// `counts` reads the program's (hits, misses). Returns every run's ns,
/// per thread (in `cpus` order): (misses, hits).
pub(super) fn concurrent_round(
    balancer: &Subject,
    counts: &dyn Fn() -> Result<(u64, u64), LbBenchError>,
    cpus: &[usize],
    round: usize,
    flows: u32,
) -> Result<(PerThread, PerThread), LbBenchError> {
    // Sources 10.<64 + thread>.x.y: apart from each other's (the tables
    // are emptied between rounds).
    let frames: Vec<Vec<Vec<u8>>> = (0..cpus.len())
        .map(|thread| flow_frames(Family::V4, 64 + thread, flows, FLAG_ACK))
        .collect();
    let barrier = std::sync::Barrier::new(cpus.len() + 1);
    let start = counts()?;
    let program = balancer.entry.as_fd();
    let label = balancer.label.as_str();
    let (middle, results) = std::thread::scope(|scope| {
        let handles: Vec<_> = cpus
            .iter()
            .zip(&frames)
            .map(|(&cpu, frames)| {
                let barrier = &barrier;
                scope.spawn(move || pinned_passes(cpu, barrier, program, label, frames))
            })
            .collect();
        barrier.wait();
        barrier.wait();
        let middle = counts();
        barrier.wait();
        let results: Vec<_> = handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or(Err(LbBenchError::ThreadPanicked)))
            .collect();
        (middle, results)
    });
    let middle = middle?;
    let end = counts()?;
    let (mut misses, mut hits) = (Vec::new(), Vec::new());
    for result in results {
        let (thread_misses, thread_hits) = result?;
        misses.push(thread_misses);
        hits.push(thread_hits);
    }
    check_passes(round, cpus.len(), flows, [start, middle, end])?;
    Ok((misses, hits))
}

/// One thread of a concurrent round: pinned to `cpu`, runs its frames once
/// for the misses and once more for the hits, in step with the others
/// through `barrier`; returns both runs' ns.
fn pinned_passes(
    cpu: usize,
    barrier: &std::sync::Barrier,
    program: BorrowedFd<'_>,
    label: &str,
    frames: &[Vec<u8>],
) -> Result<(Vec<u64>, Vec<u64>), LbBenchError> {
    let tx = Action::Tx as u32;
    let pinned = PinnedThread::to_cpu(cpu);
    // Every thread passes every barrier, failed or not, so
    // none waits for ever.
    barrier.wait();
    let misses = match &pinned {
        Ok(_) => run_frames(program, label, frames, Some(tx)),
        Err(error) => Err(LbBenchError::Affinity(std::io::Error::new(
            error.kind(),
            format!("CPU {cpu}: {error}"),
        ))),
    };
    barrier.wait();
    barrier.wait();
    let hits = match &misses {
        Ok(_) => run_frames(program, label, frames, Some(tx)),
        Err(_) => Ok(Vec::new()),
    };
    drop(pinned);
    misses.and_then(|misses| hits.map(|hits| (misses, hits)))
}

/// Checks the connection counters (hits, misses) read before, between and
/// after a round's passes: `threads` × `flows` misses, then as many hits.
fn check_passes(
    round: usize,
    threads: usize,
    flows: u32,
    [start, middle, end]: [(u64, u64); 3],
) -> Result<(), LbBenchError> {
    let total = threads as u64 * u64::from(flows);
    let miss_pass = (middle.0 - start.0, middle.1 - start.1);
    let hit_pass = (end.0 - middle.0, end.1 - middle.1);
    if miss_pass != (0, total) || hit_pass != (total, 0) {
        return Err(LbBenchError::Counters(format!(
            "round {round}, {threads} CPUs at once: {total} new flows counted {} hits and {} misses; \
             sent again, {} hits and {} misses (a table with per-CPU LRU lists holds only its \
             size / CPUs entries per CPU: try a smaller --lb-flows)",
            miss_pass.0,
            miss_pass.1,
            hit_pass.0,
            hit_pass.1
        )));
    }
    Ok(())
}
