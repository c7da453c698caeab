//! The pipeline: parse → (later stages) → count, one statistics update at
//! the single exit.

use crate::config::{InterfaceConfig, MalformedPolicy};
pub use crate::filter::filter_enabled;
pub use crate::filter::tables::Tables;
use crate::filter::{filter, FilterDrop};
use crate::forward::{forward_stage, ForwardTables};
use crate::lb::{decap_stage, lb_stage, LbTables, LbVerdict};
use crate::packet::{Packet, PacketMut};
use crate::parse::{parse_into, FlowKey};
use crate::stages::{self, Stage};
use crate::stats::{Action, Reason};
pub use crate::verdict::{Outcome, Step};

/// Runs the whole pipeline on one frame and counts the outcome.
///
/// The eBPF build runs the same sequence split in programs joined by tail
/// calls, in the order of [`Stage::next`], so the verifier checks each
/// alone.
///
/// # Examples
///
/// ```
/// use xdpath_core::{pipeline, Action, InterfaceConfig, MalformedPolicy, NativeTables, Reason, SlicePacket};
/// let mut tables = NativeTables::new(InterfaceConfig::new(MalformedPolicy::Drop));
/// let outcome = pipeline::process(&SlicePacket::new(&[0; 4]), &mut tables);
/// assert_eq!((outcome.action, outcome.reason), (Action::Drop, Reason::TruncatedEthernet));
/// assert_eq!(tables.counter(Action::Drop, Reason::TruncatedEthernet).packets, 1);
/// ```
#[inline(always)]
pub fn process<P: Packet, T: Tables>(packet: &P, tables: &mut T) -> Outcome {
    tables.observe_arrival(packet);
    let mut key = FlowKey::default();
    let frame_len = packet.len() as u64;
    let outcome = match parse_stage(packet, &mut key, tables) {
        Step::Done(outcome) => outcome,
        Step::Continue if filter_enabled(&tables.filter_config()) => {
            let mut inner = None;
            filter_stage(packet, &key, frame_len, tables, inner_slot(&mut inner))
        }
        Step::Continue => class_outcome(&key),
    };
    tables.count(outcome.action, outcome.reason, frame_len);
    outcome
}

/// The whole pipeline on a frame it may rewrite (the native build's full
/// path): parse, then the later stages in the order of [`Stage::next`]
/// (filter, decapsulation or balancing, forwarding), then one count. The
/// eBPF build walks the same order with tail calls between programs.
///
/// # Examples
///
/// ```
/// use xdpath_core::{pipeline, Action, FrameBuffer, NativeTables, Reason};
/// let mut tables = NativeTables::default();
/// let verdict = pipeline::process_frame(&mut FrameBuffer::new(&[0; 20]), &mut tables);
/// assert_eq!(verdict.outcome.reason, Reason::NonIp);
/// ```
pub fn process_frame<P: PacketMut, T: Tables + LbTables + ForwardTables>(
    packet: &mut P,
    tables: &mut T,
) -> LbVerdict {
    tables.observe_arrival(packet);
    let mut key = FlowKey::default();
    let frame_len = packet.len() as u64;
    let verdict = match parse_stage(packet, &mut key, tables) {
        Step::Done(outcome) => settled(outcome),
        Step::Continue => later_stages(packet, &key, frame_len, tables),
    };
    tables.count(verdict.outcome.action, verdict.outcome.reason, frame_len);
    verdict
}

/// A verdict with no redirect.
#[inline(always)]
fn settled(outcome: Outcome) -> LbVerdict {
    LbVerdict {
        outcome,
        redirect_ifindex: 0,
        announced_mtu: 0,
    }
}

/// Whether the balancing stage answers the frame with an ICMP "too big"
/// ([`crate::lb::answer_too_big`]; in the kernel build the program
/// `xdpath_too_big` writes it).
#[inline(always)]
pub fn is_answered_too_big(verdict: &LbVerdict) -> bool {
    verdict.outcome.action == Action::Tx && verdict.outcome.reason == Reason::LbTooBig
}

/// Walks [`Stage::next`] from parsing: at each step the frame enters the
/// first stage that takes it, and goes on from there only while it is a
/// plain pass.
#[inline(always)]
fn later_stages<P: PacketMut, T: Tables + LbTables + ForwardTables>(
    packet: &mut P,
    key: &FlowKey,
    frame_len: u64,
    tables: &mut T,
) -> LbVerdict {
    let mut verdict = settled(class_outcome(key));
    let mut at = Stage::Parse;
    // Each step moves to a later stage (`Stage::next` only goes forward),
    // so the walk ends within `Stage::ALL.len()` steps.
    for _ in Stage::ALL {
        let entered = at.next().iter().find_map(|next| {
            enter(*next, packet, key, frame_len, tables).map(|found| (*next, found))
        });
        let Some((stage, (found, goes_on))) = entered else {
            break;
        };
        verdict = found;
        at = stage;
        if !goes_on {
            break;
        }
    }
    verdict
}

/// Runs `stage` natively if it takes the frame: its verdict, and whether
/// the frame goes on to a later stage. SYN cookies and steering are the
/// kernel's alone.
#[inline(always)]
fn enter<P: PacketMut, T: Tables + LbTables + ForwardTables>(
    stage: Stage,
    packet: &mut P,
    key: &FlowKey,
    frame_len: u64,
    tables: &mut T,
) -> Option<(LbVerdict, bool)> {
    match stage {
        Stage::Filter if filter_enabled(&tables.filter_config()) => {
            let mut inner = None;
            let outcome = filter_stage(&*packet, key, frame_len, tables, inner_slot(&mut inner));
            Some((settled(outcome), stages::plain_pass(&outcome)))
        }
        Stage::Balance => balance_stage(packet, key, tables).map(|mut verdict| {
            if needs_inner_judging(&verdict.outcome, tables) {
                let mut inner = FlowKey::default();
                let frame_len = packet.len() as u64;
                // No key for a tunnel inside: the kernel's is where the
                // frame's arrival length waits (`xdpath-ebpf`'s
                // `decapsulated`), so both judge such a tunnel on its
                // headers.
                verdict.outcome = judge_decapsulated(
                    &*packet,
                    verdict.outcome,
                    &mut inner,
                    frame_len,
                    tables,
                    || None,
                );
            }
            if is_answered_too_big(&verdict) {
                let mut quote = [0; crate::lb::QUOTE_MAX];
                let now = tables.now_ns();
                let sent = tables.take_answer(now)
                    && crate::lb::answer_too_big(packet, key, verdict.announced_mtu, &mut quote);
                if !sent {
                    verdict.outcome.action = Action::Drop;
                }
            }
            (verdict, false)
        }),
        Stage::Forward => forward_stage(packet, key, tables).map(|forwarded| {
            let verdict = LbVerdict {
                outcome: forwarded.outcome,
                redirect_ifindex: forwarded.ifindex,
                announced_mtu: 0,
            };
            (verdict, false)
        }),
        Stage::Parse | Stage::Filter | Stage::SynCookie | Stage::Steer => None,
    }
}

/// Decapsulation (on a backend), else balancing (on a balancer); `None`
/// when neither applies to the frame.
#[inline(always)]
pub fn balance_stage<P: PacketMut, T: LbTables>(
    packet: &mut P,
    key: &FlowKey,
    tables: &mut T,
) -> Option<LbVerdict> {
    if let Some(outcome) = decap_stage(packet, key, tables) {
        return Some(LbVerdict {
            outcome,
            redirect_ifindex: 0,
            announced_mtu: 0,
        });
    }
    lb_stage(packet, key, tables)
}

/// Whether `outcome` is a decapsulation's (the frame stripped of its IPIP
/// or GUE, for the stack) while the filter holds anything: then the inner
/// packet must be judged too ([`judge_decapsulated`]).
#[inline(always)]
pub fn needs_inner_judging<T: Tables>(outcome: &Outcome, tables: &T) -> bool {
    outcome.action == Action::Pass
        && matches!(outcome.reason, Reason::DecapIpip | Reason::DecapGue)
        && filter_enabled(&tables.filter_config())
}

/// Judges a decapsulated frame (`packet`, already stripped) on its inner
/// headers, as if it had arrived so: the stack behind the decapsulator
/// sees only those, so a deny rule, a blocklist entry, a rate limit or a
/// guard that the inner packet meets must drop it — else one layer of
/// IPIP or GUE from any host gets past every rule (the filter judged only
/// the outer headers, the balancer's). So a decapsulated frame passes only
/// if both layers pass. An inner packet the parser refuses is dropped,
/// as a frame the filter cannot judge ([`malformed_action`]). `decap` is
/// the decapsulation's outcome, kept when the inner packet passes;
/// `frame_len` the stripped frame's length (for byte rate limits).
#[inline(always)]
pub fn judge_decapsulated<'s, P: Packet, T: Tables>(
    packet: &P,
    decap: Outcome,
    key: &mut FlowKey,
    frame_len: u64,
    tables: &mut T,
    inner_slot: impl FnOnce() -> Option<&'s mut FlowKey>,
) -> Outcome {
    if let Err(reason) = parse_decapsulated(packet, key) {
        return refused_decapsulated(reason, tables);
    }
    let judged = filter_stage(packet, key, frame_len, tables, inner_slot);
    if stages::plain_pass(&judged) {
        decap
    } else {
        judged
    }
}

/// Parses a decapsulated frame into `key`, its class included. (The eBPF
/// build parses in a program of its own and hands the key to the filter
/// program: the parse and the filter in one program passed the verifier's
/// million instructions, E2BIG, even with the parse a subprogram.)
#[inline(always)]
pub fn parse_decapsulated<P: Packet>(packet: &P, key: &mut FlowKey) -> Result<(), Reason> {
    let layers = parse_into(packet, key)?;
    key.class = layers.class as u8;
    Ok(())
}

/// Parses into `key`. A malformed frame is done: dropped by the
/// interface's policy `drop`, or while the filter holds anything (see
/// [`malformed_action`]), else passed; a well-formed one continues, with
/// its class in `key.class`.
#[inline(always)]
pub fn parse_stage<P: Packet, T: Tables>(packet: &P, key: &mut FlowKey, tables: &T) -> Step {
    match parse_into(packet, key) {
        Ok(layers) => {
            key.class = layers.class as u8;
            Step::Continue
        }
        Err(reason) => Step::Done(Outcome {
            action: malformed_action(tables),
            reason,
        }),
    }
}

/// What happens to a frame the parser refuses. The policy `pass` hands it
/// to the stack, which makes its own checks; but the stack accepts some
/// frames the parser refuses (more than eight IPv6 extension headers,
/// headers beyond the deepest offset read, an IPv4 first fragment too
/// short for its TCP header), so while the filter holds anything to
/// enforce (`filter_enabled`) they are dropped: a frame the filter cannot
/// judge does not get past it, else a blocklisted source or a denied port
/// is reached by reshaping the frame. A monitored interface drops nothing.
///
/// The configs are read only here: well-formed traffic pays for neither.
#[inline(always)]
fn malformed_action<T: Tables>(tables: &T) -> Action {
    let config: InterfaceConfig = tables.interface_config();
    if config.monitor != 0 {
        return Action::Pass;
    }
    match config.malformed_policy() {
        MalformedPolicy::Drop => Action::Drop,
        MalformedPolicy::Pass if filter_enabled(&tables.filter_config()) => Action::Drop,
        MalformedPolicy::Pass => Action::Pass,
    }
}

/// The outcome of a decapsulated frame whose inner packet the parser
/// refuses: a frame the filter cannot judge ([`malformed_action`]).
#[inline(always)]
pub fn refused_decapsulated<T: Tables>(reason: Reason, tables: &T) -> Outcome {
    Outcome {
        action: malformed_action(tables),
        reason,
    }
}

/// A pass with the class the parser left in `key`.
#[inline(always)]
pub fn class_outcome(key: &FlowKey) -> Outcome {
    Outcome {
        action: Action::Pass,
        reason: Reason::class_from_u8(key.class),
    }
}

/// The native builds' inner key: on the stack, made only when asked for.
#[inline(always)]
fn inner_slot<'s>(storage: &'s mut Option<FlowKey>) -> impl FnOnce() -> Option<&'s mut FlowKey> {
    move || Some(storage.insert(FlowKey::default()))
}

/// Runs the filter on a parsed flow: a pass with its class, or a drop
/// (a pass when monitored) with the filter's reason. `inner_slot` lends
/// the key a tunnelled frame's inner headers are parsed into, asked for
/// only when the frame is one and a rule or limit names a VNI.
#[inline(always)]
pub fn filter_stage<'s, P: Packet, T: Tables>(
    packet: &P,
    key: &FlowKey,
    frame_len: u64,
    tables: &mut T,
    inner_slot: impl FnOnce() -> Option<&'s mut FlowKey>,
) -> Outcome {
    let drop = filter(packet, key, frame_len, tables, inner_slot);
    filtered_outcome(key, drop, tables)
}

/// The filter's verdict as the frame's outcome: a pass with its class, or
/// the drop (a pass when monitored, by the drop's limit or rule or by the
/// interface) with the filter's reason.
#[inline(always)]
pub fn filtered_outcome<T: Tables>(key: &FlowKey, drop: Option<FilterDrop>, tables: &T) -> Outcome {
    match drop {
        None => class_outcome(key),
        Some(drop) => {
            let monitor = drop.monitor || tables.interface_config().monitor != 0;
            Outcome {
                action: if monitor { Action::Pass } else { Action::Drop },
                reason: drop.reason,
            }
        }
    }
}
