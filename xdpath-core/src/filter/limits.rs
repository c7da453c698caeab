//! Token-bucket rate limits: the limit, its bucket key and the bucket.

use super::address::{mask, prefix_contains};
use crate::parse::FlowKey;
use crate::wire::protocol;
use crate::wire::tcp::{FLAG_ACK, FLAG_SYN};

/// `RateLimit::flags`: key by destination, not source.
pub const LIMIT_DESTINATION: u8 = 1 << 0;
/// Only TCP SYNs (without ACK) count.
pub const LIMIT_SYN_ONLY: u8 = 1 << 1;
/// Only count what would be dropped.
pub const LIMIT_MONITOR: u8 = 1 << 2;
/// The scope is about the destination, whichever address keys the
/// buckets: a per-source limit of the frames to one VIP.
pub const LIMIT_SCOPE_DESTINATION: u8 = 1 << 3;

/// A token-bucket limit (one entry of `RATE_LIMITS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Packets per second; 0: no packet limit.
    pub packets_per_second: u64,
    /// Bucket size in packets.
    pub burst_packets: u64,
    /// Bytes per second; 0: no byte limit.
    pub bytes_per_second: u64,
    /// Bucket size in bytes.
    pub burst_bytes: u64,
    /// Only addresses inside this prefix are limited (masked).
    pub scope: [u8; 16],
    /// Its length (0: everything).
    pub scope_len: u8,
    /// Aggregate IPv4 addresses to this prefix length (e.g. 24), 0 to 32.
    pub aggregate_v4: u8,
    /// Aggregate IPv6 addresses to this prefix length (e.g. 64), 0 to 128.
    pub aggregate_v6: u8,
    /// IP protocol; 0: any.
    pub protocol: u8,
    /// `LIMIT_*` bits.
    pub flags: u8,
    /// Reserved, zero.
    pub reserved: [u8; 3],
    /// The limit's stable id. Buckets are keyed by it, not by the limit's
    /// slot, so a limit that takes over a freed slot starts with fresh
    /// buckets.
    pub id: u32,
    /// The layer the limit applies to: 0, the outer headers of every
    /// frame; VNI + 1, the inner headers of tunnelled frames with that VNI
    /// (compared with [`FlowKey::tunnel`]).
    pub tunnel: u32,
}

/// The key of a token bucket: the aggregated address and which limit.
/// Aligned to 8 (24 bytes): the eBPF build keeps it on the stack, where
/// the verifier refuses unaligned 64-bit accesses.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BucketKey {
    /// The address masked to the limit's aggregation.
    pub address: [u8; 16],
    /// The limit's id.
    pub limit: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// A token bucket. Tokens are kept in billionths so that refilling needs no
/// division: `elapsed_ns × rate` is exactly the tokens earned × 10⁹.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Packet tokens × 10⁹.
    pub packet_tokens: u64,
    /// Byte tokens × 10⁹.
    pub byte_tokens: u64,
    /// When the bucket was last refilled, CLOCK_MONOTONIC ns.
    pub last_ns: u64,
}

const NANOS: u64 = 1_000_000_000;
/// Refill at most this much idle time at once, so `elapsed × rate` cannot
/// overflow (4 × 10⁹ ns × 4 × 10⁹ /s < 2⁶⁴). Plain multiplications with
/// capped operands: the BPF target has no 128-bit multiply, which
/// `saturating_mul` would need. So a bucket whose rate refills less than
/// its burst in 4 s gets back `rate × 4 s` after a longer idle time, not
/// the whole burst. Counting longer idle times exactly (two 32-bit halves
/// of `elapsed`, saturating) was measured to cost the verifier 42 % more
/// instructions on the filter stage (540,594 → 770,186, where the limit is
/// 1,000,000): each refill's branches are walked at every call.
const MAX_REFILL_NS: u64 = 4 * NANOS;
/// The largest rate, per second.
const MAX_RATE: u64 = 4 * NANOS;
/// The largest burst (packets or bytes): × 10⁹ still fits in 64 bits.
pub const MAX_BURST: u64 = 16 * NANOS;
/// Frames are charged at most this many bytes.
const MAX_FRAME: u64 = 1 << 20;
/// Per-source buckets (`SRC_BUCKETS`, an LRU table).
pub const SOURCE_BUCKETS: u32 = 262_144;
/// Per-destination buckets (`DST_BUCKETS`, an LRU table).
pub const DESTINATION_BUCKETS: u32 = 16_384;

#[inline(always)]
const fn at_most(value: u64, cap: u64) -> u64 {
    if value > cap {
        cap
    } else {
        value
    }
}

impl Bucket {
    /// A full bucket for `limit`.
    #[inline(always)]
    pub fn full(limit: &RateLimit, now_ns: u64) -> Self {
        Self {
            packet_tokens: at_most(limit.burst_packets, MAX_BURST) * NANOS,
            byte_tokens: at_most(limit.burst_bytes, MAX_BURST) * NANOS,
            last_ns: now_ns,
        }
    }

    /// Adds the tokens earned since the last refill, up to the burst.
    ///
    /// Not inlined: each capping step is a branch, and inlined the eBPF
    /// verifier would walk every combination of them at every limit.
    #[inline(never)]
    pub fn refill(&mut self, limit: &RateLimit, now_ns: u64) {
        let elapsed = at_most(now_ns.saturating_sub(self.last_ns), MAX_REFILL_NS);
        self.last_ns = now_ns;
        let packet_cap = at_most(limit.burst_packets, MAX_BURST) * NANOS;
        let byte_cap = at_most(limit.burst_bytes, MAX_BURST) * NANOS;
        let packets = self
            .packet_tokens
            .saturating_add(elapsed * at_most(limit.packets_per_second, MAX_RATE));
        self.packet_tokens = at_most(packets, packet_cap);
        let bytes = self
            .byte_tokens
            .saturating_add(elapsed * at_most(limit.bytes_per_second, MAX_RATE));
        self.byte_tokens = at_most(bytes, byte_cap);
    }

    /// Refills for the time since the last call and takes one packet of
    /// `bytes`; false (and nothing taken) when either bucket is short.
    /// Not inlined, as [`Bucket::refill`].
    #[inline(never)]
    pub fn take(&mut self, limit: &RateLimit, bytes: u64, now_ns: u64) -> bool {
        self.refill(limit, now_ns);
        let packet_cost = NANOS;
        let byte_cost = at_most(bytes, MAX_FRAME) * NANOS;
        let packets_ok = limit.packets_per_second == 0 || self.packet_tokens >= packet_cost;
        let bytes_ok = limit.bytes_per_second == 0 || self.byte_tokens >= byte_cost;
        if !(packets_ok && bytes_ok) {
            return false;
        }
        if limit.packets_per_second != 0 {
            self.packet_tokens -= packet_cost;
        }
        if limit.bytes_per_second != 0 {
            self.byte_tokens -= byte_cost;
        }
        true
    }
}

/// Which bucket table a limit uses: sources and destinations are kept apart
/// so that a flood of spoofed sources cannot evict the few destination
/// buckets that protect a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketTable {
    /// Per-source buckets.
    Source,
    /// Per-destination buckets.
    Destination,
}

impl RateLimit {
    /// Whether the limit applies to the flow.
    #[inline(always)]
    pub fn applies(&self, key: &FlowKey) -> bool {
        if self.tunnel != key.tunnel {
            return false;
        }
        if self.protocol != 0 && self.protocol != key.protocol {
            return false;
        }
        if self.flags & LIMIT_SYN_ONLY != 0
            && (key.protocol != protocol::TCP || key.tcp_flags & (FLAG_SYN | FLAG_ACK) != FLAG_SYN)
        {
            return false;
        }
        let address = if self.flags & (LIMIT_DESTINATION | LIMIT_SCOPE_DESTINATION) != 0 {
            &key.destination
        } else {
            &key.source
        };
        prefix_contains(&self.scope, self.scope_len, address)
    }

    /// The bucket key of the flow under this limit.
    #[inline(always)]
    pub fn bucket_key(&self, key: &FlowKey) -> BucketKey {
        // By reference: selecting the address by value made the eBPF build
        // load it byte by byte and reassemble its words (about 150 of
        // `check_limit`'s 350 instructions, on every frame a limit charges).
        let address = if self.flags & LIMIT_DESTINATION != 0 {
            &key.destination
        } else {
            &key.source
        };
        let length = if key.ip_version == 4 {
            96 + self.aggregate_v4
        } else {
            self.aggregate_v6
        };
        BucketKey {
            address: mask(address, length),
            limit: self.id,
            reserved: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_refills_and_caps() {
        let limit = RateLimit {
            packets_per_second: 10,
            burst_packets: 5,
            ..Default::default()
        };
        let mut bucket = Bucket::full(&limit, 0);
        for _ in 0..5 {
            assert!(bucket.take(&limit, 100, 0));
        }
        assert!(!bucket.take(&limit, 100, 0));
        // 100 ms later: one token at 10/s.
        assert!(bucket.take(&limit, 100, 100_000_000));
        assert!(!bucket.take(&limit, 100, 100_000_000));
        // A long idle time refills to the burst, not beyond.
        let later = 3_600 * NANOS;
        for _ in 0..5 {
            assert!(bucket.take(&limit, 100, later));
        }
        assert!(!bucket.take(&limit, 100, later));
    }

    #[test]
    fn a_long_idle_time_refills_a_slow_bucket_by_four_seconds_at_most() {
        // 1 packet a second, a burst of 5: one refill counts 4 s.
        let limit = RateLimit {
            packets_per_second: 1,
            burst_packets: 5,
            ..Default::default()
        };
        let mut bucket = Bucket::full(&limit, 0);
        for _ in 0..5 {
            assert!(bucket.take(&limit, 100, 0));
        }
        let later = 60 * NANOS;
        for _ in 0..4 {
            assert!(bucket.take(&limit, 100, later));
        }
        assert!(!bucket.take(&limit, 100, later));
        // The clock's whole range at the highest rate: the burst, no wrap.
        let fast = RateLimit {
            packets_per_second: u64::MAX,
            ..limit
        };
        for _ in 0..5 {
            assert!(bucket.take(&fast, 100, u64::MAX));
        }
        assert!(!bucket.take(&fast, 100, u64::MAX));
    }

    #[test]
    fn byte_bucket() {
        let limit = RateLimit {
            bytes_per_second: 1000,
            burst_bytes: 1500,
            ..Default::default()
        };
        let mut bucket = Bucket::full(&limit, 0);
        assert!(bucket.take(&limit, 1000, 0));
        assert!(!bucket.take(&limit, 1000, 0));
        assert!(bucket.take(&limit, 500, 0));
        assert!(bucket.take(&limit, 1000, NANOS));
    }

    #[test]
    fn buckets_are_keyed_by_limit_id_and_aggregated_address() {
        let mut key = FlowKey {
            ip_version: 4,
            ..Default::default()
        };
        key.source = crate::parse::ipv4_mapped([10, 1, 2, 3]);
        let first = RateLimit {
            id: 1,
            aggregate_v4: 24,
            ..Default::default()
        };
        let successor = RateLimit { id: 2, ..first };
        assert_ne!(first.bucket_key(&key), successor.bucket_key(&key));
        let neighbour = FlowKey {
            source: crate::parse::ipv4_mapped([10, 1, 2, 99]),
            ..key
        };
        assert_eq!(
            first.bucket_key(&key),
            first.bucket_key(&neighbour),
            "one bucket per /24"
        );
    }
}
