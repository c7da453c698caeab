//! What the runtime did: the report printed at its end, and the snapshot
//! of its counters it keeps in the state directory for `xdpath stats`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use xdpath_core::{Counter, NativeTables};

use super::Exception;
use crate::stats::CounterRow;

/// The runtime's own tallies, beside the pipeline's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tallies {
    /// Frames taken from the sockets.
    pub received: u64,
    /// Frames put on a TX ring (tx verdicts, redirects to this interface).
    pub transmitted: u64,
    /// Frames sent out of other interfaces (redirect verdicts).
    pub redirected: u64,
    /// Passed frames written to the TAP device.
    pub to_stack: u64,
    /// Frames the stack sent out of the TAP device, sent on.
    pub from_stack: u64,
    /// Frames that could not go where their verdict sent them (a full TX
    /// ring, a failed send, or no exception path).
    pub lost: u64,
    /// State changes installed after the start.
    pub reloads: u64,
    /// State changes refused (the last good state stayed).
    pub refused_reloads: u64,
}

impl Tallies {
    /// Adds another serving thread's tallies.
    pub fn add(&mut self, other: &Self) {
        self.received += other.received;
        self.transmitted += other.transmitted;
        self.redirected += other.redirected;
        self.to_stack += other.to_stack;
        self.from_stack += other.from_stack;
        self.lost += other.lost;
        self.reloads += other.reloads;
        self.refused_reloads += other.refused_reloads;
    }
}

/// What one serving thread has counted (its own tables' counters and rule
/// hits, its tallies), or the sum of every thread's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Counts {
    /// Every (verdict, reason) slot as `[packets, bytes]`.
    pub(super) counters: Vec<[u64; 2]>,
    /// Hits per rule id.
    pub(super) rule_hits: BTreeMap<u32, u64>,
    /// Drops per rate-limit index (those with any).
    pub(super) limit_drops: BTreeMap<u32, u64>,
    /// Drops per address limit, by limit id (those with any). The address
    /// table is one for every serving thread: each reports the same.
    pub(super) address_drops: BTreeMap<u32, u64>,
    /// The runtime's tallies.
    pub(super) tallies: Tallies,
}

impl Counts {
    /// The counts of one thread's tables and tallies.
    pub(super) fn of(tables: &NativeTables, tallies: Tallies) -> Self {
        Self {
            counters: tables
                .counters()
                .iter()
                .map(|counter| [counter.packets, counter.bytes])
                .collect(),
            rule_hits: tables.rule_hits.iter().collect(),
            limit_drops: (0u32..)
                .zip(tables.limit_drops.iter().copied())
                .filter(|(_, drops)| *drops != 0)
                .collect(),
            address_drops: tables.address_limit_drops().into_iter().collect(),
            tallies,
        }
    }

    /// The sum of `all`.
    pub(super) fn sum<'a>(all: impl IntoIterator<Item = &'a Self>) -> Self {
        let mut total = Self::default();
        for counts in all {
            if total.counters.len() < counts.counters.len() {
                total.counters.resize(counts.counters.len(), [0, 0]);
            }
            for (sum, slot) in total.counters.iter_mut().zip(&counts.counters) {
                sum[0] += slot[0];
                sum[1] += slot[1];
            }
            for (&id, &hits) in &counts.rule_hits {
                *total.rule_hits.entry(id).or_default() += hits;
            }
            for (&index, &drops) in &counts.limit_drops {
                *total.limit_drops.entry(index).or_default() += drops;
            }
            // Shared by the threads: the same count from each, not a sum.
            for (&id, &drops) in &counts.address_drops {
                let total = total.address_drops.entry(id).or_default();
                *total = (*total).max(drops);
            }
            total.tallies.add(&counts.tallies);
        }
        total
    }

    /// The counters in the kernel's form.
    pub(super) fn counters(&self) -> Vec<Counter> {
        self.counters
            .iter()
            .map(|&[packets, bytes]| Counter { packets, bytes })
            .collect()
    }
}

/// One serving thread of `--threads`: its queue, and what it did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ThreadReport {
    /// The queue its socket is on.
    pub queue: u32,
    /// The CPU it was pinned to, if the pinning took.
    pub cpu: Option<usize>,
    /// Frames it took from its socket.
    pub frames: u64,
    /// Time in passes that moved frames, in seconds.
    pub busy_seconds: f64,
}

/// The counters as they are now, kept on disk while the runtime runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The interface.
    pub interface: String,
    /// The runtime's process.
    pub pid: u32,
    /// Whether it has ended.
    pub finished: bool,
    /// Every (verdict, reason) slot as `[packets, bytes]`, indexed like the
    /// kernel's counter map.
    pub counters: Vec<[u64; 2]>,
    /// Hits per rule id.
    pub rule_hits: Vec<(u32, u64)>,
    /// Drops per rate-limit index (those with any); none in a snapshot
    /// of an older build.
    #[serde(default)]
    pub limit_drops: Vec<(u32, u64)>,
    /// Drops per address limit, by limit id (those with any); none in a
    /// snapshot of an older build.
    #[serde(default)]
    pub address_drops: Vec<(u32, u64)>,
    /// The runtime's tallies.
    pub tallies: Tallies,
}

impl Snapshot {
    /// The counters in the kernel's form.
    pub fn counters(&self) -> Vec<Counter> {
        self.counters
            .iter()
            .map(|&[packets, bytes]| Counter { packets, bytes })
            .collect()
    }
}

/// Where the runtime on `interface` keeps its snapshot, in state
/// directory `dir`.
pub fn snapshot_path(dir: &Path, interface: &str) -> PathBuf {
    dir.join(format!("userspace-{interface}.json"))
}

/// The snapshot of the runtime on `interface` in this namespace, if one
/// ran here.
pub fn read_snapshot(interface: &str) -> Option<Snapshot> {
    if !crate::dataplane::valid_interface_name(interface) {
        return None;
    }
    let dir = crate::control::state::state_dir().ok()?;
    let text = std::fs::read(snapshot_path(&dir, interface)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// What the user-space runtimes running in this namespace have counted
/// for the namespace's filter: hits per rule id and drops per rate-limit
/// index, summed over their snapshots. The listings and metrics add these
/// to the kernel maps' (hostile obs F4: under `run --userspace` a rule's
/// hits were reported nowhere). A finished runtime's counts go with it,
/// as a program's would with its detach when its rules are replaced.
pub fn running_filter_counts() -> RunningCounts {
    let mut counts = RunningCounts::default();
    for snapshot in running_snapshots() {
        for (id, hits) in snapshot.rule_hits {
            *counts.rule_hits.entry(id).or_default() += hits;
        }
        for (index, drops) in snapshot.limit_drops {
            *counts.limit_drops.entry(index).or_default() += drops;
        }
        for (id, drops) in snapshot.address_drops {
            *counts.address_drops.entry(id).or_default() += drops;
        }
    }
    counts
}

/// The snapshots of the user-space runtimes running in this namespace
/// (by interface name): what they count, for the views that list the
/// kernel-attached interfaces beside them.
pub fn running_snapshots() -> Vec<Snapshot> {
    let Ok(dir) = crate::control::state::state_dir() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut snapshots: Vec<Snapshot> = entries
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with("userspace-") && name.ends_with(".json")
        })
        .filter_map(|entry| std::fs::read(entry.path()).ok())
        .filter_map(|text| serde_json::from_slice::<Snapshot>(&text).ok())
        .filter(|snapshot| !snapshot.finished && runtime_alive(snapshot.pid))
        .collect();
    snapshots.sort_by(|a, b| a.interface.cmp(&b.interface));
    snapshots
}

/// Rule hits and limit drops of the running user-space runtimes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunningCounts {
    /// Hits per rule id.
    pub rule_hits: BTreeMap<u32, u64>,
    /// Drops per rate-limit index.
    pub limit_drops: BTreeMap<u32, u64>,
    /// Drops per address limit, by limit id.
    pub address_drops: BTreeMap<u32, u64>,
}

/// Whether `pid` is a user-space runtime still running: an xdpath
/// process run with `--userspace` (a runtime killed without writing
/// `finished` leaves its snapshot, and its pid may be reused; by the
/// daemon or another xdpath command too).
fn runtime_alive(pid: u32) -> bool {
    let Ok(command_line) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut words = command_line.split(|byte| *byte == 0);
    let program = words.next().unwrap_or_default();
    let is_xdpath = program.rsplit(|byte| *byte == b'/').next() == Some(b"xdpath".as_slice());
    is_xdpath && words.any(|word| word == b"--userspace")
}

/// What a run of the runtime did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RuntimeReport {
    /// The interface.
    pub interface: String,
    /// The queues it had sockets on.
    pub queues: u32,
    /// How the redirect program was attached (`native` or `generic`).
    pub xdp_mode: &'static str,
    /// The exception path.
    pub exception: Exception,
    /// Its TAP device, if any.
    pub tap: Option<String>,
    /// How long it ran.
    pub elapsed_seconds: f64,
    /// CPU time the process used (user and system), in seconds. The loop
    /// spins while frames keep coming, so this is more than the work.
    pub cpu_seconds: f64,
    /// Time spent in passes that moved frames, in seconds: the runtime's
    /// work without its waiting or spinning. With `tallies.received`, the
    /// time per frame. With `--threads`, the sum over the threads.
    pub busy_seconds: f64,
    /// Frames the kernel dropped before the sockets (no free buffer in the
    /// fill ring, a full RX ring), summed over the sockets.
    pub socket_drops: u64,
    /// The non-zero (verdict, reason) counters.
    pub counters: Vec<CounterRow>,
    /// The runtime's tallies.
    pub tallies: Tallies,
    /// With `--threads`, each serving thread (the counters and tallies
    /// above are their sums); empty without.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub threads: Vec<ThreadReport>,
}

/// CPU time this process has used, user and system, in seconds.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The report for people.
impl std::fmt::Display for RuntimeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "user-space runtime on {} ({} queue(s), XDP {} mode, exception path {}) ran {:.1} s",
            self.interface,
            self.queues,
            self.xdp_mode,
            self.tap
                .as_deref()
                .unwrap_or("none (passed frames dropped)"),
            self.elapsed_seconds
        )?;
        writeln!(
            f,
            "  cpu {:.2} s (busy {:.2} s), {} frames dropped by the kernel before the sockets",
            self.cpu_seconds, self.busy_seconds, self.socket_drops
        )?;
        let t = &self.tallies;
        writeln!(
            f,
            "  received {}  tx {}  redirected {}  to stack {}  from stack {}  lost {}  reloads {} (refused {})",
            t.received, t.transmitted, t.redirected, t.to_stack, t.from_stack, t.lost, t.reloads,
            t.refused_reloads)?;
        for (index, thread) in self.threads.iter().enumerate() {
            let per_frame = if thread.frames == 0 {
                String::new()
            } else {
                format!(
                    " ({:.0} ns/frame)",
                    thread.busy_seconds * 1e9 / thread.frames as f64
                )
            };
            let cpu = thread
                .cpu
                .map_or_else(|| "not pinned".to_string(), |cpu| format!("cpu {cpu}"));
            writeln!(
                f,
                "  thread {index}: queue {} ({cpu}), {} frames, busy {:.2} s{per_frame}",
                thread.queue, thread.frames, thread.busy_seconds
            )?;
        }
        write!(f, "{}", crate::stats::CounterTable(&self.counters))
    }
}
