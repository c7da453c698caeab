//! The balancer's tables, drawn from the JSON rows of
//! [`xdpath::lb::views`] (what `--json` prints and the API answers).

use serde_json::{json, Value};
use xdpath_core::abi;

pub fn print_vips(rows: &[Value]) {
    if rows.is_empty() {
        println!("no VIPs");
        return;
    }
    println!(
        "{:<32} {:<10} {:<24} {:>6} {:>8} {:>12} {:>14} {:>10} {:>10} {:>8}",
        "VIP",
        "ENCAP",
        "FLAGS",
        "RING",
        abi::map::BACKENDS,
        "PACKETS",
        "BYTES",
        "NEW_FLOWS",
        "ACTIVE",
        "DROPS"
    );
    for row in rows {
        let encap = match row["gue_port"].as_u64() {
            Some(port) => format!("gue:{port}"),
            None => "ipip".into(),
        };
        let drops: u64 = row["drops"]
            .as_object()
            .map_or(0, |drops| drops.values().filter_map(Value::as_u64).sum());
        println!(
            "{:<32} {:<10} {:<24} {:>6} {:>8} {:>12} {:>14} {:>10} {:>10} {:>8}",
            text(&row["vip"]),
            encap,
            text(&row["flags"]),
            text(&row["ring_size"]),
            text(&row["backends"]),
            text(&row["counters"]["packets"]),
            text(&row["counters"]["bytes"]),
            text(&row["counters"]["new_flows"]),
            text(&row["active_connections"]),
            drops,
        );
        if let Some(rate) = row["sample_rate"].as_u64() {
            println!("    sampled 1 in {rate} (its own rate)");
        }
        if let Some(allow) = row["allow"].as_array().filter(|allow| !allow.is_empty()) {
            let prefixes: Vec<String> = allow.iter().map(text).collect();
            println!("    allow {}", prefixes.join(" "));
        }
    }
}

pub fn print_backends(rows: &[Value]) {
    if rows.is_empty() {
        println!("no backends");
        return;
    }
    println!(
        "{:<32} {:<40} {:>6} {:>7} {:<8} {:>12} {:>14} {:>10}",
        "VIP", "BACKEND", "WEIGHT", "SHARE", "STATE", "PACKETS", "BYTES", "NEW_FLOWS"
    );
    for row in rows {
        println!(
            "{:<32} {:<40} {:>6} {:>6.2}% {:<8} {:>12} {:>14} {:>10}",
            text(&row["vip"]),
            text(&row["backend"]),
            text(&row["weight"]),
            row["table_share"].as_f64().unwrap_or(0.0) * 100.0,
            text(&row["state"]),
            text(&row["counters"]["packets"]),
            text(&row["counters"]["bytes"]),
            text(&row["counters"]["new_flows"]),
        );
    }
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string)
}

/// Pretty JSON on stdout; a closed pipe (`| head`) is not an error.
pub fn print_json(value: &Value) {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// A one-line confirmation.
pub fn done(message: &str, json: bool) {
    if json {
        print_json(&json!({ "ok": true, "message": message }));
    } else {
        println!("{message}");
    }
}

/// `lb config`.
pub fn print_settings(value: &Value, json: bool) {
    if json {
        print_json(value);
        return;
    }
    for key in [
        "source_v4",
        "source_v6",
        "next_hop",
        "seed",
        "connection_table",
        "mtu",
    ] {
        let shown = match &value[key] {
            Value::Number(mtu) if key == "mtu" && mtu.as_u64() == Some(0) => "device".into(),
            Value::String(text) => text.clone(),
            Value::Null => "none".into(),
            other => other.to_string(),
        };
        println!("{key:<10} {shown}");
    }
}

/// `lb vip table`: size, digest and slots per backend.
pub fn print_table(value: &Value, json: bool) {
    if json {
        print_json(value);
        return;
    }
    if value["in_kernel"] == Value::Bool(false) {
        println!(
            "{}: not in the kernel's maps (the state has it; no table is live)",
            text(&value["vip"])
        );
        return;
    }
    println!(
        "{}: {} slots, digest {}",
        text(&value["vip"]),
        text(&value["size"]),
        text(&value["digest"])
    );
    if let Some(backends) = value["backends"].as_object() {
        for (backend, slots) in backends {
            println!("  {backend:<40} {:>6} slots", text(slots));
        }
    }
}
