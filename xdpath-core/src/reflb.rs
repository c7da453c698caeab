//! The reference balancer's contract (`xdpath-ebpf/src/reflb.rs`): its map
//! layouts and its flow hash. The reference is the benchmark's peer for
//! the balancer rows, a minimal XDP program doing the per-packet work of
//! Katran (parse, a per-CPU LRU lookup with an insert on a miss, a jhash
//! and a Maglev ring lookup on the miss, the backend from an array, IPIP
//! encapsulation with a fixed next-hop MAC, `XDP_TX`, and Katran's
//! counters on the way). It is written for this project, not taken from
//! Katran; its maps' keys and values have the sizes of Katran's
//! (`flow_key` 40 bytes, `vip_definition` 20), as the hash and compare of
//! a lookup cost by the key's size. IPv4 only (other frames pass).
//!
//! Addresses and ports are kept as the frame holds them (network order,
//! read as native-endian words), as the program never converts them.

/// Slots of each VIP's Maglev ring (`REFLB_RING` holds `MAX_VIPS` rings).
pub const RING_SIZE: u32 = 65_537;
/// VIPs the reference knows (`REFLB_VIPS`, rings).
pub const MAX_VIPS: u32 = 4;
/// Backends (`REFLB_REALS`, `REFLB_REAL_STATS`).
pub const MAX_REALS: u32 = 4_096;
/// Connection-table entries when user space does not size it (the bench
/// sizes it like xdpath's established table).
pub const DEFAULT_LRU_SIZE: u32 = crate::lb::MAX_CONNECTIONS;
/// `REFLB_STATS` slot: VIP packets (`v1`) and connection-table misses, the
/// frames the Maglev ring routed (`v2`) — Katran's `LRU_CNTRS`.
pub const STAT_LRU: u32 = MAX_VIPS;
/// `REFLB_STATS` slot: TCP misses, of SYNs (`v1`) and of other segments
/// (`v2`) — Katran's `LRU_MISS_CNTR`.
pub const STAT_LRU_MISS: u32 = MAX_VIPS + 1;
/// `REFLB_STATS` slot: new connections this second (`v1`) and when the
/// second began (`v2`, ns) — Katran's `NEW_CONN_RATE_CNTR`.
pub const STAT_CONN_RATE: u32 = MAX_VIPS + 2;
/// `REFLB_STATS` slots: one per VIP, then the three above.
pub const STAT_SLOTS: u32 = MAX_VIPS + 3;
/// New connections a CPU places in its table per second; past it, a
/// flood: the ring still routes, but nothing is inserted (Katran's
/// default `MAX_CONN_RATE`). The bench's rounds stay well below it (the
/// counter check after each pass would catch a skipped insert).
pub const MAX_CONN_RATE: u64 = 125_000;
/// A UDP flow's entry is stale after this long without a frame (ns;
/// Katran's `LRU_UDP_TIMEOUT`).
pub const UDP_TIMEOUT_NS: u64 = 30_000_000_000;
/// The flow hash's seed: the rings' total size, as Katran's
/// `INIT_JHASH_SEED`.
pub const HASH_SEED: u32 = MAX_VIPS * RING_SIZE;
/// The largest frame the reference encapsulates (Katran's default).
pub const MAX_PACKET_SIZE: u16 = 1_514;
/// Outer TTL.
pub const OUTER_TTL: u8 = 64;

/// `REFLB_VIPS` key, Katran's `vip_definition`: an address field wide
/// enough for IPv6 (IPv4 in its first word, the rest zero), the port and
/// the protocol: 20 bytes hashed a lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipKey {
    /// Destination address, network order, IPv4 in the first word.
    pub address: [u32; 4],
    /// Destination port, network order.
    pub port: u16,
    /// IP protocol.
    pub protocol: u8,
    /// Zero.
    pub pad: u8,
}

/// `REFLB_VIPS` value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipMeta {
    /// The VIP's number: its ring and its stats slot (below `MAX_VIPS`).
    pub number: u32,
    /// Unused (Katran's VIP flags).
    pub flags: u32,
}

/// `REFLB_LRU` key, Katran's `flow_key`: source and destination fields
/// wide enough for IPv6 (IPv4 in the first word, the rest zero), the
/// ports, the protocol: 40 bytes hashed and compared a lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address, network order, IPv4 in the first word.
    pub source: [u32; 4],
    /// Destination address, network order, IPv4 in the first word.
    pub destination: [u32; 4],
    /// Source port then destination port, as the frame holds them.
    pub ports: u32,
    /// IP protocol.
    pub protocol: u8,
    /// Zero.
    pub pad: [u8; 3],
}

/// `REFLB_LRU` value, Katran's `real_pos_lru`: the backend picked for the
/// flow and, for UDP, when it was last seen.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RealPos {
    /// Index into `REFLB_REALS`.
    pub position: u32,
    /// Zero.
    pub pad: u32,
    /// UDP: the last frame's time (ns); TCP: zero.
    pub atime: u64,
}

/// `REFLB_REALS` value, Katran's `real_definition`: a backend.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Real {
    /// Its address, network order, IPv4 in the first word.
    pub address: [u32; 4],
    /// Unused (Katran's `F_IPV6` and others).
    pub flags: u32,
}

/// `REFLB_CTL[0]`: the fixed next hop and the outer source prefix.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ctl {
    /// The next hop's MAC.
    pub mac: [u8; 6],
    /// Zero.
    pub pad: [u8; 2],
    /// The outer source: this /16 (network order, low 16 bits of the
    /// address zero), its host half from the source port and address.
    pub source_prefix: u32,
}

/// `REFLB_STATS` and `REFLB_REAL_STATS` value (per CPU), Katran's
/// `lb_stats`: two counters whose meaning is the slot's (for a VIP or a
/// backend: packets and bytes of the IP packet).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// The first counter (packets, for a VIP or a backend).
    pub v1: u64,
    /// The second counter (bytes, for a VIP or a backend).
    pub v2: u64,
}

/// The bytes of `words` in memory order.
fn word_bytes<const N: usize>(words: &[u32]) -> [u8; N] {
    let mut bytes = [0u8; N];
    for (chunk, word) in bytes.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    bytes
}

impl VipKey {
    /// The key of an IPv4 VIP.
    pub fn ipv4(address: u32, port: u16, protocol: u8) -> Self {
        Self {
            address: [address, 0, 0, 0],
            port,
            protocol,
            pad: 0,
        }
    }

    /// The key as the map stores it.
    pub fn to_bytes(&self) -> [u8; 20] {
        let [a, b, c, d] = self.address;
        let [p0, p1] = self.port.to_ne_bytes();
        let last = u32::from_ne_bytes([p0, p1, self.protocol, self.pad]);
        word_bytes(&[a, b, c, d, last])
    }
}

impl FlowKey {
    /// The key as the map stores it.
    pub fn to_bytes(&self) -> [u8; 40] {
        let [s0, s1, s2, s3] = self.source;
        let [d0, d1, d2, d3] = self.destination;
        let [q0, q1, q2] = self.pad;
        let last = u32::from_ne_bytes([self.protocol, q0, q1, q2]);
        word_bytes(&[s0, s1, s2, s3, d0, d1, d2, d3, self.ports, last])
    }
}

impl VipMeta {
    /// The value as the map stores it.
    pub fn to_bytes(&self) -> [u8; 8] {
        word_bytes(&[self.number, self.flags])
    }
}

impl Real {
    /// The backend at an IPv4 address.
    pub fn ipv4(address: u32) -> Self {
        Self {
            address: [address, 0, 0, 0],
            flags: 0,
        }
    }

    /// The value as the map stores it.
    pub fn to_bytes(&self) -> [u8; 20] {
        let [a, b, c, d] = self.address;
        word_bytes(&[a, b, c, d, self.flags])
    }
}

impl Ctl {
    /// The value as the map stores it.
    pub fn to_bytes(&self) -> [u8; 12] {
        let [m0, m1, m2, m3, m4, m5] = self.mac;
        let [a, b, c, d] = self.source_prefix.to_ne_bytes();
        [m0, m1, m2, m3, m4, m5, self.pad[0], self.pad[1], a, b, c, d]
    }
}

impl Stat {
    /// The value from the bytes the map holds.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        let [p0, p1, p2, p3, p4, p5, p6, p7, b0, b1, b2, b3, b4, b5, b6, b7] = bytes;
        Self {
            v1: u64::from_ne_bytes([p0, p1, p2, p3, p4, p5, p6, p7]),
            v2: u64::from_ne_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
        }
    }
}

#[inline(always)]
const fn final_mix(mut a: u32, mut b: u32, mut c: u32) -> u32 {
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c.wrapping_sub(b.rotate_left(24))
}

/// Bob Jenkins' lookup3 hash of two words (the kernel's `jhash_2words`).
#[inline(always)]
pub const fn jhash_2words(a: u32, b: u32, initval: u32) -> u32 {
    let start = initval.wrapping_add(0xdead_beef).wrapping_add(2 << 2);
    final_mix(a.wrapping_add(start), b.wrapping_add(start), start)
}

/// The flow's hash, as Katran's for IPv4: the source address and the
/// ports (not the destination: the VIP picks the ring), seeded with
/// [`HASH_SEED`].
#[inline(always)]
pub const fn flow_hash(key: &FlowKey) -> u32 {
    jhash_2words(key.source[0], key.ports, HASH_SEED)
}

/// The `REFLB_RING` slot of a VIP's ring for a flow hash.
#[inline(always)]
pub const fn ring_slot(vip: u32, hash: u32) -> u32 {
    vip.wrapping_mul(RING_SIZE).wrapping_add(hash % RING_SIZE)
}

/// The outer IPv4 source (network order): the prefix's /16, the host half
/// from the source address and port, so backends spread flows over
/// receive queues (Katran derives it alike).
#[inline(always)]
pub const fn outer_source(prefix: u32, source: u32, ports: u32) -> u32 {
    let host = (source ^ ports) & 0xffff_0000;
    (prefix & 0x0000_ffff) | host
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of `jhash_2words` as include/linux/jhash.h defines it,
    /// computed with that definition in C (gcc, x86-64).
    #[test]
    fn jhash_2words_is_the_kernels() {
        assert_eq!(jhash_2words(0, 0, 0), 0x58c1_84bf);
        assert_eq!(jhash_2words(1, 2, 3), 0x2527_81b5);
        assert_eq!(
            jhash_2words(0x0100_000a, 0x5000_0420, HASH_SEED),
            0xa577_cccf
        );
    }

    #[test]
    fn map_bytes_have_the_layouts_size() {
        assert_eq!(VipKey::default().to_bytes().len(), size_of::<VipKey>());
        assert_eq!(FlowKey::default().to_bytes().len(), size_of::<FlowKey>());
        assert_eq!(VipMeta::default().to_bytes().len(), size_of::<VipMeta>());
        assert_eq!(Real::default().to_bytes().len(), size_of::<Real>());
        assert_eq!(Ctl::default().to_bytes().len(), size_of::<Ctl>());
        assert_eq!(size_of::<Stat>(), 16);
        assert_eq!(size_of::<RealPos>(), 16, "Katran's real_pos_lru");
        assert_eq!(size_of::<FlowKey>(), 40, "Katran's flow_key");
        assert_eq!(size_of::<VipKey>(), 20, "Katran's vip_definition");
        let key = VipKey::ipv4(u32::from_ne_bytes([203, 0, 113, 10]), 80u16.to_be(), 6);
        let mut expected = [0u8; 20];
        expected[..4].copy_from_slice(&[203, 0, 113, 10]);
        expected[16..].copy_from_slice(&[0, 80, 6, 0]);
        assert_eq!(key.to_bytes(), expected);
    }

    #[test]
    fn ring_slots_stay_in_the_vips_ring() {
        for hash in [0, 1, RING_SIZE - 1, RING_SIZE, u32::MAX] {
            let slot = ring_slot(2, hash);
            assert!((2 * RING_SIZE..3 * RING_SIZE).contains(&slot));
        }
    }

    #[test]
    fn the_outer_source_keeps_the_prefix() {
        let prefix = u32::from_ne_bytes([172, 16, 0, 0]);
        let source = outer_source(prefix, u32::from_ne_bytes([10, 1, 2, 3]), 0x1234_5678);
        assert_eq!(source.to_ne_bytes()[..2], [172, 16]);
    }
}
