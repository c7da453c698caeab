//! The xdpath XDP program: the core pipeline bound to maps.
//!
//! One instance of this object is loaded per interface, so its maps are that
//! interface's own: user space pins them under
//! `/sys/fs/bpf/xdpath/<netns>/<interface>/`.
#![no_std]
#![no_main]

use aya_ebpf::{
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use xdpath_core::{
    packet::MAX_HEADER_OFFSET, pipeline, stats::counter_index, Action, AttachMeta, Counter, InterfaceConfig,
    Packet, Reason, Tables, COUNTER_SLOTS,
};

/// This interface's configuration: one entry, written by user space at
/// attach time and read only on the malformed-frame path.
#[map(name = "CONFIG")]
static CONFIG: Array<InterfaceConfig> = Array::with_max_entries(1, 0);

/// How and when user space attached this instance. The program never reads
/// it: it lives here so that it is pinned, and removed, with the program.
#[map(name = "META")]
static META: Array<AttachMeta> = Array::with_max_entries(1, 0);

/// Packets and bytes per (action, reason), per CPU so that the data path
/// never contends on a cache line; user space sums the CPUs.
#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

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

struct MapTables;

impl Tables for MapTables {
    #[inline(always)]
    fn interface_config(&self) -> InterfaceConfig {
        match CONFIG.get(0) {
            Some(config) => *config,
            None => InterfaceConfig::default(),
        }
    }

    #[inline(always)]
    fn count(&mut self, action: Action, reason: Reason, bytes: u64) {
        if let Some(counter) = COUNTERS.get_ptr_mut(counter_index(action, reason)) {
            // SAFETY: a per-CPU slot is only touched by this CPU, and XDP
            // programs do not preempt one another on a CPU.
            unsafe {
                (*counter).packets += 1;
                (*counter).bytes += bytes;
            }
        }
    }
}

#[xdp]
pub fn xdpath(ctx: XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    let packet = XdpPacket { start, end, length: end - start };
    pipeline::process(&packet, &mut MapTables).action as u32
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
