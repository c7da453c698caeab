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

/// The 32-bit word `index` (0–3) of an address as it is stored (network
/// order, the helper's too), read as one aligned word: every address
/// handed here sits at an 8-aligned offset of an 8-aligned struct (the
/// flow key's, a backend's). Volatile, so that LLVM neither splits it into
/// byte loads nor merges neighbours into unaligned loads the verifier
/// refuses on the stack. Building the words from the address's bytes (the
/// earlier way) was about 30 shifts and ors a lookup (`llvm-objdump -d`).
#[inline(always)]
fn word(address: &[u8; 16], index: usize) -> u32 {
    // SAFETY: 16 readable bytes, 4-aligned (above); index < 4 at every call.
    unsafe { core::ptr::read_volatile(address.as_ptr().cast::<u32>().add(index)) }
}

/// An IPv6 address's four words, as [`word`].
#[inline(always)]
fn words(address: &[u8; 16]) -> [u32; 4] {
    [
        word(address, 0),
        word(address, 1),
        word(address, 2),
        word(address, 3),
    ]
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
    if ipv4 {
        params.family = AF_INET;
        params.__bindgen_anon_3.ipv4_src = 0;
        params.__bindgen_anon_4.ipv4_dst = word(address, 3);
    } else {
        params.family = AF_INET6;
        params.__bindgen_anon_4.ipv6_dst = words(address);
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
    let (destination, source) = macs_of(params);
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

/// The FIB's answer: the destination and source MACs (as
/// `xdpath_core::lb::mac_value`), each from two aligned loads of the
/// 8-aligned block, where `smac` sits at byte 52 (a word, then a half
/// word) and `dmac` at 58 (a half word, then a word). Volatile, so that
/// LLVM does not merge them into an unaligned load the verifier refuses on
/// the stack. Byte by byte (the earlier way) it was twelve loads and some
/// twenty shifts and ors a lookup (`llvm-objdump -d`).
#[inline(always)]
fn macs_of(params: &bpf_fib_lookup) -> (u64, u64) {
    const _: () = assert!(core::mem::offset_of!(bpf_fib_lookup, smac) == 52);
    const _: () = assert!(core::mem::offset_of!(bpf_fib_lookup, dmac) == 58);
    let smac = params.smac.as_ptr();
    let dmac = params.dmac.as_ptr();
    // SAFETY: reads inside the two 6-byte arrays, at offsets aligned to
    // their width (the block is 8-aligned, and the offsets are checked
    // just above).
    let (source_high, source_low, destination_high, destination_low) = unsafe {
        (
            core::ptr::read_volatile(smac.cast::<u32>()),
            core::ptr::read_volatile(smac.add(4).cast::<u16>()),
            core::ptr::read_volatile(dmac.cast::<u16>()),
            core::ptr::read_volatile(dmac.add(2).cast::<u32>()),
        )
    };
    let destination =
        u64::from(u16::from_be(destination_high)) << 32 | u64::from(u32::from_be(destination_low));
    let source = u64::from(u32::from_be(source_high)) << 16 | u64::from(u16::from_be(source_low));
    (destination, source)
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
    fn claim_egress(&mut self, ifindex: u32) -> bool {
        // The redirect itself: a lookup to check the port and another to
        // redirect were two hash lookups of the same key a forwarded frame.
        FORWARD_PORTS.redirect(ifindex, 0).is_ok()
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
    if key.ip_version == 4 {
        params.family = AF_INET;
        params.__bindgen_anon_3.ipv4_src = word(&key.source, 3);
        params.__bindgen_anon_4.ipv4_dst = word(&key.destination, 3);
    } else {
        params.family = AF_INET6;
        params.__bindgen_anon_3.ipv6_src = words(&key.source);
        params.__bindgen_anon_4.ipv6_dst = words(&key.destination);
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
        FIB_SUCCESS => {
            let (destination_mac, source_mac) = macs_of(params);
            Route::Forward {
                ifindex: params.ifindex,
                destination_mac,
                source_mac,
            }
        }
        FIB_NO_NEIGHBOUR => Route::NoNeighbour,
        _ => Route::NotForwarded,
    }
}
