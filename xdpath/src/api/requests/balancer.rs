//! The balancer's request types beyond adding VIPs and backends: a VIP's
//! allowed sources, its health check, the shared settings, and an owner's
//! whole document (made of the single changes' requests).

use serde::{Deserialize, Serialize};

use super::{BackendWeight, LimitArgs, NewVip, RuleArgs};

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
    /// expected status), ping (an ICMP echo is answered), udp (a datagram
    /// to the port is not refused with ICMP port unreachable), or off (no
    /// checks: every backend counts as up).
    #[cfg_attr(feature = "clap", arg(value_parser = ["tcp", "http", "ping", "udp", "off"]))]
    pub kind: String,
    /// The port on the backend's own address; default (0): the VIP's port
    /// (an all-ports VIP needs one, but for ping).
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
    /// How long a check may take, all of it (connect, request and
    /// answer): a slower answer fails it.
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

impl HealthArgs {
    /// A check of `kind` on `vip` with every option at its default (the
    /// same defaults the CLI and the API give).
    pub fn new(vip: String, kind: String) -> Self {
        Self {
            vip,
            kind,
            port: 0,
            path: root_path(),
            status: ok_status(),
            interval: two_seconds(),
            timeout: one_second(),
            rise: two(),
            fall: three(),
        }
    }
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
    /// The connection tables: one LRU shared by all CPUs, or one LRU list
    /// per CPU (no shared lock; a flow must stay on its CPU, RSS keeps it
    /// there). A change re-creates the tables: established flows are
    /// placed again by Maglev.
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    #[serde(default)]
    pub connection_table: Option<crate::dataplane::ConnectionTable>,
    /// The largest outer IP packet the path to the backends carries, 600
    /// to 65535 (1328 or more while an IPv6 VIP exists); 0 (the default):
    /// only the egress device's MTU bounds. A
    /// frame longer once encapsulated is answered with ICMP
    /// "fragmentation needed" or ICMPv6 "packet too big".
    #[cfg_attr(feature = "clap", arg(long, value_name = "BYTES"))]
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// An owner's whole state (VIPs, rate limits, filter rules): `PUT /v1/owners/{owner}` and
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
    /// Rate limits, as `POST /v1/ratelimits` takes them: of the frames to
    /// one of the document's VIPs (`vip`), or standing alone (`scope`,
    /// `per`, ...); `owner` left out, or the document's.
    #[serde(default)]
    pub limits: Vec<LimitArgs>,
    /// Filter rules, as `POST /v1/rules` takes them, in order: xdpathd
    /// gives them their ids (a rule the owner already has keeps its id,
    /// and so its hit counter) and keeps them together in this order in
    /// the rule list, so that where several match one frame's prefix the
    /// first of them here decides.
    #[serde(default)]
    pub rules: Vec<RuleArgs>,
}
