//! The clap definitions of the `lb` commands; [`super`] runs them. A
//! change's arguments are its request type ([`xdpath::api`]), the one the
//! daemon's API reads.

use clap::{Args, Subcommand};
use xdpath::api::{BackendQuery, BackendWeight, NewVip, VipQuery};

/// `xdpath lb ...`
#[derive(Subcommand)]
pub enum LbCommand {
    /// VIPs: add, del, list.
    Vip {
        #[command(subcommand)]
        command: VipCommand,
    },
    /// Backends of a VIP: add, del, set-weight, list.
    Backend {
        #[command(subcommand)]
        command: BackendCommand,
    },
    /// Show or change the shared settings: outer source prefixes, next hop,
    /// Maglev seed.
    Config(ConfigArgs),
    /// Connection-table hits and misses, and per-VIP counters.
    Stats,
    /// Remove every VIP (the settings stay).
    Flush,
}

/// `xdpath lb vip ...`
#[derive(Subcommand)]
pub enum VipCommand {
    /// Add a VIP: ADDRESS:PORT/tcp|udp (IPv6 in brackets; * for every port).
    Add(NewVip),
    /// Check the VIP's backends (run by xdpathd): a backend that fails
    /// `--fall` checks in a row leaves the table (established flows stay)
    /// until it passes `--rise` in a row. `off` stops checking.
    Health {
        /// The VIP.
        vip: String,
        /// tcp (a connection is accepted), http (GET answers --status), or off.
        kind: HealthKindArg,
        /// The port on the backend's own address; default: the VIP's port.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// The HTTP path.
        #[arg(long, default_value = "/")]
        path: String,
        /// The HTTP status that means healthy.
        #[arg(long, default_value_t = 200)]
        status: u16,
        /// Time between checks of a backend (e.g. 500ms, 2s).
        #[arg(long, default_value = "2s")]
        interval: String,
        /// How long a check may take.
        #[arg(long, default_value = "1s")]
        timeout: String,
        /// Passes in a row that bring a backend back.
        #[arg(long, default_value_t = 2)]
        rise: u32,
        /// Failures in a row that take a backend out.
        #[arg(long, default_value_t = 3)]
        fall: u32,
    },
    /// Delete a VIP and its backends.
    Del(VipQuery),
    /// List VIPs with their counters.
    List,
}

/// The kind of `lb vip health`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum HealthKindArg {
    /// A TCP connection is accepted.
    Tcp,
    /// An HTTP GET answers with the expected status.
    Http,
    /// No checks; every backend counts as up.
    Off,
}

/// `xdpath lb backend ...`
#[derive(Subcommand)]
pub enum BackendCommand {
    /// Add a backend to a VIP.
    Add(BackendWeight),
    /// Remove a backend: its flows move to the others.
    Del(BackendQuery),
    /// Change a backend's weight; 0 drains it (no new flows, established
    /// ones stay).
    SetWeight {
        /// The VIP.
        vip: String,
        /// The backend.
        address: String,
        /// The new weight, 0 to 1000.
        weight: u64,
    },
    /// List backends with their share of the table and counters.
    List {
        /// Only this VIP.
        vip: Option<String>,
    },
}

/// `xdpath lb config`: with no option, shows the settings.
#[derive(Args)]
pub struct ConfigArgs {
    /// The outer IPv4 source prefix (host bits vary per flow), or none.
    #[arg(long)]
    pub source_v4: Option<String>,
    /// The outer IPv6 source prefix, or none.
    #[arg(long)]
    pub source_v6: Option<String>,
    /// fib (ask the kernel's FIB and neighbour table; the default) or the
    /// next hop's MAC address.
    #[arg(long)]
    pub next_hop: Option<String>,
    /// The Maglev seed; balancers behind one ECMP group must share it.
    #[arg(long)]
    pub seed: Option<u64>,
}
