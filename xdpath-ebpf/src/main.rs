//! The xdpath XDP program: the core pipeline bound to maps.
//!
//! One instance of this object is loaded per interface. Its own maps
//! (`CONFIG`, `COUNTERS`, `META`) are that interface's; the filter maps
//! are shared by every interface of a network namespace: user space loads
//! each instance with the same pin paths for them
//! (`/sys/fs/bpf/xdpath/<netns>/shared/<MAP>`), so one rule set serves all.
#![no_std]
#![no_main]

mod maps;
mod syncookie;
mod tables;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use xdpath_core::{packet::MAX_HEADER_OFFSET, pipeline, pipeline::Step, FlowKey, Packet, Tables};

/// A frame seen through the XDP context: every read is checked against
/// `data_end` after its offset is bounded by a constant, which is what the
/// verifier needs to accept variable offsets.
///
/// `length` is kept apart and read back with a volatile load: were it
/// `end - start` in plain sight, LLVM would prove a `load` bounds check
/// redundant after the parser's own length checks (`ip_end <= len`) and drop
/// it, and the verifier, which tracks only the checks it sees against
/// `data_end`, would then reject the access.
struct XdpPacket {
    start: usize,
    end: usize,
    length: usize,
}

impl Packet for XdpPacket {
    #[inline(always)]
    fn len(&self) -> usize {
        // SAFETY: a read of our own initialised field.
        unsafe { core::ptr::read_volatile(&self.length) }
    }

    #[inline(always)]
    fn load<T: Copy>(&self, offset: usize) -> Option<T> {
        if offset > MAX_HEADER_OFFSET {
            return None;
        }
        let at = self.start + offset;
        if at + core::mem::size_of::<T>() > self.end {
            return None;
        }
        // SAFETY: [at, at + size_of::<T>()) lies inside [data, data_end), as
        // checked just above; T is a plain-bytes wire type.
        Some(unsafe { core::ptr::read_unaligned(at as *const T) })
    }
}

/// The entry point: parse, then the filter stage through a tail call when
/// the filter has anything to do. Each program is verified on its own, so
/// the verifier's work adds up across stages instead of multiplying.
#[xdp]
pub fn xdpath(ctx: XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    let packet = XdpPacket {
        start,
        end,
        length: end - start,
    };
    // The key lives on the stack. Two calls of the parse stage: without a
    // filter, LLVM drops every key store but the class; with one, the key
    // is copied to this CPU's scratch slot for the tail-called stage.
    let mut tables = tables::MapTables { ctx: ctx.ctx };
    let mut key = FlowKey::default();
    let outcome = if pipeline::filter_enabled(&tables.filter_config()) {
        match pipeline::parse_stage(&packet, &mut key, &tables) {
            Step::Done(outcome) => outcome,
            Step::Continue => {
                if let Some(scratch) = maps::SCRATCH.get_ptr_mut(0) {
                    // SAFETY: this CPU's slot; XDP runs do not nest on a CPU.
                    key.copy_to(unsafe { &mut *scratch });
                    // SAFETY: a tail call with this program's own context.
                    // On success it does not return.
                    unsafe { maps::STAGES.tail_call(&ctx, maps::STAGE_FILTER) };
                }
                // The filter program is missing: pass, counted.
                pipeline::class_outcome(&key)
            }
        }
    } else {
        match pipeline::parse_stage(&packet, &mut key, &tables) {
            Step::Done(outcome) => outcome,
            Step::Continue => pipeline::class_outcome(&key),
        }
    };
    tables.count(outcome.action, outcome.reason, packet.len() as u64);
    outcome.action as u32
}

/// The filter stage, reached from [`xdpath`] by tail call with the flow key
/// in this CPU's scratch slot.
#[xdp]
pub fn xdpath_filter(ctx: XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    let frame_len = (end - start) as u64;
    let Some(key) = maps::SCRATCH.get_ptr(0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: this CPU's slot, written by the parse stage of this same run.
    let key = unsafe { &*key };
    let mut tables = tables::MapTables { ctx: ctx.ctx };
    let outcome = pipeline::filter_stage(key, frame_len, &mut tables);
    if outcome.action == xdpath_core::Action::Pass && !outcome.reason.is_filter() {
        // SYN-cookie mode: a SYN or ACK to a protected port goes on to the
        // cookie stage (which does not return here); anything else is done.
        syncookie::divert(&ctx, key);
    }
    tables.count(outcome.action, outcome.reason, frame_len);
    outcome.action as u32
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable: the core has no panicking path and the verifier would
    // reject a program that could reach one.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
