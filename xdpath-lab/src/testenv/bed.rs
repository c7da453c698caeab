//! [`TestBed`]: building the two namespaces and their veth pair, waiting
//! until they are quiet, running commands in them, and removing it all on
//! drop.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{
    nsenter, quiet_ipv6_sysctl, remove_namespace, remove_pins, run, run_ok, Endpoint, Side,
    TestBedError, NAMESPACE_PREFIX, NETNS_ADD, NETNS_DIR, NEXT_BED,
};
use xdpath::netns;

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
        self.add_namespaces()?;
        // Quiet IPv6 before any interface exists, so the veth ends inherit
        // it from `default`: no DAD, no router solicitations, no link-local
        // address (and so no reports for its groups), reports retransmitted
        // after 1 ms rather than up to a second later.
        for endpoint in [&self.a, &self.b] {
            quiet_ipv6(endpoint)?;
        }
        self.add_veth_pair()?;
        for (local, peer) in [(&self.a, &self.b), (&self.b, &self.a)] {
            configure_end(local, peer)?;
        }
        self.settle()
    }

    /// Adds both namespaces (marking each as made) and reads their keys.
    fn add_namespaces(&mut self) -> Result<(), TestBedError> {
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
        Ok(())
    }

    /// The veth pair, each end made directly in its namespace.
    fn add_veth_pair(&self) -> Result<(), TestBedError> {
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
        ]))
        .map(drop)
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
        run(self.command(side, program).args(args))
    }

    /// Like [`TestBed::exec`], but a non-zero exit status is an error.
    pub fn exec_ok<S: AsRef<std::ffi::OsStr>>(
        &self,
        side: Side,
        program: impl AsRef<std::ffi::OsStr>,
        args: impl IntoIterator<Item = S>,
    ) -> Result<Output, TestBedError> {
        run_ok(self.command(side, program).args(args))
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

/// IPv6 without autoconfiguration noise in `endpoint`'s namespace (see
/// [`TestBed::build`]).
fn quiet_ipv6(endpoint: &Endpoint) -> Result<(), TestBedError> {
    let mut sysctl = quiet_ipv6_sysctl(
        &endpoint.path,
        &[
            ("mldv1_unsolicited_report_interval", "1"),
            ("mldv2_unsolicited_report_interval", "1"),
        ],
    );
    sysctl.arg("net.ipv6.conf.default.addr_gen_mode=1");
    run_ok(&mut sysctl).map(drop)
}

/// One end of the pair: `lo` and the veth end up, its addresses, permanent
/// neighbour entries for the other end.
fn configure_end(local: &Endpoint, peer: &Endpoint) -> Result<(), TestBedError> {
    let ip = |args: &[&str]| run_ok(nsenter(&local.path, "ip").args(args));
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
