//! The AF_XDP redirect program: every frame goes to the XDP socket bound to
//! the queue it arrived on (`XSKS[rx_queue_index]`); a queue without a
//! socket passes its frames to the kernel stack.
//!
//! User space (`xdpath::afxdp`) puts each socket's fd into `XSKS` at the
//! index of the queue it is bound to.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action, macros::map, macros::xdp, maps::XskMap, programs::XdpContext,
};

/// AF_XDP sockets by receive queue index.
#[map(name = "XSKS")]
static XSKS: XskMap = XskMap::with_max_entries(64, 0);

#[xdp]
pub fn xdpath_xsk(ctx: XdpContext) -> u32 {
    // The low bits of the flags are the action when the slot is empty.
    match XSKS.redirect(ctx.rx_queue_index(), u64::from(xdp_action::XDP_PASS)) {
        Ok(action) | Err(action) => action,
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
