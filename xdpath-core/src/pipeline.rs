//! The pipeline: parse → (later stages) → count, one statistics update at
//! the single exit.

use crate::config::{InterfaceConfig, MalformedPolicy};
use crate::packet::Packet;
use crate::parse::parse;
use crate::stats::{counter_index, Action, Counter, Reason, COUNTER_SLOTS};

/// The state the pipeline reads and the counters it writes.
///
/// The eBPF build implements it over maps; [`NativeTables`] over plain
/// values.
pub trait Tables {
    /// The configuration of the interface the frame arrived on.
    fn interface_config(&self) -> InterfaceConfig;

    /// Adds one frame of `bytes` to the (action, reason) counter.
    fn count(&mut self, action: Action, reason: Reason, bytes: u64);
}

/// A frame's final verdict and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict.
    pub action: Action,
    /// The frame's class, or why it was malformed.
    pub reason: Reason,
}

/// Runs the whole pipeline on one frame and counts the outcome.
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
    let outcome = decide(packet, tables);
    tables.count(outcome.action, outcome.reason, packet.len() as u64);
    outcome
}

#[inline(always)]
fn decide<P: Packet, T: Tables>(packet: &P, tables: &T) -> Outcome {
    match parse(packet) {
        Ok(parsed) => Outcome { action: Action::Pass, reason: parsed.class },
        // The config is read only on this rare path: well-formed traffic
        // pays for no lookup.
        Err(reason) => {
            let action = match tables.interface_config().malformed_policy() {
                MalformedPolicy::Drop => Action::Drop,
                MalformedPolicy::Pass => Action::Pass,
            };
            Outcome { action, reason }
        }
    }
}

/// The native build's tables: one interface's config and counters.
#[derive(Clone, Debug)]
pub struct NativeTables {
    /// The interface configuration.
    pub config: InterfaceConfig,
    counters: [Counter; COUNTER_SLOTS as usize],
}

impl Default for NativeTables {
    fn default() -> Self {
        Self::new(InterfaceConfig::default())
    }
}

impl NativeTables {
    /// Tables with the given config and zeroed counters.
    pub const fn new(config: InterfaceConfig) -> Self {
        Self { config, counters: [Counter { packets: 0, bytes: 0 }; COUNTER_SLOTS as usize] }
    }

    /// One (action, reason) counter.
    pub fn counter(&self, action: Action, reason: Reason) -> Counter {
        self.counters.get(counter_index(action, reason) as usize).copied().unwrap_or_default()
    }

    /// All counter slots, indexed by [`crate::stats::counter_index`].
    pub fn counters(&self) -> &[Counter] {
        &self.counters
    }
}

impl Tables for NativeTables {
    #[inline(always)]
    fn interface_config(&self) -> InterfaceConfig {
        self.config
    }

    #[inline(always)]
    fn count(&mut self, action: Action, reason: Reason, bytes: u64) {
        if let Some(counter) = self.counters.get_mut(counter_index(action, reason) as usize) {
            counter.packets += 1;
            counter.bytes += bytes;
        }
    }
}
