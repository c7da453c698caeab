//! VIPs by slot ([`VipSlot`]): how a connection-table hit finds its VIP
//! without the VIP table's hash lookup.

use super::{Vip, VipKey};

/// A VIP by its slot (value of `VIPS_BY_SLOT`): its key and its entry, as
/// the VIP table holds them; all zero for a slot no VIP holds, or one
/// being changed.
///
/// Why: a frame of an established flow made two hash lookups, the VIP
/// table's then the connection table's, and the two were 37 % of the
/// entry and balancing programs' time on one hot flow
/// (`scripts/lb-hot-flow-profile.sh`, BENCHMARKS.md). Looked up first, the
/// connection's backend names its VIP's slot ([`Backend::vip`]), and an
/// array read with a key comparison replaces the VIP table's lookup. The
/// entry is written after the VIP table's and zeroed before it changes, so
/// the fast path never finds settings the VIP table no longer holds.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipSlot {
    /// The VIP's key in the VIP table.
    pub key: VipKey,
    /// Its entry there.
    pub vip: Vip,
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
