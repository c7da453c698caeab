//! [`LbTables`]: what the balancing stage reads and writes, implemented
//! by the eBPF build over its maps and by the native build over process
//! memory.

use super::*;

/// The state the balancer and the decapsulator read and the counters they
/// write.
pub trait LbTables {
    /// How the tables hand out the balancer's settings: a reference into
    /// the map value in the eBPF build, a copy in the native one. A copy
    /// in the eBPF build cost twenty instructions and 80 bytes of the
    /// balancing stage's nearly full stack on every frame to a VIP.
    type Config: core::ops::Deref<Target = LbConfig>;
    /// The balancer's settings (`None`: none written, no balancing).
    fn lb_config(&self) -> Option<Self::Config>;
    /// The VIP of `key`.
    fn vip(&self, key: &VipKey) -> Option<Vip>;
    /// Whether the tables keep VIPs by slot ([`vip_in_slot`]), so that the
    /// balancing stage looks an established flow up before its VIP.
    /// Without them that first lookup would be one more for every frame.
    ///
    /// [`vip_in_slot`]: LbTables::vip_in_slot
    const VIPS_BY_SLOT: bool;
    /// The VIP in slot `slot` (`VIPS_BY_SLOT`, [`VipSlot`]) if the slot
    /// holds the VIP of exactly (`address`, `port`, `protocol`); `None`
    /// also for a slot being changed.
    fn vip_in_slot(&self, slot: u32, address: &[u8; 16], port: u16, protocol: u8) -> Option<Vip>;
    /// Slot `slot` of ring `ring`: a backend index or `NO_BACKEND`.
    fn ring_slot(&self, ring: u32, slot: u32) -> u32;
    /// Backend `index`.
    fn backend(&self, index: u32) -> Option<Backend>;
    /// A flow's entry in one connection table.
    fn connection(&mut self, table: ConnectionTable, key: &ConnectionKey) -> Option<Connection>;
    /// Forgets a flow's entry in the established table (a SYN reusing an
    /// earlier connection's 5-tuple, `known_connection`).
    fn remove_established(&mut self, key: &ConnectionKey);
    /// Records a flow's backend in one connection table.
    fn insert_connection(
        &mut self,
        table: ConnectionTable,
        key: &ConnectionKey,
        connection: &Connection,
    );
    /// Whether `source` (of `family`, 4 or 6) is in the allow list of VIP
    /// slot `vip` (asked only of a VIP with `VIP_ALLOW_LIST`).
    fn source_allowed(&self, vip: u32, family: u8, source: &[u8; 16]) -> bool;
    /// Samples a frame to VIP slot `vip` (asked only of a VIP with
    /// `VIP_SAMPLED`) at the VIP's own rate, in place of its interface's
    /// choice (a capture stays as it was): each frame is sampled at one
    /// rate, which its record carries. Asked before the frame is changed.
    fn sample_vip<P: crate::packet::Packet>(&mut self, packet: &P, vip: u32);
    /// Counts a frame to VIP slot `vip`, once, as the stage leaves it:
    /// forwarded (`reason` `LbForwarded`) to backend `backend`, with its
    /// bytes and whether it placed a new flow; else not forwarded, counted
    /// by `reason` ([`vip_drop_index`]).
    fn count_vip(
        &mut self,
        vip: u32,
        backend: u32,
        reason: crate::stats::Reason,
        bytes: u64,
        new_flow: bool,
    );
    /// Counts a connection-table hit (`CONN_HITS`) or miss (`CONN_MISSES`).
    fn count_connection(&mut self, slot: u32);
    /// The next hop towards `address` (IPv4-mapped for IPv4).
    fn next_hop(&mut self, address: &[u8; 16], ipv4: bool) -> NextHop;
    /// The MTU of interface `ifindex` (0: the one the frame came in on),
    /// the largest IP packet it sends; `u32::MAX` when unknown.
    fn egress_mtu(&self, ifindex: u32) -> u32;
    /// Whether one more ICMP too-big answer may go at `now_ns` (this CPU's
    /// [`super::AnswerBudget`]); counts it if so.
    fn take_answer(&mut self, now_ns: u64) -> bool;
    /// The decapsulator's settings.
    fn decap_config(&self) -> DecapConfig;
    /// Whether `address` is one of this host's (decapsulation targets).
    fn is_local_address(&self, address: &[u8; 16]) -> bool;
}
