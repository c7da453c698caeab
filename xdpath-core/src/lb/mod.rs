//! The layer-4 load balancer (Katran-style, on a stick) and the backend's
//! decapsulator.
//!
//! A frame to a VIP (address, protocol, port; or all ports) gets a backend
//! from the connection table, or, for a new flow, from the VIP's Maglev
//! table (built in user space); it is then encapsulated (IPIP or GUE, any
//! mix of IPv4 and IPv6) and sent back out (XDP_TX) or redirected, with the
//! next hop's MAC from the kernel's FIB or from the configuration.
//!
//! Fragment policy: a fragment carries no ports past the first, so a VIP
//! that hashes on ports cannot balance it; first fragments to such a VIP
//! are dropped (`lb-fragment`), and later ones, whose ports cannot be
//! known, match no port VIP and pass to the local stack. A VIP that hashes
//! on the source address only balances every fragment: they share the
//! source, and its connection table holds one entry per client (ports
//! zero), so all the fragments of a datagram follow one backend even after
//! the pool changes — but later fragments carry no port, so only an
//! all-ports VIP sees them.
//!
//! ICMP "fragmentation needed" (IPv4) and "packet too big" (IPv6) from a
//! router about a VIP's reply are sent to the backend of the flow they quote
//! (the quoted header, turned round), so path-MTU discovery works through
//! the balancer.

mod encap;
mod stage;

pub use encap::{flow_hash, outer_source, store_be16, store_be32, write_outer, OuterSpec};
pub use stage::{decap_stage, lb_stage, LbVerdict};

/// The most VIPs.
pub const MAX_VIPS: u32 = 32;
/// The most backends, over all VIPs.
pub const MAX_BACKENDS: u32 = 4096;
/// Slots reserved per Maglev table; a VIP's table size is a prime up to it.
pub const MAX_RING_SIZE: u32 = 65_537;
/// Rings in `MAGLEV_RINGS`: two per VIP (the live one and the one being
/// built), so a new table is swapped in by rewriting one VIP entry.
pub const MAX_RINGS: u32 = MAX_VIPS * 2;
/// A ring slot with no backend.
pub const NO_BACKEND: u32 = u32::MAX;
/// Connection-table entries (LRU, preallocated: about 100 bytes each).
pub const MAX_CONNECTIONS: u32 = 1 << 17;

/// `Vip::flags`: hash on the source address only (no ports).
pub const VIP_SOURCE_HASH: u8 = 1 << 0;
/// `Vip::flags`: do not use the connection table (pure Maglev).
pub const VIP_NO_CONNTRACK: u8 = 1 << 1;

/// `Vip::encap`: IP in IP (protocol 4 or 41, after the inner family).
pub const ENCAP_IPIP: u8 = 0;
/// `Vip::encap`: GUE variant 1 (UDP to `gue_port`, the inner IP packet
/// directly as payload).
pub const ENCAP_GUE: u8 = 1;

/// `LbConfig::flags`: at least one VIP.
pub const LB_ENABLED: u32 = 1 << 0;
/// `LbConfig::flags`: send to `next_hop_mac` instead of asking the FIB.
pub const LB_FIXED_NEXT_HOP: u32 = 1 << 1;
/// `DecapConfig::flags`: decapsulate on this interface.
pub const DECAP_ENABLED: u32 = 1 << 0;

/// The key of the VIP table.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipKey {
    /// The VIP's address (IPv4-mapped for IPv4).
    pub address: [u8; 16],
    /// Destination port, host order; 0 for every port.
    pub port: u16,
    /// IP protocol (6 or 17).
    pub protocol: u8,
    /// Reserved, zero.
    pub reserved: [u8; 5],
}

/// A VIP (value of the VIP table).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vip {
    /// The VIP's slot: its statistics index.
    pub index: u32,
    /// The live Maglev ring (0 to `MAX_RINGS - 1`).
    pub ring: u32,
    /// The ring's size (a prime, at most `MAX_RING_SIZE`).
    pub ring_size: u32,
    /// GUE destination port, host order.
    pub gue_port: u16,
    /// `VIP_*` bits.
    pub flags: u8,
    /// `ENCAP_IPIP` or `ENCAP_GUE`.
    pub encap: u8,
}

/// A backend (value of the backend array). Aligned to 8 for the eBPF
/// stack.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backend {
    /// Its address (IPv4-mapped for IPv4).
    pub address: [u8; 16],
    /// Bumped each time the slot is given to a new backend, so connections
    /// to a removed backend do not follow its slot to a successor.
    pub generation: u32,
    /// 4 or 6; 0 for an empty slot.
    pub family: u8,
    /// Reserved, zero.
    pub reserved: [u8; 3],
}

/// The key of the connection table: the flow's 5-tuple.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnectionKey {
    /// Client address.
    pub source: [u8; 16],
    /// VIP address.
    pub destination: [u8; 16],
    /// Client port, host order.
    pub source_port: u16,
    /// VIP port, host order.
    pub destination_port: u16,
    /// IP protocol.
    pub protocol: u8,
    /// Reserved, zero.
    pub reserved: [u8; 3],
}

/// A connection-table entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Connection {
    /// The backend's index.
    pub backend: u32,
    /// The backend's generation when the flow was placed.
    pub generation: u32,
}

/// The balancer's global settings (one entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LbConfig {
    /// `LB_*` bits.
    pub flags: u32,
    /// Prefix length of `source_v4` (the rest of the outer source address
    /// comes from the flow hash, so backends' RSS spreads flows).
    pub source_v4_len: u8,
    /// Prefix length of `source_v6`.
    pub source_v6_len: u8,
    /// Reserved, zero.
    pub reserved: u16,
    /// The next hop's MAC (with `LB_FIXED_NEXT_HOP`), as [`mac_value`].
    pub next_hop_mac: u64,
    /// Outer IPv4 source prefix (IPv4-mapped).
    pub source_v4: [u8; 16],
    /// Outer IPv6 source prefix.
    pub source_v6: [u8; 16],
}

/// The backend side's settings (one entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecapConfig {
    /// `DECAP_*` bits.
    pub flags: u32,
    /// The GUE port to decapsulate, host order; 0: none.
    pub gue_port: u16,
    /// Reserved, zero.
    pub reserved: u16,
}

/// Per-VIP and per-backend statistics (per CPU in the kernel).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LbCounter {
    /// Frames sent.
    pub packets: u64,
    /// Their bytes before encapsulation.
    pub bytes: u64,
    /// Flows placed by the Maglev table (connection-table misses).
    pub new_flows: u64,
}

/// Slots of the connection-table counters.
pub const CONN_HITS: u32 = 0;
/// Slots of the connection-table counters.
pub const CONN_MISSES: u32 = 1;

/// Where an encapsulated frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// Out of the receiving interface, with these MACs.
    Tx {
        /// Destination MAC, as [`mac_value`].
        destination: u64,
        /// Source MAC.
        source: u64,
    },
    /// Out of another interface.
    Redirect {
        /// Its index.
        ifindex: u32,
        /// Destination MAC, as [`mac_value`].
        destination: u64,
        /// Source MAC.
        source: u64,
    },
    /// No route or neighbour.
    Unreachable,
}

/// A MAC address as the low 48 bits of a number, first byte most
/// significant. Numbers, not byte arrays: a 6-byte array on the eBPF stack
/// gets unaligned wide accesses the verifier refuses.
#[inline(always)]
pub const fn mac_value(mac: [u8; 6]) -> u64 {
    let [a, b, c, d, e, f] = mac;
    u64::from_be_bytes([0, 0, a, b, c, d, e, f])
}

/// The state the balancer and the decapsulator read and the counters they
/// write.
pub trait LbTables {
    /// The balancer's settings.
    fn lb_config(&self) -> LbConfig;
    /// The VIP of `key`.
    fn vip(&self, key: &VipKey) -> Option<Vip>;
    /// Slot `slot` of ring `ring`: a backend index or `NO_BACKEND`.
    fn ring_slot(&self, ring: u32, slot: u32) -> u32;
    /// Backend `index`.
    fn backend(&self, index: u32) -> Option<Backend>;
    /// The connection-table entry of a flow.
    fn connection(&mut self, key: &ConnectionKey) -> Option<Connection>;
    /// Records a flow's backend.
    fn insert_connection(&mut self, key: &ConnectionKey, connection: &Connection);
    /// Counts a frame sent for VIP `vip` to backend `backend`.
    fn count_lb(&mut self, vip: u32, backend: u32, bytes: u64, new_flow: bool);
    /// Counts a connection-table hit (`CONN_HITS`) or miss (`CONN_MISSES`).
    fn count_connection(&mut self, slot: u32);
    /// The next hop towards `address` (IPv4-mapped for IPv4).
    fn next_hop(&mut self, address: &[u8; 16], ipv4: bool) -> NextHop;
    /// The decapsulator's settings.
    fn decap_config(&self) -> DecapConfig;
    /// Whether `address` is one of this host's (decapsulation targets).
    fn is_local_address(&self, address: &[u8; 16]) -> bool;
}
