//! The API's request types: JSON bodies and query strings as the handlers
//! receive them (unknown fields refused), and the checks that need no
//! state. A library of their own so the fuzz targets (`fuzz/`) take them
//! apart exactly as the daemon does.

use serde::Deserialize;
use xdpath::control::commands::LimitArgs;
use xdpath::control::rulefile::RuleArgs;
use xdpath::lb::state::Encap;
use xdpath::observe::top::{Rank, TalkerKind};

/// `GET /v1/top` query: which lists, ranked how, how long.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopQuery {
    /// `sources`, `destinations` or `flows` (default: all three).
    pub kind: Option<String>,
    /// `packets` (default) or `bytes`.
    pub by: Option<String>,
    /// Entries per list, 1 to 1000 (default 10).
    pub limit: Option<usize>,
}

/// What a [`TopQuery`] asks for, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopChoice {
    /// The lists.
    pub kinds: Vec<TalkerKind>,
    /// The ranking.
    pub by: Rank,
    /// Entries per list.
    pub limit: usize,
}

impl TopQuery {
    /// The lists, ranking and length asked for; the message of an
    /// `invalid_query` error otherwise.
    pub fn choice(&self) -> Result<TopChoice, String> {
        let kinds = match self.kind.as_deref() {
            None => TalkerKind::ALL.to_vec(),
            Some("sources") => vec![TalkerKind::Sources],
            Some("destinations") => vec![TalkerKind::Destinations],
            Some("flows") => vec![TalkerKind::Flows],
            Some(other) => return Err(format!("kind {other:?}: sources, destinations or flows")),
        };
        let by = match self.by.as_deref() {
            None | Some("packets") => Rank::Packets,
            Some("bytes") => Rank::Bytes,
            Some(other) => return Err(format!("by {other:?}: packets or bytes")),
        };
        let limit = self.limit.unwrap_or(10);
        if !(1..=1000).contains(&limit) {
            return Err(format!("limit {limit}: from 1 to 1000"));
        }
        Ok(TopChoice { kinds, by, limit })
    }
}

/// A new rule: the fields of `xdpath filter add`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    /// Source prefix.
    pub src: Option<String>,
    /// Destination prefix.
    pub dst: Option<String>,
    /// Protocol.
    pub proto: Option<String>,
    /// Destination port or range.
    pub dport: Option<String>,
    /// TCP flags.
    pub tcp_flags: Option<String>,
    /// drop or pass.
    pub action: String,
    /// Only on this interface.
    pub iface: Option<String>,
    /// Count without dropping.
    #[serde(default)]
    pub monitor: bool,
    /// Install even over management traffic.
    #[serde(default, rename = "override")]
    pub override_management: bool,
}

impl NewRule {
    /// The arguments `filter add` would have.
    pub fn rule_args(&self) -> RuleArgs {
        RuleArgs {
            src: self.src.clone(),
            dst: self.dst.clone(),
            proto: self.proto.clone(),
            dport: self.dport.clone(),
            tcp_flags: self.tcp_flags.clone(),
            action: Some(self.action.clone()),
            iface: self.iface.clone(),
            monitor: self.monitor,
            override_management: self.override_management,
        }
    }
}

/// A new rate limit: the options of `xdpath ratelimit add`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLimit {
    /// Packets per second.
    pub pps: Option<String>,
    /// Bucket size in packets.
    pub burst: Option<String>,
    /// Bytes per second.
    pub bps: Option<String>,
    /// Bucket size in bytes.
    pub burst_bytes: Option<String>,
    /// `src` (default) or `dst`.
    pub per: Option<String>,
    /// IPv4 aggregation length.
    pub aggregate_v4: Option<String>,
    /// IPv6 aggregation length.
    pub aggregate_v6: Option<String>,
    /// Only addresses inside this prefix.
    pub scope: Option<String>,
    /// Only this protocol.
    pub proto: Option<String>,
    /// Only TCP SYNs.
    #[serde(default)]
    pub syn: bool,
    /// Count without dropping.
    #[serde(default)]
    pub monitor: bool,
}

impl NewLimit {
    /// The arguments `ratelimit add` would have.
    pub fn limit_args(&self) -> LimitArgs {
        LimitArgs {
            pps: self.pps.clone(),
            burst: self.burst.clone(),
            bps: self.bps.clone(),
            burst_bytes: self.burst_bytes.clone(),
            per: self.per.clone().unwrap_or_else(|| "src".into()),
            aggregate_v4: self.aggregate_v4.clone(),
            aggregate_v6: self.aggregate_v6.clone(),
            scope: self.scope.clone(),
            proto: self.proto.clone(),
            syn: self.syn,
            monitor: self.monitor,
        }
    }
}

/// A blocklist entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBlock {
    /// The prefix.
    pub prefix: String,
    /// How long, e.g. `10m`; none: until removed.
    pub ttl: Option<String>,
}

/// `?prefix=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixQuery {
    /// The prefix.
    pub prefix: String,
}

/// A new VIP: the options of `xdpath lb vip add`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVip {
    /// `ADDRESS:PORT/tcp|udp`.
    pub vip: String,
    /// `ipip` (default) or `gue`.
    #[serde(default)]
    pub encap: Option<String>,
    /// With `gue`.
    #[serde(default)]
    pub gue_port: Option<u16>,
    /// `source-hash`, `no-conntrack`.
    #[serde(default)]
    pub flags: Vec<String>,
    /// A prime from 7 to 65537.
    #[serde(default)]
    pub ring_size: Option<u32>,
}

impl NewVip {
    /// The encapsulation asked for; the message of an `invalid_encap`
    /// error otherwise.
    pub fn encap(&self) -> Result<Encap, String> {
        match self.encap.as_deref() {
            None | Some("ipip") => Ok(Encap::Ipip),
            Some("gue") => Ok(Encap::Gue),
            Some(other) => Err(format!("encap \"{other}\" is not ipip or gue")),
        }
    }
}

/// `?vip=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipQuery {
    /// The VIP.
    pub vip: String,
}

/// `?vip=` (optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendsQuery {
    /// The VIP.
    pub vip: Option<String>,
}

/// A backend and its weight.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendWeight {
    /// The VIP.
    pub vip: String,
    /// The backend's address.
    pub address: String,
    /// 0 to 1000 (default 1).
    #[serde(default = "one")]
    pub weight: u64,
}

fn one() -> u64 {
    1
}

/// `?vip=&address=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendQuery {
    /// The VIP.
    pub vip: String,
    /// The backend's address.
    pub address: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_queries_are_checked() {
        let query = |text: &str| serde_urlencoded::from_str::<TopQuery>(text);
        let all = query("").expect("empty").choice().expect("defaults");
        assert_eq!((all.kinds.len(), all.by, all.limit), (3, Rank::Packets, 10));
        let flows = query("kind=flows&by=bytes&limit=1000").expect("query");
        assert_eq!(
            flows.choice().expect("valid").kinds,
            vec![TalkerKind::Flows]
        );
        assert!(query("limit=0").expect("query").choice().is_err());
        assert!(query("kind=ports").expect("query").choice().is_err());
        assert!(query("limit=-1").is_err());
        assert!(query("other=1").is_err(), "unknown fields are refused");
    }

    #[test]
    fn a_rule_body_becomes_filter_add_arguments() {
        let rule: NewRule =
            serde_json::from_str(r#"{"src":"192.0.2.0/24","action":"drop","override":true}"#)
                .expect("valid");
        let args = rule.rule_args();
        assert_eq!(args.action.as_deref(), Some("drop"));
        assert!(args.override_management);
        assert!(serde_json::from_str::<NewRule>(r#"{"action":"drop","port":1}"#).is_err());
    }
}
