//! The TOML file as written. Every field is optional here, so that a
//! missing one is reported together with every other mistake, and every
//! value that is checked later carries its place in the file
//! ([`Spanned`]). Unknown fields are refused everywhere.
//!
//! The filter's and the balancer's entries *are* the API's request types
//! ([`Entry`]): `[[filter.rule]]` is a [`RuleArgs`], `[[filter.ratelimit]]`
//! a [`LimitArgs`], `[[filter.block]]` a [`NewBlock`] and `[[lb.vip]]` a
//! [`NewVip`], with the same field names as `filter add`, `ratelimit add`,
//! `block add` and `lb vip add` (and their JSON bodies), plus what only a
//! file has (ids, a VIP's health check and backends). `source_v4`,
//! `next_hop` and `seed` are as in `lb config`.

use serde::de::MapAccess;
use serde::Deserialize;
use toml::Spanned;

pub use super::entry::{Entry, Extras, NoExtras};
pub use super::values::{Item, Items, Scalar};

use super::{Malformed, Mode};
use crate::api::{LimitArgs, NewBlock, NewVip, RuleArgs};
use crate::control::state::{FragmentChoice, RuleAction};

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

/// `[[filter.rule]]`: the request of `filter add` and `POST /v1/rules`
/// ([`RuleArgs`]: `src` may be a list), with an id.
pub type RuleEntry = Entry<RuleArgs, WithId>;

/// `[[filter.block]]`: the request of `block add` ([`NewBlock`]); the
/// `ttl` counts from the apply that adds the entry (applying again does
/// not extend it).
pub type BlockEntry = Entry<NewBlock>;

/// `[[filter.ratelimit]]`: the request of `ratelimit add` and `POST
/// /v1/ratelimits` ([`LimitArgs`]), with an id.
pub type LimitEntry = Entry<LimitArgs, WithId>;

/// A rule's or a rate limit's id, which only a file gives (the CLI and
/// the API are given theirs).
#[derive(Debug, Default)]
pub struct WithId {
    /// The id (required).
    pub id: Option<Spanned<u32>>,
}

impl Extras for WithId {
    const KEYS: &'static [&'static str] = &["id"];

    fn read<'de, A: MapAccess<'de>>(&mut self, _: &str, map: &mut A) -> Result<(), A::Error> {
        self.id = Some(map.next_value()?);
        Ok(())
    }
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
    /// `shared` (default) or `per-cpu` connection tables.
    pub connection_table: Option<crate::dataplane::ConnectionTable>,
    /// The path MTU to the backends (`lb config --mtu`); 0 or absent:
    /// the egress device's alone.
    pub mtu: Option<Spanned<u32>>,
    /// `[[lb.vip]]`.
    #[serde(default)]
    pub vip: Vec<Spanned<VipEntry>>,
}

/// `[[lb.vip]]`: the request of `lb vip add` and `POST /v1/vips`
/// ([`NewVip`]), with its health check and backends.
pub type VipEntry = Entry<NewVip, VipChildren>;

/// What hangs off a VIP in a file.
#[derive(Debug, Default)]
pub struct VipChildren {
    /// `[lb.vip.health]`: the options of `lb vip health`.
    pub health: Option<Spanned<HealthEntry>>,
    /// `[[lb.vip.backend]]`.
    pub backend: Vec<Spanned<BackendEntry>>,
}

impl Extras for VipChildren {
    const KEYS: &'static [&'static str] = &["health", "backend"];

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        if key == "health" {
            self.health = Some(map.next_value()?);
        } else {
            self.backend = map.next_value()?;
        }
        Ok(())
    }
}

/// `[[lb.vip.backend]]`: the fields of [`crate::api::BackendWeight`] but
/// the VIP, which is the enclosing one (a test holds the two together).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendEntry {
    /// The backend's address (required).
    pub address: Option<Spanned<String>>,
    /// 0 to 1000 (default 1); 0 drains it.
    pub weight: Option<Spanned<u64>>,
}

/// `[lb.vip.health]`: the fields of [`crate::api::requests::HealthArgs`]
/// (`lb vip health`, `PUT /v1/vips/health`) but the VIP, which is the
/// enclosing one (a test holds the two together); left out, a field takes
/// the CLI's default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthEntry {
    /// `tcp`, `http`, `ping`, `udp` or `off` (required).
    pub kind: Option<String>,
    /// The port on the backend's own address; default: the VIP's.
    pub port: Option<u16>,
    /// The HTTP path (default `/`).
    pub path: Option<String>,
    /// The HTTP statuses that mean healthy: `200` (the default), `"200,202"`
    /// or `"200-204"`.
    #[serde(default, deserialize_with = "crate::api::requests::text::scalar")]
    pub status: Option<String>,
    /// Between checks, e.g. `2s` (the default), `500ms`.
    pub interval: Option<String>,
    /// How long a check may take (default `1s`).
    pub timeout: Option<String>,
    /// Passes in a row to come back (default 2).
    pub rise: Option<u32>,
    /// Failures in a row to go out (default 3).
    pub fall: Option<u32>,
}
