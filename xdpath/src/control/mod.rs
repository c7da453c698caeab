//! The filter's control plane: the desired state of a namespace
//! ([`state`]), parsing what operators type ([`parse`], [`rulefile`]),
//! compiling it to the data path's representation ([`compile`]) and
//! installing it in the kernel's maps or the native tables ([`apply`],
//! [`kernel`]). [`session`] ties them together for one change, [`ops`]
//! holds the changes the front ends share (through [`crate::api`]) and
//! [`views`] the JSON they show.
//!
//! Every command validates everything before the first map write: a
//! refused command changes nothing.

pub mod apply;
pub mod commit_marker;
pub mod compile;
pub mod features;
pub mod interfaces;
pub mod kernel;
mod kernel_batch;
pub mod lock;
pub mod locked_state;
pub mod ops;
pub mod parse;
pub mod readback;
pub mod rulefile;
pub mod session;
pub mod state;
pub mod views;

use crate::text::{quote, quote_path};
use parse::Cidr;

/// Why a control command failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A value did not parse.
    #[error(transparent)]
    Parse(#[from] parse::ParseError),
    /// The resulting state cannot be installed.
    #[error(transparent)]
    Compile(#[from] compile::CompileError),
    /// Writing the maps failed. (Boxed, as is [`ControlError::Dataplane`]:
    /// 120 bytes each, they made every control result 128 bytes.)
    #[error(transparent)]
    Apply(Box<apply::ApplyError>),
    /// The namespace's pin directory could not be found.
    #[error(transparent)]
    Dataplane(Box<crate::dataplane::DataplaneError>),
    /// The state file could not be read or written.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// A rule file line is wrong.
    #[error("{}: line {line}: {message}", quote_path(path))]
    Line {
        /// The file.
        path: std::path::PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A rule file could not be read, or is not one within the limits
    /// ([`rulefile::RULE_FILE_LIMITS`]).
    #[error(transparent)]
    ReadRules(#[from] crate::input::InputError),
    /// No rule with that id.
    #[error("no rule with id {id}")]
    NoSuchRule {
        /// The id asked for.
        id: u32,
    },
    /// No rate limit with that id.
    #[error("no rate limit with id {id}")]
    NoSuchLimit {
        /// The id asked for.
        id: u32,
    },
    /// The rule or rate limit is an owner's (from its document): it is
    /// changed through that document, not one by one.
    #[error("{what} {id} is owner {}'s: change it through the owner's document (PUT /v1/owners/OWNER, `xdpath lb owner apply|delete`)", crate::text::quote(owner))]
    Owned {
        /// `rule` or `rate limit`.
        what: &'static str,
        /// Its id.
        id: u32,
        /// Its owner.
        owner: String,
    },
    /// The prefix is not on the blocklist.
    #[error("{prefix}{} is not on the blocklist", vni.map(|vni| format!(" (VNI {vni})")).unwrap_or_default())]
    NoSuchBlock {
        /// The prefix.
        prefix: Cidr,
        /// The VNI asked for.
        vni: Option<u32>,
    },
    /// Not a configured management prefix or port.
    #[error("{what} is not a management {kind}")]
    NoSuchManagement {
        /// The prefix or port.
        what: String,
        /// `prefix` or `port`.
        kind: &'static str,
    },
    /// A deny rule would cover management traffic.
    #[error(
        "the rule would drop management traffic ({what}); add --override to install it anyway"
    )]
    ManagementOverlap {
        /// The management prefix or port it covers.
        what: String,
    },
    /// No interface of that name here.
    #[error("interface {} does not exist in this network namespace", quote(name))]
    UnknownInterface {
        /// The name.
        name: String,
    },
    /// Bad command-line usage that clap cannot express.
    #[error("{0}")]
    Usage(String),
    /// The state lock could not be taken.
    #[error("locking {}: {source}", path.display())]
    Lock {
        /// The lock file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The daemon refused the change or could not be understood.
    #[error(transparent)]
    Daemon(#[from] crate::api::daemon::DaemonError),
    /// No more ids.
    #[error("no free {what} id left")]
    IdsExhausted {
        /// `rule` or `rate limit`.
        what: &'static str,
    },
    /// The change needs a data-path feature the program attached to an
    /// interface does not know (loaded by an older build): it would be
    /// saved and shown but not enforced there.
    #[error("{interface} runs a program loaded by an older xdpath, which does not enforce {feature}: run `xdpath reload {interface}` first; nothing was changed")]
    OlderProgram {
        /// The interface.
        interface: String,
        /// The feature, as an operator calls it.
        feature: &'static str,
    },
}

impl From<apply::ApplyError> for ControlError {
    fn from(error: apply::ApplyError) -> Self {
        Self::Apply(Box::new(error))
    }
}

impl From<crate::dataplane::DataplaneError> for ControlError {
    fn from(error: crate::dataplane::DataplaneError) -> Self {
        Self::Dataplane(Box::new(error))
    }
}

/// The index of an interface in this namespace.
pub fn interface_index(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: if_nametoindex reads a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// Wall-clock now, seconds since the Unix epoch.
pub fn wall_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
