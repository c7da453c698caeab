//! Building the [`LbBed`]: the switch and its bridge, one namespace per
//! host, and each host's addresses, neighbours and sysctls.

use std::path::Path;
use std::process::{Command, Output};

use super::{Host, LbBed, Role, INTERFACE, VIP4, VIP6};
use crate::testenv::{nsenter, quiet_ipv6_sysctl, run_ok, TestBedError, NETNS_DIR};
use xdpath::netns;

impl LbBed {
    pub(super) fn build(&mut self) -> Result<(), TestBedError> {
        self.add_namespace(&self.switch.clone())?;
        let switch_path = Path::new(NETNS_DIR).join(&self.switch);
        quiet_ipv6(&switch_path)?;
        let sw = |args: &[&str]| {
            let mut command = nsenter(&switch_path, "ip");
            command.args(args);
            run_ok(&mut command)
        };
        sw(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        sw(&["link", "set", "br0", "up"])?;
        for index in 0..self.hosts.len() {
            let namespace = self.hosts[index].namespace.clone();
            self.add_namespace(&namespace)?;
            let host = &mut self.hosts[index];
            host.netns_key =
                Some(
                    netns::key_of(&host.path).map_err(|source| TestBedError::Io {
                        what: format!("reading the key of {}", host.path.display()),
                        source,
                    })?,
                );
            quiet_ipv6(&host.path)?;
            let port = Self::switch_port(host.role);
            let mac = crate::testenv::format_mac(host.mac);
            run_ok(Command::new("ip").args([
                "link",
                "add",
                INTERFACE,
                "address",
                &mac,
                "netns",
                &host.namespace,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &self.switch,
            ]))?;
            sw(&["link", "set", &port, "master", "br0", "up"])?;
            if matches!(host.role, Role::Lb1 | Role::Lb2) {
                // A frame a balancer sends with XDP_TX reaches its veth peer
                // only if the peer runs an XDP program too (GRO, which
                // should do, does not here): xdpath with no rules passes
                // everything.
                let port_name = port.clone();
                netns::run_in(&switch_path, move || {
                    xdpath::dataplane::attach(
                        &port_name,
                        xdpath::dataplane::ModeChoice::Native,
                        xdpath_core::InterfaceConfig::default(),
                    )
                })
                .map_err(|source| TestBedError::Io {
                    what: format!("entering {}", self.switch),
                    source,
                })?
                .map_err(|error| TestBedError::Io {
                    what: format!("attaching xdpath to {port}"),
                    source: std::io::Error::other(error.to_string()),
                })?;
            }
        }
        for host in &self.hosts {
            self.configure_host(host)?;
        }
        self.route_via(Role::Lb1)
    }

    fn add_namespace(&mut self, name: &str) -> Result<(), TestBedError> {
        run_ok(Command::new("ip").args(["netns", "add", name]))?;
        self.created.push(name.to_string());
        Ok(())
    }

    fn configure_host(&self, host: &Host) -> Result<(), TestBedError> {
        let ip = |args: &[&str]| ip_in(host, args);
        ip(&["link", "set", "lo", "up"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", host.ipv4),
            "dev",
            INTERFACE,
        ])?;
        ip(&[
            "-6",
            "addr",
            "add",
            &format!("{}/64", host.ipv6),
            "dev",
            INTERFACE,
            "nodad",
        ])?;
        ip(&["link", "set", INTERFACE, "up"])?;
        // veth leaves TCP and UDP checksums to the receiver (checksum
        // offload); a frame that goes through XDP_TX or decapsulation loses
        // that note, so the sender must fill the checksum in, as a real NIC
        // would.
        let mut ethtool = nsenter(&host.path, "ethtool");
        ethtool.args(["-K", INTERFACE, "tx", "off"]);
        run_ok(&mut ethtool)?;
        self.add_neighbours(host)?;
        configure_role(host)
    }

    /// Permanent neighbour entries on `host` for every other host.
    fn add_neighbours(&self, host: &Host) -> Result<(), TestBedError> {
        for peer in self.hosts.iter().filter(|peer| peer.role != host.role) {
            let mac = crate::testenv::format_mac(peer.mac);
            for address in [peer.ipv4.to_string(), peer.ipv6.to_string()] {
                ip_in(
                    host,
                    &[
                        "neigh",
                        "replace",
                        &address,
                        "lladdr",
                        &mac,
                        "dev",
                        INTERFACE,
                        "nud",
                        "permanent",
                    ],
                )?;
            }
        }
        Ok(())
    }
}

/// Runs `ip args` in `host`'s namespace.
fn ip_in(host: &Host, args: &[&str]) -> Result<Output, TestBedError> {
    run_ok(nsenter(&host.path, "ip").args(args))
}

/// The sysctls of `host`'s role; on a backend also the VIPs on `lo`.
fn configure_role(host: &Host) -> Result<(), TestBedError> {
    let ip = |args: &[&str]| ip_in(host, args);
    let mut sysctl = nsenter(&host.path, "sysctl");
    sysctl.args(["-q", "-w"]);
    sysctl.args([
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
    ]);
    match host.role {
        // bpf_fib_lookup answers only where forwarding is on.
        Role::Lb1 | Role::Lb2 => {
            sysctl.args([
                "net.ipv4.conf.all.forwarding=1",
                "net.ipv6.conf.all.forwarding=1",
            ]);
        }
        Role::B1 | Role::B2 | Role::B3 => {
            // The VIP is on lo: never answer ARP for it on the wire.
            sysctl.args([
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
            ]);
            ip(&["addr", "add", &format!("{VIP4}/32"), "dev", "lo"])?;
            ip(&[
                "-6",
                "addr",
                "add",
                &format!("{VIP6}/128"),
                "dev",
                "lo",
                "nodad",
            ])?;
        }
        Role::Client => {}
    }
    run_ok(&mut sysctl)?;
    Ok(())
}

/// IPv6 without autoconfiguration noise, inherited by interfaces made
/// later.
pub(super) fn quiet_ipv6(path: &Path) -> Result<(), TestBedError> {
    let mut sysctl = quiet_ipv6_sysctl(path, &[]);
    sysctl.arg("net.ipv6.conf.default.addr_gen_mode=1");
    run_ok(&mut sysctl).map(drop)
}
