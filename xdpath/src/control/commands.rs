//! The clap definitions of the `filter`, `block`, `ratelimit`, `guard` and
//! `mgmt` commands; [`super::cli`] runs them.

use std::path::PathBuf;

use clap::Subcommand;

use super::rulefile::RuleArgs;

/// `xdpath filter ...`
#[derive(Subcommand)]
pub enum FilterCommand {
    /// Add a rule; prints its id.
    Add(RuleArgs),
    /// Delete a rule by id.
    Del {
        /// The rule id.
        id: String,
    },
    /// List the rules with their hits.
    List,
    /// Delete every rule.
    Flush,
    /// Set the action for traffic no rule matches.
    Default {
        /// drop or pass.
        action: String,
        /// Only count what the default drop would drop.
        #[arg(long)]
        monitor: bool,
    },
    /// Replace every rule with those of a file, atomically.
    Load {
        /// One rule a line (`filter add` arguments) or a bare prefix.
        file: PathBuf,
        /// Install deny rules even if they cover management traffic.
        #[arg(long = "override")]
        override_management: bool,
    },
}

/// `xdpath block ...`
#[derive(Subcommand)]
pub enum BlockCommand {
    /// Block a source prefix, for a while or for good.
    Add {
        /// The prefix.
        cidr: String,
        /// How long, e.g. 30s, 10m, 1h, 2d (default: no expiry).
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Unblock a prefix.
    Del {
        /// The prefix.
        cidr: String,
    },
    /// List blocked prefixes with the time left.
    List,
}

/// A new rate limit: the one request type of `xdpath ratelimit add` and
/// the API's `POST /v1/ratelimits` body (JSON, the same field names).
#[derive(Clone, Debug, Default, clap::Args, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitArgs {
    /// Packets per second.
    #[arg(long)]
    pub pps: Option<String>,
    /// Bucket size in packets (default: one second's worth).
    #[arg(long)]
    pub burst: Option<String>,
    /// Bytes per second.
    #[arg(long)]
    pub bps: Option<String>,
    /// Bucket size in bytes (default: one second's worth).
    #[arg(long)]
    pub burst_bytes: Option<String>,
    /// src or dst: whose address a bucket belongs to.
    #[arg(long, default_value = "src")]
    #[serde(default = "per_source")]
    pub per: String,
    /// Aggregate IPv4 addresses to this prefix length (default 32).
    #[arg(long)]
    pub aggregate_v4: Option<String>,
    /// Aggregate IPv6 addresses to this prefix length (default 128).
    #[arg(long)]
    pub aggregate_v6: Option<String>,
    /// Only addresses inside this prefix.
    #[arg(long)]
    pub scope: Option<String>,
    /// Only this protocol.
    #[arg(long)]
    pub proto: Option<String>,
    /// Only TCP SYNs (without ACK).
    #[arg(long)]
    #[serde(default)]
    pub syn: bool,
    /// Count without dropping.
    #[arg(long)]
    #[serde(default)]
    pub monitor: bool,
}

/// A limit's buckets are per source address unless the request says.
fn per_source() -> String {
    "src".into()
}

/// `xdpath ratelimit ...`
#[derive(Subcommand)]
pub enum RateLimitCommand {
    /// Add a token-bucket limit; prints its id.
    Add(LimitArgs),
    /// Delete a limit by id.
    Del {
        /// The limit id.
        id: String,
    },
    /// List the limits with their drops.
    List,
}

/// `xdpath guard ...`
#[derive(Subcommand)]
pub enum GuardCommand {
    /// The TCP flag-anomaly guard.
    TcpFlags {
        /// on or off.
        state: String,
    },
    /// The amplification guard (UDP from reflection ports).
    Amplification {
        /// on or off.
        state: String,
        /// Reflection source ports, e.g. 19,53,123 (replaces the list).
        #[arg(long)]
        ports: Option<String>,
        /// Destinations that expect such traffic (replaces the list).
        #[arg(long)]
        expect: Vec<String>,
    },
    /// The IP fragment policies.
    Fragments {
        /// pass, drop-later or drop-all.
        #[arg(long)]
        v4: Option<String>,
        /// pass, drop-later or drop-all.
        #[arg(long)]
        v6: Option<String>,
    },
    /// SYN-cookie mode (kernel only).
    SynCookies {
        /// on or off.
        state: String,
        /// Protected TCP ports (replaces the list).
        #[arg(long)]
        ports: Option<String>,
    },
    /// Show the guards.
    Show,
}

/// `xdpath mgmt ...`
#[derive(Subcommand)]
pub enum MgmtCommand {
    /// Add a management prefix or port.
    Add {
        /// The prefix.
        cidr: Option<String>,
        /// A TCP/UDP destination port instead.
        #[arg(long)]
        port: Option<String>,
    },
    /// Remove a management prefix or port.
    Del {
        /// The prefix.
        cidr: Option<String>,
        /// A port instead.
        #[arg(long)]
        port: Option<String>,
    },
    /// List management prefixes and ports.
    List,
}
