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
//! Two connection tables, so that a flood cannot evict established flows
//! (issue 14, item 14: two SYNs per random flow churned a single table and
//! moved idle flows whose backend had since been drained). A TCP flow's
//! bare SYN (SYN without ACK), and the first datagram of a flow that is not
//! TCP, record its backend in the new-flow table
//! ([`ConnectionTable::New`], slots of an array: see [`NewFlowSlot`]). Its
//! next frame that is not a bare SYN — for TCP the handshake's ACK, for UDP
//! its second datagram — copies the entry, backend unchanged, into the
//! established table ([`ConnectionTable::Established`]); bare SYNs never
//! write it. A TCP segment past its SYN that finds no entry is recorded as
//! established at once (see `pick_backend` why). A flow keeps the backend
//! its first packet got: its later packets look in the established table
//! first, then in the new-flow table. So a flood of one SYN or one
//! datagram per spoofed flow only overwrites new-flow slots; a flood of
//! ACKs of random flows still reaches the established table. A bare SYN
//! whose 5-tuple the established table holds opens a new
//! connection from a port its client used before: while the entry's
//! backend is in the ring the SYN keeps to it; once it is out
//! ([`BACKEND_OUT_OF_RING`]) the entry is dropped and the SYN placed by the
//! ring, so a drained backend gets no new connection that way. (So a bare
//! SYN can remove one established entry: that of a flow on a drained or
//! down backend whose exact 5-tuple it carries.) With direct server return
//! the balancer never sees the handshake complete, so a flood of two
//! frames per spoofed flow (a SYN then an ACK, two datagrams) still reaches
//! the established table; a flood of bare SYNs however shaped, or of one
//! datagram per flow, does not.
//!
//! ICMP "fragmentation needed" (IPv4) and "packet too big" (IPv6) from a
//! router about a VIP's reply are sent to the backend of the flow they quote
//! (the quoted header, turned round), so path-MTU discovery works through
//! the balancer.

mod encap;
mod new_flows;
mod stage;
mod tables;
mod vip_slot;

pub use encap::{
    encap_hash, flow_hash, outer_source, store_be16, store_be32, write_outer, OuterSpec,
};
pub use new_flows::{NewFlowPlace, NewFlowSlot, NEW_FLOW_ENTRIES, NEW_FLOW_SEED, NEW_FLOW_SLOTS};
pub use stage::{
    answer_too_big, decap_stage, lb_stage, AnswerBudget, LbVerdict, ANSWERS_PER_SECOND,
    MIN_DEVICE_MTU, QUOTE_MAX,
};
pub use tables::LbTables;
pub use vip_slot::VipSlot;

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

/// Which connection table (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionTable {
    /// Flows seen in a second frame, and TCP flows first seen past their
    /// SYN.
    Established,
    /// Flows seen only as bare SYNs, or in one datagram, so far.
    New,
}

/// `Vip::flags`: hash on the source address only (no ports).
pub const VIP_SOURCE_HASH: u8 = 1 << 0;
/// `Vip::flags`: do not use the connection table (pure Maglev).
pub const VIP_NO_CONNTRACK: u8 = 1 << 1;
/// `Vip::flags`: only sources in the VIP's allow list (the `VIP_ALLOW`
/// trie, keys [`AllowKey`]) reach it; the others are dropped
/// (`lb-not-allowed`). A VIP without the flag takes every source and costs
/// no lookup.
pub const VIP_ALLOW_LIST: u8 = 1 << 2;
/// `Vip::flags`: the VIP's frames are sampled at its own rate (slot
/// `Vip::index` of `VIP_SAMPLE_RATES`) instead of their interface's, so
/// one load balancer can be watched closer than the rest of the host's
/// traffic. A VIP without the flag costs no lookup.
pub const VIP_SAMPLED: u8 = 1 << 3;

/// Prefixes in the allow lists of all VIPs together (`VIP_ALLOW`).
pub const MAX_ALLOW_PREFIXES: u32 = 8192;

/// Bits of an [`AllowKey`] before the address: the VIP's slot, the family
/// and two reserved bytes, always matched whole.
pub const ALLOW_KEY_HEAD_BITS: u32 = 32;

/// The key of the allow lists' longest-prefix-match trie: the kernel's
/// `bpf_lpm_trie_key` (a bit count, then the data), the data being the
/// VIP's slot and address family (matched whole, so lists of different
/// VIPs and families never mix: `::/0` is any IPv6 source, not IPv4-mapped
/// ones too) and the source prefix. Aligned to 8 (24 bytes, no padding):
/// the eBPF build keeps it on the stack.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllowKey {
    /// Bits matched: [`ALLOW_KEY_HEAD_BITS`] plus the prefix's length in
    /// the 128-bit address (96 + n for an IPv4 /n).
    pub prefix_len: u32,
    /// The VIP's slot (`Vip::index`, below `MAX_VIPS`).
    pub vip: u8,
    /// 4 or 6.
    pub family: u8,
    /// Reserved, zero.
    pub reserved: [u8; 2],
    /// The prefix, masked (IPv4-mapped for IPv4).
    pub address: [u8; 16],
}

impl AllowKey {
    /// The key of `address/length` (`length` in the 128-bit form: 96 + n
    /// for IPv4) in the list of VIP slot `vip`; a lookup key with 128.
    #[inline(always)]
    pub fn new(vip: u32, family: u8, address: &[u8; 16], length: u8) -> Self {
        Self {
            prefix_len: ALLOW_KEY_HEAD_BITS + u32::from(length),
            vip: vip as u8,
            family,
            reserved: [0; 2],
            address: *address,
        }
    }
}

/// Counter slots per VIP in `VIP_DROPS`: one for each of
/// [`VIP_DROP_REASONS`], and room for more.
pub const VIP_DROP_SLOTS: u32 = 8;

/// The frames to a VIP that were not forwarded, counted per VIP by reason
/// (`VIP_DROPS`, slot `vip * VIP_DROP_SLOTS + position here`). All are
/// drops but `LbNoRoute`, which leaves the frame to the stack, and
/// `LbTooBig` when it is answered (ICMP, action tx).
pub const VIP_DROP_REASONS: [crate::stats::Reason; 6] = [
    crate::stats::Reason::LbNotAllowed,
    crate::stats::Reason::LbNoBackend,
    crate::stats::Reason::LbFragment,
    crate::stats::Reason::LbEncapFailed,
    crate::stats::Reason::LbNoRoute,
    crate::stats::Reason::LbTooBig,
];

/// The `VIP_DROPS` slot of a frame to VIP slot `vip` not forwarded for
/// `reason`; `None` for a reason not counted there (or a slot out of range).
#[inline(always)]
pub fn vip_drop_index(vip: u32, reason: crate::stats::Reason) -> Option<u32> {
    use crate::stats::Reason;
    let position = match reason {
        Reason::LbNotAllowed => 0,
        Reason::LbNoBackend => 1,
        Reason::LbFragment => 2,
        Reason::LbEncapFailed => 3,
        Reason::LbNoRoute => 4,
        Reason::LbTooBig => 5,
        _ => return None,
    };
    (vip < MAX_VIPS).then_some(vip * VIP_DROP_SLOTS + position)
}

/// `Vip::encap`: IP in IP (protocol 4 or 41, after the inner family).
pub const ENCAP_IPIP: u8 = 0;
/// `Vip::encap`: GUE variant 1 (UDP to `gue_port`, the inner IP packet
/// directly as payload).
pub const ENCAP_GUE: u8 = 1;

/// `LbConfig::flags`: at least one VIP.
pub const LB_ENABLED: u32 = 1 << 0;
/// `LbConfig::flags`: send to `next_hop_mac` instead of asking the FIB.
pub const LB_FIXED_NEXT_HOP: u32 = 1 << 1;
/// `LbConfig::flags`: every VIP is one of a port that keeps its flows by
/// their ports (not an all-ports, source-hashed or untracked VIP), so the
/// balancing stage may look a frame's flow up before its VIP and find the
/// VIP from the flow's backend ([`VipSlot`]). Off, a frame of such a VIP
/// would pay that look for nothing; and an older build's install, which
/// does not know `VIPS_BY_SLOT`, leaves it off (it writes the settings
/// whole), so the slots it does not keep are not read.
pub const LB_ESTABLISHED_BY_SLOT: u32 = 1 << 2;
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

impl VipKey {
    /// The key of `address`, `port` and `protocol`, its reserved bytes
    /// zero. Its last word (port, protocol, reserved) is written whole:
    /// from a struct literal the eBPF build zeroes the five reserved bytes
    /// with a call to `memset` (a byte loop) on every frame to a VIP.
    #[inline(always)]
    pub fn new(address: &[u8; 16], port: u16, protocol: u8) -> Self {
        let mut key = Self::default();
        set_address::<_, 0, 1>(&mut key, address);
        let [p0, p1] = port.to_ne_bytes();
        set_word::<_, 2>(&mut key, [p0, p1, protocol, 0, 0, 0, 0, 0]);
        key
    }
}

/// Overwrites 64-bit word `index` of a key with `bytes` in one store
/// (which also makes the field-by-field zeroing before it dead). The key
/// stays the one object on the stack: the eBPF stages' frames are nearly
/// full.
#[inline(always)]
fn set_word<K: Copy, const INDEX: usize>(key: &mut K, bytes: [u8; 8]) {
    set_word_value::<K, INDEX>(key, u64::from_ne_bytes(bytes));
}

/// [`set_word`] with the word as a value.
#[inline(always)]
fn set_word_value<K: Copy, const INDEX: usize>(key: &mut K, value: u64) {
    const {
        assert!(
            core::mem::align_of::<K>() >= 8 && (INDEX + 1) * 8 <= core::mem::size_of::<K>(),
            "a word inside an 8-aligned key"
        );
    }
    // SAFETY: the word lies inside `key` and is aligned (checked at compile
    // time just above); the keys are `repr(C)` structs of plain integers,
    // valid for any bytes.
    unsafe {
        core::ptr::write((key as *mut K).cast::<u64>().add(INDEX), value);
    }
}

/// Overwrites 64-bit words `HIGH` and `LOW` of a key with an address,
/// read as two words. `address: *address` in a struct literal made the
/// eBPF build copy the 16 bytes one by one (32 instructions an address:
/// the compiler does not know where the source is aligned).
#[inline(always)]
fn set_address<K: Copy, const HIGH: usize, const LOW: usize>(key: &mut K, address: &[u8; 16]) {
    let words = address.as_ptr().cast::<u64>();
    // SAFETY: 16 readable bytes; unaligned reads (one 64-bit load each
    // where the target allows it, as the eBPF build's does).
    let (high, low) = unsafe {
        (
            core::ptr::read_unaligned(words),
            core::ptr::read_unaligned(words.add(1)),
        )
    };
    set_word_value::<K, HIGH>(key, high);
    set_word_value::<K, LOW>(key, low);
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
    /// [`BACKEND_OUT_OF_RING`], or zero.
    pub flags: u8,
    /// The slot of the VIP the backend is one of, plus one, so that a
    /// connection-table hit finds its VIP in `VIPS_BY_SLOT` without the VIP
    /// table's hash lookup ([`VipSlot`]); 0: not known (written by an older
    /// build, which left the field reserved), and a hit looks the VIP up by
    /// its address.
    pub vip: u16,
}

/// [`Backend::flags`]: the backend is in no slot of its VIP's ring
/// (drained to weight 0, or taken out by its health check). Its
/// established flows stay; a bare SYN on one of their 5-tuples (the
/// client reusing a port) is a new connection and is placed afresh. A
/// SYN whose earlier flow's backend is still in the ring keeps to it, so
/// a spoofed SYN cannot move an established flow off a backend that
/// still takes new flows. (Written into the field an older program left
/// reserved: it ignores it.)
pub const BACKEND_OUT_OF_RING: u8 = 1;

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

impl ConnectionKey {
    /// The key of a flow, its reserved bytes zero; its last word written
    /// whole, for the reason given at [`VipKey::new`].
    #[inline(always)]
    pub fn new(
        source: &[u8; 16],
        destination: &[u8; 16],
        source_port: u16,
        destination_port: u16,
        protocol: u8,
    ) -> Self {
        let mut key = Self::default();
        set_address::<_, 0, 1>(&mut key, source);
        set_address::<_, 2, 3>(&mut key, destination);
        let [a, b] = source_port.to_ne_bytes();
        let [c, d] = destination_port.to_ne_bytes();
        set_word::<_, 4>(&mut key, [a, b, c, d, protocol, 0, 0, 0]);
        key
    }
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
    /// The largest outer IP packet the path to the backends carries
    /// (`lb config --mtu`); 0: no bound but the egress device's MTU,
    /// which always bounds. (Written into the field an older program left
    /// reserved: it ignores it.)
    pub mtu: u16,
    /// The next hop's MAC (with `LB_FIXED_NEXT_HOP`), as [`mac_value`].
    pub next_hop_mac: u64,
    /// Outer IPv4 source prefix (IPv4-mapped).
    pub source_v4: [u8; 16],
    /// Outer IPv6 source prefix.
    pub source_v6: [u8; 16],
    /// A 256-bit filter of the VIP addresses (bit [`vip_address_bit`] of
    /// each is set), so that traffic to no VIP skips the stage and its two
    /// VIP-table lookups. Filled in by the installer from the VIP list.
    pub vip_addresses: [u64; 4],
}

impl LbConfig {
    /// False when `destination` is surely no VIP's address.
    #[inline(always)]
    pub fn may_be_vip(&self, destination: &[u8; 16]) -> bool {
        let bit = vip_address_bit(destination);
        let word = self
            .vip_addresses
            .get((bit >> 6) as usize & 3)
            .copied()
            .unwrap_or(0);
        word >> (bit & 63) & 1 != 0
    }

    /// Sets the filter bit of every address.
    pub fn set_vip_addresses<'a>(&mut self, addresses: impl IntoIterator<Item = &'a [u8; 16]>) {
        self.vip_addresses = [0; 4];
        for address in addresses {
            let bit = vip_address_bit(address);
            if let Some(word) = self.vip_addresses.get_mut((bit >> 6) as usize) {
                *word |= 1 << (bit & 63);
            }
        }
    }
}

/// An address's bit (0 to 255) in [`LbConfig::vip_addresses`]: the top
/// byte of a multiplicative hash of its two halves (little-endian, so user
/// space and the eBPF build agree).
#[inline(always)]
pub fn vip_address_bit(address: &[u8; 16]) -> u32 {
    let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p] = *address;
    let low = u64::from_le_bytes([a, b, c, d, e, f, g, h]);
    let high = u64::from_le_bytes([i, j, k, l, m, n, o, p]);
    ((low ^ high.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u32
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

#[cfg(test)]
mod tests;
