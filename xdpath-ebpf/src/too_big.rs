//! A frame to a VIP too big for the path to its backend, answered with
//! ICMP "fragmentation needed" or ICMPv6 "packet too big"
//! (`xdpath_core::lb::answer_too_big`, which the native pipeline calls
//! after the balancing stage). The answer is written by a program of its
//! own, reached by tail call from the balancing program (slot
//! `abi::stage::TOO_BIG` of `STAGES`, outside the stage walk), so the
//! balancing program's stack and verifier work do not grow by the
//! rewrite and its checksum loop.
//!
//! The hand-over: the flow key stays in this CPU's first scratch slot;
//! the MTU to announce and the length the frame arrived with (what it is
//! counted with, as natively) wait in the second one ([`Held`]).

use aya_ebpf::{
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};
use xdpath_core::lb::LbTables;
use xdpath_core::lb::{AnswerBudget, QUOTE_MAX};
use xdpath_core::{abi, Action, Reason, Tables};

use crate::frame::XdpFrame;
use crate::{maps, tables, SCRATCH_INNER};

/// This CPU's answers this second, and where the quoted bytes are copied
/// for the answer's checksum (more than the program's stack holds).
#[repr(C)]
pub(crate) struct TooBigScratch {
    pub(crate) budget: AnswerBudget,
    quote: [u8; QUOTE_MAX],
}

/// [`TooBigScratch`], one slot per CPU.
#[map]
pub(crate) static TOO_BIG_SCRATCH: PerCpuArray<TooBigScratch> = PerCpuArray::with_max_entries(1, 0);

/// The outcome of a frame the answer could not be written for (or whose
/// program is missing: never, the loader links every stage of the
/// object): dropped, counted as too big.
const UNANSWERED: xdpath_core::pipeline::Outcome = xdpath_core::pipeline::Outcome {
    action: Action::Drop,
    reason: Reason::LbTooBig,
};

/// What waits in the second scratch slot for the answer: the arrival
/// length in its `tunnel` word (as for a decapsulated frame), the MTU to
/// announce in its two port words (high, low), and what matched the frame
/// (its VIP, for its sample or capture record) in the first four bytes of
/// its source address.
struct Held {
    mtu: u32,
    frame_len: u64,
    matched: u32,
}

impl Held {
    #[inline(always)]
    fn put(&self, slot: &mut xdpath_core::FlowKey) {
        slot.tunnel = self.frame_len as u32;
        slot.source_port = (self.mtu >> 16) as u16;
        slot.destination_port = self.mtu as u16;
        let [a, b, c, d] = self.matched.to_ne_bytes();
        slot.source = [a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    }

    #[inline(always)]
    fn take(slot: &xdpath_core::FlowKey) -> Self {
        let [a, b, c, d, ..] = slot.source;
        Self {
            mtu: u32::from(slot.source_port) << 16 | u32::from(slot.destination_port),
            frame_len: u64::from(slot.tunnel),
            matched: u32::from_ne_bytes([a, b, c, d]),
        }
    }
}

/// Hands a frame the balancing stage answers to [`xdpath_too_big`], which
/// does not return; returns [`UNANSWERED`] only if that program is
/// missing.
#[inline(always)]
pub(crate) fn hand_over(
    ctx: &XdpContext,
    mtu: u32,
    frame_len: u64,
    matched: u32,
) -> xdpath_core::pipeline::Outcome {
    let Some(slot) = maps::SCRATCH.get_ptr_mut(SCRATCH_INNER) else {
        return UNANSWERED;
    };
    let held = Held {
        mtu,
        frame_len,
        matched,
    };
    // SAFETY: this CPU's slot; XDP runs do not nest on a CPU.
    held.put(unsafe { &mut *slot });
    // SAFETY: a tail call with this program's own context; on success it
    // does not return.
    unsafe { maps::STAGES.tail_call(ctx, abi::stage::TOO_BIG) };
    UNANSWERED
}

/// Writes the answer over the frame and sends it back (`XDP_TX`).
#[xdp]
pub fn xdpath_too_big(ctx: XdpContext) -> u32 {
    let mut frame = XdpFrame { ctx: ctx.ctx };
    let mut tables = tables::MapTables::new(ctx.ctx);
    let Some(slot) = maps::SCRATCH.get(SCRATCH_INNER) else {
        return UNANSWERED.action as u32;
    };
    let Held {
        mtu,
        frame_len,
        matched,
    } = Held::take(slot);
    tables.matched = matched;
    // The budget first (it takes its own reference to this CPU's slot),
    // then the quote buffer of the same slot.
    let now = tables.now_ns();
    let sent = tables.take_answer(now)
        && match (maps::SCRATCH.get(0), TOO_BIG_SCRATCH.get_ptr_mut(0)) {
            (Some(key), Some(scratch)) => {
                let key = *key;
                // SAFETY: this CPU's slot; XDP runs do not nest on a CPU.
                let quote = unsafe { &mut (*scratch).quote };
                xdpath_core::lb::answer_too_big(&mut frame, &key, mtu, quote)
            }
            _ => false,
        };
    let outcome = if sent {
        xdpath_core::pipeline::Outcome {
            action: Action::Tx,
            reason: Reason::LbTooBig,
        }
    } else {
        UNANSWERED
    };
    tables.count(outcome.action, outcome.reason, frame_len);
    outcome.action as u32
}
