//! The journal of an apply: the config before and the config asked for
//! (a [`Journal`] of [`ApplyJournal`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ConfigError, DesiredConfig};
use crate::control::session::lock_state_dir;
use crate::control::state::{self, FilterState, Journal, JournalContent, StateFile, STATE_FILE};
use crate::lb::state::{LbState, LB_STATE_FILE};

/// The journal's file in a namespace's state directory.
pub const JOURNAL_FILE: &str = "apply-journal.json";

/// What an apply records before its first change.
#[derive(Default, Serialize, Deserialize)]
pub struct ApplyJournal {
    /// The config in force before the apply.
    pub before: DesiredConfig,
    /// The config being applied.
    pub target: DesiredConfig,
    /// The filter's and the balancer's saved states before the apply,
    /// whole: `before` holds them only as a config sees them (without the
    /// owners' rules, limits and VIPs, so not where an owner's rule stands
    /// among the others, nor the ids given and the backends' generations).
    /// A restore puts these back as they were. None in a journal written
    /// by an older build.
    #[serde(default)]
    pub saved: Option<SavedStates>,
}

/// The filter's and the balancer's state files as they were.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct SavedStates {
    /// `filter.json`.
    pub filter: FilterState,
    /// `lb.json`.
    pub lb: LbState,
}

impl StateFile for ApplyJournal {
    const KIND: &'static str = "apply-journal";
    const LEGACY_KEYS: &'static [&'static str] = &["before", "target"];
}

impl JournalContent for ApplyJournal {
    const FILE: &'static str = JOURNAL_FILE;
    const CHANGE: &'static str = "an apply";
}

/// The journal of one apply.
pub type ApplyJournalFile = Journal<ApplyJournal>;

impl SavedStates {
    /// Reads both state files of the namespace's state directory `dir`
    /// (an absent file is the empty state).
    pub fn read(dir: &Path) -> Result<Self, ConfigError> {
        Ok(Self {
            filter: state::load(&dir.join(STATE_FILE))?,
            lb: state::load(&dir.join(LB_STATE_FILE))?,
        })
    }

    /// Writes both files back as they were, with their copies of the
    /// state last installed (the repair that follows installs them).
    pub fn write_back(&self) -> Result<(), ConfigError> {
        let (dir, _lock) = lock_state_dir()?;
        let filter = dir.join(STATE_FILE);
        state::save(&filter, &self.filter)?;
        state::save_installed_copy(&filter, &self.filter, true)?;
        let lb = dir.join(LB_STATE_FILE);
        state::save(&lb, &self.lb)?;
        state::save_installed_copy(&lb, &self.lb, true)?;
        Ok(())
    }
}
