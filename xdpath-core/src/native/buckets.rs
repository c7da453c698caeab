//! The rate limits' token buckets of [`super::NativeTables`]: owned by one
//! table set, or shared by the serving threads of the user-space runtime
//! (`xdpath run --userspace --threads`), as the kernel keeps one
//! `SRC_BUCKETS`/`DST_BUCKETS` table for all CPUs: a source that RSS spreads
//! over queues gets its limit once, not once per queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::filter::{
    charge_bucket, AddressCharge, AddressLimit, AddressLimitKey, BoundCells, Bucket, BucketBound,
    BucketKey, BucketTable, Charge, RateLimit, BOUND_CELLS, DESTINATION_BUCKETS, SOURCE_BUCKETS,
};

/// The buckets of both tables and their bounds, and the address limits
/// (each its own bucket: kept here so that the serving threads share them
/// as the CPUs share the kernel's `ADDRESS_LIMITS`).
#[derive(Clone, Debug, Default)]
pub struct BucketState {
    source: HashMap<BucketKey, Bucket>,
    destination: HashMap<BucketKey, Bucket>,
    bounds: BucketBounds,
    pub(super) address_limits: HashMap<AddressLimitKey, AddressLimit>,
}

impl BucketState {
    /// Charges `charge` to the bucket of `key` in `table` under `limit`;
    /// whether the frame is within it.
    pub(super) fn take(
        &mut self,
        table: BucketTable,
        key: &BucketKey,
        limit: &RateLimit,
        charge: &Charge,
    ) -> bool {
        let (buckets, capacity) = match table {
            BucketTable::Source => (&mut self.source, SOURCE_BUCKETS),
            BucketTable::Destination => (&mut self.destination, DESTINATION_BUCKETS),
        };
        let mut started = Bucket::default();
        let charged = charge_bucket(
            &mut self.bounds,
            buckets.get_mut(key),
            &mut started,
            limit,
            charge,
        );
        if charged.started {
            // Bounded like the kernel's tables: when full, an arbitrary
            // bucket goes (the kernel's LRU evicts the least recent); its
            // bounds keep it to its limit.
            if buckets.len() >= capacity as usize {
                if let Some(victim) = buckets.keys().next().copied() {
                    buckets.remove(&victim);
                }
            }
            buckets.insert(*key, started);
        }
        charged.allowed
    }

    /// Charges a frame to the address limit at `key`, as the kernel does.
    pub(super) fn charge_address(
        &mut self,
        key: &AddressLimitKey,
        bytes: u64,
        now_ns: u64,
    ) -> AddressCharge {
        let Some(entry) = self.address_limits.get_mut(key) else {
            return AddressCharge::Unlimited;
        };
        if entry.charge(bytes, now_ns) {
            return AddressCharge::Fits;
        }
        entry.drops += 1;
        AddressCharge::Over {
            monitor: entry.monitored(),
        }
    }

    /// Forgets every bucket (the bounds and the address limits stay).
    pub(super) fn clear(&mut self) {
        self.source.clear();
        self.destination.clear();
    }
}

/// The cells of the bucket bounds (`filter::bounds`), those ever written:
/// a missing cell is a zeroed one, as in the kernel's array.
#[derive(Clone, Debug, Default)]
struct BucketBounds(HashMap<u32, BucketBound>);

impl BoundCells for BucketBounds {
    fn cell(&mut self, index: u32) -> Option<&mut BucketBound> {
        (index < BOUND_CELLS).then(|| self.0.entry(index).or_default())
    }
}

/// The buckets as one table set holds them. Owned: no lock (one serving
/// thread, tests, replay); the per-core figure does not pay for one.
/// Shared: one table behind a lock for every serving thread; only frames
/// that meet a rate limit take it. A clone of shared buckets is the same
/// table (the state watch's scratch copy keeps the handle).
#[derive(Clone, Debug)]
pub(super) enum Buckets {
    Owned(BucketState),
    Shared(Arc<Mutex<BucketState>>),
}

impl Default for Buckets {
    fn default() -> Self {
        Self::Owned(BucketState::default())
    }
}

impl Buckets {
    /// Runs `work` on the buckets, under the lock when they are shared. A
    /// thread that panicked holding the lock left whole buckets (a bucket
    /// is written after its charge is decided): go on.
    pub(super) fn with<R>(&mut self, work: impl FnOnce(&mut BucketState) -> R) -> R {
        match self {
            Self::Owned(state) => work(state),
            Self::Shared(shared) => {
                work(&mut shared.lock().unwrap_or_else(PoisonError::into_inner))
            }
        }
    }

    /// Runs `work` on the buckets to read them.
    pub(super) fn read<R>(&self, work: impl FnOnce(&BucketState) -> R) -> R {
        match self {
            Self::Owned(state) => work(state),
            Self::Shared(shared) => work(&shared.lock().unwrap_or_else(PoisonError::into_inner)),
        }
    }

    /// The shared handle, made from the owned buckets on the first call.
    pub(super) fn share(&mut self) -> Arc<Mutex<BucketState>> {
        match self {
            Self::Shared(shared) => shared.clone(),
            Self::Owned(state) => {
                let shared = Arc::new(Mutex::new(std::mem::take(state)));
                *self = Self::Shared(shared.clone());
                shared
            }
        }
    }

    pub(super) fn is_shared(&self) -> bool {
        matches!(self, Self::Shared(_))
    }
}

#[cfg(test)]
mod tests {
    use crate::filter::{BucketKey, BucketTable, Charge, RateLimit, Tables};
    use crate::NativeTables;

    /// Frames of one source charged alternately to two table sets, at one
    /// instant; how many were within a limit of 5 packets' burst.
    fn allowed_over_two(first: &mut NativeTables, second: &mut NativeTables) -> usize {
        let key = BucketKey {
            address: crate::parse::ipv4_mapped([10, 0, 0, 1]),
            limit: 1,
            reserved: 0,
        };
        (0..40)
            .filter(|&frame| {
                let tables = if frame % 2 == 0 {
                    &mut *first
                } else {
                    &mut *second
                };
                let charge = Charge::new(0, &key, 100, 1_000_000_000);
                tables.take_tokens(BucketTable::Source, &key, &charge)
            })
            .count()
    }

    fn limited() -> NativeTables {
        let mut tables = NativeTables::default();
        tables.rate_limits.push(RateLimit {
            packets_per_second: 5,
            burst_packets: 5,
            id: 1,
            ..RateLimit::default()
        });
        tables
    }

    /// Frames to one address charged alternately to two table sets under
    /// an address limit of burst 5; how many fit.
    fn address_fits_over_two(first: &mut NativeTables, second: &mut NativeTables) -> usize {
        use crate::filter::{AddressCharge, AddressLimitKey};
        let key = AddressLimitKey {
            address: crate::parse::ipv4_mapped([10, 0, 0, 1]),
            ..AddressLimitKey::default()
        };
        (0..40)
            .filter(|&frame| {
                let tables = if frame % 2 == 0 {
                    &mut *first
                } else {
                    &mut *second
                };
                tables.charge_address_limit(&key, 100, 1_000_000_000) == AddressCharge::Fits
            })
            .count()
    }

    #[test]
    fn address_limits_are_shared_like_the_buckets() {
        use crate::filter::{AddressLimit, AddressLimitKey};
        let address_limited = || {
            let mut tables = NativeTables::default();
            let key = AddressLimitKey {
                address: crate::parse::ipv4_mapped([10, 0, 0, 1]),
                ..AddressLimitKey::default()
            };
            let limit = RateLimit {
                packets_per_second: 5,
                burst_packets: 5,
                id: 3,
                ..RateLimit::default()
            };
            tables.set_address_limit(key, AddressLimit::fresh(limit));
            (tables, key)
        };
        let (mut first, _) = address_limited();
        let mut second = first.clone();
        assert_eq!(address_fits_over_two(&mut first, &mut second), 10);
        let (mut first, key) = address_limited();
        let _handle = first.share_buckets();
        let mut second = first.clone();
        assert_eq!(address_fits_over_two(&mut first, &mut second), 5);
        // One entry, its drops counted once for both.
        assert_eq!(
            second.address_limit(&key).map(|entry| entry.drops),
            Some(35)
        );
        assert_eq!(first.address_limit_drops(), [(3, 35)]);
        // Forgetting the buckets keeps the limits (they are configuration).
        first.clear_buckets();
        assert!(second.address_limit(&key).is_some());
    }

    #[test]
    fn shared_buckets_charge_one_table_and_owned_ones_their_own() {
        // Owned: each clone has its own buckets, so the source gets its
        // burst twice.
        let mut first = limited();
        let mut second = first.clone();
        assert!(!first.buckets_shared());
        assert_eq!(allowed_over_two(&mut first, &mut second), 10);

        // Shared before the clone: one bucket, one burst.
        let mut first = limited();
        let _handle = first.share_buckets();
        let mut second = first.clone();
        assert!(second.buckets_shared());
        assert_eq!(allowed_over_two(&mut first, &mut second), 5);
        // A clone of a clone (the state watch's scratch copy) keeps it; a
        // clear through it forgets the shared buckets, and the bounds
        // still hold the source to what it has used, as in the kernel.
        let mut third = second.clone();
        assert_eq!(allowed_over_two(&mut first, &mut third), 0);
        third.clear_buckets();
        assert_eq!(allowed_over_two(&mut first, &mut second), 0);
    }
}
