//! The new-flow table: where a flow's backend waits for the flow's next
//! packet (a bare SYN's for its ACK, a first datagram's for the second),
//! kept as the slots of an array rather than an LRU hash.
//!
//! A slot is chosen by a hash of the connection key and holds one flow: a
//! later flow whose key hashes to the same slot overwrites it. So a placed
//! flow can be forgotten before its next packet, which then finds no entry
//! and takes the Maglev ring's backend afresh: the same one unless the
//! ring changed in that round trip. A flood of SYNs, or of one datagram
//! per flow, overwrites slots, as it churned the LRU table before, and
//! still cannot reach the established table.
//!
//! A slot is 16 bytes: the backend, and a tag in place of the 40-byte key
//! (a 64-bit hash of the key, mixed with the backend). The slot's index
//! comes from a second hash of the key, independent of the tag's, so two
//! flows that share a slot also share a tag once in 2⁶⁴ (then the later
//! flow's ACK would take the earlier's backend). Both hashes are keyed by
//! the table's seed, a random word the control plane writes into the
//! entry after the last slot ([`NEW_FLOW_SEED`]) when it installs the
//! balancer: a sender who cannot learn the seed cannot choose a flow that
//! shares another's slot and tag. Until a seed is written (zero) the table
//! is not used: a SYN records nothing, and its ACK is placed by the Maglev
//! ring.
//!
//! Why an array: an LRU insert was the dearest part of a SYN. Its common
//! free list is refilled under a lock, 128 entries at a time, so one SYN
//! in 128 pays for 128 (the mean of a miss sat 1.3× its median); with one
//! list per CPU each insert walks the lists instead. Writing one slot takes
//! neither: a SYN 587–617 → 350–362 ns, 1.24–1.31 → 0.72–0.77 × the
//! reference balancer in the same runs. Why 16 bytes: with the key in the
//! slot (56 bytes, one slot to a cache line) a SYN read 418–434 ns
//! (BENCHMARKS.md, "The new-flow table as slots of an array").
//!
//! CPUs share the array, so a slot may be written by two at once. The tag
//! covers the backend too, is cleared first and written last: a slot mixed
//! from two writes matches neither flow (but once in 2⁶⁴), and reads as
//! empty.

use super::{Connection, ConnectionKey};
use crate::hash::mix64;

/// Slots of the new-flow table (`NEW_FLOW_TABLE`): 131,072 of 16 bytes, 2
/// MiB (the LRU table it replaced held 65,536 entries of about 100 bytes).
/// A real flow needs its slot for one round trip; at 20,000 flows awaiting
/// their ACK at once, about one in fourteen finds its slot taken.
pub const NEW_FLOW_SLOTS: u32 = 1 << 17;
/// The entry of `NEW_FLOW_TABLE` after the slots that holds the table's
/// seed in its tag word (zero: no seed yet, the table unused).
pub const NEW_FLOW_SEED: u32 = NEW_FLOW_SLOTS;
/// Entries of `NEW_FLOW_TABLE`: the slots and the seed.
pub const NEW_FLOW_ENTRIES: u32 = NEW_FLOW_SLOTS + 1;

/// One slot of the new-flow table (one entry of `NEW_FLOW_TABLE`).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NewFlowSlot {
    /// The flow's tag ([`NewFlowPlace::tag`]), never zero; zero in a slot
    /// never written.
    pub tag: u64,
    /// Its backend.
    pub connection: Connection,
}

impl Connection {
    /// The connection as one word, the backend in the low half: as a
    /// new-flow slot's tag covers it, and as the eBPF lookup of that table
    /// hands it back (one register, no room on the stage's stack).
    #[inline(always)]
    pub const fn to_word(&self) -> u64 {
        self.backend as u64 | (self.generation as u64) << 32
    }

    /// The connection of [`Connection::to_word`]'s word.
    #[inline(always)]
    pub const fn from_word(word: u64) -> Self {
        Self {
            backend: word as u32,
            generation: (word >> 32) as u32,
        }
    }
}

/// The key's five 64-bit words (`ConnectionKey` is 40 bytes, aligned to 8).
#[inline(always)]
fn key_words(key: &ConnectionKey) -> [u64; 5] {
    let words = (key as *const ConnectionKey).cast::<u64>();
    // SAFETY: five aligned words inside the key.
    unsafe {
        [
            core::ptr::read(words),
            core::ptr::read(words.add(1)),
            core::ptr::read(words.add(2)),
            core::ptr::read(words.add(3)),
            core::ptr::read(words.add(4)),
        ]
    }
}

/// A hash of the key's words keyed by `seed`, each word folded in by a
/// multiply by `fold` (an odd constant), then mixed. (Folding them by XOR
/// alone, rotated, let an address and a port that differ by the same bits
/// cancel out: two such flows always shared a slot.)
#[inline(always)]
fn key_hash(words: &[u64; 5], seed: u64, fold: u64) -> u64 {
    let [a, b, c, d, e] = *words;
    let mut hash = (seed ^ a).wrapping_mul(fold);
    hash = (hash ^ b).wrapping_mul(fold);
    hash = (hash ^ c).wrapping_mul(fold);
    hash = (hash ^ d).wrapping_mul(fold);
    mix64(hash ^ e)
}

/// The fold of the tag's hash.
const TAG_FOLD: u64 = 0x9e37_79b9_7f4a_7c15;
/// The fold of the slot's hash: another odd constant, so the two hashes
/// are independent.
const SLOT_FOLD: u64 = 0xc2b2_ae3d_27d4_eb4f;

/// Where a flow's slot is, and the hash its tag starts from: worked out
/// once per frame for the lookup and the insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewFlowPlace {
    /// The slot's index in `NEW_FLOW_TABLE`, below [`NEW_FLOW_SLOTS`].
    pub slot: u32,
    hash: u64,
}

impl NewFlowPlace {
    /// The place of a flow in a table seeded with `seed`.
    ///
    /// # Examples
    ///
    /// ```
    /// use xdpath_core::lb::{ConnectionKey, NewFlowPlace, NEW_FLOW_SLOTS};
    /// let key = ConnectionKey::new(&[1; 16], &[2; 16], 40000, 80, 6);
    /// assert!(NewFlowPlace::of(&key, 0x5eed).slot < NEW_FLOW_SLOTS);
    /// ```
    #[inline(always)]
    pub fn of(key: &ConnectionKey, seed: u64) -> Self {
        let words = key_words(key);
        Self {
            slot: (key_hash(&words, seed, SLOT_FOLD) >> 32) as u32 & (NEW_FLOW_SLOTS - 1),
            hash: key_hash(&words, mix64(seed), TAG_FOLD),
        }
    }

    /// The tag of this flow's slot holding `connection`: never zero.
    #[inline(always)]
    pub fn tag(&self, connection: &Connection) -> u64 {
        (self.hash ^ mix64(connection.to_word())) | 1
    }
}

impl NewFlowSlot {
    /// The slot recording `connection` for the flow placed at `place`.
    #[inline(always)]
    pub fn new(place: &NewFlowPlace, connection: &Connection) -> Self {
        Self {
            tag: place.tag(connection),
            connection: *connection,
        }
    }

    /// The connection this slot holds for the flow placed at `place`:
    /// `None` when it holds another flow, nothing, or a mix of two writes.
    #[inline(always)]
    pub fn connection_for(&self, place: &NewFlowPlace) -> Option<Connection> {
        let connection = self.connection;
        (self.tag == place.tag(&connection)).then_some(connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: u64 = 0x0123_4567_89ab_cdef;

    fn key(port: u16) -> ConnectionKey {
        ConnectionKey::new(&[7; 16], &[9; 16], port, 443, 6)
    }

    fn place(port: u16) -> NewFlowPlace {
        NewFlowPlace::of(&key(port), SEED)
    }

    #[test]
    fn a_slot_holds_its_flow_only() {
        let connection = Connection {
            backend: 3,
            generation: 5,
        };
        let slot = NewFlowSlot::new(&place(1), &connection);
        assert_eq!(slot.connection_for(&place(1)), Some(connection));
        assert_eq!(slot.connection_for(&place(2)), None);
        let empty = NewFlowSlot::default();
        assert_eq!(empty.connection_for(&place(1)), None);
        let zero = ConnectionKey::default();
        assert_eq!(empty.connection_for(&NewFlowPlace::of(&zero, SEED)), None);
    }

    #[test]
    fn a_slot_mixed_from_two_writes_holds_nothing() {
        let (first, second) = (
            Connection {
                backend: 1,
                generation: 1,
            },
            Connection {
                backend: 2,
                generation: 1,
            },
        );
        // Flow 1's tag with flow 2's backend, and the other way round.
        let mut mixed = NewFlowSlot::new(&place(1), &first);
        mixed.connection = second;
        assert_eq!(mixed.connection_for(&place(1)), None);
        let mixed = NewFlowSlot {
            tag: NewFlowSlot::new(&place(1), &first).tag,
            connection: NewFlowSlot::new(&place(2), &second).connection,
        };
        assert_eq!(mixed.connection_for(&place(2)), None);
        assert_eq!(mixed.connection_for(&place(1)), None);
    }

    #[test]
    fn an_address_and_a_port_that_differ_alike_do_not_cancel() {
        // The address's second and third bytes against the source port's
        // low and high bytes: the pattern an XOR of rotated words
        // cancelled (every such pair shared a slot).
        let client = |address: u32, port: u16| {
            let source = crate::parse::ipv4_mapped(address.to_be_bytes());
            ConnectionKey::new(&source, &[9; 16], port, 443, 6)
        };
        let mut same = 0;
        for delta in 1..512u32 {
            let spread = (delta & 0xff) << 16 | (delta >> 8) << 8;
            let first = client(0x0a00_0000, 1000);
            let second = client(0x0a00_0000 ^ spread, 1000 ^ delta as u16);
            same += u32::from(
                NewFlowPlace::of(&first, SEED).slot == NewFlowPlace::of(&second, SEED).slot,
            );
        }
        assert!(same <= 2, "{same} of 511 pairs share a slot");
    }

    #[test]
    fn the_slot_and_the_tag_hash_the_key_apart() {
        // Were the slot taken from the tag's hash, flows sharing a slot
        // would share those 17 bits of their tags too, and a tag would
        // tell them apart by 47 bits, not 64.
        let mut by_slot = std::collections::HashMap::new();
        let connection = Connection::default();
        let (mut shared, mut alike) = (0, 0);
        for port in 0..60_000u16 {
            let place = place(port);
            let tag = place.tag(&connection);
            if let Some(other) = by_slot.insert(place.slot, tag) {
                shared += 1;
                alike += u32::from((tag ^ other) >> 32 & u64::from(NEW_FLOW_SLOTS - 1) == 0);
            }
        }
        assert!(shared > 1_000, "{shared} flows shared a slot");
        assert!(
            alike <= 1,
            "{alike} of {shared} pairs alike in the slot's bits"
        );
    }

    #[test]
    fn another_seed_places_flows_elsewhere() {
        let moved = (0..1_000u16)
            .filter(|port| {
                NewFlowPlace::of(&key(*port), SEED).slot != NewFlowPlace::of(&key(*port), 7).slot
            })
            .count();
        assert!(moved > 990, "{moved} of 1,000 flows moved");
    }

    #[test]
    fn flows_spread_over_the_slots() {
        let mut used = std::collections::HashSet::new();
        for port in 0..20_000u16 {
            let slot = NewFlowPlace::of(&key(port), SEED).slot;
            assert!(slot < NEW_FLOW_SLOTS);
            used.insert(slot);
        }
        // 20,000 keys into 131,072 slots: about 18,600 distinct if the
        // hash spreads them as at random.
        assert!(used.len() > 18_000, "{} distinct slots", used.len());
    }
}
