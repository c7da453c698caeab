//! An owner's rate limits: a limit the owner already has (equal but for
//! its id and labels) keeps its id, and so its buckets, and takes the
//! document's labels; the owner's others go; new ones get fresh ids.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::control::ops::allocate_ids;
use crate::control::parse::Cidr;
use crate::control::state::{FilterState, LimitKey, LimitSpec, LimitTable};
use crate::lb::LbError;

/// A limit but for its id and labels, borrowed: limits with equal keys
/// keep the same buckets. A key, not a clone per comparison: comparing
/// each wanted limit with every limit there, both cloned, is quadratic
/// (the rules' twin took 65 s for 32,000 rules, see `rules::AlikeKey`).
#[derive(PartialEq, Eq, Hash)]
struct AlikeKey<'a> {
    packets_per_second: Option<u64>,
    burst_packets: u64,
    bytes_per_second: Option<u64>,
    burst_bytes: u64,
    per: LimitKey,
    aggregate_v4: u8,
    aggregate_v6: u8,
    scope: Option<Cidr>,
    protocol: Option<u8>,
    syn_only: bool,
    monitor: bool,
    vip: Option<&'a str>,
    to: Option<Cidr>,
    owner: Option<&'a str>,
    vni: Option<u32>,
}

fn alike_key(limit: &LimitSpec) -> AlikeKey<'_> {
    // Every field named: a field added to `LimitSpec` must be placed here
    // (compared) or next to `id` and `labels` (ignored).
    // `table` is where the limit is kept, not what it limits: an owner's
    // limit saved among the general limits by an older build is the same
    // limit (`edit_limits` moves it).
    let LimitSpec {
        id: _,
        labels: _,
        table: _,
        packets_per_second,
        burst_packets,
        bytes_per_second,
        burst_bytes,
        per,
        aggregate_v4,
        aggregate_v6,
        scope,
        protocol,
        syn_only,
        monitor,
        vip,
        to,
        owner,
        vni,
    } = limit;
    AlikeKey {
        packets_per_second: *packets_per_second,
        burst_packets: *burst_packets,
        bytes_per_second: *bytes_per_second,
        burst_bytes: *burst_bytes,
        per: *per,
        aggregate_v4: *aggregate_v4,
        aggregate_v6: *aggregate_v6,
        scope: *scope,
        protocol: *protocol,
        syn_only: *syn_only,
        monitor: *monitor,
        vip: vip.as_deref(),
        to: *to,
        owner: owner.as_deref(),
        vni: *vni,
    }
}

/// Gives `owner` exactly the rate limits `wanted`, as the module says: a
/// wanted limit takes the first limit of the owner (in the state's order)
/// equal to it but for id, labels and table that no earlier wanted limit
/// took. With `table_usable` (every attached program reads the address
/// table, `features::address_table_usable`) each limit goes where
/// `wanted` says, a kept one moved there; without, new ones go among the
/// general limits and kept ones stay where they are, so that a document
/// sent during an upgrade is not refused for the move.
pub fn edit_limits(
    state: &mut FilterState,
    owner: &str,
    wanted: &[LimitSpec],
    table_usable: bool,
) -> Result<(), LbError> {
    // Positions in `state.rate_limits` of the owner's limits, by key, in
    // their order.
    let mut by_key: HashMap<AlikeKey<'_>, VecDeque<usize>> = HashMap::new();
    for (index, have) in state.rate_limits.iter().enumerate() {
        if have.owner.as_deref() == Some(owner) {
            by_key.entry(alike_key(have)).or_default().push_back(index);
        }
    }
    let mut kept: Vec<(usize, &LimitSpec)> = Vec::new();
    let mut new = Vec::new();
    for limit in wanted {
        match by_key
            .get_mut(&alike_key(limit))
            .and_then(VecDeque::pop_front)
        {
            Some(index) => kept.push((index, limit)),
            None => new.push(limit.clone()),
        }
    }
    let mut kept_ids = HashSet::with_capacity(kept.len());
    for (index, limit) in kept {
        if let Some(have) = state.rate_limits.get_mut(index) {
            // New labels name the same buckets.
            have.labels.clone_from(&limit.labels);
            if table_usable {
                have.table = limit.table;
            }
            kept_ids.insert(have.id);
        }
    }
    state
        .rate_limits
        .retain(|limit| limit.owner.as_deref() != Some(owner) || kept_ids.contains(&limit.id));
    if new.is_empty() {
        return Ok(());
    }
    let used = state.rate_limits.iter().map(|limit| limit.id).collect();
    let ids = allocate_ids(
        &mut state.next_limit_id,
        &used,
        new.len(),
        u32::MAX,
        "rate limit",
    )?;
    for (mut limit, id) in new.into_iter().zip(ids) {
        limit.id = id;
        if !table_usable {
            limit.table = LimitTable::General;
        }
        state.rate_limits.push(limit);
    }
    Ok(())
}
