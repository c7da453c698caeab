//! An owner's filter rules. They stay together in the rule list, in the
//! document's order (rule order decides between the rules one prefix's
//! chain holds, so an owner's "allow these, then drop the rest" keeps its
//! meaning); a rule the owner already had, equal but for its id, keeps
//! its id and with it its hit counter (so does one whose labels alone
//! change); new rules get fresh ids. Rules
//! already exactly as the document says are not touched, so the same
//! document again writes nothing.

use crate::control::interface_index;
use crate::control::ops::allocate_ids;
use crate::control::rulefile::management_conflict;
use crate::control::state::{FilterState, RuleSpec};
use crate::control::ControlError;
use crate::lb::LbError;
use xdpath_core::filter::MAX_RULES;

/// Whether two rules are the same but for their ids.
fn same(have: &RuleSpec, wanted: &RuleSpec) -> bool {
    RuleSpec {
        id: have.id,
        ..wanted.clone()
    } == *have
}

/// Whether two rules match and act alike (they may differ in their ids
/// and labels): the wanted rule takes the id, and so the hit counter, of
/// the rule it has.
fn alike(have: &RuleSpec, wanted: &RuleSpec) -> bool {
    RuleSpec {
        id: have.id,
        labels: have.labels.clone(),
        ..wanted.clone()
    } == *have
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
    let had: Vec<RuleSpec> = state
        .rules
        .iter()
        .filter(|rule| mine(rule))
        .cloned()
        .collect();
    if had.len() == wanted.len()
        && had
            .iter()
            .zip(wanted)
            .all(|(have, (want, _))| same(have, want))
    {
        return Ok(());
    }
    let mut placed: Vec<RuleSpec> = Vec::with_capacity(wanted.len());
    let mut fresh: Vec<usize> = Vec::new();
    for (index, (want, override_management)) in wanted.iter().enumerate() {
        let kept = had
            .iter()
            .find(|have| alike(have, want) && !placed.iter().any(|rule| rule.id == have.id));
        if kept.is_none() {
            check_new(state, want, *override_management)?;
            fresh.push(index);
        }
        placed.push(RuleSpec {
            id: kept.map_or(0, |have| have.id),
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
