//! The request types: one per operation, shared by the CLI (clap parses
//! into them, with the `clap` feature), the daemon's API (its JSON bodies
//! and query strings, unknown fields refused) and rule files. Values stay
//! text here and are parsed by the operation, so every front end gives
//! the same one-line error for the same mistake. `xdpathd/openapi.json`
//! is checked against these types by a test (`xdpathd::requests`).

use serde::{Deserialize, Serialize};

use crate::lb::state::Encap;
use crate::lb::LbError;

/// A new filter rule: `xdpath filter add`, a rule-file line and the
/// API's `POST /v1/rules` body (JSON, the same field names; `override`
/// for `--override`). Parsed by `RuleArgs::to_spec`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct RuleArgs {
    /// Source prefix (IPv4 or IPv6 CIDR).
    #[cfg_attr(feature = "clap", arg(long, value_name = "CIDR"))]
    pub src: Option<String>,
    /// Destination prefix.
    #[cfg_attr(feature = "clap", arg(long, value_name = "CIDR"))]
    pub dst: Option<String>,
    /// Protocol: tcp, udp, icmp, icmpv6 or a number.
    #[cfg_attr(feature = "clap", arg(long, value_name = "PROTO"))]
    pub proto: Option<String>,
    /// Destination port or range N-M (TCP and UDP).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N[-M]"))]
    pub dport: Option<String>,
    /// TCP flags that must be set or clear, e.g. `syn,!ack`.
    #[cfg_attr(feature = "clap", arg(long, value_name = "SPEC"))]
    pub tcp_flags: Option<String>,
    /// drop or pass.
    #[cfg_attr(feature = "clap", arg(long, value_name = "drop|pass"))]
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
    pub pps: Option<String>,
    /// Bucket size in packets (default: one second's worth).
    #[cfg_attr(feature = "clap", arg(long))]
    pub burst: Option<String>,
    /// Bytes per second.
    #[cfg_attr(feature = "clap", arg(long))]
    pub bps: Option<String>,
    /// Bucket size in bytes (default: one second's worth).
    #[cfg_attr(feature = "clap", arg(long))]
    pub burst_bytes: Option<String>,
    /// src or dst: whose address a bucket belongs to.
    #[cfg_attr(feature = "clap", arg(long, default_value = "src"))]
    #[serde(default = "per_source")]
    pub per: String,
    /// Aggregate IPv4 addresses to this prefix length (default 32).
    #[cfg_attr(feature = "clap", arg(long))]
    pub aggregate_v4: Option<String>,
    /// Aggregate IPv6 addresses to this prefix length (default 128).
    #[cfg_attr(feature = "clap", arg(long))]
    pub aggregate_v6: Option<String>,
    /// Only addresses inside this prefix.
    #[cfg_attr(feature = "clap", arg(long))]
    pub scope: Option<String>,
    /// Only this protocol.
    #[cfg_attr(feature = "clap", arg(long))]
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
}

/// A blocked prefix: `xdpath block del` and `DELETE /v1/blocklist?prefix=`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct PrefixQuery {
    /// The prefix.
    #[cfg_attr(feature = "clap", arg(value_name = "CIDR"))]
    pub prefix: String,
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
    #[serde(default)]
    pub flags: Vec<String>,
    /// The Maglev table size: a prime from 7 to 65537 (default 65537).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub ring_size: Option<u32>,
    /// Only these sources (IPv4 or IPv6 prefixes, comma-separated) reach
    /// the VIP; the others are dropped. Default: every source.
    #[cfg_attr(feature = "clap", arg(long, value_name = "CIDR"))]
    #[cfg_attr(feature = "clap", arg(value_delimiter = ','))]
    #[serde(default)]
    pub allow: Vec<String>,
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

/// A VIP's allowed sources: `xdpath lb vip allow` and `PUT
/// /v1/vips/allow`. The list replaces the VIP's; an empty one lets every
/// source in.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct VipAllow {
    /// The VIP.
    pub vip: String,
    /// Source prefixes (IPv4 or IPv6 CIDR) that may reach the VIP; none:
    /// every source.
    #[cfg_attr(feature = "clap", arg(value_name = "CIDR"))]
    #[serde(default)]
    pub allow: Vec<String>,
}

/// A VIP's health check of its backends (run by xdpathd): `xdpath lb vip
/// health` and `PUT /v1/vips/health`. Durations are text: 500ms, 2s, 1m.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct HealthArgs {
    /// The VIP.
    pub vip: String,
    /// tcp (a connection is accepted), http (a GET answers with an
    /// expected status), or off (no checks: every backend counts as up).
    #[cfg_attr(feature = "clap", arg(value_parser = ["tcp", "http", "off"]))]
    pub kind: String,
    /// The port on the backend's own address; default (0): the VIP's port.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    #[serde(default)]
    pub port: u16,
    /// The HTTP path.
    #[cfg_attr(feature = "clap", arg(long, default_value = "/"))]
    #[serde(default = "root_path")]
    pub path: String,
    /// The HTTP statuses that mean healthy: a code, a list or ranges
    /// (200; 200,202; 200-204).
    #[cfg_attr(feature = "clap", arg(long, default_value = "200"))]
    #[serde(default = "ok_status")]
    pub status: String,
    /// Time between checks of a backend (e.g. 500ms, 2s).
    #[cfg_attr(feature = "clap", arg(long, default_value = "2s"))]
    #[serde(default = "two_seconds")]
    pub interval: String,
    /// How long a check may take.
    #[cfg_attr(feature = "clap", arg(long, default_value = "1s"))]
    #[serde(default = "one_second")]
    pub timeout: String,
    /// Passes in a row that bring a backend back.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 2))]
    #[serde(default = "two")]
    pub rise: u32,
    /// Failures in a row that take a backend out.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 3))]
    #[serde(default = "three")]
    pub fall: u32,
}

fn root_path() -> String {
    "/".into()
}

fn ok_status() -> String {
    "200".into()
}

fn two_seconds() -> String {
    "2s".into()
}

fn one_second() -> String {
    "1s".into()
}

fn two() -> u32 {
    2
}

fn three() -> u32 {
    3
}

/// The balancer's shared settings: `xdpath lb config` and `PUT
/// /v1/lb/config`. A setting left out stays as it is.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct LbConfigArgs {
    /// The outer IPv4 source prefix (host bits vary per flow), or none.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub source_v4: Option<String>,
    /// The outer IPv6 source prefix, or none.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub source_v6: Option<String>,
    /// fib (ask the kernel's FIB and neighbour table; the default) or the
    /// next hop's MAC address.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub next_hop: Option<String>,
    /// The Maglev seed; balancers behind one ECMP group must share it.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub seed: Option<u64>,
}

/// An owner's whole load-balancing state: `PUT /v1/owners/{owner}` and
/// `xdpath owner apply OWNER FILE`. Each list holds the requests of the
/// single changes; what the owner has and the document lacks is removed,
/// and the same document again changes nothing.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerState {
    /// Its VIPs with their options and allowed sources, as `POST
    /// /v1/vips` takes them (`owner` left out, or the document's).
    #[serde(default)]
    pub vips: Vec<NewVip>,
    /// Their backends, as `POST /v1/backends` takes them.
    #[serde(default)]
    pub backends: Vec<BackendWeight>,
    /// Their health checks, as `PUT /v1/vips/health` takes them (at most
    /// one a VIP; none: not checked).
    #[serde(default)]
    pub health: Vec<HealthArgs>,
    /// Rate limits of the frames to its VIPs, as `POST /v1/ratelimits`
    /// takes them, each naming one of the document's VIPs (`owner` left
    /// out, or the document's).
    #[serde(default)]
    pub limits: Vec<LimitArgs>,
}
