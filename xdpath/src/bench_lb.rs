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
//! A miss is a frame of a flow the table has never seen; a hit is the same
//! frames sent again right after; a one-flow hit is the first flow's frame
//! sent as many times (its table entry stays cached). The `CONN_STATS`
//! counters must show exactly one miss per frame of the first pass and one
//! hit per frame of the others, or the benchmark fails. The multi-CPU rows
//! do the same from one thread per CPU at once, for the connection table's
//! locks.

use std::hint::black_box;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use aya::maps::{Map, MapData};
use aya::programs::Xdp;
use xdpath_core::build::{doc_v6, FrameSpec, Network, Transport};
use xdpath_core::lb::{
    mac_value, Backend, Connection, ConnectionKey, LbConfig, Vip, VipKey, CONN_HITS, CONN_MISSES,
    ENCAP_GUE, ENCAP_IPIP, LB_ENABLED, LB_FIXED_NEXT_HOP,
};
use xdpath_core::parse::ipv4_mapped;
use xdpath_core::wire::tcp::FLAG_SYN;
use xdpath_core::{Action, InterfaceConfig};

use crate::control::kernel::KernelMaps;
use crate::dataplane::{DataplaneError, LoadedProgram};
use crate::lb::install::CompiledLb;
use crate::lb::maglev::{build_table, MaglevBackend, MaglevError, MAX_WEIGHT};

/// The IPv4 VIP: 203.0.113.10:80/tcp, IPIP.
pub const VIP4: [u8; 4] = [203, 0, 113, 10];
/// The IPv6 VIP's last 16 bits: [2001:db8::10]:443/tcp, GUE.
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
/// the connection table together (`MAX_CONNECTIONS` = 2¹⁷), and in the
/// variant with per-CPU LRU lists one CPU's share of it (half on two
/// CPUs), so that no insert evicts.
pub const MAX_FLOWS: u32 = 32_768;
/// The most rounds (the round number is part of the flows' source
/// addresses).
pub const MAX_ROUNDS: usize = 32;
/// The most CPUs the multi-CPU rows use at once.
pub const MAX_THREADS: usize = 4;
/// Repeats of the repeat check (one VIP frame, one test run).
const REPEAT_CHECK: u32 = 1_000;
/// The peer's entry point in `xdpfilt_alw_all.o`.
const PEER_PROGRAM: &str = "xdpfilt_alw_all";

/// Options of the load-balancer section.
#[derive(Clone, Debug)]
pub struct LbBenchOptions {
    /// Distinct flows per family and round (each a miss, then a hit).
    pub flows: u32,
    /// Rounds; the median of the per-round means is kept.
    pub rounds: usize,
    /// Repeats of the repeated (non-VIP frame) rows.
    pub repeat: u32,
    /// Trials of the repeated rows; the median is kept.
    pub trials: usize,
    /// The xdpath object to measure instead of the embedded one.
    pub object: Option<PathBuf>,
    /// The xdp-filter peer object.
    pub peer: PathBuf,
}

/// Errors of the load-balancer benchmark.
#[derive(Debug, thiserror::Error)]
pub enum LbBenchError {
    /// Loading a program failed.
    #[error("{program}: {source}")]
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

/// The IPv6 VIP's address.
fn vip6() -> [u8; 16] {
    doc_v6(VIP6_LAST)
}

/// The benchmark's balancer state: the IPv4 VIP on ring 0 with three IPv4
/// backends (10.0.0.1-3, outer IPv4), the IPv6 VIP on ring 1 with three
/// IPv6 backends (2001:db8::31-33, GUE over IPv6), fixed next hop.
pub fn bench_state() -> Result<CompiledLb, LbBenchError> {
    let v4: Vec<[u8; 16]> = (1..=3).map(|last| ipv4_mapped([10, 0, 0, last])).collect();
    let v6: Vec<[u8; 16]> = (0x31..=0x33).map(doc_v6).collect();
    let pool = |addresses: &[[u8; 16]]| -> Vec<MaglevBackend> {
        addresses
            .iter()
            .map(|address| MaglevBackend {
                address: *address,
                weight: 1,
            })
            .collect()
    };
    let ring4 = build_table(&pool(&v4), RING_SIZE, 7)?;
    // The table holds indices into its pool; the IPv6 backends sit at 3-5.
    let ring6: Vec<u32> = build_table(&pool(&v6), RING_SIZE, 7)?
        .into_iter()
        .map(|index| index + 3)
        .collect();
    let vip = |address: [u8; 16], port: u16| VipKey {
        address,
        port,
        protocol: 6,
        reserved: [0; 5],
    };
    let mut config = LbConfig {
        flags: LB_ENABLED | LB_FIXED_NEXT_HOP,
        source_v4_len: 96 + 16,
        source_v6_len: 64,
        next_hop_mac: mac_value(NEXT_HOP),
        ..LbConfig::default()
    };
    config.source_v4 = ipv4_mapped([172, 16, 0, 0]);
    config.source_v6 = doc_v6(0xff00);
    let backends = v4
        .iter()
        .map(|address| (*address, 4))
        .chain(v6.iter().map(|address| (*address, 6)))
        .zip(0u32..)
        .map(|((address, family), index)| {
            (
                index,
                Backend {
                    address,
                    generation: 1,
                    family,
                    reserved: [0; 3],
                },
            )
        })
        .collect();
    Ok(CompiledLb {
        config,
        vips: vec![
            (
                vip(ipv4_mapped(VIP4), 80),
                Vip {
                    index: 0,
                    ring: 0,
                    ring_size: RING_SIZE,
                    gue_port: 0,
                    flags: 0,
                    encap: ENCAP_IPIP,
                },
            ),
            (
                vip(vip6(), 443),
                Vip {
                    index: 1,
                    ring: 1,
                    ring_size: RING_SIZE,
                    gue_port: GUE_PORT,
                    flags: 0,
                    encap: ENCAP_GUE,
                },
            ),
        ],
        rings: vec![(0, ring4), (1, ring6)],
        backends,
    })
}

/// Address family of a set of frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// `flows` TCP SYNs to the family's VIP, each of its own flow: source
/// address and port vary with the index, the source address also with the
/// round, so no round meets a flow an earlier one placed.
fn flow_frames(family: Family, round: usize, flows: u32) -> Vec<Vec<u8>> {
    (0..flows)
        .map(|index| {
            let [_, _, high, low] = index.to_be_bytes();
            let round = (round % 256) as u8;
            let source_port = 1024 + (index % 60_000) as u16;
            let network = match family {
                Family::V4 => Network::V4([10, round, high, low], VIP4),
                Family::V6 => {
                    let mut source = doc_v6(0);
                    source[4..6].copy_from_slice(&[0, 1]);
                    source[13..16].copy_from_slice(&[round, high, low]);
                    Network::V6(source, vip6())
                }
            };
            let destination_port = match family {
                Family::V4 => 80,
                Family::V6 => 443,
            };
            FrameSpec::new(
                network,
                Transport::Tcp {
                    source_port,
                    destination_port,
                    flags: FLAG_SYN,
                },
            )
            .build()
        })
        .collect()
}

/// A TCP SYN to an address that is no VIP: the balancer looks for a VIP,
/// finds none and passes the frame unchanged (so `repeat` is valid).
fn non_vip_frame() -> Vec<u8> {
    FrameSpec::new(
        Network::V4([192, 0, 2, 1], [198, 51, 100, 2]),
        Transport::Tcp {
            source_port: 40000,
            destination_port: 80,
            flags: FLAG_SYN,
        },
    )
    .build()
}

/// `BPF_PROG_TEST_RUN` (also named `BPF_PROG_RUN`).
const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// The `bpf_attr` of `BPF_PROG_TEST_RUN`, up to `batch_size` (padded to
/// 8). The benchmark calls the command itself: aya's `TestRun` needs the
/// program mutably, and the multi-CPU rows run one program from several
/// threads at once.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: u32,
}

/// Runs `frame` through the program `repeat` times (the frame not reset
/// between repeats): (the last run's action, the kernel-reported ns per
/// run, whole ns).
fn test_run(program: BorrowedFd<'_>, frame: &[u8], repeat: u32) -> std::io::Result<(u32, u32)> {
    let mut attr = TestRunAttr {
        prog_fd: program.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat,
        ..TestRunAttr::default()
    };
    // SAFETY: `attr` is a bpf_attr prefix for BPF_PROG_TEST_RUN with its
    // unused fields zero; `data_in` points at `data_size_in` live bytes and
    // there is no output buffer. The kernel writes `retval` and `duration`
    // back into `attr`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            size_of::<TestRunAttr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((attr.retval, attr.duration))
}

/// Runs each frame once; returns each run's kernel-reported ns. With
/// `expected`, every run must end in that action.
fn run_frames(
    program: BorrowedFd<'_>,
    label: &str,
    frames: &[Vec<u8>],
    expected: Option<u32>,
) -> Result<Vec<u64>, LbBenchError> {
    let mut durations = Vec::with_capacity(frames.len());
    for (index, frame) in frames.iter().enumerate() {
        let (action, ns) = test_run(program, frame, 1).map_err(|source| LbBenchError::TestRun {
            program: label.into(),
            source,
        })?;
        match expected {
            Some(expected) if action != expected => {
                return Err(LbBenchError::Verdict {
                    program: label.into(),
                    frame: index,
                    action,
                    expected,
                });
            }
            _ => durations.push(u64::from(ns)),
        }
    }
    Ok(durations)
}

/// A loaded program and a descriptor of its entry point.
struct Subject {
    label: String,
    program: LoadedProgram,
    entry: OwnedFd,
}

impl Subject {
    fn new(label: &str, mut program: LoadedProgram, entry: &str) -> Result<Self, LbBenchError> {
        let error = |message: String| LbBenchError::Program {
            program: label.into(),
            source: Box::new(DataplaneError::Load(message.into())),
        };
        let xdp = program
            .ebpf_mut()
            .program_mut(entry)
            .and_then(|program| <&mut Xdp>::try_from(program).ok())
            .ok_or_else(|| error(format!("no XDP program {entry} in the object")))?;
        let fd = xdp.fd().map_err(|source| error(source.to_string()))?;
        let entry = fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| error(source.to_string()))?;
        Ok(Self {
            label: label.into(),
            program,
            entry,
        })
    }

    /// Each frame once: the kernel-reported ns of each run.
    fn pass(&self, frames: &[Vec<u8>], expected: Option<u32>) -> Result<Vec<u64>, LbBenchError> {
        run_frames(self.entry.as_fd(), &self.label, frames, expected)
    }

    /// One `repeat` run of `frame` after a short warm-up: (kernel-reported
    /// ns per run, wall-clock ns per run).
    fn repeated(&self, frame: &[u8], repeat: u32) -> Result<(f64, f64), LbBenchError> {
        let error = |source| LbBenchError::TestRun {
            program: self.label.clone(),
            source,
        };
        black_box(test_run(self.entry.as_fd(), frame, repeat.min(10_000)).map_err(error)?);
        let started = Instant::now();
        let (_, kernel) = test_run(self.entry.as_fd(), frame, repeat).map_err(error)?;
        let wall = started.elapsed().as_nanos() as f64 / f64::from(repeat);
        Ok((f64::from(kernel), wall))
    }
}

/// Loads the xdpath object measured (the embedded one, or `object`).
fn load_xdpath(object: Option<&Path>, label: &str) -> Result<Subject, LbBenchError> {
    let program = match object {
        Some(path) => LoadedProgram::load_file(path, crate::objects::XDPATH_PROGRAM),
        None => LoadedProgram::load(InterfaceConfig::default()),
    }
    .map_err(|source| LbBenchError::Program {
        program: label.into(),
        source: Box::new(source),
    })?;
    Subject::new(label, program, crate::objects::XDPATH_PROGRAM)
}

/// Kernel-counted connection-table (hits, misses), summed over CPUs.
fn connection_counts(maps: &KernelMaps) -> Result<(u64, u64), LbBenchError> {
    let read = |slot| {
        maps.per_cpu_sum("CONN_STATS", slot)
            .map_err(|error| LbBenchError::Maps(format!("read CONN_STATS: {error}")))
    };
    Ok((read(CONN_HITS)?, read(CONN_MISSES)?))
}

/// The connection table's key and value as the map stores them.
type ConnectionTable<'a> = aya::maps::HashMap<
    &'a mut MapData,
    [u8; size_of::<ConnectionKey>()],
    [u8; size_of::<Connection>()],
>;

/// Empties the connection table, so every round starts from an empty
/// table (as many free entries for both LRU variants); returns how many
/// entries it held.
fn clear_connections(program: &mut LoadedProgram) -> Result<usize, LbBenchError> {
    let map_error =
        |error: aya::maps::MapError| LbBenchError::Maps(format!("CONNECTIONS: {error}"));
    let map = program
        .ebpf_mut()
        .map_mut("CONNECTIONS")
        .ok_or_else(|| LbBenchError::Maps("no map CONNECTIONS in the object".into()))?;
    let mut table = ConnectionTable::try_from(map).map_err(map_error)?;
    // Listed first, then deleted: deleting while walking would restart the
    // walk.
    let keys = table
        .keys()
        .collect::<Result<Vec<_>, _>>()
        .map_err(map_error)?;
    for key in &keys {
        table.remove(key).map_err(map_error)?;
    }
    Ok(keys.len())
}

/// The measured object's connection table in words (from the kernel's
/// own description of the map, so a variant object is labelled by what it
/// is, not by what it was meant to be).
fn describe_connection_table(program: &mut LoadedProgram) -> String {
    const BPF_F_NO_COMMON_LRU: u32 = 2;
    let (kind, data) = match program.ebpf_mut().map("CONNECTIONS") {
        Some(Map::LruHashMap(data)) => ("LRU hash", data),
        Some(Map::PerCpuLruHashMap(data)) => ("per-CPU LRU hash (a value per CPU)", data),
        Some(Map::HashMap(data)) => ("hash", data),
        Some(_) => return "CONNECTIONS: an unexpected map type".into(),
        None => return "no CONNECTIONS map".into(),
    };
    match data.info() {
        Ok(info) => {
            let flags = info.map_flags();
            let lists = if flags & BPF_F_NO_COMMON_LRU != 0 {
                "per-CPU LRU lists (BPF_F_NO_COMMON_LRU)"
            } else {
                "one LRU list shared by all CPUs"
            };
            format!(
                "CONNECTIONS: {kind}, {} entries, flags {flags:#x}: {lists}",
                info.max_entries()
            )
        }
        Err(error) => format!("CONNECTIONS: {kind} (map info: {error})"),
    }
}

/// Keeps the calling thread on one CPU, and gives it back its CPU set
/// when dropped. Every run then meets the same per-CPU state (the per-CPU
/// LRU lists of the variant object among it), and a round's misses and
/// hits the same caches.
struct PinnedThread {
    previous: libc::cpu_set_t,
}

impl PinnedThread {
    /// Pins to the CPU the thread runs on.
    fn to_current_cpu() -> Result<Self, std::io::Error> {
        // SAFETY: no arguments; returns the CPU or -1.
        let cpu = unsafe { libc::sched_getcpu() };
        if cpu < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Self::to_cpu(cpu as usize)
    }

    /// Pins to `cpu`.
    fn to_cpu(cpu: usize) -> Result<Self, std::io::Error> {
        let previous = current_cpu_set()?;
        // SAFETY: cpu_set_t is plain data; all zero is the empty set.
        let mut only: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: `cpu` is below CPU_SETSIZE (checked above).
        unsafe { libc::CPU_SET(cpu, &mut only) };
        // SAFETY: a pointer to a cpu_set_t of the size given.
        if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &only) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
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
fn allowed_cpus(limit: usize) -> Result<Vec<usize>, std::io::Error> {
    let set = current_cpu_set()?;
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: every index is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .take(limit)
        .collect())
}

/// The multi-CPU rows: misses, then hits, of `flows` new IPv4 flows per
/// CPU, one thread pinned to each CPU, all at once (the threads start each
/// pass together). Returns every run's ns: (misses, hits).
fn concurrent_round(
    balancer: &Subject,
    maps: &KernelMaps,
    cpus: &[usize],
    round: usize,
    flows: u32,
) -> Result<(Vec<u64>, Vec<u64>), LbBenchError> {
    let tx = Action::Tx as u32;
    // Sources 10.<64 + ...>.x.y: apart from the single-CPU rounds' and from
    // each other's.
    let frames: Vec<Vec<Vec<u8>>> = (0..cpus.len())
        .map(|thread| flow_frames(Family::V4, 64 + round * MAX_THREADS + thread, flows))
        .collect();
    let barrier = std::sync::Barrier::new(cpus.len() + 1);
    let start = connection_counts(maps)?;
    let program = balancer.entry.as_fd();
    let label = balancer.label.as_str();
    let (middle, results) = std::thread::scope(|scope| {
        let handles: Vec<_> = cpus
            .iter()
            .zip(&frames)
            .map(|(&cpu, frames)| {
                let barrier = &barrier;
                scope.spawn(move || {
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
                })
            })
            .collect();
        barrier.wait();
        barrier.wait();
        let middle = connection_counts(maps);
        barrier.wait();
        let results: Vec<_> = handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or(Err(LbBenchError::ThreadPanicked)))
            .collect();
        (middle, results)
    });
    let middle = middle?;
    let end = connection_counts(maps)?;
    let (mut misses, mut hits) = (Vec::new(), Vec::new());
    for result in results {
        let (thread_misses, thread_hits) = result?;
        misses.extend(thread_misses);
        hits.extend(thread_hits);
    }
    let total = cpus.len() as u64 * u64::from(flows);
    let miss_pass = (middle.0 - start.0, middle.1 - start.1);
    let hit_pass = (end.0 - middle.0, end.1 - middle.1);
    if miss_pass != (0, total) || hit_pass != (total, 0) {
        return Err(LbBenchError::Counters(format!(
            "round {round}, {} CPUs at once: {total} new flows counted {} hits and {} misses; \
             sent again, {} hits and {} misses (a table with per-CPU LRU lists holds only its \
             size / CPUs entries per CPU: try a smaller --lb-flows)",
            cpus.len(),
            miss_pass.0,
            miss_pass.1,
            hit_pass.0,
            hit_pass.1
        )));
    }
    Ok((misses, hits))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[middle],
        _ => (values[middle - 1] + values[middle]) / 2.0,
    }
}

fn mean(values: &[u64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<u64>() as f64 / values.len() as f64
    }
}

/// Per-pass figures of one row: (mean, median run) per round.
#[derive(Default)]
struct Samples(Vec<(f64, f64)>);

impl Samples {
    fn push(&mut self, runs: &[u64]) {
        let mut sorted: Vec<f64> = runs.iter().map(|&ns| ns as f64).collect();
        self.0.push((mean(runs), median(&mut sorted)));
    }

    fn means(&self) -> Vec<f64> {
        self.0.iter().map(|sample| sample.0).collect()
    }

    fn figure(&self) -> f64 {
        median(&mut self.means())
    }

    fn median_run(&self) -> f64 {
        median(&mut self.0.iter().map(|sample| sample.1).collect::<Vec<_>>())
    }
}

/// A table row; `baselines` are the same family's and method's (empty
/// ns, xdp-filter ns if it ran).
fn row(
    program: &str,
    family: Family,
    ns: f64,
    per_round: Vec<f64>,
    median_run: f64,
    baselines: (f64, Option<f64>),
) -> LbRow {
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
        per_round_ns: per_round,
        median_run_ns: median_run,
    }
}

/// Times `build_table` for `backends` backends with the given weights.
fn maglev_row(weights: &[u32], description: &str) -> Result<MaglevRow, LbBenchError> {
    let backends: Vec<MaglevBackend> = weights
        .iter()
        .zip(0u32..)
        .map(|(&weight, index)| {
            let [_, _, high, low] = index.to_be_bytes();
            MaglevBackend {
                address: ipv4_mapped([10, 1, high, low]),
                weight,
            }
        })
        .collect();
    let mut times = Vec::with_capacity(MAGLEV_BUILDS);
    for _ in 0..MAGLEV_BUILDS {
        let started = Instant::now();
        let table = build_table(black_box(&backends), RING_SIZE, 7)?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        black_box(table);
    }
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let max = times.iter().copied().fold(0.0, f64::max);
    Ok(MaglevRow {
        backends: backends.len(),
        weights: description.into(),
        size: RING_SIZE,
        builds: MAGLEV_BUILDS,
        median_ms: median(&mut times),
        min_ms: min,
        max_ms: max,
    })
}

/// The Maglev rows: 100 and 1,000 backends, equal and varied weights, and
/// the builder's slow case (one heavy backend among light ones: many
/// rounds in which almost no backend has credit for a slot).
pub fn maglev_rows() -> Result<Vec<MaglevRow>, LbBenchError> {
    let varied = |count: u32| -> Vec<u32> { (0..count).map(|i| 1 + (i * 37) % 100).collect() };
    // The largest weight ratio allowed (MAX_WEIGHT to 1): the most rounds.
    let skewed: Vec<u32> = (0..1000)
        .map(|i| if i == 0 { MAX_WEIGHT } else { 1 })
        .collect();
    Ok(vec![
        maglev_row(&vec![1; 100], "all 1")?,
        maglev_row(&varied(100), "1-100, varied")?,
        maglev_row(&vec![1; 1000], "all 1")?,
        maglev_row(&varied(1000), "1-100, varied")?,
        maglev_row(&skewed, "one 1000, 999 of 1")?,
    ])
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
    let object = options.object.as_deref();
    let mut balancer = load_xdpath(object, "xdpath + LB")?;
    let maps = KernelMaps::of_program(&balancer.program)
        .map_err(|error| LbBenchError::Maps(format!("open: {error}")))?;
    bench_state()?
        .install_kernel(&maps)
        .map_err(|error| LbBenchError::Maps(format!("install the balancer state: {error}")))?;
    let connection_table = describe_connection_table(&mut balancer.program);
    let plain = load_xdpath(object, "xdpath, no LB state")?;
    let empty = LoadedProgram::load_empty().map_err(|source| LbBenchError::Program {
        program: "empty".into(),
        source: Box::new(source),
    })?;
    let empty = Subject::new("empty", empty, crate::objects::EMPTY_PROGRAM)?;
    let (peer, peer_skipped) = match LoadedProgram::load_file(&options.peer, PEER_PROGRAM) {
        Ok(program) => (
            Some(Subject::new("xdp-filter", program, PEER_PROGRAM)?),
            None,
        ),
        Err(error) => (None, Some(format!("{}: {error}", options.peer.display()))),
    };

    // The multi-CPU rows' CPUs, read before this thread is pinned to one.
    let cpus = allowed_cpus(MAX_THREADS).map_err(LbBenchError::Affinity)?;
    let pinned = PinnedThread::to_current_cpu().map_err(LbBenchError::Affinity)?;
    let tx = Action::Tx as u32;
    let pass = Action::Pass as u32;

    // The repeat check, on a fresh flow of its own.
    clear_connections(&mut balancer.program)?;
    let before = connection_counts(&maps)?;
    let check_frame = flow_frames(Family::V4, 255, 1).concat();
    let (last_action, _) =
        test_run(balancer.entry.as_fd(), &check_frame, REPEAT_CHECK).map_err(|source| {
            LbBenchError::TestRun {
                program: balancer.label.clone(),
                source,
            }
        })?;
    let after = connection_counts(&maps)?;
    let repeat_check = RepeatCheck {
        repeat: REPEAT_CHECK,
        lookups: (after.0 - before.0) + (after.1 - before.1),
        last_action,
    };
    clear_connections(&mut balancer.program)?;

    // [family][row]: 0 miss, 1 hit, 2 hit on one flow, 3 plain xdpath,
    // 4 empty, 5 peer, 6 miss on all CPUs at once, 7 hit on all CPUs.
    let mut samples: [[Samples; 8]; 2] = Default::default();
    let (mut counted_hits, mut counted_misses) = (0u64, 0u64);
    let flows = u64::from(options.flows);
    for round in 0..options.rounds {
        for (slot, family) in [Family::V4, Family::V6].into_iter().enumerate() {
            let frames = flow_frames(family, round, options.flows);
            let start = connection_counts(&maps)?;
            let misses = balancer.pass(&frames, Some(tx))?;
            let middle = connection_counts(&maps)?;
            let hits = balancer.pass(&frames, Some(tx))?;
            let end = connection_counts(&maps)?;
            // The same number of hits on one flow: its bucket and entry stay
            // in the cache, which tells the table's cache misses from the
            // rest of the hit path.
            let one_flow = vec![frames.first().cloned().unwrap_or_default(); frames.len()];
            let hot = balancer.pass(&one_flow, Some(tx))?;
            let last = connection_counts(&maps)?;
            let miss_pass = (middle.0 - start.0, middle.1 - start.1);
            let hit_pass = (end.0 - middle.0, end.1 - middle.1);
            let hot_pass = (last.0 - end.0, last.1 - end.1);
            if miss_pass != (0, flows) || hit_pass != (flows, 0) || hot_pass != (flows, 0) {
                return Err(LbBenchError::Counters(format!(
                    "round {round}, {}: {flows} new flows counted {} hits and {} misses; \
                     sent again, {} hits and {} misses; one flow {flows} times, {} hits and \
                     {} misses",
                    family.name(),
                    miss_pass.0,
                    miss_pass.1,
                    hit_pass.0,
                    hit_pass.1,
                    hot_pass.0,
                    hot_pass.1
                )));
            }
            counted_hits += hit_pass.0 + hot_pass.0;
            counted_misses += miss_pass.1;
            samples[slot][0].push(&misses);
            samples[slot][1].push(&hits);
            samples[slot][2].push(&hot);
            samples[slot][3].push(&plain.pass(&frames, Some(pass))?);
            samples[slot][4].push(&empty.pass(&frames, Some(pass))?);
            if let Some(peer) = &peer {
                samples[slot][5].push(&peer.pass(&frames, None)?);
            }
        }
        let held = clear_connections(&mut balancer.program)?;
        if held as u64 != 2 * flows {
            return Err(LbBenchError::Counters(format!(
                "round {round}: the table held {held} entries after {} flows",
                2 * flows
            )));
        }
        if cpus.len() > 1 {
            let (misses, hits) = concurrent_round(&balancer, &maps, &cpus, round, options.flows)?;
            counted_hits += hits.len() as u64;
            counted_misses += misses.len() as u64;
            samples[0][6].push(&misses);
            samples[0][7].push(&hits);
            clear_connections(&mut balancer.program)?;
        }
    }

    let mut single_runs = Vec::new();
    for (slot, family) in [Family::V4, Family::V6].into_iter().enumerate() {
        let rows = &samples[slot];
        let baselines = (rows[4].figure(), peer.is_some().then(|| rows[5].figure()));
        let encap = match family {
            Family::V4 => "IPIP",
            Family::V6 => "GUE",
        };
        let names = [
            format!("xdpath LB {encap}: conn-table miss"),
            format!("xdpath LB {encap}: conn-table hit"),
            format!("xdpath LB {encap}: hit, one flow"),
            "xdpath, no LB state".to_string(),
            "empty (XDP_PASS)".to_string(),
            "xdp-filter xdpfilt_alw_all".to_string(),
            format!("xdpath LB {encap}: miss, {} CPUs at once", cpus.len()),
            format!("xdpath LB {encap}: hit, {} CPUs at once", cpus.len()),
        ];
        for (samples, name) in rows.iter().zip(&names) {
            // Rows that did not run (no peer, one CPU, IPv6 on all CPUs).
            if samples.0.is_empty() {
                continue;
            }
            single_runs.push(row(
                name,
                family,
                samples.figure(),
                samples.means(),
                samples.median_run(),
                baselines,
            ));
        }
    }

    // Repeated: one frame to no VIP, as the main table's method. The
    // balancer's counters must not move (the frame never reaches the table).
    let frame = non_vip_frame();
    let before = connection_counts(&maps)?;
    let subjects: Vec<(&str, &Subject)> = [
        ("xdpath + LB state, not a VIP", Some(&balancer)),
        ("xdpath, no LB state", Some(&plain)),
        ("empty (XDP_PASS)", Some(&empty)),
        ("xdp-filter xdpfilt_alw_all", peer.as_ref()),
    ]
    .into_iter()
    .filter_map(|(name, subject)| subject.map(|subject| (name, subject)))
    .collect();
    let mut trials: Vec<Vec<(f64, f64)>> = vec![Vec::new(); subjects.len()];
    for _ in 0..options.trials {
        for ((_, subject), trials) in subjects.iter().zip(&mut trials) {
            trials.push(subject.repeated(&frame, options.repeat)?);
        }
    }
    let after = connection_counts(&maps)?;
    if after != before {
        return Err(LbBenchError::Counters(format!(
            "a frame to no VIP reached the connection table ({before:?} → {after:?})"
        )));
    }
    drop(pinned);
    let figure = |trials: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        median(&mut trials.iter().map(pick).collect::<Vec<_>>())
    };
    let kernel = |sample: &(f64, f64)| sample.0;
    let wall = |sample: &(f64, f64)| sample.1;
    let baselines = (
        figure(&trials[2], kernel),
        peer.is_some().then(|| figure(&trials[3], kernel)),
    );
    let repeated = subjects
        .iter()
        .zip(&trials)
        .map(|((name, _), trials)| {
            row(
                name,
                Family::V4,
                figure(trials, kernel),
                trials.iter().map(kernel).collect(),
                figure(trials, wall),
                baselines,
            )
        })
        .collect();

    let maglev = maglev_rows()?;
    Ok(LbReport {
        method: format!(
            "one BPF_PROG_TEST_RUN per frame (repeat = 1) over {flows} distinct TCP SYNs per \
             family and round, each to the VIP from its own source address and port; the \
             kernel-reported duration (whole ns) averaged over the frames, median of {} rounds. \
             Per round and family: the balancer over the new flows (all misses), then over the \
             same frames again (all hits), then as many runs of the first flow's frame (hits on \
             one cached entry), then xdpath without LB state, the empty program and xdp-filter \
             over the same frames, one run each; CONN_STATS checked after every pass; the \
             table emptied between rounds. This thread pinned to one CPU. Multi-CPU rows: one \
             thread pinned to each of {} CPUs, {flows} new IPv4 flows each, misses then hits, \
             the threads starting each pass together. Repeated rows: {} repeats of one frame \
             to no VIP, median of {} trials, kernel-reported (last column: wall-clock). net = \
             ns minus the empty program's. Maglev: build_table at size {}, median of \
             {MAGLEV_BUILDS} builds.",
            options.rounds,
            cpus.len(),
            options.repeat,
            options.trials,
            RING_SIZE
        ),
        connection_table,
        flows: options.flows,
        rounds: options.rounds,
        single_runs,
        repeated,
        repeat_check,
        counted_hits,
        counted_misses,
        maglev,
        peer_skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_frames_are_distinct_flows() {
        for family in [Family::V4, Family::V6] {
            let frames = flow_frames(family, 3, 20_000);
            let unique: std::collections::HashSet<&Vec<u8>> = frames.iter().collect();
            assert_eq!(unique.len(), frames.len());
            // Another round's flows are new too.
            let other = flow_frames(family, 4, 20_000);
            assert!(other.iter().all(|frame| !unique.contains(frame)));
        }
    }

    #[test]
    fn bench_state_rings_point_at_their_family() {
        let state = bench_state().expect("state");
        let family = |index: u32| {
            state
                .backends
                .iter()
                .find(|(at, _)| *at == index)
                .map(|(_, backend)| backend.family)
        };
        for (ring, slots) in &state.rings {
            let expected = if *ring == 0 { 4 } else { 6 };
            assert_eq!(slots.len(), RING_SIZE as usize);
            assert!(slots.iter().all(|&index| family(index) == Some(expected)));
        }
    }
}
