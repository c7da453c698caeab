//! An owner's filter rules. They stay together in the rule list, in the
//! document's order (rule order decides between the rules one prefix's
//! chain holds, so an owner's "allow these, then drop the rest" keeps its
//! meaning); a rule the owner already had, equal but for its id, keeps
//! its id and with it its hit counter (so does one whose labels alone
//! change); new rules get fresh ids. Rules
//! already exactly as the document says are not touched, so the same
//! document again writes nothing.

use std::collections::{HashMap, VecDeque};

use crate::control::interface_index;
use crate::control::ops::allocate_ids;
use crate::control::rulefile::management_conflict;
use crate::control::state::{FilterState, RuleSpec};
use crate::control::ControlError;
use crate::lb::LbError;
use xdpath_core::filter::MAX_RULES;

/// A rule but for its id and labels, borrowed: two rules with equal keys
/// match and act alike (they may differ in their ids and labels), and the
/// wanted rule takes the id, and so the hit counter, of the rule it has.
/// A key, not a clone of the rule with its id and labels blanked: a
/// document of 32,000 rules compared each wanted rule with every rule the
/// owner had, cloning both, and took 65 s under the state lock.
#[derive(PartialEq, Eq, Hash)]
struct AlikeKey<'a> {
    sources: &'a [crate::control::parse::Cidr],
    destination: &'a Option<crate::control::parse::Cidr>,
    protocol: Option<u8>,
    ports: Option<crate::control::parse::PortRange>,
    icmp_type: Option<crate::control::parse::IcmpTypeSpec>,
    tcp_flags: Option<crate::control::parse::TcpFlagsSpec>,
    action: crate::control::state::RuleAction,
    interface: Option<&'a str>,
    monitor: bool,
    vni: Option<u32>,
    owner: Option<&'a str>,
}

fn alike_key(rule: &RuleSpec) -> AlikeKey<'_> {
    // Every field named: a field added to `RuleSpec` must be placed here
    // (compared) or next to `id` and `labels` (ignored).
    let RuleSpec {
        id: _,
        labels: _,
        sources,
        destination,
        protocol,
        ports,
        icmp_type,
        tcp_flags,
        action,
        interface,
        monitor,
        vni,
        owner,
    } = rule;
    AlikeKey {
        sources,
        destination,
        protocol: *protocol,
        ports: *ports,
        icmp_type: *icmp_type,
        tcp_flags: *tcp_flags,
        action: *action,
        interface: interface.as_deref(),
        monitor: *monitor,
        vni: *vni,
        owner: owner.as_deref(),
    }
}

/// Whether two rules are the same but for their ids.
fn same(have: &RuleSpec, wanted: &RuleSpec) -> bool {
    have.labels == wanted.labels && alike_key(have) == alike_key(wanted)
}

/// Gives `owner` exactly the rules `wanted` (each with whether it may
/// cover management traffic), in that order. A new rule on an interface
/// that does not exist, or covering management traffic without its
/// override, is refused, as `POST /v1/rules` refuses it.
pub fn edit_rules(
    state: &mut FilterState,
    owner: &str,
    wanted: &[(RuleSpec, bool)],
) -> Result<(), LbError> {
    let mine = |rule: &RuleSpec| rule.owner.as_deref() == Some(owner);
    let had: Vec<&RuleSpec> = state.rules.iter().filter(|rule| mine(rule)).collect();
    if had.len() == wanted.len()
        && had
            .iter()
            .zip(wanted)
            .all(|(have, (want, _))| same(have, want))
    {
        return Ok(());
    }
    // The ids of the rules the owner has, by key, in their order: a wanted
    // rule takes the first of its key not taken yet.
    let mut by_key: HashMap<AlikeKey<'_>, VecDeque<u32>> = HashMap::with_capacity(had.len());
    for have in &had {
        by_key
            .entry(alike_key(have))
            .or_default()
            .push_back(have.id);
    }
    let mut placed: Vec<RuleSpec> = Vec::with_capacity(wanted.len());
    let mut fresh: Vec<usize> = Vec::new();
    for (index, (want, override_management)) in wanted.iter().enumerate() {
        let kept = by_key
            .get_mut(&alike_key(want))
            .and_then(VecDeque::pop_front);
        if kept.is_none() {
            check_new(state, want, *override_management)?;
            fresh.push(index);
        }
        placed.push(RuleSpec {
            id: kept.unwrap_or(0),
            ..want.clone()
        });
    }
    state.rules.retain(|rule| !mine(rule));
    let mut used: std::collections::HashSet<u32> = state.rules.iter().map(|rule| rule.id).collect();
    used.extend(placed.iter().map(|rule| rule.id).filter(|id| *id != 0));
    let ids = allocate_ids(
        &mut state.next_rule_id,
        &used,
        fresh.len(),
        MAX_RULES,
        "rule",
    )?;
    for (index, id) in fresh.into_iter().zip(ids) {
        if let Some(rule) = placed.get_mut(index) {
            rule.id = id;
        }
    }
    state.rules.extend(placed);
    Ok(())
}

/// The checks `POST /v1/rules` makes of a new rule.
fn check_new(
    state: &FilterState,
    rule: &RuleSpec,
    override_management: bool,
) -> Result<(), LbError> {
    if let Some(name) = &rule.interface {
        if interface_index(name).is_none() {
            return Err(ControlError::UnknownInterface { name: name.clone() }.into());
        }
    }
    if !override_management {
        if let Some(what) = management_conflict(rule, &state.management) {
            return Err(ControlError::ManagementOverlap { what }.into());
        }
    }
    Ok(())
}
