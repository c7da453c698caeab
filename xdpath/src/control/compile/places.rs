//! Where each rate limit is enforced: a slot of the general limits
//! (`RATE_LIMITS`, tried one by one) or an entry of the address table
//! (`ADDRESS_LIMITS`, one lookup a frame). One function decides for
//! compile, apply, read-back and the drop counts alike.

use std::collections::HashSet;

use xdpath_core::filter::{AddressLimitKey, DIRECTION_DESTINATION, DIRECTION_SOURCE};

use crate::control::state::{LimitKey, LimitSpec, LimitTable};

/// Where one limit is enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitPlace {
    /// Slot `n` of the general limits.
    Slot(u32),
    /// The address table's entry at this key.
    Address(AddressLimitKey),
}

/// Whether a limit is of one address: its scope one address (`/32`,
/// `/128`) on the side that keys its buckets (not `--vip`), no protocol or
/// SYN condition. Such a limit is one bucket, for everything to (or from)
/// that address: what the address table holds. New limits of this shape
/// are made for the table (`LimitSpec::table`).
pub fn of_one_address(limit: &LimitSpec) -> bool {
    limit
        .scope
        .is_some_and(|scope| scope.mapped_length() == 128)
        && limit.to.is_none()
        && limit.vip.is_none()
        && limit.protocol.is_none()
        && !limit.syn_only
}

/// The address-table key of a limit made for the table and of its shape.
pub fn address_key(limit: &LimitSpec) -> Option<AddressLimitKey> {
    if limit.table != LimitTable::Address || !of_one_address(limit) {
        return None;
    }
    let scope = limit.scope?;
    Some(AddressLimitKey {
        address: scope.address,
        tunnel: limit.vni.map_or(0, |vni| vni + 1),
        side: match limit.per {
            LimitKey::Dst => DIRECTION_DESTINATION,
            LimitKey::Src => DIRECTION_SOURCE,
        },
        reserved: [0; 3],
    })
}

/// Where each of `limits` is enforced, in their order: a limit made for
/// the address table goes there unless an earlier one has its key (both
/// then apply: the later one among the general limits); every other
/// limit takes the next general slot.
pub fn limit_places(limits: &[LimitSpec]) -> Vec<LimitPlace> {
    let mut taken = HashSet::new();
    let mut next_slot = 0;
    limits
        .iter()
        .map(
            |limit| match address_key(limit).filter(|key| taken.insert(*key)) {
                Some(key) => LimitPlace::Address(key),
                None => {
                    next_slot += 1;
                    LimitPlace::Slot(next_slot - 1)
                }
            },
        )
        .collect()
}

/// The ids of the general limits, in slot order.
pub fn slot_ids(limits: &[LimitSpec]) -> Vec<u32> {
    limits
        .iter()
        .zip(limit_places(limits))
        .filter(|(_, place)| matches!(place, LimitPlace::Slot(_)))
        .map(|(limit, _)| limit.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::parse::parse_cidr;

    fn limit(scope: &str, per: LimitKey, table: LimitTable) -> LimitSpec {
        LimitSpec {
            id: 1,
            packets_per_second: Some(10),
            burst_packets: 10,
            bytes_per_second: None,
            burst_bytes: 0,
            per,
            aggregate_v4: 32,
            aggregate_v6: 128,
            scope: Some(parse_cidr(scope).expect("a prefix")),
            protocol: None,
            syn_only: false,
            monitor: false,
            vip: None,
            to: None,
            owner: None,
            vni: None,
            labels: Default::default(),
            table,
        }
    }

    #[test]
    fn limits_of_one_address_go_to_the_table_once_per_key() {
        let host = limit("10.0.0.1/32", LimitKey::Dst, LimitTable::Address);
        let source = limit("10.0.0.1/32", LimitKey::Src, LimitTable::Address);
        let v6 = limit("2001:db8::1/128", LimitKey::Dst, LimitTable::Address);
        let old = limit("10.0.0.2/32", LimitKey::Dst, LimitTable::General);
        let prefix = limit("10.0.0.0/24", LimitKey::Dst, LimitTable::Address);
        let mut tunnelled = host.clone();
        tunnelled.vni = Some(7);
        let mut proto = host.clone();
        proto.protocol = Some(17);
        let places = limit_places(&[
            host.clone(),
            old,
            host.clone(),
            source,
            v6,
            prefix,
            tunnelled,
            proto,
        ]);
        let key = |limit: &LimitSpec| address_key(limit).expect("a key");
        assert_eq!(
            places,
            [
                LimitPlace::Address(key(&host)),
                LimitPlace::Slot(0),
                LimitPlace::Slot(1),
                LimitPlace::Address(key(&limit(
                    "10.0.0.1/32",
                    LimitKey::Src,
                    LimitTable::Address
                ))),
                LimitPlace::Address(key(&limit(
                    "2001:db8::1/128",
                    LimitKey::Dst,
                    LimitTable::Address
                ))),
                LimitPlace::Slot(2),
                LimitPlace::Address(AddressLimitKey {
                    tunnel: 8,
                    ..key(&host)
                }),
                LimitPlace::Slot(3),
            ]
        );
    }
}
