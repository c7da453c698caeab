//! The flood generator of the end-to-end tests (`xdpath_lab::flood`). User
//! space runs it with `BPF_PROG_TEST_RUN` in live-frames mode on a test
//! bed's veth: each run gives the template frame the source of its flow
//! (`xdpath_core::flood::rewrite`, frame number from `FLOOD_SENT`) and
//! sends it out of that veth (`XDP_TX`), to the XDP program on its peer.
//! In the kernel, no socket buffers and no copies: a test can reach the
//! frame rates of the floods it reproduces on a small machine.
#![no_std]
#![no_main]

mod object;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::Array,
    programs::XdpContext,
};
use xdpath_core::flood::{rewrite, FloodPlan};
use xdpath_core::{Packet, PacketMut};

/// What to send (one entry, written by user space before the runs).
#[map]
static FLOOD_PLAN: Array<FloodPlan> = Array::with_max_entries(1, 0);

/// Frames generated so far (one entry): the next frame's number. Test runs
/// of one flood come from one thread, so one counter serves every CPU.
#[map]
static FLOOD_SENT: Array<u64> = Array::with_max_entries(1, 0);

/// The frame of this run, bounds read from the context.
struct Frame {
    start: usize,
    end: usize,
}

impl Packet for Frame {
    #[inline(always)]
    fn len(&self) -> usize {
        self.end - self.start
    }

    #[inline(always)]
    fn load<T: Copy>(&self, offset: usize) -> Option<T> {
        let at = self.start + offset;
        // Through black_box, so LLVM keeps the check the verifier needs.
        if core::hint::black_box(at + core::mem::size_of::<T>()) > self.end {
            return None;
        }
        // SAFETY: inside [data, data_end), checked just above.
        Some(unsafe { core::ptr::read_unaligned(at as *const T) })
    }
}

impl PacketMut for Frame {
    #[inline(always)]
    fn adjust_head(&mut self, _delta: i32) -> bool {
        false
    }

    #[inline(always)]
    fn adjust_tail(&mut self, _delta: i32) -> bool {
        false
    }

    #[inline(always)]
    fn store<T: Copy>(&mut self, offset: usize, value: T) -> bool {
        let at = self.start + offset;
        if core::hint::black_box(at + core::mem::size_of::<T>()) > self.end {
            return false;
        }
        // SAFETY: inside [data, data_end), checked just above.
        unsafe { core::ptr::write_unaligned(at as *mut T, value) };
        true
    }
}

#[xdp]
pub fn xdpath_flood(ctx: XdpContext) -> u32 {
    let (Some(plan), Some(sent)) = (FLOOD_PLAN.get(0), FLOOD_SENT.get_ptr_mut(0)) else {
        return xdp_action::XDP_ABORTED;
    };
    // SAFETY: the map's one slot; one thread drives the runs.
    let index = unsafe {
        let index = *sent;
        *sent = index + 1;
        index
    };
    let mut frame = Frame {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    if rewrite(&mut frame, plan, index) {
        xdp_action::XDP_TX
    } else {
        xdp_action::XDP_ABORTED
    }
}
