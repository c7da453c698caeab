//! The pipeline: parse → (later stages) → count, one statistics update at
//! the single exit.

use crate::config::{InterfaceConfig, MalformedPolicy};
use crate::filter::filter;
pub use crate::filter::filter_enabled;
pub use crate::filter::tables::Tables;
use crate::forward::{forward_stage, ForwardTables};
use crate::lb::{decap_stage, lb_stage, LbTables, LbVerdict};
use crate::packet::{Packet, PacketMut};
use crate::parse::{parse_into, FlowKey};
use crate::stats::{Action, Reason};
pub use crate::verdict::{Outcome, Step};

/// Runs the whole pipeline on one frame and counts the outcome.
///
/// The eBPF build runs the same sequence split in two: [`parse_stage`] in
/// one program and [`filter_stage`] in another, joined by a tail call, so
/// the verifier checks each alone.
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
            filter_stage(&key, frame_len, tables)
        }
        Step::Continue => class_outcome(&key),
    };
    tables.count(outcome.action, outcome.reason, frame_len);
    outcome
}

/// The whole pipeline on a frame it may rewrite (the native build's full
/// path): parse → filter → decapsulation or balancing → forwarding → one
/// count. The eBPF build runs balancing and forwarding as tail-called
/// programs of their own.
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
    let outcome = match parse_stage(packet, &mut key, tables) {
        Step::Done(outcome) => outcome,
        Step::Continue if filter_enabled(&tables.filter_config()) => {
            filter_stage(&key, frame_len, tables)
        }
        Step::Continue => class_outcome(&key),
    };
    let plain = LbVerdict {
        outcome,
        redirect_ifindex: 0,
    };
    // Only a plain pass goes on: a drop (or a monitored one) is settled.
    let verdict = if outcome.action == Action::Pass
        && !outcome.reason.is_filter()
        && !outcome.reason.is_malformed()
    {
        balance_stage(packet, &key, tables)
            .or_else(|| {
                forward_stage(packet, &key, tables).map(|forwarded| LbVerdict {
                    outcome: forwarded.outcome,
                    redirect_ifindex: forwarded.ifindex,
                })
            })
            .unwrap_or(plain)
    } else {
        plain
    };
    tables.count(verdict.outcome.action, verdict.outcome.reason, frame_len);
    verdict
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
        });
    }
    lb_stage(packet, key, tables)
}

/// Parses into `key`. A malformed frame is done (pass or drop by the
/// interface's policy); a well-formed one continues, with its class in
/// `key.class`.
#[inline(always)]
pub fn parse_stage<P: Packet, T: Tables>(packet: &P, key: &mut FlowKey, tables: &T) -> Step {
    match parse_into(packet, key) {
        Ok(layers) => {
            key.class = layers.class as u8;
            Step::Continue
        }
        // The interface config is read only on the drop paths: well-formed
        // traffic that no filter drops pays for no lookup.
        Err(reason) => {
            let config: InterfaceConfig = tables.interface_config();
            let action = match config.malformed_policy() {
                MalformedPolicy::Drop if config.monitor == 0 => Action::Drop,
                _ => Action::Pass,
            };
            Step::Done(Outcome { action, reason })
        }
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

/// Runs the filter on a parsed flow: a pass with its class, or a drop
/// (a pass when monitored) with the filter's reason.
#[inline(always)]
pub fn filter_stage<T: Tables>(key: &FlowKey, frame_len: u64, tables: &mut T) -> Outcome {
    decide_filtered(key, frame_len, tables)
}

#[inline(always)]
fn decide_filtered<T: Tables>(key: &FlowKey, frame_len: u64, tables: &mut T) -> Outcome {
    match filter(key, frame_len, tables) {
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
