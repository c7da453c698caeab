//! Maglev consistent hashing with weights: builds the per-VIP lookup table
//! that maps a flow hash (modulo the table size) to a backend.
//!
//! The table depends only on the set of `(address, weight)` pairs, the size
//! and the seed, so every control-plane instance (and every restart) computes
//! the same table and flows keep landing on the same backend.

/// The smallest table size accepted (any prime at least this large).
pub const MIN_TABLE_SIZE: u32 = 7;
/// The largest table size accepted: the data path reserves this many slots
/// per VIP.
pub const MAX_TABLE_SIZE: u32 = 65_537;
/// The table size used unless a VIP asks for another.
pub const DEFAULT_TABLE_SIZE: u32 = 65_537;
/// A slot with no backend (every backend has weight 0, or there are none).
pub const NO_BACKEND: u32 = u32::MAX;
/// The largest weight accepted; weights are `0..=MAX_WEIGHT`.
pub const MAX_WEIGHT: u32 = 1_000;

/// One backend as seen by the table builder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaglevBackend {
    /// The backend's IP address as 16 bytes (IPv4 as IPv4-mapped
    /// `::ffff:a.b.c.d`).
    pub address: [u8; 16],
    /// The backend's relative weight, `0..=MAX_WEIGHT`; 0 drains it.
    pub weight: u32,
}

/// Why a table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    /// The size is not a prime, so some permutations would miss slots.
    #[error("table size {size} is not a prime")]
    NotPrime {
        /// The size asked for.
        size: u32,
    },
    /// The size is outside `MIN_TABLE_SIZE..=MAX_TABLE_SIZE`.
    #[error("table size {size} is out of range ({MIN_TABLE_SIZE}-{MAX_TABLE_SIZE})")]
    SizeOutOfRange {
        /// The size asked for.
        size: u32,
    },
    /// More backends with a non-zero weight than `size / 2`.
    #[error("{backends} weighted backends for table size {size}: at most size / 2 are allowed")]
    TooManyBackends {
        /// How many backends were counted.
        backends: usize,
        /// The size asked for.
        size: u32,
    },
    /// A weight is above `MAX_WEIGHT`.
    #[error("weight {weight} is out of range (0-{MAX_WEIGHT})")]
    WeightOutOfRange {
        /// The weight given.
        weight: u32,
    },
    /// Two backends share an address, so their slots could not be told apart.
    #[error(
        "backend address {} appears more than once",
        std::net::Ipv6Addr::from(*address).to_canonical()
    )]
    DuplicateBackend {
        /// The repeated address.
        address: [u8; 16],
    },
}

/// Returns whether `n` is a prime (table sizes must be).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    // u64 so that `d * d` cannot overflow near u32::MAX.
    let n = u64::from(n);
    let mut d = 3_u64;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// Seed tweaks so that offset and skip come from independent hashes.
const OFFSET_TWEAK: u8 = 0x6f;
const SKIP_TWEAK: u8 = 0x73;

/// A hash fixed by this code alone (std's hashers may change between Rust
/// versions and are randomly keyed), so tables agree across hosts and
/// releases. The seed is fed little endian so endianness does not matter.
fn stable_hash(tweak: u8, seed: u64, address: &[u8; 16]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = std::iter::once(tweak)
        .chain(seed.to_le_bytes())
        .chain(address.iter().copied());
    let mut h = FNV_OFFSET;
    for b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    // FNV-1a alone mixes the last bytes poorly into the low bits, and the
    // low bits are what `% size` keeps; the splitmix64 finaliser fixes that.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A weighted backend's walk through its own permutation of the slots.
struct Cursor {
    /// Index into the caller's slice; this is what goes into the table.
    index: u32,
    weight: u32,
    offset: u64,
    skip: u64,
    /// Carried between rounds so that fractional shares add up exactly.
    credit: u32,
    /// Never rewinds, so each backend examines each slot at most once.
    next: u64,
}

impl Cursor {
    /// Claims the backend's next preferred empty slot. It finds one while
    /// any slot is empty, because a prime size makes the walk visit every
    /// slot.
    ///
    /// Inlined by request: left to the compiler, the build after the crate
    /// split made the 1,000-backend 1000:1 table in 18.4 ms instead of
    /// 11.9 ms (`xdpath bench`, Maglev rows; same source, other code
    /// placement); inlined, 11.7–13.5 ms.
    #[inline(always)]
    fn claim(&mut self, table: &mut [u32], size: u64) -> bool {
        while self.next < size {
            let slot = (self.offset + self.next * self.skip) % size;
            self.next += 1;
            if let Some(entry) = table.get_mut(slot as usize) {
                if *entry == NO_BACKEND {
                    *entry = self.index;
                    return true;
                }
            }
        }
        false
    }
}

/// Checks the size, weights and addresses, returning the weighted backends
/// as `(address, index, weight)` sorted by address.
fn validate(
    backends: &[MaglevBackend],
    size: u32,
) -> Result<Vec<([u8; 16], u32, u32)>, MaglevError> {
    // Range first: 5 and 65 539 are primes, but still unusable.
    if !(MIN_TABLE_SIZE..=MAX_TABLE_SIZE).contains(&size) {
        return Err(MaglevError::SizeOutOfRange { size });
    }
    if !is_prime(size) {
        return Err(MaglevError::NotPrime { size });
    }
    // Slots hold u32 indices with NO_BACKEND reserved, so a longer slice
    // could not be indexed (and the `as u32` below cannot truncate).
    if backends.len() >= NO_BACKEND as usize {
        let backends = backends.len();
        return Err(MaglevError::TooManyBackends { backends, size });
    }
    if let Some(b) = backends.iter().find(|b| b.weight > MAX_WEIGHT) {
        return Err(MaglevError::WeightOutOfRange { weight: b.weight });
    }
    // Sorting by address is what makes the fill order, and so the table,
    // independent of the order the caller listed the backends in.
    let mut sorted: Vec<([u8; 16], u32, u32)> = (0..)
        .zip(backends)
        .map(|(i, b)| (b.address, i, b.weight))
        .collect();
    sorted.sort_unstable();
    let duplicate = sorted.windows(2).find_map(|pair| match pair {
        [a, b] if a.0 == b.0 => Some(a.0),
        _ => None,
    });
    if let Some(address) = duplicate {
        return Err(MaglevError::DuplicateBackend { address });
    }
    sorted.retain(|&(_, _, weight)| weight > 0);
    // Beyond half the slots, rounding to whole slots would skew the shares.
    if sorted.len() > (size / 2) as usize {
        let backends = sorted.len();
        return Err(MaglevError::TooManyBackends { backends, size });
    }
    Ok(sorted)
}

/// Builds the Maglev lookup table.
///
/// Returns, for each of `size` slots, the index into `backends` of the
/// backend owning the slot, or [`NO_BACKEND`] if no backend has a non-zero
/// weight. Each backend's share of the slots is proportional to its weight;
/// a weight of 0 drains the backend. The slot → address mapping depends
/// only on the set of `(address, weight)` pairs, `size` and `seed`.
///
/// # Errors
///
/// `size` must be a prime in `MIN_TABLE_SIZE..=MAX_TABLE_SIZE`, weights at
/// most [`MAX_WEIGHT`], addresses distinct, and at most `size / 2` backends
/// may have a non-zero weight.
///
/// # Examples
///
/// ```
/// use xdpath::lb::maglev::{build_table, MaglevBackend, DEFAULT_TABLE_SIZE};
///
/// let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
/// a[15] = 1;
/// b[15] = 2;
/// let backends = [
///     MaglevBackend { address: a, weight: 1 },
///     MaglevBackend { address: b, weight: 3 },
/// ];
/// let table = build_table(&backends, DEFAULT_TABLE_SIZE, 42)?;
/// assert_eq!(table.len(), DEFAULT_TABLE_SIZE as usize);
/// let to_b = table.iter().filter(|&&i| i == 1).count() as f64 / table.len() as f64;
/// assert!((to_b - 0.75).abs() < 0.01);
/// # Ok::<(), xdpath::lb::maglev::MaglevError>(())
/// ```
pub fn build_table(
    backends: &[MaglevBackend],
    size: u32,
    seed: u64,
) -> Result<Vec<u32>, MaglevError> {
    let weighted = validate(backends, size)?;
    let mut table = vec![NO_BACKEND; size as usize];
    let size64 = u64::from(size);
    let mut cursors: Vec<Cursor> = weighted
        .iter()
        .map(|&(address, index, weight)| Cursor {
            index,
            weight,
            offset: stable_hash(OFFSET_TWEAK, seed, &address) % size64,
            skip: stable_hash(SKIP_TWEAK, seed, &address) % (size64 - 1) + 1,
            credit: 0,
            next: 0,
        })
        .collect();
    let Some(max_weight) = cursors.iter().map(|c| c.weight).max() else {
        return Ok(table);
    };
    // Rounds of credit: a backend claims a slot each time its credit reaches
    // the largest weight, i.e. weight / max_weight slots per round. The
    // claims interleave (rather than each backend taking its whole share in
    // one go), which keeps Maglev's even spread and small disruption.
    let mut filled = 0_u32;
    // Ends: every round the heaviest backends claim a slot, and a walk only
    // runs dry once every slot is taken.
    loop {
        for cursor in &mut cursors {
            cursor.credit += cursor.weight;
            if cursor.credit < max_weight {
                continue;
            }
            cursor.credit -= max_weight;
            if !cursor.claim(&mut table, size64) {
                return Ok(table);
            }
            filled += 1;
            if filled == size {
                return Ok(table);
            }
        }
    }
}

/// Fraction of slots (`0.0..=1.0`) whose backend address differs between
/// two tables, each read against the backend list it was built from.
///
/// Slots are compared by address, not index, since the lists may differ in
/// order and content. [`NO_BACKEND`] (or an index outside the list) counts
/// as "no backend". Tables of different lengths send flows to different
/// slots, so every flow may move: the result is then 1.0. Two empty tables
/// give 0.0.
pub fn disruption(
    before: &[u32],
    before_backends: &[MaglevBackend],
    after: &[u32],
    after_backends: &[MaglevBackend],
) -> f64 {
    if before.len() != after.len() {
        return 1.0;
    }
    if before.is_empty() {
        return 0.0;
    }
    let address = |list: &[MaglevBackend], i: u32| list.get(i as usize).map(|b| b.address);
    let moved = before
        .iter()
        .zip(after)
        .filter(|&(&b, &a)| address(before_backends, b) != address(after_backends, a))
        .count();
    moved as f64 / before.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Backends at IPv4-mapped 10.x.y.z with the given weights.
    fn backends(weights: &[u32]) -> Vec<MaglevBackend> {
        let each = |(n, &weight): (u32, &u32)| {
            let mut address = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 0];
            address[13..].copy_from_slice(&n.to_be_bytes()[1..]);
            MaglevBackend { address, weight }
        };
        (0..).zip(weights).map(each).collect()
    }

    fn by_address(table: &[u32], list: &[MaglevBackend]) -> Vec<Option<[u8; 16]>> {
        let address = |&i: &u32| list.get(i as usize).map(|b| b.address);
        table.iter().map(address).collect()
    }

    /// Builds at `DEFAULT_TABLE_SIZE`, returning the table by address.
    fn build(list: &[MaglevBackend]) -> Vec<Option<[u8; 16]>> {
        by_address(&build_table(list, DEFAULT_TABLE_SIZE, 3).unwrap(), list)
    }

    fn assert_shares(weights: &[u32]) {
        let table = build_table(&backends(weights), DEFAULT_TABLE_SIZE, 7).unwrap();
        let total = f64::from(weights.iter().sum::<u32>());
        let mut counts = vec![0_usize; weights.len()];
        for &i in &table {
            counts[i as usize] += 1;
        }
        let mut worst = 0.0_f64;
        for (&count, &w) in counts.iter().zip(weights) {
            let share = count as f64 / table.len() as f64;
            worst = worst.max((share - f64::from(w) / total).abs());
        }
        println!("{} backends: worst share error {worst:.6}", weights.len());
        assert!(worst <= 0.01, "worst share error {worst}");
    }

    #[test]
    fn shares_follow_weights_1_2_3() {
        assert_shares(&[1, 2, 3]);
    }

    #[test]
    fn shares_even_for_10_equal() {
        assert_shares(&[5; 10]);
    }

    #[test]
    fn shares_follow_weights_1000_backends() {
        assert_shares(&(0..1000).map(|i| i % 10 + 1).collect::<Vec<_>>());
    }

    #[test]
    fn order_independent() {
        let list = backends(&[3, 1, 4, 1, 5, 9, 2, 6, 0, 5]);
        let mut reversed = list.clone();
        reversed.reverse();
        let mut rotated = list.clone();
        rotated.rotate_left(3);
        assert_eq!(build(&reversed), build(&list));
        assert_eq!(build(&rotated), build(&list));
    }

    #[test]
    fn seed_changes_table() {
        let list = backends(&[1; 10]);
        let a = build_table(&list, 1009, 1).unwrap();
        let b = build_table(&list, 1009, 2).unwrap();
        assert_eq!(a, build_table(&list, 1009, 1).unwrap());
        let moved = disruption(&a, &list, &b, &list);
        assert!(moved > 0.5, "only {moved} moved with a new seed");
    }

    #[test]
    fn weight_zero_drains() {
        let table = build_table(&backends(&[1, 0, 1]), 101, 0).unwrap();
        assert!(!table.contains(&1) && !table.contains(&NO_BACKEND));
        assert!(table.contains(&0) && table.contains(&2));
        let none = build_table(&backends(&[0, 0]), 101, 0).unwrap();
        assert_eq!(none, vec![NO_BACKEND; 101]);
        assert_eq!(build_table(&[], 7, 0).unwrap(), vec![NO_BACKEND; 7]);
    }

    #[test]
    fn removal_moves_about_one_share() {
        let before_list = backends(&[1; 10]);
        let mut after_list = before_list.clone();
        let gone = Some(after_list.remove(3).address);
        let before = build_table(&before_list, DEFAULT_TABLE_SIZE, 3).unwrap();
        let after = build_table(&after_list, DEFAULT_TABLE_SIZE, 3).unwrap();
        let moved = disruption(&before, &before_list, &after, &after_list);
        // Slots that moved although their backend stayed.
        let (b, a) = (
            by_address(&before, &before_list),
            by_address(&after, &after_list),
        );
        let collateral = b.iter().zip(&a).filter(|(b, a)| **b != gone && b != a);
        let collateral = collateral.count() as f64 / before.len() as f64;
        println!("removal: disruption {moved:.4} (ideal 0.1000), collateral {collateral:.4}");
        assert!((0.09..=0.12).contains(&moved), "{moved}");
        // At least 95% of the moved slots are the removed backend's own.
        assert!(collateral <= 0.02, "{collateral}");
        assert!(collateral <= 0.05 * moved, "{collateral} of {moved}");
    }

    #[test]
    fn addition_moves_about_one_share() {
        let (before_list, after_list) = (backends(&[1; 10]), backends(&[1; 11]));
        let before = build_table(&before_list, DEFAULT_TABLE_SIZE, 3).unwrap();
        let after = build_table(&after_list, DEFAULT_TABLE_SIZE, 3).unwrap();
        let moved = disruption(&before, &before_list, &after, &after_list);
        let ideal = 1.0 / 11.0;
        println!("addition: disruption {moved:.4} (ideal {ideal:.4})");
        assert!((ideal - 0.01..=ideal + 0.02).contains(&moved), "{moved}");
    }

    fn err(list: &[MaglevBackend], size: u32) -> MaglevError {
        build_table(list, size, 0).unwrap_err()
    }

    #[test]
    fn errors() {
        use MaglevError::*;
        let two = backends(&[1, 1]);
        assert_eq!(err(&two, 65_536), NotPrime { size: 65_536 });
        assert_eq!(err(&two, 5), SizeOutOfRange { size: 5 });
        assert_eq!(err(&two, 65_539), SizeOutOfRange { size: 65_539 });
        let heavy = backends(&[1, 1001]);
        assert_eq!(err(&heavy, 101), WeightOutOfRange { weight: 1001 });
        let mut dup = backends(&[1, 1, 0]);
        dup[2].address = dup[0].address;
        let address = dup[0].address;
        assert_eq!(err(&dup, 101), DuplicateBackend { address });
        let too_many = TooManyBackends {
            backends: 10,
            size: 7,
        };
        assert_eq!(err(&backends(&[1; 10]), 7), too_many);
        assert!(too_many.to_string().contains("size / 2"), "{too_many}");
        // Drained backends do not count towards the limit.
        assert!(build_table(&backends(&[1, 1, 1, 0, 0, 0]), 7, 0).is_ok());
    }

    #[test]
    fn builds_1000_backends_at_max_size() {
        let list = backends(&[1; 1000]);
        let table = build_table(&list, MAX_TABLE_SIZE, 0).unwrap();
        assert_eq!(table.len(), MAX_TABLE_SIZE as usize);
        assert!(table.iter().all(|&i| (i as usize) < list.len()));
    }

    #[test]
    fn primes() {
        for p in [2, 3, 7, 65_537] {
            assert!(is_prime(p), "{p}");
        }
        for n in [0, 1, 4, 9, 65_535, 65_536] {
            assert!(!is_prime(n), "{n}");
        }
    }
}
