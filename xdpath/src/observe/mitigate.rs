//! Auto-mitigation: deciding, from samples, which source prefixes flood
//! hard enough to be blocked, and for how long.
//!
//! This is pure logic: [`Mitigator::decide`] returns actions and the caller
//! applies them to the blocklist (or, in dry run, only reports them). Each
//! sample counts as `weight()` frames, so rates estimate the real traffic.
//!
//! Rates are measured per source prefix over a sliding window kept as
//! eight slots, so the measure covers between seven and eight eighths of
//! the window: a flood is never overestimated.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde::Serialize;

use super::Sample;

/// Shortest IPv4 aggregation prefix: one flood must not block more.
pub const MIN_PREFIX_V4: u8 = 8;
/// Shortest IPv6 aggregation prefix.
pub const MIN_PREFIX_V6: u8 = 32;
/// Past actions kept by [`Mitigator::actions`].
pub const ACTION_LOG_LEN: usize = 1_024;
/// Slots a window is divided into.
const SLOTS: usize = 8;
/// Prefixes looked at to choose one to evict when the table is full: the
/// quietest of a few, not of all, so a full table under a spoofed-source
/// flood costs a constant time per sample and a heavy sender stays.
const EVICTION_CANDIDATES: usize = 8;

/// What to mitigate and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MitigationConfig {
    /// Act on a prefix sending more packets per second than this.
    pub threshold_pps: u64,
    /// Act on a prefix sending more bits per second than this, too.
    pub threshold_bps: Option<u64>,
    /// How long rates are measured over.
    pub window: Duration,
    /// IPv4 sources are aggregated to this prefix (32: each source).
    pub prefix_v4: u8,
    /// IPv6 sources are aggregated to this prefix (128: each source).
    pub prefix_v6: u8,
    /// How long an action lasts (the caller's block entry expires then).
    pub ttl: Duration,
    /// Report, do not block.
    pub dry_run: bool,
    /// Prefixes never blocked, nor any prefix overlapping them.
    pub exempt: Vec<(IpAddr, u8)>,
    /// The most prefixes measured at once (and the most actions active).
    pub max_tracked: usize,
}

impl Default for MitigationConfig {
    /// 100,000 pps over 2 s, per source, for 5 minutes, in dry run (turning
    /// mitigation on should first show what it would do).
    fn default() -> Self {
        Self {
            threshold_pps: 100_000,
            threshold_bps: None,
            window: Duration::from_secs(2),
            prefix_v4: 32,
            prefix_v6: 128,
            ttl: Duration::from_secs(300),
            dry_run: true,
            exempt: Vec::new(),
            max_tracked: 65_536,
        }
    }
}

/// Why a [`MitigationConfig`] is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MitigationError {
    /// `threshold_pps` is 0.
    #[error("mitigation threshold_pps must be at least 1 packet per second")]
    ZeroThreshold,
    /// `threshold_bps` is `Some(0)`.
    #[error("mitigation threshold_bps must be at least 1 bit per second (leave it unset to use the packet rate alone)")]
    ZeroBpsThreshold,
    /// `window` is shorter than 1 ms (zero included).
    #[error("mitigation window must be at least 1ms (e.g. 2s)")]
    WindowTooShort,
    /// `ttl` is zero.
    #[error("mitigation ttl must be longer than zero (e.g. 300s)")]
    ZeroTtl,
    /// `max_tracked` is 0.
    #[error("mitigation max_tracked must be at least 1")]
    ZeroMaxTracked,
    /// `prefix_v4` outside `MIN_PREFIX_V4..=32`.
    #[error("mitigation prefix_v4 /{length} is out of range: IPv4 sources aggregate to /{MIN_PREFIX_V4} through /32")]
    PrefixV4OutOfRange {
        /// The length given.
        length: u8,
    },
    /// `prefix_v6` outside `MIN_PREFIX_V6..=128`.
    #[error("mitigation prefix_v6 /{length} is out of range: IPv6 sources aggregate to /{MIN_PREFIX_V6} through /128")]
    PrefixV6OutOfRange {
        /// The length given.
        length: u8,
    },
    /// An exempt prefix longer than its address.
    #[error("mitigation exempt prefix {address}/{length} is out of range: at most /32 for IPv4 and /128 for IPv6")]
    ExemptOutOfRange {
        /// The address given.
        address: IpAddr,
        /// The length given.
        length: u8,
    },
}

impl MitigationConfig {
    /// Checks every value, returning the first one wrong.
    ///
    /// # Examples
    ///
    /// ```
    /// use xdpath::observe::mitigate::{MitigationConfig, MitigationError};
    /// let config = MitigationConfig { prefix_v4: 33, ..Default::default() };
    /// assert_eq!(config.validate(), Err(MitigationError::PrefixV4OutOfRange { length: 33 }));
    /// assert!(MitigationConfig::default().validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), MitigationError> {
        if self.threshold_pps == 0 {
            return Err(MitigationError::ZeroThreshold);
        }
        if self.threshold_bps == Some(0) {
            return Err(MitigationError::ZeroBpsThreshold);
        }
        // Eight slots of at least 125 µs: shorter windows would round.
        if self.window < Duration::from_millis(1) {
            return Err(MitigationError::WindowTooShort);
        }
        if self.ttl.is_zero() {
            return Err(MitigationError::ZeroTtl);
        }
        if self.max_tracked == 0 {
            return Err(MitigationError::ZeroMaxTracked);
        }
        if !(MIN_PREFIX_V4..=32).contains(&self.prefix_v4) {
            return Err(MitigationError::PrefixV4OutOfRange {
                length: self.prefix_v4,
            });
        }
        if !(MIN_PREFIX_V6..=128).contains(&self.prefix_v6) {
            return Err(MitigationError::PrefixV6OutOfRange {
                length: self.prefix_v6,
            });
        }
        for &(address, length) in &self.exempt {
            if length > address_bits(address) {
                return Err(MitigationError::ExemptOutOfRange { address, length });
            }
        }
        Ok(())
    }
}

/// One decision: block (or, in dry run, report) `prefix/prefix_len`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MitigationAction {
    /// The prefix's network address.
    pub prefix: IpAddr,
    /// The prefix's length.
    pub prefix_len: u8,
    /// Its packet rate over the window, packets per second.
    pub rate_pps: u64,
    /// Its bit rate over the window, bits per second.
    pub rate_bps: u64,
    /// When it was decided, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// How long it lasts (serialized as `ttl_ms`).
    #[serde(rename = "ttl_ms", serialize_with = "milliseconds")]
    pub ttl: Duration,
    /// Report only: nothing is to be blocked.
    pub dry_run: bool,
}

fn milliseconds<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// Counters of a [`Mitigator`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MitigationStats {
    /// Actions decided outside dry run.
    pub actions_taken: u64,
    /// Actions decided in dry run.
    pub dry_run_reports: u64,
    /// Prefixes being measured now.
    pub tracked_prefixes: u64,
    /// Actions whose TTL has not passed.
    pub active: u64,
    /// Prefixes dropped to make room for new ones.
    pub evicted: u64,
    /// Actions not taken because `max_tracked` actions were active.
    pub suppressed: u64,
    /// Samples from exempt prefixes (not measured).
    pub exempt_samples: u64,
    /// Samples without IP headers (not measured).
    pub unparsed_samples: u64,
    /// Samples older than the window (not measured).
    pub stale_samples: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Arrival time divided by the slot length; a smaller one is stale.
    index: u64,
    packets: u64,
    bytes: u64,
}

type Prefix = (IpAddr, u8);

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

/// 32 or 128.
fn address_bits(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `address` with all but its first `length` bits cleared.
fn network(address: IpAddr, length: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(length.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(length.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// Whether two prefixes share any address: the longer lies in the shorter.
fn overlaps(a: Prefix, b: Prefix) -> bool {
    let shorter = a.1.min(b.1);
    a.0.is_ipv4() == b.0.is_ipv4() && network(a.0, shorter) == network(b.0, shorter)
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

#[cfg(test)]
mod tests {
    use super::*;
    use xdpath_core::observe::RecordMeta;

    const MS: u64 = 1_000_000;

    fn sample(source: IpAddr, rate: u32, unix_ns: u64) -> Sample {
        let mut data = vec![0u8; 12];
        match source {
            IpAddr::V4(v4) => {
                data.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
                data.extend_from_slice(&v4.octets());
                data.extend_from_slice(&[192, 0, 2, 1]);
            }
            IpAddr::V6(v6) => {
                data.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 8, 17, 64]);
                data.extend_from_slice(&v6.octets());
                data.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
            }
        }
        let meta = RecordMeta {
            frame_len: 100,
            sample_rate: rate,
            ..Default::default()
        };
        Sample {
            meta,
            unix_ns,
            data,
        }
    }

    fn address(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// `count` samples of 1 in `rate` from `source`, spread over the
    /// second starting at `start_ms`.
    fn flood(mitigator: &mut Mitigator, source: &str, count: u64, rate: u32, start_ms: u64) {
        for step in 0..count {
            let at = start_ms * MS + step * 1_000 * MS / count;
            mitigator.observe(&sample(address(source), rate, at));
        }
    }

    fn config() -> MitigationConfig {
        MitigationConfig {
            threshold_pps: 1_000,
            window: Duration::from_secs(1),
            ttl: Duration::from_secs(60),
            dry_run: false,
            ..MitigationConfig::default()
        }
    }

    #[test]
    fn flood_over_threshold_triggers_once_and_again_after_ttl() {
        let mut mitigator = Mitigator::new(config()).unwrap();
        flood(&mut mitigator, "10.0.0.9", 200, 10, 5_000);
        let actions = mitigator.decide(5_999);
        assert_eq!(actions.len(), 1);
        let action = &actions[0];
        assert_eq!(
            (action.prefix, action.prefix_len),
            (address("10.0.0.9"), 32)
        );
        assert_eq!((action.rate_pps, action.rate_bps), (2_000, 1_600_000));
        assert_eq!((action.at_unix_ms, action.dry_run), (5_999, false));
        let json = serde_json::to_string(action).unwrap();
        assert!(
            json.contains(r#""prefix":"10.0.0.9""#) && json.contains(r#""ttl_ms":60000"#),
            "{json}"
        );
        flood(&mut mitigator, "10.0.0.9", 200, 10, 6_000);
        assert!(mitigator.decide(6_999).is_empty());
        flood(&mut mitigator, "10.0.0.9", 200, 10, 65_000);
        assert_eq!(mitigator.decide(65_999).len(), 1);
        let stats = mitigator.stats();
        assert_eq!(
            (stats.actions_taken, stats.dry_run_reports, stats.active),
            (2, 0, 1)
        );
        assert_eq!(mitigator.actions().len(), 2);
    }

    #[test]
    fn under_threshold_or_exempt_does_not_trigger() {
        let exempt = vec![(address("10.1.0.0"), 16), (address("2001:db8::"), 32)];
        let mut mitigator = Mitigator::new(MitigationConfig { exempt, ..config() }).unwrap();
        flood(&mut mitigator, "10.0.0.9", 100, 10, 5_000);
        flood(&mut mitigator, "10.1.2.3", 500, 10, 5_000);
        flood(&mut mitigator, "2001:db8::7", 500, 10, 5_000);
        assert!(mitigator.decide(5_999).is_empty());
        let stats = mitigator.stats();
        assert_eq!((stats.exempt_samples, stats.tracked_prefixes), (1_000, 1));
        // Idle for a window: forgotten.
        assert!(mitigator.decide(8_000).is_empty());
        assert_eq!(mitigator.stats().tracked_prefixes, 0);
    }

    #[test]
    fn sources_aggregate_to_prefixes() {
        let config = MitigationConfig {
            prefix_v4: 24,
            prefix_v6: 48,
            ..config()
        };
        let mut mitigator = Mitigator::new(config).unwrap();
        for host in 1..=4 {
            flood(&mut mitigator, &format!("198.51.100.{host}"), 30, 10, 5_000);
            flood(
                &mut mitigator,
                &format!("2001:db8:1:{host}::1"),
                30,
                10,
                5_000,
            );
        }
        let actions = mitigator.decide(5_999);
        let prefixes: Vec<String> = actions
            .iter()
            .map(|action| format!("{}/{}", action.prefix, action.prefix_len))
            .collect();
        assert_eq!(prefixes, ["198.51.100.0/24", "2001:db8:1::/48"]);
        assert_eq!(actions[0].rate_pps, 1_200);
    }

    #[test]
    fn prefix_overlapping_an_exempt_host_is_never_blocked() {
        let exempt = vec![(address("198.51.100.53"), 32)];
        let config = MitigationConfig {
            prefix_v4: 24,
            exempt,
            ..config()
        };
        let mut mitigator = Mitigator::new(config).unwrap();
        flood(&mut mitigator, "198.51.100.7", 500, 10, 5_000);
        assert!(mitigator.decide(5_999).is_empty());
    }

    #[test]
    fn dry_run_is_carried_and_counted() {
        let mut mitigator = Mitigator::new(MitigationConfig {
            dry_run: true,
            ..config()
        })
        .unwrap();
        flood(&mut mitigator, "10.0.0.9", 200, 10, 5_000);
        let actions = mitigator.decide(5_999);
        assert!(actions[0].dry_run);
        let stats = mitigator.stats();
        assert_eq!((stats.actions_taken, stats.dry_run_reports), (0, 1));
    }

    #[test]
    fn bit_rate_threshold_and_bounds() {
        let config = MitigationConfig {
            threshold_pps: 1_000_000,
            threshold_bps: Some(100_000),
            max_tracked: 2,
            ..config()
        };
        let mut mitigator = Mitigator::new(config).unwrap();
        flood(&mut mitigator, "10.0.0.1", 100, 10, 5_000);
        for host in 2..=5 {
            flood(&mut mitigator, &format!("10.0.0.{host}"), 1, 1, 5_000);
        }
        let stats = mitigator.stats();
        assert_eq!((stats.tracked_prefixes, stats.evicted), (2, 3));
        let actions = mitigator.decide(5_999);
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].rate_bps, 800_000);
        // Older than its slot's content: ignored.
        mitigator.observe(&sample(address("10.0.0.1"), 1, 4_000 * MS));
        assert_eq!(mitigator.stats().stale_samples, 1);
        mitigator.observe(&Sample {
            data: vec![0; 10],
            ..sample(address("10.0.0.1"), 1, 0)
        });
        assert_eq!(mitigator.stats().unparsed_samples, 1);
    }

    #[test]
    fn extreme_times_and_lengths_do_not_panic() {
        let config = MitigationConfig {
            window: Duration::from_millis(1),
            ..config()
        };
        let mut mitigator = Mitigator::new(config).unwrap();
        mitigator.observe(&sample(address("10.0.0.1"), u32::MAX, u64::MAX));
        mitigator.observe(&sample(address("::1"), 1, 0));
        assert!(mitigator.decide(u64::MAX).len() <= 1);
        let _ = mitigator.decide(0);
        assert_eq!(network(address("10.1.2.3"), 0), address("0.0.0.0"));
        assert!(overlaps((address("::"), 0), (address("2001:db8::1"), 128)));
        assert!(!overlaps((address("0.0.0.0"), 0), (address("::1"), 128)));
    }

    #[test]
    fn bad_values_are_refused_with_clear_messages() {
        type Change = fn(&mut MitigationConfig);
        let cases: [(Change, &str); 8] = [
            (|c| c.threshold_pps = 0, "threshold_pps must be at least 1"),
            (|c| c.threshold_bps = Some(0), "threshold_bps must be"),
            (|c| c.window = Duration::ZERO, "window must be at least 1ms"),
            (|c| c.ttl = Duration::ZERO, "ttl must be longer"),
            (|c| c.max_tracked = 0, "max_tracked must be"),
            (|c| c.prefix_v4 = 4, "prefix_v4 /4 is out of range"),
            (|c| c.prefix_v6 = 129, "prefix_v6 /129 is out of range"),
            (
                |c| c.exempt = vec![(address("10.0.0.0"), 33)],
                "exempt prefix 10.0.0.0/33",
            ),
        ];
        for (change, message) in cases {
            let mut config = config();
            change(&mut config);
            let error = Mitigator::new(config).unwrap_err();
            assert!(error.to_string().contains(message), "{error}");
        }
    }
}
