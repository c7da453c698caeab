//! The empty XDP program (`return XDP_PASS`): the baseline that
//! `xdpath bench` measures beside the real pipeline.
#![no_std]
#![no_main]

mod object;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
pub fn xdpath_empty(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}
