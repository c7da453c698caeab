//! What a stage decides about a frame: a final [`Outcome`] (verdict and
//! reason), or go on ([`Step`]).

use crate::stats::{Action, Reason};

/// A frame's final verdict and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict.
    pub action: Action,
    /// The frame's class, or why it was malformed.
    pub reason: Reason,
}

/// What a stage decided: a final outcome, or go on to the next stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The frame's fate is settled.
    Done(Outcome),
    /// On to the next stage.
    Continue,
}
