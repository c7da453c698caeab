//! What an apply (and `xdpath plan`) refuses before anything is written:
//! a refusal found half-way would be undone, the config's earlier steps
//! having been in force meanwhile.

use super::edit_lb::edit_lb;
use super::merge::merge_filter;
use super::plan::{Action, Plan};
use super::{ConfigError, DesiredConfig, Mode};
use crate::control::session::Session;
use crate::control::state::FilterState;
use crate::control::wall_now;
use crate::lb::session::LbSession;

/// What [`apply`] refuses before it writes anything, `changes` being its
/// plan: a config rule with an owner's rule's id; a balancer the config
/// would leave invalid, such as a config VIP an owner holds or settings
/// without the outer source an owner's backends need (found by editing
/// and checking a copy of the balancer's state: they were found only
/// half-way through the apply, then undone); an entry an older program
/// would not enforce. `xdpath plan` refuses the same.
pub fn refusals(desired: &DesiredConfig, changes: &Plan) -> Result<(), ConfigError> {
    let filter_now = (!changes.filter.is_empty())
        .then(Session::read)
        .transpose()?;
    if let Some(session) = &filter_now {
        owned_rule_clash(&session.state, &desired.filter)?;
    }
    if !changes.lb.is_empty() {
        let mut session = LbSession::read()?;
        edit_lb(&mut session.state, &desired.lb)?;
        session.check()?;
    }
    refuse_offload(desired, changes)?;
    refuse_unenforced(
        desired,
        filter_now.as_ref().map(|session| &session.state),
        changes,
    )
}

/// Refuses, before anything is written, a config whose new entries a
/// program loaded by an older build and attached in the namespace would
/// not enforce (`control::features`). The sessions refuse them too, but
/// only after the interfaces have changed: then the apply would be undone
/// rather than refused.
fn refuse_unenforced(
    desired: &DesiredConfig,
    filter_now: Option<&FilterState>,
    changes: &Plan,
) -> Result<(), ConfigError> {
    let lb = (!changes.lb.is_empty()).then(LbSession::read).transpose()?;
    crate::control::features::refuse_new(|| {
        let filter_needs = filter_now.map_or(0, |now| {
            let after = merge_filter(
                now,
                &desired.filter,
                wall_now(),
                crate::control::features::address_table_usable(),
            );
            crate::control::features::filter_change_needs(now, &after)
        });
        let lb_needs = lb.as_ref().map_or(0, |session| {
            let mut after = session.state.clone();
            // An edit that fails is the apply's own error, reported there.
            edit_lb(&mut after, &desired.lb).map_or(0, |()| {
                crate::control::features::lb_change_needs(&session.state, &after)
            })
        });
        filter_needs | lb_needs
    })?;
    Ok(())
}

/// Refuses an interface to attach in offload mode, which cannot succeed:
/// a NIC runs only a program loaded for it, and xdpath's are loaded for
/// none. Found at the attach, it came after the interface's old program
/// was detached and the config's rules and balancer were written (undone
/// then, the interface ran no program for the two loads, about 4 s).
fn refuse_offload(desired: &DesiredConfig, changes: &Plan) -> Result<(), ConfigError> {
    for name in changes.interfaces_with(&[Action::Add, Action::Change]) {
        if desired
            .interfaces
            .iter()
            .any(|spec| spec.name == name && spec.mode == Mode::Offload)
        {
            return Err(ConfigError::Usage(format!(
                "interface {}: mode offload cannot be attached (an offloading NIC runs only a program loaded for it, and xdpath's are not); use native, generic or auto",
                crate::text::quote(name)
            )));
        }
    }
    Ok(())
}

/// Refuses a config rule whose id an owner's rule has (owners' rules stay
/// as they are, so the two would clash); nothing is changed then.
fn owned_rule_clash(current: &FilterState, desired: &FilterState) -> Result<(), ConfigError> {
    for rule in &desired.rules {
        if let Some(owned) = current
            .rules
            .iter()
            .find(|have| have.id == rule.id && have.owner.is_some())
        {
            return Err(ConfigError::Usage(format!(
                "rule id {} is owner {}'s (from its document, PUT /v1/owners/OWNER); give the config's rule another id",
                rule.id,
                crate::text::quote(owned.owner.as_deref().unwrap_or_default())
            )));
        }
    }
    Ok(())
}
