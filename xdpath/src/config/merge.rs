//! The filter state a config installs: the config's entries merged with
//! what the namespace keeps of its own (id counters, expiries, owners'
//! rules and limits).

use std::collections::{BTreeSet, HashMap};

use super::plan::block_same;
use crate::control::state::{BlockKey, BlockSpec, FilterState, LimitSpec, LimitTable};

/// The filter state to install: `desired`, keeping from `current` the
/// id counters, the expiry of blocklist entries that stay, the order of
/// management entries that stay and the rate limits and filter rules
/// owners made (a config leaves them alone, its own rules before the
/// owners'); entries already expired are left out.
///
/// Without `table_usable` (a program attached that does not read the
/// address table, `features::address_table_usable`), the config's limits
/// of one address go among the general limits, but for those saved in the
/// table already: an upgrade moves nothing an older program enforces.
pub fn merge_filter(
    current: &FilterState,
    desired: &FilterState,
    now: u64,
    table_usable: bool,
) -> FilterState {
    let mut state = desired.clone();
    if !table_usable {
        let in_table: HashMap<u32, &LimitSpec> = current
            .rate_limits
            .iter()
            .filter(|limit| limit.table == LimitTable::Address)
            .map(|limit| (limit.id, limit))
            .collect();
        for limit in &mut state.rate_limits {
            let saved_there = in_table.get(&limit.id).is_some_and(|have| {
                LimitSpec {
                    labels: have.labels.clone(),
                    ..limit.clone()
                } == **have
            });
            if !saved_there {
                limit.table = LimitTable::General;
            }
        }
    }
    keep_owned(&mut state.rules, &current.rules, |rule| {
        rule.owner.is_some()
    });
    keep_owned(&mut state.rate_limits, &current.rate_limits, |limit| {
        limit.owner.is_some()
    });
    state.next_rule_id = current.next_rule_id.max(1);
    state.next_limit_id = current.next_limit_id.max(1);
    // By key, not by a search per entry: a config of 100,000 entries was
    // 10^10 comparisons.
    let held: HashMap<BlockKey, &BlockSpec> = current
        .blocklist
        .iter()
        .map(|have| (have.key(), have))
        .collect();
    state.blocklist = desired
        .blocklist
        .iter()
        .map(|wanted| match held.get(&wanted.key()) {
            Some(have) if block_same(have, wanted) => **have,
            _ => *wanted,
        })
        .filter(|entry: &BlockSpec| entry.expires_at.is_none_or(|expiry| expiry > now))
        .collect();
    if set(&current.management.prefixes) == set(&desired.management.prefixes) {
        state.management.prefixes = current.management.prefixes.clone();
    }
    if set(&current.management.ports) == set(&desired.management.ports) {
        state.management.ports = current.management.ports.clone();
    }
    state
}

/// The config's own entries of `list` (none an owner's), then the owners'
/// entries of `current` as they are.
fn keep_owned<T: Clone>(list: &mut Vec<T>, current: &[T], owned: impl Fn(&T) -> bool) {
    list.retain(|entry| !owned(entry));
    list.extend(current.iter().filter(|entry| owned(entry)).cloned());
}

fn set<T: Ord + Copy>(list: &[T]) -> BTreeSet<T> {
    list.iter().copied().collect()
}
