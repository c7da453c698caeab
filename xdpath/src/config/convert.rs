//! From the file's values to a [`DesiredConfig`]: the interface list here,
//! the filter in [`super::convert_filter`], the balancer in
//! [`super::convert_lb`]; every value is parsed by the CLI's parsers and
//! every mistake reported with its place.

use std::collections::HashMap;

use toml::Spanned;

use super::report::{field, Environment, Report};
use super::schema::{FileConfig, InterfaceEntry};
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
        check_interface_name(name, index, &mut seen, &path, environment, report);
        let decap = item.decap.unwrap_or(false);
        let gue_port = gue_port(item, decap, &path, report);
        let sample_rate = sample_rate(item, &path, report);
        list.push(InterfaceSpec {
            name: name.get_ref().clone(),
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

/// Reports an interface name that cannot be pinned, names no interface on
/// this host, or was listed before (recorded in `seen`).
fn check_interface_name(
    name: &Spanned<String>,
    index: usize,
    seen: &mut HashMap<String, usize>,
    path: &str,
    environment: &Environment,
    report: &mut Report<'_>,
) {
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
}

/// The interface's GUE port (0: none); one without `decap`, or port 0, is
/// reported.
fn gue_port(item: &InterfaceEntry, decap: bool, path: &str, report: &mut Report<'_>) -> u16 {
    let port_path = format!("{path}.gue_port");
    match (&item.gue_port, decap) {
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
    }
}

/// The interface's sample rate (0: none); one above the largest is
/// reported.
fn sample_rate(item: &InterfaceEntry, path: &str, report: &mut Report<'_>) -> u32 {
    match &item.sample_rate {
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
    }
}
