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

mod mitigator;
mod prefix;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

pub use mitigator::Mitigator;
use prefix::address_bits;

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
