//! One-line descriptions of what a plan changes, in the config's
//! vocabulary (`src 10.0.0.0/8 proto tcp dport 22 action pass`).

use std::fmt;

use crate::control::parse::{protocol_name, PortRange};
use crate::control::state::{BlockSpec, Guards, LimitSpec, RuleAction, RuleSpec};
use crate::control::wall_now;
use crate::lb::state::{Encap, LbSettings, VipSpec};

use super::{Action, Plan};
use crate::config::{InterfaceSpec, Malformed};

/// Sources shown before the rest are counted.
const SHOWN_SOURCES: usize = 4;

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// `mode auto, malformed drop, monitor off`, with `decap` and its GUE port.
pub(super) fn interface(spec: &InterfaceSpec) -> String {
    if spec.stale {
        return "interface gone (stale pins)".into();
    }
    let malformed = match spec.malformed {
        Malformed::Pass => "pass",
        Malformed::Drop => "drop",
    };
    let mut text = format!(
        "mode {}, malformed {malformed}, monitor {}",
        spec.mode.name(),
        on_off(spec.monitor)
    );
    if spec.decap {
        text.push_str(", decap");
        if spec.gue_port != 0 {
            text.push_str(&format!(" gue_port {}", spec.gue_port));
        }
    }
    if spec.sample_rate != 0 {
        text.push_str(&format!(", sample 1 in {}", spec.sample_rate));
    }
    if spec.forward {
        text.push_str(", forward");
    }
    if spec.steer {
        text.push_str(", steer");
    }
    text
}

/// A rule as its config fields.
pub(super) fn rule(rule: &RuleSpec) -> String {
    let mut parts = Vec::new();
    if !rule.sources.is_empty() {
        let shown: Vec<String> = rule
            .sources
            .iter()
            .take(SHOWN_SOURCES)
            .map(ToString::to_string)
            .collect();
        let mut sources = shown.join(",");
        if rule.sources.len() > SHOWN_SOURCES {
            sources.push_str(&format!(" (+{} more)", rule.sources.len() - SHOWN_SOURCES));
        }
        parts.push(format!("src {sources}"));
    }
    if let Some(destination) = rule.destination {
        parts.push(format!("dst {destination}"));
    }
    if let Some(protocol) = rule.protocol {
        parts.push(format!("proto {}", protocol_name(protocol)));
    }
    if let Some(ports) = rule.ports {
        parts.push(format!("dport {ports}"));
    }
    if let Some(icmp_type) = rule.icmp_type {
        parts.push(format!("icmp_type {icmp_type}"));
    }
    if let Some(flags) = rule.tcp_flags {
        parts.push(format!("tcp_flags {flags}"));
    }
    parts.push(format!("action {}", rule.action.name()));
    if let Some(interface) = &rule.interface {
        parts.push(format!("iface {interface}"));
    }
    if rule.monitor {
        parts.push("monitor".into());
    }
    if let Some(vni) = rule.vni {
        parts.push(format!("vni {vni}"));
    }
    if !rule.labels.is_empty() {
        parts.push(format!("labels {}", label_text(&rule.labels)));
    }
    parts.join(" ")
}

/// `pass` or `drop`, `(monitor)`.
pub(super) fn default(action: RuleAction, monitor: bool) -> String {
    if monitor && action == RuleAction::Drop {
        "drop (monitor)".into()
    } else {
        action.name().into()
    }
}

/// `no expiry` or `expires in 3600s`.
pub(super) fn block(block: &BlockSpec) -> String {
    match block.expires_at {
        None => "no expiry".into(),
        Some(at) => format!("expires in {}s", at.saturating_sub(wall_now())),
    }
}

/// A rate limit as its config fields.
pub(super) fn limit(limit: &LimitSpec) -> String {
    let mut parts = Vec::new();
    if let Some(pps) = limit.packets_per_second {
        parts.push(format!("pps {pps} burst {}", limit.burst_packets));
    }
    if let Some(bps) = limit.bytes_per_second {
        parts.push(format!("bps {bps} burst_bytes {}", limit.burst_bytes));
    }
    parts.push(format!(
        "per {} aggregate_v4 {} aggregate_v6 {}",
        if limit.per == crate::control::state::LimitKey::Dst {
            "dst"
        } else {
            "src"
        },
        limit.aggregate_v4,
        limit.aggregate_v6
    ));
    if let Some(scope) = limit.scope {
        parts.push(format!("scope {scope}"));
    }
    if let Some(protocol) = limit.protocol {
        parts.push(format!("proto {}", protocol_name(protocol)));
    }
    if limit.syn_only {
        parts.push("syn".into());
    }
    if limit.monitor {
        parts.push("monitor".into());
    }
    if let Some(vni) = limit.vni {
        parts.push(format!("vni {vni}"));
    }
    if !limit.labels.is_empty() {
        parts.push(format!("labels {}", label_text(&limit.labels)));
    }
    parts.join(" ")
}

/// Ids in order, `3,1,2`.
pub(super) fn ids(ids: &[u32]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn ports(list: &[PortRange]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Each guard, before and after: (name, old, new).
pub(super) fn guards(old: &Guards, new: &Guards) -> Vec<(&'static str, String, String)> {
    let amplification = |guards: &Guards| {
        let guard = &guards.amplification;
        let expect: Vec<String> = guard.expect.iter().map(ToString::to_string).collect();
        format!(
            "{}, ports {}, expect [{}]",
            on_off(guard.enabled),
            ports(&guard.ports),
            expect.join(",")
        )
    };
    let cookies = |guards: &Guards| {
        let guard = &guards.syn_cookies;
        format!("{}, ports {}", on_off(guard.enabled), ports(&guard.ports))
    };
    vec![
        (
            "tcp_flags",
            on_off(old.tcp_flags).into(),
            on_off(new.tcp_flags).into(),
        ),
        ("amplification", amplification(old), amplification(new)),
        (
            "fragments.v4",
            old.fragments_v4.name().into(),
            new.fragments_v4.name().into(),
        ),
        (
            "fragments.v6",
            old.fragments_v6.name().into(),
            new.fragments_v6.name().into(),
        ),
        ("syn_cookies", cookies(old), cookies(new)),
    ]
}

/// Each balancer setting, before and after: (name, old, new).
pub(super) fn settings(old: &LbSettings, new: &LbSettings) -> Vec<(&'static str, String, String)> {
    let prefix = |prefix: &Option<crate::control::parse::Cidr>| {
        prefix.map_or("none".into(), |prefix| prefix.to_string())
    };
    let hop = |settings: &LbSettings| {
        settings
            .next_hop_mac
            .clone()
            .unwrap_or_else(|| "fib".into())
    };
    vec![
        ("source_v4", prefix(&old.source_v4), prefix(&new.source_v4)),
        ("source_v6", prefix(&old.source_v6), prefix(&new.source_v6)),
        ("next_hop", hop(old), hop(new)),
        ("seed", old.seed.to_string(), new.seed.to_string()),
        (
            "connection_table",
            old.connection_table.to_string(),
            new.connection_table.to_string(),
        ),
        ("mtu", old.mtu.to_string(), new.mtu.to_string()),
    ]
}

/// A VIP's options (not its backends): `encap gue gue_port 6080 ring_size
/// 65537 flags source-hash`.
pub(super) fn vip(vip: &VipSpec) -> String {
    let mut text = format!("encap {}", vip.encap.name());
    if vip.encap == Encap::Gue {
        text.push_str(&format!(" gue_port {}", vip.gue_port));
    }
    text.push_str(&format!(" ring_size {}", vip.ring_size));
    let flags: Vec<&str> = [
        (vip.source_hash, "source-hash"),
        (vip.no_conntrack, "no-conntrack"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect();
    if !flags.is_empty() {
        text.push_str(&format!(" flags {}", flags.join(",")));
    }
    if let Some(check) = &vip.health {
        let port = if check.port == 0 {
            String::new()
        } else {
            format!(" port {}", check.port)
        };
        let probe = match check.kind {
            crate::lb::state::CheckKind::Http => {
                format!("http GET {} -> {}", check.path, check.codes_text())
            }
            other => other.name().to_string(),
        };
        text.push_str(&format!(
            " health {probe}{port} every {} ms timeout {} ms rise {} fall {}",
            check.interval_ms, check.timeout_ms, check.rise, check.fall
        ));
    }
    if !vip.allow.is_empty() {
        let allow: Vec<String> = vip.allow.iter().map(ToString::to_string).collect();
        text.push_str(&format!(" allow {}", allow.join(",")));
    }
    text
}

fn sigil(action: Action) -> char {
    match action {
        Action::Add => '+',
        Action::Remove => '-',
        Action::Change => '~',
    }
}

impl fmt::Display for Plan {
    /// One line per change, `+ what key: to`, `- what key: from`, `~ what
    /// key: from -> to`; or a line saying there is nothing to change.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(formatter, "no changes: the data path matches the config");
        }
        for change in self.changes() {
            let head = if change.key.is_empty() {
                format!("{} {}", sigil(change.action), change.what)
            } else {
                format!("{} {} {}", sigil(change.action), change.what, change.key)
            };
            match (&change.from, &change.to) {
                (Some(from), Some(to)) => writeln!(formatter, "{head}: {from} -> {to}")?,
                (Some(text), None) | (None, Some(text)) => writeln!(formatter, "{head}: {text}")?,
                (None, None) => writeln!(formatter, "{head}")?,
            }
        }
        for line in &self.kernel {
            writeln!(formatter, "! kernel {line}")?;
        }
        Ok(())
    }
}

/// Labels as `key=value,key=value`.
fn label_text(labels: &crate::control::parse::Labels) -> String {
    labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}
