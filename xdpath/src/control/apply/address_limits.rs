//! Installing the address table (`ADDRESS_LIMITS`): entry by entry, like
//! the blocklist, so a commit in progress is marked (`commit_marker`).
//! The table is compared with what the target really holds, not with the
//! previous state, so the same pass repairs a table a killed writer left
//! half written. An entry whose limit did not change keeps its bucket and
//! drops; a limit changed in place (same id) keeps them too (the next
//! refill caps the bucket at the new burst); a new limit starts full.

use std::collections::{HashMap, HashSet};

use xdpath_core::filter::{AddressLimit, AddressLimitKey, RateLimit, MAX_ADDRESS_LIMITS};

use super::{ApplyError, FilterTarget};

/// Writes the entries of `wanted` the target lacks or holds otherwise
/// (the first half of a sync: before the general limits are rewritten, so
/// a limit moving from them to the table is never in neither). When the
/// table cannot hold the new entries beside the stale ones (the kernel's
/// map refuses an entry past `MAX_ADDRESS_LIMITS`), the stale ones go
/// first: a limit leaving the table is then briefly enforced nowhere,
/// rather than the whole change failing.
pub fn write_address_limits(
    target: &mut dyn FilterTarget,
    wanted: &[(AddressLimitKey, RateLimit)],
) -> Result<(), ApplyError> {
    let mut have: HashMap<AddressLimitKey, AddressLimit> =
        target.address_limit_entries()?.into_iter().collect();
    let adding = wanted
        .iter()
        .filter(|(key, _)| !have.contains_key(key))
        .count();
    if have.len() + adding > MAX_ADDRESS_LIMITS as usize {
        remove_stale_address_limits(target, wanted)?;
        have = target.address_limit_entries()?.into_iter().collect();
    }
    for (key, limit) in wanted {
        let entry = match have.get(key) {
            Some(have) if have.limit == *limit => continue,
            Some(have) if have.limit.id == limit.id => AddressLimit {
                limit: *limit,
                ..*have
            },
            _ => AddressLimit::fresh(*limit),
        };
        // A limit changed in place keeps the bucket and drops read at the
        // start of this pass: what the data path adds to them before the
        // write is lost (the frames of the pass's duration, up to about
        // 0.3 s when 60,000 entries change at once).
        target.write_address_limit(key, entry)?;
    }
    Ok(())
}

/// Removes the target's entries `wanted` does not hold (the second half).
pub fn remove_stale_address_limits(
    target: &mut dyn FilterTarget,
    wanted: &[(AddressLimitKey, RateLimit)],
) -> Result<(), ApplyError> {
    let wanted: HashSet<AddressLimitKey> = wanted.iter().map(|(key, _)| *key).collect();
    for (key, _) in target.address_limit_entries()? {
        if !wanted.contains(&key) {
            target.remove_address_limit(&key)?;
        }
    }
    Ok(())
}

/// Makes the target's address table hold exactly `wanted`.
#[cfg(test)]
pub fn sync_address_limits(
    target: &mut dyn FilterTarget,
    wanted: &[(AddressLimitKey, RateLimit)],
) -> Result<(), ApplyError> {
    write_address_limits(target, wanted)?;
    remove_stale_address_limits(target, wanted)
}

/// Whether the target's address table holds exactly `wanted` (the limits;
/// buckets and drops are the data path's).
pub fn address_limits_match(
    target: &dyn FilterTarget,
    wanted: &[(AddressLimitKey, RateLimit)],
) -> Result<bool, ApplyError> {
    let have: HashMap<AddressLimitKey, AddressLimit> =
        target.address_limit_entries()?.into_iter().collect();
    Ok(have.len() == wanted.len()
        && wanted
            .iter()
            .all(|(key, limit)| have.get(key).is_some_and(|have| have.limit == *limit)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use xdpath_core::NativeTables;

    fn key(last: u8) -> AddressLimitKey {
        AddressLimitKey {
            address: xdpath_core::parse::ipv4_mapped([10, 0, 0, last]),
            ..Default::default()
        }
    }

    fn limit(id: u32, packets_per_second: u64) -> RateLimit {
        RateLimit {
            id,
            packets_per_second,
            burst_packets: packets_per_second,
            ..Default::default()
        }
    }

    #[test]
    fn the_table_ends_as_wanted_keeping_what_did_not_change() {
        let mut tables = NativeTables::default();
        // A stale entry a killed writer left, and one to keep.
        tables.set_address_limit(key(9), AddressLimit::fresh(limit(9, 5)));
        let mut kept = AddressLimit::fresh(limit(1, 10));
        kept.drops = 4;
        tables.set_address_limit(key(1), kept);
        let mut changed = AddressLimit::fresh(limit(2, 10));
        changed.drops = 7;
        tables.set_address_limit(key(2), changed);
        let wanted = [
            (key(1), limit(1, 10)),
            (key(2), limit(2, 20)),
            (key(3), limit(3, 1)),
        ];
        assert!(!address_limits_match(&tables, &wanted).expect("read"));
        sync_address_limits(&mut tables, &wanted).expect("written");
        assert!(address_limits_match(&tables, &wanted).expect("read"));
        assert_eq!(tables.address_limit(&key(9)), None, "the stale entry went");
        assert_eq!(
            tables.address_limit(&key(1)).map(|entry| entry.drops),
            Some(4)
        );
        let changed = tables.address_limit(&key(2)).expect("there");
        assert_eq!((changed.limit.packets_per_second, changed.drops), (20, 7));
        assert_eq!(
            tables.address_limit(&key(3)),
            Some(AddressLimit::fresh(limit(3, 1)))
        );
        // A limit replaced by another (a new id) starts afresh.
        let replaced = [(key(1), limit(5, 10))];
        sync_address_limits(&mut tables, &replaced).expect("written");
        assert_eq!(
            tables.address_limit(&key(1)).map(|entry| entry.drops),
            Some(0)
        );
        assert_eq!(tables.address_limit_keys(), [key(1)]);
    }
}
