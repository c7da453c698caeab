//! A declarative config for a host's data path: which interfaces xdpath is
//! attached to and how, the filter (rules, blocklist, rate limits, guards,
//! management traffic) and the load balancer (settings, VIPs, backends), in
//! one TOML file (see `examples/xdpath.toml`).
//!
//! [`load`] reads and checks a file: a file with any mistake is refused
//! whole, with every mistake listed as `file:line:column: field.path:
//! message`. [`current()`] reads what this namespace has now, in the same
//! form; [`plan()`] compares the two, and [`apply()`] makes the namespace
//! match the file by changing only what differs (existing backends keep
//! their slots and generations, so established flows keep their backend).
//! [`rollback`] keeps a snapshot of the state before an `apply --confirm`
//! and restores it unless `xdpath confirm` comes first.
//!
//! The values use the CLI's vocabulary and are parsed by the CLI's own
//! parsers ([`crate::control::parse`], [`crate::lb::edit`]), and the result
//! is checked by the same compilers the CLI commands use.

pub mod apply;
pub mod edit_lb;
pub mod refuse;

mod convert;
mod convert_filter;
mod convert_lb;
pub mod current;
pub mod entry;
pub mod journal;
mod load;
pub mod merge;
pub mod observe;
pub mod plan;
mod report;
pub mod rollback;
pub mod schema;
pub mod steering;
pub mod values;
mod words;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::control::state::FilterState;
use crate::lb::state::LbState;

pub use apply::apply;
pub use current::current;
pub use load::{load, load_str, CONFIG_LIMITS};
pub use plan::{plan, Plan};
pub use report::Environment;

/// What every error line of the CLI starts with; the lines of a refused
/// config after the first carry it themselves (main prints the first).
pub const ERROR_PREFIX: &str = "xdpath: error: ";

/// Why a config command failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file has mistakes; nothing was changed.
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
    /// Reading or installing the filter state failed.
    #[error(transparent)]
    Control(Box<crate::control::ControlError>),
    /// Reading or installing the balancer state failed.
    #[error(transparent)]
    Lb(Box<crate::lb::LbError>),
    /// Attaching, detaching or reading an interface failed.
    #[error(transparent)]
    Dataplane(#[from] crate::dataplane::DataplaneError),
    /// A rollback file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A rollback snapshot is not valid JSON of a config.
    #[error("{}: not a valid rollback snapshot: {source}", path.display())]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// Bad command-line usage.
    #[error("{0}")]
    Usage(String),
    /// Applying failed half-way; the state from before was put back.
    #[error("{error}; the previous state was restored")]
    Restored {
        /// What failed.
        error: Box<ConfigError>,
    },
    /// Applying failed half-way and so did putting the old state back.
    #[error("{error}; restoring the previous state failed too: {restore}")]
    RestoreFailed {
        /// What failed.
        error: Box<ConfigError>,
        /// Why the old state could not be put back.
        restore: Box<ConfigError>,
    },
}

impl From<crate::control::ControlError> for ConfigError {
    fn from(error: crate::control::ControlError) -> Self {
        Self::Control(Box::new(error))
    }
}

impl From<crate::control::state::StateError> for ConfigError {
    fn from(error: crate::control::state::StateError) -> Self {
        Self::Control(Box::new(error.into()))
    }
}

impl From<crate::lb::LbError> for ConfigError {
    fn from(error: crate::lb::LbError) -> Self {
        Self::Lb(Box::new(error))
    }
}

/// One mistake in a config file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// 1-based line and column (in characters), when the mistake has a
    /// place in the file.
    pub position: Option<(usize, usize)>,
    /// Where in the config, e.g. `lb.vip[0].backend[1].weight`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Every mistake found in one config file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigErrors {
    /// The file, as named on the command line.
    pub file: String,
    /// The mistakes, in file order.
    pub errors: Vec<Diagnostic>,
}

impl ConfigErrors {
    /// Each mistake as `file:line:column: field.path: message`.
    pub fn lines(&self) -> Vec<String> {
        self.errors
            .iter()
            .map(|error| {
                let place = match error.position {
                    Some((line, column)) => format!("{}:{line}:{column}", self.file),
                    None => self.file.clone(),
                };
                if error.path.is_empty() {
                    format!("{place}: {}", error.message)
                } else {
                    format!("{place}: {}: {}", error.path, error.message)
                }
            })
            .collect()
    }
}

impl fmt::Display for ConfigErrors {
    /// One line per mistake; every line after the first starts with
    /// [`ERROR_PREFIX`], as main prints the first one's.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.lines().join(&format!("\n{ERROR_PREFIX}")))
    }
}

impl std::error::Error for ConfigErrors {}

/// How an interface is to be attached (`attach --mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Native, else generic.
    #[default]
    Auto,
    /// In the driver.
    Native,
    /// In the generic (skb) path.
    Generic,
    /// On the NIC.
    Offload,
}

impl Mode {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::Generic => "generic",
            Self::Offload => "offload",
        }
    }
}

/// What to do with malformed frames (`attach --malformed`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Malformed {
    /// Pass them to the stack.
    #[default]
    Pass,
    /// Drop them at XDP.
    Drop,
}

/// One interface xdpath is attached to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceSpec {
    /// The interface.
    pub name: String,
    /// The XDP mode: as asked for in a file, as attached in the current
    /// state.
    pub mode: Mode,
    /// The malformed-frame policy.
    pub malformed: Malformed,
    /// Count drops without dropping.
    pub monitor: bool,
    /// The backend-side decapsulator (`xdpath decap`).
    pub decap: bool,
    /// With `decap`: also GUE to this port (0: IPIP only).
    pub gue_port: u16,
    /// Sample 1 in this many frames (0: none); changed in place, without
    /// attaching again.
    #[serde(default)]
    pub sample_rate: u32,
    /// L3 forwarding at XDP (`xdpath forward`); changed in place.
    #[serde(default)]
    pub forward: bool,
    /// Steering to CPUs (`xdpath steer`); changed in place.
    #[serde(default)]
    pub steer: bool,
    /// Current state only: the pins are left but the interface is gone
    /// or was made again (`status` says "interface gone").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

/// A whole data-path config: what a file asks for, or what a namespace
/// has now ([`current()`]), in the terms of the filter's and balancer's
/// state files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredConfig {
    /// The interfaces, by name.
    pub interfaces: Vec<InterfaceSpec>,
    /// The filter: rules sorted by id, blocklist expiry in wall-clock
    /// seconds (a file's `ttl` counted from when it was read).
    pub filter: FilterState,
    /// The balancer. A file's backends are numbered as if added to an
    /// empty state; [`apply()`] keeps the numbers existing backends have.
    pub lb: LbState,
    /// Export, analytics and mitigation (run by xdpathd).
    #[serde(default)]
    pub observe: observe::ObserveSpec,
    /// The steering CPUs and the AF_XDP flows.
    #[serde(default)]
    pub steering: steering::SteeringSpec,
}

#[cfg(test)]
mod entry_tests;
#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod observe_tests;
#[cfg(test)]
mod tests;
