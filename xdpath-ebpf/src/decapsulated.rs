//! A frame the balancing stage decapsulated (`xdpath decap`), judged by
//! the filter on its inner headers (`pipeline::judge_decapsulated` in the
//! native build). Three programs share the work, each verified on its own:
//! the balancing program strips the frame and hands it over
//! ([`hand_over`]); [`xdpath_decapsulated`] parses the inner packet into
//! the scratch key and hands it to the filter program, marked; the filter
//! program judges it and settles it ([`judged`]) instead of going on. (The
//! parse and the filter in one program passed the verifier's million
//! instructions, E2BIG, even with the parse a subprogram.)
//!
//! The mark rides in the key's `decapsulated` field, zero for every other
//! frame: the length the frame arrived with (what it is counted with, as
//! in the native build) shifted left by one, and 1 in the low bit for GUE.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use xdpath_core::{abi, pipeline, stages, Action, FlowKey, Reason, Tables};

use crate::frame::XdpPacket;
use crate::{maps, tables};

/// The mark of a frame decapsulated by `decap` that arrived `arrived_len`
/// bytes long (never zero: a frame holds at least an Ethernet header;
/// lengths past 32,767, beyond an XDP frame's linear part, are clamped).
#[inline(always)]
fn mark(decap: Reason, arrived_len: u64) -> u16 {
    (arrived_len.min(0x7fff) as u16) << 1 | u16::from(decap == Reason::DecapGue)
}

/// What a mark says: the decapsulation's outcome and the arrival length.
#[inline(always)]
fn unmark(mark: u16) -> (pipeline::Outcome, u64) {
    let reason = if mark & 1 != 0 {
        Reason::DecapGue
    } else {
        Reason::DecapIpip
    };
    let decap = pipeline::Outcome {
        action: Action::Pass,
        reason,
    };
    (decap, u64::from(mark >> 1))
}

/// The outcome of a frame whose next program is missing (it never is: the
/// loader links every stage of the object): its inner packet goes nowhere
/// unjudged.
const UNJUDGED: pipeline::Outcome = pipeline::Outcome {
    action: Action::Drop,
    reason: Reason::LbEncapFailed,
};

/// Hands a frame the balancing stage decapsulated to
/// [`xdpath_decapsulated`], which does not return; returns [`UNJUDGED`]
/// only if that program is missing.
#[inline(always)]
pub(crate) fn hand_over(ctx: &XdpContext, decap: Reason, frame_len: u64) -> pipeline::Outcome {
    let Some(key) = maps::SCRATCH.get_ptr_mut(0) else {
        return UNJUDGED;
    };
    // SAFETY: this CPU's slot; XDP runs do not nest on a CPU.
    unsafe { (*key).decapsulated = mark(decap, frame_len) };
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
    tables.count(outcome.action, outcome.reason, unmark(handed).1);
    outcome.action as u32
}

/// In the filter program: for a decapsulated frame, what it settles as
/// (the filter's verdict, or the decapsulation's when the inner packet is
/// a plain pass) and the length to count it with; `None` for every other
/// frame, which goes on as before.
#[inline(always)]
pub(crate) fn judged(
    key: &FlowKey,
    filtered: pipeline::Outcome,
) -> Option<(pipeline::Outcome, u64)> {
    if key.decapsulated == 0 {
        return None;
    }
    let (decap, arrived_len) = unmark(key.decapsulated);
    let outcome = if stages::plain_pass(&filtered) {
        decap
    } else {
        filtered
    };
    Some((outcome, arrived_len))
}
