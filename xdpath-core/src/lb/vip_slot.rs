//! VIPs by slot ([`VipSlot`]): how a connection-table hit finds its VIP
//! without the VIP table's hash lookup.

use super::{Vip, VipKey};

/// A VIP by its slot (value of `VIPS_BY_SLOT`): its key and its entry, as
/// the VIP table holds them, sealed; all zero for a slot no VIP holds, or
/// one being changed.
///
/// Why: a frame of an established flow made two hash lookups, the VIP
/// table's then the connection table's, and the two were 37 % of the
/// entry and balancing programs' time on one hot flow
/// (`scripts/lb-hot-flow-profile.sh`, BENCHMARKS.md). Looked up first, the
/// connection's backend names its VIP's slot ([`super::Backend::vip`]), and
/// an array read with a key comparison replaces the VIP table's lookup
/// (only while [`super::LB_ESTABLISHED_BY_SLOT`] says every VIP allows it).
/// The entry is written after the VIP table's and zeroed before it
/// changes, so the fast path never finds settings the VIP table no longer
/// holds; and as an array's value is written in place while other CPUs
/// read it, the [`seal`](VipSlot::seal) tells a whole entry from one read
/// half written.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipSlot {
    /// The VIP's key in the VIP table.
    pub key: VipKey,
    /// Its entry there.
    pub vip: Vip,
    /// [`VipSlot::seal_of`] the five words before it; never 0, so a
    /// cleared slot (all zero) is never whole.
    pub seal: u64,
}

impl VipSlot {
    /// The slot of `key`'s VIP `vip`, sealed.
    pub fn new(key: VipKey, vip: Vip) -> Self {
        let mut slot = Self { key, vip, seal: 0 };
        slot.seal = slot.seal_of();
        slot
    }

    /// A mix of the key's and the entry's five words in which any change
    /// of one word changes the result, with its low bit set.
    #[inline(always)]
    pub fn seal_of(&self) -> u64 {
        let words = self.words();
        let mut mixed: u64 = 0x9e37_79b9_7f4a_7c15;
        for word in words {
            mixed = (mixed ^ word).wrapping_mul(0xff51_afd7_ed55_8ccd);
            mixed ^= mixed >> 29;
        }
        mixed | 1
    }

    /// Whether the entry was read whole: its seal is its words'.
    #[inline(always)]
    pub fn whole(&self) -> bool {
        self.seal == self.seal_of()
    }

    /// The key's three words and the entry's two.
    #[inline(always)]
    fn words(&self) -> [u64; 5] {
        const _: () = assert!(size_of::<VipSlot>() == 48 && align_of::<VipSlot>() == 8);
        let words = (self as *const VipSlot).cast::<u64>();
        // SAFETY: a `VipSlot` is 48 bytes aligned to 8 with no padding
        // (`VipKey` 24, `Vip` 16, the seal 8; their reserved bytes spelled
        // out): its first five words are readable and aligned.
        unsafe {
            [
                *words,
                *words.add(1),
                *words.add(2),
                *words.add(3),
                *words.add(4),
            ]
        }
    }
}

impl VipKey {
    /// Whether this is the key of (`address`, `port`, `protocol`), compared
    /// as its three 64-bit words without building that key (derived
    /// equality compared byte arrays, which the eBPF build may turn into a
    /// call of `bcmp`; a key built on the stack cost three stores and as
    /// many loads).
    #[inline(always)]
    pub fn names(&self, address: &[u8; 16], port: u16, protocol: u8) -> bool {
        const _: () = assert!(size_of::<VipKey>() == 24 && align_of::<VipKey>() == 8);
        let ours = (self as *const VipKey).cast::<u64>();
        let theirs = address.as_ptr().cast::<u64>();
        let [p0, p1] = port.to_ne_bytes();
        let last = u64::from_ne_bytes([p0, p1, protocol, 0, 0, 0, 0, 0]);
        // SAFETY: a `VipKey` is 24 bytes aligned to 8 with no padding (its
        // reserved bytes spelled out): three aligned words; `address` is
        // 16 readable bytes, read unaligned.
        unsafe {
            *ours == core::ptr::read_unaligned(theirs)
                && *ours.add(1) == core::ptr::read_unaligned(theirs.add(1))
                && *ours.add(2) == last
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::ipv4_mapped;

    #[test]
    fn a_key_names_what_new_builds() {
        let address = ipv4_mapped([203, 0, 113, 10]);
        let key = VipKey::new(&address, 443, 6);
        assert!(key.names(&address, 443, 6));
        assert!(!key.names(&address, 444, 6), "another port");
        assert!(!key.names(&address, 443, 17), "another protocol");
        assert!(!key.names(&ipv4_mapped([203, 0, 113, 11]), 443, 6));
        let mut dirty = key;
        dirty.reserved[4] = 1;
        assert!(!dirty.names(&address, 443, 6), "reserved bytes compared");
        assert!(VipKey::new(&address, 0, 17).names(&address, 0, 17));
    }

    #[test]
    fn only_a_whole_slot_is_whole() {
        let key = VipKey::new(&ipv4_mapped([203, 0, 113, 10]), 80, 6);
        let vip = Vip {
            index: 3,
            ring: 6,
            ring_size: 65_537,
            gue_port: 6080,
            flags: 4,
            encap: 1,
        };
        let slot = VipSlot::new(key, vip);
        assert!(slot.whole());
        assert!(!VipSlot::default().whole(), "a cleared slot");
        // Any word of another entry, as a read during a write could mix.
        let other = VipSlot::new(key, Vip { flags: 0, ..vip });
        for word in 0..5 {
            let mut torn = slot;
            // SAFETY: as in `words`: five aligned words of a VipSlot.
            unsafe {
                let into = (&mut torn as *mut VipSlot).cast::<u64>();
                let from = (&other as *const VipSlot).cast::<u64>();
                *into.add(word) = *from.add(word);
            }
            assert!(
                !torn.whole() || torn == other || torn == slot,
                "word {word}"
            );
        }
        let mut half = slot;
        half.vip = Vip::default();
        assert!(!half.whole(), "the key written, the entry not yet");
    }
}
