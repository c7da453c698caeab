//! `/metrics` in the Prometheus text format (0.0.4): counters per
//! interface, verdict and reason; per rule and rate limit; per VIP and
//! backend, with backends' weights; the connection table; the daemon's
//! config generation and apply errors.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use serde_json::Value;
use xdpath::control::parse::Labels;
use xdpath::control::session::Session;
use xdpath::control::ControlError;
use xdpath::lb::session::LbSession;
use xdpath::lb::views::{backend_rows, vip_rows};
use xdpath::{dataplane, stats};

use crate::error::ApiError;
use crate::shared::Shared;

/// One metric family being written.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Self { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (index, (key, text)) in labels.iter().enumerate() {
                if index > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape(text));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value with `\`, `"` and newlines escaped (the text format's
/// three escapes).
pub fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

/// The whole exposition.
pub fn render(shared: &Shared) -> Result<String, ApiError> {
    let mut out = String::new();
    interface_metrics(&mut out)?;
    filter_metrics(&mut out)?;
    lb_metrics(&mut out)?;
    crate::enforce::metrics(&mut out);
    let entries = crate::health::snapshot(&shared.health);
    let mut family = Family::new(
        &mut out,
        "xdpath_lb_backend_healthy",
        "gauge",
        "1 while a health-checked backend is in its VIP's table, 0 while it is out.",
    );
    for entry in &entries {
        let backend = entry.backend.to_string();
        let labels = [("vip", entry.vip.as_str()), ("backend", backend.as_str())];
        family.sample(
            "xdpath_lb_backend_healthy",
            &labels,
            u64::from(entry.healthy),
        );
    }
    let mut family = Family::new(
        &mut out,
        "xdpath_lb_health_checks_total",
        "counter",
        "Health probes of each backend since the daemon started.",
    );
    for entry in &entries {
        let backend = entry.backend.to_string();
        let labels = [("vip", entry.vip.as_str()), ("backend", backend.as_str())];
        family.sample("xdpath_lb_health_checks_total", &labels, entry.checks);
    }
    observe_metrics(&mut out, shared);
    let mut family = Family::new(
        &mut out,
        "xdpath_config_generation",
        "gauge",
        "Changes applied through this daemon since it started.",
    );
    family.sample(
        "xdpath_config_generation",
        &[],
        shared.generation.load(Ordering::Relaxed),
    );
    let mut family = Family::new(
        &mut out,
        "xdpath_apply_errors_total",
        "counter",
        "Changes refused or failed since the daemon started.",
    );
    family.sample(
        "xdpath_apply_errors_total",
        &[],
        shared.apply_errors.load(Ordering::Relaxed),
    );
    Ok(out)
}

fn interface_metrics(out: &mut String) -> Result<(), ApiError> {
    let mut rows = Vec::new();
    for name in dataplane::attached_interfaces().map_err(ControlError::from)? {
        let counters = dataplane::interface_counters(&name).map_err(ControlError::from)?;
        rows.push((name, stats::rows(&counters)));
    }
    // And those a user-space runtime serves (hostile obs F4: an interface
    // dropping traffic there was absent from the metrics).
    // (Not one the kernel program serves too: one series per interface.)
    for snapshot in xdpath::userspace::running_snapshots() {
        if rows.iter().all(|(name, _)| *name != snapshot.interface) {
            rows.push((
                snapshot.interface.clone(),
                stats::rows(&snapshot.counters()),
            ));
        }
    }
    for (metric, help, bytes) in [
        (
            "xdpath_packets_total",
            "Frames seen at XDP, by interface, verdict and reason.",
            false,
        ),
        (
            "xdpath_bytes_total",
            "Bytes of the frames seen at XDP, by interface, verdict and reason.",
            true,
        ),
    ] {
        let mut family = Family::new(out, metric, "counter", help);
        for (interface, counters) in &rows {
            for row in counters {
                let value = if bytes { row.bytes } else { row.packets };
                let labels = [
                    ("interface", interface.as_str()),
                    ("verdict", row.action),
                    ("reason", row.reason),
                ];
                family.sample(metric, &labels, value);
            }
        }
    }
    Ok(())
}

fn filter_metrics(out: &mut String) -> Result<(), ApiError> {
    let session = Session::read()?;
    let mut family = Family::new(
        out,
        "xdpath_rule_hits_total",
        "counter",
        "Frames matched by each filter rule.",
    );
    for rule in &session.state.rules {
        let id = rule.id.to_string();
        let labels = owned_labels(("rule", &id), rule.owner.as_deref(), &rule.labels);
        family.sample(
            "xdpath_rule_hits_total",
            &labels,
            session.rule_hits(rule.id)?,
        );
    }
    let mut family = Family::new(
        out,
        "xdpath_ratelimit_drops_total",
        "counter",
        "Frames dropped by each rate limit.",
    );
    let drops = session.limit_drops()?;
    for (limit, drops) in session.state.rate_limits.iter().zip(drops) {
        let id = limit.id.to_string();
        let labels = owned_labels(("limit", &id), limit.owner.as_deref(), &limit.labels);
        family.sample("xdpath_ratelimit_drops_total", &labels, drops);
    }
    Ok(())
}

/// A rule's or limit's labels: its id, its owner if it has one (for the
/// Neutron agent's, the port or floating IP it enforces), then its own
/// labels (checked when it was made: never `rule`, `limit` or `owner`).
fn owned_labels<'a>(
    id: (&'a str, &'a str),
    owner: Option<&'a str>,
    labels: &'a Labels,
) -> Vec<(&'a str, &'a str)> {
    let mut out = vec![id];
    out.extend(owner.map(|owner| ("owner", owner)));
    out.extend(
        labels
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str())),
    );
    out
}

fn lb_metrics(out: &mut String) -> Result<(), ApiError> {
    let session = LbSession::read()?;
    let (hits, misses) = session.connection_counters()?;
    let mut family = Family::new(
        out,
        "xdpath_lb_connection_lookups_total",
        "counter",
        "Connection-table lookups of the load balancer, by result.",
    );
    family.sample(
        "xdpath_lb_connection_lookups_total",
        &[("result", "hit")],
        hits,
    );
    family.sample(
        "xdpath_lb_connection_lookups_total",
        &[("result", "miss")],
        misses,
    );
    let vips = vip_rows(&session)?;
    let backends = backend_rows(&session, None)?;
    for (suffix, key, help) in [
        ("packets_total", "packets", "Frames sent on"),
        (
            "bytes_total",
            "bytes",
            "Bytes (before encapsulation) sent on",
        ),
        (
            "new_flows_total",
            "new_flows",
            "Flows placed by the Maglev table for",
        ),
    ] {
        let name = format!("xdpath_lb_vip_{suffix}");
        let mut family = Family::new(out, &name, "counter", &format!("{help} each VIP."));
        for vip in &vips {
            family.sample(
                &name,
                &[("vip", text(&vip["vip"]))],
                number(&vip["counters"][key]),
            );
        }
        let name = format!("xdpath_lb_backend_{suffix}");
        let mut family = Family::new(out, &name, "counter", &format!("{help} each backend."));
        for backend in &backends {
            let labels = [
                ("vip", text(&backend["vip"])),
                ("backend", text(&backend["backend"])),
            ];
            family.sample(&name, &labels, number(&backend["counters"][key]));
        }
    }
    vip_drop_metrics(out, &vips);
    let mut family = Family::new(
        out,
        "xdpath_lb_backend_weight",
        "gauge",
        "Each backend's weight (0: drained).",
    );
    for backend in &backends {
        let labels = [
            ("vip", text(&backend["vip"])),
            ("backend", text(&backend["backend"])),
        ];
        family.sample(
            "xdpath_lb_backend_weight",
            &labels,
            number(&backend["weight"]),
        );
    }
    Ok(())
}

/// Per VIP: frames not forwarded, by reason, and the connection-table
/// entries of its flows (an estimate of its active connections).
fn vip_drop_metrics(out: &mut String, vips: &[Value]) {
    let name = "xdpath_lb_vip_drops_total";
    let mut family = Family::new(
        out,
        name,
        "counter",
        "Frames to each VIP not forwarded, by reason (no_route: left to the stack).",
    );
    for vip in vips {
        for (reason, count) in vip["drops"].as_object().into_iter().flatten() {
            let labels = [("vip", text(&vip["vip"])), ("reason", reason.as_str())];
            family.sample(name, &labels, number(count));
        }
    }
    let name = "xdpath_lb_vip_active_connections";
    let mut family = Family::new(
        out,
        name,
        "gauge",
        "Connection-table entries of each VIP's flows whose backend lives: an estimate (ended flows stay until evicted).",
    );
    for vip in vips {
        family.sample(
            name,
            &[("vip", text(&vip["vip"]))],
            number(&vip["active_connections"]),
        );
    }
}

fn observe_metrics(out: &mut String, shared: &Shared) {
    let stats = crate::observe::stats(&shared.observer).unwrap_or_default();
    let counters: [(&str, &str, u64); 3] = [
        (
            "xdpath_samples_total",
            "Samples the daemon read from the data path.",
            stats.samples,
        ),
        (
            "xdpath_sample_ring_lost_total",
            "Samples the data path could not hand over: the ring was full.",
            stats.ring_lost,
        ),
        (
            "xdpath_mitigation_blocks_total",
            "Sources put on the blocklist by auto-mitigation.",
            shared.observer.blocks.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        Family::new(out, name, "counter", help).sample(name, &[], value);
    }
    let name = "xdpath_mitigation_reports_total";
    Family::new(
        out,
        name,
        "counter",
        "Mitigation actions only reported (dry run).",
    )
    .sample(name, &[], shared.observer.reports.load(Ordering::Relaxed));
    let name = "xdpath_export_datagrams_total";
    let mut family = Family::new(
        out,
        name,
        "counter",
        "Datagrams sent to collectors, per exporter.",
    );
    if let Some(sflow) = &stats.sflow {
        family.sample(name, &[("exporter", "sflow")], sflow.datagrams);
    }
    if let Some(ipfix) = &stats.ipfix {
        family.sample(name, &[("exporter", "ipfix")], ipfix.messages);
    }
    let name = "xdpath_export_records_total";
    let mut family = Family::new(
        out,
        name,
        "counter",
        "sFlow samples and IPFIX flow records sent, per exporter.",
    );
    if let Some(sflow) = &stats.sflow {
        family.sample(name, &[("exporter", "sflow")], sflow.samples);
    }
    if let Some(ipfix) = &stats.ipfix {
        family.sample(name, &[("exporter", "ipfix")], ipfix.records);
    }
    let name = "xdpath_export_send_errors_total";
    let mut family = Family::new(out, name, "counter", "Sends to collectors that failed.");
    if let Some(sflow) = &stats.sflow {
        family.sample(name, &[("exporter", "sflow")], sflow.send_errors);
    }
    if let Some(ipfix) = &stats.ipfix {
        family.sample(name, &[("exporter", "ipfix")], ipfix.send_errors);
    }
}
