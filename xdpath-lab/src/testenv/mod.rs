//! A throw-away two-namespace test bed, in the style of xdp-tools' test
//! environments: namespaces `A` and `B` joined by a veth pair, with IPv4
//! and IPv6 addresses and static neighbour entries both ways.
//!
//! [`TestBed::new`] builds it; dropping the [`TestBed`] removes everything,
//! xdpath's pins of both namespaces included. Every bed has its own names
//! and subnets, so tests may build beds in parallel threads.
//!
//! The bed is quiet: duplicate address detection, router solicitations and
//! link-local addresses are off, neighbours are static (no ARP, no neighbour
//! discovery), and [`TestBed::new`] waits until the kernel has sent the
//! multicast listener reports of joining the addresses' groups. After that
//! the only frames on the wire are the ones a test sends, so counters can be
//! checked exactly.
//!
//! Everything runs through `ip` and `nsenter --net=/run/netns/NAME`: only
//! the network namespace is entered, so the host's bpffs stays visible
//! (`ip netns exec` would remount `/sys`).

mod bed;
pub mod configs;
pub mod lb;
pub mod router;

use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::AtomicU32;
use std::sync::Mutex;

use xdpath::dataplane::PIN_ROOT;
use xdpath::netns;

pub use bed::TestBed;

/// Prefix of every namespace a test bed makes: `xdpt-<pid>-<n>-a|b`.
pub const NAMESPACE_PREFIX: &str = "xdpt-";
/// Where `ip netns` keeps its namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Beds made by this process so far; numbers names and subnets.
static NEXT_BED: AtomicU32 = AtomicU32::new(0);
/// Serialises `ip netns add`: the first call mounts `/run/netns`, and two
/// of them racing can stack that mount.
static NETNS_ADD: Mutex<()> = Mutex::new(());

/// Why a test that needs root is skipped without it.
pub const NEEDS_ROOT: &str =
    "needs root (BPF_PROG_TEST_RUN / network namespaces); CI runs it as root";

/// Whether a test that needs root (it loads BPF programs, runs
/// `BPF_PROG_TEST_RUN`, builds a [`TestBed`] or enters a namespace) may go
/// on. As root: yes. Otherwise the test is skipped: this prints
/// `skipped: TEST: needs root ...` on stderr and returns `false` — unless
/// `CI` is set (CI runs as root, so a skip there would hide a failure) or
/// `XDPATH_REQUIRE_ROOT=1` (scripts/test.sh), where it panics instead.
///
/// Tests call it through [`needs_root!`](crate::needs_root), which names
/// the test and returns early.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let ci = std::env::var_os("CI").is_some_and(|value| !value.is_empty());
    let required = std::env::var_os("XDPATH_REQUIRE_ROOT").is_some_and(|value| value == "1");
    assert!(
        !ci && !required,
        "{test} needs root (BPF_PROG_TEST_RUN / network namespaces) and is not \
         skipped where {} is set: run it as root",
        if ci { "CI" } else { "XDPATH_REQUIRE_ROOT=1" }
    );
    // Straight to stderr, not through `eprintln!`, which the test harness
    // captures and shows only for a failed test.
    let _ = writeln!(io::stderr().lock(), "skipped: {test}: {NEEDS_ROOT}");
    false
}

/// The test's name, for [`needs_root!`](crate::needs_root): the path of the
/// function the macro is expanded in (`type_name` of a nested item, minus
/// that item and any closures, as in `async` tests).
#[doc(hidden)]
pub fn test_name(item: &'static str) -> String {
    item.trim_end_matches("::__needs_root")
        .replace("::{{closure}}", "")
}

/// First statement of a test that needs root: skips the test (returns from
/// the function) when not root, or fails it when `CI` or
/// `XDPATH_REQUIRE_ROOT=1` is set; see [`testenv::root_or_skip`](crate::testenv::root_or_skip).
#[macro_export]
macro_rules! needs_root {
    () => {{
        fn __needs_root() {}
        let test = $crate::testenv::test_name(::std::any::type_name_of_val(&__needs_root));
        if !$crate::testenv::root_or_skip(&test) {
            return;
        }
    }};
}

/// Errors of building or using a test bed.
#[derive(Debug, thiserror::Error)]
pub enum TestBedError {
    /// A command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
    /// A command could not be started.
    #[error("`{command}` could not start: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: io::Error,
    },
    /// A file or namespace operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: io::Error,
    },
}

/// One end of the bed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Namespace A: where xdpath is attached in the tests and the demo.
    A,
    /// Namespace B: where traffic comes from.
    B,
}

/// One namespace of the bed and its end of the veth pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Namespace name, `xdpt-<pid>-<n>-a` or `-b`.
    pub namespace: String,
    /// `/run/netns/<namespace>`.
    pub path: PathBuf,
    /// The namespace's key: the directory name of its xdpath pins and state
    /// (none until the namespace exists).
    pub netns_key: Option<netns::NamespaceKey>,
    /// The veth end in this namespace (at most 15 characters).
    pub interface: String,
    /// Its MAC address.
    pub mac: [u8; 6],
    /// Its IPv4 address (a /24 inside 10.199.0.0/16).
    pub ipv4: Ipv4Addr,
    /// Its IPv6 address (a /64 inside fd00:199::/48).
    pub ipv6: Ipv6Addr,
}

impl Endpoint {
    /// The MAC as `aa:bb:cc:dd:ee:ff`.
    pub fn mac_string(&self) -> String {
        format_mac(self.mac)
    }

    /// This namespace's xdpath pin directory, `/sys/fs/bpf/xdpath/<key>`.
    pub fn pin_dir(&self) -> PathBuf {
        Path::new(PIN_ROOT).join(self.key().as_str())
    }

    /// This namespace's key (see [`xdpath::netns`]).
    ///
    /// # Panics
    /// Before the bed has made the namespace (test code only).
    pub fn key(&self) -> &netns::NamespaceKey {
        self.netns_key.as_ref().expect("the bed made the namespace")
    }

    /// This namespace's state directory, `/var/lib/xdpath/<key>`.
    pub fn state_dir(&self) -> PathBuf {
        xdpath::control::state::state_dir_of(self.key())
    }

    /// The pin directory of this end's interface.
    pub fn interface_pin_dir(&self) -> PathBuf {
        self.pin_dir().join(&self.interface)
    }
}

/// Removes a namespace's xdpath pins, then the namespace (and with it its
/// interfaces).
pub fn remove_namespace(name: &str, path: &Path) -> Result<(), TestBedError> {
    if let Ok(key) = netns::key_of(path) {
        remove_pins(&key)?;
    }
    run_ok(Command::new("ip").args(["netns", "del", name]))?;
    Ok(())
}

/// Removes a namespace's pins and its filter state
/// (`/var/lib/xdpath/<key>`, see [`xdpath::control::state`]).
pub fn remove_pins(key: &netns::NamespaceKey) -> Result<(), TestBedError> {
    let dirs = [
        xdpath::dataplane::namespace_dir_of(key),
        xdpath::control::state::state_dir_of(key),
    ];
    for dir in dirs {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(TestBedError::Io {
                    what: format!("removing {}", dir.display()),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// `nsenter --net=PATH PROGRAM`: a command in the network namespace at
/// `path` (of any bed).
pub fn nsenter(path: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net={}", path.display()))
        .arg(program);
    command
}

/// The IPv6 settings that keep a bed's namespace quiet: no duplicate
/// address detection, router advertisements or router solicitations.
const QUIET_IPV6: [(&str, &str); 3] = [
    ("accept_dad", "0"),
    ("accept_ra", "0"),
    ("router_solicitations", "0"),
];

/// `sysctl -q -w` in the network namespace at `path`, holding
/// [`QUIET_IPV6`] and the IPv6 settings in `more`, each for every
/// interface there (`all`) and every one made later (`default`); add
/// settings and run it.
pub(crate) fn quiet_ipv6_sysctl(path: &Path, more: &[(&str, &str)]) -> Command {
    let mut sysctl = nsenter(path, "sysctl");
    sysctl.args(["-q", "-w"]);
    for scope in ["all", "default"] {
        for (key, value) in QUIET_IPV6.iter().chain(more) {
            sysctl.arg(format!("net.ipv6.conf.{scope}.{key}={value}"));
        }
    }
    sysctl
}

/// The `xdp` object `ip -j link show` gives for `interface`, in the
/// network namespace at `path`: which program runs there and in which
/// mode; `None` when none does.
pub fn link_xdp(path: &Path, interface: &str) -> Result<Option<serde_json::Value>, TestBedError> {
    let output = run_ok(nsenter(path, "ip").args(["-j", "link", "show", "dev", interface]))?;
    let links: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|error| TestBedError::Io {
            what: format!("reading what `ip -j link show dev {interface}` printed"),
            source: error.into(),
        })?;
    Ok(links[0].get("xdp").cloned())
}

/// Whether `interface`, in the network namespace at `path`, has an XDP
/// program attached (any program: `ip -j link` shows an `xdp` object).
pub fn has_xdp_program(path: &Path, interface: &str) -> bool {
    link_xdp(path, interface).is_ok_and(|xdp| xdp.is_some())
}

fn command_line(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn run(command: &mut Command) -> Result<Output, TestBedError> {
    command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| TestBedError::Spawn {
            command: command_line(command),
            source,
        })
}

pub(crate) fn run_ok(command: &mut Command) -> Result<Output, TestBedError> {
    let output = run(command)?;
    if output.status.success() {
        return Ok(output);
    }
    Err(TestBedError::Command {
        command: command_line(command),
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
