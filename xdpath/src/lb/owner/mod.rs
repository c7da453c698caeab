//! Owners: what an external owner (an OpenStack Octavia provider driver,
//! say, one owner a load balancer) made, kept apart from the rest. An
//! owner's whole balancing state is one document ([`OwnerState`]): its
//! VIPs with their options and allowed sources, their backends and weights,
//! health checks, and rate limits (of its VIPs, or standing alone: an
//! OpenStack Neutron agent's owner is a port or floating IP, with the
//! limits of its address and no VIP). [`apply::put_owner`] makes the
//! namespace hold exactly the document for that owner, all or nothing and
//! the same document again changing nothing; [`apply::delete_owner`]
//! removes everything the owner made; [`view`] shows what is in force.
//!
//! The balancer's maps do not depend on who owns what: an owner's VIP is a
//! VIP like any other, and its Maglev table depends only on the backends'
//! addresses and weights, the table size and the seed, so every host given
//! the same document (and seed) balances alike.

pub mod apply;
pub mod journal;
pub mod limits;
pub mod rules;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::{json, Value};

use super::edit;
use super::ops::{parse_new_vip, ParsedVip};
use super::session::LbSession;
use super::state::{HealthCheck, LbState, VipId, VipSpec};
use super::LbError;
use crate::api::requests::{BackendWeight, HealthArgs, LimitArgs, NewVip, OwnerState, RuleArgs};
use crate::control::ops::limit_spec;
use crate::control::session::Session;
use crate::control::state::{FilterState, LimitKey, LimitSpec, RuleSpec};

/// One VIP of a document, parsed.
#[derive(Clone, Debug)]
pub struct DesiredVip {
    /// The VIP, its options and allow list; its owner is the document's.
    pub parsed: ParsedVip,
    /// Its backends and their weights.
    pub backends: Vec<(IpAddr, u64)>,
    /// Its health check.
    pub health: Option<HealthCheck>,
}

/// A document, parsed and checked as far as it can be without the state.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    /// The VIPs.
    pub vips: Vec<DesiredVip>,
    /// The rate limits (ids not given yet).
    pub limits: Vec<LimitSpec>,
    /// The filter rules in order (ids not given yet), each with whether
    /// it may cover management traffic (`override`).
    pub rules: Vec<(RuleSpec, bool)>,
}

/// A usage error about a document.
fn refuse(message: String) -> LbError {
    LbError::Usage(message)
}

/// Parses `document` for `owner`: every VIP, backend, health check and
/// limit as its single request would be, each backend and health check
/// naming one of the document's VIPs (a limit may name one, or none: then
/// it stands alone, e.g. by its `scope`), none twice, and none for
/// another owner.
pub fn parse_document(owner: &str, document: &OwnerState) -> Result<Desired, LbError> {
    edit::check_owner(owner)?;
    let mut vips: Vec<DesiredVip> = Vec::new();
    for request in &document.vips {
        if request.owner.as_deref().is_some_and(|named| named != owner) {
            return Err(refuse(format!(
                "VIP {} names owner {:?} in the document of {owner:?}",
                request.vip,
                request.owner.as_deref().unwrap_or_default()
            )));
        }
        let mut parsed = parse_new_vip(request)?;
        parsed.owner = Some(owner.to_string());
        if vips.iter().any(|vip| vip.parsed.id == parsed.id) {
            return Err(refuse(format!(
                "VIP {} is in the document twice",
                parsed.id
            )));
        }
        vips.push(DesiredVip {
            parsed,
            backends: Vec::new(),
            health: None,
        });
    }
    for backend in &document.backends {
        let vip = find_vip(&mut vips, &backend.vip, "a backend")?;
        let address = edit::parse_address(&backend.address)?;
        if vip.backends.iter().any(|(have, _)| *have == address) {
            return Err(refuse(format!(
                "backend {address} of VIP {} is in the document twice",
                vip.parsed.id
            )));
        }
        vip.backends.push((address, backend.weight));
    }
    for check in &document.health {
        let vip = find_vip(&mut vips, &check.vip, "a health check")?;
        if vip.health.is_some() {
            return Err(refuse(format!(
                "VIP {} has two health checks in the document",
                vip.parsed.id
            )));
        }
        vip.health = edit::health_check(check)?;
    }
    let mut limits = Vec::new();
    for limit in &document.limits {
        // A limit of the document's VIP, or one of its own (by --scope,
        // say: the buckets of one address, as Neutron's QoS limits are).
        let what = match &limit.vip {
            Some(vip) => {
                find_vip(&mut vips, vip, "a rate limit")?;
                format!("a limit of VIP {vip}")
            }
            None => "a limit".to_string(),
        };
        if limit.owner.as_deref().is_some_and(|named| named != owner) {
            return Err(refuse(format!("{what} names another owner")));
        }
        let mut spec = limit_spec(limit, 0)?;
        spec.owner = Some(owner.to_string());
        limits.push(spec);
    }
    let mut rules = Vec::new();
    for (index, request) in document.rules.iter().enumerate() {
        let mut spec = request
            .to_spec()
            .map_err(|error| refuse(format!("rule {} of the document: {error}", index + 1)))?;
        spec.owner = Some(owner.to_string());
        rules.push((spec, request.override_management));
    }
    Ok(Desired {
        vips,
        limits,
        rules,
    })
}

/// The document's VIP that `text` names.
fn find_vip<'a>(
    vips: &'a mut [DesiredVip],
    text: &str,
    what: &str,
) -> Result<&'a mut DesiredVip, LbError> {
    let id = edit::parse_vip(text)?;
    vips.iter_mut()
        .find(|vip| vip.parsed.id == id)
        .ok_or_else(|| {
            refuse(format!(
                "{what} for VIP {id}, which the document does not hold"
            ))
        })
}

/// `2000ms`.
fn millis(value: u64) -> String {
    format!("{value}ms")
}

/// A VIP as the request that makes it.
fn vip_request(vip: &VipSpec) -> NewVip {
    let mut flags = Vec::new();
    if vip.source_hash {
        flags.push("source-hash".to_string());
    }
    if vip.no_conntrack {
        flags.push("no-conntrack".to_string());
    }
    NewVip {
        vip: vip.id.to_string(),
        encap: Some(vip.encap.name().to_string()),
        gue_port: (vip.encap == super::state::Encap::Gue).then_some(vip.gue_port),
        flags,
        ring_size: Some(vip.ring_size),
        allow: vip.allow.iter().map(ToString::to_string).collect(),
        sample_rate: (vip.sample_rate != 0).then_some(vip.sample_rate),
        owner: vip.owner.clone(),
    }
}

/// A health check as the request that sets it.
fn health_request(id: &VipId, check: &HealthCheck) -> HealthArgs {
    HealthArgs {
        vip: id.to_string(),
        kind: check.kind.name().into(),
        port: check.port,
        path: check.path.clone(),
        status: check.codes_text(),
        interval: millis(check.interval_ms),
        timeout: millis(check.timeout_ms),
        rise: check.rise,
        fall: check.fall,
    }
}

/// A rate limit as the request that makes it.
fn limit_request(limit: &LimitSpec) -> LimitArgs {
    let text = |value: Option<u64>| value.map(|value| value.to_string());
    LimitArgs {
        pps: text(limit.packets_per_second),
        burst: text(limit.packets_per_second.map(|_| limit.burst_packets)),
        bps: text(limit.bytes_per_second),
        burst_bytes: text(limit.bytes_per_second.map(|_| limit.burst_bytes)),
        per: match limit.per {
            LimitKey::Src => "src",
            LimitKey::Dst => "dst",
        }
        .into(),
        aggregate_v4: Some(limit.aggregate_v4.to_string()),
        aggregate_v6: Some(limit.aggregate_v6.to_string()),
        scope: limit.scope.map(|scope| scope.to_string()),
        // A VIP's limit takes the VIP's protocol by itself.
        proto: limit
            .protocol
            .filter(|_| limit.vip.is_none())
            .map(|protocol| protocol.to_string()),
        syn: limit.syn_only,
        monitor: limit.monitor,
        vip: limit.vip.clone(),
        owner: limit.owner.clone(),
        vni: limit.vni.map(|vni| vni.to_string()),
        labels: limit.labels.clone(),
    }
}

/// A filter rule as the request that makes it.
fn rule_request(rule: &RuleSpec) -> RuleArgs {
    let sources: Vec<String> = rule.sources.iter().map(ToString::to_string).collect();
    RuleArgs {
        src: (!sources.is_empty()).then(|| sources.join(",")),
        dst: rule.destination.map(|prefix| prefix.to_string()),
        proto: rule.protocol.map(crate::control::parse::protocol_name),
        dport: rule.ports.map(|ports| ports.to_string()),
        icmp_type: rule.icmp_type.map(|icmp_type| icmp_type.to_string()),
        tcp_flags: rule.tcp_flags.map(|flags| flags.to_string()),
        action: Some(rule.action.name().to_string()),
        iface: rule.interface.clone(),
        monitor: rule.monitor,
        override_management: false,
        vni: rule.vni.map(|vni| vni.to_string()),
        labels: rule.labels.clone(),
    }
}

/// What `owner` has in these states, as the document that makes it.
pub fn document_of(lb: &LbState, filter: &FilterState, owner: &str) -> OwnerState {
    let mine = |held: &Option<String>| held.as_deref() == Some(owner);
    let vips: Vec<&VipSpec> = lb.vips.iter().filter(|vip| mine(&vip.owner)).collect();
    OwnerState {
        vips: vips.iter().map(|vip| vip_request(vip)).collect(),
        backends: vips
            .iter()
            .flat_map(|vip| {
                vip.backends.iter().map(|backend| BackendWeight {
                    vip: vip.id.to_string(),
                    address: backend.address.to_string(),
                    weight: u64::from(backend.weight),
                })
            })
            .collect(),
        health: vips
            .iter()
            .filter_map(|vip| {
                vip.health
                    .as_ref()
                    .map(|check| health_request(&vip.id, check))
            })
            .collect(),
        limits: filter
            .rate_limits
            .iter()
            .filter(|limit| mine(&limit.owner))
            .map(limit_request)
            .collect(),
        rules: filter
            .rules
            .iter()
            .filter(|rule| mine(&rule.owner))
            .map(rule_request)
            .collect(),
    }
}

/// How many VIPs, rate limits and filter rules an owner has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OwnerCounts {
    /// VIPs.
    pub vips: usize,
    /// Rate limits.
    pub limits: usize,
    /// Filter rules.
    pub rules: usize,
}

/// Every owner with how many VIPs, rate limits and rules it has.
pub fn owners(lb: &LbState, filter: &FilterState) -> BTreeMap<String, OwnerCounts> {
    let mut owners: BTreeMap<String, OwnerCounts> = BTreeMap::new();
    for owner in lb.vips.iter().filter_map(|vip| vip.owner.as_ref()) {
        owners.entry(owner.clone()).or_default().vips += 1;
    }
    for owner in filter
        .rate_limits
        .iter()
        .filter_map(|limit| limit.owner.as_ref())
    {
        owners.entry(owner.clone()).or_default().limits += 1;
    }
    for owner in filter.rules.iter().filter_map(|rule| rule.owner.as_ref()) {
        owners.entry(owner.clone()).or_default().rules += 1;
    }
    owners
}

/// The owners, as `GET /v1/owners` and `xdpath owner list --json` show
/// them.
pub fn list() -> Result<Value, LbError> {
    let lb = LbSession::read()?;
    let filter = Session::read()?;
    let rows: Vec<Value> = owners(&lb.state, &filter.state)
        .into_iter()
        .map(|(owner, counts)| {
            json!({
                "owner": owner,
                "vips": counts.vips,
                "limits": counts.limits,
                "rules": counts.rules,
            })
        })
        .collect();
    Ok(Value::Array(rows))
}

/// What is in force for `owner`: its document, its VIPs' rows (counters,
/// drops, active connections) and backends' rows (weight, state, table
/// share, counters), each VIP's live Maglev table as the kernel
/// holds it (size, digest, slots per backend), and how the kernel differs
/// from the saved state (nothing, when it enforces exactly that).
pub fn view(owner: &str) -> Result<Value, LbError> {
    edit::check_owner(owner)?;
    let lb = LbSession::read()?;
    let filter = Session::read()?;
    if !owners(&lb.state, &filter.state).contains_key(owner) {
        return Err(LbError::NoSuchOwner {
            owner: owner.to_string(),
        });
    }
    let document = document_of(&lb.state, &filter.state, owner);
    let ids: BTreeSet<String> = document.vips.iter().map(|vip| vip.vip.clone()).collect();
    let rows: Vec<Value> = super::views::vip_rows(&lb)?
        .into_iter()
        .filter(|row| row["vip"].as_str().is_some_and(|vip| ids.contains(vip)))
        .collect();
    let mut backends = Vec::new();
    for vip in lb
        .state
        .vips
        .iter()
        .filter(|vip| ids.contains(&vip.id.to_string()))
    {
        backends.extend(super::views::backend_rows(&lb, Some(&vip.id))?);
    }
    let mut tables = Vec::new();
    for vip in lb
        .state
        .vips
        .iter()
        .filter(|vip| ids.contains(&vip.id.to_string()))
    {
        let table = match lb.maps() {
            Some(maps) => super::stats::live_table(maps, vip)?,
            None => None,
        };
        tables.push(match table {
            Some(table) => super::stats::table_json(vip, &table, false),
            None => json!({ "vip": vip.id.to_string(), "size": 0, "digest": null }),
        });
    }
    let mut differences = lb.differences()?;
    differences.extend(filter.differences()?);
    Ok(json!({
        "owner": owner,
        "document": document,
        "vips": rows,
        "backends": backends,
        "tables": tables,
        "in_force": differences.is_empty(),
        "differences": differences,
    }))
}
