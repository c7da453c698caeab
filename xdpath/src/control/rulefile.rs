//! Rules as operators write them: the arguments of `filter add`, and rule
//! files for `filter load` and `replay --rules`.
//!
//! A rule file has one rule a line: the arguments of `filter add`
//! (`--src 10.0.0.0/8 --proto tcp --dport 22 --action pass`), or a bare
//! prefix, which means `--src PREFIX --action drop` (an ipset or
//! threat-feed export). Blank lines and `#` comments are skipped.
//! Consecutive lines that differ only in their source prefix become one
//! rule with many prefixes, so a million-prefix feed is one rule (one hit
//! counter) and evaluates exactly as the lines would one by one.

use std::collections::HashSet;
use std::path::Path;

use xdpath_core::filter::mask;

use super::parse::{
    check_icmp_family, check_icmp_type, check_labels, check_ports, check_tcp_flags, parse_cidr,
    parse_icmp_type, parse_port_range, parse_protocol, parse_tcp_flags, parse_vni,
    protocol_with_tcp_flags, Cidr,
};
use super::state::{Management, RuleAction, RuleSpec};
use super::ControlError;
use crate::api::requests::RuleArgs;
use crate::input::{read_text, TextLimits};
use crate::text::quote;

impl RuleArgs {
    /// The rule (id 0: not yet given one).
    pub fn to_spec(&self) -> Result<RuleSpec, ControlError> {
        let action = match self.action.as_deref() {
            Some(text) => parse_action(text)?,
            None => return Err(ControlError::Usage("--action drop|pass is required".into())),
        };
        if self.src.is_none() && self.dst.is_none() {
            return Err(ControlError::Usage("a rule needs --src or --dst".into()));
        }
        let protocol = self.proto.as_deref().map(parse_protocol).transpose()?;
        let icmp_type = self.icmp_type.as_deref().map(parse_icmp_type).transpose()?;
        check_icmp_type(icmp_type, protocol, self.dport.is_some())?;
        let ports = self.dport.as_deref().map(parse_port_range).transpose()?;
        check_ports(ports, protocol)?;
        let tcp_flags = self.tcp_flags.as_deref().map(parse_tcp_flags).transpose()?;
        check_tcp_flags(tcp_flags, protocol)?;
        let protocol = protocol_with_tcp_flags(tcp_flags, protocol);
        let sources: Vec<_> = self
            .src
            .as_deref()
            .map(|list| {
                list.split(',')
                    .map(|one| parse_cidr(one.trim()))
                    .collect::<Result<_, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let destination = self.dst.as_deref().map(parse_cidr).transpose()?;
        let prefixes: Vec<_> = sources.iter().copied().chain(destination).collect();
        check_icmp_family(protocol, &prefixes)?;
        Ok(RuleSpec {
            id: 0,
            sources,
            destination,
            protocol,
            ports,
            icmp_type,
            tcp_flags,
            action,
            interface: self.iface.clone(),
            monitor: self.monitor,
            vni: self.vni.as_deref().map(parse_vni).transpose()?,
            owner: None,
            labels: {
                check_labels(&self.labels)?;
                self.labels.clone()
            },
        })
    }
}

/// Parses a rule's action: `drop` (or `deny`), `pass` (or `allow`),
/// `admit`.
pub fn parse_action(text: &str) -> Result<RuleAction, ControlError> {
    match text {
        "drop" | "deny" => Ok(RuleAction::Drop),
        "pass" | "allow" => Ok(RuleAction::Pass),
        "admit" => Ok(RuleAction::Admit),
        other => Err(ControlError::Usage(format!(
            "invalid action {} (expected drop, pass or admit)",
            quote(other)
        ))),
    }
}

/// One meaningful line of a rule file.
enum Line {
    /// A bare prefix: `--src PREFIX --action drop`.
    Prefix(Cidr),
    /// Arguments of `filter add`.
    Rule(RuleSpec),
}

/// A drop rule for a list of source prefixes.
fn bare_drop_rule(sources: Vec<Cidr>) -> RuleSpec {
    RuleSpec {
        id: 0,
        sources,
        destination: None,
        protocol: None,
        ports: None,
        icmp_type: None,
        tcp_flags: None,
        action: RuleAction::Drop,
        interface: None,
        monitor: false,
        vni: None,
        owner: None,
        labels: Default::default(),
    }
}

/// Parses one line; `None` for blank lines and comments.
fn parse_line(line: &str) -> Result<Option<Line>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    if !line.starts_with('-') && !line.contains(char::is_whitespace) {
        let source = parse_cidr(line).map_err(|error| error.to_string())?;
        return Ok(Some(Line::Prefix(source)));
    }
    let spec = rule_line_args(line)?
        .to_spec()
        .map_err(|error| error.to_string())?;
    Ok(Some(Line::Rule(spec)))
}

/// The options of `filter add` a rule line may carry, with whether each
/// takes a value; the names are [`RuleArgs`]' fields with `-` for `_`.
const LINE_OPTIONS: [(&str, bool); 11] = [
    ("src", true),
    ("dst", true),
    ("proto", true),
    ("dport", true),
    ("icmp-type", true),
    ("tcp-flags", true),
    ("action", true),
    ("iface", true),
    ("vni", true),
    ("monitor", false),
    ("override", false),
];

/// A rule line's `--option value` words (or `--option=value`) as the
/// request they spell, through [`RuleArgs`]' own deserializer, so a line
/// and an API body are read the same way.
fn rule_line_args(line: &str) -> Result<RuleArgs, String> {
    let mut fields = serde_json::Map::new();
    let mut words = line.split_whitespace();
    while let Some(word) = words.next() {
        let Some(option) = word.strip_prefix("--") else {
            return Err(format!("unexpected argument {}", quote(word)));
        };
        let (name, inline) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (option, None),
        };
        let Some((_, takes_value)) = LINE_OPTIONS.iter().find(|(known, _)| *known == name) else {
            let known: Vec<String> = LINE_OPTIONS
                .iter()
                .map(|(name, _)| format!("--{name}"))
                .collect();
            return Err(format!(
                "unknown option {} (expected one of {})",
                quote(word),
                known.join(", ")
            ));
        };
        let value = match (takes_value, inline) {
            (true, Some(value)) => serde_json::Value::from(value),
            (true, None) => match words.next() {
                Some(value) => serde_json::Value::from(value),
                None => return Err(format!("--{name} needs a value")),
            },
            (false, None) => serde_json::Value::Bool(true),
            (false, Some(_)) => return Err(format!("--{name} takes no value")),
        };
        if fields.insert(name.replace('-', "_"), value).is_some() {
            return Err(format!("--{name} is given twice"));
        }
    }
    if !fields.contains_key("action") {
        return Err("--action drop|pass is required".into());
    }
    serde_json::from_value(serde_json::Value::Object(fields)).map_err(|error| error.to_string())
}

/// What a rule file may be: a million-prefix feed of IPv6 `filter add`
/// lines is about 60 MiB; the longest useful line (every option, IPv6
/// prefixes) under 300 bytes.
pub const RULE_FILE_LIMITS: TextLimits = TextLimits {
    max_bytes: 256 << 20,
    max_line: 4096,
};

/// Reads a rule file into rules without ids (see the module docs).
pub fn read_rule_file(path: &Path) -> Result<Vec<RuleSpec>, ControlError> {
    let text = read_text(path, RULE_FILE_LIMITS)?;
    parse_rules(&text).map_err(|(line, message)| ControlError::Line {
        path: path.into(),
        line,
        message,
    })
}

/// Parses rule-file text; an error carries its 1-based line number.
pub fn parse_rules(text: &str) -> Result<Vec<RuleSpec>, (usize, String)> {
    let bare_shape = bare_drop_rule(Vec::new());
    let mut rules: Vec<RuleSpec> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let Some(line) = parse_line(line).map_err(|message| (index + 1, message))? else {
            continue;
        };
        let last = rules.last_mut().filter(|last| !last.sources.is_empty());
        match (line, last) {
            (Line::Prefix(source), Some(last)) if last.same_shape(&bare_shape) => {
                last.sources.push(source);
            }
            (Line::Prefix(source), _) => rules.push(bare_drop_rule(vec![source])),
            (Line::Rule(spec), Some(last))
                if !spec.sources.is_empty() && last.same_shape(&spec) =>
            {
                last.sources.extend_from_slice(&spec.sources);
            }
            (Line::Rule(spec), _) => rules.push(spec),
        }
    }
    Ok(rules)
}

/// What management traffic a deny rule would drop, if any: a management
/// prefix its sources overlap, or a management port in its explicit
/// port range.
pub fn management_conflict(rule: &RuleSpec, management: &Management) -> Option<String> {
    if rule.action != RuleAction::Drop {
        return None;
    }
    if let Some(ports) = rule.ports {
        if let Some(port) = management.ports.iter().find(|&&port| ports.contains(port)) {
            return Some(format!("management port {port}"));
        }
    }
    let first = management.prefixes.first()?;
    let any_source = rule.sources.is_empty() || rule.sources.iter().any(Cidr::is_any);
    if any_source {
        return Some(format!("management prefix {first}"));
    }
    if rule.sources.len() * management.prefixes.len() <= 1 << 16 {
        for source in &rule.sources {
            if let Some(prefix) = management.prefixes.iter().find(|m| m.overlaps(source)) {
                return Some(format!("management prefix {prefix} (source {source})"));
            }
        }
        return None;
    }
    // Many sources: probe by prefix length instead of all pairs.
    let set = |cidrs: &[Cidr]| -> (HashSet<(u8, [u8; 16])>, Vec<u8>) {
        let keys: HashSet<(u8, [u8; 16])> = cidrs
            .iter()
            .map(|c| (c.mapped_length(), c.address))
            .collect();
        let mut lengths: Vec<u8> = keys.iter().map(|(length, _)| *length).collect();
        lengths.sort_unstable();
        lengths.dedup();
        (keys, lengths)
    };
    let (rule_keys, rule_lengths) = set(&rule.sources);
    let (management_keys, management_lengths) = set(&management.prefixes);
    let covered = |cidr: &Cidr, keys: &HashSet<(u8, [u8; 16])>, lengths: &[u8]| {
        lengths
            .iter()
            .take_while(|&&length| length <= cidr.mapped_length())
            .any(|&length| keys.contains(&(length, mask(&cidr.address, length))))
    };
    if let Some(prefix) = management
        .prefixes
        .iter()
        .find(|m| covered(m, &rule_keys, &rule_lengths))
    {
        return Some(format!("management prefix {prefix}"));
    }
    rule.sources
        .iter()
        .find(|source| covered(source, &management_keys, &management_lengths))
        .map(|source| format!("source {source} is inside a management prefix"))
}

/// A filter state holding the rules of a file, numbered from 1 (for
/// `replay --rules`).
pub fn filter_state_from_file(path: &Path) -> Result<super::state::FilterState, ControlError> {
    let mut rules = read_rule_file(path)?;
    if rules.len() >= xdpath_core::filter::MAX_RULES as usize {
        return Err(super::compile::CompileError::TooManyRules { count: rules.len() }.into());
    }
    for (index, rule) in rules.iter_mut().enumerate() {
        rule.id = index as u32 + 1;
    }
    Ok(super::state::FilterState {
        next_rule_id: rules.len() as u32 + 1,
        rules,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_line_reads_as_the_api_body_would() {
        let args = rule_line_args("--src 10.0.0.0/8 --tcp-flags=syn,!ack --action drop --monitor")
            .expect("valid");
        assert_eq!(args.src.as_deref(), Some("10.0.0.0/8"));
        assert_eq!(args.tcp_flags.as_deref(), Some("syn,!ack"));
        assert_eq!(args.action.as_deref(), Some("drop"));
        assert!(args.monitor && !args.override_management);
        let args = rule_line_args("--dst 192.0.2.1 --action pass --override").expect("valid");
        assert!(args.override_management);
    }

    #[test]
    fn a_wrong_rule_line_says_what_is_wrong() {
        let error = |line| rule_line_args(line).expect_err(line);
        assert!(error("--src 10.0.0.0/8 --bogus --action pass").contains("unknown option"));
        assert!(error("--src 10.0.0.0/8 --action").contains("--action needs a value"));
        assert!(error("--src 10.0.0.0/8").contains("--action drop|pass is required"));
        assert!(error("--src a --src b --action drop").contains("--src is given twice"));
        assert!(error("--monitor=yes --action drop").contains("--monitor takes no value"));
        assert!(error("src 10.0.0.0/8 --action drop").contains("unexpected argument"));
    }

    #[test]
    fn an_icmp_type_needs_icmp_and_no_ports() {
        let spec = |line: &str| rule_line_args(line).expect(line).to_spec();
        let rule =
            spec("--src 10.0.0.0/8 --proto icmp --icmp-type 3/4 --action drop").expect("valid");
        assert_eq!(
            rule.icmp_type.map(|t| t.to_string()).as_deref(),
            Some("3/4")
        );
        let refused = |line: &str| spec(line).expect_err(line).to_string();
        assert!(refused("--src 10.0.0.0/8 --icmp-type 8 --action drop")
            .contains("needs protocol icmp or icmpv6"));
        assert!(
            refused("--src 10.0.0.0/8 --proto udp --icmp-type 8 --action drop")
                .contains("protocol \"udp\"")
        );
        assert!(
            refused("--src 10.0.0.0/8 --proto icmp --icmp-type 8 --dport 1 --action drop")
                .contains("exclude each other")
        );
        assert!(
            refused("--src 10.0.0.0/8 --proto icmp --icmp-type 256 --action drop")
                .contains("invalid ICMP type \"256\"")
        );
        // A state file written before the field reads as no ICMP type.
        let old: RuleSpec =
            serde_json::from_str(r#"{"id": 1, "sources": [], "protocol": 1, "action": "drop"}"#)
                .expect("an old rule");
        assert_eq!(old.icmp_type, None);
    }

    #[test]
    fn rule_files_merge_prefix_lines_and_number_their_errors() {
        let rules =
            parse_rules("# feed\n10.0.0.0/8\n10.1.0.0/16\n\n--dst 192.0.2.0/24 --action pass\n")
                .expect("valid");
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].sources.len(), 2);
        let (line, message) = parse_rules("10.0.0.0/8\n--src 10.0.0.300/8 --action drop\n")
            .expect_err("a bad prefix");
        assert_eq!(line, 2);
        assert!(message.contains("invalid CIDR"), "{message}");
    }

    /// The request every path shares (CLI, API, rule files) refuses ICMP
    /// with an IPv6 prefix and ICMPv6 with an IPv4 one: never a match.
    #[test]
    fn icmp_of_the_other_family_is_refused() {
        let rule = |src: &str, proto: &str| RuleArgs {
            src: Some(src.into()),
            proto: Some(proto.into()),
            action: Some("drop".into()),
            ..RuleArgs::default()
        };
        assert!(rule("192.0.2.0/24", "icmp").to_spec().is_ok());
        assert!(rule("2001:db8::/32", "icmpv6").to_spec().is_ok());
        // Sources of both families: it matches by the IPv4 ones.
        assert!(rule("192.0.2.0/24,2001:db8::/32", "icmp").to_spec().is_ok());
        for (src, proto, says) in [
            (
                "192.0.2.0/24",
                "icmpv6",
                "protocol icmpv6 is never carried by IPv4",
            ),
            (
                "2001:db8::/32",
                "icmp",
                "protocol icmp is never carried by IPv6",
            ),
        ] {
            let error = rule(src, proto).to_spec().expect_err(src).to_string();
            assert!(error.contains(says), "{src} {proto}: {error}");
        }
    }
}
