//! Why loading, attaching, detaching or reading pinned state failed, each
//! with the hint an operator needs (which mode to try, which kernel).

use std::io;
use std::path::PathBuf;

use super::BPFFS;

/// Errors of loading, attaching, detaching and reading pinned state.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// Forwarding cannot be turned on as asked.
    #[error("{0}")]
    Forward(String),
    /// No interface of that name in this network namespace.
    #[error(
        "interface {} does not exist in this network namespace",
        crate::text::quote(name)
    )]
    UnknownInterface {
        /// The name asked for.
        name: String,
    },
    /// A name no interface can have.
    #[error("{} is not a valid interface name (1-15 characters, not . or .., without /, :, spaces or control characters)", crate::text::quote(name))]
    InvalidInterfaceName {
        /// The name as given (quoted, escaped and cut when shown).
        name: String,
    },
    /// xdpath is attached there already.
    #[error("xdpath is already attached to {name}; run `xdpath detach {name}` first")]
    AlreadyAttached {
        /// The interface.
        name: String,
    },
    /// Nothing of xdpath's is attached there.
    #[error("xdpath is not attached to {}", crate::text::quote(name))]
    NotAttached {
        /// The interface.
        name: String,
    },
    /// An object file could not be read.
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    /// The pins cannot be read without privileges.
    #[error("needs root: {what} (permission denied)")]
    NeedsRoot {
        /// What could not be read.
        what: String,
    },
    /// `xdpath run --userspace` serves the interface.
    #[error(
        "{name} is served by `xdpath run --userspace` (pid {pid}); stop it first, then attach"
    )]
    UserspaceOwner {
        /// The interface.
        name: String,
        /// The runtime's process.
        pid: u32,
    },
    /// The interface has an XDP program that is not xdpath's.
    #[error("{name} already has an XDP program that xdpath did not attach; remove it first (e.g. `ip link set dev {name} xdp off`)")]
    ForeignProgram {
        /// The interface.
        name: String,
    },
    /// The requested mode is not available on the device.
    #[error(
        "{name} cannot run XDP in {mode} mode: {}{}",
        error_chain(source),
        mode_hint(mode)
    )]
    ModeUnsupported {
        /// The interface.
        name: String,
        /// The mode asked for.
        mode: &'static str,
        /// What the kernel said.
        source: aya::programs::ProgramError,
    },
    /// The kernel refused to load the program.
    #[error("loading the XDP program failed: {}", load_failure(.0.as_ref()))]
    Load(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A map is missing from the object or has the wrong type.
    #[error("map {name}: {source}")]
    Map {
        /// The map.
        name: &'static str,
        /// Why.
        source: aya::maps::MapError,
    },
    /// bpffs could not be mounted.
    #[error("mounting bpffs at {BPFFS} failed: {0} (xdpath needs root)")]
    Mount(#[source] io::Error),
    /// bpffs is not mounted in the mount namespace made for this process
    /// (as `ip netns exec` makes one): a mount there,
    /// and every pin in it, would vanish when xdpath exits, and the
    /// program with its link.
    #[error("bpffs is not mounted at {BPFFS} in this mount namespace, made for this command (as by `ip netns exec`, which remounts /sys): pins made here would vanish when xdpath exits, and the program with them; run xdpath in the network namespace with `nsenter --net=/run/netns/NAME xdpath ...`")]
    PrivateMountNamespace,
    /// A pin or file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Pinning failed.
    #[error("pinning {path}: {source}")]
    Pin {
        /// The pin path.
        path: PathBuf,
        /// Why.
        source: aya::pin::PinError,
    },
    /// A test run failed.
    #[error("BPF_PROG_TEST_RUN failed: {}", error_chain(.0))]
    TestRun(#[source] aya::programs::ProgramError),
    /// The pins are there but the interface they were made for is gone.
    #[error("the interface xdpath was attached to as {name} is gone; run `xdpath detach {name}` to clean up")]
    InterfaceGone {
        /// The interface.
        name: String,
    },
    /// The interface xdpath was attached to was renamed; its program
    /// still runs there.
    #[error("{name} was renamed to {now}, where xdpath still runs: rename it back (`ip link set {now} name {name}`), or run `xdpath detach {name}` to remove it from {now}")]
    Renamed {
        /// The name xdpath knows it by.
        name: String,
        /// Its name now.
        now: String,
    },
    /// Some of an interface's pins are missing (made by an older xdpath,
    /// or removed by hand): there is nothing complete to reload.
    #[error("the pins of {name} are incomplete (missing: {missing}); run `xdpath detach {name}` and attach again")]
    IncompletePins {
        /// The interface.
        name: String,
        /// The missing pins, comma-separated.
        missing: String,
    },
    /// A pinned object could not be opened or is not what it should be.
    #[error("{path}: {source}")]
    PinnedObject {
        /// The pin.
        path: PathBuf,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The kernel refused to swap the program on the link.
    #[error("replacing the program on {name} failed (BPF_LINK_UPDATE; needs Linux 5.9 or later): {source}{}", link_update_hint(source))]
    LinkUpdate {
        /// The interface.
        name: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// Locking an interface's pin directory failed.
    #[error("locking {path}: {source}")]
    Lock {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// EPERM from `BPF_LINK_UPDATE` with `BPF_F_REPLACE`: the link ran another
/// program than the one read a moment before.
fn link_update_hint(error: &io::Error) -> &'static str {
    if error.raw_os_error() == Some(libc::EPERM) {
        " (the program was replaced by someone else meanwhile; nothing was changed)"
    } else {
        " (nothing was changed; the old program keeps running)"
    }
}

/// An error and its causes, `: `-separated. aya's own text can be as bare
/// as `netlink error: []`, with the kernel's answer only in the source.
pub(super) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(error) = current {
        let text = error.to_string();
        if !text.is_empty() && text != "netlink error: []" && !parts.contains(&text) {
            parts.push(text);
        }
        current = error.source();
    }
    parts.join(": ")
}

impl DataplaneError {
    /// Whether this is a test run the kernel refused with `EPERM`: live
    /// frames (`BPF_F_TEST_XDP_LIVE_FRAMES`) on a kernel or sandbox that
    /// does not allow them, where ordinary test runs still work.
    pub fn is_test_run_refused(&self) -> bool {
        let Self::TestRun(aya::programs::ProgramError::SyscallError(error)) = self else {
            return false;
        };
        error.io_error.raw_os_error() == Some(libc::EPERM)
    }

    /// The object has no map `name`.
    pub(crate) fn missing_map(name: &'static str) -> Self {
        Self::Map {
            name,
            source: aya::maps::MapError::InvalidName { name: name.into() },
        }
    }

    /// What a failure on the map `name` becomes (for `map_err`).
    pub(crate) fn of_map(name: &'static str) -> impl Fn(aya::maps::MapError) -> Self {
        move |source| Self::Map { name, source }
    }
}

/// What to try instead when a mode is refused.
fn mode_hint(mode: &str) -> &'static str {
    match mode {
        "offload" => {
            " (XDP offload needs a NIC whose driver supports it; use --mode native or generic)"
        }
        "native" => " (the driver may lack native XDP; --mode generic works on any device)",
        _ => "",
    }
}

/// Where aya's load error starts the verifier's log.
const VERIFIER_OUTPUT: &str = "Verifier output:";
/// How many of the verifier log's last lines a load error keeps.
const VERIFIER_LINES_KEPT: usize = 6;

/// A load failure with the verifier's log cut to its last lines: the
/// whole log (tens of KB for a refused stage) made the one-line error
/// unreadable, and its end says why the program was refused (the access
/// refused, or "BPF program is too large" with the instructions
/// processed).
fn load_failure(error: &(dyn std::error::Error + 'static)) -> String {
    let text = with_causes(error);
    let Some(at) = text.find(VERIFIER_OUTPUT) else {
        return text;
    };
    let (head, log) = text.split_at(at + VERIFIER_OUTPUT.len());
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let Some(left_out) = lines.len().checked_sub(VERIFIER_LINES_KEPT) else {
        return text;
    };
    if left_out == 0 {
        return text;
    }
    // Joined on one line: the daemon prints errors as they are (the CLI
    // would escape newlines).
    let kept = lines.get(left_out..).unwrap_or_default().join(" | ");
    format!("{head} ({left_out} earlier lines left out) … {kept}")
}

/// An error and its causes on one line: aya's "pinning failed" says why
/// only in its source.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let more = next.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = next.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Refused(String);

    #[test]
    fn a_long_verifier_log_is_cut_to_its_end() {
        let log: Vec<String> = (0..500)
            .map(|line| format!("{line}: (61) r2 = ..."))
            .collect();
        let refused = Refused(format!(
            "the BPF_PROG_LOAD syscall returned Argument list too long (os error 7). \
             Verifier output: {}\nBPF program is too large. Processed 1000001 insn\n\
             processed 1000001 insns (limit 1000000)\n",
            log.join("\n")
        ));
        let message = DataplaneError::Load(Box::new(refused)).to_string();
        assert!(message.starts_with("loading the XDP program failed: the BPF_PROG_LOAD"));
        assert!(
            message.contains("(496 earlier lines left out)"),
            "{message}"
        );
        assert!(
            message.ends_with("processed 1000001 insns (limit 1000000)"),
            "{message}"
        );
        assert!(!message.contains("0: (61)"), "{message}");
        assert!(message.len() < 400, "{message}");
    }

    #[test]
    fn a_short_log_or_none_is_kept_whole() {
        for text in [
            "no such file".to_string(),
            "returned EACCES. Verifier output: R1 invalid mem access 'scalar'\nprocessed 12 insns"
                .to_string(),
        ] {
            let message = DataplaneError::Load(Box::new(Refused(text.clone()))).to_string();
            assert_eq!(message, format!("loading the XDP program failed: {text}"));
        }
    }
}
