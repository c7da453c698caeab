//! The general rate limits (`RATE_LIMITS`, at most
//! [`MAX_RATE_LIMITS`]), tried one by one against each frame.

use super::limits::{BucketTable, LIMIT_DESTINATION, LIMIT_MONITOR, LIMIT_SYN_ONLY};
use super::tables::Tables;
use super::types::{FilterConfig, MAX_RATE_LIMITS};
use super::{Charge, FilterDrop, Layers};
use crate::parse::FlowKey;
use crate::stats::Reason;

/// Each limit against its layer's key (`FilterConfig::tunnel_limits`);
/// a limit whose layer has no key here is skipped. One loop for both
/// layers: in the eBPF build a second one cost the verifier as much again.
/// The first limit over its rate that drops decides. A monitored one over
/// its rate does not end the loop: the first such verdict is held
/// ([`Tables::hold_limit_verdict`]) and is the frame's only when no later
/// limit drops it (a monitored `/0` trial limit ahead of the enforcing
/// ones must not switch them off while it is over).
#[inline(never)]
pub(super) fn rate_limits<T: Tables>(
    config: &FilterConfig,
    layers: &Layers<'_>,
    frame_len: u64,
    tables: &mut T,
) -> Option<FilterDrop> {
    let now = tables.now_ns();
    for index in 0..MAX_RATE_LIMITS {
        if index >= config.rate_limits {
            break;
        }
        let key = if u32::from(config.tunnel_limits) & (1 << index) != 0 {
            layers.inner
        } else {
            layers.outer
        };
        let Some(key) = key else {
            continue;
        };
        let verdict = check_limit(index, key, frame_len, now, tables);
        if verdict == LIMIT_PASS {
            continue;
        }
        if verdict == LIMIT_END {
            break;
        }
        // Cleared for the next frame: a monitored verdict held before
        // this drop is not this frame's outcome.
        let _ = tables.take_limit_verdict();
        return Some(limit_drop(verdict));
    }
    match tables.take_limit_verdict() {
        LIMIT_PASS => None,
        held => Some(limit_drop(held)),
    }
}

/// The drop of a limit's verdict code (see [`check_limit`]).
#[inline(always)]
fn limit_drop(verdict: u32) -> FilterDrop {
    FilterDrop {
        reason: if verdict & LIMIT_VERDICT_SYN != 0 {
            Reason::SynRateLimited
        } else {
            Reason::RateLimited
        },
        monitor: verdict & LIMIT_VERDICT_MONITOR != 0,
    }
}

const LIMIT_PASS: u32 = 0;
const LIMIT_END: u32 = 1;
const LIMIT_VERDICT_DROP: u32 = 2;
const LIMIT_VERDICT_SYN: u32 = 4;
const LIMIT_VERDICT_MONITOR: u32 = 8;

/// One limit against one frame, as a code: pass, end of the limits, or a
/// drop with its flags. Not inlined: in the eBPF build the verifier then
/// sees a few return values per limit instead of every path through the
/// bucket arithmetic.
#[inline(never)]
fn check_limit<T: Tables>(
    index: u32,
    key: &FlowKey,
    frame_len: u64,
    now: u64,
    tables: &mut T,
) -> u32 {
    // Only what the verdict needs is copied out of the limit: the charge
    // reads the limit where the tables keep it (in the eBPF build a map
    // value; a copy on this stack, which the bucket arithmetic's branches
    // narrow, made the verifier walk past its million instructions).
    let (flags, bucket_key) = match tables.rate_limit(index) {
        Some(limit) if limit.applies(key) => (limit.flags, limit.bucket_key(key)),
        Some(_) => return LIMIT_PASS,
        None => return LIMIT_END,
    };
    let table = if flags & LIMIT_DESTINATION != 0 {
        BucketTable::Destination
    } else {
        BucketTable::Source
    };
    let charge = Charge::new(index, &bucket_key, frame_len, now);
    if tables.take_tokens(table, &bucket_key, &charge) {
        return LIMIT_PASS;
    }
    tables.count_limit_drop(index);
    let mut verdict = LIMIT_VERDICT_DROP;
    if flags & LIMIT_SYN_ONLY != 0 {
        verdict |= LIMIT_VERDICT_SYN;
    }
    if flags & LIMIT_MONITOR != 0 {
        // Held, and a pass to the loop: the limits after it still decide.
        // Not returned: a verdict carried through the unrolled loop (in a
        // register or on the stack, which the verifier follows) more than
        // doubled the limits program's verification, past the million.
        tables.hold_limit_verdict(verdict | LIMIT_VERDICT_MONITOR);
        return LIMIT_PASS;
    }
    verdict
}
