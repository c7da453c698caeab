//! `xdpath bench`: ns/packet of the XDP program under `BPF_PROG_TEST_RUN`,
//! beside an empty program and xdp-tools' `xdpfilt_alw_all.o` in the same
//! run, and packets/s of the native build, all over one fixed packet mix.
//!
//! Method: for each program and each frame of the mix, `trials` runs of
//! `BPF_PROG_TEST_RUN` with `repeat` iterations each. The time per packet of
//! a run is the wall-clock time of the syscall divided by `repeat` (the
//! kernel's own `duration` field is an integer number of ns, too coarse to
//! tell programs of a few ns apart). The figure for a frame is the median of
//! its trials; a program's figure is the mean over the mix. The native figure
//! runs `xdpath_core::pipeline::process` over the mix on one thread.
//!
//! The load balancer has a section of its own ([`crate::bench::lb`]): its
//! frames change under the program, so it is timed one run per frame.

mod filter_state;
pub mod flood;
pub mod forward;
mod kernel;
pub mod lb;
pub mod multicore;
pub mod observe;
mod report;
pub mod tunnel;
pub mod userspace;
pub mod userspace_threads;

pub use filter_state::{bench_filter_state, bench_filter_state_with, BENCH_PREFIXES};

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use xdpath_core::build::{doc_v6, FrameSpec, Network, Transport};
use xdpath_core::wire::tcp::{FLAG_ACK, FLAG_SYN};
use xdpath_core::{pipeline, NativeTables, SlicePacket};

use xdpath::dataplane::DataplaneError;

pub use report::{BenchReport, NativeResult, ProgramResult};

/// The default xdp-tools peer object (Debian package xdp-tools).
pub const XDP_FILTER_OBJECT: &str = "/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_alw_all.o";

/// Benchmark options.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchOptions {
    /// BPF_PROG_TEST_RUN iterations per frame and trial.
    #[arg(long, default_value_t = 1_000_000)]
    pub repeat: u32,
    /// Trials per frame; the median is kept.
    #[arg(long, default_value_t = 5)]
    pub trials: usize,
    /// Native packets to process (over the mix, round robin).
    #[arg(long, default_value_t = 50_000_000)]
    pub native_packets: u64,
    /// The xdp-filter object to run as the peer.
    #[arg(long, default_value = XDP_FILTER_OBJECT)]
    pub peer: PathBuf,
    /// Also run the veth flood benchmark for this many seconds per defender
    /// (xdpath, xdp-filter, none); see `bench::flood`.
    #[arg(long, value_name = "SECONDS")]
    pub flood: Option<u32>,
    /// Measure this build of the xdpath object instead of the embedded one
    /// in every xdpath row, the load balancer's included (to compare two
    /// builds of the program).
    #[arg(long, value_name = "OBJECT")]
    pub object: Option<PathBuf>,
    /// Also run this build of the xdpath object beside the measured one in
    /// the kernel section (repeatable): its parse+count and filter rows,
    /// named after the file, timed in the same trials, so a variant is
    /// compared under the same load.
    #[arg(long, value_name = "OBJECT")]
    pub beside: Vec<PathBuf>,
    /// Load balancer: distinct flows per address family and round (each
    /// sent once as a connection-table miss, then once as a hit).
    #[arg(long, default_value_t = 20_000)]
    pub lb_flows: u32,
    /// Load balancer: rounds; the median is kept.
    #[arg(long, default_value_t = 5)]
    pub lb_rounds: usize,
    /// Load balancer: give each VIP an allow list of this many prefixes
    /// (its flows' sources in one of them), to time the allow-list lookup;
    /// 0 (the default): no lists.
    #[arg(long, default_value_t = 0)]
    pub lb_allow: u32,
    /// Skip the load-balancer section.
    #[arg(long)]
    pub no_lb: bool,
    /// Skip the sampling section.
    #[arg(long)]
    pub no_observe: bool,
    /// Also measure forwarding over veth: this many live frames per trial
    /// through xdpath's forwarding and through a minimal redirect program.
    #[arg(long, value_name = "FRAMES")]
    pub forward: Option<u32>,
    /// Also measure the user-space runtime (AF_XDP, copy mode) beside the
    /// kernel path on live traffic over veth: this many frames per trial.
    #[arg(long, value_name = "FRAMES")]
    pub userspace: Option<u32>,
    /// With --userspace: also the runtime on a two-queue veth, one thread
    /// against --threads, two AF_XDP senders in B.
    #[arg(long, requires = "userspace")]
    pub userspace_threads: bool,
    /// Also run the mix, and the balancer's multi-CPU rows, on this many
    /// CPUs at once (one pinned thread each): per-CPU ns and aggregate
    /// packets/s. 1 gives the baseline of the same method.
    #[arg(long, value_name = "N")]
    pub cpus: Option<usize>,
    /// The kind of xdpath's connection tables in the balancer section:
    /// one LRU shared by all CPUs, or one LRU list per CPU.
    #[arg(long, value_enum, default_value_t)]
    pub connection_table: xdpath::dataplane::ConnectionTable,
    /// Also measure the cost of looking inside VXLAN and Geneve: the
    /// filter with and without rules by VNI, over plain and tunnelled
    /// frames.
    #[arg(long)]
    pub tunnels: bool,
    /// Give the filter rows this many limits of one address each (per
    /// destination, the mix's two destinations first, then others), high
    /// enough to drop nothing: every frame to them is looked up and
    /// charged.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub address_limits: u32,
    /// With --address-limits: keep them among the general limits (tried
    /// one by one, at most 15 beside the filter's own) instead of the
    /// address table, to compare the two.
    #[arg(long, requires = "address_limits")]
    pub address_limits_general: bool,
}

/// The extra limits of one address the filter rows hold (`--address-limits`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AddressLimitsOption {
    /// How many.
    pub count: u32,
    /// Among the general limits, not in the address table.
    pub general: bool,
}

impl BenchOptions {
    /// The `--address-limits` options.
    pub fn address_limits(&self) -> AddressLimitsOption {
        AddressLimitsOption {
            count: self.address_limits,
            general: self.address_limits_general,
        }
    }
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            repeat: 1_000_000,
            trials: 5,
            native_packets: 50_000_000,
            peer: XDP_FILTER_OBJECT.into(),
            object: None,
            beside: Vec::new(),
            flood: None,
            lb_flows: 20_000,
            lb_rounds: 5,
            lb_allow: 0,
            no_lb: false,
            no_observe: false,
            forward: None,
            userspace: None,
            userspace_threads: false,
            cpus: None,
            connection_table: xdpath::dataplane::ConnectionTable::default(),
            tunnels: false,
            address_limits: 0,
            address_limits_general: false,
        }
    }
}

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Loading or running a program failed.
    #[error("program {program}: {source}")]
    Program {
        /// Which program.
        program: String,
        /// Why.
        source: Box<DataplaneError>,
    },
    /// Bad options.
    #[error("{0}")]
    Options(String),
    /// The flood benchmark failed.
    #[error("flood benchmark: {0}")]
    Flood(#[from] crate::bench::flood::FloodError),
    /// The load-balancer benchmark failed.
    #[error("load-balancer benchmark: {0}")]
    Lb(#[from] crate::bench::lb::LbBenchError),
    /// The kernel refused live frames (`BPF_F_TEST_XDP_LIVE_FRAMES`,
    /// `EPERM`), which a section measures with and has no stand-in for.
    #[error("{section}: the kernel refuses live frames (BPF_F_TEST_XDP_LIVE_FRAMES): {source}")]
    LiveFramesRefused {
        /// The section.
        section: &'static str,
        /// The refusal.
        source: Box<DataplaneError>,
    },
}

/// The fixed packet mix: what a host sees most, plus tags and one malformed.
pub fn packet_mix() -> Vec<(String, Vec<u8>)> {
    let v4 = Network::V4([192, 0, 2, 1], [198, 51, 100, 2]);
    let v6 = Network::V6(doc_v6(1), doc_v6(2));
    let syn = Transport::Tcp {
        source_port: 40000,
        destination_port: 80,
        flags: FLAG_SYN,
    };
    let ack = Transport::Tcp {
        source_port: 40000,
        destination_port: 443,
        flags: FLAG_ACK,
    };
    let udp = Transport::Udp {
        source_port: 5353,
        destination_port: 53,
    };
    let mut truncated = FrameSpec::new(v4, udp.clone()).build();
    truncated.truncate(14 + 12);
    vec![
        (
            "ipv4-tcp-syn".into(),
            FrameSpec::new(v4, syn.clone()).build(),
        ),
        (
            "ipv4-tcp-ack-1400B".into(),
            FrameSpec::new(v4, ack.clone())
                .with_payload(&[0xab; 1400])
                .build(),
        ),
        (
            "ipv4-udp".into(),
            FrameSpec::new(v4, udp.clone())
                .with_payload(&[0; 64])
                .build(),
        ),
        (
            "ipv4-icmp-echo".into(),
            FrameSpec::new(v4, Transport::EchoRequest).build(),
        ),
        (
            "ipv6-tcp-syn".into(),
            FrameSpec::new(v6, syn.clone()).build(),
        ),
        (
            "ipv6-udp".into(),
            FrameSpec::new(v6, udp).with_payload(&[0; 64]).build(),
        ),
        (
            "vlan-ipv4-tcp".into(),
            FrameSpec::new(v4, ack).with_vlans(&[100]).build(),
        ),
        (
            "qinq-ipv6-tcp".into(),
            FrameSpec::new(v6, syn.clone())
                .with_vlans(&[10, 20])
                .build(),
        ),
        ("truncated-ipv4".into(), truncated),
        // Sources inside the benchmark rule set's 100,000 denied prefixes.
        (
            "ipv4-tcp-denied-source".into(),
            FrameSpec::new(Network::V4([10, 1, 2, 3], [198, 51, 100, 2]), syn).build(),
        ),
        (
            "ipv4-udp-denied-source".into(),
            FrameSpec::new(
                Network::V4([11, 7, 8, 9], [198, 51, 100, 2]),
                Transport::Udp {
                    source_port: 5353,
                    destination_port: 53,
                },
            )
            .build(),
        ),
    ]
}

/// The median (the mean of the middle two for an even count; 0 for none).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[middle],
        _ => (values[middle - 1] + values[middle]) / 2.0,
    }
}

/// The mean (0 for none).
pub(crate) fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Each counted option's range: a value past it is a typo that would
/// run for days.
fn check_counts(options: &BenchOptions) -> Result<(), BenchError> {
    let counts: [(&str, u64, u64, Option<u64>); 7] = [
        ("--repeat", 1, 100_000_000, Some(options.repeat.into())),
        ("--trials", 1, 1_000, Some(options.trials as u64)),
        (
            "--native-packets",
            1,
            10_000_000_000,
            Some(options.native_packets),
        ),
        ("--flood", 1, 3_600, options.flood.map(u64::from)),
        ("--forward", 1, 100_000_000, options.forward.map(u64::from)),
        (
            "--userspace",
            1,
            100_000_000,
            options.userspace.map(u64::from),
        ),
        (
            "--cpus",
            1,
            crate::bench::lb::MAX_THREADS as u64,
            options.cpus.map(|cpus| cpus as u64),
        ),
    ];
    for (name, low, high, value) in counts {
        if let Some(value) = value.filter(|value| !(low..=high).contains(value)) {
            return Err(BenchError::Options(format!(
                "{name} {value} is out of range ({low}-{high})"
            )));
        }
    }
    Ok(())
}

/// Runs the benchmark.
pub fn run(options: &BenchOptions) -> Result<BenchReport, BenchError> {
    check_counts(options)?;
    if !options.no_lb {
        crate::bench::lb::check_options(options.lb_flows, options.lb_rounds)?;
    }
    let mix = packet_mix();
    let trials = kernel::kernel_trials(options, &mix)?;
    let kernel = kernel::kernel_results(mix.len(), &trials);
    let peer_skipped = trials.peer_skipped;

    let native = native_rate(&mix, options.native_packets);
    let multicore = match options.cpus {
        Some(cpus) => Some(multicore::run(options, &mix, cpus)?),
        None => None,
    };
    // Before the flood benchmark, which attaches programs to interfaces.
    let lb = if options.no_lb {
        None
    } else {
        Some(crate::bench::lb::run(&crate::bench::lb::LbBenchOptions {
            flows: options.lb_flows,
            rounds: options.lb_rounds,
            allow: options.lb_allow,
            repeat: options.repeat,
            trials: options.trials,
            object: options.object.clone(),
            peer: options.peer.clone(),
            cpus: options.cpus,
            connection_table: options.connection_table,
        })?)
    };
    let observe = if options.no_observe {
        None
    } else {
        Some(crate::bench::observe::run(
            &mix,
            options.trials,
            &options.peer,
        )?)
    };
    let mut skipped = Vec::new();
    let forward = match options
        .forward
        .map(|frames| crate::bench::forward::run(frames, options.trials))
    {
        Some(Err(refused @ BenchError::LiveFramesRefused { .. })) => {
            skipped.push(refused.to_string());
            None
        }
        other => other.transpose()?,
    };
    let tunnels = if options.tunnels {
        Some(crate::bench::tunnel::run(options)?)
    } else {
        None
    };
    let userspace = match options.userspace {
        Some(frames) => Some(crate::bench::userspace::run(frames, options.trials)?),
        None => None,
    };
    let userspace_threads = match options.userspace {
        Some(frames) if options.userspace_threads => Some(crate::bench::userspace_threads::run(
            frames,
            options.trials,
        )?),
        _ => None,
    };
    Ok(BenchReport {
        tunnels,
        userspace,
        userspace_threads,
        forward,
        observe,
        method: format!(
            "BPF_PROG_TEST_RUN, {} repeats per frame, median of {} interleaved trials, wall-clock / repeat; \
             mean over the mix. Native: pipeline::process over the mix, one thread.",
            options.repeat, options.trials
        ),
        mix: mix.iter().map(|(name, _)| name.clone()).collect(),
        kernel,
        peer_skipped,
        skipped,
        native,
        multicore,
        machine: machine_description(),
        flood: match options.flood {
            Some(seconds) => Some(crate::bench::flood::run(seconds)?),
            None => None,
        },
        lb,
    })
}

/// Packets/s of the native pipeline over the mix, in memory, one thread.
pub fn native_rate(mix: &[(String, Vec<u8>)], packets: u64) -> NativeResult {
    let mut tables = NativeTables::default();
    let frames: Vec<&[u8]> = mix.iter().map(|(_, frame)| frame.as_slice()).collect();
    let rounds = (packets / frames.len().max(1) as u64).max(1);
    let started = Instant::now();
    for _ in 0..rounds {
        for frame in &frames {
            let outcome = pipeline::process(&SlicePacket::new(black_box(frame)), &mut tables);
            black_box(outcome);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = rounds * frames.len() as u64;
    NativeResult {
        packets: total,
        ns_per_packet: elapsed * 1e9 / total as f64,
        mpps: total as f64 / elapsed / 1e6,
    }
}

fn machine_description() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("Linux {}, {cpu}, {cores} cores", kernel.trim())
}
