//! Bounds that outlive the token buckets: a small sketch per limit slot, so
//! that a bucket its LRU table evicted (a flood of random sources does
//! that: issue 14, item 13) starts again no fuller than the bucket it
//! replaces would be, instead of full.
//!
//! Each limit slot owns [`BOUND_ROWS`] rows of [`BOUND_WIDTH`] cells, and a
//! bucket key hashes to one cell in each row. A cell is a token bucket of
//! the limit's rate and burst that is never charged itself: after each
//! frame charged to a bucket, every cell of the bucket is lowered to it
//! (each kind of token to the smaller of the two, the cell first refilled
//! to now). So a cell never holds more tokens than any bucket hashed to it
//! would hold had that bucket never been evicted: both refill alike, a
//! cell only ever goes down to a bucket's level, and only a frame that
//! passes lowers a bucket. A bucket the table does not hold starts at the
//! most any of its cells allows, which is therefore never more than the
//! limit allows: the limit holds however often the bucket is evicted.
//!
//! Unlike the buckets, the cells cannot be evicted: an array, one sketch
//! per limit slot ([`BOUND_CELLS`] cells in all, 4 MiB). The price falls on
//! buckets that start from their cells. Without a flood that is rare: a
//! new source starts below its burst only when, in both rows, its cell
//! holds a source that spent tokens in the last burst/rate seconds. Under a
//! flood of random sources that spend tokens under the same limit, every
//! cell is shared with the flood, each new bucket takes what its cells
//! hold and lowers them by what it spends: the limit then acts on all the
//! sources of a cell together, and a new or evicted source gets a share
//! of the cell's rate rather than its own burst. (In the end-to-end test,
//! 1 per second, bursts of 5, 330,000 frames a second from sources sending
//! two each: about 1 frame in 40 of the flood passed, and the limited
//! source got 2-6 of 40 where 20 were allowed.) A source its table still
//! holds, one that keeps sending, is not affected. Every structure that
//! cannot be evicted (a count-min sketch, a per-prefix fallback) shares a
//! flood's spending with the sources it hashes together in the same way.
//!
//! The cells are per limit slot and carry the limit's id: when a slot
//! changes hands (a limit deleted, the next one moved up), the old limit's
//! cells bound nothing for the new one, whose buckets start full. Concurrent
//! CPUs may race on a cell as on a bucket; a lost update can only raise a
//! bound back to what another bucket of that cell holds.

use super::limits::{Bucket, BucketKey, RateLimit};
use super::types::MAX_RATE_LIMITS;
use crate::hash::mix64;

/// Rows of each limit's sketch.
pub const BOUND_ROWS: u32 = 2;
/// Cells per row (a power of two).
pub const BOUND_WIDTH: u32 = 4096;
/// Cells of all the sketches (`BUCKET_BOUNDS`): rows × width per limit
/// slot.
pub const BOUND_CELLS: u32 = MAX_RATE_LIMITS * BOUND_ROWS * BOUND_WIDTH;

/// `BucketBound::flags`: the cell holds a bound.
pub const BOUND_SET: u32 = 1 << 0;

/// One cell: the most tokens any bucket hashed here may hold, as a bucket
/// refilled at the limit's rate (one entry of `BUCKET_BOUNDS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BucketBound {
    /// The bound, refilled lazily like a bucket.
    pub bucket: Bucket,
    /// The id of the limit it bounds.
    pub limit: u32,
    /// `BOUND_*` bits; zero: no bound (a full bucket).
    pub flags: u32,
}

/// One frame's charge to a bucket: its size, the time, its limit's slot
/// and where the bucket's bounds are. Aligned to 8 for the eBPF stack.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Charge {
    /// The frame's length in bytes.
    pub bytes: u64,
    /// Now, CLOCK_MONOTONIC ns.
    pub now_ns: u64,
    /// The bucket's cell in each row of its limit's sketch.
    pub cells: [u32; BOUND_ROWS as usize],
    /// The limit's slot (`RATE_LIMITS`).
    pub slot: u32,
}

impl Charge {
    /// The charge of a frame of `bytes` at `now_ns` to the bucket `key` of
    /// the limit in slot `slot`.
    #[inline(always)]
    pub fn new(slot: u32, key: &BucketKey, bytes: u64, now_ns: u64) -> Self {
        let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p] = key.address;
        let high = u64::from_le_bytes([a, b, c, d, e, f, g, h]);
        let low = u64::from_le_bytes([i, j, k, l, m, n, o, p]);
        let hash = mix64(high ^ low.rotate_left(32));
        let sketch = (slot % MAX_RATE_LIMITS) * BOUND_ROWS * BOUND_WIDTH;
        let mask = BOUND_WIDTH - 1;
        Self {
            bytes,
            now_ns,
            cells: [
                sketch + (hash as u32 & mask),
                sketch + BOUND_WIDTH + ((hash >> 32) as u32 & mask),
            ],
            slot,
        }
    }
}

/// Where a build keeps the cells.
pub trait BoundCells {
    /// Cell `index` (below [`BOUND_CELLS`]).
    fn cell(&mut self, index: u32) -> Option<&mut BucketBound>;
}

/// What [`charge_bucket`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Charged {
    /// The frame is within the limit.
    pub allowed: bool,
    /// The table held no bucket: one was started in the scratch bucket,
    /// for the caller to put in the table.
    pub started: bool,
}

/// Charges one frame to a bucket: `bucket` is the one its table holds,
/// `None` when the table holds none, and then a bucket is started in
/// `scratch` from the bounds. Either way the bucket's cells are lowered
/// to it.
///
/// The eBPF build's `scratch` is a per-CPU map slot, not the stack: the
/// verifier tracks what is written to the stack, and a bucket built there
/// through these branches made it walk past its million instructions.
#[inline(always)]
pub fn charge_bucket<C: BoundCells>(
    cells: &mut C,
    bucket: Option<&mut Bucket>,
    scratch: &mut Bucket,
    limit: &RateLimit,
    charge: &Charge,
) -> Charged {
    let (bucket, started) = match bucket {
        Some(bucket) => (bucket, false),
        None => {
            start_bucket(cells, scratch, limit, charge);
            (scratch, true)
        }
    };
    let allowed = bucket.take(limit, charge.bytes, charge.now_ns);
    for index in charge.cells {
        if let Some(cell) = cells.cell(index) {
            lower_to(cell, bucket, limit);
        }
    }
    Charged { allowed, started }
}

/// Sets `start` to the most any of its cells allows now (full where a cell
/// holds no bound for this limit).
#[inline(always)]
fn start_bucket<C: BoundCells>(
    cells: &mut C,
    start: &mut Bucket,
    limit: &RateLimit,
    charge: &Charge,
) {
    // Field by field, volatile: a struct assignment (or plain stores)
    // became a `memset` call for the two zero words in the eBPF build, a
    // byte loop run for every new bucket (each frame of a flood of new
    // sources).
    // SAFETY: writes through a live exclusive reference.
    unsafe {
        core::ptr::write_volatile(&mut start.packet_tokens, 0);
        core::ptr::write_volatile(&mut start.byte_tokens, 0);
    }
    start.last_ns = charge.now_ns;
    for index in charge.cells {
        match cells.cell(index) {
            Some(cell) => raise_to(start, cell, limit),
            None => *start = Bucket::full(limit, charge.now_ns),
        }
    }
}

/// Raises `start` to what `cell` allows at `start.last_ns` (the cell is
/// refilled to then in place: the same bound). Not inlined, for the
/// verifier (as `Bucket::take`).
#[inline(never)]
fn raise_to(start: &mut Bucket, cell: &mut BucketBound, limit: &RateLimit) {
    if !bounds(cell, limit) {
        *start = Bucket::full(limit, start.last_ns);
        return;
    }
    cell.bucket.refill(limit, start.last_ns);
    start.packet_tokens = start.packet_tokens.max(cell.bucket.packet_tokens);
    start.byte_tokens = start.byte_tokens.max(cell.bucket.byte_tokens);
}

/// Lowers `cell` to `bucket` (just charged, so refilled to `last_ns`); a
/// cell without a bound for this limit takes the bucket as it is. Not
/// inlined, for the verifier.
#[inline(never)]
fn lower_to(cell: &mut BucketBound, bucket: &Bucket, limit: &RateLimit) {
    if !bounds(cell, limit) {
        cell.bucket = *bucket;
        cell.limit = limit.id;
        cell.flags = BOUND_SET;
        return;
    }
    cell.bucket.refill(limit, bucket.last_ns);
    cell.bucket.packet_tokens = cell.bucket.packet_tokens.min(bucket.packet_tokens);
    cell.bucket.byte_tokens = cell.bucket.byte_tokens.min(bucket.byte_tokens);
}

/// Whether `cell` holds a bound for `limit`.
#[inline(always)]
fn bounds(cell: &BucketBound, limit: &RateLimit) -> bool {
    cell.flags & BOUND_SET != 0 && cell.limit == limit.id
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const NANOS: u64 = 1_000_000_000;

    impl BoundCells for HashMap<u32, BucketBound> {
        fn cell(&mut self, index: u32) -> Option<&mut BucketBound> {
            (index < BOUND_CELLS).then(|| self.entry(index).or_default())
        }
    }

    fn limit() -> RateLimit {
        RateLimit {
            packets_per_second: 1,
            burst_packets: 5,
            id: 7,
            ..Default::default()
        }
    }

    fn key(last: u8) -> BucketKey {
        BucketKey {
            address: crate::parse::ipv4_mapped([192, 0, 2, last]),
            limit: 7,
            reserved: 0,
        }
    }

    /// Sends `count` frames of `key` at `now` through a table that forgets
    /// every bucket first when `evict`; returns how many passed.
    fn send(
        cells: &mut HashMap<u32, BucketBound>,
        table: &mut HashMap<BucketKey, Bucket>,
        key: &BucketKey,
        count: u32,
        now: u64,
    ) -> u32 {
        let limit = limit();
        let mut passed = 0;
        for _ in 0..count {
            let charge = Charge::new(0, key, 100, now);
            let mut scratch = Bucket::default();
            let charged = charge_bucket(cells, table.get_mut(key), &mut scratch, &limit, &charge);
            if charged.started {
                table.insert(*key, scratch);
            }
            passed += u32::from(charged.allowed);
        }
        passed
    }

    #[test]
    fn an_evicted_bucket_starts_from_its_bound_not_full() {
        let (mut cells, mut table) = (HashMap::new(), HashMap::new());
        let source = key(1);
        // 5 every 2 s for 8 rounds, the bucket forgotten before each round
        // (the flood): the limit's 5 + 7 × 2, never more.
        let mut passed = 0;
        for round in 0..8u64 {
            table.clear();
            passed += send(&mut cells, &mut table, &source, 5, round * 2 * NANOS);
        }
        assert_eq!(passed, 5 + 7 * 2);
    }

    #[test]
    fn a_source_that_never_spent_its_burst_starts_full() {
        let (mut cells, mut table) = (HashMap::new(), HashMap::new());
        assert_eq!(send(&mut cells, &mut table, &key(1), 5, NANOS), 5);
        // Another source shares no cell with it in both rows.
        let other = key(2);
        let (first, second) = (Charge::new(0, &key(1), 0, 0), Charge::new(0, &other, 0, 0));
        assert!(first.cells[0] != second.cells[0] || first.cells[1] != second.cells[1]);
        assert_eq!(send(&mut cells, &mut table, &other, 6, NANOS), 5);
    }

    #[test]
    fn bounds_refill_at_the_limits_rate_and_stop_at_its_burst() {
        let (mut cells, mut table) = (HashMap::new(), HashMap::new());
        let source = key(3);
        assert_eq!(send(&mut cells, &mut table, &source, 5, 0), 5);
        table.clear();
        assert_eq!(send(&mut cells, &mut table, &source, 5, 3 * NANOS), 3);
        table.clear();
        // One refill counts at most 4 s (limits.rs): 4 of the burst of 5.
        assert_eq!(send(&mut cells, &mut table, &source, 9, 60 * NANOS), 4);
    }

    #[test]
    fn a_new_limit_in_the_slot_ignores_the_old_limits_bounds() {
        let (mut cells, mut table) = (HashMap::new(), HashMap::new());
        let source = key(4);
        assert_eq!(send(&mut cells, &mut table, &source, 5, 0), 5);
        let successor = RateLimit { id: 8, ..limit() };
        let mut successor_key = source;
        successor_key.limit = 8;
        let charge = Charge::new(0, &successor_key, 100, 0);
        let mut scratch = Bucket::default();
        let charged = charge_bucket(&mut cells, None, &mut scratch, &successor, &charge);
        assert!(charged.allowed && charged.started);
        assert_eq!(scratch.packet_tokens, 4 * NANOS);
    }

    #[test]
    fn cells_stay_inside_their_limits_sketch() {
        for slot in 0..MAX_RATE_LIMITS {
            for last in 0..=255 {
                let charged = Charge::new(slot, &key(last), 0, 0);
                let sketch = slot * BOUND_ROWS * BOUND_WIDTH;
                assert!((sketch..sketch + BOUND_WIDTH).contains(&charged.cells[0]));
                let second = sketch + BOUND_WIDTH;
                assert!((second..second + BOUND_WIDTH).contains(&charged.cells[1]));
            }
        }
    }
}
