//! The filter changes the CLI and the daemon share: each opens the locked
//! session, changes the state, and commits (which checks everything before
//! the first map write), so a refused change changes nothing and both
//! front ends give the same results.

use super::parse::{parse_cidr, parse_duration, parse_protocol, Cidr};
use super::rulefile::management_conflict;
use super::session::Session;
use super::state::BlockSpec;
use super::state::{LimitKey, LimitSpec};
use super::{interface_index, wall_now, ControlError};
use crate::api::requests::{LimitArgs, NewBlock, PrefixQuery, RuleArgs};
use crate::text::quote;
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
pub fn add_block(request: &NewBlock) -> Result<Cidr, ControlError> {
    let prefix = parse_cidr(&request.prefix)?;
    let seconds = request.ttl.as_deref().map(parse_duration).transpose()?;
    let mut session = Session::open()?;
    let expires_at = seconds.map(|seconds| wall_now().saturating_add(seconds));
    let list = &mut session.state.blocklist;
    list.retain(|entry| entry.prefix != prefix);
    list.push(BlockSpec { prefix, expires_at });
    session.commit()?;
    Ok(prefix)
}

/// Unblocks a prefix.
pub fn del_block(request: &PrefixQuery) -> Result<Cidr, ControlError> {
    let prefix = parse_cidr(&request.prefix)?;
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

/// Hands out `count` unused ids from `next` on, wrapping below `limit`.
pub fn allocate_ids(
    next: &mut u32,
    used: &std::collections::HashSet<u32>,
    count: usize,
    limit: u32,
    what: &'static str,
) -> Result<Vec<u32>, ControlError> {
    let mut ids = Vec::with_capacity(count);
    let mut candidate = (*next).max(1);
    let mut tried = 0u32;
    while ids.len() < count {
        if tried >= limit {
            return Err(ControlError::IdsExhausted { what });
        }
        if candidate >= limit {
            candidate = 1;
        }
        if !used.contains(&candidate) {
            ids.push(candidate);
        }
        candidate += 1;
        tried += 1;
    }
    *next = candidate;
    Ok(ids)
}

/// The rate limit `ratelimit add` makes of its arguments, checked.
pub fn limit_spec(args: &LimitArgs, id: u32) -> Result<LimitSpec, ControlError> {
    let number = |name: &str, text: &Option<String>| -> Result<Option<u64>, ControlError> {
        text.as_deref()
            .map(|text| parse_number(name, text))
            .transpose()
    };
    let pps = number("--pps", &args.pps)?;
    let bps = number("--bps", &args.bps)?;
    if pps.is_none() && bps.is_none() {
        return Err(ControlError::Usage("give --pps or --bps (or both)".into()));
    }
    let aggregate = |name: &str, text: &Option<String>, default: u8| -> Result<u8, ControlError> {
        match text {
            None => Ok(default),
            Some(text) => match text.trim().parse::<u8>() {
                Ok(length) if length <= default => Ok(length),
                _ => Err(ControlError::Usage(format!(
                    "{name} {} is out of range (0-{default})",
                    quote(text)
                ))),
            },
        }
    };
    let usage = |error: crate::lb::LbError| ControlError::Usage(error.to_string());
    if let Some(owner) = &args.owner {
        crate::lb::edit::check_owner(owner).map_err(usage)?;
    }
    let vip = args
        .vip
        .as_deref()
        .map(crate::lb::edit::parse_vip)
        .transpose()
        .map_err(usage)?;
    let mut protocol = args.proto.as_deref().map(parse_protocol).transpose()?;
    if let Some(vip) = &vip {
        if args.scope.is_some() {
            return Err(ControlError::Usage(
                "--vip and --scope cannot be combined (a VIP's limit is scoped to its address)"
                    .into(),
            ));
        }
        let number = vip.protocol.number();
        if protocol.is_some_and(|given| given != number) {
            return Err(ControlError::Usage(format!(
                "--proto differs from VIP {vip}'s protocol"
            )));
        }
        protocol = Some(number);
    }
    Ok(LimitSpec {
        id,
        packets_per_second: pps,
        burst_packets: number("--burst", &args.burst)?.or(pps).unwrap_or(0),
        bytes_per_second: bps,
        burst_bytes: number("--burst-bytes", &args.burst_bytes)?
            .or(bps)
            .unwrap_or(0),
        per: match args.per.as_str() {
            "src" => LimitKey::Src,
            "dst" => LimitKey::Dst,
            other => {
                return Err(ControlError::Usage(format!(
                    "invalid --per {} (expected src or dst)",
                    quote(other)
                )))
            }
        },
        aggregate_v4: aggregate("--aggregate-v4", &args.aggregate_v4, 32)?,
        aggregate_v6: aggregate("--aggregate-v6", &args.aggregate_v6, 128)?,
        scope: args.scope.as_deref().map(parse_cidr).transpose()?,
        protocol,
        syn_only: args.syn,
        monitor: args.monitor,
        vip: vip.map(|vip| vip.to_string()),
        to: vip.map(|vip| host_prefix(vip.address)),
        owner: args.owner.clone(),
    })
}

/// The host prefix of an address (/32 or /128).
pub fn host_prefix(address: std::net::IpAddr) -> Cidr {
    match address {
        std::net::IpAddr::V4(v4) => Cidr {
            address: v4.to_ipv6_mapped().octets(),
            length: 32,
            ipv4: true,
        },
        std::net::IpAddr::V6(v6) => Cidr {
            address: v6.octets(),
            length: 128,
            ipv4: false,
        },
    }
}

fn parse_number(name: &str, text: &str) -> Result<u64, ControlError> {
    text.trim()
        .parse()
        .map_err(|_| ControlError::Usage(format!("{name} {} is not a number", quote(text))))
}
