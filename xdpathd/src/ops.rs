//! The daemon's reads and balancer changes, blocking, over the same
//! library calls and JSON shapes as the `xdpath` CLI's `--json` output.

use serde_json::{json, Value};
use xdpath::control::cli_output::rule_json;
use xdpath::control::session::Session;
use xdpath::control::{wall_now, ControlError};
use xdpath::lb::cli::{backend_rows, vip_rows};
use xdpath::lb::edit::{self, VipOptions};
use xdpath::lb::session::LbSession;
use xdpath::lb::LbError;
use xdpath::{dataplane, stats};

use crate::error::ApiError;
use xdpathd::requests::{BackendQuery, BackendWeight, NewVip};

/// The interfaces xdpath is attached to here, as `xdpath --json status`.
pub fn interfaces() -> Result<Value, ApiError> {
    let names = dataplane::attached_interfaces().map_err(ControlError::from)?;
    let mut statuses = Vec::new();
    for name in names {
        let status = dataplane::status(&name).map_err(ControlError::from)?;
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
    let session = LbSession::read()?;
    let (hits, misses) = session.connection_counters()?;
    Ok(json!({
        "interfaces": interfaces,
        "connection_table": { "hits": hits, "misses": misses },
        "vips": vip_rows(&session)?,
    }))
}

/// The rules with their hits, as `xdpath --json filter list`.
pub fn list_rules() -> Result<Value, ApiError> {
    let session = Session::read()?;
    let mut rules = Vec::new();
    for rule in &session.state.rules {
        rules.push(rule_json(rule, session.rule_hits(rule.id)?));
    }
    Ok(Value::Array(rules))
}

/// The rate limits with their drops, as `xdpath --json ratelimit list`.
pub fn list_limits() -> Result<Value, ApiError> {
    let session = Session::read()?;
    let mut limits = Vec::new();
    for (index, limit) in session.state.rate_limits.iter().enumerate() {
        let drops = session.limit_drops(index as u32)?;
        limits.push(xdpath::control::cli_output::limit_json(limit, drops));
    }
    Ok(Value::Array(limits))
}

/// The blocklist with the time left.
pub fn list_blocks() -> Result<Value, ApiError> {
    let session = Session::read()?;
    let now = wall_now();
    let entries = session
        .state
        .blocklist
        .iter()
        .filter(|entry| entry.expires_at.is_none_or(|at| at > now))
        .map(|entry| {
            json!({
                "prefix": entry.prefix,
                "expires_at": entry.expires_at,
                "remaining_seconds": entry.expires_at.map(|at| at.saturating_sub(now)),
            })
        })
        .collect();
    Ok(Value::Array(entries))
}

/// The VIPs with their counters.
pub fn list_vips() -> Result<Value, ApiError> {
    let session = LbSession::read()?;
    Ok(Value::Array(vip_rows(&session)?))
}

/// Adds a VIP.
pub fn add_vip(request: &NewVip) -> Result<Value, ApiError> {
    let id = edit::parse_vip(&request.vip)?;
    let encap = request
        .encap()
        .map_err(|message| ApiError::bad_request("invalid_encap", message))?;
    let mut options = VipOptions {
        encap,
        gue_port: request.gue_port,
        source_hash: false,
        no_conntrack: false,
        ring_size: request.ring_size,
    };
    edit::parse_flags(&request.flags.join(","), &mut options)?;
    let mut session = LbSession::open()?;
    edit::add_vip(&mut session.state, id, options)?;
    session.commit()?;
    Ok(json!({ "vip": id.to_string() }))
}

/// Deletes a VIP.
pub fn del_vip(vip: &str) -> Result<Value, ApiError> {
    let id = edit::parse_vip(vip)?;
    let mut session = LbSession::open()?;
    edit::del_vip(&mut session.state, &id)?;
    session.commit()?;
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
    let id = edit::parse_vip(&request.vip)?;
    let address = edit::parse_address(&request.address)?;
    let mut session = LbSession::open()?;
    edit::add_backend(&mut session.state, &id, address, request.weight)?;
    session.commit()?;
    Ok(json!({ "vip": id.to_string(), "backend": address.to_string(), "weight": request.weight }))
}

/// Changes a backend's weight (0 drains it).
pub fn set_weight(request: &BackendWeight) -> Result<Value, ApiError> {
    let id = edit::parse_vip(&request.vip)?;
    let address = edit::parse_address(&request.address)?;
    let mut session = LbSession::open()?;
    edit::set_weight(&mut session.state, &id, address, request.weight)?;
    session.commit()?;
    Ok(json!({ "vip": id.to_string(), "backend": address.to_string(), "weight": request.weight }))
}

/// Removes a backend.
pub fn del_backend(request: &BackendQuery) -> Result<Value, ApiError> {
    let id = edit::parse_vip(&request.vip)?;
    let address = edit::parse_address(&request.address)?;
    let mut session = LbSession::open()?;
    edit::del_backend(&mut session.state, &id, address)?;
    session.commit()?;
    Ok(json!({ "vip": id.to_string(), "removed": address.to_string() }))
}
