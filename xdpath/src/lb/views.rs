//! The balancer as the CLI's `--json` output and the daemon's API show it:
//! VIPs and backends with their counters, as JSON rows. The CLI's tables
//! are drawn from the same rows.

use serde_json::{json, Value};
use xdpath_core::lb::LbCounter;

use super::compile::vip_table;
use super::session::LbSession;
use super::state::{CheckKind, Encap, HealthCheck, LbState, VipId, VipSpec};
use super::LbError;

/// The shared settings, as `lb config` shows them.
pub fn settings_json(state: &LbState) -> Value {
    let settings = &state.settings;
    json!({
        "source_v4": settings.source_v4,
        "source_v6": settings.source_v6,
        "next_hop": settings.next_hop_mac.as_deref().unwrap_or("fib"),
        "seed": settings.seed,
        "connection_table": settings.connection_table,
        "mtu": settings.mtu,
    })
}

/// `http GET /health -> 200 on :80` or `tcp :80` (`:vip` for the VIP's port).
pub fn health_text(check: &HealthCheck) -> String {
    let port = if check.port == 0 {
        "the VIP's port".to_string()
    } else {
        format!(":{}", check.port)
    };
    match check.kind {
        CheckKind::Tcp => format!("tcp to {port}"),
        CheckKind::Udp => format!("udp to {port} (not refused)"),
        CheckKind::Ping => "ping (ICMP echo)".to_string(),
        CheckKind::Http => format!(
            "http GET {} -> {} on {port}",
            check.path,
            check.codes_text()
        ),
    }
}

fn counter_json(counter: &LbCounter) -> Value {
    json!({
        "packets": counter.packets,
        "bytes": counter.bytes,
        "new_flows": counter.new_flows,
    })
}

fn flags_text(vip: &VipSpec) -> String {
    let mut flags = Vec::new();
    if vip.source_hash {
        flags.push("source-hash");
    }
    if vip.no_conntrack {
        flags.push("no-conntrack");
    }
    if flags.is_empty() {
        "-".into()
    } else {
        flags.join(",")
    }
}

/// The VIPs with their counters, as `lb vip list --json` shows them:
/// frames forwarded (`counters`), not forwarded by reason (`drops`), and
/// `active_connections`, the connection-table entries of the VIP's flows
/// (an estimate: see [`super::stats::active_connections`]).
pub fn vip_rows(session: &LbSession) -> Result<Vec<Value>, LbError> {
    let state: &LbState = &session.state;
    let active = super::stats::active_connections(session.maps(), state)?;
    let mut rows = Vec::new();
    for vip in &state.vips {
        let counter = session.vip_counter(vip.slot)?;
        rows.push(json!({
            "vip": vip.id.to_string(),
            "encap": vip.encap.name(),
            "gue_port": (vip.encap == Encap::Gue).then_some(vip.gue_port),
            "flags": flags_text(vip),
            "ring_size": vip.ring_size,
            "sample_rate": (vip.sample_rate != 0).then_some(vip.sample_rate),
            "health": vip.health.as_ref().map(health_text),
            "backends": vip.backends.len(),
            "allow": vip.allow,
            "owner": vip.owner,
            "counters": counter_json(&counter),
            "drops": super::stats::vip_drops(session.maps(), vip.slot)?,
            "active_connections": active.get(&vip.id).copied().unwrap_or(0),
        }));
    }
    Ok(rows)
}

/// The backends (of one VIP or all) with share and counters, as
/// `lb backend list --json` shows them.
pub fn backend_rows(session: &LbSession, only: Option<&VipId>) -> Result<Vec<Value>, LbError> {
    let state: &LbState = &session.state;
    let mut rows = Vec::new();
    for vip in state
        .vips
        .iter()
        .filter(|vip| only.is_none_or(|id| vip.id == *id))
    {
        // The share each backend has of the table: what its weight asks
        // for, as built.
        let table = vip_table(vip, state.settings.seed)?;
        for backend in &vip.backends {
            let slots = table.iter().filter(|slot| **slot == backend.index).count();
            let counter = session.backend_counter(backend.index)?;
            rows.push(json!({
                "vip": vip.id.to_string(),
                "backend": backend.address.to_string(),
                "weight": backend.weight,
                "state": if backend.down {
                    "down"
                } else if backend.weight == 0 {
                    "drained"
                } else {
                    "active"
                },
                "healthy": vip.health.as_ref().map(|_| !backend.down),
                // The health checker's view, which only xdpathd has: it
                // fills this in (`health_state` in its API).
                "health_state": null,
                "table_share": slots as f64 / f64::from(vip.ring_size.max(1)),
                "counters": counter_json(&counter),
            }));
        }
    }
    Ok(rows)
}
