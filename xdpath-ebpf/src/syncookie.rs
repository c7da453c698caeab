//! SYN-cookie mode: the third stage, `xdpath_syncookie`, reached by tail call
//! from the filter stage (slot `abi::stage::SYNCOOKIE` of `STAGES`).
//!
//! **Kernel only.** The cookie is the kernel's own (`__cookie_v4/v6_init_sequence`,
//! through the helpers `bpf_tcp_raw_gen_syncookie_ipv4/ipv6` and
//! `bpf_tcp_raw_check_syncookie_ipv4/ipv6`), keyed by the kernel's secret,
//! so that the listener accepts the ACK of a SYN-ACK sent from XDP. The
//! native build (replay, bench) has no such secret and does not implement
//! the mode: there `FILTER_SYN_COOKIES` changes nothing.
//!
//! What the stage does, for TCP to a port set in `SYNCOOKIE_PORTS` once the
//! filter has passed the frame:
//!
//! - **SYN** (no ACK, RST or FIN): answered here. The frame is rewritten in
//!   place into a SYN-ACK (MACs swapped and VLAN tags kept here; the IP and
//!   TCP headers built by `xdpath_core::syncookie::build_reply`) and sent
//!   back with `XDP_TX`, counted as (tx, syn-cookie-sent).
//!   The host must run with `net.ipv4.tcp_syncookies=2`: the kernel only
//!   accepts a cookie ACK within two minutes of its listener's last
//!   "overflow", and with `tcp_syncookies=2` every SYN it sees counts as
//!   one. So at most one SYN a second per port is passed to the kernel
//!   instead (the kernel answers it with its own cookie, keeping no state);
//!   the ones in between are answered here.
//! - **ACK** (no SYN): if the kernel has a socket for the 4-tuple other than
//!   the listener (an established or time-wait one), it passes. Otherwise
//!   the ACK must carry a valid cookie: it passes (counted as its class) and
//!   the kernel makes the connection from it, or it is dropped (counted as
//!   syn-cookie-invalid; in monitor mode passed and counted so).
//!
//! IPv6 frames with extension headers before TCP are passed untouched (the
//! kernel still answers their SYNs with cookies, keeping no state).
//!
//! Every read and write of the frame goes through `bpf_xdp_load_bytes` /
//! `bpf_xdp_store_bytes` into and out of a per-CPU scratch slot, so the
//! verifier sees only constant offsets into map memory and the program
//! stays small.

use aya_ebpf::{
    bindings::{xdp_action, BPF_F_CURRENT_NETNS},
    helpers::generated::{
        bpf_ktime_get_ns, bpf_sk_release, bpf_skc_lookup_tcp, bpf_tcp_raw_check_syncookie_ipv4,
        bpf_tcp_raw_check_syncookie_ipv6, bpf_tcp_raw_gen_syncookie_ipv4,
        bpf_tcp_raw_gen_syncookie_ipv6, bpf_xdp_adjust_tail, bpf_xdp_load_bytes,
        bpf_xdp_store_bytes,
    },
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use xdpath_core::abi;
use xdpath_core::filter::{kernel_accepts_source, FILTER_SYN_COOKIES};
use xdpath_core::syncookie;
use xdpath_core::wire::tcp::{FLAG_ACK, FLAG_FIN, FLAG_RST, FLAG_SYN};
use xdpath_core::wire::{protocol, Ipv4Header, Ipv6Header, TcpHeader};
use xdpath_core::{Action, FlowKey, Reason, Tables};

use crate::maps::{FILTER_CONFIG, SCRATCH, SYNCOOKIE_PORTS};
use crate::tables::MapTables;

/// At most one SYN per port per this many ns goes on to the kernel.
const KERNEL_SYN_INTERVAL_NS: u64 = 1_000_000_000;
/// `TCP_LISTEN` of the kernel's `enum tcp_state`.
const TCP_LISTEN: u32 = 10;

/// Per-CPU working space: the frame's headers as read, and the reply as
/// built. In map memory, so no stack alignment rules apply.
#[repr(C, align(8))]
pub struct CookieScratch {
    /// Destination and source MAC of the frame.
    eth: [u8; 16],
    /// The IP header (20 bytes IPv4, 40 bytes IPv6).
    ip: [u8; syncookie::IP_ROOM],
    /// The TCP header with its options (at most 60 bytes).
    tcp: [u8; syncookie::TCP_ROOM],
    /// The reply: IP header, then TCP header (at most 64 bytes), or a
    /// `bpf_sock_tuple` (at most 36 bytes) on the ACK path.
    out: [u8; syncookie::OUT_ROOM],
}

/// Scratch space for this stage, one slot per CPU.
#[map]
static COOKIE_SCRATCH: PerCpuArray<CookieScratch> = PerCpuArray::with_max_entries(1, 0);

/// When a SYN to each port last went on to the kernel (CLOCK_MONOTONIC ns).
/// This interface's own map; not pinned.
#[map]
static SYNCOOKIE_PASSED: Array<u64> = Array::with_max_entries(abi::SYNCOOKIE_PASSED_SLOTS, 0);

/// Whether the flow goes to the SYN-cookie stage: cookie mode on, TCP with
/// its header (not a later fragment), a SYN without ACK or an ACK without
/// SYN, to a protected port.
#[inline(always)]
pub fn wants_cookie(key: &FlowKey) -> bool {
    if key.protocol != protocol::TCP || key.fragment == xdpath_core::Fragment::Later as u8 {
        return false;
    }
    let syn_ack = key.tcp_flags & (FLAG_SYN | FLAG_ACK);
    if syn_ack != FLAG_SYN && syn_ack != FLAG_ACK {
        return false;
    }
    let on = match FILTER_CONFIG.get(0) {
        Some(config) => config.flags & FILTER_SYN_COOKIES != 0,
        None => false,
    };
    if !on {
        return false;
    }
    let port = key.destination_port;
    match SYNCOOKIE_PORTS.get(u32::from(port >> 6)) {
        Some(word) => *word & (1u64 << (port & 63)) != 0,
        None => false,
    }
}

/// The SYN-cookie stage, with the flow key in this CPU's `SCRATCH` slot.
#[xdp]
pub fn xdpath_syncookie(ctx: XdpContext) -> u32 {
    let frame_len = (ctx.data_end() - ctx.data()) as u64;
    let mut tables = MapTables::new(ctx.ctx);
    let Some(key) = SCRATCH.get_ptr(0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: this CPU's slot, written by the parse stage of this same run.
    let key = unsafe { &*key };
    let class = Reason::class_from_u8(key.class);
    let (action, reason, bytes) = match stage(&ctx, key) {
        Verdict::Pass => (Action::Pass, class, frame_len),
        Verdict::Sent(len) => (Action::Tx, Reason::SynCookieSent, len),
        Verdict::Invalid => {
            if tables.interface_config().monitor != 0 {
                (Action::Pass, Reason::SynCookieInvalid, frame_len)
            } else {
                (Action::Drop, Reason::SynCookieInvalid, frame_len)
            }
        }
    };
    tables.count(action, reason, bytes);
    action as u32
}

/// What the stage decided.
enum Verdict {
    /// On to the kernel.
    Pass,
    /// A SYN-ACK of this many bytes goes back out.
    Sent(u64),
    /// An ACK whose cookie does not check.
    Invalid,
}

#[inline(always)]
fn stage(ctx: &XdpContext, key: &FlowKey) -> Verdict {
    let Some(scratch) = COOKIE_SCRATCH.get_ptr_mut(0) else {
        return Verdict::Pass;
    };
    // SAFETY: this CPU's slot; XDP runs do not nest on a CPU.
    let scratch = unsafe { &mut *scratch };
    let v6 = key.ip_version == 6;
    if !v6 && key.ip_version != 4 {
        return Verdict::Pass;
    }
    let l3: u32 = match key.vlan_count {
        0 => 14,
        1 => 18,
        2 => 22,
        _ => return Verdict::Pass,
    };
    let md = ctx.ctx;
    // The IP header.
    let l4 = if v6 {
        if load(md, l3, scratch.ip.as_mut_ptr(), Ipv6Header::LEN as u32).is_none() {
            return Verdict::Pass;
        }
        // Extension headers: left to the kernel.
        if scratch.ip[Ipv6Header::NEXT_HEADER] != protocol::TCP {
            return Verdict::Pass;
        }
        l3 + Ipv6Header::LEN as u32
    } else {
        if load(md, l3, scratch.ip.as_mut_ptr(), Ipv4Header::LEN as u32).is_none() {
            return Verdict::Pass;
        }
        l3 + u32::from(scratch.ip[Ipv4Header::VERSION_IHL] & 0x0f) * 4
    };
    // The fixed TCP header.
    if load(md, l4, scratch.tcp.as_mut_ptr(), TcpHeader::LEN as u32).is_none() {
        return Verdict::Pass;
    }
    let flags = scratch.tcp[TcpHeader::FLAGS];
    if flags & (FLAG_SYN | FLAG_ACK | FLAG_RST | FLAG_FIN) == FLAG_SYN {
        syn(ctx, key, scratch, v6, l3, l4)
    } else if flags & (FLAG_SYN | FLAG_ACK) == FLAG_ACK {
        ack(ctx, scratch, v6)
    } else {
        Verdict::Pass
    }
}

/// Copies `len` bytes of the frame at `offset` into `to`.
#[inline(always)]
fn load(md: *mut aya_ebpf::bindings::xdp_md, offset: u32, to: *mut u8, len: u32) -> Option<()> {
    // SAFETY: `to` points into this CPU's scratch slot with room for `len`
    // bytes (every caller passes a constant or a value bounded below it).
    let rc = unsafe { bpf_xdp_load_bytes(md, offset, to.cast(), len) };
    (rc == 0).then_some(())
}

/// Answers a SYN with a cookie SYN-ACK, or lets it on to the kernel.
// Stays long: one inlined, verifier-checked path; helpers would change its stack frame and what the verifier accepts.
#[inline(always)]
fn syn(
    ctx: &XdpContext,
    key: &FlowKey,
    scratch: &mut CookieScratch,
    v6: bool,
    l3: u32,
    l4: u32,
) -> Verdict {
    let md = ctx.ctx;
    // Keep the kernel's listener in cookie mode: one SYN a second per port
    // goes to it. Only from a source the kernel takes: a spoofed martian
    // (a flood's random sources include them) is dropped before TCP, and
    // would spend the second's turn without renewing the listener's cookie
    // window, so a real client's cookie ACK would then be refused.
    // SAFETY: a helper with no arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let to_kernel = if kernel_accepts_source(&key.source, key.ip_version) {
        SYNCOOKIE_PASSED.get_ptr_mut(u32::from(key.destination_port))
    } else {
        None
    };
    if let Some(last) = to_kernel {
        // SAFETY: a live map value; racing CPUs can at worst both pass a SYN.
        unsafe {
            if *last == 0 || now.wrapping_sub(*last) >= KERNEL_SYN_INTERVAL_NS {
                *last = now;
                return Verdict::Pass;
            }
        }
    }
    // The TCP header with its options, for the MSS.
    let tcp_len = u32::from(scratch.tcp[TcpHeader::DATA_OFFSET] >> 4) * 4;
    // A data offset counts 32-bit words in 4 bits: 60 bytes at most.
    if !(TcpHeader::LEN as u32..=60).contains(&tcp_len) {
        return Verdict::Pass;
    }
    if tcp_len > TcpHeader::LEN as u32 && load(md, l4, scratch.tcp.as_mut_ptr(), tcp_len).is_none()
    {
        return Verdict::Pass;
    }
    // SAFETY: the headers lie in the scratch slot: 20 or 40 bytes of IP
    // header, `tcp_len` (20 to 60) bytes of TCP header.
    let generated = unsafe {
        if v6 {
            bpf_tcp_raw_gen_syncookie_ipv6(
                scratch.ip.as_mut_ptr().cast(),
                scratch.tcp.as_mut_ptr().cast(),
                tcp_len,
            )
        } else {
            bpf_tcp_raw_gen_syncookie_ipv4(
                scratch.ip.as_mut_ptr().cast(),
                scratch.tcp.as_mut_ptr().cast(),
                tcp_len,
            )
        }
    };
    if generated < 0 {
        return Verdict::Pass;
    }
    let cookie = generated as u32;
    let mss = (generated >> 32) as u16;
    if load(md, 0, scratch.eth.as_mut_ptr(), 12).is_none() {
        return Verdict::Pass;
    }

    // The reply's headers, built in `out` by the core (the same code the
    // tests check the kernel's replies against).
    let reply_len =
        syncookie::build_reply(&scratch.ip, &scratch.tcp, v6, cookie, mss, &mut scratch.out);

    // Resize the frame to Ethernet (and tags) + IP + TCP, then write.
    let new_len = l3 as usize + reply_len;
    let old_len = ctx.data_end() - ctx.data();
    let delta = new_len as i32 - old_len as i32;
    // SAFETY: the kernel checks the new size against the buffer.
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(md, delta) } != 0 {
        return Verdict::Pass;
    }
    let eth = &mut scratch.eth;
    let mut index = 0;
    while index < 6 {
        eth.swap(index, index + 6);
        index += 1;
    }
    let out_len = reply_len as u32;
    // SAFETY: the sources lie in the scratch slot with room for the lengths.
    let stored = unsafe {
        bpf_xdp_store_bytes(md, 0, scratch.eth.as_mut_ptr().cast(), 12) == 0
            && bpf_xdp_store_bytes(md, l3, scratch.out.as_mut_ptr().cast(), out_len) == 0
    };
    if !stored {
        // The frame is half rewritten and cannot go to the kernel.
        return Verdict::Invalid;
    }
    Verdict::Sent(new_len as u64)
}

/// Passes an ACK of an existing connection or with a valid cookie.
#[inline(always)]
fn ack(ctx: &XdpContext, scratch: &mut CookieScratch, v6: bool) -> Verdict {
    let md = ctx.ctx;
    // bpf_sock_tuple: source, destination, ports, all in network order.
    let tuple = &mut scratch.out;
    let address = if v6 { 16 } else { 4 };
    let (source, destination) = if v6 {
        (Ipv6Header::SOURCE, Ipv6Header::DESTINATION)
    } else {
        (Ipv4Header::SOURCE, Ipv4Header::DESTINATION)
    };
    let mut index = 0;
    while index < address {
        tuple[index] = scratch.ip[source + index];
        tuple[address + index] = scratch.ip[destination + index];
        index += 1;
    }
    index = 0;
    while index < 4 {
        tuple[2 * address + index] = scratch.tcp[TcpHeader::SOURCE_PORT + index];
        index += 1;
    }
    // SAFETY: the tuple lies in the scratch slot; the size is constant on
    // each path. A returned socket is released on every path.
    let existing = unsafe {
        let socket = if v6 {
            bpf_skc_lookup_tcp(
                md.cast(),
                scratch.out.as_mut_ptr().cast(),
                36,
                BPF_F_CURRENT_NETNS as u64,
                0,
            )
        } else {
            bpf_skc_lookup_tcp(
                md.cast(),
                scratch.out.as_mut_ptr().cast(),
                12,
                BPF_F_CURRENT_NETNS as u64,
                0,
            )
        };
        if socket.is_null() {
            false
        } else {
            let state = (*socket).state;
            bpf_sk_release(socket.cast());
            state != TCP_LISTEN
        }
    };
    if existing {
        return Verdict::Pass;
    }
    // SAFETY: 20 or 40 bytes of IP header and 20 of TCP in the scratch slot.
    let checked = unsafe {
        if v6 {
            bpf_tcp_raw_check_syncookie_ipv6(
                scratch.ip.as_mut_ptr().cast(),
                scratch.tcp.as_mut_ptr().cast(),
            )
        } else {
            bpf_tcp_raw_check_syncookie_ipv4(
                scratch.ip.as_mut_ptr().cast(),
                scratch.tcp.as_mut_ptr().cast(),
            )
        }
    };
    if checked == 0 {
        Verdict::Pass
    } else {
        Verdict::Invalid
    }
}
