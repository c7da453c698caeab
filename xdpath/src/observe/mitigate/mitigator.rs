//! [`Mitigator`]: per-prefix rates over a sliding window of slots, and the
//! decisions taken from them.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::prefix::{network, overlaps, Prefix};
use super::{
    MitigationAction, MitigationConfig, MitigationError, MitigationStats, ACTION_LOG_LEN,
    EVICTION_CANDIDATES, SLOTS,
};
use crate::observe::Sample;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Arrival time divided by the slot length; a smaller one is stale.
    index: u64,
    packets: u64,
    bytes: u64,
}

/// Decides which source prefixes to block.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use xdpath::observe::mitigate::{MitigationConfig, Mitigator};
/// use xdpath::observe::Sample;
/// use xdpath_core::observe::RecordMeta;
///
/// let config = MitigationConfig { threshold_pps: 1_000, prefix_v4: 24, ..Default::default() };
/// let mut mitigator = Mitigator::new(config).unwrap();
/// let mut frame = vec![0u8; 12];
/// frame.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0, 0, 64, 17, 0, 0,
///     198, 51, 100, 7, 10, 0, 0, 2, 0x30, 0x39, 0, 53]);
/// // 30 samples at 1 in 100 over 1.5 s: 3,000 packets in a 2 s window.
/// for step in 0..30u64 {
///     let meta = RecordMeta { frame_len: 60, sample_rate: 100, ..Default::default() };
///     mitigator.observe(&Sample { meta, unix_ns: 10_000_000_000 + step * 50_000_000, data: frame.clone() });
/// }
/// let actions = mitigator.decide(11_500);
/// assert_eq!(actions.len(), 1);
/// assert_eq!((actions[0].prefix.to_string(), actions[0].prefix_len), ("198.51.100.0".into(), 24));
/// assert_eq!(actions[0].rate_pps, 1_500);
/// assert!(actions[0].dry_run);
/// assert!(mitigator.decide(11_600).is_empty());
/// ```
#[derive(Clone, Debug)]
pub struct Mitigator {
    config: MitigationConfig,
    slot_ns: u64,
    window_ns: u64,
    tracked: HashMap<Prefix, [Slot; SLOTS]>,
    /// Prefixes acted on, with when their action expires (Unix ms).
    active: HashMap<Prefix, u64>,
    log: VecDeque<MitigationAction>,
    stats: MitigationStats,
}
/// Packets and bytes of the slots inside the window ending at slot `now`.
fn window_sum(slots: &[Slot; SLOTS], now: u64) -> (u64, u64) {
    let oldest = now.saturating_add(1).saturating_sub(SLOTS as u64);
    slots
        .iter()
        .filter(|slot| slot.index >= oldest && slot.index <= now)
        .fold((0, 0), |(packets, bytes), slot| {
            (
                packets.saturating_add(slot.packets),
                bytes.saturating_add(slot.bytes),
            )
        })
}

impl Mitigator {
    /// A mitigator with `config`, refused if [`MitigationConfig::validate`]
    /// refuses it.
    pub fn new(config: MitigationConfig) -> Result<Self, MitigationError> {
        config.validate()?;
        let window_ns = u64::try_from(config.window.as_nanos()).unwrap_or(u64::MAX);
        Ok(Self {
            slot_ns: (window_ns / SLOTS as u64).max(1),
            window_ns,
            config,
            tracked: HashMap::new(),
            active: HashMap::new(),
            log: VecDeque::new(),
            stats: MitigationStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MitigationConfig {
        &self.config
    }

    /// Counts one sample towards its source prefix.
    pub fn observe(&mut self, sample: &Sample) {
        let Some(source) = sample.source() else {
            self.stats.unparsed_samples += 1;
            return;
        };
        let length = match source {
            IpAddr::V4(_) => self.config.prefix_v4,
            IpAddr::V6(_) => self.config.prefix_v6,
        };
        let prefix = (network(source, length), length);
        let index = sample.unix_ns / self.slot_ns;
        if !self.tracked.contains_key(&prefix) {
            if self
                .config
                .exempt
                .iter()
                .any(|exempt| overlaps(*exempt, prefix))
            {
                self.stats.exempt_samples += 1;
                return;
            }
            if self.tracked.len() >= self.config.max_tracked {
                self.evict_one(index);
            }
        }
        let slots = self.tracked.entry(prefix).or_default();
        let slot = &mut slots[(index % SLOTS as u64) as usize];
        if slot.index < index {
            *slot = Slot {
                index,
                ..Slot::default()
            };
        } else if slot.index > index {
            self.stats.stale_samples += 1;
            return;
        }
        let weight = sample.weight();
        slot.packets = slot.packets.saturating_add(weight);
        slot.bytes = slot
            .bytes
            .saturating_add(weight.saturating_mul(u64::from(sample.meta.frame_len)));
    }

    /// Drops the quietest of a few tracked prefixes.
    fn evict_one(&mut self, now: u64) {
        let quietest = self
            .tracked
            .iter()
            .take(EVICTION_CANDIDATES)
            .min_by_key(|(_, slots)| window_sum(slots, now).0)
            .map(|(prefix, _)| *prefix);
        if let Some(prefix) = quietest {
            self.tracked.remove(&prefix);
            self.stats.evicted += 1;
        }
    }

    /// The new actions at `now_unix_ms`: prefixes whose rate over the
    /// window exceeds a threshold and that have no action still active,
    /// the fastest first. Prefixes idle for a whole window are forgotten.
    pub fn decide(&mut self, now_unix_ms: u64) -> Vec<MitigationAction> {
        let now = now_unix_ms.saturating_mul(1_000_000) / self.slot_ns;
        self.active.retain(|_, expires| *expires > now_unix_ms);
        let per_second = |count: u64| -> u64 {
            let rate = u128::from(count) * 1_000_000_000 / u128::from(self.window_ns.max(1));
            u64::try_from(rate).unwrap_or(u64::MAX)
        };
        let ttl_ms = u64::try_from(self.config.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut actions = Vec::new();
        self.tracked.retain(|prefix, slots| {
            let (packets, bytes) = window_sum(slots, now);
            let rate_pps = per_second(packets);
            let rate_bps = per_second(bytes.saturating_mul(8));
            let over = rate_pps > self.config.threshold_pps
                || self
                    .config
                    .threshold_bps
                    .is_some_and(|limit| rate_bps > limit);
            if over && !self.active.contains_key(prefix) {
                actions.push(MitigationAction {
                    prefix: prefix.0,
                    prefix_len: prefix.1,
                    rate_pps,
                    rate_bps,
                    at_unix_ms: now_unix_ms,
                    ttl: self.config.ttl,
                    dry_run: self.config.dry_run,
                });
            }
            // Keep what has traffic in the window or may still get some
            // (a slot ahead of `now`, from a clock a little ahead).
            packets > 0 || slots.iter().any(|slot| slot.index > now)
        });
        actions.sort_by(|a, b| {
            (b.rate_pps, b.rate_bps)
                .cmp(&(a.rate_pps, a.rate_bps))
                .then((a.prefix, a.prefix_len).cmp(&(b.prefix, b.prefix_len)))
        });
        let room = self.config.max_tracked.saturating_sub(self.active.len());
        if actions.len() > room {
            self.stats.suppressed += (actions.len() - room) as u64;
            actions.truncate(room);
        }
        for action in &actions {
            self.active.insert(
                (action.prefix, action.prefix_len),
                now_unix_ms.saturating_add(ttl_ms),
            );
            if action.dry_run {
                self.stats.dry_run_reports += 1;
            } else {
                self.stats.actions_taken += 1;
            }
            if self.log.len() >= ACTION_LOG_LEN {
                self.log.pop_front();
            }
            self.log.push_back(action.clone());
        }
        actions
    }

    /// The last [`ACTION_LOG_LEN`] actions, oldest first.
    pub fn actions(&self) -> &VecDeque<MitigationAction> {
        &self.log
    }

    /// The counters now.
    pub fn stats(&self) -> MitigationStats {
        MitigationStats {
            tracked_prefixes: self.tracked.len() as u64,
            active: self.active.len() as u64,
            ..self.stats
        }
    }
}
