//! Parsing, checking, planning and the edits of apply, without a kernel.

use super::edit_lb::edit_lb;
use super::load::load_str;
use super::merge::merge_filter;
use super::report::Environment;
use super::*;
use crate::control::state::RuleAction;

const EXAMPLE: &str = include_str!("../../../examples/xdpath.toml");
const NOW: u64 = 1_000_000;

fn environment() -> Environment {
    Environment {
        interface_exists: Box::new(|name| ["eth0", "eth1", "lo"].contains(&name)),
        now: NOW,
    }
}

pub(super) fn parse(text: &str) -> Result<DesiredConfig, ConfigErrors> {
    load_str(text, "test.toml", &environment())
}

pub(super) fn errors(text: &str) -> Vec<String> {
    parse(text).expect_err("refused").lines()
}

#[test]
fn the_example_loads() {
    let config = parse(EXAMPLE).expect("the example is valid");
    assert_eq!(config.interfaces.len(), 1);
    assert_eq!(config.interfaces[0].malformed, Malformed::Drop);
    let filter = &config.filter;
    assert_eq!(
        filter.rules.iter().map(|rule| rule.id).collect::<Vec<_>>(),
        [10, 20]
    );
    assert_eq!(filter.rules[0].sources.len(), 2);
    assert_eq!(
        filter.rules[1].ports.map(|ports| (ports.low, ports.high)),
        Some((1000, 2000))
    );
    assert_eq!(filter.blocklist[0].expires_at, Some(NOW + 3600));
    assert_eq!(filter.blocklist[1].expires_at, None);
    assert_eq!(filter.blocklist[2].vni, Some(1001));
    assert_eq!(filter.rate_limits[0].burst_packets, 200);
    assert_eq!(filter.rate_limits[0].aggregate_v6, 128);
    assert_eq!(filter.guards.amplification.ports.len(), 4);
    assert_eq!(filter.management.ports, [22]);
    let lb = &config.lb;
    assert_eq!(lb.vips.len(), 2);
    assert!(lb.vips[0].source_hash);
    let weights: Vec<u32> = lb.vips[0]
        .backends
        .iter()
        .map(|backend| backend.weight)
        .collect();
    assert_eq!(weights, [2, 1]);
    assert_eq!(lb.vips[1].gue_port, 6080);
    let health = lb.vips[0].health.as_ref().expect("the first VIP's check");
    assert_eq!(
        (health.status, health.codes.as_slice()),
        (200, &[(200, 204)][..])
    );
    // The same config is no change.
    assert!(plan(&config, &config).is_empty());
}

#[test]
fn every_mistake_is_listed_with_its_place() {
    let text = "\
[filter]
[[filter.rule]]
id = 1
src = \"10.0.0.300/8\"
action = \"pass\"
colour = \"red\"

[lb]
source_v4 = \"172.16.0.0/16\"
[[lb.vip]]
vip = \"203.0.113.10:80/tcp\"
[[lb.vip.backend]]
address = \"10.0.0.1\"
weight = 5000
[[lb.vip]]
vip = \"203.0.113.10:80/tcp\"
";
    let lines = errors(text);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(
        lines[0].starts_with("test.toml:4:7: filter.rule[0].src: invalid CIDR"),
        "{lines:#?}"
    );
    assert!(
        lines[1].starts_with("test.toml:6:1: filter.rule[0].colour: unknown field `colour`"),
        "{lines:#?}"
    );
    assert!(
        lines[2].starts_with(
            "test.toml:14:10: lb.vip[0].backend[0].weight: weight 5000 is out of range"
        ),
        "{lines:#?}"
    );
    assert!(
        lines[3]
            .starts_with("test.toml:16:7: lb.vip[1].vip: VIP 203.0.113.10:80/tcp is listed twice"),
        "{lines:#?}"
    );
    let shown = parse(text).expect_err("refused").to_string();
    assert_eq!(shown.lines().count(), 4);
    assert!(shown
        .lines()
        .skip(1)
        .all(|line| line.starts_with(ERROR_PREFIX)));
}

#[test]
fn every_syntax_error_is_listed() {
    let lines = errors("[lb]\nseed = \n[filter\ndefault = \"drop\"\n");
    assert!(lines.len() >= 2, "{lines:#?}");
    assert!(lines[0].starts_with("test.toml:2:"), "{lines:#?}");
    assert!(
        lines.iter().any(|line| line.starts_with("test.toml:3:")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().all(|line| line.contains("syntax error")),
        "{lines:#?}"
    );
}

#[test]
fn a_wrong_value_is_not_also_reported_missing() {
    let lines =
        errors("[[filter.rule]]\nid = \"ten\"\nsrc = \"10.0.0.0/8\"\naction = \"reject\"\n");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].contains("filter.rule[0].id: expected a whole number"),
        "{lines:#?}"
    );
    assert!(
        lines[1].contains("filter.rule[0].action: invalid action \"reject\""),
        "{lines:#?}"
    );
}

#[test]
fn semantic_checks_of_the_cli_apply() {
    let cases: &[(&str, &str)] = &[
        ("[[filter.rule]]\nid = 1\nsrc = \"10.0.0.0/8\"\naction = \"pass\"\n[[filter.rule]]\nid = 1\ndst = \"::/0\"\naction = \"drop\"\n", "rule id 1 is used twice"),
        ("[[filter.rule]]\nid = 0\nsrc = \"10.0.0.0/8\"\naction = \"pass\"\n", "rule id 0 is out of range"),
        ("[[filter.rule]]\nid = 2\naction = \"pass\"\n", "a rule needs src or dst"),
        ("[[filter.rule]]\nid = 2\nsrc = \"10.0.0.0/8\"\ndst = \"2001:db8::/32\"\naction = \"drop\"\n", "different address families"),
        ("[[filter.rule]]\nid = 2\nsrc = \"10.0.0.0/8\"\ndport = 70000\naction = \"drop\"\n", "port \"70000\" is out of range"),
        ("[[filter.rule]]\nid = 2\nsrc = \"10.0.0.0/8\"\nproto = \"icmp\"\nicmp_type = \"3/256\"\naction = \"drop\"\n", "test.toml:5:13: filter.rule[0].icmp_type: invalid ICMP type \"3/256\""),
        ("[[filter.rule]]\nid = 2\nsrc = \"10.0.0.0/8\"\nproto = \"udp\"\nicmp_type = 8\naction = \"drop\"\n", "filter.rule[0].icmp_type: ICMP type \"8\" needs protocol icmp or icmpv6"),
        ("[[filter.rule]]\nid = 2\nsrc = \"2001:db8::/32\"\nproto = \"icmp\"\naction = \"drop\"\n", "test.toml:4:9: filter.rule[0].proto: protocol icmp is never carried by IPv6"),
        ("[[filter.rule]]\nid = 2\nsrc = \"10.0.0.0/8\"\nvni = 16777216\naction = \"drop\"\n", "filter.rule[0].vni: invalid VNI \"16777216\": expected a number 0-16777215"),
        ("[[filter.ratelimit]]\nid = 1\npps = 10\nvni = \"tenant\"\n", "vni: invalid VNI \"tenant\""),
        ("[[filter.rule]]\nid = 2\nsrc = \"10.0.0.0/8\"\naction = \"drop\"\nlabels = { owner = \"x\" }\n", "filter.rule[0].labels: invalid label key \"owner\": xdpath's own label"),
        ("[[filter.ratelimit]]\nid = 1\npps = 10\nlabels = { a = \"\" }\n", "invalid value of label \"a\": empty"),
        ("[[filter.rule]]\nid = 2\nsrc = \"10.0.0.0/8\"\niface = \"nope0\"\naction = \"drop\"\n", "interface \"nope0\" does not exist"),
        ("[filter.mgmt]\nprefixes = [\"192.0.2.0/28\"]\n[[filter.rule]]\nid = 3\nsrc = \"0.0.0.0/0\"\naction = \"drop\"\n", "set override = true"),
        ("[[filter.ratelimit]]\nid = 1\nproto = \"tcp\"\n", "give pps or bps"),
        ("[[filter.ratelimit]]\nid = 1\npps = 0\n", "rate limit 1: --pps 0 is out of range"),
        ("[[filter.block]]\nprefix = \"10.0.0.0/8\"\nttl = \"10y\"\n", "invalid duration"),
        ("[[interface]]\nname = \"eth0\"\ngue_port = 6080\n", "gue_port applies with decap = true only"),
        ("[[interface]]\nname = \"nope0\"\n", "interface \"nope0\" does not exist"),
        ("[lb]\nsource_v4 = \"fd00::/64\"\n", "needs an IPv4 prefix"),
        ("[lb]\nnext_hop = \"01:00:5e:00:00:01\"\n", "invalid MAC address"),
        ("[[lb.vip]]\nvip = \"203.0.113.10:80/tcp\"\nring_size = 1000\n", "ring_size: table size 1000 is not a prime"),
        ("[[lb.vip]]\nvip = \"203.0.113.10:80/tcp\"\nencap = \"gue\"\n", "needs --gue-port"),
        ("[[lb.vip]]\nvip = \"203.0.113.10:80/tcp\"\nsample_rate = 16777217\n", "sample_rate: sample rate 16777217 is above the largest, 16777216"),
        ("[[lb.vip]]\nvip = \"203.0.113.10/tcp\"\n", "invalid VIP"),
        // Issue 14, item 12: host bits, leading zeros, unusable addresses
        // and a guard with no ports are refused, not silently accepted.
        ("[[filter.rule]]\nid = 2\nsrc = \"1.2.3.4/8\"\naction = \"drop\"\n", "host bits are set past /8; did you mean 1.0.0.0/8?"),
        ("[[filter.rule]]\nid = 2\nsrc = \"10.0.0.0/08\"\naction = \"drop\"\n", "leading zero"),
        ("[filter.mgmt]\nprefixes = [\"192.0.2.1/28\"]\n", "did you mean 192.0.2.0/28?"),
        ("[[filter.block]]\nprefix = \"10.9.9.9/24\"\n", "did you mean 10.9.9.0/24?"),
        ("[[filter.ratelimit]]\nid = 1\npps = 10\nscope = \"10.1.1.1/16\"\n", "did you mean 10.1.0.0/16?"),
        ("[filter.guard.amplification]\nexpect = [\"198.51.100.7/24\"]\n", "did you mean 198.51.100.0/24?"),
        ("[filter.guard.syn_cookies]\nenabled = true\n", "SYN-cookie guard is on with no ports"),
        ("[filter.guard.amplification]\nports = []\n", "amplification guard is on with no ports"),
        ("[lb]\nsource_v4 = \"172.16.1.1/16\"\n", "did you mean 172.16.0.0/16?"),
        ("[mitigation]\nthreshold_pps = 1000\nttl = \"99999999m\"\n", "mitigation.ttl: must be at most 3650d"),
        ("[[lb.vip]]\nvip = \"255.255.255.255:80/tcp\"\n", "a VIP must be a unicast address"),
        ("[[lb.vip]]\nvip = \"203.0.113.10:80/tcp\"\n[[lb.vip.backend]]\naddress = \"127.0.0.1\"\n", "a loopback address is this host"),
        ("[[lb.vip]]\nvip = \"203.0.113.10:80/tcp\"\n[[lb.vip.backend]]\naddress = \"255.255.255.255\"\n", "not a unicast address"),
        ("[[lb.vip]]\nvip = \"203.0.113.10:80/tcp\"\nflags = \"bogus\"\n", "unknown VIP flag"),
        ("[[lb.vip]]\nvip = \"[2001:db8::10]:80/tcp\"\n[[lb.vip.backend]]\naddress = \"2001:db8::5\"\n", "lb.source_v6 is not set"),
        ("[[lb.vip]]\nvip = \"203.0.113.10:80/tcp\"\n[[lb.vip.backend]]\naddress = \"10.0.0.1\"\n[[lb.vip.backend]]\naddress = \"10.0.0.1\"\n", "already in VIP"),
    ];
    for (text, needle) in cases {
        let lines = errors(text);
        assert!(
            lines.iter().any(|line| line.contains(needle)),
            "{text}\n{lines:#?} lacks {needle:?}"
        );
    }
    let overridden = "[filter.mgmt]\nprefixes = [\"192.0.2.0/28\"]\n[[filter.rule]]\nid = 3\nsrc = \"0.0.0.0/0\"\naction = \"drop\"\noverride = true\n";
    parse(overridden).expect("override");
}

#[test]
fn plans_name_each_change() {
    let base = parse(EXAMPLE).expect("valid");
    let edited = EXAMPLE
        .replace("weight = 2", "weight = 3")
        .replace("dport = \"22\"", "dport = \"2222\"")
        .replace("address = \"10.0.0.12\"", "address = \"10.0.0.13\"")
        .replace("malformed = \"drop\"", "malformed = \"pass\"");
    let changes = plan(&base, &parse(&edited).expect("valid"));
    let keys: Vec<(Action, &str, &str)> = changes
        .changes()
        .map(|c| (c.action, c.what, c.key.as_str()))
        .collect();
    use super::plan::Action;
    assert_eq!(
        keys,
        [
            (Action::Change, "interface", "eth0"),
            (Action::Change, "rule", "10"),
            (Action::Change, "backend", "203.0.113.10:80/tcp 10.0.0.11"),
            (Action::Remove, "backend", "203.0.113.10:80/tcp 10.0.0.12"),
            (Action::Add, "backend", "203.0.113.10:80/tcp 10.0.0.13"),
        ]
    );
    let text = changes.to_string();
    assert!(
        text.contains("~ backend 203.0.113.10:80/tcp 10.0.0.11: weight 2 -> weight 3"),
        "{text}"
    );
    assert_eq!(
        plan(&base, &base).to_string(),
        "no changes: the data path matches the config\n"
    );
}

#[test]
fn attached_interfaces_satisfy_auto() {
    let wanted = InterfaceSpec {
        name: "eth0".into(),
        ..InterfaceSpec::default()
    };
    let mut have = InterfaceSpec {
        mode: Mode::Generic,
        ..wanted.clone()
    };
    assert!(plan::interface_matches(&have, &wanted));
    have.stale = true;
    assert!(!plan::interface_matches(&have, &wanted));
}

#[test]
fn applying_keeps_slots_generations_and_expiries() {
    let desired = parse(EXAMPLE).expect("valid");
    let mut state = crate::lb::state::LbState::default();
    edit_lb(&mut state, &desired.lb).expect("from empty");
    let before = state.clone();
    let edited = EXAMPLE
        .replace("address = \"10.0.0.12\"", "address = \"10.0.0.13\"")
        .replace("weight = 2", "weight = 5");
    edit_lb(&mut state, &parse(&edited).expect("valid").lb).expect("edit");
    let vip = &state.vips[0];
    let kept = vip
        .backends
        .iter()
        .find(|b| b.address.to_string() == "10.0.0.11")
        .expect("kept");
    let old = before.vips[0]
        .backends
        .iter()
        .find(|b| b.address.to_string() == "10.0.0.11")
        .expect("old");
    assert_eq!(
        (kept.index, kept.generation, kept.weight),
        (old.index, old.generation, 5)
    );
    let other = &state.vips[1].backends[0];
    assert_eq!(*other, before.vips[1].backends[0]);

    let mut current = desired.filter.clone();
    current.blocklist[0].expires_at = Some(NOW + 10);
    current.next_rule_id = 77;
    current.rules[0].action = RuleAction::Drop;
    let merged = merge_filter(&current, &desired.filter, NOW, true);
    assert_eq!(
        merged.blocklist[0].expires_at,
        Some(NOW + 10),
        "a running expiry is kept"
    );
    assert_eq!(merged.next_rule_id, 77);
    assert_eq!(merged.rules, desired.filter.rules);
    assert_eq!(
        merge_filter(&current, &desired.filter, NOW + 20, true)
            .blocklist
            .len(),
        desired.filter.blocklist.len() - 1,
        "the entry expired by then goes"
    );
}

#[test]
fn steering_loads_and_plans() {
    let text = "\
[[interface]]
name = \"eth0\"
steer = true

[steering]
cpus = \"0\"
queue_size = 512

[[steering.xsk]]
proto = \"udp\"
dport = 9000

[[steering.xsk]]
proto = \"tcp\"
dport = \"8080\"
";
    let config = parse(text).expect("valid");
    assert!(config.interfaces[0].steer);
    assert_eq!(config.steering.cpus, [0]);
    assert_eq!(config.steering.queue_size, 512);
    assert_eq!(config.steering.xsk, [(6, 8080), (17, 9000)]);
    let changes = plan(&DesiredConfig::default(), &config);
    let keys: Vec<&str> = changes
        .steering
        .iter()
        .map(|change| change.key.as_str())
        .collect();
    assert_eq!(keys, ["cpus", "xsk tcp/8080", "xsk udp/9000"]);
    assert!(plan(&config, &config).is_empty());
    // Steering is changed in place.
    let mut off = config.interfaces[0].clone();
    off.steer = false;
    assert!(!plan::needs_reattach(&config.interfaces[0], &off));
    // Without a steering interface the CPU list is no change.
    let mut quiet = config.clone();
    quiet.interfaces[0].steer = false;
    let mut other_cpus = quiet.clone();
    other_cpus.steering.queue_size = 64;
    assert!(plan(&quiet, &other_cpus).steering.is_empty());
}

#[test]
fn steering_mistakes_are_listed_with_their_place() {
    let text = "\
[steering]
cpus = \"4096\"
queue_size = 4

[[steering.xsk]]
proto = \"icmp\"
dport = 0

[[steering.xsk]]
dport = 53
";
    let lines = errors(text);
    let expected = [
        "test.toml:2:8: steering.cpus: CPU 4096 does not exist",
        "test.toml:3:14: steering.queue_size: 4 is out of range 8..=16384",
        "test.toml:6:9: steering.xsk[0].proto: \"icmp\": only tcp and udp",
        "test.toml:7:9: steering.xsk[0].dport: \"0\" is not a port",
        "test.toml:9:1: steering.xsk[1]: missing field `proto`",
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (line, start) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(start),
            "{line}\n  should start with\n{start}"
        );
    }
}

#[test]
fn rules_and_limits_take_a_vni() {
    let text = "\
[[filter.rule]]
id = 1
vni = 1001
src = \"192.168.1.0/24\"
action = \"drop\"

[[filter.ratelimit]]
id = 1
pps = 100
vni = \"16777215\"
";
    let config = parse(text).expect("valid");
    assert_eq!(config.filter.rules[0].vni, Some(1001));
    assert_eq!(config.filter.rate_limits[0].vni, Some(16_777_215));
    // The VNI is part of what a plan compares.
    let mut other = config.clone();
    other.filter.rules[0].vni = Some(1002);
    assert!(!plan(&config, &other).is_empty());
    assert!(plan(&config, &config).is_empty());
}

#[test]
fn rules_and_limits_take_labels() {
    let text = "\
[[filter.rule]]
id = 1
src = \"192.168.1.0/24\"
action = \"drop\"
labels = { port_id = \"p-1\", security_group_id = \"g-1\" }

[[filter.ratelimit]]
id = 1
pps = 100
labels = { qos_policy_id = \"q-1\" }
";
    let config = parse(text).expect("valid");
    let rule = &config.filter.rules[0].labels;
    assert_eq!(rule.get("port_id").map(String::as_str), Some("p-1"));
    assert_eq!(rule.len(), 2);
    let limit = &config.filter.rate_limits[0].labels;
    assert_eq!(limit.get("qos_policy_id").map(String::as_str), Some("q-1"));
    let mut other = config.clone();
    other.filter.rules[0].labels.clear();
    assert!(!plan(&config, &other).is_empty(), "labels are compared");
}

#[test]
fn only_a_new_mode_attaches_an_interface_again() {
    let config = parse("[[interface]]\nname = \"eth0\"\nmode = \"generic\"\n").expect("valid");
    let now = &config.interfaces[0];
    // The settings in the program's CONFIG map change in place.
    let mut changed = now.clone();
    changed.sample_rate = 10;
    changed.monitor = true;
    changed.malformed = Malformed::Drop;
    changed.decap = true;
    changed.gue_port = 6080;
    changed.forward = true;
    changed.steer = true;
    assert!(!plan::needs_reattach(now, &changed));
    changed.mode = Mode::Native;
    assert!(plan::needs_reattach(now, &changed));
    let unhealthy = InterfaceSpec {
        stale: true,
        ..now.clone()
    };
    assert!(plan::needs_reattach(&unhealthy, now));
}

#[test]
fn the_balancers_path_mtu_is_checked_like_the_clis() {
    let config = parse("[lb]\nmtu = 1400\n").expect("an MTU in range");
    assert_eq!(config.lb.settings.mtu, 1400);
    let lines = errors("[lb]\nmtu = 100\n");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("lb.mtu: --mtu 100 is out of range"),
        "{lines:#?}"
    );
}

#[test]
fn a_config_dropping_its_ipv6_vip_may_lower_the_path_mtu_in_one_apply() {
    let with_v6 = "[[lb.vip]]\nvip = \"[2001:db8::10]:443/tcp\"\n";
    let mut state = crate::lb::state::LbState::default();
    edit_lb(&mut state, &parse(with_v6).expect("valid").lb).expect("the IPv6 VIP");
    // The VIP goes and the MTU drops below what it needed, together.
    let lowered = parse("[lb]\nmtu = 1000\n").expect("valid");
    edit_lb(&mut state, &lowered.lb).expect("one apply");
    assert_eq!(state.settings.mtu, 1000);
    assert!(state.vips.is_empty());
    // The other way round is refused: the VIP comes under a low MTU.
    let both = parse(&format!("[lb]\nmtu = 1000\n{with_v6}")).expect_err("refused at parse");
    assert!(
        both.to_string()
            .contains("the least IPv6 VIP [2001:db8::10]:443/tcp needs"),
        "{both}"
    );
}
