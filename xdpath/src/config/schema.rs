//! The TOML file as written. Every field is optional here, so that a
//! missing one is reported together with every other mistake, and every
//! value that is checked later carries its place in the file
//! ([`Spanned`]). Unknown fields are refused everywhere.
//!
//! Values keep the CLI's vocabulary: `src`, `dst`, `proto`, `dport`,
//! `tcp_flags`, `action`, `iface` and `override` as in `filter add`; `pps`,
//! `burst`, `bps`, `burst_bytes`, `per`, `aggregate_v4`, `scope`, `syn` as
//! in `ratelimit add`; `encap`, `gue_port`, `flags`, `ring_size` as in
//! `lb vip add`; `source_v4`, `next_hop`, `seed` as in `lb config`.

use serde::Deserialize;
use toml::Spanned;

pub use super::values::{Item, Items, Scalar};

use super::{Malformed, Mode};
use crate::control::state::{FragmentChoice, LimitKey, RuleAction};
use crate::lb::state::Encap;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[[interface]]`: the interfaces xdpath is attached to.
    #[serde(default)]
    pub interface: Vec<Spanned<InterfaceEntry>>,
    /// `[filter]`.
    #[serde(default)]
    pub filter: Option<Spanned<FilterSection>>,
    /// `[lb]`.
    #[serde(default)]
    pub lb: Option<Spanned<LbSection>>,
    /// `[export]`: sFlow and IPFIX (run by xdpathd).
    #[serde(default)]
    pub export: Option<Spanned<super::observe::ExportSection>>,
    /// `[analytics]`: top talkers (run by xdpathd).
    #[serde(default)]
    pub analytics: Option<Spanned<super::observe::AnalyticsSection>>,
    /// `[mitigation]`: automatic blocking (run by xdpathd).
    #[serde(default)]
    pub mitigation: Option<Spanned<super::observe::MitigationSection>>,
    /// `[steering]`: the CPU list and the AF_XDP flows.
    #[serde(default)]
    pub steering: Option<Spanned<super::steering::SteeringSection>>,
}

/// `[[interface]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceEntry {
    /// The interface (required).
    pub name: Option<Spanned<String>>,
    /// auto (default), native, generic or offload.
    pub mode: Option<Mode>,
    /// pass (default) or drop.
    pub malformed: Option<Malformed>,
    /// Count drops without dropping.
    pub monitor: Option<bool>,
    /// Attach the backend-side decapsulator.
    pub decap: Option<bool>,
    /// With `decap`: also GUE to this port.
    pub gue_port: Option<Spanned<Scalar>>,
    /// Sample 1 in this many frames (0 or absent: no sampling).
    pub sample_rate: Option<Spanned<u32>>,
    /// Forward frames not for this host at XDP (`xdpath forward`).
    pub forward: Option<bool>,
    /// Spread frames passed to the stack over `[steering]`'s CPUs
    /// (`xdpath steer`).
    pub steer: Option<bool>,
}

/// `[filter]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSection {
    /// What happens to traffic no rule matches: pass (default) or drop.
    pub default: Option<RuleAction>,
    /// Only count what the default drop would drop.
    pub default_monitor: Option<bool>,
    /// `[[filter.rule]]`.
    #[serde(default)]
    pub rule: Vec<Spanned<RuleEntry>>,
    /// `[[filter.block]]`.
    #[serde(default)]
    pub block: Vec<Spanned<BlockEntry>>,
    /// `[[filter.ratelimit]]`.
    #[serde(default)]
    pub ratelimit: Vec<Spanned<LimitEntry>>,
    /// `[filter.guard]`.
    pub guard: Option<GuardSection>,
    /// `[filter.mgmt]`.
    pub mgmt: Option<MgmtSection>,
}

/// `[[filter.rule]]`: the arguments of `filter add`, with an id.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    /// The rule id, 1 to 65535 (required).
    pub id: Option<Spanned<u32>>,
    /// Source prefixes: one or a list.
    pub src: Option<Spanned<Items>>,
    /// Destination prefix.
    pub dst: Option<Spanned<String>>,
    /// tcp, udp, icmp, icmpv6 or a number.
    pub proto: Option<Spanned<Scalar>>,
    /// Destination port or range `N-M`.
    pub dport: Option<Spanned<Scalar>>,
    /// TCP flags, e.g. `syn,!ack`.
    pub tcp_flags: Option<Spanned<String>>,
    /// pass or drop (required).
    pub action: Option<RuleAction>,
    /// Only on this interface.
    pub iface: Option<Spanned<String>>,
    /// Count what it would drop without dropping.
    pub monitor: Option<bool>,
    /// Install a drop rule even if it covers management traffic.
    #[serde(rename = "override")]
    pub override_management: Option<bool>,
}

/// `[[filter.block]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockEntry {
    /// The blocked source prefix (required).
    pub prefix: Option<Spanned<String>>,
    /// How long, e.g. `1h`; counted from the apply that adds the entry
    /// (applying again does not extend it). None: no expiry.
    pub ttl: Option<Spanned<String>>,
}

/// `[[filter.ratelimit]]`: the arguments of `ratelimit add`, with an id.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitEntry {
    /// The limit id, from 1 (required).
    pub id: Option<Spanned<u32>>,
    /// Packets per second.
    pub pps: Option<u64>,
    /// Bucket size in packets (default: one second's worth).
    pub burst: Option<u64>,
    /// Bytes per second.
    pub bps: Option<u64>,
    /// Bucket size in bytes (default: one second's worth).
    pub burst_bytes: Option<u64>,
    /// src (default) or dst.
    pub per: Option<LimitKey>,
    /// IPv4 aggregation length (default 32).
    pub aggregate_v4: Option<u8>,
    /// IPv6 aggregation length (default 128).
    pub aggregate_v6: Option<u8>,
    /// Only addresses inside this prefix.
    pub scope: Option<Spanned<String>>,
    /// Only this protocol.
    pub proto: Option<Spanned<Scalar>>,
    /// Only TCP SYNs without ACK.
    pub syn: Option<bool>,
    /// Count without dropping.
    pub monitor: Option<bool>,
}

/// `[filter.guard]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardSection {
    /// The TCP flag-anomaly guard.
    pub tcp_flags: Option<bool>,
    /// `[filter.guard.amplification]`.
    pub amplification: Option<AmplificationEntry>,
    /// `[filter.guard.fragments]`.
    pub fragments: Option<FragmentsEntry>,
    /// `[filter.guard.syn_cookies]`.
    pub syn_cookies: Option<SynCookiesEntry>,
}

/// `[filter.guard.amplification]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmplificationEntry {
    /// On or off (default: on, as the table is there).
    pub enabled: Option<bool>,
    /// Reflection source ports (default: 19, 53, 123, 161, 389, 1900,
    /// 11211): numbers, ranges `N-M` or a `53,123` list.
    pub ports: Option<Spanned<Items>>,
    /// Destinations that expect such traffic.
    pub expect: Option<Spanned<Items>>,
}

/// `[filter.guard.fragments]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FragmentsEntry {
    /// pass (default), drop-later or drop-all.
    pub v4: Option<FragmentChoice>,
    /// pass (default), drop-later or drop-all.
    pub v6: Option<FragmentChoice>,
}

/// `[filter.guard.syn_cookies]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynCookiesEntry {
    /// On or off (default: on, as the table is there).
    pub enabled: Option<bool>,
    /// Protected TCP ports.
    pub ports: Option<Spanned<Items>>,
}

/// `[filter.mgmt]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MgmtSection {
    /// Source prefixes never dropped.
    pub prefixes: Option<Spanned<Items>>,
    /// TCP and UDP destination ports never dropped.
    pub ports: Option<Spanned<Items>>,
}

/// `[lb]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbSection {
    /// The outer IPv4 source prefix.
    pub source_v4: Option<Spanned<String>>,
    /// The outer IPv6 source prefix.
    pub source_v6: Option<Spanned<String>>,
    /// fib (default) or a MAC address.
    pub next_hop: Option<Spanned<String>>,
    /// The Maglev seed.
    pub seed: Option<u64>,
    /// `[[lb.vip]]`.
    #[serde(default)]
    pub vip: Vec<Spanned<VipEntry>>,
}

/// `[[lb.vip]]`: the arguments of `lb vip add` and its backends.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipEntry {
    /// `ADDRESS:PORT/tcp|udp` (required).
    pub vip: Option<Spanned<String>>,
    /// ipip (default) or gue.
    pub encap: Option<Spanned<Encap>>,
    /// The backends' GUE port (with gue).
    pub gue_port: Option<Spanned<Scalar>>,
    /// source-hash, no-conntrack.
    pub flags: Option<Spanned<Items>>,
    /// The Maglev table size, a prime from 7 to 65537 (the default).
    pub ring_size: Option<Spanned<u32>>,
    /// The sources that may reach the VIP (IPv4 and IPv6 prefixes), as
    /// `lb vip add --allow`; absent or empty: every source.
    pub allow: Option<Spanned<Items>>,
    /// `[lb.vip.health]`: the options of `lb vip health`.
    pub health: Option<Spanned<HealthEntry>>,
    /// `[[lb.vip.backend]]`.
    #[serde(default)]
    pub backend: Vec<Spanned<BackendEntry>>,
}

/// `[[lb.vip.backend]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendEntry {
    /// The backend's address (required).
    pub address: Option<Spanned<String>>,
    /// 0 to 1000 (default 1); 0 drains it.
    pub weight: Option<Spanned<u64>>,
}

/// `[lb.vip.health]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthEntry {
    /// `tcp` or `http` (required).
    pub kind: Option<String>,
    /// The port on the backend's own address; default: the VIP's.
    pub port: Option<u16>,
    /// The HTTP path (default `/`).
    pub path: Option<String>,
    /// The HTTP status that means healthy (default 200).
    pub status: Option<u16>,
    /// Between checks, e.g. `2s` (the default), `500ms`.
    pub interval: Option<String>,
    /// How long a check may take (default `1s`).
    pub timeout: Option<String>,
    /// Passes in a row to come back (default 2).
    pub rise: Option<u32>,
    /// Failures in a row to go out (default 3).
    pub fall: Option<u32>,
}
