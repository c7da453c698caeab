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

use clap::Parser;
use xdpath_core::filter::mask;

use super::parse::{parse_cidr, parse_port_range, parse_protocol, parse_tcp_flags, Cidr};
use super::state::{Management, RuleAction, RuleSpec};
use super::ControlError;
use crate::input::{read_text, TextLimits};
use crate::text::quote;

/// A new rule: the one request type of `xdpath filter add`, rule-file
/// lines and the API's `POST /v1/rules` body (JSON, the same field names;
/// `override` for `--override`). Values are parsed by
/// [`RuleArgs::to_spec`], for one-line errors.
#[derive(Clone, Debug, Default, clap::Args, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleArgs {
    /// Source prefix (IPv4 or IPv6 CIDR).
    #[arg(long, value_name = "CIDR")]
    pub src: Option<String>,
    /// Destination prefix.
    #[arg(long, value_name = "CIDR")]
    pub dst: Option<String>,
    /// Protocol: tcp, udp, icmp, icmpv6 or a number.
    #[arg(long, value_name = "PROTO")]
    pub proto: Option<String>,
    /// Destination port or range N-M (TCP and UDP).
    #[arg(long, value_name = "N[-M]")]
    pub dport: Option<String>,
    /// TCP flags that must be set or clear, e.g. `syn,!ack`.
    #[arg(long, value_name = "SPEC")]
    pub tcp_flags: Option<String>,
    /// drop or pass.
    #[arg(long, value_name = "drop|pass")]
    #[serde(deserialize_with = "required")]
    pub action: Option<String>,
    /// Only on this interface.
    #[arg(long, value_name = "IF")]
    pub iface: Option<String>,
    /// Count what the rule would drop without dropping.
    #[arg(long)]
    #[serde(default)]
    pub monitor: bool,
    /// Install a deny rule even if it covers management traffic.
    #[arg(long = "override")]
    #[serde(default, rename = "override")]
    pub override_management: bool,
}

/// A field an API body must have, though the CLI's flag is optional (so
/// that the CLI can say which flag is missing in its own words).
fn required<'de, D: serde::Deserializer<'de>>(from: D) -> Result<Option<String>, D::Error> {
    <String as serde::Deserialize>::deserialize(from).map(Some)
}

#[derive(Parser)]
#[command(no_binary_name = true, disable_help_flag = true)]
struct RuleLine {
    #[command(flatten)]
    args: RuleArgs,
}

impl RuleArgs {
    /// The rule (id 0: not yet given one).
    pub fn to_spec(&self) -> Result<RuleSpec, ControlError> {
        let action = match self.action.as_deref() {
            Some("drop") | Some("deny") => RuleAction::Drop,
            Some("pass") | Some("allow") => RuleAction::Pass,
            Some(other) => {
                return Err(ControlError::Usage(format!(
                    "invalid action {} (expected drop or pass)",
                    quote(other)
                )))
            }
            None => return Err(ControlError::Usage("--action drop|pass is required".into())),
        };
        if self.src.is_none() && self.dst.is_none() {
            return Err(ControlError::Usage("a rule needs --src or --dst".into()));
        }
        Ok(RuleSpec {
            id: 0,
            sources: self
                .src
                .as_deref()
                .map(parse_cidr)
                .transpose()?
                .into_iter()
                .collect(),
            destination: self.dst.as_deref().map(parse_cidr).transpose()?,
            protocol: self.proto.as_deref().map(parse_protocol).transpose()?,
            ports: self.dport.as_deref().map(parse_port_range).transpose()?,
            tcp_flags: self.tcp_flags.as_deref().map(parse_tcp_flags).transpose()?,
            action,
            interface: self.iface.clone(),
            monitor: self.monitor,
        })
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
        tcp_flags: None,
        action: RuleAction::Drop,
        interface: None,
        monitor: false,
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
    let parsed = RuleLine::try_parse_from(line.split_whitespace())
        .map_err(|error| crate::usage::clap_error_line(&error))?;
    let spec = parsed.args.to_spec().map_err(|error| error.to_string())?;
    Ok(Some(Line::Rule(spec)))
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
