//! The minimal redirect program, the forwarding benchmark's peer: every
//! frame to the interface in `REDIRECT_TO[0]`, untouched (no FIB lookup,
//! no rewrite).
#![no_std]
#![no_main]

mod object;

use aya_ebpf::{
    bindings::xdp_action, helpers::bpf_redirect, macros::map, macros::xdp, maps::Array,
    programs::XdpContext,
};

/// The interface index frames are redirected to.
#[map]
static REDIRECT_TO: Array<u32> = Array::with_max_entries(1, 0);

#[xdp]
pub fn xdpath_redirect(_ctx: XdpContext) -> u32 {
    match REDIRECT_TO.get(0) {
        // SAFETY: a helper taking an interface index (kernel 4.14).
        Some(ifindex) => unsafe { bpf_redirect(*ifindex, 0) as u32 },
        None => xdp_action::XDP_PASS,
    }
}
