//! A journal: what a multi-step change is doing, written to the
//! namespace's state directory before its first map write and removed after
//! its last, so that a change killed half-way is finished (or undone) by
//! the next command. `config apply` and an owner's call each keep one; what
//! they record is theirs ([`JournalContent`]), the file's life is here.

use std::path::{Path, PathBuf};

use super::{load, save, StateError, StateFile};

/// What one kind of change records in its journal.
pub trait JournalContent: StateFile {
    /// The journal's file in a namespace's state directory.
    const FILE: &'static str;
    /// The change, as log messages name it ("an apply").
    const CHANGE: &'static str;
}

/// A journal on disk.
pub struct Journal<C> {
    path: PathBuf,
    content: C,
}

impl<C: JournalContent> Journal<C> {
    /// Writes the journal of a change about to start.
    pub fn write(dir: &Path, content: C) -> Result<Self, StateError> {
        let journal = Self {
            path: dir.join(C::FILE),
            content,
        };
        save(&journal.path, &journal.content)?;
        Ok(journal)
    }

    /// Whether an interrupted change left a journal in `dir`.
    pub fn exists(dir: &Path) -> bool {
        dir.join(C::FILE).exists()
    }

    /// The journal an interrupted change left, if any. One that cannot be
    /// read is set aside (renamed `.unreadable`) and reported.
    pub fn read(dir: &Path) -> Option<Self> {
        let path = dir.join(C::FILE);
        if !path.exists() {
            return None;
        }
        match load::<C>(&path) {
            Ok(content) => Some(Self { path, content }),
            Err(error) => {
                log::warn!(
                    "{} was interrupted and left a journal that cannot be read ({error}); it is set aside",
                    C::CHANGE
                );
                let _ = std::fs::rename(&path, path.with_extension("unreadable"));
                None
            }
        }
    }

    /// What the change recorded.
    pub fn content(&self) -> &C {
        &self.content
    }

    /// The change is over: the journal goes.
    pub fn finish(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
