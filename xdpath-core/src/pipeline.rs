//! The pipeline: parse → (later stages) → count, one statistics update at
//! the single exit.

use crate::config::{InterfaceConfig, MalformedPolicy};
use crate::filter::{
    filter, BlockEntry, BucketKey, BucketTable, Charge, FilterConfig, PrefixKey, RateLimit, Rule,
    RuleChain,
};
use crate::forward::{forward_stage, ForwardTables};
use crate::lb::{decap_stage, lb_stage, LbTables, LbVerdict};
use crate::packet::{Packet, PacketMut};
use crate::parse::{parse_into, FlowKey};
use crate::stats::{Action, Reason};

/// The state the pipeline reads and the counters it writes.
///
/// The eBPF build implements it over maps; [`NativeTables`] over plain
/// values.
pub trait Tables {
    /// The configuration of the interface the frame arrived on.
    fn interface_config(&self) -> InterfaceConfig;

    /// Adds one frame of `bytes` to the (action, reason) counter: the
    /// single exit, where a frame chosen for sampling or capture is sent
    /// with its verdict.
    fn count(&mut self, action: Action, reason: Reason, bytes: u64);

    /// Called once per frame before any stage, to choose it for sampling
    /// or capture while its bytes are those that arrived. The eBPF build
    /// does this in its entry program instead; the default chooses nothing.
    fn observe_arrival<P: Packet>(&mut self, packet: &P) {
        let _ = packet;
    }

    /// The index of the interface the frame arrived on (0 when unknown).
    fn ifindex(&self) -> u32;

    /// Now, CLOCK_MONOTONIC ns in the kernel; replay uses capture time.
    fn now_ns(&self) -> u64;

    /// The global filter configuration.
    fn filter_config(&self) -> FilterConfig;

    /// The chain of the longest source prefix in rule buffer `buffer`.
    fn source_chain(&self, buffer: u32, address: &[u8; 16]) -> Option<&RuleChain>;

    /// The chain of the longest destination prefix in rule buffer `buffer`.
    fn destination_chain(&self, buffer: u32, address: &[u8; 16]) -> Option<&RuleChain>;

    /// Rule `index` of buffer `buffer`.
    fn rule(&self, buffer: u32, index: u32) -> Option<&Rule>;

    /// Counts a hit of rule `id`.
    fn count_rule_hit(&mut self, id: u32);

    /// The blocklist entry of the longest prefix holding `address`.
    fn blocklist_entry(&self, address: &[u8; 16]) -> Option<BlockEntry>;

    /// Removes an expired blocklist entry.
    fn remove_blocklist_entry(&mut self, key: PrefixKey);

    /// Rate limit `index`.
    fn rate_limit(&self, index: u32) -> Option<&RateLimit>;

    /// Charges one frame to the bucket at `key` in `table` under the limit
    /// in slot `charge.slot`, through [`crate::filter::charge_bucket`]: the
    /// table's bucket, or, when the table holds none (never had one, or
    /// evicted it), one started from the bucket's bounds; false when it is
    /// over the limit.
    fn take_tokens(&mut self, table: BucketTable, key: &BucketKey, charge: &Charge) -> bool;

    /// Counts a drop by rate limit `index`.
    fn count_limit_drop(&mut self, index: u32);

    /// Whether `port` is a reflection (amplification) source port.
    fn is_reflection_port(&self, port: u16) -> bool;

    /// Whether `destination` expects traffic from reflection ports.
    fn expects_reflection(&self, destination: &[u8; 16]) -> bool;

    /// Whether `source` is in a management prefix.
    fn is_management_source(&self, source: &[u8; 16]) -> bool;

    /// Whether `port` is a management port.
    fn is_management_port(&self, port: u16) -> bool;
}

/// A frame's final verdict and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict.
    pub action: Action,
    /// The frame's class, or why it was malformed.
    pub reason: Reason,
}

/// What a stage decided: a final outcome, or go on to the next stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The frame's fate is settled.
    Done(Outcome),
    /// On to the next stage.
    Continue,
}

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

/// Whether the filter stage has anything to do.
#[inline(always)]
pub fn filter_enabled(config: &FilterConfig) -> bool {
    config.flags != 0
        || config.rate_limits != 0
        || config.fragments_v4 != 0
        || config.fragments_v6 != 0
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
