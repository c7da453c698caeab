//! Unit tests of rule compilation: chain inheritance and limits.

use super::*;
use crate::control::parse::{parse_cidr, PortRange};

fn no_interfaces(_: &str) -> Option<u32> {
    None
}

fn rule(id: u32, sources: &[&str], action: RuleAction) -> RuleSpec {
    RuleSpec {
        id,
        sources: sources
            .iter()
            .map(|text| parse_cidr(text).expect("valid"))
            .collect(),
        destination: None,
        protocol: None,
        ports: None,
        icmp_type: None,
        tcp_flags: None,
        action,
        interface: None,
        monitor: false,
        vni: None,
        owner: None,
        labels: Default::default(),
    }
}

fn chain_of(compiled: &CompiledRules, prefix: &str) -> Vec<u32> {
    let key = parse_cidr(prefix).expect("valid").key();
    let (_, index) = compiled
        .sources
        .iter()
        .chain(&compiled.destinations)
        .find(|(entry, _)| *entry == key)
        .expect("prefix installed");
    compiled.chains[*index as usize]
        .rules
        .iter()
        .copied()
        .take_while(|&rule| rule != NO_RULE)
        .map(|index| compiled.rules[index as usize].id)
        .collect()
}

#[test]
fn a_prefix_inherits_the_rules_of_the_nearest_covering_prefix() {
    let mut ssh = rule(2, &["10.1.0.0/16"], RuleAction::Pass);
    ssh.ports = Some(PortRange { low: 22, high: 22 });
    let rules = vec![
        rule(1, &["10.0.0.0/8"], RuleAction::Drop),
        ssh,
        rule(3, &["10.1.2.0/24"], RuleAction::Drop),
        rule(4, &["192.0.2.0/24"], RuleAction::Drop),
    ];
    let compiled = compile_rules(&rules, &no_interfaces).expect("compiles");
    assert_eq!(chain_of(&compiled, "10.0.0.0/8"), [1]);
    assert_eq!(chain_of(&compiled, "10.1.0.0/16"), [2, 1]);
    assert_eq!(chain_of(&compiled, "10.1.2.0/24"), [3, 2, 1]);
    assert_eq!(chain_of(&compiled, "192.0.2.0/24"), [4]);
    assert!(compiled.destinations.is_empty());
    // 10/8 and 192.0.2/24 are both [drop-rule]: distinct rules, distinct chains.
    assert_eq!(compiled.chains.len(), 4);
}

#[test]
fn siblings_do_not_inherit_from_each_other_and_chains_are_shared() {
    let rules = vec![
        rule(1, &["10.0.0.0/8"], RuleAction::Drop),
        rule(
            2,
            &["10.1.0.0/16", "10.2.0.0/16", "10.2.3.0/24"],
            RuleAction::Pass,
        ),
        rule(3, &["10.2.3.0/24"], RuleAction::Drop),
    ];
    let compiled = compile_rules(&rules, &no_interfaces).expect("compiles");
    assert_eq!(chain_of(&compiled, "10.1.0.0/16"), [2, 1]);
    assert_eq!(chain_of(&compiled, "10.2.0.0/16"), [2, 1]);
    // Own rules in rule order, then the parent's chain without repeats.
    assert_eq!(chain_of(&compiled, "10.2.3.0/24"), [2, 3, 1]);
    assert_eq!(compiled.chains.len(), 3);
}

#[test]
fn destination_only_and_any_source_rules_go_to_the_destination_trie() {
    let mut by_destination = rule(1, &[], RuleAction::Drop);
    by_destination.destination = Some(parse_cidr("198.51.100.0/24").expect("valid"));
    let mut any_source = rule(2, &["0.0.0.0/0"], RuleAction::Pass);
    any_source.destination = Some(parse_cidr("198.51.100.7/32").expect("valid"));
    let mut narrowed = rule(3, &["10.0.0.0/8"], RuleAction::Drop);
    narrowed.destination = Some(parse_cidr("198.51.100.0/24").expect("valid"));
    let compiled =
        compile_rules(&[by_destination, any_source, narrowed], &no_interfaces).expect("compiles");
    assert_eq!(chain_of(&compiled, "198.51.100.7/32"), [2, 1]);
    assert_eq!(compiled.sources.len(), 1);
    let narrowed = compiled.rules[2];
    assert_ne!(narrowed.flags & RULE_DESTINATION, 0);
    assert_eq!(narrowed.destination_len, 96 + 24);
}

#[test]
fn errors() {
    let nine: Vec<RuleSpec> = (1..=9)
        .map(|id| rule(id, &[&format!("10.0.0.0/{}", 8 + id)], RuleAction::Drop))
        .collect();
    assert_eq!(
        compile_rules(&nine, &no_interfaces),
        Err(CompileError::ChainTooLong {
            prefix: parse_cidr("10.0.0.0/17").expect("valid")
        })
    );
    assert!(compile_rules(&nine[..8], &no_interfaces).is_ok());
    let mut mixed = rule(1, &["10.0.0.0/8"], RuleAction::Drop);
    mixed.destination = Some(parse_cidr("2001:db8::/32").expect("valid"));
    assert!(matches!(
        compile_rules(&[mixed], &no_interfaces),
        Err(CompileError::FamilyMismatch { .. })
    ));
    assert_eq!(
        compile_rules(&[rule(1, &[], RuleAction::Drop)], &no_interfaces),
        Err(CompileError::NoPrefix { id: 1 })
    );
    assert_eq!(
        compile_rules(
            &[rule(MAX_RULES, &["10.0.0.0/8"], RuleAction::Drop)],
            &no_interfaces
        ),
        Err(CompileError::RuleIdOutOfRange { id: MAX_RULES })
    );
}

#[test]
fn a_million_prefixes_compile_to_one_chain() {
    let sources: Vec<Cidr> = (0..1_000_000u32)
        .map(|n| {
            let [_, a, b, c] = n.to_be_bytes();
            parse_cidr(&format!("{}.{a}.{b}.{c}/32", 1 + (n % 200))).expect("valid")
        })
        .collect();
    let mut big = rule(1, &[], RuleAction::Drop);
    big.sources = sources;
    let compiled = compile_rules(&[big], &no_interfaces).expect("compiles");
    assert_eq!(compiled.chains.len(), 1);
    assert!(compiled.sources.len() > 900_000);
}

#[test]
fn families_are_apart_and_whole_spaces_are_held_outside_the_probe_list() {
    let rules = vec![
        rule(1, &["::/0"], RuleAction::Drop),
        rule(2, &["0.0.0.0/0"], RuleAction::Pass),
        rule(3, &["10.0.0.0/8", "10.1.2.0/24"], RuleAction::Drop),
        rule(4, &["2001:db8::/32"], RuleAction::Pass),
    ];
    let compiled = compile_rules(&rules, &no_interfaces).expect("compiles");
    // 10/8 inherits 0.0.0.0/0's rule, not ::/0's, though ::/0 covers the
    // IPv4-mapped space in 128-bit terms.
    assert_eq!(chain_of(&compiled, "10.0.0.0/8"), [3, 2]);
    assert_eq!(chain_of(&compiled, "2001:db8::/32"), [4, 1]);
    let [v4, v6] = compiled.source_lengths;
    assert_eq!(&v4.lengths[..v4.count as usize], &[96 + 24, 96 + 8]);
    assert_eq!(&v6.lengths[..v6.count as usize], &[32]);
    let whole = |prefix: &str| {
        let key = parse_cidr(prefix).expect("valid").key();
        compiled
            .sources
            .iter()
            .find(|(entry, _)| *entry == key)
            .map(|(_, chain)| *chain)
    };
    assert_eq!(Some(v4.any_chain()), whole("0.0.0.0/0"));
    assert_eq!(Some(v6.any_chain()), whole("::/0"));
    let [destination_v4, destination_v6] = compiled.destination_lengths;
    assert_eq!(destination_v4.count, 0);
    assert_eq!(destination_v4.any_chain(), NO_RULE, "nothing held: zero");
    assert_eq!(destination_v6.any_chain_plus_one, 0);
}

#[test]
fn too_many_lengths_in_one_family() {
    // /0 to /32 is 33 IPv4 lengths, but /0 is held apart: they fit.
    // 33 IPv6 lengths without /0 do not.
    let v4: Vec<String> = (0..=32).map(|length| format!("0.0.0.0/{length}")).collect();
    let v4: Vec<&str> = v4.iter().map(String::as_str).collect();
    assert!(compile_rules(&[rule(1, &v4, RuleAction::Drop)], &no_interfaces).is_ok());
    let v6: Vec<String> = (1..=33).map(|length| format!("::/{length}")).collect();
    let v6: Vec<&str> = v6.iter().map(String::as_str).collect();
    assert_eq!(
        compile_rules(&[rule(1, &v6, RuleAction::Drop)], &no_interfaces).map(|_| ()),
        Err(CompileError::TooManyPrefixLengths {
            trie: "source",
            family: "IPv6",
            count: 33
        })
    );
}

#[test]
fn an_icmp_type_compiles_to_its_flag_and_type_code_range() {
    use crate::control::parse::parse_icmp_type;
    use xdpath_core::wire::protocol;
    let mut echo = rule(1, &["10.0.0.0/8"], RuleAction::Drop);
    echo.protocol = Some(protocol::ICMP);
    echo.icmp_type = Some(parse_icmp_type("8").expect("valid"));
    let mut needed = rule(2, &["2001:db8::/32"], RuleAction::Pass);
    needed.protocol = Some(protocol::ICMPV6);
    needed.icmp_type = Some(parse_icmp_type("2/0").expect("valid"));
    let compiled = compile_rules(&[echo, needed], &no_interfaces).expect("compiles");
    let by_id = |id: u32| {
        *compiled
            .rules
            .iter()
            .find(|rule| rule.id == id)
            .expect("rule")
    };
    let (echo, needed) = (by_id(1), by_id(2));
    assert_eq!(echo.flags & (RULE_ICMP_TYPE | RULE_PORTS), RULE_ICMP_TYPE);
    assert_eq!((echo.port_low, echo.port_high), (0x0800, 0x08ff));
    assert_eq!(needed.flags & RULE_ICMP_TYPE, RULE_ICMP_TYPE);
    assert_eq!((needed.port_low, needed.port_high), (0x0200, 0x0200));
}
