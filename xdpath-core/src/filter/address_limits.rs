//! Rate limits of one address each, kept in a hash table keyed by the
//! address (`ADDRESS_LIMITS`): one lookup a frame and side, however many
//! there are, where the general limits (`RATE_LIMITS`, at most
//! [`super::MAX_RATE_LIMITS`]) are tried one by one. A cloud host limits
//! each floating IP or port address of its tenants (Neutron's QoS): tens
//! or thousands of such limits, each one bucket for everything to (or
//! from) its address.
//!
//! Which limits go here is the control plane's choice, made once when a
//! limit is created and saved with it: a limit whose scope is one address
//! (`/32`, `/128`) on the side that keys its buckets, without a protocol
//! or SYN condition, and the first of its key. The table's bucket lives in
//! the entry itself: no flood of other addresses can evict it.

use super::limits::{Bucket, RateLimit, LIMIT_MONITOR};
use super::tables::Tables;
use super::types::{
    FilterConfig, DIRECTION_DESTINATION, DIRECTION_SOURCE, FILTER_ADDRESS_LIMITS_DESTINATION,
    FILTER_ADDRESS_LIMITS_SOURCE,
};
use super::{FilterDrop, Layers};
use crate::parse::FlowKey;
use crate::stats::Reason;

/// Entries of `ADDRESS_LIMITS`.
pub const MAX_ADDRESS_LIMITS: u32 = 65_536;

/// The key of an address limit: the address (IPv4-mapped for IPv4), the
/// layer (0: outer headers; VNI + 1: the inner headers of frames tunnelled
/// with that VNI, as [`FlowKey::tunnel`]) and the side the address is on.
/// Aligned to 8 (24 bytes): the eBPF build builds it on the stack.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressLimitKey {
    /// The address, network byte order.
    pub address: [u8; 16],
    /// 0, or the VNI plus one.
    pub tunnel: u32,
    /// `DIRECTION_SOURCE` (a per-source limit) or `DIRECTION_DESTINATION`.
    pub side: u8,
    /// Reserved, zero.
    pub reserved: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<AddressLimitKey>() == 24);

impl AddressLimitKey {
    /// The key a frame's `side` address looks up.
    #[inline(always)]
    pub fn of(key: &FlowKey, side: u8) -> Self {
        let address = if side == DIRECTION_DESTINATION {
            key.destination
        } else {
            key.source
        };
        Self {
            address,
            tunnel: key.tunnel,
            side,
            reserved: [0; 3],
        }
    }
}

/// An address limit: its rates (and id and monitor flag, as a general
/// limit holds them), its one bucket and its drops.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressLimit {
    /// The limit as compiled (scope, rates, id, flags).
    pub limit: RateLimit,
    /// Its bucket.
    pub bucket: Bucket,
    /// Frames over it (monitored or dropped), summed over CPUs.
    pub drops: u64,
}

const _: () = assert!(core::mem::size_of::<AddressLimit>() == 96);

impl AddressLimit {
    /// A new entry: a full bucket (its clock at 0, so the first frame's
    /// refill caps it at the burst whatever the clock), no drops.
    pub fn fresh(limit: RateLimit) -> Self {
        Self {
            limit,
            bucket: Bucket::full(&limit, 0),
            drops: 0,
        }
    }

    /// Charges one frame of `bytes`; false when it is over the limit.
    #[inline(always)]
    pub fn charge(&mut self, bytes: u64, now_ns: u64) -> bool {
        self.bucket.take(&self.limit, bytes, now_ns)
    }

    /// Whether a frame over it is only counted.
    #[inline(always)]
    pub fn monitored(&self) -> bool {
        self.limit.flags & LIMIT_MONITOR != 0
    }
}

/// What charging a frame to an address's limit found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressCharge {
    /// The address has no limit.
    Unlimited,
    /// Within the limit (tokens taken).
    Fits,
    /// Over it (the drop counted): dropped, or only counted when
    /// `monitor`.
    Over {
        /// The limit only monitors.
        monitor: bool,
    },
}

/// The address limits of each layer's key: its destination's, then its
/// source's (the sides the table holds, `FilterConfig::flags`), the outer
/// layer first. The first that is over and drops decides; a monitored one
/// over its rate is the frame's verdict only when none after it drops (as
/// among the general limits: a trial limit turns no other off). Not
/// inlined: one subprogram the verifier walks once (see the module of
/// `filter`).
#[inline(never)]
pub(super) fn address_limits<T: Tables>(
    config: &FilterConfig,
    layers: &Layers<'_>,
    frame_len: u64,
    tables: &mut T,
) -> Option<FilterDrop> {
    let now = tables.now_ns();
    let mut monitored = None;
    for layer in [layers.outer, layers.inner] {
        let Some(key) = layer else {
            continue;
        };
        for (flag, side) in [
            (FILTER_ADDRESS_LIMITS_DESTINATION, DIRECTION_DESTINATION),
            (FILTER_ADDRESS_LIMITS_SOURCE, DIRECTION_SOURCE),
        ] {
            if config.flags & flag == 0 {
                continue;
            }
            let charge =
                tables.charge_address_limit(&AddressLimitKey::of(key, side), frame_len, now);
            match charge {
                AddressCharge::Unlimited | AddressCharge::Fits => {}
                AddressCharge::Over { monitor: false } => {
                    return Some(FilterDrop {
                        reason: Reason::RateLimited,
                        monitor: false,
                    })
                }
                AddressCharge::Over { monitor: true } => {
                    monitored = monitored.or(Some(FilterDrop {
                        reason: Reason::RateLimited,
                        monitor: true,
                    }));
                }
            }
        }
    }
    monitored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_starts_full_and_counts_nothing() {
        let limit = RateLimit {
            packets_per_second: 10,
            burst_packets: 3,
            id: 7,
            ..Default::default()
        };
        let mut entry = AddressLimit::fresh(limit);
        let now = 5_000_000_000_000;
        for _ in 0..3 {
            assert!(entry.charge(100, now));
        }
        assert!(!entry.charge(100, now), "the burst is three frames");
        assert_eq!(entry.drops, 0, "drops are the tables' to count");
        assert!(!entry.monitored());
    }

    #[test]
    fn a_key_is_the_side_address_and_layer() {
        let key = FlowKey {
            source: [1; 16],
            destination: [2; 16],
            tunnel: 43,
            ..Default::default()
        };
        let destination = AddressLimitKey::of(&key, DIRECTION_DESTINATION);
        assert_eq!(destination.address, [2; 16]);
        assert_eq!(
            (destination.tunnel, destination.side),
            (43, DIRECTION_DESTINATION)
        );
        assert_eq!(AddressLimitKey::of(&key, DIRECTION_SOURCE).address, [1; 16]);
    }
}
