//! The filter changes the CLI and the daemon share: each opens the locked
//! session, changes the state, and commits (which checks everything before
//! the first map write), so a refused change changes nothing and both
//! front ends give the same results.

use super::parse::{check_labels, parse_cidr, parse_duration, parse_protocol, parse_vni, Cidr};
use super::rulefile::management_conflict;
use super::session::Session;
use super::state::BlockSpec;
use super::state::{LimitKey, LimitSpec, LimitTable};
use super::{interface_index, wall_now, ControlError};
use crate::api::requests::{LimitArgs, Naming, NewBlock, PrefixQuery, RequestError, RuleArgs};
use crate::text::quote;
use xdpath_core::filter::MAX_RULES;

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
    if let Some(owner) = session
        .state
        .rules
        .iter()
        .find(|rule| rule.id == id)
        .and_then(|rule| rule.owner.clone())
    {
        return Err(ControlError::Owned {
            what: "rule",
            id,
            owner,
        });
    }
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
    let vni = block_vni(request.vni.as_deref())?;
    let mut session = Session::open()?;
    let expires_at = seconds.map(|seconds| wall_now().saturating_add(seconds));
    let list = &mut session.state.blocklist;
    list.retain(|entry| (entry.prefix, entry.vni) != (prefix, vni));
    list.push(BlockSpec {
        prefix,
        expires_at,
        vni,
    });
    session.commit()?;
    Ok(prefix)
}

/// Unblocks a prefix (of the VNI given, if any).
pub fn del_block(request: &PrefixQuery) -> Result<Cidr, ControlError> {
    let prefix = parse_cidr(&request.prefix)?;
    let vni = block_vni(request.vni.as_deref())?;
    let mut session = Session::open()?;
    let list = &mut session.state.blocklist;
    let before = list.len();
    list.retain(|entry| (entry.prefix, entry.vni) != (prefix, vni));
    if list.len() == before {
        return Err(ControlError::NoSuchBlock { prefix, vni });
    }
    session.commit()?;
    Ok(prefix)
}

/// A blocklist request's VNI, checked.
fn block_vni(text: Option<&str>) -> Result<Option<u32>, ControlError> {
    let parsed = |error: super::parse::ParseError| RequestError {
        field: Some("vni"),
        message: error.to_string(),
    };
    Ok(text
        .map(|text| parse_vni(text).map_err(parsed))
        .transpose()?)
}

/// Adds a token-bucket rate limit; returns its id.
pub fn add_limit(args: &LimitArgs) -> Result<u32, ControlError> {
    let mut session = Session::open()?;
    let state = &mut session.state;
    let used = state.rate_limits.iter().map(|limit| limit.id).collect();
    let ids = allocate_ids(&mut state.next_limit_id, &used, 1, u32::MAX, "rate limit")?;
    let id = ids.first().copied().unwrap_or(0);
    let mut spec = limit_spec(args, id)?;
    if !super::features::address_table_usable() {
        spec.table = LimitTable::General;
    }
    // A refusal names no id: the limit was not made.
    super::compile::compile_limit(&spec).map_err(|error| match error {
        super::compile::CompileError::BadLimit { why, .. } => ControlError::from(RequestError {
            field: None,
            message: why,
        }),
        other => other.into(),
    })?;
    state.rate_limits.push(spec);
    // The commit compiles the whole state first: a 17th general limit is
    // refused there (`TooManyLimits`), before any write.
    session.commit()?;
    Ok(id)
}

/// Deletes rate limit `id`.
pub fn del_limit(id: u32) -> Result<(), ControlError> {
    let mut session = Session::open()?;
    if let Some(owner) = session
        .state
        .rate_limits
        .iter()
        .find(|limit| limit.id == id)
        .and_then(|limit| limit.owner.clone())
    {
        return Err(ControlError::Owned {
            what: "rate limit",
            id,
            owner,
        });
    }
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
    Ok(check_limit(args, id, Naming::Flags)?)
}

/// The rate limit a request asks for, checked; a mistake names its field
/// in the words of `naming` (the CLI's flags, or a config file's keys).
pub fn check_limit(args: &LimitArgs, id: u32, naming: Naming) -> Result<LimitSpec, RequestError> {
    let refuse = |field: &'static str, why: String| RequestError {
        field: Some(field),
        message: format!("{} {why}", naming.name(field)),
    };
    let number = |field: &'static str, text: &Option<String>| match text.as_deref() {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| refuse(field, format!("{} is not a number", quote(text)))),
    };
    let pps = number("pps", &args.pps)?;
    let bps = number("bps", &args.bps)?;
    if pps.is_none() && bps.is_none() {
        let (pps, bps) = (naming.name("pps"), naming.name("bps"));
        return Err(RequestError {
            field: None,
            message: format!("give {pps} or {bps} (or both)"),
        });
    }
    let aggregate = |field: &'static str, text: &Option<String>, default: u8| match text {
        None => Ok(default),
        Some(text) => match text.trim().parse::<u8>() {
            Ok(length) if length <= default => Ok(length),
            _ => Err(refuse(
                field,
                format!("{} is out of range (0-{default})", quote(text)),
            )),
        },
    };
    let per = match args.per.as_str() {
        "src" => LimitKey::Src,
        "dst" => LimitKey::Dst,
        other => {
            let why = format!("{} is not src or dst", quote(other));
            return Err(refuse("per", why));
        }
    };
    let parsed = |field: &'static str, error: super::parse::ParseError| RequestError {
        field: Some(field),
        message: error.to_string(),
    };
    let protocol = args
        .proto
        .as_deref()
        .map(|text| parse_protocol(text).map_err(|error| parsed("proto", error)))
        .transpose()?;
    let (vip, protocol) = vip_scope(args, protocol, naming)?;
    let mut spec = LimitSpec {
        id,
        packets_per_second: pps,
        burst_packets: number("burst", &args.burst)?.or(pps).unwrap_or(0),
        bytes_per_second: bps,
        burst_bytes: number("burst_bytes", &args.burst_bytes)?
            .or(bps)
            .unwrap_or(0),
        per,
        aggregate_v4: aggregate("aggregate_v4", &args.aggregate_v4, 32)?,
        aggregate_v6: aggregate("aggregate_v6", &args.aggregate_v6, 128)?,
        scope: args
            .scope
            .as_deref()
            .map(|text| parse_cidr(text).map_err(|error| parsed("scope", error)))
            .transpose()?,
        protocol,
        syn_only: args.syn,
        monitor: args.monitor,
        vip: vip.map(|vip| vip.to_string()),
        to: vip.map(|vip| host_prefix(vip.address)),
        owner: args.owner.clone(),
        vni: args
            .vni
            .as_deref()
            .map(|text| parse_vni(text).map_err(|error| parsed("vni", error)))
            .transpose()?,
        labels: {
            check_labels(&args.labels).map_err(|error| parsed("labels", error))?;
            args.labels.clone()
        },
        table: LimitTable::General,
    };
    // A new limit of one address is made for the address table.
    if super::compile::of_one_address(&spec) {
        spec.table = LimitTable::Address;
    }
    Ok(spec)
}

/// A limit's VIP (`vip`: only frames to its address and protocol) and the
/// protocol it then has; the owner checked too.
fn vip_scope(
    args: &LimitArgs,
    protocol: Option<u8>,
    naming: Naming,
) -> Result<(Option<crate::lb::state::VipId>, Option<u8>), RequestError> {
    let lb_error = |field: &'static str| {
        move |error: crate::lb::LbError| RequestError {
            field: Some(field),
            message: error.to_string(),
        }
    };
    if let Some(owner) = &args.owner {
        crate::lb::edit::check_owner(owner).map_err(lb_error("owner"))?;
    }
    let Some(text) = args.vip.as_deref() else {
        return Ok((None, protocol));
    };
    let vip = crate::lb::edit::parse_vip(text).map_err(lb_error("vip"))?;
    if args.scope.is_some() {
        return Err(RequestError {
            field: Some("scope"),
            message: format!(
                "{} and {} cannot be combined (a VIP's limit is scoped to its address)",
                naming.name("vip"),
                naming.name("scope")
            ),
        });
    }
    let number = vip.protocol.number();
    if protocol.is_some_and(|given| given != number) {
        return Err(RequestError {
            field: Some("proto"),
            message: format!("{} differs from VIP {vip}'s protocol", naming.name("proto")),
        });
    }
    Ok((Some(vip), Some(number)))
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
