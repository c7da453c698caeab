//! The observability part of a config: `[export.sflow]`, `[export.ipfix]`,
//! `[analytics]` and `[mitigation]`. These run in `xdpathd` (its sample
//! consumer); `apply` keeps them in the namespace's state directory
//! (`observe.json`), where the daemon picks up every change.
//!
//! ```toml
//! [export.sflow]
//! collectors = ["192.0.2.1:6343"]
//! agent = "192.0.2.10"          # default: the host's first address
//! sub_agent_id = 0
//! counter_interval = "20s"
//!
//! [export.ipfix]
//! collectors = ["192.0.2.1:4739"]
//! observation_domain = 1
//! active_timeout = "60s"
//! idle_timeout = "15s"
//! template_refresh = "60s"
//!
//! [analytics]
//! top_window = "10s"
//!
//! [mitigation]
//! threshold_pps = 50000         # per source (or prefix) over `window`
//! window = "2s"
//! prefix_v4 = 32
//! prefix_v6 = 128
//! ttl = "5m"
//! dry_run = true
//! exempt = ["10.0.0.0/8"]
//! ```

use crate::control::parse::MAX_DURATION_SECONDS;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::report::Report;
use super::report::{field, items, unique};
use super::values::Items;
use crate::observe::engine::{EngineConfig, IpfixSettings, SflowSettings};
use crate::observe::mitigate::MitigationConfig;

/// The file the observability settings are kept in, in a namespace's
/// state directory.
pub const OBSERVE_STATE_FILE: &str = "observe.json";

/// `[export]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSection {
    /// `[export.sflow]`.
    pub sflow: Option<Spanned<SflowEntry>>,
    /// `[export.ipfix]`.
    pub ipfix: Option<Spanned<IpfixEntry>>,
}

/// `[export.sflow]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SflowEntry {
    /// `ADDRESS:PORT` of each collector (required).
    pub collectors: Option<Spanned<Items>>,
    /// The agent address.
    pub agent: Option<Spanned<String>>,
    /// The sub-agent id.
    pub sub_agent_id: Option<u32>,
    /// Between counter samples, e.g. `20s` (the default).
    pub counter_interval: Option<Spanned<String>>,
}

/// `[export.ipfix]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpfixEntry {
    /// `ADDRESS:PORT` of each collector (required).
    pub collectors: Option<Spanned<Items>>,
    /// The observation domain id.
    pub observation_domain: Option<u32>,
    /// An active flow is reported this often (default `60s`).
    pub active_timeout: Option<Spanned<String>>,
    /// A flow with no sample for this long ends (default `15s`).
    pub idle_timeout: Option<Spanned<String>>,
    /// Templates are sent again this often (default `60s`).
    pub template_refresh: Option<Spanned<String>>,
}

/// `[analytics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsSection {
    /// The top-talker window (default `10s`).
    pub top_window: Option<Spanned<String>>,
}

/// `[mitigation]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MitigationSection {
    /// Block a source (or prefix) sending more packets per second (required).
    pub threshold_pps: Option<Spanned<u64>>,
    /// Also block above this many bits per second.
    pub threshold_bps: Option<Spanned<u64>>,
    /// Rates are measured over this long (default `2s`).
    pub window: Option<Spanned<String>>,
    /// IPv4 sources are grouped into prefixes this long (default 32).
    pub prefix_v4: Option<Spanned<u8>>,
    /// IPv6 sources are grouped into prefixes this long (default 128).
    pub prefix_v6: Option<Spanned<u8>>,
    /// How long a block lasts (default `5m`).
    pub ttl: Option<Spanned<String>>,
    /// Only report (default false).
    pub dry_run: Option<bool>,
    /// Prefixes never blocked.
    pub exempt: Option<Spanned<Items>>,
}

/// sFlow export as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SflowSpec {
    /// The collectors.
    pub collectors: Vec<SocketAddr>,
    /// The agent address; none: the host's first address.
    pub agent: Option<IpAddr>,
    /// The sub-agent id.
    pub sub_agent_id: u32,
    /// Between counter samples, ms.
    pub counter_interval_ms: u64,
}

/// IPFIX export as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpfixSpec {
    /// The collectors.
    pub collectors: Vec<SocketAddr>,
    /// The observation domain id.
    pub observation_domain: u32,
    /// Active timeout, ms.
    pub active_timeout_ms: u64,
    /// Idle timeout, ms.
    pub idle_timeout_ms: u64,
    /// Template refresh, ms.
    pub template_refresh_ms: u64,
}

/// Auto-mitigation as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MitigationSpec {
    /// Packets per second.
    pub threshold_pps: u64,
    /// Bits per second, if set.
    pub threshold_bps: Option<u64>,
    /// Measuring window, ms.
    pub window_ms: u64,
    /// IPv4 grouping.
    pub prefix_v4: u8,
    /// IPv6 grouping.
    pub prefix_v6: u8,
    /// Block duration, ms.
    pub ttl_ms: u64,
    /// Only report.
    pub dry_run: bool,
    /// Prefixes never blocked, `ADDRESS/LEN`.
    pub exempt: Vec<(IpAddr, u8)>,
}

/// Everything the sample consumer does, as configured. All `None`
/// (the default): nothing runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserveSpec {
    /// sFlow export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sflow: Option<SflowSpec>,
    /// IPFIX export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipfix: Option<IpfixSpec>,
    /// The top-talker window, ms (0: the default, 10 s).
    #[serde(default)]
    pub top_window_ms: u64,
    /// Auto-mitigation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigation: Option<MitigationSpec>,
}

impl crate::control::state::StateFile for ObserveSpec {
    const KIND: &'static str = "observe";
    const LEGACY_KEYS: &'static [&'static str] = &["top_window_ms"];
}

impl ObserveSpec {
    /// The consumer's config.
    pub fn engine_config(&self) -> EngineConfig {
        let ms = Duration::from_millis;
        EngineConfig {
            sflow: self.sflow.as_ref().map(|spec| SflowSettings {
                collectors: spec.collectors.clone(),
                agent: spec.agent,
                sub_agent_id: spec.sub_agent_id,
                counter_interval: ms(spec.counter_interval_ms),
            }),
            ipfix: self.ipfix.as_ref().map(|spec| IpfixSettings {
                collectors: spec.collectors.clone(),
                observation_domain: spec.observation_domain,
                active_timeout: ms(spec.active_timeout_ms),
                idle_timeout: ms(spec.idle_timeout_ms),
                template_refresh: ms(spec.template_refresh_ms),
            }),
            top_window: (self.top_window_ms > 0).then(|| ms(self.top_window_ms)),
            mitigation: self.mitigation.as_ref().map(|spec| MitigationConfig {
                threshold_pps: spec.threshold_pps,
                threshold_bps: spec.threshold_bps,
                window: ms(spec.window_ms),
                prefix_v4: spec.prefix_v4,
                prefix_v6: spec.prefix_v6,
                ttl: ms(spec.ttl_ms),
                dry_run: spec.dry_run,
                exempt: spec.exempt.clone(),
                ..MitigationConfig::default()
            }),
            // The daemon exports every attached interface.
            exported_interfaces: None,
        }
    }

    /// One line per part, for plans.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let list = |collectors: &[SocketAddr]| {
            collectors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut parts = Vec::new();
        if let Some(spec) = &self.sflow {
            parts.push((
                "sflow",
                format!(
                    "to {} sub-agent {} counters every {} ms",
                    list(&spec.collectors),
                    spec.sub_agent_id,
                    spec.counter_interval_ms
                ),
            ));
        }
        if let Some(spec) = &self.ipfix {
            parts.push((
                "ipfix",
                format!(
                    "to {} domain {} active {} ms idle {} ms",
                    list(&spec.collectors),
                    spec.observation_domain,
                    spec.active_timeout_ms,
                    spec.idle_timeout_ms
                ),
            ));
        }
        if self.top_window_ms > 0 {
            parts.push(("analytics", format!("top window {} ms", self.top_window_ms)));
        }
        if let Some(spec) = &self.mitigation {
            parts.push((
                "mitigation",
                format!(
                    "above {} pps over {} ms per /{} (v4) /{} (v6), block {} ms{}",
                    spec.threshold_pps,
                    spec.window_ms,
                    spec.prefix_v4,
                    spec.prefix_v6,
                    spec.ttl_ms,
                    if spec.dry_run { ", dry run" } else { "" }
                ),
            ));
        }
        parts
    }
}

/// The settings kept in `dir` (none yet: all off).
pub fn load_saved(dir: &Path) -> Result<ObserveSpec, crate::control::state::StateError> {
    crate::control::state::load(&dir.join(OBSERVE_STATE_FILE))
}

/// Keeps `spec` in `dir` (atomically).
pub fn save(dir: &Path, spec: &ObserveSpec) -> Result<(), crate::control::state::StateError> {
    crate::control::state::save(&dir.join(OBSERVE_STATE_FILE), spec)
}

fn duration_field(
    report: &mut Report<'_>,
    value: &Option<Spanned<String>>,
    path: String,
    default_ms: u64,
) -> u64 {
    let parsed = field(report, value, path.clone(), |text| {
        crate::lb::edit::parse_millis(text).map_err(|error| error.to_string())
    });
    match parsed {
        Some(0) => {
            let span = value.as_ref().map(Spanned::span);
            report.error(span, path, "must be longer than 0");
            default_ms
        }
        // The same bound as every duration: a mitigation ttl past it
        // could not go on the blocklist.
        Some(ms) if ms > MAX_DURATION_SECONDS * 1000 => {
            let span = value.as_ref().map(Spanned::span);
            report.error(span, path, "must be at most 3650d");
            default_ms
        }
        Some(ms) => ms,
        None => default_ms,
    }
}

fn collectors(
    report: &mut Report<'_>,
    list: &Option<Spanned<Items>>,
    path: &str,
    whole: std::ops::Range<usize>,
) -> Vec<SocketAddr> {
    let parsed = items(report, list, &format!("{path}.collectors"), |text| {
        let address = text
            .parse::<SocketAddr>()
            .map_err(|_| format!("{} is not ADDRESS:PORT", crate::text::quote(text)))?;
        match crate::observe::export::collector_problem(&address) {
            Some(why) => Err(format!("{}: {why}", crate::text::quote(text))),
            None => Ok(address),
        }
    });
    match parsed {
        None => {
            report.missing(whole, path, "collectors", "where to send");
            Vec::new()
        }
        // An empty list (a list of mistakes is reported item by item).
        Some(_)
            if list
                .as_ref()
                .is_some_and(|list| list.get_ref().0.is_empty()) =>
        {
            let span = list.as_ref().map(Spanned::span);
            report.error(
                span,
                format!("{path}.collectors"),
                "name at least one collector",
            );
            Vec::new()
        }
        Some(parsed) => {
            // One collector twice would get every datagram twice.
            let identities: Vec<_> = parsed
                .iter()
                .map(|(address, span, path)| {
                    let identity = crate::observe::export::collector_identity(address);
                    (identity, span.clone(), path.clone())
                })
                .collect();
            unique(report, &identities, "collector");
            parsed.into_iter().map(|(address, _, _)| address).collect()
        }
    }
}

/// Checks the observability sections.
pub(super) fn observe(
    export: Option<&Spanned<ExportSection>>,
    analytics: Option<&Spanned<AnalyticsSection>>,
    mitigation: Option<&Spanned<MitigationSection>>,
    report: &mut Report<'_>,
) -> ObserveSpec {
    let mut spec = ObserveSpec::default();
    if let Some(export) = export {
        if let Some(entry) = &export.get_ref().sflow {
            let path = "export.sflow";
            let sflow = entry.get_ref();
            spec.sflow = Some(SflowSpec {
                collectors: collectors(report, &sflow.collectors, path, entry.span()),
                agent: field(report, &sflow.agent, format!("{path}.agent"), |text| {
                    text.parse::<IpAddr>()
                        .map_err(|_| format!("{} is not an IP address", crate::text::quote(text)))
                }),
                sub_agent_id: sflow.sub_agent_id.unwrap_or(0),
                counter_interval_ms: duration_field(
                    report,
                    &sflow.counter_interval,
                    format!("{path}.counter_interval"),
                    20_000,
                ),
            });
        }
        if let Some(entry) = &export.get_ref().ipfix {
            let path = "export.ipfix";
            let ipfix = entry.get_ref();
            spec.ipfix = Some(IpfixSpec {
                collectors: collectors(report, &ipfix.collectors, path, entry.span()),
                observation_domain: ipfix.observation_domain.unwrap_or(0),
                active_timeout_ms: duration_field(
                    report,
                    &ipfix.active_timeout,
                    format!("{path}.active_timeout"),
                    60_000,
                ),
                idle_timeout_ms: duration_field(
                    report,
                    &ipfix.idle_timeout,
                    format!("{path}.idle_timeout"),
                    15_000,
                ),
                template_refresh_ms: duration_field(
                    report,
                    &ipfix.template_refresh,
                    format!("{path}.template_refresh"),
                    60_000,
                ),
            });
        }
    }
    if let Some(analytics) = analytics {
        let window = &analytics.get_ref().top_window;
        let ms = duration_field(report, window, "analytics.top_window".into(), 10_000);
        if !(100..=3_600_000).contains(&ms) {
            let span = window.as_ref().map(Spanned::span);
            report.error(span, "analytics.top_window", "must be from 100ms to 1h");
        }
        spec.top_window_ms = ms;
    }
    if let Some(section) = mitigation {
        spec.mitigation = mitigation_spec(section, report);
    }
    spec
}

fn mitigation_spec(
    section: &Spanned<MitigationSection>,
    report: &mut Report<'_>,
) -> Option<MitigationSpec> {
    let entry = section.get_ref();
    let path = "mitigation";
    let Some(threshold) = &entry.threshold_pps else {
        report.missing(
            section.span(),
            path,
            "threshold_pps",
            "the rate that triggers a block",
        );
        return None;
    };
    let exempt = items(report, &entry.exempt, "mitigation.exempt", |text| {
        crate::control::parse::parse_cidr(text).map(|cidr| (cidr_address(&cidr), cidr.length))
    })
    .unwrap_or_default();
    let spec = MitigationSpec {
        threshold_pps: *threshold.get_ref(),
        threshold_bps: entry.threshold_bps.as_ref().map(|value| *value.get_ref()),
        window_ms: duration_field(report, &entry.window, format!("{path}.window"), 2_000),
        prefix_v4: entry
            .prefix_v4
            .as_ref()
            .map_or(32, |value| *value.get_ref()),
        prefix_v6: entry
            .prefix_v6
            .as_ref()
            .map_or(128, |value| *value.get_ref()),
        ttl_ms: duration_field(report, &entry.ttl, format!("{path}.ttl"), 300_000),
        dry_run: entry.dry_run.unwrap_or(false),
        exempt: exempt.into_iter().map(|(prefix, _, _)| prefix).collect(),
    };
    // The mitigator's own checks, each at its field.
    let config = ObserveSpec {
        mitigation: Some(spec.clone()),
        ..ObserveSpec::default()
    }
    .engine_config()
    .mitigation?;
    if let Err(error) = config.validate() {
        use crate::observe::mitigate::MitigationError as Error;
        let (span, at) = match &error {
            Error::PrefixV4OutOfRange { .. } => (
                entry.prefix_v4.as_ref().map(Spanned::span),
                "mitigation.prefix_v4",
            ),
            Error::PrefixV6OutOfRange { .. } => (
                entry.prefix_v6.as_ref().map(Spanned::span),
                "mitigation.prefix_v6",
            ),
            Error::ZeroThreshold => (Some(threshold.span()), "mitigation.threshold_pps"),
            Error::ZeroBpsThreshold => (
                entry.threshold_bps.as_ref().map(Spanned::span),
                "mitigation.threshold_bps",
            ),
            Error::ExemptOutOfRange { .. } => (
                entry.exempt.as_ref().map(Spanned::span),
                "mitigation.exempt",
            ),
            _ => (Some(section.span()), path),
        };
        report.error(span, at, error.to_string());
        return None;
    }
    Some(spec)
}

fn cidr_address(cidr: &crate::control::parse::Cidr) -> IpAddr {
    let address = std::net::Ipv6Addr::from(cidr.address);
    if cidr.ipv4 {
        address
            .to_ipv4_mapped()
            .map_or(IpAddr::V6(address), IpAddr::V4)
    } else {
        IpAddr::V6(address)
    }
}
