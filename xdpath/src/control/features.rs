//! What the saved state needs of the programs that enforce it: the
//! data-path features ([`abi::feature`]) its entries use, checked against
//! the feature word of every program attached in the namespace
//! ([`dataplane::program_features`]).
//!
//! A program loaded by an older build ignores the fields a newer feature
//! uses (it would take a `--vni` rule for an outer-header rule, pass what an
//! ICMP-type rule narrows, skip an allow list). So a change that brings an
//! entry needing a feature some attached program lacks is refused before
//! any write ([`refuse_new`]), and `xdpath state check` names the entries
//! already saved that such a program does not enforce ([`gaps`]). `xdpath
//! reload IFACE` puts this build's program there and clears both.

use xdpath_core::abi::feature;

use super::state::{BlockSpec, FilterState, LimitSpec, LimitTable, RuleAction, RuleSpec};
use super::ControlError;
use crate::dataplane;
use crate::lb::state::{LbState, VipSpec};

/// Each feature with what an operator calls it.
const NAMES: [(u64, &str); 11] = [
    (feature::TUNNELS, "rules and rate limits by VNI (--vni)"),
    (
        feature::TUNNEL_BLOCKLIST,
        "blocklist entries by VNI (block add --vni)",
    ),
    (feature::ICMP_TYPE, "rules by ICMP type (--icmp-type)"),
    (feature::ADMIT, "the rule action admit"),
    (feature::LIMIT_TO, "rate limits of one VIP's frames (--vip)"),
    (feature::VIP_ALLOW, "per-VIP allow lists (lb vip allow)"),
    (
        feature::VIP_SAMPLE_RATE,
        "per-VIP sampling rates (--sample-rate)",
    ),
    (
        feature::UNJUDGED_DROPPED,
        "dropping the frames the filter cannot judge (malformed ones while the filter holds anything, tunnels around malformed frames, IPv6 frames of IPv4-mapped addresses)",
    ),
    (
        feature::DECAPSULATED_JUDGED,
        "judging the packets xdpath decap strips on their inner headers",
    ),
    (
        feature::TOO_BIG_ANSWERED,
        "answering frames too big for the balancer's path with ICMP (lb config --mtu)",
    ),
    (
        feature::ADDRESS_LIMITS,
        "rate limits of one address each, in the address table (ratelimit add --scope ADDRESS/32)",
    ),
];

/// The names of the features in `bits`, joined.
pub fn describe(bits: u64) -> String {
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    names.join(", ")
}

/// What a rule needs.
pub fn rule_needs(rule: &RuleSpec) -> u64 {
    let mut needs = 0;
    if rule.vni.is_some() {
        needs |= feature::TUNNELS;
    }
    if rule.icmp_type.is_some() {
        needs |= feature::ICMP_TYPE;
    }
    if rule.action == RuleAction::Admit {
        needs |= feature::ADMIT;
    }
    needs
}

/// What a blocklist entry needs.
pub fn block_needs(block: &BlockSpec) -> u64 {
    if block.vni.is_some() {
        feature::TUNNEL_BLOCKLIST
    } else {
        0
    }
}

/// What a rate limit needs.
pub fn limit_needs(limit: &LimitSpec) -> u64 {
    let mut needs = 0;
    if limit.vni.is_some() {
        needs |= feature::TUNNELS;
    }
    if limit.to.is_some() {
        needs |= feature::LIMIT_TO;
    }
    if limit.table == LimitTable::Address {
        needs |= feature::ADDRESS_LIMITS;
    }
    needs
}

/// What a VIP needs.
pub fn vip_needs(vip: &VipSpec) -> u64 {
    let mut needs = 0;
    if !vip.allow.is_empty() {
        needs |= feature::VIP_ALLOW;
    }
    if vip.sample_rate != 0 {
        needs |= feature::VIP_SAMPLE_RATE;
    }
    needs
}

/// What the whole filter state needs.
pub fn filter_needs(state: &FilterState) -> u64 {
    let rules = state.rules.iter().map(rule_needs);
    let blocks = state.blocklist.iter().map(block_needs);
    let limits = state.rate_limits.iter().map(limit_needs);
    let entries = rules
        .chain(blocks)
        .chain(limits)
        .fold(0, |all, bits| all | bits);
    // A state level need, never a change's (`filter_change_needs` compares
    // entries): an older program is reported, not refused.
    let empty = FilterState::default();
    let holds_anything = !state.rules.is_empty()
        || !state.blocklist.is_empty()
        || !state.rate_limits.is_empty()
        || state.default_action != empty.default_action
        || state.default_monitor
        || state.guards != empty.guards
        || state.management != empty.management;
    entries
        | if holds_anything {
            feature::UNJUDGED_DROPPED | feature::DECAPSULATED_JUDGED
        } else {
            0
        }
}

/// What the whole balancer state needs.
pub fn lb_needs(state: &LbState) -> u64 {
    let vips = state
        .vips
        .iter()
        .map(vip_needs)
        .fold(0, |all, bits| all | bits);
    // An older program balances IPv6 frames to `::ffff:<IPv4 VIP>`, and
    // sends frames too big for the path on to be dropped.
    vips | if state.vips.is_empty() {
        0
    } else {
        feature::UNJUDGED_DROPPED | feature::TOO_BIG_ANSWERED
    }
}

/// What the entries of `after` that `before` does not hold as they are
/// need: a change is refused only for what it brings, so deleting a rule,
/// or adding one that needs nothing, stays possible beside an entry an
/// older program does not enforce.
pub fn filter_change_needs(before: &FilterState, after: &FilterState) -> u64 {
    // Only entries that need something are compared: a blocklist of a
    // million plain entries costs one pass, not a million searches.
    fn new<'a, T: PartialEq>(
        before: &'a [T],
        after: &'a [T],
        needs: fn(&T) -> u64,
    ) -> impl Iterator<Item = u64> + 'a {
        let needing: Vec<&T> = before.iter().filter(|entry| needs(entry) != 0).collect();
        after
            .iter()
            .map(move |entry| (entry, needs(entry)))
            .filter(move |(entry, bits)| *bits != 0 && !needing.contains(entry))
            .map(|(_, bits)| bits)
    }
    new(&before.rules, &after.rules, rule_needs)
        .chain(new(&before.blocklist, &after.blocklist, block_needs))
        .chain(new(&before.rate_limits, &after.rate_limits, limit_needs))
        .fold(0, |all, bits| all | bits)
}

/// What the VIPs of `after` need that they did not as `before` held them:
/// a new allow list or sampling rate (a backend added to a VIP with an
/// allow list brings no new need), and a new path MTU (`lb config --mtu`,
/// which an older program ignores).
pub fn lb_change_needs(before: &LbState, after: &LbState) -> u64 {
    let mut needs = 0;
    if after.settings.mtu != 0 && after.settings.mtu != before.settings.mtu {
        needs |= feature::TOO_BIG_ANSWERED;
    }
    for vip in &after.vips {
        let old = before.vips.iter().find(|old| old.id == vip.id);
        if !vip.allow.is_empty() && old.is_none_or(|old| old.allow != vip.allow) {
            needs |= feature::VIP_ALLOW;
        }
        if vip.sample_rate != 0 && old.is_none_or(|old| old.sample_rate != vip.sample_rate) {
            needs |= feature::VIP_SAMPLE_RATE;
        }
    }
    needs
}

/// Whether a new limit of one address may go to the address table: every
/// program attached in the namespace reads it (none, natively). Otherwise
/// it goes among the general limits, which an older program enforces
/// (`LimitSpec::table`); a feature word that cannot be read says no.
pub fn address_table_usable() -> bool {
    lacking().is_ok_and(|lacking| {
        lacking
            .iter()
            .all(|(_, lacks)| lacks & feature::ADDRESS_LIMITS == 0)
    })
}

/// Each interface of the namespace whose running program lacks some of
/// this build's features, with the features it lacks.
pub fn lacking() -> Result<Vec<(String, u64)>, ControlError> {
    let mut out = Vec::new();
    for name in dataplane::attached_interfaces().map_err(ControlError::from)? {
        let Some(known) = dataplane::program_features(&name).map_err(ControlError::from)? else {
            continue;
        };
        let lacks = feature::ALL & !known;
        if lacks != 0 {
            out.push((name, lacks));
        }
    }
    Ok(out)
}

/// What the program running on `interface` lacks of this build's
/// features, named (`status`'s `older_program`); none when it knows them
/// all or none runs there.
pub fn older_program(interface: &str) -> Result<Option<String>, ControlError> {
    let known = dataplane::program_features(interface).map_err(ControlError::from)?;
    let lacks = known.map_or(0, |known| feature::ALL & !known);
    Ok((lacks != 0).then(|| describe(lacks)))
}

/// Fills in `status`'s `older_program`; a feature word that cannot be read
/// makes the interface degraded, saying why (unless it already is), not
/// an older program, and does not fail the whole listing.
pub fn note_older_program(status: &mut dataplane::InterfaceStatus) {
    match older_program(&status.interface) {
        Ok(lacks) => status.older_program = lacks,
        Err(error) if status.degraded.is_none() => status.degraded = Some(error.to_string()),
        Err(_) => {}
    }
}

/// Refuses a change needing what `needs` says while a program that lacks
/// one of those features is attached; the first such interface and
/// feature are named. `needs` runs only when such a program is attached:
/// with every program current, a commit pays no comparison of states.
pub fn refuse_new(needs: impl FnOnce() -> u64) -> Result<(), ControlError> {
    // A feature word that cannot be read refuses only a change that needs
    // a feature: a rule delete or a drain needs none.
    let lacking = match lacking() {
        Ok(lacking) => lacking,
        Err(error) => return if needs() == 0 { Ok(()) } else { Err(error) },
    };
    if lacking.is_empty() {
        return Ok(());
    }
    let needs = needs();
    if needs == 0 {
        return Ok(());
    }
    for (interface, lacks) in lacking {
        if let Some((_, name)) = NAMES.iter().find(|(bit, _)| needs & lacks & bit != 0) {
            return Err(ControlError::OlderProgram {
                interface,
                feature: name,
            });
        }
    }
    Ok(())
}

/// One line per interface whose program does not enforce entries the
/// saved state (`needs`: [`filter_needs`] | [`lb_needs`]) holds.
pub fn gaps(needs: u64) -> Result<Vec<String>, ControlError> {
    if needs == 0 {
        return Ok(Vec::new());
    }
    Ok(lacking()?
        .into_iter()
        .filter(|(_, lacks)| needs & lacks != 0)
        .map(|(interface, lacks)| {
            format!(
                "{interface} runs a program loaded by an older xdpath, which does not enforce the saved state's {}; `xdpath reload {interface}` fixes it",
                describe(needs & lacks)
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(id: u32, extra: serde_json::Value) -> RuleSpec {
        let mut value = json!({"id": id, "sources": ["10.0.0.0/8"], "action": "drop"});
        if let (Some(object), Some(more)) = (value.as_object_mut(), extra.as_object()) {
            object.extend(more.clone());
        }
        serde_json::from_value(value).expect("a rule")
    }

    fn vip(allow: &[&str], sample_rate: u32) -> VipSpec {
        serde_json::from_value(json!({
            "id": {"address": "203.0.113.10", "port": 80, "protocol": "tcp"},
            "encap": "ipip",
            "ring_size": 7,
            "slot": 0,
            "allow": allow,
            "sample_rate": sample_rate,
        }))
        .expect("a VIP")
    }

    #[test]
    fn each_entry_needs_its_features() {
        assert_eq!(rule_needs(&rule(1, json!({}))), 0);
        assert_eq!(rule_needs(&rule(1, json!({"vni": 5}))), feature::TUNNELS);
        assert_eq!(
            rule_needs(&rule(
                1,
                json!({"protocol": 1, "icmp_type": {"type": 8}, "action": "admit"})
            )),
            feature::ICMP_TYPE | feature::ADMIT
        );
        assert_eq!(vip_needs(&vip(&[], 0)), 0);
        assert_eq!(
            vip_needs(&vip(&["198.51.100.0/24"], 10)),
            feature::VIP_ALLOW | feature::VIP_SAMPLE_RATE
        );
        assert_eq!(
            describe(feature::TUNNELS | feature::ADMIT),
            "rules and rate limits by VNI (--vni), the rule action admit"
        );
        assert!(NAMES.iter().fold(0, |all, (bit, _)| all | bit) == feature::ALL);
    }

    #[test]
    fn a_change_needs_only_what_it_brings() {
        let before = FilterState {
            rules: vec![rule(1, json!({"vni": 5}))],
            ..FilterState::default()
        };
        let mut after = before.clone();
        after.rules.push(rule(2, json!({})));
        assert_eq!(filter_change_needs(&before, &after), 0, "a plain rule");
        assert_eq!(filter_change_needs(&before, &FilterState::default()), 0);
        after.rules.push(rule(3, json!({"vni": 6})));
        assert_eq!(filter_change_needs(&before, &after), feature::TUNNELS);
        // The whole state needs, besides, what no entry brings.
        assert_eq!(
            filter_needs(&before),
            feature::TUNNELS | feature::UNJUDGED_DROPPED | feature::DECAPSULATED_JUDGED
        );
        assert_eq!(filter_needs(&FilterState::default()), 0);
        assert_eq!(lb_needs(&LbState::default()), 0);

        let with_allow = LbState {
            vips: vec![vip(&["198.51.100.0/24"], 0)],
            ..LbState::default()
        };
        let mut more = with_allow.clone();
        if let Some(vip) = more.vips.first_mut() {
            vip.ring_size = 13;
        }
        assert_eq!(
            lb_change_needs(&with_allow, &more),
            0,
            "the same allow list"
        );
        assert_eq!(
            lb_change_needs(&LbState::default(), &with_allow),
            feature::VIP_ALLOW
        );
        let sampled = LbState {
            vips: vec![vip(&["198.51.100.0/24"], 10)],
            ..LbState::default()
        };
        assert_eq!(
            lb_change_needs(&with_allow, &sampled),
            feature::VIP_SAMPLE_RATE
        );
        // A path MTU set or changed needs the answers; the same one again,
        // or the device's alone, does not.
        let mut bounded = sampled.clone();
        bounded.settings.mtu = 1400;
        assert_eq!(
            lb_change_needs(&sampled, &bounded),
            feature::TOO_BIG_ANSWERED
        );
        assert_eq!(lb_change_needs(&bounded, &bounded), 0);
        assert_eq!(lb_change_needs(&bounded, &sampled), 0);
        assert_eq!(
            lb_needs(&sampled) & feature::TOO_BIG_ANSWERED,
            feature::TOO_BIG_ANSWERED,
            "any VIP needs the answers of a program"
        );
    }
}
