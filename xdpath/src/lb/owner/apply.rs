//! Making the namespace hold exactly an owner's document. The balancer's
//! and the filter's states change in one locked call: both are edited and
//! checked whole before the first map write (a refusal changes nothing), a
//! document already in force writes nothing at all, and a failure while
//! writing puts the balancer's state back. A journal written before the
//! first write lets the next command (or xdpathd within 2 s) finish a call
//! that was killed half-way, or undo it, so the kernel holds the owner's
//! old or new state, never a mix.

use std::net::IpAddr;

use super::journal::{OwnerJournal, OwnerJournalFile};
use super::limits::edit_limits;
use super::{document_of, parse_document, Desired, DesiredVip};
use crate::api::requests::OwnerState;
use crate::control::session::{lock_state_dir, Session};
use crate::lb::edit;
use crate::lb::ops::put_parsed;
use crate::lb::session::LbSession;
use crate::lb::state::{LbState, VipId};
use crate::lb::LbError;

/// What a call did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerChange {
    /// The owner.
    pub owner: String,
    /// False when the owner's state already was the document (nothing was
    /// written).
    pub changed: bool,
    /// The owner's VIPs now.
    pub vips: Vec<VipId>,
    /// How many rate limits the owner has now.
    pub limits: usize,
    /// How many filter rules the owner has now.
    pub rules: usize,
}

/// Makes `owner`'s VIPs (with their backends, health checks and allowed
/// sources), rate limits and filter rules exactly those of `document`: all or nothing.
/// A VIP of the document that another owner has, or that is unowned, is a
/// conflict; nothing changes on any error.
pub fn put_owner(owner: &str, document: &OwnerState) -> Result<OwnerChange, LbError> {
    let desired = parse_document(owner, document)?;
    let (dir, _lock) = lock_state_dir()?;
    let before = {
        let lb = LbSession::read()?;
        let filter = Session::read()?;
        document_of(&lb.state, &filter.state, owner)
    };
    let journal = |dir: &std::path::Path| {
        let content = OwnerJournal {
            owner: owner.to_string(),
            target: document.clone(),
            before: before.clone(),
        };
        OwnerJournalFile::write(dir, content).map_err(LbError::from)
    };
    let changed = install(owner, &desired, Some((&dir, &journal)))?;
    Ok(OwnerChange {
        owner: owner.to_string(),
        changed,
        vips: desired.vips.iter().map(|vip| vip.parsed.id).collect(),
        limits: desired.limits.len(),
        rules: desired.rules.len(),
    })
}

/// Removes everything `owner` made (nothing, for an owner with nothing).
pub fn delete_owner(owner: &str) -> Result<OwnerChange, LbError> {
    put_owner(owner, &OwnerState::default())
}

/// The journal to write before the first map write, if any.
type JournalMaker<'a> = (
    &'a std::path::Path,
    &'a dyn Fn(&std::path::Path) -> Result<OwnerJournalFile, LbError>,
);

/// Edits, checks and commits both states; true when the owner's state
/// changed. The caller holds the state lock.
pub(super) fn install(
    owner: &str,
    desired: &Desired,
    journal: Option<JournalMaker<'_>>,
) -> Result<bool, LbError> {
    let mut lb = LbSession::open()?;
    let mut filter = Session::open()?;
    edit_vips(&mut lb.state, owner, &desired.vips)?;
    let table_usable = crate::control::features::address_table_usable();
    edit_limits(&mut filter.state, owner, &desired.limits, table_usable)?;
    super::rules::edit_rules(&mut filter.state, owner, &desired.rules)?;
    lb.check()?;
    if filter.state != *filter.loaded() {
        filter.check()?;
    }
    let changed = lb.state != *lb.loaded() || filter.state != *filter.loaded();
    if !lb.pending() && !filter.pending() {
        return Ok(false);
    }
    let journal = match journal {
        Some((dir, write)) => Some(write(dir)?),
        None => None,
    };
    let lb_before = lb.loaded().clone();
    let result = lb.commit().and_then(|()| {
        filter.commit().map_err(|error| {
            // The balancer's part is in: put it back, so the owner's old
            // state stays whole (the filter's commit mark, if its write
            // failed part way, has the filter's saved state put back).
            if let Err(restore) = restore_lb(lb_before) {
                log::warn!("putting the balancer's state back failed: {restore}; `xdpath state check` shows what the kernel holds");
            }
            LbError::from(error)
        })
    });
    if let Some(journal) = journal {
        journal.finish();
    }
    result.map(|()| changed)
}

/// Installs `state` as the balancer's state again.
fn restore_lb(state: LbState) -> Result<(), LbError> {
    let mut session = LbSession::open()?;
    session.state = state;
    session.commit()
}

/// Gives `owner` exactly the VIPs `wanted`: conflicts first, then the
/// owner's VIPs the document lacks removed, then each VIP created or
/// updated in place (slot, backends' slots and connections kept), its
/// health check and pool made the document's.
pub fn edit_vips(state: &mut LbState, owner: &str, wanted: &[DesiredVip]) -> Result<(), LbError> {
    for vip in wanted {
        if let Some(held) = state.vip(&vip.parsed.id) {
            if held.owner.as_deref() != Some(owner) {
                return Err(LbError::OwnerConflict {
                    vip: vip.parsed.id,
                    held: held.owner.clone(),
                    wanted: Some(owner.to_string()),
                });
            }
        }
    }
    state.vips.retain(|vip| {
        vip.owner.as_deref() != Some(owner) || wanted.iter().any(|w| w.parsed.id == vip.id)
    });
    for vip in wanted {
        let id = vip.parsed.id;
        put_parsed(state, &vip.parsed)?;
        if state.vip(&id).map(|spec| &spec.health) != Some(&vip.health) {
            edit::set_health(state, &id, vip.health.clone())?;
        }
        edit_backends(state, &id, &vip.backends)?;
    }
    Ok(())
}

/// Makes a VIP's pool `wanted`: backends it lacks removed, weights set,
/// new backends added.
fn edit_backends(state: &mut LbState, id: &VipId, wanted: &[(IpAddr, u64)]) -> Result<(), LbError> {
    let have: Vec<IpAddr> = state
        .vip(id)
        .map(|vip| vip.backends.iter().map(|backend| backend.address).collect())
        .unwrap_or_default();
    for address in have {
        if !wanted.iter().any(|(want, _)| *want == address) {
            edit::del_backend(state, id, address)?;
        }
    }
    for (address, weight) in wanted {
        match state.vip(id).and_then(|vip| vip.backend(*address)) {
            Some(backend) if u64::from(backend.weight) == *weight => {}
            Some(_) => edit::set_weight(state, id, *address, *weight)?,
            None => edit::add_backend(state, id, *address, *weight)?,
        }
    }
    Ok(())
}

/// Finishes an owner's call that a crash interrupted (its journal is
/// still there): the document it was installing is installed, or, if that
/// fails, the owner's state from before. Either way the journal goes. The
/// caller holds the state lock.
pub fn recover_interrupted(dir: &std::path::Path) {
    let Some(journal) = OwnerJournalFile::read(dir) else {
        return;
    };
    let OwnerJournal {
        owner,
        target,
        before,
    } = journal.content();
    let attempt = |document: &OwnerState| {
        parse_document(owner, document).and_then(|desired| install(owner, &desired, None))
    };
    let outcome = match attempt(target) {
        Ok(_) => Ok("the document it was installing is now in force"),
        Err(_) => attempt(before).map(|_| "its state from before is back in force"),
    };
    match outcome {
        Ok(what) => log::warn!(
            "a change of owner {} was interrupted (a crash or kill); {what}",
            crate::text::quote(owner)
        ),
        Err(error) => log::warn!(
            "a change of owner {} was interrupted and finishing it failed: {error}; `xdpath state check` shows what the kernel holds",
            crate::text::quote(owner)
        ),
    }
    journal.finish();
}
