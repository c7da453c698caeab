//! A load-balancing test bed on one L2 segment: a client, two balancers
//! (for ECMP tests) and three backends, each in its own namespace, joined
//! by a bridge in a switch namespace. Addresses are static and so are the
//! neighbours, in IPv4 and IPv6. Backends carry the VIPs on their loopback
//! and answer clients directly (direct server return).
//!
//! Dropping the [`LbBed`] stops its servers and removes every namespace
//! with its xdpath pins and state. Names follow [`crate::testenv`]'s
//! `xdpt-<pid>-<n>-<role>`, so a crashed run is swept like the others.

mod backends;
mod build;
mod line;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::testenv::{
    nsenter, remove_namespace, run, run_ok, TestBedError, NAMESPACE_PREFIX, NETNS_DIR,
};
use xdpath::netns;

pub use backends::{big_file, start_nginx, PY_ASK_BACKEND};
pub use line::{LineBed, LINE_BACKEND_SIDE, LINE_CLIENT_SIDE};

/// The IPv4 VIP every backend carries on its loopback.
pub const VIP4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The IPv6 VIP.
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
/// The UDP port backends decapsulate GUE on.
pub const GUE_PORT: u16 = 6080;
/// The HTTP ports backends serve on every VIP.
pub const HTTP_PORTS: [u16; 2] = [80, 8080];
/// Size of `/big` on every backend.
pub const BIG_FILE_BYTES: usize = 6 << 20;

/// The roles of the bed's hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Where requests come from.
    Client,
    /// The first balancer.
    Lb1,
    /// The second balancer (same VIPs, for ECMP tests).
    Lb2,
    /// Backend 1.
    B1,
    /// Backend 2.
    B2,
    /// Backend 3.
    B3,
}

impl Role {
    /// Every host.
    pub const ALL: [Role; 6] = [
        Role::Client,
        Role::Lb1,
        Role::Lb2,
        Role::B1,
        Role::B2,
        Role::B3,
    ];
    /// The backends.
    pub const BACKENDS: [Role; 3] = [Role::B1, Role::B2, Role::B3];

    /// Short name: `client`, `lb1`, `b2`, ...
    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Lb1 => "lb1",
            Role::Lb2 => "lb2",
            Role::B1 => "b1",
            Role::B2 => "b2",
            Role::B3 => "b3",
        }
    }

    fn host(self) -> u8 {
        match self {
            Role::Client => 1,
            Role::Lb1 => 2,
            Role::Lb2 => 3,
            Role::B1 => 11,
            Role::B2 => 12,
            Role::B3 => 13,
        }
    }
}

/// One host of the bed.
#[derive(Clone, Debug)]
pub struct Host {
    /// Its role.
    pub role: Role,
    /// Namespace name.
    pub namespace: String,
    /// `/run/netns/<namespace>`.
    pub path: PathBuf,
    /// The namespace's key, for its pins and state.
    pub netns_key: Option<netns::NamespaceKey>,
    /// Its MAC.
    pub mac: [u8; 6],
    /// Its IPv4 address.
    pub ipv4: Ipv4Addr,
    /// Its IPv6 address.
    pub ipv6: Ipv6Addr,
}

/// Beds made by this process so far.
static NEXT_LB_BED: AtomicU32 = AtomicU32::new(0);

/// The bed; see the module documentation.
pub struct LbBed {
    number: u32,
    switch: String,
    hosts: Vec<Host>,
    created: Vec<String>,
    servers: Vec<(Child, PathBuf)>,
}

/// The interface every host has towards the switch.
pub const INTERFACE: &str = "eth0";

impl LbBed {
    /// Builds the bed; on failure whatever was made is removed.
    pub fn new() -> Result<Self, TestBedError> {
        let number = NEXT_LB_BED.fetch_add(1, Ordering::Relaxed) + 1;
        let pid = std::process::id();
        let subnet = (number % 250 + 1) as u8;
        let name = |role: &str| format!("{NAMESPACE_PREFIX}{pid}-lb{number}-{role}");
        let hosts = Role::ALL
            .iter()
            .map(|&role| Host {
                role,
                namespace: name(role.name()),
                path: Path::new(NETNS_DIR).join(name(role.name())),
                netns_key: None,
                mac: [0x02, 0xc8, subnet, 0, 0, role.host()],
                ipv4: Ipv4Addr::new(10, 198, subnet, role.host()),
                ipv6: Ipv6Addr::new(
                    0xfd00,
                    0x198,
                    u16::from(subnet),
                    0,
                    0,
                    0,
                    0,
                    u16::from(role.host()),
                ),
            })
            .collect();
        let mut bed = Self {
            number,
            switch: name("sw"),
            hosts,
            created: Vec::new(),
            servers: Vec::new(),
        };
        bed.build()?;
        Ok(bed)
    }

    /// The host of `role`.
    pub fn host(&self, role: Role) -> &Host {
        // Every role is built in `new`.
        &self.hosts[Role::ALL
            .iter()
            .position(|known| *known == role)
            .unwrap_or(0)]
    }

    /// The switch's namespace (`/run/netns/<name>`).
    pub fn switch_path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.switch)
    }

    /// The switch's port towards `role`'s host.
    pub fn switch_port(role: Role) -> String {
        format!("p{}", role.name())
    }

    /// A command run in `role`'s namespace.
    pub fn command(&self, role: Role, program: impl AsRef<std::ffi::OsStr>) -> Command {
        nsenter(&self.host(role).path, program)
    }

    /// Runs a command in `role`'s namespace and returns its output,
    /// whatever its status.
    pub fn exec<S: AsRef<std::ffi::OsStr>>(
        &self,
        role: Role,
        program: impl AsRef<std::ffi::OsStr>,
        args: impl IntoIterator<Item = S>,
    ) -> Result<Output, TestBedError> {
        run(self.command(role, program).args(args))
    }

    /// Runs a command in `role`'s namespace; fails unless it succeeds.
    pub fn exec_ok<S: AsRef<std::ffi::OsStr>>(
        &self,
        role: Role,
        program: impl AsRef<std::ffi::OsStr>,
        args: impl IntoIterator<Item = S>,
    ) -> Result<String, TestBedError> {
        run_ok(self.command(role, program).args(args))
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Sends the client's VIP traffic through balancer `lb`.
    pub fn route_via(&self, lb: Role) -> Result<(), TestBedError> {
        let gateway = self.host(lb);
        let (v4, v6) = (gateway.ipv4.to_string(), gateway.ipv6.to_string());
        let vip4 = format!("{VIP4}/32");
        let vip6 = format!("{VIP6}/128");
        self.exec_ok(Role::Client, "ip", ["route", "replace", &vip4, "via", &v4])?;
        self.exec_ok(
            Role::Client,
            "ip",
            ["-6", "route", "replace", &vip6, "via", &v6],
        )?;
        Ok(())
    }
}

impl Drop for LbBed {
    fn drop(&mut self) {
        for (child, dir) in &mut self.servers {
            crate::servers::stop_nginx(child);
            let _ = std::fs::remove_dir_all(dir);
        }
        for name in self.created.iter().rev() {
            let path = Path::new(NETNS_DIR).join(name);
            if let Err(error) = remove_namespace(name, &path) {
                eprintln!("xdpath lb test bed: cleaning up {name}: {error}");
            }
        }
    }
}
