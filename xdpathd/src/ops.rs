//! The daemon's reads and balancer changes, blocking, over the same
//! library calls and JSON shapes as the `xdpath` CLI's `--json` output.

use serde_json::{json, Value};
use xdpath::api::{
    BackendQuery, BackendWeight, ControlPlane, LbConfigArgs, Local, NewVip, VipAllow, VipQuery,
};
use xdpath::control::session::Session;
use xdpath::control::views::{block_rows, limit_json, rule_json};
use xdpath::control::{wall_now, ControlError};
use xdpath::lb::edit;
use xdpath::lb::owner::apply::OwnerChange;
use xdpath::lb::session::LbSession;
use xdpath::lb::state::LbState;
use xdpath::lb::views::{backend_rows, settings_json, vip_rows};
use xdpath::lb::LbError;
use xdpath::{dataplane, stats};

use crate::error::ApiError;

/// The interfaces xdpath is attached to here, as `xdpath --json status`.
pub fn interfaces() -> Result<Value, ApiError> {
    let names = dataplane::attached_interfaces().map_err(ControlError::from)?;
    let mut statuses = Vec::new();
    for name in names {
        let mut status = dataplane::status(&name).map_err(ControlError::from)?;
        xdpath::control::features::note_older_program(&mut status);
        statuses.push(serde_json::to_value(status).unwrap_or(Value::Null));
    }
    Ok(Value::Array(statuses))
}

/// Counters per interface, the connection table and the VIPs.
pub fn stats() -> Result<Value, ApiError> {
    let mut interfaces = Vec::new();
    for name in dataplane::attached_interfaces().map_err(ControlError::from)? {
        let counters = dataplane::interface_counters(&name).map_err(ControlError::from)?;
        interfaces.push(json!({ "interface": name, "counters": stats::rows(&counters) }));
    }
    // The user-space runtimes' interfaces are no less the data path's.
    for snapshot in xdpath::userspace::running_snapshots() {
        let counters = stats::rows(&snapshot.counters());
        interfaces.push(
            json!({ "interface": snapshot.interface, "counters": counters, "userspace": true }),
        );
    }
    let session = LbSession::read()?;
    let (hits, misses) = session.connection_counters()?;
    Ok(json!({
        "interfaces": interfaces,
        "connection_table": { "hits": hits, "misses": misses },
        "vips": vip_rows(&session)?,
    }))
}

/// The rules with their hits, as `xdpath --json filter list`.
pub fn list_rules(owner: Option<&str>) -> Result<Value, ApiError> {
    let session = Session::read()?;
    let mut rules = Vec::new();
    for rule in &session.state.rules {
        if owner.is_some_and(|owner| rule.owner.as_deref() != Some(owner)) {
            continue;
        }
        rules.push(rule_json(rule, session.rule_hits(rule.id)?));
    }
    Ok(Value::Array(rules))
}

/// The rate limits with their drops, as `xdpath --json ratelimit list`;
/// only `owner`'s, when given.
pub fn list_limits(owner: Option<&str>) -> Result<Value, ApiError> {
    let session = Session::read()?;
    let mut limits = Vec::new();
    let drops = session.limit_drops()?;
    let places = xdpath::control::compile::limit_places(&session.state.rate_limits);
    for ((limit, drops), place) in session.state.rate_limits.iter().zip(drops).zip(places) {
        if owner.is_some_and(|owner| limit.owner.as_deref() != Some(owner)) {
            continue;
        }
        let in_table = matches!(place, xdpath::control::compile::LimitPlace::Address(_));
        limits.push(limit_json(limit, drops, in_table));
    }
    Ok(Value::Array(limits))
}

/// The blocklist with the time left.
pub fn list_blocks() -> Result<Value, ApiError> {
    let session = Session::read()?;
    Ok(Value::Array(block_rows(
        &session.state.blocklist,
        wall_now(),
    )))
}

/// The VIPs with their counters.
pub fn list_vips() -> Result<Value, ApiError> {
    let session = LbSession::read()?;
    Ok(Value::Array(vip_rows(&session)?))
}

/// Adds a VIP.
pub fn add_vip(request: &NewVip) -> Result<Value, ApiError> {
    let id = Local.add_vip(request)?;
    Ok(json!({ "vip": id.to_string() }))
}

/// Deletes a VIP.
pub fn del_vip(request: &VipQuery) -> Result<Value, ApiError> {
    let id = Local.del_vip(request)?;
    Ok(json!({ "deleted": id.to_string() }))
}

/// The backends of one VIP or all.
pub fn list_backends(vip: Option<&str>) -> Result<Value, ApiError> {
    let only = vip.map(edit::parse_vip).transpose()?;
    let session = LbSession::read()?;
    if let Some(id) = &only {
        if session.state.vip(id).is_none() {
            return Err(LbError::NoSuchVip { vip: *id }.into());
        }
    }
    Ok(Value::Array(backend_rows(&session, only.as_ref())?))
}

/// Adds a backend.
pub fn add_backend(request: &BackendWeight) -> Result<Value, ApiError> {
    let (id, address) = Local.add_backend(request)?;
    Ok(json!({ "vip": id.to_string(), "backend": address.to_string(), "weight": request.weight }))
}

/// Changes a backend's weight (0 drains it).
pub fn set_weight(request: &BackendWeight) -> Result<Value, ApiError> {
    let (id, address) = Local.set_weight(request)?;
    Ok(json!({ "vip": id.to_string(), "backend": address.to_string(), "weight": request.weight }))
}

/// Removes a backend.
pub fn del_backend(request: &BackendQuery) -> Result<Value, ApiError> {
    let (id, address) = Local.del_backend(request)?;
    Ok(json!({ "vip": id.to_string(), "removed": address.to_string() }))
}

/// Creates a VIP or gives it the request's options and allowed sources.
pub fn put_vip(request: &NewVip) -> Result<Value, ApiError> {
    let (id, created) = Local.put_vip(request)?;
    Ok(json!({ "vip": id.to_string(), "created": created }))
}

/// Replaces a VIP's allowed sources; answers with the list as installed.
pub fn set_allow(request: &VipAllow) -> Result<Value, ApiError> {
    let id = Local.set_allow(request)?;
    let allow = LbSession::read()?
        .state
        .vip(&id)
        .map(|vip| vip.allow.clone())
        .unwrap_or_default();
    Ok(json!({ "vip": id.to_string(), "allow": allow }))
}

/// A VIP's live Maglev table, read from the kernel.
pub fn vip_table(vip: &str, slots: bool) -> Result<Value, ApiError> {
    let session = LbSession::read()?;
    Ok(xdpath::lb::stats::vip_table(
        &session.state,
        session.maps(),
        vip,
        slots,
    )?)
}

/// The balancer's shared settings.
pub fn lb_config() -> Result<Value, ApiError> {
    Ok(settings_json(&LbSession::read()?.state))
}

/// Changes the balancer's shared settings; answers with them all.
pub fn set_lb_config(request: &LbConfigArgs) -> Result<Value, ApiError> {
    let settings = Local.configure_lb(request)?;
    Ok(settings_json(&LbState {
        settings,
        ..LbState::default()
    }))
}

/// An owner's call's answer.
pub fn owner_change(change: &OwnerChange) -> Result<Value, ApiError> {
    Ok(json!({
        "owner": change.owner,
        "changed": change.changed,
        "vips": change.vips.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "limits": change.limits,
        "rules": change.rules,
    }))
}
