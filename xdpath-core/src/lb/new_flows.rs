//! The new-flow table: where a bare SYN's backend waits for the flow's
//! next packet, kept as the slots of an array rather than an LRU hash.
//!
//! A slot is chosen by a hash of the connection key and holds one flow: a
//! later SYN whose key hashes to the same slot overwrites it. So a placed
//! flow can be forgotten before its ACK, and its ACK then finds no entry
//! and takes the Maglev ring's backend afresh: the same one unless the
//! ring changed in that round trip. A flood of SYNs overwrites slots, as
//! it churned the LRU table before, and still cannot reach the established
//! table.
//!
//! Why an array: an LRU insert was the dearest part of a SYN. Its common
//! free list is refilled under a lock, 128 entries at a time, so one SYN
//! in 128 pays for 128 (the mean of a miss sat 1.3× its median); with one
//! list per CPU each insert walks the lists instead. Writing one slot takes
//! neither. Measured with `xdpath bench` (kernel-reported, the
//! reference balancer in the same run): a SYN 587–617 → 331–353 ns,
//! against the reference's 445–526, 1.24–1.31 → 0.67–0.72 times it
//! (BENCHMARKS.md, "The new-flow table as slots of an array").
//!
//! CPUs share the array, so a slot may be written by two at once; its
//! `check` word (a hash of the key and the connection) tells a slot
//! mixed from two writes, which reads as empty: a torn slot can never
//! send a flow to another flow's backend.

use super::{Connection, ConnectionKey};
use crate::hash::mix64;

/// Slots of the new-flow table (`NEW_FLOW_TABLE`): 131,072 of 56 bytes, 7 MiB
/// (the LRU table it replaced held 65,536 entries of about 100 bytes). A
/// real flow needs its slot for one round trip; at 20,000 flows awaiting
/// their ACK at once, about one in seventeen finds its slot taken.
pub const NEW_FLOW_SLOTS: u32 = 1 << 17;

/// One slot of the new-flow table (one entry of `NEW_FLOW_TABLE`).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NewFlowSlot {
    /// The flow.
    pub key: ConnectionKey,
    /// Its backend.
    pub connection: Connection,
    /// A hash of the key and the connection, never zero; zero in a slot
    /// never written.
    pub check: u64,
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

/// The connection as one word.
#[inline(always)]
fn connection_word(connection: &Connection) -> u64 {
    u64::from(connection.backend) | u64::from(connection.generation) << 32
}

/// A hash of the key's words: each word folded in by a multiply, then
/// mixed. (Folding them by XOR alone, rotated, let an address and a port
/// that differ by the same bits cancel out: two such flows always shared a
/// slot.)
#[inline(always)]
fn key_hash(words: &[u64; 5]) -> u64 {
    const FOLD: u64 = 0x9e37_79b9_7f4a_7c15;
    let [a, b, c, d, e] = *words;
    let mut hash = a.wrapping_mul(FOLD);
    hash = (hash ^ b).wrapping_mul(FOLD);
    hash = (hash ^ c).wrapping_mul(FOLD);
    hash = (hash ^ d).wrapping_mul(FOLD);
    mix64(hash ^ e)
}

/// Where a flow's slot is, and the hash its check word starts from: worked
/// out once per frame for the lookup and the insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewFlowPlace {
    /// The slot's index in `NEW_FLOW_TABLE`, below [`NEW_FLOW_SLOTS`].
    pub slot: u32,
    hash: u64,
}

impl NewFlowPlace {
    /// The place of a flow.
    ///
    /// # Examples
    ///
    /// ```
    /// use xdpath_core::lb::{ConnectionKey, NewFlowPlace, NEW_FLOW_SLOTS};
    /// let key = ConnectionKey::new(&[1; 16], &[2; 16], 40000, 80, 6);
    /// assert!(NewFlowPlace::of(&key).slot < NEW_FLOW_SLOTS);
    /// ```
    #[inline(always)]
    pub fn of(key: &ConnectionKey) -> Self {
        let hash = key_hash(&key_words(key));
        Self {
            slot: (hash >> 32) as u32 & (NEW_FLOW_SLOTS - 1),
            hash,
        }
    }

    /// The check word of this flow's slot holding `connection`: never zero.
    #[inline(always)]
    pub fn check(&self, connection: &Connection) -> u64 {
        mix64(self.hash ^ connection_word(connection)) | 1
    }
}

impl NewFlowSlot {
    /// The slot recording `connection` for `key`, whose place is `place`.
    #[inline(always)]
    pub fn new(key: &ConnectionKey, place: &NewFlowPlace, connection: &Connection) -> Self {
        Self {
            key: *key,
            connection: *connection,
            check: place.check(connection),
        }
    }

    /// The connection this slot holds for `key` (whose place is `place`):
    /// `None` when it holds another flow, nothing, or a mix of two writes.
    /// Compared word by word (a derived comparison of the byte arrays is a
    /// `memcmp` call in the eBPF build).
    #[inline(always)]
    pub fn connection_for(&self, key: &ConnectionKey, place: &NewFlowPlace) -> Option<Connection> {
        let (mine, theirs) = (key_words(&self.key), key_words(key));
        let same = mine[0] == theirs[0]
            && mine[1] == theirs[1]
            && mine[2] == theirs[2]
            && mine[3] == theirs[3]
            && mine[4] == theirs[4];
        let connection = self.connection;
        (same && self.check == place.check(&connection)).then_some(connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> ConnectionKey {
        ConnectionKey::new(&[7; 16], &[9; 16], port, 443, 6)
    }

    fn place(port: u16) -> NewFlowPlace {
        NewFlowPlace::of(&key(port))
    }

    #[test]
    fn a_slot_holds_its_flow_only() {
        let connection = Connection {
            backend: 3,
            generation: 5,
        };
        let slot = NewFlowSlot::new(&key(1), &place(1), &connection);
        assert_eq!(slot.connection_for(&key(1), &place(1)), Some(connection));
        assert_eq!(slot.connection_for(&key(2), &place(2)), None);
        let empty = NewFlowSlot::default();
        assert_eq!(empty.connection_for(&key(1), &place(1)), None);
        let zero = ConnectionKey::default();
        assert_eq!(empty.connection_for(&zero, &NewFlowPlace::of(&zero)), None);
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
        let mut mixed = NewFlowSlot::new(&key(1), &place(1), &first);
        mixed.connection = second;
        assert_eq!(mixed.connection_for(&key(1), &place(1)), None);
        let mut mixed = NewFlowSlot::new(&key(1), &place(1), &first);
        mixed.key = key(2);
        assert_eq!(mixed.connection_for(&key(2), &place(2)), None);
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
            same += u32::from(NewFlowPlace::of(&first).slot == NewFlowPlace::of(&second).slot);
        }
        assert!(same <= 2, "{same} of 511 pairs share a slot");
    }

    #[test]
    fn flows_spread_over_the_slots() {
        let mut used = std::collections::HashSet::new();
        for port in 0..20_000u16 {
            let slot = NewFlowPlace::of(&key(port)).slot;
            assert!(slot < NEW_FLOW_SLOTS);
            used.insert(slot);
        }
        // 20,000 keys into 131,072 slots: about 18,600 distinct if the
        // hash spreads them as at random.
        assert!(used.len() > 18_000, "{} distinct slots", used.len());
    }
}
