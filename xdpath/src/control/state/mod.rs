//! The desired filter state of a network namespace: what the operator asked
//! for, in operator terms (prefixes, ports, wall-clock expiry). It is kept
//! as JSON at `/var/lib/xdpath/<netns id>/filter.json` and compiled to the
//! kernel's representation by [`super::compile`].

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::parse::{Cidr, IcmpTypeSpec, Labels, PortRange, TcpFlagsSpec};
use xdpath_core::filter::PrefixKey;

pub use crate::netns::{state_dir_of, STATE_ROOT};
/// The state file's name inside a namespace's directory.
pub const STATE_FILE: &str = "filter.json";

/// The reflection (amplification) source ports guarded by default:
/// chargen, DNS, NTP, SNMP, CLDAP, SSDP, memcached.
pub const DEFAULT_REFLECTION_PORTS: [u16; 7] = [19, 53, 123, 161, 389, 1900, 11211];

/// How to recover from a state file that cannot be read; nothing that was
/// enforced stops being enforced meanwhile (the maps are left alone).
pub const RECOVER: &str = "the data path keeps what it enforces; run `xdpath state repair` to rebuild the file from the kernel's maps, or move it away to start empty";

/// Errors reading or writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file could not be read, written or renamed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not valid state JSON.
    #[error("{}: not a valid xdpath state file: {source}; {RECOVER}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The file is JSON but not a state file of this kind and format.
    #[error("{}: not a valid xdpath state file: {why}; {RECOVER}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The file was written by a newer xdpath.
    #[error("{}: written by a newer xdpath (state format {format}; this one reads format {STATE_FORMAT}): run that version, or `xdpath state repair` to rebuild the file from the kernel's maps", path.display())]
    Newer {
        /// The file.
        path: PathBuf,
        /// Its format.
        format: u64,
    },
}

/// What a rule does with the traffic it matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Let it through (no further filtering).
    #[default]
    Pass,
    /// Drop it.
    Drop,
    /// End the rules (no later rule, no default drop) but leave the frame
    /// to the blocklist, the guards and the rate limits: an owner's allow
    /// (an OpenStack security group's), which must not bypass the
    /// operator's defences.
    Admit,
}

impl RuleAction {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Drop => "drop",
            Self::Admit => "admit",
        }
    }
}

/// One rule. A rule may hold many source prefixes (a prefix list loaded
/// from a file is one rule); it matches when the source is in one of them
/// (or, with no sources, when the destination is in `destination`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// Stable id, 1 to 65535; hits are counted under it.
    pub id: u32,
    /// Source prefixes; empty: any source (the rule is then a
    /// destination rule).
    #[serde(default)]
    pub sources: Vec<Cidr>,
    /// Destination prefix.
    #[serde(default)]
    pub destination: Option<Cidr>,
    /// IP protocol; none: any.
    #[serde(default)]
    pub protocol: Option<u8>,
    /// Destination ports (TCP and UDP only).
    #[serde(default)]
    pub ports: Option<PortRange>,
    /// ICMP or ICMPv6 type and code (with protocol icmp or icmpv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<IcmpTypeSpec>,
    /// TCP flags that must be set or clear.
    #[serde(default)]
    pub tcp_flags: Option<TcpFlagsSpec>,
    /// What to do on a match.
    pub action: RuleAction,
    /// Only on this interface.
    #[serde(default)]
    pub interface: Option<String>,
    /// Count what it would drop without dropping.
    #[serde(default)]
    pub monitor: bool,
    /// Only tunnelled frames with this VNI, judged on their inner headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    /// Who made it (see `lb::edit::check_owner`): an owner's rules come
    /// from its document (`lb::owner`); none: the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Labels on its counters (see `control::parse::check_labels`).
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

impl RuleSpec {
    /// The same rule without id and sources: rules of one shape can share
    /// one kernel rule.
    pub fn same_shape(&self, other: &RuleSpec) -> bool {
        self.destination == other.destination
            && self.protocol == other.protocol
            && self.ports == other.ports
            && self.icmp_type == other.icmp_type
            && self.tcp_flags == other.tcp_flags
            && self.action == other.action
            && self.interface == other.interface
            && self.monitor == other.monitor
            && self.vni == other.vni
            && self.owner == other.owner
            && self.labels == other.labels
    }
}

/// A blocked prefix: of sources, or, with a VNI, of the inner sources of
/// frames tunnelled with that VNI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSpec {
    /// The prefix.
    pub prefix: Cidr,
    /// When it stops matching, seconds since the Unix epoch; none: never.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// Only tunnelled frames with this VNI, by their inner source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
}

impl BlockSpec {
    /// What the entry is known by: its VNI and prefix (one entry each).
    pub fn key(&self) -> BlockKey {
        BlockKey {
            vni: self.vni,
            prefix: self.prefix.key(),
        }
    }
}

/// A blocklist entry's identity: the plain blocklist's prefix, or a tunnel
/// blocklist entry's VNI and inner prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockKey {
    /// The VNI of a tunnel blocklist entry.
    pub vni: Option<u32>,
    /// The prefix's trie key.
    pub prefix: PrefixKey,
}

/// Which address a rate limit keys its buckets by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitKey {
    /// Per source address (or source prefix, with aggregation).
    #[default]
    Src,
    /// Per destination.
    Dst,
}

/// Where a rate limit is kept: among the general limits, tried one by one
/// (at most `MAX_RATE_LIMITS`), or in the table of limits of one address
/// each (`ADDRESS_LIMITS`). Chosen when the limit is made (a limit of one
/// address goes to the table) and saved with it, so that an upgrade does
/// not move the limits an older program running meanwhile enforces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitTable {
    /// Among the general limits (and every limit an older build saved).
    #[default]
    General,
    /// In the address table (unless an earlier limit there has its key:
    /// then among the general ones, see `compile::limit_places`).
    Address,
}

impl LimitTable {
    /// For serde: the default is not written.
    pub fn is_general(&self) -> bool {
        *self == Self::General
    }
}

/// One token-bucket rate limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitSpec {
    /// Stable id.
    pub id: u32,
    /// Packets per second.
    #[serde(default)]
    pub packets_per_second: Option<u64>,
    /// Bucket size in packets.
    #[serde(default)]
    pub burst_packets: u64,
    /// Bytes per second.
    #[serde(default)]
    pub bytes_per_second: Option<u64>,
    /// Bucket size in bytes.
    #[serde(default)]
    pub burst_bytes: u64,
    /// Per source or per destination.
    #[serde(default)]
    pub per: LimitKey,
    /// IPv4 aggregation length (32: per address).
    pub aggregate_v4: u8,
    /// IPv6 aggregation length (128: per address).
    pub aggregate_v6: u8,
    /// Only addresses (of `per`) inside this prefix.
    #[serde(default)]
    pub scope: Option<Cidr>,
    /// Only this IP protocol.
    #[serde(default)]
    pub protocol: Option<u8>,
    /// Only TCP SYNs without ACK.
    #[serde(default)]
    pub syn_only: bool,
    /// Count without dropping.
    #[serde(default)]
    pub monitor: bool,
    /// Only frames to this VIP (its address and protocol; every port), as
    /// `ADDRESS:PORT/PROTOCOL`: `to` holds its address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<String>,
    /// Only frames to this prefix (the VIP's address), whichever address
    /// keys the buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Cidr>,
    /// Who made it (see `lb::edit::check_owner`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Only tunnelled frames with this VNI, on their inner headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    /// Labels on its counters (see `control::parse::check_labels`).
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// Where it is kept.
    #[serde(default, skip_serializing_if = "LimitTable::is_general")]
    pub table: LimitTable,
}

/// What to do with IP fragments, as the operator says it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum FragmentChoice {
    /// Pass every fragment.
    #[default]
    Pass,
    /// Drop the fragments after the first (no transport header).
    DropLater,
    /// Drop every fragment.
    DropAll,
}

impl FragmentChoice {
    /// Kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::DropLater => "drop-later",
            Self::DropAll => "drop-all",
        }
    }
}

/// The amplification guard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmplificationGuard {
    /// On or off.
    pub enabled: bool,
    /// Reflection source ports.
    pub ports: Vec<PortRange>,
    /// Destinations that expect replies from those ports.
    #[serde(default)]
    pub expect: Vec<Cidr>,
}

impl Default for AmplificationGuard {
    fn default() -> Self {
        Self {
            enabled: false,
            ports: DEFAULT_REFLECTION_PORTS
                .iter()
                .map(|&port| PortRange {
                    low: port,
                    high: port,
                })
                .collect(),
            expect: Vec::new(),
        }
    }
}

/// SYN-cookie mode (the data path is kernel-only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynCookieGuard {
    /// On or off.
    pub enabled: bool,
    /// Protected TCP destination ports.
    #[serde(default)]
    pub ports: Vec<PortRange>,
}

/// The stateless guards and SYN cookies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Guards {
    /// The TCP flag-anomaly guard.
    pub tcp_flags: bool,
    /// The amplification guard.
    pub amplification: AmplificationGuard,
    /// IPv4 fragment policy.
    pub fragments_v4: FragmentChoice,
    /// IPv6 fragment policy.
    pub fragments_v6: FragmentChoice,
    /// SYN-cookie mode.
    pub syn_cookies: SynCookieGuard,
}

/// Traffic the filter never drops.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Management {
    /// Source prefixes.
    pub prefixes: Vec<Cidr>,
    /// TCP and UDP destination ports.
    pub ports: Vec<u16>,
}

/// The whole desired filter state of a namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FilterState {
    /// Rules, in evaluation order (by id).
    pub rules: Vec<RuleSpec>,
    /// The next rule id to hand out.
    pub next_rule_id: u32,
    /// What happens to traffic no rule matches.
    pub default_action: RuleAction,
    /// The default drop is only counted.
    pub default_monitor: bool,
    /// Blocked prefixes.
    pub blocklist: Vec<BlockSpec>,
    /// Rate limits, in evaluation order.
    pub rate_limits: Vec<LimitSpec>,
    /// The next rate-limit id to hand out.
    pub next_limit_id: u32,
    /// Guards.
    pub guards: Guards,
    /// The management guard.
    pub management: Management,
}

impl FilterState {
    /// Removes the blocklist entries expired at `now` (Unix seconds);
    /// returns how many.
    pub fn sweep_expired(&mut self, now: u64) -> usize {
        let before = self.blocklist.len();
        self.blocklist
            .retain(|entry| entry.expires_at.is_none_or(|expiry| expiry > now));
        before - self.blocklist.len()
    }

    /// The rule with this id.
    pub fn rule(&self, id: u32) -> Option<&RuleSpec> {
        self.rules.iter().find(|rule| rule.id == id)
    }
}

mod files;
pub use files::{
    installed_copy_path, load, remove_stale_temporaries, save, save_installed_copy, save_plain,
    state_dir, StateFile, STATE_FORMAT,
};
pub mod journal;
pub use journal::{Journal, JournalContent};
