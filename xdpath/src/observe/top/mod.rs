//! Top talkers: the sources, destinations and flows sending the most
//! packets or bytes over a sliding window, estimated from samples.
//!
//! The window is a ring of fixed-length buckets (say ten of one second).
//! A sample lands in the bucket of its arrival time; a bucket is reset when
//! the ring comes round to it again, so memory holds at most one window.
//! Each sample counts as `weight()` frames (its sampling rate), so counts
//! and rates estimate the real traffic, not the sampled.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use super::{FlowFields, Sample};

/// Distinct keys a bucket holds per kind, by default.
pub const DEFAULT_MAX_KEYS: usize = 65_536;
/// The most buckets a window is divided into: a bound on memory whatever
/// the window and bucket lengths asked for.
pub const MAX_BUCKETS: usize = 3_600;
/// The shortest bucket: shorter ones are raised to it.
const MIN_BUCKET: Duration = Duration::from_millis(1);

/// What is ranked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TalkerKind {
    /// Source addresses.
    Sources,
    /// Destination addresses.
    Destinations,
    /// 5-tuples.
    Flows,
}

impl TalkerKind {
    /// Every kind.
    pub const ALL: [TalkerKind; 3] = [Self::Sources, Self::Destinations, Self::Flows];

    fn index(self) -> usize {
        self as usize
    }
}

/// What talkers are ranked by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rank {
    /// Packets.
    Packets,
    /// Bytes.
    Bytes,
}

/// A flow's 5-tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FlowKey {
    /// IP protocol number.
    pub protocol: u8,
    /// Source address.
    pub source: IpAddr,
    /// Source port (0 without ports).
    pub source_port: u16,
    /// Destination address.
    pub destination: IpAddr,
    /// Destination port (0 without ports).
    pub destination_port: u16,
}

impl From<&FlowFields> for FlowKey {
    fn from(fields: &FlowFields) -> Self {
        Self {
            protocol: fields.protocol,
            source: fields.source,
            source_port: fields.source_port,
            destination: fields.destination,
            destination_port: fields.destination_port,
        }
    }
}

/// Who a talker is. Serialized as its [`Display`](fmt::Display) form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TalkerKey {
    /// A source or destination address.
    Address(IpAddr),
    /// A flow.
    Flow(FlowKey),
}

fn protocol_name(protocol: u8) -> String {
    match protocol {
        1 => "icmp".to_string(),
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        58 => "icmpv6".to_string(),
        132 => "sctp".to_string(),
        other => format!("proto-{other}"),
    }
}

impl fmt::Display for TalkerKey {
    /// `10.0.0.1`, or `udp 10.0.0.1:53 → [2001:db8::1]:5353`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(address) => write!(formatter, "{address}"),
            Self::Flow(flow) => write!(
                formatter,
                "{} {} → {}",
                protocol_name(flow.protocol),
                SocketAddr::new(flow.source, flow.source_port),
                SocketAddr::new(flow.destination, flow.destination_port)
            ),
        }
    }
}

impl Serialize for TalkerKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Packets (estimated: samples times their weight).
    pub packets: u64,
    /// Bytes on the wire (estimated likewise).
    pub bytes: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.packets = self.packets.saturating_add(other.packets);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// One ranked talker.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Talker {
    /// Who.
    pub key: TalkerKey,
    /// Packets over the window.
    pub packets: u64,
    /// Bytes over the window.
    pub bytes: u64,
    /// Packets per second over the window.
    pub packets_per_second: f64,
    /// Bits per second over the window.
    pub bits_per_second: f64,
}

/// Totals over the window, including what no talker holds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TopSummary {
    /// The window's length, milliseconds.
    pub window_ms: u64,
    /// All traffic sampled in the window.
    pub total: Counts,
    /// Traffic whose headers could not be parsed (non-IP, cut short):
    /// counted here and under no key.
    pub unkeyed: Counts,
    /// Traffic of keys refused because a bucket was full, per kind in
    /// [`TalkerKind::ALL`] order (sources, destinations, flows).
    pub overflow: [Counts; 3],
    /// Samples ignored because they were older than the window.
    pub stale_samples: u64,
}

#[derive(Clone, Debug, Default)]
struct Bucket {
    /// Which bucket of time this is: arrival time divided by the bucket
    /// length. A slot holding another index is stale.
    index: u64,
    total: Counts,
    unkeyed: Counts,
    keys: [HashMap<TalkerKey, Counts>; 3],
    overflow: [Counts; 3],
}

impl Bucket {
    fn reset(&mut self, index: u64) {
        self.index = index;
        self.total = Counts::default();
        self.unkeyed = Counts::default();
        for map in &mut self.keys {
            // Dropped, not cleared: a burst of keys must not pin its memory.
            *map = HashMap::new();
        }
        self.overflow = [Counts::default(); 3];
    }
}

/// Top talkers over a sliding window.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use xdpath::observe::top::{Rank, TalkerKind, TopTalkers};
/// use xdpath::observe::Sample;
/// use xdpath_core::observe::RecordMeta;
///
/// let mut frame = vec![0u8; 12];
/// frame.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0, 0, 64, 17, 0, 0,
///     10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0, 53]);
/// let meta = RecordMeta { frame_len: 100, sample_rate: 10, ..Default::default() };
/// let sample = Sample { meta, unix_ns: 5_000_000_000, data: frame };
///
/// let mut top = TopTalkers::new(Duration::from_secs(10), Duration::from_secs(1));
/// top.add(&sample);
/// let talkers = top.top(5_000, TalkerKind::Sources, Rank::Bytes, 10);
/// assert_eq!(talkers[0].key.to_string(), "10.0.0.1");
/// assert_eq!((talkers[0].packets, talkers[0].bytes), (10, 1000));
/// assert_eq!(talkers[0].packets_per_second, 1.0);
/// ```
#[derive(Clone, Debug)]
pub struct TopTalkers {
    buckets: Vec<Bucket>,
    bucket_ns: u64,
    max_keys: usize,
    stale_samples: u64,
}

impl TopTalkers {
    /// A tracker over `window`, in buckets of `bucket`. The bucket is
    /// raised to at least 1 ms and the window to at least one bucket; the
    /// window is rounded up to whole buckets, at most [`MAX_BUCKETS`].
    pub fn new(window: Duration, bucket: Duration) -> Self {
        let bucket = bucket.max(MIN_BUCKET);
        let bucket_ns = u64::try_from(bucket.as_nanos()).unwrap_or(u64::MAX);
        let count = window.as_nanos().div_ceil(u128::from(bucket_ns));
        let count = usize::try_from(count)
            .unwrap_or(MAX_BUCKETS)
            .clamp(1, MAX_BUCKETS);
        Self {
            // Index u64::MAX marks a slot never used: no sample reaches it.
            buckets: vec![
                Bucket {
                    index: u64::MAX,
                    ..Bucket::default()
                };
                count
            ],
            bucket_ns,
            max_keys: DEFAULT_MAX_KEYS,
            stale_samples: 0,
        }
    }

    /// The same tracker holding at most `max_keys` distinct keys per kind
    /// per bucket (at least 1); traffic of further keys is counted as
    /// overflow.
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(1);
        self
    }

    /// The window's length.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.window_ns())
    }

    fn window_ns(&self) -> u64 {
        self.bucket_ns.saturating_mul(self.buckets.len() as u64)
    }

    fn bucket_index(&self, unix_ns: u64) -> u64 {
        unix_ns / self.bucket_ns
    }

    /// The slot of bucket `index`, reset if it held an older bucket; `None`
    /// when the slot holds a newer one (the sample is older than the
    /// window).
    fn slot(&mut self, index: u64) -> Option<&mut Bucket> {
        let position = (index % self.buckets.len() as u64) as usize;
        let bucket = self.buckets.get_mut(position)?;
        if bucket.index == u64::MAX || bucket.index < index {
            bucket.reset(index);
        } else if bucket.index > index {
            return None;
        }
        Some(bucket)
    }

    /// Counts one sample as `weight()` frames of its frame length.
    pub fn add(&mut self, sample: &Sample) {
        let weight = sample.weight();
        let counts = Counts {
            packets: weight,
            bytes: weight.saturating_mul(u64::from(sample.meta.frame_len)),
        };
        let flow = sample.flow();
        let max_keys = self.max_keys;
        let index = self.bucket_index(sample.unix_ns);
        let Some(bucket) = self.slot(index) else {
            self.stale_samples += 1;
            return;
        };
        bucket.total.add(counts);
        let Some(flow) = flow else {
            bucket.unkeyed.add(counts);
            return;
        };
        let keys = [
            TalkerKey::Address(flow.source),
            TalkerKey::Address(flow.destination),
            TalkerKey::Flow(FlowKey::from(&flow)),
        ];
        for (kind, key) in keys.into_iter().enumerate() {
            let map = &mut bucket.keys[kind];
            if let Some(existing) = map.get_mut(&key) {
                existing.add(counts);
            } else if map.len() < max_keys {
                map.insert(key, counts);
            } else {
                bucket.overflow[kind].add(counts);
            }
        }
    }

    /// Frees the buckets that have left the window ending at `now_unix_ms`
    /// (queries ignore them anyway; this returns their memory when samples
    /// stop coming).
    pub fn expire(&mut self, now_unix_ms: u64) {
        let oldest = self.oldest_index(now_unix_ms);
        for bucket in &mut self.buckets {
            if bucket.index != u64::MAX && bucket.index < oldest {
                *bucket = Bucket {
                    index: u64::MAX,
                    ..Bucket::default()
                };
            }
        }
    }

    fn now_index(&self, now_unix_ms: u64) -> u64 {
        self.bucket_index(now_unix_ms.saturating_mul(1_000_000))
    }

    fn oldest_index(&self, now_unix_ms: u64) -> u64 {
        let now = self.now_index(now_unix_ms);
        now.saturating_add(1)
            .saturating_sub(self.buckets.len() as u64)
    }

    /// The buckets inside the window ending at `now_unix_ms` (the bucket
    /// holding `now` and the ones before it).
    fn live(&self, now_unix_ms: u64) -> impl Iterator<Item = &Bucket> {
        let (oldest, now) = (self.oldest_index(now_unix_ms), self.now_index(now_unix_ms));
        self.buckets
            .iter()
            .filter(move |bucket| bucket.index >= oldest && bucket.index <= now)
    }

    fn per_second(&self, count: u64) -> f64 {
        count as f64 * 1e9 / self.window_ns() as f64
    }

    /// The `limit` biggest talkers of `kind` over the window ending at
    /// `now_unix_ms`, biggest first (ties broken by the other measure, then
    /// by key, so the order is stable).
    pub fn top(&self, now_unix_ms: u64, kind: TalkerKind, by: Rank, limit: usize) -> Vec<Talker> {
        let mut merged: HashMap<TalkerKey, Counts> = HashMap::new();
        for bucket in self.live(now_unix_ms) {
            for (key, counts) in &bucket.keys[kind.index()] {
                merged.entry(*key).or_default().add(*counts);
            }
        }
        let mut ranked: Vec<(TalkerKey, Counts)> = merged.into_iter().collect();
        ranked.sort_unstable_by(|(key_a, a), (key_b, b)| {
            let (first_a, second_a, first_b, second_b) = match by {
                Rank::Packets => (a.packets, a.bytes, b.packets, b.bytes),
                Rank::Bytes => (a.bytes, a.packets, b.bytes, b.packets),
            };
            (first_b, second_b)
                .cmp(&(first_a, second_a))
                .then(key_a.cmp(key_b))
        });
        ranked
            .into_iter()
            .take(limit)
            .map(|(key, counts)| Talker {
                key,
                packets: counts.packets,
                bytes: counts.bytes,
                packets_per_second: self.per_second(counts.packets),
                bits_per_second: self.per_second(counts.bytes) * 8.0,
            })
            .collect()
    }

    /// Totals over the window ending at `now_unix_ms`.
    pub fn summary(&self, now_unix_ms: u64) -> TopSummary {
        let mut summary = TopSummary {
            window_ms: self.window_ns() / 1_000_000,
            total: Counts::default(),
            unkeyed: Counts::default(),
            overflow: [Counts::default(); 3],
            stale_samples: self.stale_samples,
        };
        for bucket in self.live(now_unix_ms) {
            summary.total.add(bucket.total);
            summary.unkeyed.add(bucket.unkeyed);
            for (sum, overflow) in summary.overflow.iter_mut().zip(bucket.overflow) {
                sum.add(overflow);
            }
        }
        summary
    }
}

#[cfg(test)]
mod tests;
