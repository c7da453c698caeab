//! One loaded program serving many fixture rows: a load costs seconds of
//! verifier time (about 4.5 s on the project's 2-CPU VM), a row a few
//! milliseconds. [`ProgramImage`] snapshots every map of a freshly loaded
//! program and puts each back before the next row (arrays written back
//! where they differ, hash, LRU and trie entries deleted or rewritten,
//! rings read empty), then reads them all again and fails unless each
//! holds its image: a row sees exactly what a fresh load would show it.
//! [`Reused`] takes such a program from a pool shared by the test
//! binary's threads, or loads one when none is free.
//!
//! The tail-call table is not in the image: only the loader writes it.

mod image;
mod pool;
mod raw;

pub use image::ProgramImage;
pub use pool::Reused;

/// Why a program could not be reused.
#[derive(Debug, thiserror::Error)]
pub enum ReuseError {
    /// Loading or configuring the program failed.
    #[error("load the program: {0}")]
    Load(#[from] xdpath::dataplane::DataplaneError),
    /// A command on one of its maps failed.
    #[error("map {map}: {operation}: {source}")]
    Map {
        /// The map.
        map: String,
        /// What was being done.
        operation: &'static str,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// The program has a map of a kind the image cannot put back.
    #[error("map {map}: a {kind} map cannot be put back")]
    Unsupported {
        /// The map.
        map: String,
        /// Its kind.
        kind: String,
    },
    /// After a restore, maps still differ from the image.
    #[error("the maps were not put back: {differences}")]
    NotRestored {
        /// Each map that differs, and how.
        differences: String,
    },
}
