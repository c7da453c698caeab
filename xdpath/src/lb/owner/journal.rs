//! The journal of an owner's call: the owner, the document being installed
//! and the owner's state before as a document, written before the first
//! map write and removed after the last, so that a call killed half-way is
//! finished (or undone) by the next command.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::api::requests::OwnerState;
use crate::control::state::{self, StateFile};
use crate::lb::LbError;

/// The journal's file in a namespace's state directory.
pub const OWNER_JOURNAL_FILE: &str = "owner-journal.json";

#[derive(Default, Serialize, Deserialize)]
struct Content {
    owner: String,
    target: OwnerState,
    before: OwnerState,
}

impl StateFile for Content {
    const KIND: &'static str = "owner-journal";
    const LEGACY_KEYS: &'static [&'static str] = &[];
}

/// A journal on disk.
pub struct Journal {
    path: PathBuf,
    content: Content,
}

impl Journal {
    /// Writes the journal of a call installing `target` for `owner`, whose
    /// state is `before`.
    pub fn write(
        dir: &Path,
        owner: &str,
        target: &OwnerState,
        before: &OwnerState,
    ) -> Result<Self, LbError> {
        let journal = Self {
            path: dir.join(OWNER_JOURNAL_FILE),
            content: Content {
                owner: owner.to_string(),
                target: target.clone(),
                before: before.clone(),
            },
        };
        state::save(&journal.path, &journal.content)?;
        Ok(journal)
    }

    /// Whether a call left a journal in `dir`.
    pub fn exists(dir: &Path) -> bool {
        dir.join(OWNER_JOURNAL_FILE).exists()
    }

    /// The journal an interrupted call left, if any. One that cannot be
    /// read is set aside (renamed `.unreadable`) and reported.
    pub fn read(dir: &Path) -> Option<Self> {
        let path = dir.join(OWNER_JOURNAL_FILE);
        if !path.exists() {
            return None;
        }
        match state::load::<Content>(&path) {
            Ok(content) => Some(Self { path, content }),
            Err(error) => {
                log::warn!("an interrupted change of an owner left a journal that cannot be read ({error}); it is set aside");
                let _ = std::fs::rename(&path, path.with_extension("unreadable"));
                None
            }
        }
    }

    /// The owner, the document being installed and the state before.
    pub fn documents(&self) -> (&str, &OwnerState, &OwnerState) {
        (
            &self.content.owner,
            &self.content.target,
            &self.content.before,
        )
    }

    /// The call is over: the journal goes.
    pub fn finish(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
