//! The `lb` commands: VIPs, backends, settings and counters. Every change
//! goes to the namespace's control plane ([`xdpath::api::control_plane`]:
//! its daemon, or this process) and is checked whole before the first map
//! write; a refused one prints one line (`xdpath: error: ...`), exits 1
//! and changes nothing.

pub mod args;
pub mod owner;
mod render;

use args::{BackendCommand, LbCommand, VipCommand};
use render::{done, print_backends, print_json, print_settings, print_table, print_vips};
use serde_json::{json, Value};
use xdpath::api::{control_plane, BackendWeight};
use xdpath::lb::edit;
use xdpath::lb::ops::forwarding_warnings;
use xdpath::lb::session::LbSession;
use xdpath::lb::views::{backend_rows, health_text, settings_json, vip_rows};
use xdpath::lb::LbError;

/// Runs an `lb` command. A change is confirmed only once it is installed.
pub fn run(command: &LbCommand, json: bool) -> Result<(), LbError> {
    if let LbCommand::Config(request) = command {
        return config(request, json);
    }
    if let LbCommand::Owner { command } = command {
        return owner::run(command, json);
    }
    if let Some(message) = change(command)? {
        done(&message, json);
        if let Ok(session) = LbSession::read() {
            warn(&forwarding_warnings(&session.state));
        }
        return Ok(());
    }
    if let LbCommand::Flush = command {
        return flush(json);
    }
    // The listings only read: a kernel that differs from the state is
    // said so on stderr, never installed behind the operator's back (that
    // would hide the divergence, and zero the reinstalled VIPs' counters).
    let session = LbSession::read()?;
    crate::usage::warn_not_enforced(&session.differences()?);
    match command {
        LbCommand::Vip { command } => vip(&session, command, json)?,
        LbCommand::Backend { command } => backend_list(&session, command, json)?,
        LbCommand::Config(_) | LbCommand::Owner { .. } | LbCommand::Flush => {}
        LbCommand::Stats => {
            let (hits, misses) = session.connection_counters()?;
            let vips = vip_rows(&session)?;
            if json {
                print_json(&json!({
                    "connection_table": { "hits": hits, "misses": misses },
                    "vips": vips,
                }));
            } else {
                println!("connection table: {hits} hits, {misses} misses");
                print_vips(&vips);
            }
        }
    }
    warn(&forwarding_warnings(&session.state));
    Ok(())
}

/// `lb flush`: removes every VIP but owners' (theirs change only with
/// their documents).
fn flush(json: bool) -> Result<(), LbError> {
    let mut session = LbSession::open()?;
    session.state.vips.retain(|vip| vip.owner.is_some());
    let message = match session.state.vips.len() {
        0 => "removed every VIP".to_string(),
        kept => format!("removed every VIP but owners' ({kept}: see `xdpath lb owner list`)"),
    };
    let warnings = forwarding_warnings(&session.state);
    session.commit()?;
    done(&message, json);
    warn(&warnings);
    Ok(())
}

/// `lb config`: shows the settings, after changing those given (through
/// the control plane).
fn config(request: &xdpath::api::LbConfigArgs, json: bool) -> Result<(), LbError> {
    let changes = request.source_v4.is_some()
        || request.source_v6.is_some()
        || request.next_hop.is_some()
        || request.seed.is_some()
        || request.connection_table.is_some()
        || request.mtu.is_some();
    let mut state = LbSession::read()?.state;
    if changes {
        state.settings = control_plane().configure_lb(request)?;
    }
    print_settings(&settings_json(&state), json);
    if changes {
        warn(&forwarding_warnings(&state));
    }
    Ok(())
}

fn warn(warnings: &[String]) {
    for warning in warnings {
        eprintln!("xdpath: warning: {warning}");
    }
}

/// The changes with a request type of their own, carried out by the
/// namespace's control plane; `None` for the rest, which run here.
fn change(command: &LbCommand) -> Result<Option<String>, LbError> {
    let message = match command {
        LbCommand::Vip {
            command: VipCommand::Add(request),
        } => format!("added VIP {}", control_plane().add_vip(request)?),
        LbCommand::Vip {
            command: VipCommand::Del(request),
        } => format!("deleted VIP {}", control_plane().del_vip(request)?),
        LbCommand::Vip {
            command: VipCommand::Set(request),
        } => match control_plane().put_vip(request)? {
            (id, true) => format!("added VIP {id}"),
            (id, false) => format!("VIP {id} is as asked"),
        },
        LbCommand::Vip {
            command: VipCommand::Allow(request),
        } => {
            let id = control_plane().set_allow(request)?;
            match request.allow.len() {
                0 => format!("VIP {id}: every source may reach it"),
                count => format!("VIP {id}: {count} allowed source prefixes; others are dropped"),
            }
        }
        LbCommand::Vip {
            command: VipCommand::Health(request),
        } => health_message(request)?,

        LbCommand::Backend { command } => match command {
            BackendCommand::Add(request) => {
                let (id, address) = control_plane().add_backend(request)?;
                format!("added backend {address} to {id}")
            }
            BackendCommand::Del(request) => {
                let (id, address) = control_plane().del_backend(request)?;
                format!("removed backend {address} from {id}")
            }
            BackendCommand::SetWeight {
                vip,
                address,
                weight,
            } => {
                let request = BackendWeight {
                    vip: vip.clone(),
                    address: address.clone(),
                    weight: *weight,
                };
                let (id, address) = control_plane().set_weight(&request)?;
                format!("backend {address} of {id} now has weight {weight}")
            }
            BackendCommand::List { .. } => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some(message))
}

/// Runs `vip list` or `vip table` (the changes ran through the control
/// plane).
fn vip(session: &LbSession, command: &VipCommand, json: bool) -> Result<(), LbError> {
    match command {
        VipCommand::Add(_)
        | VipCommand::Del(_)
        | VipCommand::Set(_)
        | VipCommand::Allow(_)
        | VipCommand::Health(_) => {}
        VipCommand::Table { vip, slots } => {
            let table = xdpath::lb::stats::vip_table(&session.state, session.maps(), vip, *slots)?;
            print_table(&table, json);
        }
        VipCommand::List => {
            let rows = vip_rows(session)?;
            if json {
                print_json(&Value::Array(rows));
            } else {
                print_vips(&rows);
            }
        }
    }
    Ok(())
}

/// Sets a health check through the control plane; the confirmation.
fn health_message(request: &xdpath::api::HealthArgs) -> Result<String, LbError> {
    let check = edit::health_check(request)?;
    let (id, _) = control_plane().set_health(request)?;
    Ok(match &check {
        Some(check) => format!(
            "VIP {id}: {} checks every {} ms (rise {}, fall {}); xdpathd runs them",
            health_text(check),
            check.interval_ms,
            check.rise,
            check.fall
        ),
        None => format!("VIP {id}: no health checks"),
    })
}

/// Runs `backend list`.
fn backend_list(session: &LbSession, command: &BackendCommand, json: bool) -> Result<(), LbError> {
    let BackendCommand::List { vip } = command else {
        return Ok(());
    };
    let only = vip.as_deref().map(edit::parse_vip).transpose()?;
    if let Some(id) = &only {
        if session.state.vip(id).is_none() {
            return Err(LbError::NoSuchVip { vip: *id });
        }
    }
    let rows = backend_rows(session, only.as_ref())?;
    if json {
        print_json(&Value::Array(rows));
    } else {
        print_backends(&rows);
    }
    Ok(())
}
