//! The request types: one per operation, shared by the CLI (clap parses
//! into them, with the `clap` feature), the daemon's API (its JSON bodies
//! and query strings, unknown fields refused) and rule files. Values stay
//! text here and are parsed by the operation, so every front end gives
//! the same one-line error for the same mistake. `xdpathd/openapi.json`
//! is checked against these types by a test (`xdpathd::requests`).

use serde::{Deserialize, Serialize};

use crate::lb::state::Encap;
use crate::lb::LbError;

mod balancer;
pub(crate) mod text;

pub use balancer::{HealthArgs, LbConfigArgs, OwnerState, VipAllow};

/// A new filter rule: `xdpath filter add`, a rule-file line and the
/// API's `POST /v1/rules` body (JSON, the same field names; `override`
/// for `--override`). Parsed by `RuleArgs::to_spec`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct RuleArgs {
    /// Source prefix (IPv4 or IPv6 CIDR), or several separated by commas
    /// (a list in JSON and in a config file).
    #[cfg_attr(feature = "clap", arg(long, value_name = "CIDR[,CIDR...]"))]
    #[serde(default, deserialize_with = "text::list")]
    pub src: Option<String>,
    /// Destination prefix.
    #[cfg_attr(feature = "clap", arg(long, value_name = "CIDR"))]
    pub dst: Option<String>,
    /// Protocol: tcp, udp, icmp (with IPv4 prefixes), icmpv6 (with IPv6
    /// prefixes) or a number 1-255 (none: any).
    #[cfg_attr(feature = "clap", arg(long, value_name = "PROTO"))]
    #[serde(default, deserialize_with = "text::scalar")]
    pub proto: Option<String>,
    /// Destination port or range N-M; needs --proto tcp or udp, or none
    /// (both).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N[-M]"))]
    #[serde(default, deserialize_with = "text::scalar")]
    pub dport: Option<String>,
    /// ICMP or ICMPv6 type, or type/code (each 0-255), e.g. `8` or `3/4`;
    /// needs --proto icmp or icmpv6, not with --dport.
    #[cfg_attr(feature = "clap", arg(long, value_name = "T[/C]"))]
    #[serde(default, deserialize_with = "text::scalar")]
    pub icmp_type: Option<String>,
    /// TCP flags that must be set or clear, e.g. `syn,!ack`; a rule of
    /// TCP (refused with another --proto).
    #[cfg_attr(feature = "clap", arg(long, value_name = "SPEC"))]
    pub tcp_flags: Option<String>,
    /// drop, pass (ends the filter) or admit (ends the rules; the
    /// blocklist, guards and rate limits still apply).
    #[cfg_attr(feature = "clap", arg(long, value_name = "drop|pass|admit"))]
    #[serde(deserialize_with = "required")]
    pub action: Option<String>,
    /// Only on this interface.
    #[cfg_attr(feature = "clap", arg(long, value_name = "IF"))]
    pub iface: Option<String>,
    /// Count what the rule would drop without dropping.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub monitor: bool,
    /// Install a deny rule even if it covers management traffic.
    #[cfg_attr(feature = "clap", arg(long = "override"))]
    #[serde(default, rename = "override")]
    pub override_management: bool,
    /// Only VXLAN/Geneve frames with this VNI (0-16777215), matched on
    /// their inner headers; without it a rule matches outer headers.
    #[cfg_attr(feature = "clap", arg(long, value_name = "VNI"))]
    #[serde(default, deserialize_with = "text::scalar")]
    pub vni: Option<String>,
    /// Labels for whoever reads its counters (Prometheus, the JSON
    /// rows): at most 4 `key: value` pairs, keys `[a-z_][a-z0-9_]{0,31}`
    /// other than rule, limit and owner. Not a flag: set through the API,
    /// owner documents and config files.
    #[cfg_attr(feature = "clap", arg(skip))]
    #[serde(
        default,
        deserialize_with = "text::labels",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A field an API body must have, though the CLI's flag is optional (so
/// that the CLI can say which flag is missing in its own words).
fn required<'de, D: serde::Deserializer<'de>>(from: D) -> Result<Option<String>, D::Error> {
    <String as Deserialize>::deserialize(from).map(Some)
}

/// A new rate limit: `xdpath ratelimit add` and the API's
/// `POST /v1/ratelimits` body (JSON, the same field names).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct LimitArgs {
    /// Packets per second.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, deserialize_with = "text::scalar")]
    pub pps: Option<String>,
    /// Bucket size in packets (default: one second's worth).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, deserialize_with = "text::scalar")]
    pub burst: Option<String>,
    /// Bytes per second.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, deserialize_with = "text::scalar")]
    pub bps: Option<String>,
    /// Bucket size in bytes (default: one second's worth).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, deserialize_with = "text::scalar")]
    pub burst_bytes: Option<String>,
    /// src or dst: whose address a bucket belongs to.
    #[cfg_attr(feature = "clap", arg(long, default_value = "src"))]
    #[serde(default = "per_source")]
    pub per: String,
    /// Aggregate IPv4 addresses to this prefix length (default 32).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, deserialize_with = "text::scalar")]
    pub aggregate_v4: Option<String>,
    /// Aggregate IPv6 addresses to this prefix length (default 128).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, deserialize_with = "text::scalar")]
    pub aggregate_v6: Option<String>,
    /// Only addresses inside this prefix.
    #[cfg_attr(feature = "clap", arg(long))]
    pub scope: Option<String>,
    /// Only this protocol.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, deserialize_with = "text::scalar")]
    pub proto: Option<String>,
    /// Only TCP SYNs (without ACK).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub syn: bool,
    /// Count without dropping.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub monitor: bool,
    /// Only frames to this VIP's address and protocol (every port),
    /// ADDRESS:PORT/tcp|udp: with --per src, each source its own bucket
    /// for the VIP. Not with --scope.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub vip: Option<String>,
    /// Who made the limit (letters, digits, `_.:-`, at most 64).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub owner: Option<String>,
    /// Only VXLAN/Geneve frames with this VNI (0-16777215), limited by
    /// their inner headers; without it a limit sees outer headers.
    #[cfg_attr(feature = "clap", arg(long, value_name = "VNI"))]
    #[serde(default, deserialize_with = "text::scalar")]
    pub vni: Option<String>,
    /// Labels for whoever reads its counters (Prometheus, the JSON
    /// rows): at most 4 `key: value` pairs, keys `[a-z_][a-z0-9_]{0,31}`
    /// other than rule, limit and owner. Not a flag: set through the API,
    /// owner documents and config files.
    #[cfg_attr(feature = "clap", arg(skip))]
    #[serde(
        default,
        deserialize_with = "text::labels",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A limit's buckets are per source address unless the request says.
fn per_source() -> String {
    "src".into()
}

/// A blocklist entry: `xdpath block add` and `POST /v1/blocklist`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct NewBlock {
    /// The prefix.
    #[cfg_attr(feature = "clap", arg(value_name = "CIDR"))]
    pub prefix: String,
    /// How long, e.g. 30s, 10m, 1h, 2d (default: no expiry).
    #[cfg_attr(feature = "clap", arg(long))]
    pub ttl: Option<String>,
    /// Only VXLAN/Geneve frames with this VNI (0-16777215), blocked by
    /// their inner source; without it the outer source is blocked.
    #[cfg_attr(feature = "clap", arg(long, value_name = "VNI"))]
    #[serde(default, deserialize_with = "text::scalar")]
    pub vni: Option<String>,
}

/// A blocked prefix: `xdpath block del` and `DELETE /v1/blocklist?prefix=`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct PrefixQuery {
    /// The prefix.
    #[cfg_attr(feature = "clap", arg(value_name = "CIDR"))]
    pub prefix: String,
    /// The VNI the entry was added with, if any.
    #[cfg_attr(feature = "clap", arg(long, value_name = "VNI"))]
    #[serde(default, deserialize_with = "text::scalar")]
    pub vni: Option<String>,
}

/// A new VIP: `xdpath lb vip add` and `POST /v1/vips`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct NewVip {
    /// The VIP, ADDRESS:PORT/tcp|udp, e.g. 203.0.113.10:80/tcp or
    /// [2001:db8::10]:443/tcp (* for every port).
    pub vip: String,
    /// How frames reach the backends: ipip (default) or gue.
    #[cfg_attr(feature = "clap", arg(long, value_parser = ["ipip", "gue"]))]
    #[serde(default)]
    pub encap: Option<String>,
    /// The backends' GUE port (with --encap gue).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub gue_port: Option<u16>,
    /// Comma-separated: source-hash (hash on the client address only),
    /// no-conntrack (pure Maglev, no connection table).
    #[cfg_attr(feature = "clap", arg(long, value_delimiter = ','))]
    #[serde(default, deserialize_with = "text::many")]
    pub flags: Vec<String>,
    /// The Maglev table size: a prime from 7 to 65537 (default 65537).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub ring_size: Option<u32>,
    /// Only these sources (IPv4 or IPv6 prefixes, comma-separated) reach
    /// the VIP; the others are dropped. Default: every source.
    #[cfg_attr(feature = "clap", arg(long, value_name = "CIDR"))]
    #[cfg_attr(feature = "clap", arg(value_delimiter = ','))]
    #[serde(default, deserialize_with = "text::many")]
    pub allow: Vec<String>,
    /// Sample 1 in N of the VIP's frames (sFlow, IPFIX, top talkers), in
    /// place of its interface's rate; 0 or absent: the interface's rate.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    #[serde(default)]
    pub sample_rate: Option<u32>,
    /// Who made the VIP (letters, digits, `_.:-`, at most 64).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub owner: Option<String>,
}

impl NewVip {
    /// The encapsulation asked for.
    pub fn encap(&self) -> Result<Encap, LbError> {
        match self.encap.as_deref() {
            None | Some("ipip") => Ok(Encap::Ipip),
            Some("gue") => Ok(Encap::Gue),
            Some(other) => Err(LbError::Encap {
                given: other.to_string(),
            }),
        }
    }
}

/// A VIP: `xdpath lb vip del` and `DELETE /v1/vips?vip=`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct VipQuery {
    /// The VIP.
    pub vip: String,
}

/// A backend and its weight: `xdpath lb backend add`, `POST` and `PUT
/// /v1/backends`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct BackendWeight {
    /// The VIP.
    pub vip: String,
    /// The backend's address (IPv4 or IPv6).
    pub address: String,
    /// Relative weight, 0 to 1000 (0: drained).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    #[serde(default = "one")]
    pub weight: u64,
}

fn one() -> u64 {
    1
}

/// A backend of a VIP: `xdpath lb backend del` and `DELETE
/// /v1/backends?vip=&address=`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct BackendQuery {
    /// The VIP.
    pub vip: String,
    /// The backend.
    pub address: String,
}

/// How a request's check names its fields in a message: as the CLI's
/// flags (`--burst-bytes`, which the API's clients also get) or as a
/// config file's keys (`burst_bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// `--burst-bytes`.
    Flags,
    /// `burst_bytes`.
    Fields,
}

impl Naming {
    /// A field's name in these words.
    pub fn name(self, field: &str) -> String {
        match self {
            Naming::Flags => format!("--{}", field.replace('_', "-")),
            Naming::Fields => field.to_string(),
        }
    }
}

/// A request refused by its check: the field it is about (none: the
/// request as a whole) and why, in the words of a [`Naming`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestError {
    /// The field, by its serde name.
    pub field: Option<&'static str>,
    /// Why.
    pub message: String,
}

impl From<RequestError> for crate::control::ControlError {
    fn from(error: RequestError) -> Self {
        crate::control::ControlError::Usage(error.message)
    }
}
