//! The filter changes the CLI and the daemon share: each opens the locked
//! session, changes the state, and commits (which checks everything before
//! the first map write), so a refused change changes nothing and both
//! front ends give the same results.

use super::cli::{allocate_ids, limit_spec};
use super::commands::LimitArgs;
use super::parse::{parse_cidr, parse_duration, Cidr};
use super::rulefile::{management_conflict, RuleArgs};
use super::session::Session;
use super::state::BlockSpec;
use super::{interface_index, wall_now, ControlError};
use xdpath_core::filter::{MAX_RATE_LIMITS, MAX_RULES};

/// Adds a rule; returns its id.
pub fn add_rule(args: &RuleArgs) -> Result<u32, ControlError> {
    let mut session = Session::open()?;
    let mut rule = args.to_spec()?;
    if let Some(name) = &rule.interface {
        if interface_index(name).is_none() {
            return Err(ControlError::UnknownInterface { name: name.clone() });
        }
    }
    if !args.override_management {
        if let Some(what) = management_conflict(&rule, &session.state.management) {
            return Err(ControlError::ManagementOverlap { what });
        }
    }
    let state = &mut session.state;
    let used = state.rules.iter().map(|rule| rule.id).collect();
    let ids = allocate_ids(&mut state.next_rule_id, &used, 1, MAX_RULES, "rule")?;
    rule.id = ids.first().copied().unwrap_or(0);
    let id = rule.id;
    state.rules.push(rule);
    session.commit()?;
    Ok(id)
}

/// Deletes rule `id`.
pub fn del_rule(id: u32) -> Result<(), ControlError> {
    let mut session = Session::open()?;
    let before = session.state.rules.len();
    session.state.rules.retain(|rule| rule.id != id);
    if session.state.rules.len() == before {
        return Err(ControlError::NoSuchRule { id });
    }
    session.commit()
}

/// Blocks a prefix, for `ttl` (e.g. `1h`) or for good; replaces an entry
/// for the same prefix. Returns the prefix as parsed.
pub fn add_block(cidr: &str, ttl: Option<&str>) -> Result<Cidr, ControlError> {
    let prefix = parse_cidr(cidr)?;
    let seconds = ttl.map(parse_duration).transpose()?;
    let mut session = Session::open()?;
    let expires_at = seconds.map(|seconds| wall_now().saturating_add(seconds));
    let list = &mut session.state.blocklist;
    list.retain(|entry| entry.prefix != prefix);
    list.push(BlockSpec { prefix, expires_at });
    session.commit()?;
    Ok(prefix)
}

/// Unblocks a prefix.
pub fn del_block(cidr: &str) -> Result<Cidr, ControlError> {
    let prefix = parse_cidr(cidr)?;
    let mut session = Session::open()?;
    let list = &mut session.state.blocklist;
    let before = list.len();
    list.retain(|entry| entry.prefix != prefix);
    if list.len() == before {
        return Err(ControlError::NoSuchBlock { prefix });
    }
    session.commit()?;
    Ok(prefix)
}

/// Adds a token-bucket rate limit; returns its id.
pub fn add_limit(args: &LimitArgs) -> Result<u32, ControlError> {
    let mut session = Session::open()?;
    let state = &mut session.state;
    let used = state.rate_limits.iter().map(|limit| limit.id).collect();
    let ids = allocate_ids(&mut state.next_limit_id, &used, 1, u32::MAX, "rate limit")?;
    let id = ids.first().copied().unwrap_or(0);
    let spec = limit_spec(args, id)?;
    super::compile::compile_limit(&spec)?;
    if state.rate_limits.len() >= MAX_RATE_LIMITS as usize {
        return Err(super::compile::CompileError::TooManyLimits {
            count: state.rate_limits.len() + 1,
        }
        .into());
    }
    state.rate_limits.push(spec);
    session.commit()?;
    Ok(id)
}

/// Deletes rate limit `id`.
pub fn del_limit(id: u32) -> Result<(), ControlError> {
    let mut session = Session::open()?;
    let limits = &mut session.state.rate_limits;
    let before = limits.len();
    limits.retain(|limit| limit.id != id);
    if limits.len() == before {
        return Err(ControlError::NoSuchLimit { id });
    }
    session.commit()
}
