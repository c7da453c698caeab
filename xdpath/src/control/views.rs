//! The filter as the CLI's `--json` output and the daemon's API show it:
//! rules with their hits, limits with their drops, the blocklist with the
//! time left. The CLI's tables are drawn from the same state.

use serde_json::{json, Value};

use super::parse::protocol_name;
use super::session::Session;
use super::state::{BlockSpec, LimitSpec, RuleSpec};
use super::ControlError;
use xdpath_core::abi;

/// A rule as `filter list --json` and `GET /v1/rules` show it.
pub fn rule_json(rule: &RuleSpec, hits: u64) -> Value {
    json!({
        "id": rule.id,
        "sources": rule.sources,
        "destination": rule.destination,
        "protocol": rule.protocol.map(protocol_name),
        "dport": rule.ports.map(|ports| ports.to_string()),
        "icmp_type": rule.icmp_type.map(|icmp_type| icmp_type.to_string()),
        "tcp_flags": rule.tcp_flags.map(|flags| flags.to_string()),
        "action": rule.action.name(),
        "interface": rule.interface,
        "monitor": rule.monitor,
        "vni": rule.vni,
        "owner": rule.owner,
        "labels": rule.labels,
        "hits": hits,
    })
}

/// A rate limit as `ratelimit list --json` and `GET /v1/ratelimits`
/// show it.
///
/// `table` says where the limit is enforced (`compile::limit_places`):
/// `address` in the address table, `general` among the 16 (where a limit
/// made for the table goes when an earlier one has its address).
pub fn limit_json(limit: &LimitSpec, drops: u64, in_table: bool) -> Value {
    let mut value = serde_json::to_value(limit).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("drops".into(), json!(drops));
        let table = if in_table { "address" } else { "general" };
        map.insert("table".into(), json!(table));
    }
    value
}

/// The seconds a blocklist entry has left at `now`; `None`: no expiry.
pub fn block_remaining(entry: &BlockSpec, now: u64) -> Option<u64> {
    entry.expires_at.map(|at| at.saturating_sub(now))
}

/// The blocklist entries still in force at `now`, as `block list --json`
/// and `GET /v1/blocklist` show them.
pub fn block_rows(list: &[BlockSpec], now: u64) -> Vec<Value> {
    list.iter()
        .filter(|entry| entry.expires_at.is_none_or(|at| at > now))
        .map(|entry| {
            json!({
                "prefix": entry.prefix,
                "expires_at": entry.expires_at,
                "remaining_seconds": block_remaining(entry, now),
                "vni": entry.vni,
            })
        })
        .collect()
}

/// Per-rule hits and per-limit drops for `xdpath stats`, when the filter
/// maps exist in this namespace.
pub fn filter_counters() -> Result<Option<Value>, ControlError> {
    let dir = crate::dataplane::shared_dir()?;
    if !dir.join(abi::map::FILTER_CONFIG).exists() {
        return Ok(None);
    }
    let session = Session::read()?;
    let mut rules = Vec::new();
    for rule in &session.state.rules {
        rules.push(json!({ "id": rule.id, "hits": session.rule_hits(rule.id)? }));
    }
    let mut limits = Vec::new();
    let drops = session.limit_drops()?;
    for (limit, drops) in session.state.rate_limits.iter().zip(drops) {
        limits.push(json!({ "id": limit.id, "drops": drops }));
    }
    session.commit()?;
    Ok(Some(json!({ "rules": rules, "rate_limits": limits })))
}
