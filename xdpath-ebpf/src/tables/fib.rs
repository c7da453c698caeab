//! The kernel's FIB (`bpf_fib_lookup`): next hops towards backends and
//! routes for forwarding, and [`ForwardTables`] over them.
//!
//! [`ForwardTables`]: xdpath_core::forward::ForwardTables

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::{bpf_fib_lookup, xdp_md},
    helpers::bpf_fib_lookup,
};
use xdpath_core::forward::Route;
use xdpath_core::lb::NextHop;
use xdpath_core::Tables;

use super::MapTables;
use crate::maps::*;

/// `bpf_fib_lookup`'s argument block, 8-aligned so that it can be cleared
/// in eight word stores.
#[repr(C, align(8))]
struct FibBlock(bpf_fib_lookup);

const _: () = assert!(core::mem::size_of::<FibBlock>() == 8 * 8);

/// The block in `slot`, all zero. `core::mem::zeroed()` compiled to a
/// call of the object's `memset`, a byte loop over 52 bytes (about 260
/// instructions, `llvm-objdump -d`) on every FIB lookup: every forwarded
/// frame and every balanced frame without a fixed next hop; here it is
/// eight stores, volatile so that LLVM does not merge them back into a call.
#[inline(always)]
fn zeroed(slot: &mut MaybeUninit<FibBlock>) -> &mut bpf_fib_lookup {
    let words = slot.as_mut_ptr().cast::<u64>();
    for index in 0..8 {
        // SAFETY: the block is 64 bytes, 8-aligned: eight u64 slots.
        unsafe { core::ptr::write_volatile(words.add(index), 0) };
    }
    // SAFETY: every byte was written just above, and all-zero is a valid
    // bpf_fib_lookup (plain integers and unions of them).
    &mut unsafe { slot.assume_init_mut() }.0
}

/// `AF_INET`, `AF_INET6`.
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// The kernel's route and neighbour towards a backend
/// (`bpf_fib_lookup`, kernel 4.18): out of the ingress interface with
/// XDP_TX, or redirected to another. Not inlined: its 64-byte argument
/// block is its own stack frame.
#[inline(never)]
pub(super) fn fib_next_hop(ctx: *mut xdp_md, address: &[u8; 16], ipv4: bool) -> NextHop {
    let mut block = MaybeUninit::uninit();
    let params = zeroed(&mut block);
    // SAFETY: ctx is the kernel's xdp_md for this run.
    let ingress = unsafe { (*ctx).ingress_ifindex };
    params.ifindex = ingress;
    // Two aligned words (the address lives in an 8-aligned struct): byte
    // picks let LLVM merge them into unaligned loads the verifier refuses.
    let words = address.as_ptr().cast::<u64>();
    // SAFETY: 16 readable bytes, 8-aligned (the address is the first field
    // of an 8-aligned struct); volatile keeps LLVM from re-splitting them.
    let (high, low) = unsafe {
        (
            core::ptr::read_volatile(words),
            core::ptr::read_volatile(words.add(1)),
        )
    };
    let [h0, h1, h2, h3, h4, h5, h6, h7] = high.to_ne_bytes();
    let [l0, l1, l2, l3, l4, l5, l6, l7] = low.to_ne_bytes();
    if ipv4 {
        params.family = AF_INET;
        params.__bindgen_anon_3.ipv4_src = 0;
        params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes([l4, l5, l6, l7]);
    } else {
        params.family = AF_INET6;
        params.__bindgen_anon_4.ipv6_dst = [
            u32::from_ne_bytes([h0, h1, h2, h3]),
            u32::from_ne_bytes([h4, h5, h6, h7]),
            u32::from_ne_bytes([l0, l1, l2, l3]),
            u32::from_ne_bytes([l4, l5, l6, l7]),
        ];
    }
    // SAFETY: params is a bpf_fib_lookup on our stack, its size passed.
    let result = unsafe {
        bpf_fib_lookup(
            ctx.cast(),
            &mut *params,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    if result != 0 {
        return NextHop::Unreachable;
    }
    let destination = mac_of(&params.dmac);
    let source = mac_of(&params.smac);
    if params.ifindex == ingress {
        NextHop::Tx {
            destination,
            source,
        }
    } else {
        NextHop::Redirect {
            ifindex: params.ifindex,
            destination,
            source,
        }
    }
}

/// A MAC from the FIB's answer, byte by byte: the array sits at an odd
/// stack offset, where a wider load is refused.
#[inline(always)]
fn mac_of(bytes: &[u8; 6]) -> u64 {
    let mut value = 0u64;
    for byte in bytes {
        // SAFETY: a read of our own stack; volatile keeps it one byte wide.
        value = value << 8 | u64::from(unsafe { core::ptr::read_volatile(byte) });
    }
    value
}

impl xdpath_core::forward::ForwardTables for MapTables {
    #[inline(always)]
    fn forwarding_enabled(&self) -> bool {
        self.interface_config().forward != 0
    }

    #[inline(always)]
    fn route(&mut self, key: &xdpath_core::FlowKey, frame_len: u32) -> Route {
        fib_route(self.ctx, key, frame_len)
    }

    #[inline(always)]
    fn is_forward_port(&self, ifindex: u32) -> bool {
        FORWARD_PORTS.get_ifindex(ifindex).is_some()
    }
}

/// `bpf_fib_lookup` answers (include/uapi/linux/bpf.h).
const FIB_SUCCESS: i64 = 0;
const FIB_NO_NEIGHBOUR: i64 = 7;

/// The kernel's route for a flow to forward (`bpf_fib_lookup`, kernel
/// 4.18), checked against the egress MTU with the frame's IP length. Not
/// inlined: its 64-byte argument block is its own stack frame.
#[inline(never)]
fn fib_route(ctx: *mut xdp_md, key: &xdpath_core::FlowKey, frame_len: u32) -> Route {
    let mut block = MaybeUninit::uninit();
    let params = zeroed(&mut block);
    // SAFETY: ctx is the kernel's xdp_md for this run.
    params.ifindex = unsafe { (*ctx).ingress_ifindex };
    params.l4_protocol = key.protocol;
    params.sport = key.source_port.to_be();
    params.dport = key.destination_port.to_be();
    // Host order, unlike the ports: the kernel compares it with the MTU.
    params.__bindgen_anon_1.tot_len = frame_len.saturating_sub(14) as u16;
    let words = |address: &[u8; 16]| {
        let words = address.as_ptr().cast::<u64>();
        // SAFETY: 16 readable bytes, 8-aligned (both addresses sit at
        // 8-aligned offsets of the 8-aligned key); volatile keeps LLVM from
        // splitting them into unaligned pieces.
        unsafe {
            (
                core::ptr::read_volatile(words).to_ne_bytes(),
                core::ptr::read_volatile(words.add(1)).to_ne_bytes(),
            )
        }
    };
    let ([s0, s1, s2, s3, s4, s5, s6, s7], [s8, s9, s10, s11, s12, s13, s14, s15]) =
        words(&key.source);
    let ([d0, d1, d2, d3, d4, d5, d6, d7], [d8, d9, d10, d11, d12, d13, d14, d15]) =
        words(&key.destination);
    if key.ip_version == 4 {
        params.family = AF_INET;
        params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes([s12, s13, s14, s15]);
        params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes([d12, d13, d14, d15]);
    } else {
        params.family = AF_INET6;
        params.__bindgen_anon_3.ipv6_src = [
            u32::from_ne_bytes([s0, s1, s2, s3]),
            u32::from_ne_bytes([s4, s5, s6, s7]),
            u32::from_ne_bytes([s8, s9, s10, s11]),
            u32::from_ne_bytes([s12, s13, s14, s15]),
        ];
        params.__bindgen_anon_4.ipv6_dst = [
            u32::from_ne_bytes([d0, d1, d2, d3]),
            u32::from_ne_bytes([d4, d5, d6, d7]),
            u32::from_ne_bytes([d8, d9, d10, d11]),
            u32::from_ne_bytes([d12, d13, d14, d15]),
        ];
    }
    // SAFETY: params is a bpf_fib_lookup on our stack, its size passed.
    let result = unsafe {
        bpf_fib_lookup(
            ctx.cast(),
            &mut *params,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    match result {
        FIB_SUCCESS => Route::Forward {
            ifindex: params.ifindex,
            destination_mac: mac_of(&params.dmac),
            source_mac: mac_of(&params.smac),
        },
        FIB_NO_NEIGHBOUR => Route::NoNeighbour,
        _ => Route::NotForwarded,
    }
}
