//! The clap definitions of the `filter`, `block`, `ratelimit`, `guard` and
//! `mgmt` commands; [`super`] runs them. A change's arguments are its
//! request type ([`xdpath::api`]), the one the daemon's API reads.

use std::path::PathBuf;

use clap::Subcommand;

use xdpath::api::{LimitArgs, NewBlock, PrefixQuery, RuleArgs};

/// `xdpath filter ...`
#[derive(Subcommand)]
pub enum FilterCommand {
    /// Add a rule; prints its id.
    Add(Box<RuleArgs>),
    /// Delete a rule by id (not an owner's: those change with its document).
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
    Add(NewBlock),
    /// Unblock a prefix.
    Del(PrefixQuery),
    /// List blocked prefixes with the time left.
    List,
}

/// `xdpath ratelimit ...`
#[derive(Subcommand)]
pub enum RateLimitCommand {
    /// Add a token-bucket limit; prints its id.
    Add(Box<LimitArgs>),
    /// Delete a limit by id (not an owner's: those change with its document).
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
