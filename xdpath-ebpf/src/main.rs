//! The xdpath XDP program: the core pipeline bound to maps.
//!
//! One instance of this object is loaded per interface. Its own maps
//! (`CONFIG`, `COUNTERS`, `META`) are that interface's; the filter maps
//! are shared by every interface of a network namespace: user space loads
//! each instance with the same pin paths for them
//! (`/sys/fs/bpf/xdpath/<namespace key>/:shared/<MAP>`), so one rule set serves all.
#![no_std]
#![no_main]
#![feature(asm_experimental_arch)]

mod decapsulated;
mod frame;
mod limits;
mod maps;
mod object;
mod observe;
mod syncookie;
mod tables;
mod too_big;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use xdpath_core::filter::{self, Judged};
use xdpath_core::lb::{LbTables, VipKey, LB_ENABLED};
use xdpath_core::stages::{self, Stage};
use xdpath_core::steer;
use xdpath_core::{forward, pipeline, pipeline::Step, FlowKey, Packet, PacketMut, Tables};

use frame::{XdpFrame, XdpPacket};

/// Whether the balancing stage may have anything to do with this frame:
/// decapsulation is on, or its destination may be a VIP's (checked here so
/// traffic to no VIP pays for no tail call and no VIP lookup).
///
/// Both configurations are read in place (the entry's copy of the
/// interface's, else the map value): a copy of the 80-byte `LbConfig` cost
/// twenty instructions a frame for the two words tested.
#[inline(always)]
fn balance_enabled(key: &FlowKey, config: Option<&xdpath_core::InterfaceConfig>) -> bool {
    maps::LB_CONFIG
        .get(0)
        .is_some_and(|lb| lb.flags & LB_ENABLED != 0 && lb.may_be_vip(&key.destination))
        || interface_config(config, |config| config.decap != 0)
}

/// Whether the frame is for one of the balancer's VIPs (its port, or an
/// all-ports VIP). SYN cookies are for this host's own services: a VIP's
/// SYN must reach its backend, which answers it under direct server return,
/// so the SYN-cookie stage never takes one (it would answer for a backend
/// and pass the ACK to this host's stack). Only SYNs and ACKs to protected
/// ports with cookies on pay for these lookups.
#[inline(always)]
fn for_a_vip(tables: &tables::MapTables, key: &FlowKey) -> bool {
    let Some(config) = tables.lb_config() else {
        return false;
    };
    if config.flags & LB_ENABLED == 0 || !config.may_be_vip(&key.destination) {
        return false;
    }
    // Built by `VipKey::new`: a struct literal zeroed its reserved bytes
    // with a `memset` call (a byte loop) on each such frame.
    let vip = VipKey::new(&key.destination, key.destination_port, key.protocol);
    if tables.vip(&vip).is_some() {
        return true;
    }
    tables
        .vip(&VipKey::new(&key.destination, 0, key.protocol))
        .is_some()
}

/// The `SCRATCH` slot of a tunnelled frame's inner key (slot 0 holds the
/// frame's own).
pub(crate) const SCRATCH_INNER: u32 = 1;

/// The flow key in this CPU's scratch slot, as a later stage finds it.
#[inline(always)]
pub(crate) fn scratch_key() -> Option<&'static FlowKey> {
    // SAFETY: this CPU's slot, written by the stage that tail-called this
    // one in the same run; XDP runs do not nest on a CPU.
    maps::SCRATCH.get_ptr(0).map(|key| unsafe { &*key })
}

/// Whether a frame may be steered: a plain pass (a class, not a filter's
/// monitored drop), on an interface that steers to CPUs or on a queue an
/// AF_XDP socket owns. Such frames go on to the steering stage; the entry
/// and filter programs hold no redirect to a CPU or socket map of their
/// own, because a program that does runs about 35 ns slower on every
/// frame, redirect taken or not (measured on 6.18: 18 ns against 53 ns a
/// frame with no state).
#[inline(always)]
fn steering(
    ctx: *mut aya_ebpf::bindings::xdp_md,
    outcome: pipeline::Outcome,
    config: Option<&xdpath_core::InterfaceConfig>,
) -> bool {
    if !steer::steerable(&outcome) {
        return false;
    }
    // SAFETY: ctx is the kernel's xdp_md for this run.
    let (queue, ifindex) = unsafe { ((*ctx).rx_queue_index, (*ctx).ingress_ifindex) };
    interface_config(config, |config| config.steer != 0)
        || maps::XSK_OWNERS
            .get(queue)
            .is_some_and(|owner| *owner == ifindex)
}

/// `test` of the interface config: the copy the entry program already
/// holds, else read in place (a copy would sit in a later stage's frame).
/// Reading it again in the entry cost about 1 ns a frame (kernel-reported,
/// parse+count row of `xdpath bench`).
#[inline(always)]
fn interface_config(
    copy: Option<&xdpath_core::InterfaceConfig>,
    test: impl Fn(&xdpath_core::InterfaceConfig) -> bool,
) -> bool {
    match copy {
        Some(config) => test(config),
        None => maps::CONFIG.get(0).is_some_and(test),
    }
}

/// The steering stage: a plain pass handed to a CPU or an AF_XDP socket
/// ([`steer`]), reached by tail call from the entry or the filter stage
/// with the flow key in this CPU's scratch slot.
#[xdp]
pub fn xdpath_steer(ctx: XdpContext) -> u32 {
    let frame_len = (ctx.data_end() - ctx.data()) as u64;
    let Some(key) = scratch_key() else {
        return xdp_action::XDP_PASS;
    };
    let mut tables = tables::MapTables::new(ctx.ctx);
    // Only plain passes come here, so the outcome is the key's class.
    let outcome = pipeline::class_outcome(key);
    let (action, counted) = steer(ctx.ctx, key, outcome);
    tables.count(counted, outcome.reason, frame_len);
    action
}

/// A plain pass (a class, not a filter's monitored drop) handed to a CPU
/// of the steering list by flow hash when the interface steers (software
/// RSS); returns the action code to return and the action to count.
/// Not inlined: its locals stay out of the large stages' frames.
#[inline(never)]
fn steer(
    ctx: *mut aya_ebpf::bindings::xdp_md,
    key: &FlowKey,
    outcome: pipeline::Outcome,
) -> (u32, xdpath_core::Action) {
    let plain = (outcome.action as u32, outcome.action);
    if !steer::steerable(&outcome) {
        return plain;
    }
    // A flow an AF_XDP application asked for, to the socket of the queue
    // it arrived on (bound to this interface): the queue's owner first
    // (an array read), then the rule (a hash lookup).
    // SAFETY: ctx is the kernel's xdp_md for this run.
    let (queue, ifindex) = unsafe { ((*ctx).rx_queue_index, (*ctx).ingress_ifindex) };
    if maps::XSK_OWNERS
        .get(queue)
        .is_some_and(|owner| *owner == ifindex)
    {
        let rule = steer::xsk_rule(key.protocol, key.destination_port);
        // SAFETY: a plain lookup in a hash map of u32.
        if unsafe { maps::STEER_XSK.get(&rule) }.is_some() {
            if let Ok(action) = maps::XSKS.redirect(queue, 0) {
                return (action, xdpath_core::Action::Redirect);
            }
        }
    }
    if maps::CONFIG.get(0).is_none_or(|config| config.steer == 0) {
        return plain;
    }
    let Some(slot) = maps::STEER_CPUS
        .get(0)
        .and_then(|count| steer::cpu_slot(key.flow_hash(), *count))
    else {
        return plain;
    };
    let Some(cpu) = maps::STEER_CPUS.get(slot) else {
        return plain;
    };
    let cpu = *cpu;
    match maps::CPU_MAP.redirect(cpu, 0) {
        Ok(action) => {
            if let Some(steered) = maps::STEER_STATS.get_ptr_mut(cpu) {
                // SAFETY: a per-CPU slot, touched only by this CPU.
                unsafe { *steered += 1 };
            }
            (action, xdpath_core::Action::Redirect)
        }
        Err(_) => plain,
    }
}

/// Where the flow key is when a stage goes on: the entry program parsed
/// it on its stack; a later stage found it in this CPU's scratch slot.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyAt {
    Stack,
    Scratch,
}

/// Goes on from `after` in the order of [`Stage::next`] (the order the
/// native pipeline walks too): tail-calls the first later stage that wants
/// the frame, which does not return; returns when none does (or its
/// program is missing). Unrolled by hand over [`Stage::next_at`] so that
/// each step folds to one stage's test (see there why not a loop).
#[inline(always)]
fn go_on(
    ctx: &XdpContext,
    after: Stage,
    key: &FlowKey,
    at: KeyAt,
    outcome: pipeline::Outcome,
    tables: &tables::MapTables,
    config: Option<&xdpath_core::InterfaceConfig>,
) {
    const _: () = assert!(Stage::MAX_NEXT == 4, "go_on tries four stages");
    try_stage(ctx, after.next_at(0), key, at, outcome, tables, config);
    try_stage(ctx, after.next_at(1), key, at, outcome, tables, config);
    try_stage(ctx, after.next_at(2), key, at, outcome, tables, config);
    try_stage(ctx, after.next_at(3), key, at, outcome, tables, config);
}

/// Tail-calls `stage` if there is one and it wants the frame. Each test
/// reads its map in place, and the key is copied to the scratch slot only
/// for a stage that will run.
#[inline(always)]
fn try_stage(
    ctx: &XdpContext,
    stage: Option<Stage>,
    key: &FlowKey,
    at: KeyAt,
    outcome: pipeline::Outcome,
    tables: &tables::MapTables,
    config: Option<&xdpath_core::InterfaceConfig>,
) {
    let Some(stage) = stage else {
        return;
    };
    let wanted = match stage {
        Stage::Parse => false,
        Stage::Filter => pipeline::filter_enabled(&tables.filter_config()),
        Stage::SynCookie => syncookie::wants_cookie(key) && !for_a_vip(tables, key),
        Stage::Balance => balance_enabled(key, config),
        Stage::Forward => interface_config(config, |config| config.forward != 0),
        Stage::Steer => steering(ctx.ctx, outcome, config),
    };
    let Some(slot) = stage.slot() else {
        return;
    };
    if !wanted {
        return;
    }
    if at == KeyAt::Stack {
        let Some(scratch) = maps::SCRATCH.get_ptr_mut(0) else {
            return;
        };
        // SAFETY: this CPU's slot; XDP runs do not nest on a CPU.
        key.copy_to(unsafe { &mut *scratch });
    }
    // SAFETY: a tail call with this program's own context; on success it
    // does not return.
    unsafe { maps::STAGES.tail_call(ctx, slot) };
}

/// The entry point: parse, then on to the later stages ([`go_on`]). Each
/// program is verified on its own, so the verifier's work adds up across
/// stages instead of multiplying.
#[xdp]
pub fn xdpath(ctx: XdpContext) -> u32 {
    let packet = XdpPacket::of(ctx.data(), ctx.data_end());
    let mut tables = tables::MapTables::new(ctx.ctx);
    let config = tables.interface_config();
    tables.maybe_chosen = observe::begin(&ctx, &config, packet.length as u32);
    let mut key = FlowKey::default();
    let outcome = match pipeline::parse_stage(&packet, &mut key, &tables) {
        Step::Done(outcome) => outcome,
        Step::Continue => {
            let outcome = pipeline::class_outcome(&key);
            go_on(
                &ctx,
                Stage::Parse,
                &key,
                KeyAt::Stack,
                outcome,
                &tables,
                Some(&config),
            );
            outcome
        }
    };
    tables.count(outcome.action, outcome.reason, packet.len() as u64);
    outcome.action as u32
}

/// The filter stage, reached by tail call with the flow key in this CPU's
/// scratch slot; a plain pass goes on ([`go_on`]).
#[xdp]
pub fn xdpath_filter(ctx: XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    let frame_len = (end - start) as u64;
    let Some(key) = scratch_key() else {
        return xdp_action::XDP_PASS;
    };
    let packet = XdpPacket::of(start, end);
    let mut tables = tables::MapTables::new(ctx.ctx);
    // A tunnelled frame's inner key goes to this CPU's second scratch
    // slot, looked up only when the filter asks for it; not for a
    // decapsulated frame, whose arrival length waits there (see
    // `decapsulated`: its tunnels are judged on their headers, as
    // natively).
    let inner_slot = || {
        if key.decapsulated != 0 {
            return None;
        }
        // SAFETY: this CPU's slot; XDP runs do not nest on a CPU.
        maps::SCRATCH
            .get_ptr_mut(SCRATCH_INNER)
            .map(|inner| unsafe { &mut *inner })
    };
    let outcome = match filter::judge(&packet, key, &mut tables, inner_slot) {
        Judged::Decided(drop) => pipeline::filtered_outcome(key, drop, &tables),
        Judged::Limits(layers) => {
            let unlimited = limits::hand_over(&ctx, &layers, tables.matched);
            pipeline::filtered_outcome(key, unlimited, &tables)
        }
    };
    filter_exit(&ctx, key, outcome, &mut tables, frame_len)
}

/// The filter stage's exit, in the filter program or in its limits'
/// ([`limits`]): a decapsulated frame settles; a plain pass goes on
/// ([`go_on`]); the frame is counted.
#[inline(always)]
pub(crate) fn filter_exit(
    ctx: &XdpContext,
    key: &FlowKey,
    outcome: pipeline::Outcome,
    tables: &mut tables::MapTables,
    frame_len: u64,
) -> u32 {
    if let Some((decap, arrived_len)) = decapsulated::handed_over(key) {
        let settled = decapsulated::settled(decap, outcome);
        tables.count(settled.action, settled.reason, arrived_len);
        return settled.action as u32;
    }
    if stages::plain_pass(&outcome) {
        go_on(
            ctx,
            Stage::Filter,
            key,
            KeyAt::Scratch,
            outcome,
            tables,
            None,
        );
    }
    tables.count(outcome.action, outcome.reason, frame_len);
    outcome.action as u32
}

/// The balancing stage: on a backend, decapsulation; on a balancer, a VIP's
/// frames encapsulated to their backends. Reached by tail call with the
/// flow key in this CPU's scratch slot; a frame for neither goes on
/// ([`go_on`]: forwarding, and no steering, see [`Stage::next`]).
#[xdp]
pub fn xdpath_balance(ctx: XdpContext) -> u32 {
    let mut frame = XdpFrame { ctx: ctx.ctx };
    let frame_len = frame.len() as u64;
    let Some(key) = scratch_key() else {
        return xdp_action::XDP_PASS;
    };
    let mut tables = tables::MapTables::new(ctx.ctx);
    let (mut outcome, redirect) = match pipeline::balance_stage(&mut frame, key, &mut tables) {
        Some(verdict) if pipeline::is_answered_too_big(&verdict) => (
            too_big::hand_over(&ctx, verdict.announced_mtu, frame_len, tables.matched),
            0,
        ),
        Some(verdict) => (verdict.outcome, verdict.redirect_ifindex),
        None => {
            let outcome = pipeline::class_outcome(key);
            go_on(
                &ctx,
                Stage::Balance,
                key,
                KeyAt::Scratch,
                outcome,
                &tables,
                None,
            );
            (outcome, 0)
        }
    };
    if pipeline::needs_inner_judging(&outcome, &tables) {
        outcome = decapsulated::hand_over(&ctx, outcome.reason, frame_len);
    }
    let mut action = outcome.action as u32;
    if outcome.action == xdpath_core::Action::Redirect {
        // SAFETY: a helper taking an interface index (kernel 4.14).
        action = unsafe { aya_ebpf::helpers::bpf_redirect(redirect, 0) } as u32;
    }
    tables.count(outcome.action, outcome.reason, frame_len);
    action
}

/// The forwarding stage: a frame not for this host, routed by the FIB,
/// rewritten and redirected through the `FORWARD_PORTS` device map.
/// Reached by tail call with the flow key in this CPU's scratch slot. The
/// stage after it in [`Stage::next`], steering, runs here as a call
/// ([`steer`]) rather than a tail call: this program's frame has room for
/// it, and a frame it does not forward is settled here either way.
#[xdp]
pub fn xdpath_forward(ctx: XdpContext) -> u32 {
    let mut frame = XdpFrame { ctx: ctx.ctx };
    let frame_len = frame.len() as u64;
    let Some(key) = scratch_key() else {
        return xdp_action::XDP_PASS;
    };
    let mut tables = tables::MapTables::new(ctx.ctx);
    // A forwarded frame was handed to the `FORWARD_PORTS` device map when
    // the stage claimed its egress port (`claim_egress`): its action is
    // `XDP_REDIRECT`, which `steer` leaves as it is.
    let outcome = match forward::forward_stage(&mut frame, key, &mut tables) {
        Some(verdict) => verdict.outcome,
        None => pipeline::class_outcome(key),
    };
    let (action, counted) = steer(ctx.ctx, key, outcome);
    tables.count(counted, outcome.reason, frame_len);
    action
}
