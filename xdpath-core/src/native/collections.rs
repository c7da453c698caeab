//! The native tables' collections: the operator's hash maps, the
//! longest-prefix map and the rule hit counts.

use std::collections::HashMap;
use std::vec::Vec;

use crate::filter::{address_family, prefix_family, PrefixKey};

/// A hash map for what only the operator writes (rules' prefixes, the
/// blocklist, VIPs, backends, counters by slot): a frame can look up in it
/// but not add to it, so its layout is not the sender's to choose, and a
/// fast keyed hash (foldhash, seeded at random per map) serves. With std's
/// SipHash, hashing was about a third of the user-space runtime's busy
/// time (`perf record` of `xdpath bench --userspace`: `hash_one` and
/// `DefaultHasher::write` under `longest_match` and `count_rule_hit`).
/// Tables a sender fills (connection tables, rate-limit buckets) keep
/// SipHash: their keys are the sender's, and an interactive attacker can
/// learn foldhash's seed (its own documentation says so).
pub type OperatorMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A set of what only the operator writes ([`OperatorMap`]).
pub type OperatorSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Longest-prefix match over 128-bit keys: one hash map per prefix length,
/// probed from the longest length present. Keys are the masked address as
/// a `u128`: one word to mask and hash (foldhash hashes it in two folded
/// multiplies, where a `[u8; 16]` went through its length and the bytes).
#[derive(Clone, Debug)]
pub struct PrefixMap<V> {
    /// (length, its prefixes), longest first: a lookup walks the lengths
    /// present in order, without hashing the length.
    by_length: Vec<(u32, OperatorMap<u128, V>)>,
}

impl<V> Default for PrefixMap<V> {
    fn default() -> Self {
        Self {
            by_length: Vec::new(),
        }
    }
}

/// `address` with the bits past `length` cleared, as one word.
#[inline(always)]
fn masked_word(address: &[u8; 16], length: u32) -> u128 {
    let word = u128::from_be_bytes(*address);
    match length {
        0 => 0,
        1..=127 => word & !(u128::MAX >> length),
        _ => word,
    }
}

impl<V: Copy> PrefixMap<V> {
    /// Inserts or replaces `key`.
    pub fn insert(&mut self, key: PrefixKey, value: V) {
        let length = key.prefix_len.min(128);
        // Longest first: the position of `length` in a descending list.
        let position = match self
            .by_length
            .binary_search_by(|(present, _)| length.cmp(present))
        {
            Ok(position) => position,
            Err(position) => {
                self.by_length
                    .insert(position, (length, OperatorMap::default()));
                position
            }
        };
        if let Some((_, map)) = self.by_length.get_mut(position) {
            map.insert(masked_word(&key.address, length), value);
        }
    }

    /// Removes `key`; true if it was there.
    pub fn remove(&mut self, key: PrefixKey) -> bool {
        let length = key.prefix_len.min(128);
        let Some(position) = self
            .by_length
            .iter()
            .position(|(present, _)| *present == length)
        else {
            return false;
        };
        let Some((_, map)) = self.by_length.get_mut(position) else {
            return false;
        };
        let removed = map.remove(&masked_word(&key.address, length)).is_some();
        if map.is_empty() {
            self.by_length.remove(position);
        }
        removed
    }

    /// The value of the longest prefix holding `address`.
    pub fn longest_match(&self, address: &[u8; 16]) -> Option<V> {
        self.by_length
            .iter()
            .find_map(|(length, map)| map.get(&masked_word(address, *length)).copied())
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.by_length.iter().map(|(_, map)| map.len()).sum()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.by_length.is_empty()
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.by_length.clear();
    }
}

/// A [`PrefixMap`] per address family: a prefix matches only addresses
/// of its own family, as in the kernel's per-family tables (`::/0` is
/// "any IPv6 address", not "anything").
#[derive(Clone, Debug)]
pub struct FamilyPrefixMap<V>([PrefixMap<V>; 2]);

impl<V> Default for FamilyPrefixMap<V> {
    fn default() -> Self {
        Self([PrefixMap::default(), PrefixMap::default()])
    }
}

impl<V: Copy> FamilyPrefixMap<V> {
    /// Inserts or replaces `key` in its family's map.
    pub fn insert(&mut self, key: PrefixKey, value: V) {
        let family = prefix_family(&key.address, key.prefix_len.min(128) as u8);
        if let Some(map) = self.0.get_mut(usize::from(family)) {
            map.insert(key, value);
        }
    }

    /// The value of the longest prefix of `address`'s family holding it.
    pub fn longest_match(&self, address: &[u8; 16]) -> Option<V> {
        self.0
            .get(usize::from(address_family(address)))?
            .longest_match(address)
    }
}

/// Hits per rule id in a vector indexed by the id, as the kernel's
/// `RULE_HITS` array is: no hash for each frame a rule matches (a map's
/// `entry` was 4 % of the user-space runtime's samples). An id at or past
/// `MAX_RULES` is not counted, as in the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleHits(Vec<u64>);

impl RuleHits {
    /// The hits of rule `id`.
    pub fn get(&self, id: u32) -> u64 {
        self.0.get(id as usize).copied().unwrap_or(0)
    }

    /// Counts a hit of rule `id`.
    pub fn add(&mut self, id: u32) {
        let index = id as usize;
        if index >= self.0.len() {
            if id >= crate::filter::MAX_RULES {
                return;
            }
            self.0.resize(index + 1, 0);
        }
        if let Some(hits) = self.0.get_mut(index) {
            *hits += 1;
        }
    }

    /// Forgets rule `id`'s hits.
    pub fn remove(&mut self, id: u32) {
        if let Some(hits) = self.0.get_mut(id as usize) {
            *hits = 0;
        }
    }

    /// (id, hits) of every rule hit at least once, by id.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, hits)| **hits != 0)
            .map(|(id, hits)| (id as u32, *hits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::mask;

    #[test]
    fn prefix_map_longest_match() {
        let mut map = PrefixMap::default();
        let address = crate::parse::ipv4_mapped([10, 1, 2, 3]);
        map.insert(
            PrefixKey {
                prefix_len: 96 + 8,
                address,
            },
            8u32,
        );
        map.insert(
            PrefixKey {
                prefix_len: 96 + 24,
                address,
            },
            24u32,
        );
        assert_eq!(map.longest_match(&address), Some(24));
        assert_eq!(
            map.longest_match(&crate::parse::ipv4_mapped([10, 9, 9, 9])),
            Some(8)
        );
        assert_eq!(
            map.longest_match(&crate::parse::ipv4_mapped([11, 0, 0, 0])),
            None
        );
        assert!(map.remove(PrefixKey {
            prefix_len: 120,
            address
        }));
        assert_eq!(map.longest_match(&address), Some(8));
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn prefix_map_keeps_lengths_longest_first_whatever_the_insert_order() {
        let mut map = PrefixMap::default();
        let address = crate::parse::ipv4_mapped([10, 1, 2, 3]);
        for bits in [16u32, 0, 32, 8, 24, 16] {
            map.insert(
                PrefixKey {
                    prefix_len: 96 + bits,
                    address,
                },
                bits,
            );
        }
        assert_eq!(map.len(), 5, "the second /16 replaced the first");
        for expected in [32u32, 24, 16, 8, 0] {
            assert_eq!(map.longest_match(&address), Some(expected));
            assert!(map.remove(PrefixKey {
                prefix_len: 96 + expected,
                address,
            }));
        }
        assert!(map.is_empty());
        assert_eq!(map.longest_match(&address), None);
        assert!(!map.remove(PrefixKey {
            prefix_len: 96,
            address
        }));
    }

    #[test]
    fn masked_word_is_mask_as_one_word() {
        let addresses = [
            [0xffu8; 16],
            [0x5a; 16],
            core::array::from_fn(|i| i as u8 * 17),
        ];
        for address in addresses {
            for length in 0..=128u32 {
                assert_eq!(
                    masked_word(&address, length),
                    u128::from_be_bytes(mask(&address, length as u8)),
                    "{address:?}/{length}"
                );
            }
        }
    }

    #[test]
    fn rule_hits_count_by_id_and_skip_ids_the_kernel_has_no_slot_for() {
        let mut hits = RuleHits::default();
        hits.add(3);
        hits.add(3);
        hits.add(1);
        hits.add(crate::filter::MAX_RULES);
        assert_eq!(hits.get(3), 2);
        assert_eq!(hits.get(2), 0);
        assert_eq!(hits.get(crate::filter::MAX_RULES), 0);
        assert_eq!(hits.iter().collect::<Vec<_>>(), [(1, 1), (3, 2)]);
        hits.remove(3);
        assert_eq!(hits.iter().collect::<Vec<_>>(), [(1, 1)]);
    }
}
