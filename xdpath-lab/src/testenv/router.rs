//! A router between two hosts, for the forwarding tests and benchmarks:
//! namespaces `h1`, `r` and `h2`, veth pairs h1–r and r–h2, IPv4 and IPv6
//! on each link, static neighbours everywhere, the hosts routed through
//! `r`, and `r` forwarding. Removed on drop (and swept, like
//! [`crate::testenv::TestBed`], if a run crashed).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::testenv::{
    format_mac, nsenter, quiet_ipv6_sysctl, remove_namespace, run, run_ok, TestBedError,
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One end of a link.
#[derive(Clone, Debug)]
pub struct Port {
    /// The interface.
    pub interface: String,
    /// Its MAC.
    pub mac: [u8; 6],
    /// Its IPv4 address (a /24).
    pub ipv4: Ipv4Addr,
    /// Its IPv6 address (a /64).
    pub ipv6: Ipv6Addr,
}

/// The namespaces of the bed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// The first host.
    H1,
    /// The router.
    Router,
    /// The second host.
    H2,
}

/// Two hosts and a router.
#[derive(Debug)]
pub struct RouterBed {
    names: [String; 3],
    /// h1's port, towards the router.
    pub h1: Port,
    /// The router's port towards h1.
    pub r1: Port,
    /// The router's port towards h2.
    pub r2: Port,
    /// h2's port, towards the router.
    pub h2: Port,
    created: usize,
}

impl RouterBed {
    /// Builds the bed; on failure whatever was made is removed.
    pub fn new() -> Result<Self, TestBedError> {
        let number = NEXT.fetch_add(1, Ordering::Relaxed) + 1;
        let pid = std::process::id();
        let tag = format!("{}{}", pid % 100_000, number % 100);
        let port = |name: &str, link: u8, host: u8| Port {
            interface: format!("xr{tag}{name}"),
            mac: [0x02, 0xc8, number as u8, link, 0x00, host],
            ipv4: Ipv4Addr::new(10, 201, link, host),
            ipv6: Ipv6Addr::new(0xfd00, 0x201, u16::from(link), 0, 0, 0, 0, u16::from(host)),
        };
        let mut bed = Self {
            names: ["h1", "r", "h2"]
                .map(|node| format!("{}{pid}-r{number}-{node}", crate::testenv::NAMESPACE_PREFIX)),
            h1: port("h1", 1, 2),
            r1: port("r1", 1, 1),
            r2: port("r2", 2, 1),
            h2: port("h2", 2, 2),
            created: 0,
        };
        bed.build()?;
        Ok(bed)
    }

    /// The namespace's name.
    pub fn namespace(&self, node: Node) -> &str {
        &self.names[node as usize]
    }

    /// The namespace's path, `/run/netns/<name>`.
    pub fn path(&self, node: Node) -> PathBuf {
        Path::new("/run/netns").join(self.namespace(node))
    }

    /// A command inside a namespace.
    pub fn command(&self, node: Node, program: impl AsRef<std::ffi::OsStr>) -> Command {
        nsenter(&self.path(node), program)
    }

    /// Runs a command inside a namespace.
    pub fn exec<S: AsRef<std::ffi::OsStr>>(
        &self,
        node: Node,
        program: &str,
        args: impl IntoIterator<Item = S>,
    ) -> Result<Output, TestBedError> {
        run(self.command(node, program).args(args))
    }

    /// Like [`RouterBed::exec`]; a non-zero exit is an error.
    pub fn exec_ok<S: AsRef<std::ffi::OsStr>>(
        &self,
        node: Node,
        program: &str,
        args: impl IntoIterator<Item = S>,
    ) -> Result<Output, TestBedError> {
        run_ok(self.command(node, program).args(args))
    }

    fn build(&mut self) -> Result<(), TestBedError> {
        for name in self.names.clone() {
            run_ok(Command::new("ip").args(["netns", "add", &name]))?;
            self.created += 1;
        }
        for node in [Node::H1, Node::Router, Node::H2] {
            self.set_sysctls(node)?;
        }
        self.add_veth_pairs()?;
        let links = [
            (Node::H1, self.h1.clone(), self.r1.clone()),
            (Node::Router, self.r1.clone(), self.h1.clone()),
            (Node::Router, self.r2.clone(), self.h2.clone()),
            (Node::H2, self.h2.clone(), self.r2.clone()),
        ];
        for (node, local, peer) in &links {
            self.configure_port(*node, local, peer)?;
        }
        for (node, gateway) in [(Node::H1, &self.r1), (Node::H2, &self.r2)] {
            let (v4, v6) = (gateway.ipv4.to_string(), gateway.ipv6.to_string());
            self.exec_ok(node, "ip", ["route", "add", "default", "via", &v4])?;
            self.exec_ok(node, "ip", ["-6", "route", "add", "default", "via", &v6])?;
        }
        Ok(())
    }

    /// No IPv6 address detection or router discovery in `node`; forwarding
    /// on in the router.
    fn set_sysctls(&self, node: Node) -> Result<(), TestBedError> {
        let mut sysctl = quiet_ipv6_sysctl(&self.path(node), &[]);
        if node == Node::Router {
            sysctl.args([
                "net.ipv4.conf.all.forwarding=1",
                "net.ipv6.conf.all.forwarding=1",
            ]);
        }
        run_ok(&mut sysctl)?;
        Ok(())
    }

    /// The veth pairs h1–r1 and r2–h2, each end in its namespace.
    fn add_veth_pairs(&self) -> Result<(), TestBedError> {
        let [h1, r, h2] = self.names.clone();
        for (left, left_ns, right, right_ns) in
            [(&self.h1, &h1, &self.r1, &r), (&self.r2, &r, &self.h2, &h2)]
        {
            run_ok(Command::new("ip").args([
                "link",
                "add",
                &left.interface,
                "address",
                &format_mac(left.mac),
                "netns",
                left_ns,
                "type",
                "veth",
                "peer",
                "name",
                &right.interface,
                "address",
                &format_mac(right.mac),
                "netns",
                right_ns,
            ]))?;
        }
        Ok(())
    }

    /// Brings up loopback and `local` in `node` with its addresses, the
    /// `peer`'s permanent neighbour entries, and checksums in software.
    fn configure_port(&self, node: Node, local: &Port, peer: &Port) -> Result<(), TestBedError> {
        let ip = |args: &[&str]| self.exec_ok(node, "ip", args);
        let interface = local.interface.as_str();
        ip(&["link", "set", "dev", "lo", "up"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", local.ipv4),
            "dev",
            interface,
        ])?;
        ip(&[
            "-6",
            "addr",
            "add",
            &format!("{}/64", local.ipv6),
            "dev",
            interface,
            "nodad",
        ])?;
        ip(&["link", "set", "dev", interface, "up"])?;
        for address in [peer.ipv4.to_string(), peer.ipv6.to_string()] {
            ip(&[
                "neigh",
                "replace",
                &address,
                "lladdr",
                &format_mac(peer.mac),
                "dev",
                interface,
                "nud",
                "permanent",
            ])?;
        }
        // Checksums computed in software: a frame redirected at XDP
        // leaves its checksum-offload state behind.
        self.exec_ok(node, "ethtool", ["-K", interface, "tx", "off"])?;
        Ok(())
    }
}

impl Drop for RouterBed {
    fn drop(&mut self) {
        for name in self.names.iter().take(self.created) {
            let path = Path::new("/run/netns").join(name);
            if let Err(error) = remove_namespace(name, &path) {
                eprintln!("xdpath router bed: cleaning up {name}: {error}");
            }
        }
    }
}
