//! A frame the balancing stage decapsulated (`xdpath decap`), judged by
//! the filter on its inner headers (`pipeline::judge_decapsulated` in the
//! native build). Three programs share the work, each verified on its own:
//! the balancing program strips the frame and hands it over
//! ([`hand_over`]); [`xdpath_decapsulated`] parses the inner packet into
//! the scratch key and hands it to the filter program, marked; the filter
//! program judges it and settles it ([`handed_over`], [`settled`]) instead
//! of going on. (The parse and the filter in one program passed the
//! verifier's million instructions, E2BIG, even with the parse a
//! subprogram.)
//!
//! The mark rides in the key's `decapsulated` field, zero for every other
//! frame: 1 for IPIP, 2 for GUE. The length the frame arrived with (what it
//! is counted with, as in the native build) waits in the `tunnel` word of
//! the second scratch slot, which the filter therefore does not lend for a
//! tunnel's inner key while it judges a decapsulated frame (the VXLAN or
//! Geneve inside one is judged on its headers, in both builds). Read after
//! the filter, not held across it: a value held across the filter doubled
//! the states the verifier walked (E2BIG).

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use xdpath_core::{abi, pipeline, stages, Action, FlowKey, Reason, Tables};

use crate::frame::XdpPacket;
use crate::{maps, tables, SCRATCH_INNER};

/// The mark of a frame decapsulated by `decap`.
#[inline(always)]
fn mark(decap: Reason) -> u16 {
    if decap == Reason::DecapGue {
        2
    } else {
        1
    }
}

/// The decapsulation's outcome a mark stands for.
#[inline(always)]
fn decap_outcome(mark: u16) -> pipeline::Outcome {
    let reason = if mark == 2 {
        Reason::DecapGue
    } else {
        Reason::DecapIpip
    };
    pipeline::Outcome {
        action: Action::Pass,
        reason,
    }
}

/// The length a handed-over frame arrived with.
#[inline(always)]
fn arrival_len() -> u64 {
    maps::SCRATCH
        .get(SCRATCH_INNER)
        .map_or(0, |held| u64::from(held.tunnel))
}

/// The outcome of a frame whose next program is missing (it never is: the
/// loader links every stage of the object): its inner packet goes nowhere
/// unjudged. Counted as an encapsulation failure, the reason decapsulation
/// already gives a frame it could not rewrite.
const UNJUDGED: pipeline::Outcome = pipeline::Outcome {
    action: Action::Drop,
    reason: Reason::LbEncapFailed,
};

/// Hands a frame the balancing stage decapsulated to
/// [`xdpath_decapsulated`], which does not return; returns [`UNJUDGED`]
/// only if that program is missing.
#[inline(always)]
pub(crate) fn hand_over(ctx: &XdpContext, decap: Reason, frame_len: u64) -> pipeline::Outcome {
    let (Some(key), Some(held)) = (
        maps::SCRATCH.get_ptr_mut(0),
        maps::SCRATCH.get_ptr_mut(SCRATCH_INNER),
    ) else {
        return UNJUDGED;
    };
    // SAFETY: this CPU's slots; XDP runs do not nest on a CPU.
    unsafe {
        (*key).decapsulated = mark(decap);
        (*held).tunnel = frame_len as u32;
    }
    // SAFETY: a tail call with this program's own context; on success it
    // does not return.
    unsafe { maps::STAGES.tail_call(ctx, abi::stage::DECAPSULATED) };
    UNJUDGED
}

/// Parses a decapsulated frame's inner packet into this CPU's scratch key
/// and hands it, marked, to the filter program. An inner packet the parser
/// refuses is settled here (dropped while the filter holds anything).
#[xdp]
pub fn xdpath_decapsulated(ctx: XdpContext) -> u32 {
    let packet = XdpPacket::of(ctx.data(), ctx.data_end());
    let Some(key) = maps::SCRATCH.get_ptr_mut(0) else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: this CPU's slot; XDP runs do not nest on a CPU.
    let key = unsafe { &mut *key };
    let handed = key.decapsulated;
    let mut tables = tables::MapTables::new(ctx.ctx);
    let outcome = match pipeline::parse_decapsulated(&packet, key) {
        Err(reason) => pipeline::refused_decapsulated(reason, &tables),
        Ok(()) => {
            key.decapsulated = handed;
            // SAFETY: a tail call with this program's own context; on
            // success it does not return.
            unsafe { maps::STAGES.tail_call(&ctx, abi::stage::FILTER) };
            UNJUDGED
        }
    };
    tables.count(outcome.action, outcome.reason, arrival_len());
    outcome.action as u32
}

/// In the filter program, after the filter: for a decapsulated frame, the
/// decapsulation's outcome and the length to count it with; `None` for
/// every other frame, which goes on as before.
#[inline(always)]
pub(crate) fn handed_over(key: &FlowKey) -> Option<(pipeline::Outcome, u64)> {
    (key.decapsulated != 0).then(|| (decap_outcome(key.decapsulated), arrival_len()))
}

/// What a decapsulated frame settles as: the filter's verdict, or the
/// decapsulation's when the inner packet is a plain pass.
#[inline(always)]
pub(crate) fn settled(decap: pipeline::Outcome, filtered: pipeline::Outcome) -> pipeline::Outcome {
    if stages::plain_pass(&filtered) {
        decap
    } else {
        filtered
    }
}
