//! The command line: every command, flag and argument of `xdpath`, as clap
//! parses them. The man page (`doc/xdpath.8`) is checked against these
//! (`tests/man_page.rs`).

use std::path::PathBuf;

use crate::filter::args::{
    BlockCommand, FilterCommand, GuardCommand, MgmtCommand, RateLimitCommand,
};
use clap::{Parser, Subcommand, ValueEnum};
use xdpath::dataplane::ModeChoice;
use xdpath_core::MalformedPolicy;
use xdpath_lab::bench;

#[derive(Parser)]
#[command(name = "xdpath", version, about = "A programmable XDP data path", long_about = None)]
pub(crate) struct Cli {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Malformed {
    /// Pass malformed frames to the kernel stack while the filter holds
    /// nothing; drop them once it holds anything (default).
    Pass,
    /// Drop malformed frames at XDP.
    Drop,
}

impl From<Malformed> for MalformedPolicy {
    fn from(value: Malformed) -> Self {
        match value {
            Malformed::Pass => MalformedPolicy::Pass,
            Malformed::Drop => MalformedPolicy::Drop,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum ForwardSwitch {
    /// Turn it on.
    Enable,
    /// Turn it off.
    Disable,
}

#[derive(Subcommand)]
pub(crate) enum XskCommand {
    /// Steer a flow to the AF_XDP socket of the queue it arrives on.
    Add {
        /// tcp or udp.
        #[arg(long)]
        proto: String,
        /// The destination port.
        #[arg(long)]
        dport: String,
    },
    /// Stop steering a flow.
    Del {
        /// tcp or udp.
        #[arg(long)]
        proto: String,
        /// The destination port.
        #[arg(long)]
        dport: String,
    },
    /// The steered flows.
    List,
}

#[derive(Subcommand)]
pub(crate) enum StateCommand {
    /// List every difference between the saved state and the kernel's maps
    /// (read back); exit 1 when there is any.
    Check {
        /// Install what differs (as attach, apply and xdpathd do).
        #[arg(long)]
        repair: bool,
    },
    /// Rebuild a state file that cannot be read from the copy of the state
    /// last installed, once the kernel's maps are read back and hold
    /// exactly it.
    Repair,
    /// Remove the state and pins of network namespaces that are gone (of
    /// an earlier boot, or no longer existing).
    Gc {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Attach xdpath to an interface (state is pinned under /sys/fs/bpf/xdpath).
    Attach {
        /// The interface.
        interface: String,
        /// XDP mode: auto tries native, then generic.
        #[arg(long, value_enum, default_value = "auto")]
        mode: ModeChoice,
        /// What to do with malformed frames.
        #[arg(long, value_enum, default_value = "pass")]
        malformed: Malformed,
        /// Monitor mode: count what would be dropped, drop nothing.
        #[arg(long)]
        monitor: bool,
        /// Attach even when this namespace's saved state (rules, blocklist,
        /// VIPs...) cannot be installed: the interface then runs without
        /// it, and `status` says so. Without this flag such an attach is
        /// refused and nothing changes.
        #[arg(long)]
        force_empty: bool,
    },
    /// Detach xdpath from an interface and remove its pins.
    Detach {
        /// The interface.
        interface: String,
    },
    /// Replace the program on an interface with this build's, keeping its
    /// maps (config, counters, rules) and dropping no traffic (Linux 5.9+).
    Reload {
        /// The interface.
        interface: String,
    },
    /// Show the interfaces xdpath is attached to in this network namespace.
    Status,
    /// Show counters per verdict and reason.
    Stats {
        /// Only this interface (default: every attached interface).
        interface: Option<String>,
    },
    /// Run the pipeline natively over a pcap or pcapng capture.
    Replay {
        /// The capture: pcap (either byte order, micro- or nanosecond) or
        /// pcapng; Ethernet, Linux cooked (SLL, SLL2) or raw IP frames.
        file: PathBuf,
        /// Write the frames the pipeline passes to this pcap file.
        #[arg(long, value_name = "OUT.pcap")]
        write_pass: Option<PathBuf>,
        /// What to do with malformed frames.
        #[arg(long, value_enum, default_value = "pass")]
        malformed: Malformed,
        /// Apply this rule file (the `filter load` format) and report what
        /// it would have dropped; time comes from the capture.
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
    },
    /// Run the whole pipeline in user space on an interface's frames
    /// (AF_XDP), with the namespace's state and the kernel's counters,
    /// until SIGINT or SIGTERM, or until the interface is deleted (an
    /// error).
    Run {
        /// The interface.
        interface: String,
        /// Run in user space (the kernel path is `xdpath attach`).
        #[arg(long)]
        userspace: bool,
        /// Sockets on queues 0..N (default: every receive queue).
        #[arg(long, value_name = "N")]
        queues: Option<u32>,
        /// What to do with malformed frames.
        #[arg(long, value_enum, default_value = "pass")]
        malformed: Malformed,
        /// Monitor mode: count what would be dropped, drop nothing.
        #[arg(long)]
        monitor: bool,
        /// L3 forwarding of frames routed elsewhere, by the kernel's main
        /// table and neighbours (taken each second).
        #[arg(long)]
        forward: bool,
        /// Where passed frames go: the stack through a TAP device, or
        /// nowhere.
        #[arg(long, value_enum, default_value = "tap")]
        exception: xdpath::userspace::Exception,
        /// Let the kernel use zero-copy where the driver supports it
        /// (default: copy mode, which every driver supports).
        #[arg(long)]
        zero_copy: bool,
        /// Stop after this many seconds.
        #[arg(long, value_name = "SECONDS")]
        duration: Option<f64>,
        /// One serving thread per queue, thread i pinned to CPU i (mod the
        /// online CPUs; pair with IRQ affinity). Connection tables are per
        /// thread (a flow stays on its queue), rate-limit buckets shared.
        #[arg(long)]
        threads: bool,
    },
    /// Filter rules: add, del, list, flush, default, load.
    Filter {
        #[command(subcommand)]
        command: FilterCommand,
    },
    /// The blocklist: add (with --ttl), del, list.
    Block {
        #[command(subcommand)]
        command: BlockCommand,
    },
    /// Rate limits: add, del, list.
    Ratelimit {
        #[command(subcommand)]
        command: RateLimitCommand,
    },
    /// Guards: tcp-flags, amplification, fragments, syn-cookies, show.
    Guard {
        #[command(subcommand)]
        command: GuardCommand,
    },
    /// Management prefixes and ports, never dropped by the filter.
    Mgmt {
        #[command(subcommand)]
        command: MgmtCommand,
    },
    /// The layer-4 load balancer: VIPs, backends, settings, counters.
    Lb {
        #[command(subcommand)]
        command: crate::lb::args::LbCommand,
    },
    /// Attach the backend-side decapsulator: IPIP and GUE addressed to this
    /// host are stripped and the inner packet, judged by the filter too,
    /// passed to the stack.
    Decap {
        /// The interface.
        interface: String,
        /// XDP mode: auto tries native, then generic.
        #[arg(long, value_enum, default_value = "auto")]
        mode: ModeChoice,
        /// Also decapsulate GUE to this UDP port.
        #[arg(long, default_value_t = 0)]
        gue_port: u16,
        /// Only read this host's addresses again (after an address change).
        #[arg(long)]
        refresh: bool,
    },
    /// L3 forwarding at XDP on an attached interface: frames not for this
    /// host are routed by the kernel's FIB and redirected out.
    Forward {
        /// `enable` or `disable`.
        #[arg(value_enum)]
        switch: ForwardSwitch,
        /// The interface.
        interface: String,
    },
    /// Steer the frames an interface passes to the stack to CPUs by flow
    /// hash (software receive-side scaling).
    Steer {
        /// `enable` or `disable`.
        #[arg(value_enum)]
        switch: ForwardSwitch,
        /// The interface.
        interface: String,
        /// The CPUs: `all` (default), or numbers and ranges such as
        /// `0,2-3`; the namespace's list for every steering interface.
        #[arg(long)]
        cpus: Option<String>,
        /// Frames queued per CPU (8-16384, default 2048).
        #[arg(long)]
        queue_size: Option<u32>,
    },
    /// Flows steered to AF_XDP applications (`xdpath::afxdp::SteeredReceiver`),
    /// by protocol and destination port.
    Xsk {
        #[command(subcommand)]
        command: XskCommand,
    },
    /// Sample 1 in N frames of an attached interface (0 or `off`: stop).
    Sample {
        /// The interface.
        interface: String,
        /// N, or `off`.
        rate: String,
    },
    /// Write frames as xdpath handled them (verdict and reason in each
    /// packet's comment) to a pcapng file.
    Capture(xdpath::observe::capture::CaptureArgs),
    /// Export samples as sFlow v5 or IPFIX to collectors, in the
    /// foreground (xdpathd does the same from its config).
    Export(xdpath::observe::export::ExportArgs),
    /// A live view of rates per interface, verdict and reason, and of the
    /// top talkers.
    Top(xdpath::observe::topview::TopArgs),
    /// Measure ns/packet in the kernel (BPF_PROG_TEST_RUN) beside an empty
    /// program and xdp-filter, and packets/s of the native build.
    Bench(bench::BenchOptions),
    /// Build a two-namespace test bed, attach, send mixed traffic, print the
    /// counters, and remove everything.
    Demo,
    /// Show what `apply` would change to make this namespace match a config
    /// file; changes nothing.
    Plan(crate::config::PlanArgs),
    /// Make this namespace match a config file, changing only what differs.
    Apply(crate::config::ApplyArgs),
    /// Keep what `apply --confirm` applied: cancel the pending rollback.
    Confirm,
    /// Compare this namespace's saved state with what the kernel's maps
    /// hold, put it right, rebuild a damaged state file, or remove the
    /// state of namespaces that are gone.
    #[command(subcommand)]
    State(StateCommand),
}
