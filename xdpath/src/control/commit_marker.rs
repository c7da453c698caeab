//! The mark of a commit in progress. A session writes it before its first
//! map write and removes it after the state file is saved (or, when a
//! write failed, once the saved state is back in the maps), so a writer
//! killed in between (the kernel holding the new state, or part of a
//! non-atomic change, while the file still says the old one) is noticed by
//! the next command, which installs the file's state again before anything
//! else: the kernel ends up holding the old or the new state, never a mix.
//! Rules need no help (they switch buffers in one write); the blocklist,
//! limits and the balancer's tables change entry by entry.

use std::path::{Path, PathBuf};

use super::state::StateError;

/// The marker's file in a namespace's state directory.
pub const COMMIT_MARKER: &str = "commit-in-progress";

/// A commit in progress; [`CommitMarker::end`] when the file is saved.
#[must_use = "a marker left behind makes the next command repair the kernel"]
pub struct CommitMarker {
    path: PathBuf,
}

impl CommitMarker {
    /// Marks a commit of the state file `state_file` (the marker goes
    /// beside it). The marker holds the writer's pid, for the operator.
    pub fn begin(state_file: &Path) -> Result<Self, StateError> {
        let dir = state_file.parent().unwrap_or(Path::new("."));
        let path = dir.join(COMMIT_MARKER);
        match std::fs::write(&path, format!("{}\n", std::process::id())) {
            Ok(()) => Ok(Self { path }),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    /// The commit is over.
    pub fn end(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether a commit in `dir` was interrupted (or is running in another
/// process: call this holding the state lock to know).
pub fn interrupted(dir: &Path) -> bool {
    dir.join(COMMIT_MARKER).exists()
}

/// Clears the mark once the kernel was put right.
pub fn clear(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(COMMIT_MARKER));
}
