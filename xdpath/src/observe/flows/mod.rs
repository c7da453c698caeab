//! The flow cache IPFIX exports from, built by aggregating samples.
//!
//! # Why samples and not an in-kernel flow map
//!
//! A flow map in the XDP program would cost a hash lookup and an update on
//! every frame, under a flood too, exactly when the data path has no
//! cycles to spare, and an attacker choosing addresses fills it at will.
//! Aggregating the samples the data path already copies out costs nothing
//! on the frames that are not sampled, and the cache lives in user space
//! where its size and eviction are ours to choose.
//!
//! # Accuracy
//!
//! Each sample stands for `sample_rate` frames ([`Sample::weight`]), so
//! packet and byte counts are scaled estimates: a flow with `k` sampled
//! packets has a relative standard error of about `1 / sqrt(k)` (10 %
//! at 100 samples). A flow none of whose packets was sampled is missed
//! entirely, so short flows are under-represented. At rate 1 the counts
//! are exact, as long as the sample ring buffer loses nothing (its losses
//! are counted separately, see `xdpath_core::observe::LOSS_SAMPLES`).
//!
//! # Records
//!
//! A flow is keyed by addresses, ports, protocol, VLAN and ingress
//! interface (one direction) and forwarding status: a flow partly passed
//! and partly dropped (by a rate limit, say) is two records, each with the
//! usual timeouts, not a new record at every change of verdict.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use super::ipfix::forwarding_status;
use super::Sample;

/// TCP flags that end a flow: FIN (bit 0) and RST (bit 2).
const TCP_FIN: u8 = 0x01;
const TCP_RST: u8 = 0x04;
const NANOSECONDS_PER_MILLISECOND: u64 = 1_000_000;

/// What identifies a flow (one direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Source address.
    pub source: IpAddr,
    /// Destination address.
    pub destination: IpAddr,
    /// TCP/UDP source port (0 otherwise).
    pub source_port: u16,
    /// TCP/UDP destination port (0 otherwise).
    pub destination_port: u16,
    /// IP protocol number.
    pub protocol: u8,
    /// VLAN id, when tagged.
    pub vlan: Option<u16>,
    /// The interface the frames arrived on.
    pub ingress_ifindex: u32,
    /// The RFC 7270 forwarding status of its packets: a flow whose packets
    /// are partly passed and partly dropped (a rate limit) is one record
    /// for each, not a new record at every change.
    pub forwarding_status: u8,
}

/// Why a record ended: the IPFIX `flowEndReason` codes (RFC 7012).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowEndReason {
    /// No packet for the idle timeout.
    IdleTimeout = 1,
    /// The flow lasted the active timeout; it goes on with fresh counts.
    ActiveTimeout = 2,
    /// TCP FIN or RST seen.
    EndOfFlow = 3,
    /// Ended by the metering process: shutdown.
    ForcedEnd = 4,
    /// Evicted because the cache was full.
    LackOfResources = 5,
}

/// One exported flow record. Counts are deltas since the previous record
/// of the same flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// The flow.
    pub key: FlowKey,
    /// Packets (estimated: samples times their sampling rate).
    pub packets: u64,
    /// IP octets, header and payload, as the IP headers give them, without
    /// the Ethernet header, VLAN tags or padding (IPFIX's
    /// `octetDeltaCount`); estimated likewise.
    pub bytes: u64,
    /// First sampled packet, milliseconds since the Unix epoch.
    pub first_ms: u64,
    /// Last sampled packet, milliseconds since the Unix epoch.
    pub last_ms: u64,
    /// OR of the TCP flags of the sampled packets.
    pub tcp_flags: u8,
    /// The RFC 7270 forwarding status of every packet of the record.
    pub forwarding_status: u8,
    /// Why the record ended.
    pub end_reason: FlowEndReason,
}

/// What a [`FlowCache`] has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCacheStats {
    /// Samples added to a flow.
    pub samples: u64,
    /// Samples without IP headers in their bytes, not counted in any flow.
    pub skipped: u64,
    /// Flows evicted because the cache was full.
    pub evictions: u64,
    /// Records lost because too many waited for [`FlowCache::expire`].
    pub records_lost: u64,
}

#[derive(Clone, Copy, Debug)]
struct FlowState {
    packets: u64,
    bytes: u64,
    first_ms: u64,
    last_ms: u64,
    tcp_flags: u8,
    /// Position in the least-recently-updated order.
    touched: u64,
}

impl FlowState {
    fn record(&self, key: FlowKey, end_reason: FlowEndReason) -> FlowRecord {
        FlowRecord {
            key,
            packets: self.packets,
            bytes: self.bytes,
            first_ms: self.first_ms,
            last_ms: self.last_ms,
            tcp_flags: self.tcp_flags,
            forwarding_status: key.forwarding_status,
            end_reason,
        }
    }
}

/// Flows built from samples, with idle and active timeouts and a size
/// limit.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use xdpath::observe::flows::{FlowCache, FlowEndReason};
/// use xdpath::observe::Sample;
/// let mut cache = FlowCache::new(Duration::from_secs(60), Duration::from_secs(15), 1000);
/// let mut frame = vec![0u8; 12];
/// frame.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0, 0, 64, 17, 0, 0,
///     10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0, 53]);
/// let mut sample = Sample { meta: Default::default(), unix_ns: 1_000_000_000, data: frame };
/// sample.meta.frame_len = 100;
/// sample.meta.sample_rate = 10;
/// sample.meta.action = 2; // pass
/// cache.add(&sample);
/// assert!(cache.expire(2_000).is_empty());
/// let records = cache.expire(16_000);
/// // IP octets: ten times the IP header's total length of 40.
/// assert_eq!((records[0].packets, records[0].bytes), (10, 400));
/// assert_eq!(records[0].end_reason, FlowEndReason::IdleTimeout);
/// ```
#[derive(Clone, Debug)]
pub struct FlowCache {
    flows: HashMap<FlowKey, FlowState>,
    /// Flows by last update, oldest first: eviction must not scan.
    order: BTreeMap<u64, FlowKey>,
    next_touch: u64,
    pending: Vec<FlowRecord>,
    active_timeout_ms: u64,
    idle_timeout_ms: u64,
    max_flows: usize,
    stats: FlowCacheStats,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl FlowCache {
    /// A cache of at most `max_flows` flows (at least 1). A flow is
    /// exported when no packet was seen for `idle_timeout`, and every
    /// `active_timeout` while it lasts.
    pub fn new(active_timeout: Duration, idle_timeout: Duration, max_flows: usize) -> Self {
        Self {
            flows: HashMap::new(),
            order: BTreeMap::new(),
            next_touch: 0,
            pending: Vec::new(),
            active_timeout_ms: millis(active_timeout),
            idle_timeout_ms: millis(idle_timeout),
            max_flows: max_flows.max(1),
            stats: FlowCacheStats::default(),
        }
    }

    /// Flows in the cache.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether the cache holds no flow.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The statistics so far.
    pub fn stats(&self) -> FlowCacheStats {
        self.stats
    }

    /// Counts `sample` in its flow. Records it ends (eviction) are returned by the next [`FlowCache::expire`].
    pub fn add(&mut self, sample: &Sample) {
        let Some(fields) = sample.flow() else {
            self.stats.skipped += 1;
            return;
        };
        self.stats.samples += 1;
        let key = FlowKey {
            source: fields.source,
            destination: fields.destination,
            source_port: fields.source_port,
            destination_port: fields.destination_port,
            protocol: fields.protocol,
            vlan: fields.vlan,
            ingress_ifindex: sample.meta.ifindex,
            forwarding_status: forwarding_status(sample.action(), sample.reason()),
        };
        let weight = sample.weight();
        let ip_octets = fields.ip_length.map_or_else(
            || u64::from(sample.meta.frame_len).saturating_sub(fields.ip_offset as u64),
            u64::from,
        );
        let bytes = weight.saturating_mul(ip_octets);
        let time_ms = sample.unix_ns / NANOSECONDS_PER_MILLISECOND;
        let touch = self.next_touch;
        self.next_touch += 1;

        if !self.flows.contains_key(&key) && self.flows.len() >= self.max_flows {
            self.evict_oldest();
        }
        let fresh = FlowState {
            packets: 0,
            bytes: 0,
            first_ms: time_ms,
            last_ms: time_ms,
            tcp_flags: 0,
            touched: touch,
        };
        let state = self.flows.entry(key).or_insert(fresh);
        self.order.remove(&state.touched);
        self.order.insert(touch, key);
        state.touched = touch;
        if state.packets == 0 {
            // A new flow, or one whose counts an active timeout reset.
            *state = FlowState {
                last_ms: state.last_ms.max(time_ms),
                ..fresh
            };
        }
        state.packets = state.packets.saturating_add(weight);
        state.bytes = state.bytes.saturating_add(bytes);
        state.first_ms = state.first_ms.min(time_ms);
        state.last_ms = state.last_ms.max(time_ms);
        state.tcp_flags |= fields.tcp_flags;
    }

    fn evict_oldest(&mut self) {
        let Some((_, key)) = self.order.pop_first() else {
            return;
        };
        if let Some(state) = self.flows.remove(&key) {
            self.stats.evictions += 1;
            if state.packets > 0 {
                self.push_pending(state.record(key, FlowEndReason::LackOfResources));
            }
        }
    }

    /// Bounded: a caller that never calls `expire` must not grow memory
    /// without end.
    fn push_pending(&mut self, record: FlowRecord) {
        if self.pending.len() >= self.max_flows {
            self.stats.records_lost += 1;
        } else {
            self.pending.push(record);
        }
    }

    /// The records due at `now_ms` (Unix milliseconds): flows that saw a
    /// TCP FIN or RST (end of flow), flows idle for the idle timeout,
    /// flows active for the active timeout (they stay, with their counts
    /// reset), and the records ended since the last call.
    pub fn expire(&mut self, now_ms: u64) -> Vec<FlowRecord> {
        let mut records = std::mem::take(&mut self.pending);
        let mut ended = Vec::new();
        for (key, state) in self.flows.iter_mut() {
            let idle = now_ms.saturating_sub(state.last_ms) >= self.idle_timeout_ms;
            if state.packets == 0 {
                if idle {
                    ended.push(*key);
                }
            } else if state.tcp_flags & (TCP_FIN | TCP_RST) != 0 {
                records.push(state.record(*key, FlowEndReason::EndOfFlow));
                ended.push(*key);
            } else if idle {
                records.push(state.record(*key, FlowEndReason::IdleTimeout));
                ended.push(*key);
            } else if now_ms.saturating_sub(state.first_ms) >= self.active_timeout_ms {
                records.push(state.record(*key, FlowEndReason::ActiveTimeout));
                state.packets = 0;
                state.bytes = 0;
                state.tcp_flags = 0;
            }
        }
        for key in ended {
            if let Some(state) = self.flows.remove(&key) {
                self.order.remove(&state.touched);
            }
        }
        records
    }

    /// Every flow's record (forced end) and the records still waiting;
    /// the cache is left empty. For shutdown.
    pub fn drain_all(&mut self) -> Vec<FlowRecord> {
        let mut records = std::mem::take(&mut self.pending);
        self.order.clear();
        records.extend(
            self.flows
                .drain()
                .filter(|(_, state)| state.packets > 0)
                .map(|(key, state)| state.record(key, FlowEndReason::ForcedEnd)),
        );
        records
    }
}

#[cfg(test)]
mod tests;
