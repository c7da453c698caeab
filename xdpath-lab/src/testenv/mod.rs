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

pub mod configs;
pub mod lb;
pub mod router;

use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xdpath::dataplane::PIN_ROOT;
use xdpath::netns;

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

/// Two namespaces joined by a veth pair; removed on drop.
#[derive(Debug)]
pub struct TestBed {
    number: u32,
    a: Endpoint,
    b: Endpoint,
    /// Which namespaces exist (and so need removing): A, B.
    created: [bool; 2],
}

impl TestBed {
    /// Builds a bed: two namespaces, a veth pair between them, addresses,
    /// static neighbours, no IPv6 autoconfiguration noise.
    ///
    /// On failure whatever was made so far is removed.
    pub fn new() -> Result<Self, TestBedError> {
        let number = NEXT_BED.fetch_add(1, Ordering::Relaxed) + 1;
        let pid = std::process::id();
        // The subnet only has to be unique between the two ends of one bed;
        // beds never share a namespace.
        let subnet = (number % 250 + 1) as u8;
        let endpoint = |suffix: char, host: u8| {
            let namespace = format!("{NAMESPACE_PREFIX}{pid}-{number}-{suffix}");
            Endpoint {
                path: Path::new(NETNS_DIR).join(&namespace),
                namespace,
                netns_key: None,
                interface: format!("xdpt{}{}{suffix}", pid % 100_000, number % 100_000),
                mac: [0x02, 0xc7, (number >> 8) as u8, number as u8, 0x00, host],
                ipv4: Ipv4Addr::new(10, 199, subnet, host),
                ipv6: Ipv6Addr::new(
                    0xfd00,
                    0x199,
                    u16::from(subnet),
                    0,
                    0,
                    0,
                    0,
                    u16::from(host),
                ),
            }
        };
        let mut bed = Self {
            number,
            a: endpoint('a', 1),
            b: endpoint('b', 2),
            created: [false; 2],
        };
        bed.build()?;
        Ok(bed)
    }

    fn build(&mut self) -> Result<(), TestBedError> {
        for index in 0..2 {
            let namespace = self.endpoints()[index].namespace.clone();
            {
                let _guard = NETNS_ADD
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                run_ok(Command::new("ip").args(["netns", "add", &namespace]))?;
            }
            self.created[index] = true;
            let endpoint = if index == 0 { &mut self.a } else { &mut self.b };
            endpoint.netns_key =
                Some(
                    netns::key_of(&endpoint.path).map_err(|source| TestBedError::Io {
                        what: format!("reading the key of {}", endpoint.path.display()),
                        source,
                    })?,
                );
        }
        // Quiet IPv6 before any interface exists, so the veth ends inherit
        // it from `default`: no DAD, no router solicitations, no link-local
        // address (and so no reports for its groups), reports retransmitted
        // after 1 ms rather than up to a second later.
        for endpoint in [&self.a, &self.b] {
            let mut sysctl = nsenter(&endpoint.path, "sysctl");
            sysctl.args(["-q", "-w"]);
            for scope in ["all", "default"] {
                for (key, value) in [
                    ("accept_dad", "0"),
                    ("accept_ra", "0"),
                    ("router_solicitations", "0"),
                    ("mldv1_unsolicited_report_interval", "1"),
                    ("mldv2_unsolicited_report_interval", "1"),
                ] {
                    sysctl.arg(format!("net.ipv6.conf.{scope}.{key}={value}"));
                }
            }
            sysctl.arg("net.ipv6.conf.default.addr_gen_mode=1");
            run_ok(&mut sysctl)?;
        }
        // Both ends are made directly in their namespaces.
        run_ok(Command::new("ip").args([
            "link",
            "add",
            &self.a.interface,
            "address",
            &self.a.mac_string(),
            "netns",
            &self.a.namespace,
            "type",
            "veth",
            "peer",
            "name",
            &self.b.interface,
            "address",
            &self.b.mac_string(),
            "netns",
            &self.b.namespace,
        ]))?;
        for (local, peer) in [(&self.a, &self.b), (&self.b, &self.a)] {
            let ip = |args: &[&str]| {
                let mut command = nsenter(&local.path, "ip");
                command.args(args);
                run_ok(&mut command)
            };
            let v4 = format!("{}/24", local.ipv4);
            let v6 = format!("{}/64", local.ipv6);
            let peer_mac = peer.mac_string();
            let (peer_v4, peer_v6) = (peer.ipv4.to_string(), peer.ipv6.to_string());
            let interface = local.interface.as_str();
            ip(&["link", "set", "dev", "lo", "up"])?;
            ip(&["addr", "add", &v4, "dev", interface])?;
            ip(&["-6", "addr", "add", &v6, "dev", interface, "nodad"])?;
            ip(&["link", "set", "dev", interface, "up"])?;
            for address in [&peer_v4, &peer_v6] {
                ip(&[
                    "neigh",
                    "replace",
                    address,
                    "lladdr",
                    &peer_mac,
                    "dev",
                    interface,
                    "nud",
                    "permanent",
                ])?;
            }
        }
        self.settle()
    }

    /// Waits until neither namespace has sent an IPv6 multicast listener
    /// report for a while: joining the solicited-node groups of the new
    /// addresses sends a few, and tests must not count them.
    fn settle(&self) -> Result<(), TestBedError> {
        const QUIET: Duration = Duration::from_millis(300);
        const LIMIT: Duration = Duration::from_secs(5);
        let start = Instant::now();
        let mut last = self.sent_reports()?;
        let mut since = Instant::now();
        while start.elapsed() < LIMIT {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.sent_reports()?;
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= QUIET && last.iter().all(|&count| count > 0) {
                break;
            }
        }
        Ok(())
    }

    /// Multicast listener reports each namespace has sent so far.
    fn sent_reports(&self) -> Result<[u64; 2], TestBedError> {
        let mut counts = [0; 2];
        for (count, endpoint) in counts.iter_mut().zip([&self.a, &self.b]) {
            let path = endpoint.path.clone();
            let text = netns::run_in(&path, || {
                std::fs::read_to_string("/proc/thread-self/net/snmp6")
            })
            .and_then(|result| result)
            .map_err(|source| TestBedError::Io {
                what: format!("reading snmp6 of {}", endpoint.namespace),
                source,
            })?;
            *count = text
                .lines()
                .filter_map(|line| line.split_once(char::is_whitespace))
                .filter(|(key, _)| {
                    *key == "Icmp6OutMLDv2Reports" || *key == "Icmp6OutGroupMembResponses"
                })
                .filter_map(|(_, value)| value.trim().parse::<u64>().ok())
                .sum();
        }
        Ok(counts)
    }

    fn endpoints(&self) -> [&Endpoint; 2] {
        [&self.a, &self.b]
    }

    /// This bed's number within the process.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Namespace A.
    pub fn a(&self) -> &Endpoint {
        &self.a
    }

    /// Namespace B.
    pub fn b(&self) -> &Endpoint {
        &self.b
    }

    /// One side.
    pub fn side(&self, side: Side) -> &Endpoint {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// Runs `work` on a thread inside namespace A.
    pub fn run_in_a<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<T> {
        netns::run_in(&self.a.path, work)
    }

    /// Runs `work` on a thread inside namespace B.
    pub fn run_in_b<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<T> {
        netns::run_in(&self.b.path, work)
    }

    /// A `Command` that runs `program` inside a side's namespace via
    /// `nsenter --net=/run/netns/NAME`; add arguments and run it.
    pub fn command(&self, side: Side, program: impl AsRef<std::ffi::OsStr>) -> Command {
        nsenter(&self.side(side).path, program)
    }

    /// Runs `program args...` inside a side's namespace and returns its
    /// output whatever its exit status.
    pub fn exec<S: AsRef<std::ffi::OsStr>>(
        &self,
        side: Side,
        program: impl AsRef<std::ffi::OsStr>,
        args: impl IntoIterator<Item = S>,
    ) -> Result<Output, TestBedError> {
        let mut command = self.command(side, program);
        command.args(args);
        run(&mut command)
    }

    /// Like [`TestBed::exec`], but a non-zero exit status is an error.
    pub fn exec_ok<S: AsRef<std::ffi::OsStr>>(
        &self,
        side: Side,
        program: impl AsRef<std::ffi::OsStr>,
        args: impl IntoIterator<Item = S>,
    ) -> Result<Output, TestBedError> {
        let mut command = self.command(side, program);
        command.args(args);
        run_ok(&mut command)
    }

    /// Removes the namespaces of crashed runs: `xdpt-<pid>-*` whose process
    /// is gone, with their xdpath pins. Returns the names removed.
    pub fn sweep_stale() -> Result<Vec<String>, TestBedError> {
        let entries = match std::fs::read_dir(NETNS_DIR) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(TestBedError::Io {
                    what: format!("listing {NETNS_DIR}"),
                    source,
                })
            }
        };
        let mut removed = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Some(pid) = name
                .strip_prefix(NAMESPACE_PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            remove_namespace(&name, &entry.path())?;
            removed.push(name);
        }
        removed.sort();
        Ok(removed)
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

impl Drop for TestBed {
    fn drop(&mut self) {
        for (index, endpoint) in [&self.a, &self.b].into_iter().enumerate() {
            // A namespace whose `ip netns add` was interrupted may exist
            // without being marked: the name is this bed's alone.
            if !self.created[index] && !endpoint.path.exists() {
                continue;
            }
            // Unpinning the link detaches the program; deleting the
            // namespace then removes the veth pair.
            let result = if let Some(key) = &endpoint.netns_key {
                remove_pins(key).and_then(|()| {
                    run_ok(Command::new("ip").args(["netns", "del", &endpoint.namespace])).map(drop)
                })
            } else {
                remove_namespace(&endpoint.namespace, &endpoint.path)
            };
            if let Err(error) = result {
                eprintln!(
                    "xdpath test bed: cleaning up {}: {error}",
                    endpoint.namespace
                );
            }
        }
    }
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

/// Whether `interface`, in the network namespace at `path`, has an XDP
/// program attached (any program: `ip -j link` shows an `xdp` object).
pub fn has_xdp_program(path: &Path, interface: &str) -> bool {
    nsenter(path, "ip")
        .args(["-j", "link", "show", "dev", interface])
        .output()
        .ok()
        .and_then(|output| serde_json::from_slice::<serde_json::Value>(&output.stdout).ok())
        .is_some_and(|links| links[0].get("xdp").is_some())
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
