//! The reference balancer's contract (`xdpath-ebpf/src/reflb.rs`): its map
//! layouts and its flow hash. The reference is the benchmark's peer for
//! the balancer rows, a minimal XDP program doing the per-packet work of
//! Katran as its documentation and paper describe it (parse, a per-CPU
//! LRU lookup with an insert on a miss, a 5-tuple jhash and a Maglev ring
//! lookup on the miss, the backend from an array, IPIP encapsulation with
//! a fixed next-hop MAC, `XDP_TX`). It is written for this project, not
//! taken from Katran; IPv4 only (other frames pass).
//!
//! Addresses and ports are kept as the frame holds them (network order,
//! read as native-endian words), as the program never converts them.

/// Slots of each VIP's Maglev ring (`REFLB_RING` holds `MAX_VIPS` rings).
pub const RING_SIZE: u32 = 65_537;
/// VIPs the reference knows (`REFLB_VIPS`, rings).
pub const MAX_VIPS: u32 = 4;
/// Backends (`REFLB_REALS`).
pub const MAX_REALS: u32 = 4_096;
/// Connection-table entries when user space does not size it (the bench
/// sizes it like xdpath's established table).
pub const DEFAULT_LRU_SIZE: u32 = crate::lb::MAX_CONNECTIONS;
/// `REFLB_STATS` slots: one per VIP, then the LRU-miss counter.
pub const STAT_SLOTS: u32 = MAX_VIPS + 1;
/// The `REFLB_STATS` slot counting connection-table misses.
pub const STAT_LRU_MISSES: u32 = MAX_VIPS;
/// The largest IP packet the reference encapsulates (Katran's default).
pub const MAX_PACKET_SIZE: u16 = 1_514;
/// Outer TTL.
pub const OUTER_TTL: u8 = 64;

/// `REFLB_VIPS` key: the VIP as the frame holds it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipKey {
    /// Destination address, network order.
    pub address: u32,
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

/// `REFLB_LRU` key: the 5-tuple.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address, network order.
    pub source: u32,
    /// Destination address, network order.
    pub destination: u32,
    /// Source port then destination port, as the frame holds them.
    pub ports: u32,
    /// IP protocol.
    pub protocol: u8,
    /// Zero.
    pub pad: [u8; 3],
}

/// `REFLB_LRU` value: the backend picked for the flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RealPos {
    /// Index into `REFLB_REALS`.
    pub position: u32,
    /// Unused (Katran's UDP idle time).
    pub atime: u32,
}

/// `REFLB_REALS` value: a backend.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Real {
    /// Its IPv4 address, network order.
    pub address: u32,
    /// Unused.
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

/// `REFLB_STATS` value (per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// Packets.
    pub packets: u64,
    /// Bytes (of the IP packet).
    pub bytes: u64,
}

impl VipKey {
    /// The key as the map stores it.
    pub fn to_bytes(&self) -> [u8; 8] {
        let [a, b, c, d] = self.address.to_ne_bytes();
        let [e, f] = self.port.to_ne_bytes();
        [a, b, c, d, e, f, self.protocol, self.pad]
    }
}

impl VipMeta {
    /// The value as the map stores it.
    pub fn to_bytes(&self) -> [u8; 8] {
        let [a, b, c, d] = self.number.to_ne_bytes();
        let [e, f, g, h] = self.flags.to_ne_bytes();
        [a, b, c, d, e, f, g, h]
    }
}

impl Real {
    /// The value as the map stores it.
    pub fn to_bytes(&self) -> [u8; 8] {
        let [a, b, c, d] = self.address.to_ne_bytes();
        let [e, f, g, h] = self.flags.to_ne_bytes();
        [a, b, c, d, e, f, g, h]
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
            packets: u64::from_ne_bytes([p0, p1, p2, p3, p4, p5, p6, p7]),
            bytes: u64::from_ne_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
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

/// Bob Jenkins' lookup3 hash of three words (the kernel's `jhash_3words`,
/// which Katran uses).
#[inline(always)]
pub const fn jhash_3words(a: u32, b: u32, c: u32, initval: u32) -> u32 {
    let start = initval.wrapping_add(0xdead_beef).wrapping_add(3 << 2);
    final_mix(
        a.wrapping_add(start),
        b.wrapping_add(start),
        c.wrapping_add(start),
    )
}

/// The flow's hash: the 5-tuple, the protocol as the seed.
#[inline(always)]
pub const fn flow_hash(key: &FlowKey) -> u32 {
    jhash_3words(key.source, key.destination, key.ports, key.protocol as u32)
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

    /// Values of `jhash_3words` as include/linux/jhash.h defines it,
    /// computed with that C code (gcc, x86-64).
    #[test]
    fn jhash_3words_is_the_kernels() {
        assert_eq!(jhash_3words(0, 0, 0, 0), 0x1b68_e557);
        assert_eq!(jhash_3words(1, 2, 3, 4), 0x8103_143f);
        assert_eq!(
            jhash_3words(0x0a00_0001, 0xcb00_710a, 0x5000_0004, 6),
            0x5c0c_9d47
        );
    }

    #[test]
    fn map_bytes_have_the_layouts_size() {
        assert_eq!(VipKey::default().to_bytes().len(), size_of::<VipKey>());
        assert_eq!(VipMeta::default().to_bytes().len(), size_of::<VipMeta>());
        assert_eq!(Real::default().to_bytes().len(), size_of::<Real>());
        assert_eq!(Ctl::default().to_bytes().len(), size_of::<Ctl>());
        assert_eq!(size_of::<Stat>(), 16);
        let key = VipKey {
            address: u32::from_ne_bytes([203, 0, 113, 10]),
            port: 80u16.to_be(),
            protocol: 6,
            pad: 0,
        };
        assert_eq!(key.to_bytes(), [203, 0, 113, 10, 0, 80, 6, 0]);
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
