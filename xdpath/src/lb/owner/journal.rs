//! The journal of an owner's call: the owner, the document being installed
//! and the owner's state before as a document (a [`Journal`] of
//! [`OwnerJournal`]).

use serde::{Deserialize, Serialize};

use crate::api::requests::OwnerState;
use crate::control::state::{Journal, JournalContent, StateFile};

/// The journal's file in a namespace's state directory.
pub const OWNER_JOURNAL_FILE: &str = "owner-journal.json";

/// What an owner's call records before its first map write.
#[derive(Default, Serialize, Deserialize)]
pub struct OwnerJournal {
    /// The owner.
    pub owner: String,
    /// The document being installed.
    pub target: OwnerState,
    /// The owner's state before, as a document.
    pub before: OwnerState,
}

impl StateFile for OwnerJournal {
    const KIND: &'static str = "owner-journal";
    const LEGACY_KEYS: &'static [&'static str] = &[];
}

impl JournalContent for OwnerJournal {
    const FILE: &'static str = OWNER_JOURNAL_FILE;
    const CHANGE: &'static str = "a change of an owner";
}

/// The journal of one owner's call.
pub type OwnerJournalFile = Journal<OwnerJournal>;
