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
    /// [`seal_of`] the five words before it; never 0, so a cleared slot
    /// (all zero) is never read whole.
    pub seal: u64,
}

impl VipSlot {
    /// The VIP a slot in map memory holds for (`address`, `port`,
    /// `protocol`), if it holds that key and was read whole. The six words
    /// are read once, with volatile reads, and the VIP is built from the
    /// words the seal was checked on: through a reference the compiler
    /// read the entry's fields again after the check (the eBPF build loaded
    /// `ring`, `ring_size` and `gue_port` anew), where a write by the
    /// control plane could land in between.
    ///
    /// # Safety
    ///
    /// `slot` points at a `VipSlot`'s 48 readable bytes, aligned to 8 (a
    /// map value), which another CPU may be writing.
    #[inline(always)]
    pub unsafe fn read(
        slot: *const VipSlot,
        address: &[u8; 16],
        port: u16,
        protocol: u8,
    ) -> Option<Vip> {
        let at = slot.cast::<u64>();
        // SAFETY: the caller's promise: six aligned, readable words.
        let words: [u64; 6] = unsafe {
            [
                core::ptr::read_volatile(at),
                core::ptr::read_volatile(at.add(1)),
                core::ptr::read_volatile(at.add(2)),
                core::ptr::read_volatile(at.add(3)),
                core::ptr::read_volatile(at.add(4)),
                core::ptr::read_volatile(at.add(5)),
            ]
        };
        let [key_high, key_low, key_last, vip_first, vip_second, seal] = words;
        let wanted = VipKey::new(address, port, protocol);
        let wanted = key_words(&wanted);
        let named = key_high == wanted[0] && key_low == wanted[1] && key_last == wanted[2];
        if !named || seal != seal_of([key_high, key_low, key_last, vip_first, vip_second]) {
            return None;
        }
        let [i0, i1, i2, i3, r0, r1, r2, r3] = vip_first.to_ne_bytes();
        let [s0, s1, s2, s3, g0, g1, flags, encap] = vip_second.to_ne_bytes();
        Some(Vip {
            index: u32::from_ne_bytes([i0, i1, i2, i3]),
            ring: u32::from_ne_bytes([r0, r1, r2, r3]),
            ring_size: u32::from_ne_bytes([s0, s1, s2, s3]),
            gue_port: u16::from_ne_bytes([g0, g1]),
            flags,
            encap,
        })
    }

    /// The slot of `key`'s VIP `vip`, sealed.
    pub fn new(key: VipKey, vip: Vip) -> Self {
        let mut slot = Self { key, vip, seal: 0 };
        slot.seal = seal_of(slot.words());
        slot
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

/// A mix of five words, each round a bijection of the state, with its low
/// bit set (so never 0): a slot read while it is written (old and new
/// words mixed, or new and zero) matches its seal once in about 2⁶³.
#[inline(always)]
fn seal_of(words: [u64; 5]) -> u64 {
    let mut mixed: u64 = 0x9e37_79b9_7f4a_7c15;
    for word in words {
        mixed = (mixed ^ word).wrapping_mul(0xff51_afd7_ed55_8ccd);
        mixed ^= mixed >> 29;
    }
    mixed | 1
}

/// A VIP key's three words.
#[inline(always)]
fn key_words(key: &VipKey) -> [u64; 3] {
    let words = (key as *const VipKey).cast::<u64>();
    // SAFETY: a `VipKey` is 24 bytes aligned to 8 with no padding: three
    // aligned, readable words.
    unsafe { [*words, *words.add(1), *words.add(2)] }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::ipv4_mapped;

    const ADDRESS: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 10];

    fn vip() -> Vip {
        Vip {
            index: 3,
            ring: 6,
            ring_size: 65_537,
            gue_port: 6080,
            flags: 4,
            encap: 1,
        }
    }

    fn read(slot: &VipSlot, port: u16, protocol: u8) -> Option<Vip> {
        // SAFETY: a whole VipSlot of ours.
        unsafe { VipSlot::read(slot, &ADDRESS, port, protocol) }
    }

    /// `slot` with word `index` (0 to 5) set to `word`.
    fn with_word(slot: &VipSlot, index: usize, word: u64) -> VipSlot {
        let mut torn = *slot;
        // SAFETY: a VipSlot is six aligned words.
        unsafe { *(&mut torn as *mut VipSlot).cast::<u64>().add(index) = word };
        torn
    }

    fn word(slot: &VipSlot, index: usize) -> u64 {
        // SAFETY: as in `with_word`.
        unsafe { *(slot as *const VipSlot).cast::<u64>().add(index) }
    }

    #[test]
    fn a_whole_slot_gives_its_vip_for_its_key_only() {
        assert_eq!(ADDRESS, ipv4_mapped([203, 0, 113, 10]));
        let slot = VipSlot::new(VipKey::new(&ADDRESS, 443, 6), vip());
        assert_eq!(read(&slot, 443, 6), Some(vip()));
        assert_eq!(read(&slot, 444, 6), None, "another port");
        assert_eq!(read(&slot, 443, 17), None, "another protocol");
        // SAFETY: as in `read`.
        let other = unsafe { VipSlot::read(&slot, &ipv4_mapped([203, 0, 113, 11]), 443, 6) };
        assert_eq!(other, None, "another address");
        assert_eq!(read(&VipSlot::default(), 0, 0), None, "a cleared slot");
    }

    #[test]
    fn a_slot_read_while_it_is_written_is_refused() {
        let key = VipKey::new(&ADDRESS, 443, 6);
        let old = VipSlot::new(key, vip());
        let new = VipSlot::new(
            key,
            Vip {
                flags: 0,
                gue_port: 0,
                ..vip()
            },
        );
        let zero = VipSlot::default();
        // Every mix of two of (old, new, zero), word by word, that is
        // neither whole one: refused.
        for (from, to) in [(&old, &new), (&new, &old), (&zero, &new), (&new, &zero)] {
            for mask in 1u32..63 {
                let mut torn = *from;
                for index in 0..6 {
                    if mask & (1 << index) != 0 {
                        torn = with_word(&torn, index, word(to, index));
                    }
                }
                if torn == old || torn == new {
                    continue;
                }
                assert_eq!(read(&torn, 443, 6), None, "mask {mask:06b}");
            }
        }
        // A byte of the entry half written.
        let half = with_word(&old, 4, word(&old, 4) ^ 0xff << 48);
        assert_eq!(read(&half, 443, 6), None);
    }
}
