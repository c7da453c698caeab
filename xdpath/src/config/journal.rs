//! The journal of an apply: the config before and the config asked for,
//! written before the first change and removed after the last, so that an
//! apply killed half-way is finished (or undone) by the next one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ConfigError, DesiredConfig};
use crate::control::state::{self, StateFile};

/// The journal's file in a namespace's state directory.
pub const JOURNAL_FILE: &str = "apply-journal.json";

#[derive(Default, Serialize, Deserialize)]
struct Content {
    before: DesiredConfig,
    target: DesiredConfig,
}

impl StateFile for Content {
    const KIND: &'static str = "apply-journal";
    const LEGACY_KEYS: &'static [&'static str] = &["before", "target"];
}

/// A journal on disk.
pub struct Journal {
    path: PathBuf,
    content: Content,
}

impl Journal {
    /// Writes the journal of an apply from `before` to `target`.
    pub fn write(
        dir: &Path,
        before: &DesiredConfig,
        target: &DesiredConfig,
    ) -> Result<Self, ConfigError> {
        let journal = Self {
            path: dir.join(JOURNAL_FILE),
            content: Content {
                before: before.clone(),
                target: target.clone(),
            },
        };
        state::save(&journal.path, &journal.content)?;
        Ok(journal)
    }

    /// The journal an interrupted apply left, if any. One that cannot be
    /// read is set aside (renamed `.unreadable`) and reported.
    pub fn read(dir: &Path) -> Option<Self> {
        let path = dir.join(JOURNAL_FILE);
        if !path.exists() {
            return None;
        }
        match state::load::<Content>(&path) {
            Ok(content) => Some(Self { path, content }),
            Err(error) => {
                log::warn!("an interrupted apply left a journal that cannot be read ({error}); it is set aside");
                let _ = std::fs::rename(&path, path.with_extension("unreadable"));
                None
            }
        }
    }

    /// The config before the apply and the one it was applying.
    pub fn configs(&self) -> (&DesiredConfig, &DesiredConfig) {
        (&self.content.before, &self.content.target)
    }

    /// The apply is over: the journal goes.
    pub fn finish(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
