//! The journal of an apply: the config before and the config asked for
//! (a [`Journal`] of [`ApplyJournal`]).

use serde::{Deserialize, Serialize};

use super::DesiredConfig;
use crate::control::state::{Journal, JournalContent, StateFile};

/// The journal's file in a namespace's state directory.
pub const JOURNAL_FILE: &str = "apply-journal.json";

/// What an apply records before its first change.
#[derive(Default, Serialize, Deserialize)]
pub struct ApplyJournal {
    /// The config in force before the apply.
    pub before: DesiredConfig,
    /// The config being applied.
    pub target: DesiredConfig,
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
