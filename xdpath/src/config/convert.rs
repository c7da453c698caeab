//! From the file's values to a [`DesiredConfig`]: the interface list here,
//! the filter in [`super::convert_filter`], the balancer in
//! [`super::convert_lb`]; every value is parsed by the CLI's parsers and
//! every mistake reported with its place.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use std::ops::Range;

use toml::Spanned;

use super::load::{Environment, Report};
use super::schema::{FileConfig, InterfaceEntry, Item, Items};
use super::{DesiredConfig, InterfaceSpec};
use crate::control::parse::parse_port;
use crate::dataplane::{DataplaneError, InterfacePins};

/// The whole config, checked.
pub(super) fn desired(
    file: &FileConfig,
    environment: &Environment,
    report: &mut Report<'_>,
) -> DesiredConfig {
    DesiredConfig {
        interfaces: interfaces(&file.interface, environment, report),
        filter: super::convert_filter::filter(file.filter.as_ref(), environment, report),
        lb: super::convert_lb::lb(file.lb.as_ref(), report),
        observe: super::observe::observe(
            file.export.as_ref(),
            file.analytics.as_ref(),
            file.mitigation.as_ref(),
            report,
        ),
        steering: super::steering::steering(file.steering.as_ref(), report),
    }
}

/// Parses an optional field; a mistake is reported at the field.
pub(super) fn field<V, T, E: Display>(
    report: &mut Report<'_>,
    value: &Option<Spanned<V>>,
    path: String,
    parse: impl FnOnce(&V) -> Result<T, E>,
) -> Option<T> {
    let value = value.as_ref()?;
    parse(value.get_ref())
        .map_err(|error| report.error(Some(value.span()), path, error.to_string()))
        .ok()
}

/// Parses every item of a list; each mistake is reported at its item.
/// Returns the values with their places and paths.
pub(super) fn items<T, E: Display>(
    report: &mut Report<'_>,
    list: &Option<Spanned<Items>>,
    path: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Option<Vec<(T, Range<usize>, String)>> {
    let list = list.as_ref()?;
    let mut parsed = Vec::new();
    for (index, Item { span, text }) in list.get_ref().0.iter().enumerate() {
        let (span, path) = match span {
            Some(span) => (span.clone(), format!("{path}[{index}]")),
            None => (list.span(), path.to_string()),
        };
        match parse(text) {
            Ok(value) => parsed.push((value, span, path)),
            Err(error) => report.error(Some(span), path, error.to_string()),
        }
    }
    Some(parsed)
}

/// Reports every value listed a second time.
pub(super) fn unique<K: Eq + Hash + Display>(
    report: &mut Report<'_>,
    entries: &[(K, Range<usize>, String)],
    what: &str,
) {
    let mut seen: HashMap<&K, &str> = HashMap::new();
    for (key, span, path) in entries {
        if let Some(first) = seen.insert(key, path) {
            report.error(
                Some(span.clone()),
                path.clone(),
                format!("{what} {key} is listed twice (also {first})"),
            );
        }
    }
}

fn interfaces(
    entries: &[Spanned<InterfaceEntry>],
    environment: &Environment,
    report: &mut Report<'_>,
) -> Vec<InterfaceSpec> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut list = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let path = format!("interface[{index}]");
        let item = entry.get_ref();
        let Some(name) = &item.name else {
            report.missing(entry.span(), &path, "name", "the interface");
            continue;
        };
        let (name_span, name) = (Some(name.span()), name.get_ref().clone());
        let name_path = format!("{path}.name");
        if let Err(error) = InterfacePins::new(&name) {
            report.error(name_span.clone(), &name_path, error.to_string());
        } else if !(environment.interface_exists)(&name) {
            let error = DataplaneError::UnknownInterface { name: name.clone() };
            report.error(name_span.clone(), &name_path, error.to_string());
        }
        if let Some(first) = seen.insert(name.clone(), index) {
            report.error(
                name_span,
                &name_path,
                format!("interface {name} is listed twice (also interface[{first}])"),
            );
        }
        let decap = item.decap.unwrap_or(false);
        let port_path = format!("{path}.gue_port");
        let gue_port = match (&item.gue_port, decap) {
            (None, _) => 0,
            (Some(port), false) => {
                report.error(
                    Some(port.span()),
                    port_path,
                    "gue_port applies with decap = true only",
                );
                0
            }
            (Some(_), true) => field(report, &item.gue_port, port_path.clone(), |port| {
                parse_port(&port.0)
            })
            .map_or(0, |port| {
                if port == 0 {
                    let span = item.gue_port.as_ref().map(Spanned::span);
                    report.error(
                        span,
                        port_path,
                        "the GUE port must be 1-65535 (leave gue_port out for IPIP only)",
                    );
                }
                port
            }),
        };
        let sample_rate = match &item.sample_rate {
            Some(rate) if *rate.get_ref() > crate::observe::MAX_SAMPLE_RATE => {
                report.error(
                    Some(rate.span()),
                    format!("{path}.sample_rate"),
                    format!(
                        "{} is above the largest rate, {}",
                        rate.get_ref(),
                        crate::observe::MAX_SAMPLE_RATE
                    ),
                );
                0
            }
            Some(rate) => *rate.get_ref(),
            None => 0,
        };
        list.push(InterfaceSpec {
            name,
            sample_rate,
            forward: item.forward.unwrap_or(false),
            steer: item.steer.unwrap_or(false),
            mode: item.mode.unwrap_or_default(),
            malformed: item.malformed.unwrap_or_default(),
            monitor: item.monitor.unwrap_or(false),
            decap,
            gue_port,
            stale: false,
        });
    }
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}
