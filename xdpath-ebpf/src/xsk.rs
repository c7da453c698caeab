//! The AF_XDP redirect program: every frame goes to the XDP socket bound to
//! the queue it arrived on (`XSKS[rx_queue_index]`); a queue without a
//! socket passes its frames to the kernel stack.
//!
//! With [`abi::XSK_NEIGHBOURS_TO_STACK`] set in `XSK_FLAGS` (the user-space runtime
//! sets it when it has an exception path), ARP and IPv6 neighbour
//! discovery (ICMPv6 types 133 to 137, right after the IPv6 header; one
//! VLAN tag at most) go to the stack instead: the kernel must see them on
//! the interface itself to resolve its neighbours there and to answer for
//! the interface's addresses, which it would not do for frames handed to
//! it through another device.
//!
//! User space (`xdpath::afxdp`) puts each socket's fd into `XSKS` at the
//! index of the queue it is bound to.
#![no_std]
#![no_main]

mod object;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, XskMap},
    programs::XdpContext,
};
use xdpath_core::abi;
use xdpath_core::wire::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV6, ETHERTYPE_VLAN};
use xdpath_core::wire::{protocol, Ipv6Header};

/// AF_XDP sockets by receive queue index.
#[map]
static XSKS: XskMap = XskMap::with_max_entries(abi::MAX_XSK_QUEUES, 0);

/// Behaviour flags (one entry): [`abi::XSK_NEIGHBOURS_TO_STACK`].
#[map]
static XSK_FLAGS: Array<u32> = Array::with_max_entries(1, 0);

/// ICMPv6 types of neighbour discovery: router solicitation (133) to
/// redirect (137).
const ND_FIRST: u8 = 133;
const ND_LAST: u8 = 137;

/// The byte at `offset` of the frame, if the frame has it.
#[inline(always)]
fn byte(ctx: &XdpContext, offset: usize) -> Option<u8> {
    let at = ctx.data() + offset;
    if at + 1 > ctx.data_end() {
        return None;
    }
    // SAFETY: checked against data_end just above.
    Some(unsafe { *(at as *const u8) })
}

/// A big-endian u16 at `offset`.
#[inline(always)]
fn word(ctx: &XdpContext, offset: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        byte(ctx, offset)?,
        byte(ctx, offset + 1)?,
    ]))
}

/// Whether the frame is ARP or IPv6 neighbour discovery.
#[inline(always)]
fn neighbour_discovery(ctx: &XdpContext) -> bool {
    let Some(mut ethertype) = word(ctx, 12) else {
        return false;
    };
    let mut l3 = 14;
    if ethertype == ETHERTYPE_VLAN {
        let Some(inner) = word(ctx, 16) else {
            return false;
        };
        ethertype = inner;
        l3 = 18;
    }
    match ethertype {
        ETHERTYPE_ARP => true,
        ETHERTYPE_IPV6 => {
            byte(ctx, l3 + Ipv6Header::NEXT_HEADER) == Some(protocol::ICMPV6)
                && byte(ctx, l3 + Ipv6Header::LEN)
                    .is_some_and(|kind| (ND_FIRST..=ND_LAST).contains(&kind))
        }
        _ => false,
    }
}

#[xdp]
pub fn xdpath_xsk(ctx: XdpContext) -> u32 {
    let flags = XSK_FLAGS.get(0).copied().unwrap_or(0);
    if flags & abi::XSK_NEIGHBOURS_TO_STACK != 0 && neighbour_discovery(&ctx) {
        return xdp_action::XDP_PASS;
    }
    // The low bits of the flags are the action when the slot is empty.
    match XSKS.redirect(ctx.rx_queue_index(), u64::from(xdp_action::XDP_PASS)) {
        Ok(action) | Err(action) => action,
    }
}
