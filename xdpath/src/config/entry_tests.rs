//! Config entries as the API's request types, and messages in the
//! config's own terms.

use super::tests::{errors, parse};
use crate::control::state::RuleAction;

/// A file entry has the fields of its API request but the VIP, which is
/// the enclosing `[[lb.vip]]`.
fn entry_is_request_but_its_vip<Entry, Request>()
where
    Entry: for<'de> serde::Deserialize<'de>,
    Request: for<'de> serde::Deserialize<'de>,
{
    use crate::config::entry::field_names;
    let mut file: Vec<&str> = field_names::<Entry>().to_vec();
    let mut api: Vec<&str> = field_names::<Request>()
        .iter()
        .copied()
        .filter(|name| *name != "vip")
        .collect();
    file.sort_unstable();
    api.sort_unstable();
    assert_eq!(file, api);
    assert!(!file.is_empty());
}

#[test]
fn a_backend_entry_has_the_fields_of_the_api_backend_but_its_vip() {
    entry_is_request_but_its_vip::<super::schema::BackendEntry, crate::api::BackendWeight>();
}

#[test]
fn a_health_entry_has_the_fields_of_the_api_health_check_but_its_vip() {
    entry_is_request_but_its_vip::<super::schema::HealthEntry, crate::api::HealthArgs>();
}

#[test]
fn file_entries_are_the_requests_of_the_cli_and_the_api() {
    let text = "\
[[filter.rule]]
id = 7
src = [\"10.0.0.0/8\", \"192.0.2.0/24\"]
proto = 6
dport = 22
action = \"drop\"
[[filter.ratelimit]]
id = 1
pps = 1000
aggregate_v4 = 24
[[lb.vip]]
vip = \"203.0.113.10:80/tcp\"
flags = \"source-hash\"
";
    let config = parse(text).expect("valid");
    let rule = config.filter.rules.first().expect("one rule");
    assert_eq!((rule.id, rule.sources.len()), (7, 2));
    assert_eq!(rule.protocol, Some(6));
    let limit = config.filter.rate_limits.first().expect("one limit");
    assert_eq!(
        (limit.packets_per_second, limit.aggregate_v4),
        (Some(1000), 24)
    );
    let vip = config.lb.vips.first().expect("one VIP");
    assert!(vip.source_hash, "{vip:?}");
    // The same words as `filter add` and POST /v1/rules, read by the
    // same request type, so its messages and limits are the same.
    let lines = errors("[[filter.rule]]\nid = 1\nsrc = [\"10.0.0.0/8\", \"bad\"]\naction = \"drop\"\nmonitor = \"yes\"\n");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].starts_with("test.toml:3:22: filter.rule[0].src[1]: invalid CIDR"),
        "{lines:#?}"
    );
    assert!(
        lines[1].starts_with("test.toml:5:11: filter.rule[0].monitor: expected true or false"),
        "{lines:#?}"
    );
}

#[test]
fn messages_speak_the_configs_terms() {
    let cases = [
        ("[[filter.rule]]\nid = \"10\"\nsrc = \"10.0.0.0/8\"\naction = \"drop\"\n", "test.toml:2:6: filter.rule[0].id: expected a whole number from 0 to 4294967295, found the text \"10\" (write id = 10, without quotes)"),
        ("[filter]\ndefault = \"drop\"\ndefault = \"pass\"\n", "test.toml:3:1: syntax error: duplicate key `default`"),
        ("[[filter.rule]]\nid = 1\ndst = \"10.0.0.0/8\"\naction = \"drop\"\nmonitor = 1\n", "test.toml:5:11: filter.rule[0].monitor: expected true or false, found the number 1 (write monitor = true or monitor = false)"),
        ("[[lb.vip]]\nvip = \"203.0.113.1:80/tcp\"\ngue_port = 70000\n", "test.toml:3:12: lb.vip[0].gue_port: the number 70000 is out of range: expected a whole number from 0 to 65535"),
    ];
    for (text, expected) in cases {
        let lines = errors(text);
        assert!(
            lines.iter().any(|line| line.starts_with(expected)),
            "{expected}\n{lines:#?}"
        );
    }
}

#[test]
fn admit_is_a_rules_action_not_the_default() {
    let lines = errors("[filter]\ndefault = \"admit\"\n");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("filter.default: the default action is drop or pass"),
        "{lines:#?}"
    );
    let config = parse("[[filter.rule]]\nid = 1\nsrc = \"10.0.0.0/8\"\naction = \"admit\"\n")
        .expect("admit is a rule's action");
    let rules = &config.filter.rules;
    assert_eq!(
        rules.first().map(|rule| rule.action),
        Some(RuleAction::Admit)
    );
}

/// `[[filter.block]]` takes `vni` as `block add --vni` does: the same
/// prefix may be blocked plain and in a VNI, but not twice in one VNI, and
/// a VNI out of range is refused at its value.
#[test]
fn a_block_entry_may_name_a_vni() {
    let text = "\
[[filter.block]]
prefix = \"10.0.0.0/24\"
[[filter.block]]
prefix = \"10.0.0.0/24\"
vni = 1001
ttl = \"1h\"
";
    let config = parse(text).expect("valid");
    let vnis: Vec<Option<u32>> = config
        .filter
        .blocklist
        .iter()
        .map(|entry| entry.vni)
        .collect();
    assert_eq!(vnis, [None, Some(1001)]);
    let twice = errors(&format!(
        "{text}[[filter.block]]\nprefix = \"10.0.0.0/24\"\nvni = \"1001\"\n"
    ));
    assert_eq!(twice.len(), 1, "{twice:#?}");
    assert!(
        twice[0].contains("prefix 10.0.0.0/24 (VNI 1001) is listed twice"),
        "{twice:#?}"
    );
    let range = errors("[[filter.block]]\nprefix = \"10.0.0.0/24\"\nvni = 16777216\n");
    assert_eq!(range.len(), 1, "{range:#?}");
    assert!(
        range[0].starts_with("test.toml:3:7: filter.block[0].vni:"),
        "{range:#?}"
    );
}
