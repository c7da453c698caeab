//! The order of the pipeline's stages, written once and walked by both
//! builds. After a stage, a frame tries the stages of [`Stage::next`] in
//! order and enters the first that wants it; a stage that does not want it
//! is skipped. Natively that is a loop ([`crate::pipeline::process_frame`]);
//! in the kernel each stage is its own program and entering is a tail call
//! through the `STAGES` table at [`Stage::slot`], which does not return
//! (`xdpath-ebpf/src/main.rs`, `go_on`).
//!
//! Whether a stage wants a frame is each build's own cheap test (the
//! kernel asks its maps, the native build its tables), but which stages
//! may follow which, and in what order, is only here.

use crate::abi;
use crate::stats::{Action, Reason};
use crate::verdict::Outcome;

/// Whether a frame goes on to a later stage after this outcome: a plain
/// pass with its class (not a filter's monitored drop, not a malformed
/// frame, not a stage's own verdict).
#[inline(always)]
pub fn plain_pass(outcome: &Outcome) -> bool {
    outcome.action == Action::Pass && outcome.reason as u8 <= Reason::Ipv6Other as u8
}

/// A stage of the pipeline. A later stage's value is its slot in the
/// kernel's `STAGES` table, so [`Stage::slot`] is a cast, never a lookup
/// table (which LLVM puts in the object's `.rodata`, a map of its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Stage {
    /// Parsing into the flow key (the entry program).
    Parse = abi::stage::COUNT,
    /// The filter: blocklist, rules, rate limits, guards.
    Filter = abi::stage::FILTER,
    /// SYN cookies: answer a SYN, check an ACK (kernel only).
    SynCookie = abi::stage::SYNCOOKIE,
    /// Decapsulation on a backend, else balancing on a balancer.
    Balance = abi::stage::BALANCE,
    /// FIB forwarding: rewrite and redirect.
    Forward = abi::stage::FORWARD,
    /// Steering a plain pass to a CPU or an AF_XDP socket (kernel only).
    Steer = abi::stage::STEER,
}

impl Stage {
    /// Every stage, in the order a frame may meet them.
    pub const ALL: [Stage; 6] = [
        Stage::Parse,
        Stage::Filter,
        Stage::SynCookie,
        Stage::Balance,
        Stage::Forward,
        Stage::Steer,
    ];

    /// The stages a frame may go on to after this one, in the order it
    /// tries them.
    ///
    /// - After the SYN-cookie stage a frame is settled: a SYN-ACK sent, an
    ///   ACK checked, the rest passed to the kernel.
    /// - After balancing, no steering: the steering call would push the
    ///   balancing program's stack frame, with the FIB lookup's, past the
    ///   verifier's 512 bytes. A frame for no VIP that should be steered
    ///   goes on to forwarding when the interface forwards.
    #[inline(always)]
    pub const fn next(self) -> &'static [Stage] {
        match self {
            Stage::Parse => &[Stage::Filter, Stage::Balance, Stage::Forward, Stage::Steer],
            Stage::Filter => &[
                Stage::SynCookie,
                Stage::Balance,
                Stage::Forward,
                Stage::Steer,
            ],
            Stage::SynCookie | Stage::Steer => &[],
            Stage::Balance => &[Stage::Forward],
            Stage::Forward => &[Stage::Steer],
        }
    }

    /// The most stages [`Stage::next`] lists.
    pub const MAX_NEXT: usize = 4;

    /// The `index`th stage of [`Stage::next`], if it has one. With both
    /// arguments constants (the kernel's `go_on`, unrolled by hand) this
    /// folds to a constant: a loop over the list kept the list in the
    /// object's `.rodata`, a map of its own, because LLVM does not unroll a
    /// body as large as a stage's test.
    #[inline(always)]
    pub const fn next_at(self, index: usize) -> Option<Stage> {
        let next = self.next();
        if index < next.len() {
            Some(next[index])
        } else {
            None
        }
    }

    /// Its slot in the kernel's `STAGES` tail-call table; parsing is the
    /// entry program itself and has none.
    #[inline(always)]
    pub const fn slot(self) -> Option<u32> {
        match self {
            Stage::Parse => None,
            later => Some(later as u32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Its place in [`Stage::ALL`].
    fn rank(stage: Stage) -> usize {
        Stage::ALL
            .iter()
            .position(|known| *known == stage)
            .expect("every stage is in ALL")
    }

    #[test]
    fn a_frame_only_goes_forward_through_the_stages() {
        for stage in Stage::ALL {
            let mut last = rank(stage);
            for next in stage.next() {
                assert!(
                    rank(*next) > last,
                    "{next:?} after {stage:?} is out of order"
                );
                last = rank(*next);
            }
        }
    }

    #[test]
    fn next_at_walks_the_whole_list() {
        for stage in Stage::ALL {
            assert!(stage.next().len() <= Stage::MAX_NEXT, "{stage:?}");
            for index in 0..Stage::MAX_NEXT {
                assert_eq!(stage.next_at(index), stage.next().get(index).copied());
            }
            assert_eq!(stage.next_at(Stage::MAX_NEXT), None);
        }
    }

    #[test]
    fn every_later_stage_has_its_own_slot_and_is_reachable() {
        let mut slots = [false; abi::stage::COUNT as usize];
        for stage in &Stage::ALL[1..] {
            let slot = stage.slot().expect("a later stage has a slot") as usize;
            assert!(!slots[slot], "slot {slot} twice");
            slots[slot] = true;
            assert!(
                Stage::ALL.iter().any(|from| from.next().contains(stage)),
                "nothing leads to {stage:?}"
            );
        }
        assert!(slots.iter().all(|taken| *taken));
        assert_eq!(Stage::Parse.slot(), None);
    }
}
