//! The state the filter reads and the counters every stage writes: the
//! [`Tables`] trait, implemented over maps by the eBPF build and over plain
//! values by the native one.

use super::{
    AddressCharge, AddressLimitKey, BlockEntry, BucketKey, BucketTable, Charge, FilterConfig,
    PrefixKey, RateLimit, Rule, RuleChain, TunnelPrefixKey,
};
use crate::config::InterfaceConfig;
use crate::packet::Packet;
use crate::stats::{Action, Reason};

/// The state the pipeline reads and the counters it writes.
///
/// The eBPF build implements it over maps; `NativeTables` over plain
/// values.
pub trait Tables {
    /// The configuration of the interface the frame arrived on.
    fn interface_config(&self) -> InterfaceConfig;

    /// Adds one frame of `bytes` to the (action, reason) counter: the
    /// single exit, where a frame chosen for sampling or capture is sent
    /// with its verdict.
    fn count(&mut self, action: Action, reason: Reason, bytes: u64);

    /// Called once per frame before any stage, to choose it for sampling
    /// or capture while its bytes are those that arrived. The eBPF build
    /// does this in its entry program instead; the default chooses nothing.
    fn observe_arrival<P: Packet>(&mut self, packet: &P) {
        let _ = packet;
    }

    /// The index of the interface the frame arrived on (0 when unknown).
    fn ifindex(&self) -> u32;

    /// Now, CLOCK_MONOTONIC ns in the kernel; replay uses capture time.
    fn now_ns(&self) -> u64;

    /// The global filter configuration.
    fn filter_config(&self) -> FilterConfig;

    /// The chain of the longest source prefix in rule buffer `buffer`.
    fn source_chain(&self, buffer: u32, address: &[u8; 16]) -> Option<&RuleChain>;

    /// The chain of the longest destination prefix in rule buffer `buffer`.
    fn destination_chain(&self, buffer: u32, address: &[u8; 16]) -> Option<&RuleChain>;

    /// Rule `index` of buffer `buffer`.
    fn rule(&self, buffer: u32, index: u32) -> Option<&Rule>;

    /// Counts a hit of rule `id`.
    fn count_rule_hit(&mut self, id: u32);

    /// The blocklist entry of the longest prefix holding `address`.
    fn blocklist_entry(&self, address: &[u8; 16]) -> Option<BlockEntry>;

    /// Removes an expired blocklist entry.
    fn remove_blocklist_entry(&mut self, key: PrefixKey);

    /// The entry of the longest prefix holding the inner source `address`
    /// of a frame tunnelled with `vni`, in the tunnel blocklist.
    fn tunnel_blocklist_entry(&self, vni: u32, address: &[u8; 16]) -> Option<BlockEntry>;

    /// Removes an expired tunnel blocklist entry.
    fn remove_tunnel_blocklist_entry(&mut self, key: TunnelPrefixKey);

    /// Rate limit `index`.
    fn rate_limit(&self, index: u32) -> Option<&RateLimit>;

    /// Charges one frame to the bucket at `key` in `table` under the limit
    /// in slot `charge.slot`, through [`crate::filter::charge_bucket`]: the
    /// table's bucket, or, when the table holds none (never had one, or
    /// evicted it), one started from the bucket's bounds; false when it is
    /// over the limit.
    fn take_tokens(&mut self, table: BucketTable, key: &BucketKey, charge: &Charge) -> bool;

    /// Counts a drop by rate limit `index`.
    fn count_limit_drop(&mut self, index: u32);

    /// Holds a monitored general limit's verdict (non-zero) for the frame
    /// in flight, unless one is held already (the first decides), while
    /// the general limits after it are tried.
    fn hold_limit_verdict(&mut self, verdict: u32);

    /// The verdict held for the frame in flight (0: none), cleared.
    fn take_limit_verdict(&mut self) -> u32;

    /// Charges one frame of `bytes` to the address limit at `key`
    /// ([`crate::filter::AddressLimit::charge`]), counting a drop in the
    /// entry when it is over.
    fn charge_address_limit(
        &mut self,
        key: &AddressLimitKey,
        bytes: u64,
        now_ns: u64,
    ) -> AddressCharge;

    /// Whether `port` is a reflection (amplification) source port.
    fn is_reflection_port(&self, port: u16) -> bool;

    /// Whether `destination` expects traffic from reflection ports.
    fn expects_reflection(&self, destination: &[u8; 16]) -> bool;

    /// Whether `source` is in a management prefix.
    fn is_management_source(&self, source: &[u8; 16]) -> bool;

    /// Whether `port` is a management port.
    fn is_management_port(&self, port: u16) -> bool;
}
