//! The clap definitions of the `lb` commands; [`super`] runs them. A
//! change's arguments are its request type ([`xdpath::api`]), the one the
//! daemon's API reads.

use clap::Subcommand;
use xdpath::api::{
    BackendQuery, BackendWeight, HealthArgs, LbConfigArgs, NewVip, VipAllow, VipQuery,
};

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
    Config(LbConfigArgs),
    /// Connection-table hits and misses, and per-VIP counters.
    Stats,
    /// Remove every VIP (the settings stay).
    Flush,
    /// What external owners made: list, show, apply a document, delete.
    Owner {
        #[command(subcommand)]
        command: super::owner::OwnerCommand,
    },
}

/// `xdpath lb vip ...`
#[derive(Subcommand)]
pub enum VipCommand {
    /// Add a VIP: ADDRESS:PORT/tcp|udp (IPv6 in brackets; * for every port).
    Add(NewVip),
    /// Create a VIP, or give the one there these options and allowed
    /// sources (its backends, health check and connections stay, unless
    /// --flags changes source-hash or no-conntrack): running it again
    /// changes nothing.
    Set(NewVip),
    /// Set the sources that may reach a VIP (replacing its list); with no
    /// CIDR, every source may.
    Allow(VipAllow),
    /// Check the VIP's backends (run by xdpathd): a backend that fails
    /// `--fall` checks in a row leaves the table (established flows stay)
    /// until it passes `--rise` in a row. `off` stops checking.
    Health(HealthArgs),
    /// Show a VIP's Maglev table as the kernel holds it: its size, a
    /// digest (equal on every balancer given the same backends, weights
    /// and seed) and each backend's slots.
    Table {
        /// The VIP.
        vip: String,
        /// List every slot's backend too (with --json).
        #[arg(long)]
        slots: bool,
    },
    /// Delete a VIP and its backends.
    Del(VipQuery),
    /// List VIPs with their counters.
    List,
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
