//! The filter's rate limits as a program of their own, reached by tail
//! call from the filter program (slot `abi::stage::LIMITS` of `STAGES`,
//! outside the stage walk) when a frame is left to them
//! (`xdpath_core::filter::judge`, then `limits`, which the native build
//! runs in one go).
//!
//! Why a program: the sixteen general limits, unrolled, were three
//! quarters of the filter program's verification (984,694 instructions of
//! the verifier's million; 237,519 without them), so the filter could not
//! change without passing the limit. Each program is verified on its own.
//!
//! The hand-over: the flow key stays in this CPU's first scratch slot and
//! a tunnelled frame's inner key in the second; which of the two the
//! limits see, and what matched the frame so far (a rule, for its sample
//! record), wait in [`LIMITS_HANDOVER`].

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};
use xdpath_core::filter::{self, FilterDrop, Layers};
use xdpath_core::pipeline;
use xdpath_core::{abi, Reason, Tables};

use crate::{maps, tables, SCRATCH_INNER};

/// What the filter program leaves for its limits.
#[repr(C)]
pub(crate) struct Handover {
    /// [`OUTER`] and/or [`INNER`]: the keys the limits see.
    layers: u32,
    /// `MapTables::matched` of the filter program.
    matched: u32,
    /// A monitored general limit's verdict held while the limits after it
    /// are tried (`Tables::hold_limit_verdict`); 0 between frames. In map
    /// memory, which the verifier does not follow, so it splits no state.
    held_verdict: u32,
}

/// The frame's own key (scratch slot 0) is limited.
const OUTER: u32 = 1;
/// The inner key of a tunnelled frame (scratch slot 1) is limited.
const INNER: u32 = 2;

/// [`Handover`], one slot per CPU.
#[map]
pub(crate) static LIMITS_HANDOVER: PerCpuArray<Handover> = PerCpuArray::with_max_entries(1, 0);

/// The verdict of a frame whose limits could not be tried (their program
/// missing: never, the loader links every stage of the object): a drop
/// as over its limit rather than a pass unlimited (a pass on a monitored
/// interface, as every drop).
const UNLIMITED: Option<FilterDrop> = Some(FilterDrop {
    reason: Reason::RateLimited,
    monitor: false,
});

/// Hands a frame to [`xdpath_limits`] with the keys in `layers` (slot 0's
/// and slot 1's, as the filter program lent them), which does not return;
/// returns [`UNLIMITED`] only if that program is missing.
#[inline(always)]
pub(crate) fn hand_over(ctx: &XdpContext, layers: &Layers<'_>, matched: u32) -> Option<FilterDrop> {
    let Some(handover) = LIMITS_HANDOVER.get_ptr_mut(0) else {
        return UNLIMITED;
    };
    let mut keys = 0;
    if layers.outer.is_some() {
        keys |= OUTER;
    }
    if layers.inner.is_some() {
        keys |= INNER;
    }
    // SAFETY: this CPU's slot; XDP runs do not nest on a CPU.
    // No verdict held yet: `rate_limits` takes what it holds before it
    // returns, and this clears what anything else might have left.
    unsafe {
        (*handover).layers = keys;
        (*handover).matched = matched;
        (*handover).held_verdict = 0;
    }
    // SAFETY: a tail call with this program's own context; on success it
    // does not return.
    unsafe { maps::STAGES.tail_call(ctx, abi::stage::LIMITS) };
    UNLIMITED
}

/// Holds `verdict` unless a verdict is held ([`Handover::held_verdict`]).
#[inline(always)]
pub(crate) fn hold_verdict(verdict: u32) {
    if let Some(handover) = LIMITS_HANDOVER.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; XDP runs do not nest on a CPU.
        unsafe {
            if (*handover).held_verdict == 0 {
                (*handover).held_verdict = verdict;
            }
        }
    }
}

/// The verdict held (0: none), cleared.
#[inline(always)]
pub(crate) fn take_verdict() -> u32 {
    let Some(handover) = LIMITS_HANDOVER.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: as in `hold_verdict`.
    unsafe {
        let verdict = (*handover).held_verdict;
        if verdict != 0 {
            (*handover).held_verdict = 0;
        }
        verdict
    }
}

/// The filter's rate limits for a frame the filter program left to them;
/// then the filter stage's exit, as in the filter program.
#[xdp]
pub fn xdpath_limits(ctx: XdpContext) -> u32 {
    let frame_len = (ctx.data_end() - ctx.data()) as u64;
    let (Some(key), Some(handover)) = (crate::scratch_key(), LIMITS_HANDOVER.get(0)) else {
        return xdp_action::XDP_DROP;
    };
    let (keys, matched) = (handover.layers, handover.matched);
    let inner = if keys & INNER != 0 {
        maps::SCRATCH.get(SCRATCH_INNER)
    } else {
        None
    };
    let layers = Layers {
        outer: (keys & OUTER != 0).then_some(key),
        inner,
    };
    let mut tables = tables::MapTables::new(ctx.ctx);
    tables.matched = matched;
    let config = tables.filter_config();
    let drop = filter::limits(&config, &layers, frame_len, &mut tables);
    let outcome = pipeline::filtered_outcome(key, drop, &tables);
    crate::filter_exit(&ctx, key, outcome, &mut tables, frame_len)
}
