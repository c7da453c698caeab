//! Recovery after a killed writer (or a killed `apply --confirm` waiter),
//! run before every command and by the daemon at each check. It sits above the ways of changing the state
//! (`config::apply` and an owner's call with their journals, `reconcile`
//! with the commit mark), so none of them imports another's recovery.

use crate::control::commit_marker;
use crate::control::session::lock_state_dir;
use crate::reconcile;

/// Finishes what a killed writer left: an interrupted `apply` (its
/// journal) and an interrupted commit (its marker: the kernel may hold the
/// new state, or part of it, while the file says the old one). Afterwards
/// the kernel holds the old or the new state whole. Then a rollback of
/// `apply --confirm` past its deadline that its waiter did not carry out
/// (see `config::rollback`), then a capture filter or an export's sampling
/// rate left in force by a capture or an export that was killed
/// (`observe::capture_left`, `observe::rates`). Run before every command and by the daemon
/// at each check; cheap when nothing was left.
pub fn finish_interrupted() {
    let Ok(dir) = crate::control::state::state_dir() else {
        return;
    };
    let journal = crate::config::journal::ApplyJournalFile::exists(&dir);
    let owner_journal = crate::lb::owner::journal::OwnerJournalFile::exists(&dir);
    let overdue = crate::config::rollback::overdue(&dir);
    // Marks of observers that change the data path while they run (a
    // capture's filter, an export's rate): left by one that died?
    let capture = crate::observe::capture_left::marked(&dir);
    let rates = crate::observe::rates::marked(&dir);
    if !journal
        && !owner_journal
        && !overdue
        && !capture
        && !rates
        && !commit_marker::interrupted(&dir)
    {
        return;
    }
    let Ok((dir, _lock)) = lock_state_dir() else {
        return;
    };
    crate::config::apply::recover_interrupted(&dir);
    // Holding the lock, a marker that is still there was left by a writer
    // that died.
    if commit_marker::interrupted(&dir) {
        match reconcile::repair() {
            Ok(_) => {
                commit_marker::clear(&dir);
                log::warn!("a change was interrupted (a crash or kill); the saved state is back in force");
            }
            Err(error) => log::warn!("a change was interrupted and installing the saved state again failed: {error}; `xdpath state check` shows what the kernel holds"
            ),
        }
    }
    crate::lb::owner::apply::recover_interrupted(&dir);
    // Last, on a whole state: a rollback past its deadline that its
    // waiter (killed, or stuck) did not carry out.
    crate::config::rollback::recover_overdue(&dir);
    // The observers' leftovers: nothing while the observer runs.
    if capture {
        crate::observe::capture_left::recover(&dir);
    }
    if rates {
        crate::observe::rates::recover(&dir);
    }
}
