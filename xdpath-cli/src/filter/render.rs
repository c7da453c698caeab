//! Tables and JSON of the control commands.

use std::time::Duration;

use serde_json::{json, Value};

use xdpath::control::parse::{protocol_name, PortRange};
use xdpath::control::state::{
    BlockSpec, FilterState, Guards, LimitKey, LimitSpec, Management, RuleSpec,
};
use xdpath::control::views::{block_remaining, block_rows, limit_json, rule_json};

/// Pretty JSON on stdout; a closed pipe (`| head`) is not an error.
fn print_json(value: &Value) {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// A new id: the bare number, or `{"id": N}`.
pub fn print_id(id: u32, json: bool) {
    if json {
        print_json(&json!({ "id": id }));
    } else {
        println!("{id}");
    }
}

/// A one-line confirmation.
pub fn print_done(message: &str, json: bool) {
    if json {
        print_json(&json!({ "ok": true, "message": message }));
    } else {
        println!("{message}");
    }
}

fn sources_text(rule: &RuleSpec) -> String {
    match rule.sources.as_slice() {
        [] => "any".into(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (+{} more)", rest.len()),
    }
}

/// `filter list`.
pub fn print_rules(state: &FilterState, hits: &[u64], json: bool) {
    if json {
        let rules: Vec<Value> = state
            .rules
            .iter()
            .zip(hits)
            .map(|(rule, hits)| rule_json(rule, *hits))
            .collect();
        print_json(&json!({
            "default": { "action": state.default_action.name(), "monitor": state.default_monitor },
            "rules": rules,
        }));
        return;
    }
    println!(
        "default: {}{}",
        state.default_action.name(),
        if state.default_monitor {
            " (monitor)"
        } else {
            ""
        }
    );
    // The VNI column only when a rule has one: the inner headers of
    // tunnelled frames in that VNI (`-`: the outer headers).
    let tunnels = state.rules.iter().any(|rule| rule.vni.is_some());
    let vni_column = |text: String| {
        if tunnels {
            format!(" {text:<8}")
        } else {
            String::new()
        }
    };
    println!(
        "{:>5} {:<6} {:<34} {:<20} {:<6} {:<11} {:<9} {:<8}{} {:>12}",
        "ID",
        "ACTION",
        "SOURCE",
        "DESTINATION",
        "PROTO",
        "DPORT",
        "FLAGS",
        "IFACE",
        vni_column("VNI".into()),
        "HITS"
    );
    for (rule, hits) in state.rules.iter().zip(hits) {
        let or_any = |text: Option<String>| text.unwrap_or_else(|| "any".into());
        println!(
            "{:>5} {:<6} {:<34} {:<20} {:<6} {:<11} {:<9} {:<8}{} {:>12}",
            rule.id,
            format!(
                "{}{}",
                rule.action.name(),
                if rule.monitor { "*" } else { "" }
            ),
            sources_text(rule),
            or_any(rule.destination.map(|cidr| cidr.to_string())),
            or_any(rule.protocol.map(protocol_name)),
            or_any(match_text(rule)),
            rule.tcp_flags.map_or("-".into(), |flags| flags.to_string()),
            rule.interface.as_deref().unwrap_or("*"),
            vni_column(rule.vni.map_or("-".into(), |vni| vni.to_string())),
            hits
        );
    }
    if state.rules.iter().any(|rule| rule.monitor) {
        println!("(* monitor: counted, not dropped)");
    }
}

/// The DPORT column: the port range, or `type T[/C]` for an ICMP rule.
fn match_text(rule: &RuleSpec) -> Option<String> {
    let icmp_type = rule.icmp_type.map(|icmp_type| format!("type {icmp_type}"));
    rule.ports.map(|ports| ports.to_string()).or(icmp_type)
}

/// `filter load`.
pub fn print_loaded(rules: usize, prefixes: usize, elapsed: Duration, json: bool) {
    if json {
        print_json(&json!({
            "rules": rules, "prefixes": prefixes, "seconds": elapsed.as_secs_f64(),
        }));
    } else {
        println!(
            "loaded {rules} rules ({prefixes} prefixes) in {:.3} s",
            elapsed.as_secs_f64()
        );
    }
}

/// `block list`.
pub fn print_blocklist(list: &[BlockSpec], now: u64, json: bool) {
    if json {
        print_json(&Value::Array(block_rows(list, now)));
        return;
    }
    println!("{:<44} {:>12} {:>9}", "PREFIX", "TTL", "VNI");
    for entry in list
        .iter()
        .filter(|entry| entry.expires_at.is_none_or(|at| at > now))
    {
        let ttl =
            block_remaining(entry, now).map_or("never".into(), |seconds| format!("{seconds}s"));
        let vni = entry.vni.map_or("-".into(), |vni| vni.to_string());
        println!("{:<44} {:>12} {:>9}", entry.prefix.to_string(), ttl, vni);
    }
}

/// `ratelimit list`.
pub fn print_limits(limits: &[LimitSpec], drops: &[u64], json: bool) {
    let in_table: Vec<bool> = xdpath::control::compile::limit_places(limits)
        .iter()
        .map(|place| matches!(place, xdpath::control::compile::LimitPlace::Address(_)))
        .collect();
    if json {
        let values: Vec<Value> = limits
            .iter()
            .zip(drops)
            .zip(&in_table)
            .map(|((limit, drops), in_table)| limit_json(limit, *drops, *in_table))
            .collect();
        print_json(&Value::Array(values));
        return;
    }
    println!(
        "{:>4} {:<24} {:<28} {:<4} {:<9} {:<20} {:>12}  OWNER",
        "ID", "PACKETS/S (BURST)", "BYTES/S (BURST)", "PER", "AGG", "MATCH", "DROPS"
    );
    for ((limit, drops), in_table) in limits.iter().zip(drops).zip(&in_table) {
        let rate = |rate: Option<u64>, burst: u64| {
            rate.map_or("-".into(), |rate| format!("{rate} ({burst})"))
        };
        let mut matching = Vec::new();
        if let Some(scope) = limit.scope {
            matching.push(scope.to_string());
        }
        if let Some(protocol) = limit.protocol {
            matching.push(protocol_name(protocol));
        }
        if limit.syn_only {
            matching.push("syn".into());
        }
        if let Some(vni) = limit.vni {
            matching.push(format!("vni {vni}"));
        }
        if limit.monitor {
            matching.push("monitor".into());
        }
        if *in_table {
            matching.push("table".into());
        }
        println!(
            "{:>4} {:<24} {:<28} {:<4} {:<9} {:<20} {:>12}  {}",
            limit.id,
            rate(limit.packets_per_second, limit.burst_packets),
            rate(limit.bytes_per_second, limit.burst_bytes),
            match limit.per {
                LimitKey::Src => "src",
                LimitKey::Dst => "dst",
            },
            format!("/{} /{}", limit.aggregate_v4, limit.aggregate_v6),
            if matching.is_empty() {
                "all".into()
            } else {
                matching.join(",")
            },
            drops,
            // Who made it (an Octavia load balancer, a Neutron floating
            // IP or port), or "-": the operator.
            limit.owner.as_deref().unwrap_or("-")
        );
    }
}

/// `guard ...`.
pub fn print_guards(guards: &Guards, json: bool) {
    if json {
        print_json(&serde_json::to_value(guards).unwrap_or(Value::Null));
        return;
    }
    let on = |enabled: bool| if enabled { "on" } else { "off" };
    let ports = |ranges: &[PortRange]| {
        ranges
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    println!("tcp-flags:     {}", on(guards.tcp_flags));
    let amplification = &guards.amplification;
    println!(
        "amplification: {} (ports {}; expect {})",
        on(amplification.enabled),
        ports(&amplification.ports),
        if amplification.expect.is_empty() {
            "none".into()
        } else {
            amplification
                .expect
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    );
    println!(
        "fragments:     v4 {}, v6 {}",
        guards.fragments_v4.name(),
        guards.fragments_v6.name()
    );
    println!(
        "syn-cookies:   {} (ports {})",
        on(guards.syn_cookies.enabled),
        ports(&guards.syn_cookies.ports)
    );
}

/// `mgmt ...`.
pub fn print_management(management: &Management, json: bool) {
    if json {
        print_json(&serde_json::to_value(management).unwrap_or(Value::Null));
        return;
    }
    println!("{:<8} VALUE", "KIND");
    for prefix in &management.prefixes {
        println!("{:<8} {prefix}", "prefix");
    }
    for port in &management.ports {
        println!("{:<8} {port}", "port");
    }
}
