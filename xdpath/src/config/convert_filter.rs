//! From the file's `[filter]` section to the filter's state, with the
//! CLI's parsers and the filter's own compiler, reporting every mistake
//! with its place.

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;

use super::report::{entry_field, entry_items, entry_request, items, unique};
use super::report::{Environment, Report};
use super::schema::{FilterSection, GuardSection, LimitEntry, MgmtSection, RuleEntry};
use super::values::Items;
use crate::api::Naming;
use crate::api::RuleArgs;
use crate::control::compile::{compile_limit, compile_rules, compile_settings, CompileError};
use crate::control::ops::check_limit;
use crate::control::parse::{
    check_icmp_family, check_icmp_type, check_labels, check_ports, check_tcp_flags, parse_cidr,
    parse_duration, parse_icmp_type, parse_port, parse_port_list, parse_port_range, parse_protocol,
    parse_tcp_flags, parse_vni, IcmpTypeSpec, PortRange, TcpFlagsSpec,
};
use crate::control::rulefile::{management_conflict, parse_action};
use crate::control::state::{
    BlockSpec, FilterState, Guards, LimitSpec, Management, RuleAction, RuleSpec,
};
use crate::control::{interface_index, ControlError};
use xdpath_core::filter::MAX_RULES;

/// The filter state the section asks for (none: the empty state).
pub(super) fn filter(
    section: Option<&Spanned<FilterSection>>,
    environment: &Environment,
    report: &mut Report<'_>,
) -> FilterState {
    let Some(section) = section else {
        return FilterState::default();
    };
    let item = section.get_ref();
    if item.default == Some(RuleAction::Admit) {
        report.error(
            Some(section.span()),
            "filter.default",
            "the default action is drop or pass (admit is a rule's)",
        );
    }
    let mut state = FilterState {
        default_action: item.default.unwrap_or_default(),
        default_monitor: item.default_monitor.unwrap_or(false),
        management: management(item.mgmt.as_ref(), report),
        guards: guards(item.guard.as_ref(), report),
        ..FilterState::default()
    };
    state.rules = rules(&item.rule, &state.management, environment, report);
    state.blocklist = blocklist(item, environment.now, report);
    state.rate_limits = limits(&item.ratelimit, report);
    state.next_rule_id = state
        .rules
        .iter()
        .map(|rule| rule.id + 1)
        .max()
        .unwrap_or(1);
    state.next_limit_id = state
        .rate_limits
        .iter()
        .map(|limit| limit.id.saturating_add(1))
        .max()
        .unwrap_or(1);
    if report.clean() {
        // What no single entry shows: sizes, prefix lengths, chains.
        let resolve = |name: &str| interface_index(name);
        let compiled = compile_rules(&state.rules, &resolve)
            .and_then(|rules| compile_settings(&state, &rules));
        if let Err(error) = compiled {
            report.error(Some(section.span()), "filter", error.to_string());
        }
    }
    state
}

fn rules(
    entries: &[Spanned<RuleEntry>],
    management: &Management,
    environment: &Environment,
    report: &mut Report<'_>,
) -> Vec<RuleSpec> {
    let mut ids: HashMap<u32, usize> = HashMap::new();
    let mut rules = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        if let Some(spec) = rule(entry, index, &mut ids, management, environment, report) {
            rules.push(spec);
        }
    }
    rules.sort_by_key(|rule| rule.id);
    rules
}

/// One `[[filter.rule]]` as a rule, with every mistake in it reported (none:
/// it has one, or no usable id).
fn rule(
    entry: &Spanned<RuleEntry>,
    index: usize,
    ids: &mut HashMap<u32, usize>,
    management: &Management,
    environment: &Environment,
    report: &mut Report<'_>,
) -> Option<RuleSpec> {
    let (path, item, at) = (
        format!("filter.rule[{index}]"),
        entry.get_ref(),
        entry.span(),
    );
    let args = &item.request;
    // A wrong or repeated id is reported; the rest is still checked.
    let id = item.extras.id.as_ref().map(|id| (*id.get_ref(), id.span()));
    check_rule_id(id.as_ref(), index, ids, &path, &at, report);
    let before = report.count();
    let sources = entry_items(report, item, &path, "src", args.src.as_deref(), parse_cidr);
    let destination = entry_field(report, item, &path, "dst", args.dst.as_deref(), parse_cidr);
    let protocol = entry_field(
        report,
        item,
        &path,
        "proto",
        args.proto.as_deref(),
        parse_protocol,
    );
    let ports = entry_field(
        report,
        item,
        &path,
        "dport",
        args.dport.as_deref(),
        parse_port_range,
    );
    let icmp_type = rule_icmp_type(item, &path, protocol, ports.is_some(), report);
    let flags = args.tcp_flags.as_deref();
    let tcp_flags = entry_field(report, item, &path, "tcp_flags", flags, parse_tcp_flags);
    check_rule_protocol(item, &path, protocol, ports, tcp_flags, report);
    let prefixes: Vec<_> = sources
        .iter()
        .flatten()
        .copied()
        .chain(destination)
        .collect();
    if let Err(error) = check_icmp_family(protocol, &prefixes) {
        report.error(
            item.span("proto"),
            format!("{path}.proto"),
            error.to_string(),
        );
    }
    let action = entry_field(
        report,
        item,
        &path,
        "action",
        args.action.as_deref(),
        parse_action,
    );
    let vni = entry_field(report, item, &path, "vni", args.vni.as_deref(), parse_vni);
    if let Err(error) = check_labels(&args.labels) {
        report.error(
            item.span("labels"),
            format!("{path}.labels"),
            error.to_string(),
        );
    }
    check_rule_interface(item, &path, environment, report);
    if args.src.is_none() && args.dst.is_none() {
        report.error(Some(at.clone()), &path, "a rule needs src or dst");
    }
    if report.count() > before {
        return None;
    }
    let id = id
        .map(|(id, _)| id)
        .filter(|id| (1..MAX_RULES).contains(id));
    let spec = RuleSpec {
        id: id.unwrap_or(1),
        sources: sources.unwrap_or_default(),
        destination,
        protocol,
        ports,
        icmp_type,
        tcp_flags,
        action: action?,
        interface: args.iface.clone(),
        monitor: args.monitor,
        vni,
        owner: None,
        labels: args.labels.clone(),
    };
    if !rule_installable(&spec, args, management, &path, at, report) {
        return None;
    }
    id.map(|_| spec)
}

/// Reports a rule id that is missing, out of range or used by an earlier
/// rule (recorded in `ids`).
fn check_rule_id(
    id: Option<&(u32, Range<usize>)>,
    index: usize,
    ids: &mut HashMap<u32, usize>,
    path: &str,
    at: &Range<usize>,
    report: &mut Report<'_>,
) {
    match id {
        None => report.missing(at.clone(), path, "id", "a rule id, 1-65535"),
        Some((id, span)) if *id == 0 || *id >= MAX_RULES => {
            let error = CompileError::RuleIdOutOfRange { id: *id };
            report.error(Some(span.clone()), format!("{path}.id"), error.to_string());
        }
        Some((id, span)) => {
            if let Some(first) = ids.insert(*id, index) {
                report.error(
                    Some(span.clone()),
                    format!("{path}.id"),
                    format!("rule id {id} is used twice (also filter.rule[{first}])"),
                );
            }
        }
    }
}

/// A rule's `icmp_type`, reported at that field when it does not parse or
/// does not fit the rule's protocol and ports.
fn rule_icmp_type(
    item: &RuleEntry,
    path: &str,
    protocol: Option<u8>,
    has_ports: bool,
    report: &mut Report<'_>,
) -> Option<IcmpTypeSpec> {
    let text = item.request.icmp_type.as_deref();
    let icmp_type = entry_field(report, item, path, "icmp_type", text, parse_icmp_type);
    if let Err(error) = check_icmp_type(icmp_type, protocol, has_ports) {
        let field = format!("{path}.icmp_type");
        report.error(item.span("icmp_type"), field, error.to_string());
    }
    icmp_type
}

/// Reports a rule's `dport` or `tcp_flags` that its protocol never has
/// (at that field). Not when the protocol did not parse (that is reported
/// already), nor ports beside an ICMP type (`rule_icmp_type` says it).
fn check_rule_protocol(
    item: &RuleEntry,
    path: &str,
    protocol: Option<u8>,
    ports: Option<PortRange>,
    tcp_flags: Option<TcpFlagsSpec>,
    report: &mut Report<'_>,
) {
    if item.request.proto.is_some() && protocol.is_none() {
        return;
    }
    if item.request.icmp_type.is_none() {
        if let Err(error) = check_ports(ports, protocol) {
            report.error(
                item.span("dport"),
                format!("{path}.dport"),
                error.to_string(),
            );
        }
    }
    if let Err(error) = check_tcp_flags(tcp_flags, protocol) {
        let field = format!("{path}.tcp_flags");
        report.error(item.span("tcp_flags"), field, error.to_string());
    }
}

/// Reports a rule's `iface` that names no interface on this host.
fn check_rule_interface(
    item: &RuleEntry,
    path: &str,
    environment: &Environment,
    report: &mut Report<'_>,
) {
    if let Some(name) = &item.request.iface {
        if !(environment.interface_exists)(name) {
            let error = ControlError::UnknownInterface { name: name.clone() };
            report.error(
                item.span("iface"),
                format!("{path}.iface"),
                error.to_string(),
            );
        }
    }
}

/// The checks of one rule (families, prefix counts, chains) and, unless it
/// overrides them, of management traffic; false after reporting a failure.
fn rule_installable(
    spec: &RuleSpec,
    args: &RuleArgs,
    management: &Management,
    path: &str,
    at: Range<usize>,
    report: &mut Report<'_>,
) -> bool {
    if let Err(error) = compile_rules(std::slice::from_ref(spec), &|_: &str| None) {
        report.error(Some(at), path, error.to_string());
        return false;
    }
    if !args.override_management {
        if let Some(what) = management_conflict(spec, management) {
            let message = format!("the rule would drop management traffic ({what}); set override = true to install it anyway");
            report.error(Some(at), path, message);
            return false;
        }
    }
    true
}

fn blocklist(section: &FilterSection, now: u64, report: &mut Report<'_>) -> Vec<BlockSpec> {
    let mut seen = Vec::new();
    let mut list = Vec::new();
    for (index, entry) in section.block.iter().enumerate() {
        let (path, item) = (format!("filter.block[{index}]"), entry.get_ref());
        let request = &item.request;
        let prefix = entry_field(
            report,
            item,
            &path,
            "prefix",
            Some(&request.prefix),
            parse_cidr,
        );
        let ttl = entry_field(
            report,
            item,
            &path,
            "ttl",
            request.ttl.as_deref(),
            parse_duration,
        );
        let vni = entry_field(
            report,
            item,
            &path,
            "vni",
            request.vni.as_deref(),
            parse_vni,
        );
        let Some(prefix) = prefix else { continue };
        if (request.ttl.is_some() && ttl.is_none()) || (request.vni.is_some() && vni.is_none()) {
            continue;
        }
        let span = item.span("prefix").unwrap_or(entry.span());
        let shown = match vni {
            Some(vni) => format!("{prefix} (VNI {vni})"),
            None => prefix.to_string(),
        };
        seen.push((shown, span, format!("{path}.prefix")));
        list.push(BlockSpec {
            prefix,
            expires_at: ttl.map(|seconds| now.saturating_add(seconds)),
            vni,
        });
    }
    unique(report, &seen, "prefix");
    list
}

/// Why a config file names no owner: an owner's VIPs and limits are its
/// document's (`PUT /v1/owners/{owner}`), which a config leaves alone.
pub(super) const OWNED_HERE: &str =
    "an owner's VIPs and limits come from its document (PUT /v1/owners/OWNER), not from a config file";

fn limits(entries: &[Spanned<LimitEntry>], report: &mut Report<'_>) -> Vec<LimitSpec> {
    let mut ids: Vec<(u32, Range<usize>, String)> = Vec::new();
    let mut limits = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let (path, item, at) = (
            format!("filter.ratelimit[{index}]"),
            entry.get_ref(),
            entry.span(),
        );
        let before = report.count();
        let id = match &item.extras.id {
            None => {
                report.missing(at.clone(), &path, "id", "a rate-limit id, from 1");
                0
            }
            Some(id) if *id.get_ref() == 0 => {
                report.error(
                    Some(id.span()),
                    format!("{path}.id"),
                    "rate-limit ids start at 1",
                );
                0
            }
            Some(id) => {
                ids.push((*id.get_ref(), id.span(), format!("{path}.id")));
                *id.get_ref()
            }
        };
        let spec = entry_request(report, entry, &path, |args| {
            check_limit(args, id, Naming::Fields)
        });
        if report.count() > before {
            continue;
        }
        let Some(spec) = spec else { continue };
        if let Some(span) = item.span("owner") {
            report.error(Some(span), format!("{path}.owner"), OWNED_HERE);
            continue;
        }
        match compile_limit(&spec) {
            Ok(_) => limits.push(spec),
            Err(error) => report.error(Some(at), &path, error.to_string()),
        }
    }
    unique(report, &ids, "rate-limit id");
    limits
}

/// Ports as `53`, `1900-1910` or `53,123` in a string.
fn port_items(
    report: &mut Report<'_>,
    list: &Option<Spanned<Items>>,
    path: &str,
) -> Option<Vec<PortRange>> {
    items(report, list, path, parse_port_list)
        .map(|lists| lists.into_iter().flat_map(|(ports, _, _)| ports).collect())
}

fn guards(section: Option<&GuardSection>, report: &mut Report<'_>) -> Guards {
    let mut guards = Guards::default();
    let Some(section) = section else {
        return guards;
    };
    guards.tcp_flags = section.tcp_flags.unwrap_or(false);
    if let Some(amplification) = &section.amplification {
        let guard = &mut guards.amplification;
        guard.enabled = amplification.enabled.unwrap_or(true);
        let path = "filter.guard.amplification";
        if let Some(ports) = port_items(report, &amplification.ports, &format!("{path}.ports")) {
            guard.ports = ports;
        }
        let expect = items(
            report,
            &amplification.expect,
            &format!("{path}.expect"),
            parse_cidr,
        );
        guard.expect = expect
            .unwrap_or_default()
            .into_iter()
            .map(|(cidr, _, _)| cidr)
            .collect();
    }
    if let Some(fragments) = &section.fragments {
        guards.fragments_v4 = fragments.v4.unwrap_or_default();
        guards.fragments_v6 = fragments.v6.unwrap_or_default();
    }
    if let Some(cookies) = &section.syn_cookies {
        guards.syn_cookies.enabled = cookies.enabled.unwrap_or(true);
        let path = "filter.guard.syn_cookies.ports";
        guards.syn_cookies.ports = port_items(report, &cookies.ports, path).unwrap_or_default();
    }
    guards
}

fn management(section: Option<&MgmtSection>, report: &mut Report<'_>) -> Management {
    let Some(section) = section else {
        return Management::default();
    };
    let prefixes = items(
        report,
        &section.prefixes,
        "filter.mgmt.prefixes",
        parse_cidr,
    )
    .unwrap_or_default();
    unique(report, &prefixes, "prefix");
    let ports = items(report, &section.ports, "filter.mgmt.ports", parse_port).unwrap_or_default();
    unique(report, &ports, "port");
    Management {
        prefixes: prefixes.into_iter().map(|(prefix, _, _)| prefix).collect(),
        ports: ports.into_iter().map(|(port, _, _)| port).collect(),
    }
}
