//! `[steering]`: the namespace's CPU list for software RSS (`cpus`,
//! `queue_size`, as `xdpath steer enable` takes them) and the flows
//! steered to AF_XDP applications (`[[steering.xsk]]`, as `xdpath xsk
//! add`). An interface steers with `steer = true` in its `[[interface]]`.
//!
//! ```toml
//! [steering]
//! cpus = "0-3"
//! queue_size = 2048
//!
//! [[steering.xsk]]
//! proto = "udp"
//! dport = 9000
//! ```

use serde::{Deserialize, Serialize};
use toml::Spanned;
use xdpath_core::abi;

use super::report::field;
use super::report::Report;
use super::values::Scalar;
use crate::dataplane::steer::{parse_cpus, DEFAULT_QUEUE_SIZE};

/// `[steering]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SteeringSection {
    /// CPU list: `all` (default) or numbers and ranges, `0,2-3`.
    pub cpus: Option<Spanned<String>>,
    /// Frames each CPU's queue holds, 8 to 16384 (default 2048).
    pub queue_size: Option<Spanned<u32>>,
    /// Flows for AF_XDP applications.
    #[serde(default)]
    pub xsk: Vec<Spanned<XskEntry>>,
}

/// `[[steering.xsk]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XskEntry {
    /// `tcp` or `udp` (required).
    pub proto: Option<Spanned<String>>,
    /// The destination port (required).
    pub dport: Option<Spanned<Scalar>>,
}

/// The steering settings, checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteeringSpec {
    /// The CPUs steering interfaces spread to.
    pub cpus: Vec<u32>,
    /// Each CPU's queue size.
    pub queue_size: u32,
    /// Flows to AF_XDP sockets: (protocol number, destination port),
    /// sorted.
    pub xsk: Vec<(u8, u16)>,
}

impl Default for SteeringSpec {
    fn default() -> Self {
        Self {
            cpus: (0..online_cpus().min(abi::MAX_STEER_CPUS)).collect(),
            queue_size: DEFAULT_QUEUE_SIZE,
            xsk: Vec::new(),
        }
    }
}

fn online_cpus() -> u32 {
    aya::util::nr_cpus().map_or(1, |count| count as u32)
}

impl SteeringSpec {
    /// One line per setting, for `plan`.
    pub fn describe(&self) -> Vec<(String, String)> {
        let mut lines = vec![(
            "cpus".to_string(),
            format!(
                "{} (queue {})",
                self.cpus
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                self.queue_size
            ),
        )];
        for (protocol, port) in &self.xsk {
            let name = if *protocol == 6 { "tcp" } else { "udp" };
            lines.push((format!("xsk {name}/{port}"), "to AF_XDP".to_string()));
        }
        lines
    }
}

/// Checks `[steering]`.
pub(super) fn steering(
    section: Option<&Spanned<SteeringSection>>,
    report: &mut Report<'_>,
) -> SteeringSpec {
    let mut spec = SteeringSpec::default();
    let Some(section) = section else {
        return spec;
    };
    let entry = section.get_ref();
    if let Some(cpus) = field(report, &entry.cpus, "steering.cpus".into(), |text| {
        parse_cpus(text, online_cpus())
    }) {
        spec.cpus = cpus;
    }
    if let Some(size) = &entry.queue_size {
        if (8..=16_384).contains(size.get_ref()) {
            spec.queue_size = *size.get_ref();
        } else {
            report.error(
                Some(size.span()),
                "steering.queue_size",
                format!("{} is out of range 8..=16384", size.get_ref()),
            );
        }
    }
    for (index, flow) in entry.xsk.iter().enumerate() {
        let path = format!("steering.xsk[{index}]");
        let item = flow.get_ref();
        if item.proto.is_none() {
            report.missing(flow.span(), &path, "proto", "tcp or udp");
        }
        if item.dport.is_none() {
            report.missing(flow.span(), &path, "dport", "a port");
        }
        let protocol = field(
            report,
            &item.proto,
            format!("{path}.proto"),
            |text| match text.as_str() {
                "tcp" => Ok(6u8),
                "udp" => Ok(17u8),
                other => Err(format!(
                    "{}: only tcp and udp flows are steered (by destination port)",
                    crate::text::quote(other)
                )),
            },
        );
        let port = field(
            report,
            &item.dport,
            format!("{path}.dport"),
            |port| match port.0.parse::<u16>() {
                Ok(0) | Err(_) => Err(format!(
                    "{} is not a port (1-65535)",
                    crate::text::quote(&port.0)
                )),
                Ok(port) => Ok(port),
            },
        );
        if let (Some(protocol), Some(port)) = (protocol, port) {
            if spec.xsk.contains(&(protocol, port)) {
                report.error(Some(flow.span()), path, "this flow is listed twice");
            } else {
                spec.xsk.push((protocol, port));
            }
        }
    }
    spec.xsk.sort_unstable();
    spec
}

/// The namespace's steering now: its CPU list (or the default when it
/// has none) and AF_XDP flows. Nothing is created when nothing is there.
pub fn current() -> SteeringSpec {
    let mut spec = SteeringSpec::default();
    if let Ok(steered) = crate::dataplane::steer::steered() {
        let cpus: Vec<u32> = steered.into_iter().map(|(cpu, _)| cpu).collect();
        if !cpus.is_empty() {
            spec.cpus = cpus;
        }
    }
    if let Some(size) = crate::dataplane::steer::queue_size() {
        spec.queue_size = size;
    }
    if let Ok(flows) = crate::afxdp::steered::rules() {
        spec.xsk = flows;
    }
    spec
}

/// Makes the namespace's AF_XDP flows `desired`'s.
pub fn apply_flows(current: &SteeringSpec, desired: &SteeringSpec) -> Result<(), String> {
    for flow in &current.xsk {
        if !desired.xsk.contains(flow) {
            crate::afxdp::steered::del_rule(flow.0, flow.1).map_err(|error| error.to_string())?;
        }
    }
    for flow in &desired.xsk {
        if !current.xsk.contains(flow) {
            crate::afxdp::steered::add_rule(flow.0, flow.1).map_err(|error| error.to_string())?;
        }
    }
    Ok(())
}
