//! The owner's rules and rate limits are matched through keys (not by
//! comparing every wanted entry with every one there): the results must be
//! exactly those of the plain comparison, checked here against it over
//! many generated documents (entries alike but for labels, repeated
//! entries, other owners' and the operator's entries in between).

use super::limits::edit_limits;
use super::rules::edit_rules;
use crate::control::ops::allocate_ids;
use crate::control::parse::{parse_cidr, Labels};
use crate::control::state::{FilterState, LimitKey, LimitSpec, RuleAction, RuleSpec};
use xdpath_core::filter::MAX_RULES;

/// A small deterministic generator (xorshift).
struct Draw(u64);

impl Draw {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

fn labels(draw: &mut Draw) -> Labels {
    match draw.below(3) {
        0 => Labels::new(),
        kind => [("team".to_string(), format!("t{kind}"))].into(),
    }
}

/// One of a few shapes, so that many rules are alike.
fn rule(draw: &mut Draw, owner: Option<&str>) -> RuleSpec {
    let shape = draw.below(6);
    RuleSpec {
        id: 0,
        sources: (0..shape % 3)
            .map(|n| parse_cidr(&format!("10.0.{n}.0/24")).expect("prefix"))
            .collect(),
        destination: Some(parse_cidr("10.255.0.5/32").expect("prefix")),
        protocol: Some(6),
        ports: None,
        icmp_type: None,
        tcp_flags: None,
        action: if shape < 3 {
            RuleAction::Pass
        } else {
            RuleAction::Drop
        },
        interface: None,
        monitor: shape == 5,
        vni: None,
        owner: owner.map(str::to_string),
        labels: labels(draw),
    }
}

fn limit(draw: &mut Draw, owner: Option<&str>) -> LimitSpec {
    let shape = draw.below(5);
    LimitSpec {
        id: 0,
        packets_per_second: Some(100 * (shape % 3 + 1)),
        burst_packets: 10,
        bytes_per_second: None,
        burst_bytes: 0,
        per: if shape < 4 {
            LimitKey::Src
        } else {
            LimitKey::Dst
        },
        aggregate_v4: 32,
        aggregate_v6: 128,
        scope: None,
        protocol: None,
        syn_only: shape == 3,
        monitor: false,
        vip: None,
        to: None,
        owner: owner.map(str::to_string),
        vni: None,
        labels: labels(draw),
        table: Default::default(),
    }
}

/// The rules' matching as it was: each wanted rule compared with every
/// rule the owner had.
fn reference_rules(state: &mut FilterState, owner: &str, wanted: &[RuleSpec]) {
    let mine = |rule: &RuleSpec| rule.owner.as_deref() == Some(owner);
    let had: Vec<RuleSpec> = state.rules.iter().filter(|r| mine(r)).cloned().collect();
    let same = |have: &RuleSpec, want: &RuleSpec| {
        RuleSpec {
            id: have.id,
            ..want.clone()
        } == *have
    };
    let alike = |have: &RuleSpec, want: &RuleSpec| {
        RuleSpec {
            id: have.id,
            labels: have.labels.clone(),
            ..want.clone()
        } == *have
    };
    if had.len() == wanted.len() && had.iter().zip(wanted).all(|(h, w)| same(h, w)) {
        return;
    }
    let mut placed: Vec<RuleSpec> = Vec::new();
    let mut fresh = Vec::new();
    for (index, want) in wanted.iter().enumerate() {
        let kept = had
            .iter()
            .find(|have| alike(have, want) && !placed.iter().any(|rule| rule.id == have.id));
        if kept.is_none() {
            fresh.push(index);
        }
        placed.push(RuleSpec {
            id: kept.map_or(0, |have| have.id),
            ..want.clone()
        });
    }
    state.rules.retain(|rule| !mine(rule));
    let mut used: std::collections::HashSet<u32> = state.rules.iter().map(|r| r.id).collect();
    used.extend(placed.iter().map(|rule| rule.id).filter(|id| *id != 0));
    let ids = allocate_ids(
        &mut state.next_rule_id,
        &used,
        fresh.len(),
        MAX_RULES,
        "rule",
    )
    .expect("ids");
    for (index, id) in fresh.into_iter().zip(ids) {
        placed[index].id = id;
    }
    state.rules.extend(placed);
}

/// The limits' matching as it was.
fn reference_limits(state: &mut FilterState, owner: &str, wanted: &[LimitSpec]) {
    let mut kept: Vec<u32> = Vec::new();
    let mut new = Vec::new();
    for limit in wanted {
        let same = state.rate_limits.iter_mut().find(|have| {
            have.owner.as_deref() == Some(owner)
                && !kept.contains(&have.id)
                && LimitSpec {
                    id: have.id,
                    labels: have.labels.clone(),
                    ..limit.clone()
                } == **have
        });
        match same {
            Some(have) => {
                have.labels.clone_from(&limit.labels);
                kept.push(have.id);
            }
            None => new.push(limit.clone()),
        }
    }
    state
        .rate_limits
        .retain(|limit| limit.owner.as_deref() != Some(owner) || kept.contains(&limit.id));
    if new.is_empty() {
        return;
    }
    let used = state.rate_limits.iter().map(|limit| limit.id).collect();
    let ids = allocate_ids(
        &mut state.next_limit_id,
        &used,
        new.len(),
        u32::MAX,
        "rate limit",
    )
    .expect("ids");
    for (mut limit, id) in new.into_iter().zip(ids) {
        limit.id = id;
        state.rate_limits.push(limit);
    }
}

#[test]
fn keyed_matching_keeps_exactly_the_ids_order_and_entries_of_the_plain_comparison() {
    let mut draw = Draw(0x9e37_79b9_7f4a_7c15);
    for case in 0..200 {
        let mut keyed = FilterState::default();
        let mut plain = FilterState::default();
        for round in 0..6 {
            // Between the owner's calls, another owner's and the
            // operator's entries come and go.
            let other = ["o", "p"][round % 2];
            let (owner, count) = (if draw.below(4) == 0 { other } else { "o" }, draw.below(12));
            if draw.below(3) == 0 {
                let rule = RuleSpec {
                    id: plain.next_rule_id.max(1),
                    ..rule(&mut draw, None)
                };
                plain.next_rule_id = rule.id + 1;
                keyed.next_rule_id = rule.id + 1;
                plain.rules.push(rule.clone());
                keyed.rules.push(rule);
            }
            let rules: Vec<RuleSpec> = (0..count).map(|_| rule(&mut draw, Some(owner))).collect();
            let limits: Vec<LimitSpec> = (0..draw.below(8))
                .map(|_| limit(&mut draw, Some(owner)))
                .collect();
            let with_override: Vec<(RuleSpec, bool)> =
                rules.iter().map(|rule| (rule.clone(), false)).collect();
            edit_rules(&mut keyed, owner, &with_override).expect("rules");
            reference_rules(&mut plain, owner, &rules);
            edit_limits(&mut keyed, owner, &limits, true).expect("limits");
            reference_limits(&mut plain, owner, &limits);
            assert_eq!(keyed, plain, "case {case}, round {round}");
        }
    }
}

/// An owner's limit of one address saved among the general limits by an
/// older build: the same document again keeps it (its id, so its
/// buckets), moved to the address table only when every program reads
/// it; a new one goes among the general limits until then.
#[test]
fn an_owners_limit_moves_to_the_address_table_only_when_usable() {
    use crate::control::state::LimitTable;
    let args = crate::api::LimitArgs {
        pps: Some("2000".into()),
        per: "dst".into(),
        scope: Some("203.0.113.7/32".into()),
        ..crate::api::LimitArgs::default()
    };
    let wanted = crate::control::ops::limit_spec(&args, 0).expect("a limit");
    assert_eq!(wanted.table, LimitTable::Address);
    let mut saved = wanted.clone();
    saved.id = 9;
    saved.owner = Some("fip".into());
    saved.table = LimitTable::General;
    let mut wanted = wanted;
    wanted.owner = Some("fip".into());
    let mut state = FilterState {
        rate_limits: vec![saved],
        next_limit_id: 10,
        ..FilterState::default()
    };
    edit_limits(&mut state, "fip", std::slice::from_ref(&wanted), false).expect("kept");
    assert_eq!(
        state
            .rate_limits
            .iter()
            .map(|limit| (limit.id, limit.table))
            .collect::<Vec<_>>(),
        [(9, LimitTable::General)]
    );
    let mut other = wanted.clone();
    other.scope = Some(crate::control::parse::parse_cidr("203.0.113.8/32").expect("a prefix"));
    edit_limits(&mut state, "fip", &[wanted.clone(), other.clone()], false).expect("added");
    assert_eq!(
        state
            .rate_limits
            .iter()
            .map(|limit| (limit.id, limit.table))
            .collect::<Vec<_>>(),
        [(9, LimitTable::General), (10, LimitTable::General)]
    );
    edit_limits(&mut state, "fip", &[wanted, other], true).expect("moved");
    assert_eq!(
        state
            .rate_limits
            .iter()
            .map(|limit| (limit.id, limit.table))
            .collect::<Vec<_>>(),
        [(9, LimitTable::Address), (10, LimitTable::Address)]
    );
}
