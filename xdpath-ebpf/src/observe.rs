//! Sampling and capture in the kernel: a frame is chosen at the entry,
//! while its bytes are still those that arrived, and its record is sent at
//! the single exit, once the verdict is known (see `xdpath_core::observe`).

use aya_ebpf::{
    bindings::xdp_md,
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns, bpf_xdp_load_bytes},
    programs::XdpContext,
};
use xdpath_core::observe::{
    sample_hit, sample_len, sample_step, CAPTURE_BYTES, LOSS_CAPTURE, LOSS_SAMPLES,
    RECORD_CAPTURED, RECORD_SAMPLED, SAMPLE_BYTES,
};
use xdpath_core::{Action, InterfaceConfig, Reason};

use crate::maps::{
    PacketRecord, CAPTURE, CAPTURE_RING, OBSERVE_LOSS, RECORD, SAMPLES, SAMPLE_SKIP,
    VIP_SAMPLE_RATES,
};

/// A sample as the sample ring stores it: the metadata and
/// `SAMPLE_BYTES` of frame (fixed size, so the ring's reservation is a
/// constant the verifier accepts).
type SampleBytes = [u8; xdpath_core::observe::RECORD_META_LEN + SAMPLE_BYTES as usize];

/// Chooses the frame for sampling (1 in the interface's rate) and for
/// capture (the capture filter's interface), copying its head into this
/// CPU's record; true if it was chosen. Costs two array lookups when
/// neither is on.
#[inline(always)]
pub fn begin(ctx: &XdpContext, config: &InterfaceConfig, frame_len: u32) -> bool {
    let rate = config.sample_rate;
    let mut flags = 0u8;
    let mut copy = 0u32;
    if rate != 0 {
        if let Some(left) = SAMPLE_SKIP.get_ptr_mut(0) {
            // SAFETY: this CPU's slot; XDP runs do not nest on a CPU.
            let left = unsafe { &mut *left };
            // The random draw (a helper call) only when a sample is taken.
            let (hit, next) = if *left > 1 && *left < rate.saturating_mul(2) {
                (false, *left - 1)
            } else {
                // SAFETY: a helper with no arguments (kernel 4.1).
                sample_step(rate, *left, unsafe { bpf_get_prandom_u32() })
            };
            *left = next;
            if hit {
                flags = RECORD_SAMPLED;
                copy = sample_len(frame_len);
            }
        }
    }
    if let Some(capture) = CAPTURE.get(0) {
        // The interface index costs three dependent loads: only when
        // capturing.
        if capture.enabled != 0
            // SAFETY: ctx is the kernel's xdp_md for this run.
            && capture.wants_interface(unsafe { (*ctx.ctx).ingress_ifindex })
        {
            flags |= RECORD_CAPTURED;
            let wanted = capture.copy_len(frame_len);
            if wanted > copy {
                copy = wanted;
            }
        }
    }
    if flags == 0 {
        return false;
    }
    // SAFETY: ctx is the kernel's xdp_md for this run.
    fill(unsafe { &*ctx.ctx }, flags, copy, rate, frame_len)
}

/// Copies the frame's first `copy` bytes into this CPU's record and fills
/// its metadata for `flags`; false when it could not.
#[inline(always)]
fn fill(ctx: &xdp_md, flags: u8, copy: u32, rate: u32, frame_len: u32) -> bool {
    let Some(record) = RECORD.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's slot; XDP runs do not nest on a CPU.
    let record = unsafe { &mut *record };
    // The bound the verifier needs for the helper's length: 1..=CAPTURE_BYTES.
    let copy = core::hint::black_box(copy);
    if copy == 0 || copy > CAPTURE_BYTES {
        return false;
    }
    let ctx_ptr = (ctx as *const xdp_md).cast_mut();
    // SAFETY: the destination holds CAPTURE_BYTES bytes and copy is at most
    // that; the helper checks the frame's own bounds (kernel 5.18).
    let loaded = unsafe { bpf_xdp_load_bytes(ctx_ptr, 0, record.data.as_mut_ptr().cast(), copy) };
    if loaded != 0 {
        return false;
    }
    record.meta.flags = flags;
    record.meta.captured_len = copy as u16;
    record.meta.frame_len = frame_len;
    record.meta.sample_rate = if flags & RECORD_SAMPLED != 0 { rate } else { 0 };
    record.meta.matched = 0;
    record.meta.ifindex = ctx.ingress_ifindex;
    // The precise clock, unlike the filter's coarse one: only chosen
    // frames pay for it. SAFETY: a helper with no arguments.
    record.meta.timestamp_ns = unsafe { bpf_ktime_get_ns() };
    true
}

/// Samples a frame to VIP slot `vip` at the VIP's own rate
/// (`VIP_SAMPLE_RATES`), replacing the entry's choice by the interface's
/// rate; a capture stays. Called by the balancing stage before it changes
/// the frame. Not inlined: the balancing stage's stack is nearly full, and
/// this frame is smaller than `pick_backend`'s, which follows it.
#[inline(never)]
pub fn sample_for_vip(ctx: *mut xdp_md, vip: u32, frame_len: u32) {
    let Some(rate) = VIP_SAMPLE_RATES.get(vip) else {
        return;
    };
    let rate = *rate;
    let Some(record) = RECORD.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot, filled (or not) by the entry in this run.
    let record = unsafe { &mut *record };
    let captured = record.meta.flags & RECORD_CAPTURED;
    // SAFETY: a helper with no arguments (kernel 4.1).
    if !sample_hit(rate, unsafe { bpf_get_prandom_u32() }) {
        record.meta.flags = captured;
        record.meta.sample_rate = 0;
        return;
    }
    let mut copy = sample_len(frame_len);
    if captured != 0 && u32::from(record.meta.captured_len) > copy {
        copy = u32::from(record.meta.captured_len);
    }
    // SAFETY: ctx is the kernel's xdp_md for this run.
    if !fill(
        unsafe { &*ctx },
        RECORD_SAMPLED | captured,
        copy,
        rate,
        frame_len,
    ) {
        record.meta.flags = 0;
    }
}

/// Completes and sends this CPU's record, if the frame was chosen: to the
/// sample ring if sampled, to the capture ring if the capture filter wants
/// its verdict. A full ring is counted in `OBSERVE_LOSS`.
#[inline(always)]
pub fn finish(action: Action, reason: Reason, matched: u32) {
    let Some(record) = RECORD.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot, filled by `begin` in this same run.
    let record = unsafe { &mut *record };
    let flags = record.meta.flags;
    if flags == 0 {
        return;
    }
    record.meta.flags = 0;
    record.meta.action = action as u8;
    record.meta.reason = reason as u8;
    record.meta.matched = matched;
    if flags & RECORD_SAMPLED != 0 {
        let captured = record.meta.captured_len;
        if u32::from(captured) > SAMPLE_BYTES {
            record.meta.captured_len = SAMPLE_BYTES as u16;
        }
        record.meta.flags = RECORD_SAMPLED;
        // SAFETY: the record starts with its metadata followed by at least
        // SAMPLE_BYTES of data, so it holds a SampleBytes prefix.
        let bytes = unsafe { &*(record as *const PacketRecord).cast::<SampleBytes>() };
        if SAMPLES.output::<SampleBytes>(bytes, 0).is_err() {
            count_loss(LOSS_SAMPLES);
        }
        record.meta.captured_len = captured;
        record.meta.flags = 0;
    }
    if flags & RECORD_CAPTURED != 0 {
        if let Some(capture) = CAPTURE.get(0) {
            if capture.enabled != 0 && capture.wants(action, reason) {
                record.meta.flags = RECORD_CAPTURED;
                if CAPTURE_RING.output::<PacketRecord>(&*record, 0).is_err() {
                    count_loss(LOSS_CAPTURE);
                }
                record.meta.flags = 0;
            }
        }
    }
}

#[inline(always)]
fn count_loss(slot: u32) {
    if let Some(lost) = OBSERVE_LOSS.get_ptr_mut(slot) {
        // SAFETY: a per-CPU slot, touched only by this CPU.
        unsafe { *lost += 1 };
    }
}
