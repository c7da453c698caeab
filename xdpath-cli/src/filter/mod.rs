//! The `filter`, `block`, `ratelimit`, `guard` and `mgmt` commands. Values
//! arrive as text and are parsed here, so every mistake is one line
//! (`xdpath: error: ...`) and exit status 1; nothing is written unless the
//! whole new state compiles.

pub mod args;
mod render;

use std::path::Path;

use args::{BlockCommand, FilterCommand, GuardCommand, MgmtCommand, RateLimitCommand};
use render as output;
use xdpath::api::control_plane;
use xdpath::control::ops::allocate_ids;
use xdpath::control::parse::{parse_cidr, parse_port, parse_port_list};
use xdpath::control::rulefile::{management_conflict, read_rule_file};
use xdpath::control::session::Session;
use xdpath::control::state::{FragmentChoice, RuleAction, RuleSpec};
use xdpath::control::{interface_index, wall_now, ControlError};
use xdpath::text::quote;
use xdpath_core::filter::MAX_RULES;

/// An id from 1 to `max` (rules: 1 to 65535, as in the API and the config;
/// rate limits: 1 to 4294967295).
fn parse_id(text: &str, max: u32) -> Result<u32, ControlError> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|id| (1..=max).contains(id))
        .ok_or_else(|| {
            ControlError::Usage(format!(
                "invalid id {}: a whole number from 1 to {max}",
                quote(text)
            ))
        })
}

fn parse_on_off(text: &str) -> Result<bool, ControlError> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(ControlError::Usage(format!(
            "expected on or off, not {}",
            quote(other)
        ))),
    }
}

fn parse_fragments(text: &str) -> Result<FragmentChoice, ControlError> {
    match text {
        "pass" => Ok(FragmentChoice::Pass),
        "drop-later" => Ok(FragmentChoice::DropLater),
        "drop-all" => Ok(FragmentChoice::DropAll),
        other => Err(ControlError::Usage(format!(
            "invalid fragment policy {} (expected pass, drop-later or drop-all)",
            quote(other)
        ))),
    }
}

fn check_interface(rule: &RuleSpec) -> Result<(), ControlError> {
    match &rule.interface {
        Some(name) if interface_index(name).is_none() => {
            Err(ControlError::UnknownInterface { name: name.clone() })
        }
        _ => Ok(()),
    }
}

/// Runs `xdpath filter ...`.
pub fn filter(command: &FilterCommand, json: bool) -> Result<(), ControlError> {
    // Single changes go through the operations the daemon shares.
    match command {
        FilterCommand::Add(request) => {
            let id = control_plane().add_rule(request)?;
            output::print_id(id, json);
            return Ok(());
        }
        FilterCommand::Del { id } => {
            let id = parse_id(id, MAX_RULES - 1)?;
            control_plane().del_rule(id)?;
            output::print_done(&format!("deleted rule {id}"), json);
            return Ok(());
        }
        _ => {}
    }
    let mut session = if matches!(command, FilterCommand::List) {
        Session::read()?
    } else {
        Session::open()?
    };
    match command {
        FilterCommand::Add(_) | FilterCommand::Del { .. } => {}
        FilterCommand::List => list_rules(session, json)?,
        FilterCommand::Flush => {
            // Owners' rules change only with their documents.
            session.state.rules.retain(|rule| rule.owner.is_some());
            let kept = session.state.rules.len();
            session.commit()?;
            let said = match kept {
                0 => "deleted every rule".to_string(),
                kept => {
                    format!("deleted every rule but owners' ({kept}: see `xdpath lb owner list`)")
                }
            };
            output::print_done(&said, json);
        }
        FilterCommand::Default { action, monitor } => {
            set_default(session, action, *monitor, json)?;
        }
        FilterCommand::Load {
            file,
            override_management,
        } => load_rules(session, file, *override_management, json)?,
    }
    Ok(())
}

/// `xdpath filter list`: the rules with their hits.
fn list_rules(session: Session, json: bool) -> Result<(), ControlError> {
    warn_if_not_enforced(&session)?;
    let hits = session
        .state
        .rules
        .iter()
        .map(|rule| session.rule_hits(rule.id))
        .collect::<Result<Vec<_>, _>>()?;
    let state = session.state.clone();
    session.commit()?;
    output::print_rules(&state, &hits, json);
    Ok(())
}

/// `xdpath filter default ACTION`.
fn set_default(
    mut session: Session,
    action: &str,
    monitor: bool,
    json: bool,
) -> Result<(), ControlError> {
    session.state.default_action = match action {
        "drop" => RuleAction::Drop,
        "pass" => RuleAction::Pass,
        other => {
            return Err(ControlError::Usage(format!(
                "invalid action {} (expected drop or pass)",
                quote(other)
            )))
        }
    };
    session.state.default_monitor = monitor;
    session.commit()?;
    output::print_done(&format!("default action {action}"), json);
    Ok(())
}

/// `xdpath filter load FILE`: the file's rules replace every rule, with
/// new ids.
fn load_rules(
    mut session: Session,
    file: &Path,
    override_management: bool,
    json: bool,
) -> Result<(), ControlError> {
    let started = std::time::Instant::now();
    let mut rules = read_rule_file(file)?;
    if rules.len() >= MAX_RULES as usize {
        return Err(
            xdpath::control::compile::CompileError::TooManyRules { count: rules.len() }.into(),
        );
    }
    for rule in &rules {
        check_interface(rule)?;
        if !override_management {
            if let Some(what) = management_conflict(rule, &session.state.management) {
                return Err(ControlError::ManagementOverlap { what });
            }
        }
    }
    let state = &mut session.state;
    // The file replaces the operator's rules; owners' rules (from their
    // documents) stay, after the file's, with their ids.
    state.rules.retain(|rule| rule.owner.is_some());
    let owned: std::collections::HashSet<u32> = state.rules.iter().map(|rule| rule.id).collect();
    let ids = allocate_ids(
        &mut state.next_rule_id,
        &owned,
        rules.len(),
        MAX_RULES,
        "rule",
    )?;
    for (rule, id) in rules.iter_mut().zip(ids) {
        rule.id = id;
    }
    let prefixes: usize = rules.iter().map(|rule| rule.sources.len().max(1)).sum();
    let count = rules.len();
    rules.append(&mut state.rules);
    state.rules = rules;
    session.commit()?;
    output::print_loaded(count, prefixes, started.elapsed(), json);
    Ok(())
}

/// Runs `xdpath block ...`.
pub fn block(command: &BlockCommand, json: bool) -> Result<(), ControlError> {
    match command {
        BlockCommand::Add(request) => {
            let prefix = control_plane().add_block(request)?;
            output::print_done(&format!("blocked {prefix}"), json);
        }
        BlockCommand::Del(request) => {
            let prefix = control_plane().del_block(request)?;
            output::print_done(&format!("unblocked {prefix}"), json);
        }
        BlockCommand::List => {
            let session = Session::read()?;
            warn_if_not_enforced(&session)?;
            let now = wall_now();
            let list = session.state.blocklist.clone();
            session.commit()?;
            output::print_blocklist(&list, now, json);
        }
    }
    Ok(())
}

/// Runs `xdpath ratelimit ...`.
pub fn ratelimit(command: &RateLimitCommand, json: bool) -> Result<(), ControlError> {
    match command {
        RateLimitCommand::Add(request) => {
            let id = control_plane().add_limit(request)?;
            output::print_id(id, json);
            return Ok(());
        }
        RateLimitCommand::Del { id } => {
            let id = parse_id(id, u32::MAX)?;
            control_plane().del_limit(id)?;
            output::print_done(&format!("deleted rate limit {id}"), json);
            return Ok(());
        }
        RateLimitCommand::List => {}
    }
    let session = Session::read()?;
    warn_if_not_enforced(&session)?;
    match command {
        RateLimitCommand::Add(_) | RateLimitCommand::Del { .. } => {}
        RateLimitCommand::List => {
            let drops = session.limit_drops()?;
            let limits = session.state.rate_limits.clone();
            session.commit()?;
            output::print_limits(&limits, &drops, json);
        }
    }
    Ok(())
}

/// Runs `xdpath guard ...`.
pub fn guard(command: &GuardCommand, json: bool) -> Result<(), ControlError> {
    let mut session = if matches!(command, GuardCommand::Show) {
        Session::read()?
    } else {
        Session::open()?
    };
    let guards = &mut session.state.guards;
    match command {
        GuardCommand::TcpFlags { state } => guards.tcp_flags = parse_on_off(state)?,
        GuardCommand::Amplification {
            state,
            ports,
            expect,
        } => {
            let enabled = parse_on_off(state)?;
            if let Some(ports) = ports {
                guards.amplification.ports = parse_port_list(ports)?;
            }
            if !expect.is_empty() {
                guards.amplification.expect = expect
                    .iter()
                    .map(|text| parse_cidr(text))
                    .collect::<Result<_, _>>()?;
            }
            guards.amplification.enabled = enabled;
        }
        GuardCommand::Fragments { v4, v6 } => {
            if v4.is_none() && v6.is_none() {
                return Err(ControlError::Usage("give --v4 and/or --v6".into()));
            }
            if let Some(v4) = v4 {
                guards.fragments_v4 = parse_fragments(v4)?;
            }
            if let Some(v6) = v6 {
                guards.fragments_v6 = parse_fragments(v6)?;
            }
        }
        GuardCommand::SynCookies { state, ports } => {
            let enabled = parse_on_off(state)?;
            if let Some(ports) = ports {
                guards.syn_cookies.ports = parse_port_list(ports)?;
            }
            guards.syn_cookies.enabled = enabled;
        }
        GuardCommand::Show => {}
    }
    let shown = session.state.guards.clone();
    session.commit()?;
    output::print_guards(&shown, json);
    Ok(())
}

/// Runs `xdpath mgmt ...`.
pub fn mgmt(command: &MgmtCommand, json: bool) -> Result<(), ControlError> {
    let mut session = if matches!(command, MgmtCommand::List) {
        Session::read()?
    } else {
        Session::open()?
    };
    let management = &mut session.state.management;
    let target = |cidr: &Option<String>, port: &Option<String>| match (cidr, port) {
        (Some(cidr), None) => Ok((Some(parse_cidr(cidr)?), None)),
        (None, Some(port)) => Ok((None, Some(parse_port(port)?))),
        _ => Err(ControlError::Usage("give a prefix or --port N".into())),
    };
    match command {
        MgmtCommand::Add { cidr, port } => match target(cidr, port)? {
            (Some(prefix), _) if !management.prefixes.contains(&prefix) => {
                management.prefixes.push(prefix)
            }
            (_, Some(port)) if !management.ports.contains(&port) => management.ports.push(port),
            _ => {}
        },
        MgmtCommand::Del { cidr, port } => match target(cidr, port)? {
            (Some(prefix), _) => {
                if !management.prefixes.contains(&prefix) {
                    return Err(ControlError::NoSuchManagement {
                        what: prefix.to_string(),
                        kind: "prefix",
                    });
                }
                management.prefixes.retain(|known| *known != prefix);
            }
            (_, Some(port)) => {
                if !management.ports.contains(&port) {
                    return Err(ControlError::NoSuchManagement {
                        what: port.to_string(),
                        kind: "port",
                    });
                }
                management.ports.retain(|known| *known != port);
            }
            _ => {}
        },
        MgmtCommand::List => {}
    }
    let shown = session.state.management.clone();
    session.commit()?;
    output::print_management(&shown, json);
    Ok(())
}

/// Says loudly, on stderr, when what a listing shows is not what the kernel
/// enforces: the listing is the state file; the kernel's maps were read
/// back and differ.
fn warn_if_not_enforced(session: &Session) -> Result<(), ControlError> {
    crate::usage::warn_not_enforced(&session.differences()?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rule ids are 1 to 65535, as in the API and the config.
    #[test]
    fn ids_are_checked() {
        assert_eq!(parse_id(" 7 ", MAX_RULES - 1).ok(), Some(7));
        assert_eq!(parse_id("65535", MAX_RULES - 1).ok(), Some(65535));
        for bad in ["0", "65536", "-1", "x", "4294967296"] {
            let error = parse_id(bad, MAX_RULES - 1).expect_err(bad).to_string();
            assert!(error.contains("from 1 to 65535"), "{error}");
        }
        assert_eq!(parse_id("4294967295", u32::MAX).ok(), Some(u32::MAX));
    }
}
