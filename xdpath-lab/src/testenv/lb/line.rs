//! [`LineBed`]: client, balancer and backend in a line, so that the
//! balancer redirects to another interface.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::Ordering;

use super::backends::start_nginx;
use super::build::quiet_ipv6;
use super::{Role, INTERFACE, NEXT_LB_BED, VIP4, VIP6};
use crate::testenv::{
    nsenter, remove_namespace, run_ok, TestBedError, NAMESPACE_PREFIX, NETNS_DIR,
};

/// A client, a balancer and one backend in a line: the client reaches the
/// balancer's `ethc`, the backend sits behind its `ethb` on another
/// subnet, so the balancer's FIB lookup names another interface and frames
/// leave by redirect. The backend answers through the balancer (plain
/// forwarding), as it has no route of its own to the client.
pub struct LineBed {
    /// Namespaces: client, balancer, backend.
    pub paths: [PathBuf; 3],
    names: Vec<String>,
    server: Option<(Child, PathBuf)>,
}

/// The balancer's interface towards the client.
pub const LINE_CLIENT_SIDE: &str = "ethc";
/// The balancer's interface towards the backend.
pub const LINE_BACKEND_SIDE: &str = "ethb";

impl LineBed {
    /// Builds the line; on failure whatever was made is removed.
    pub fn new() -> Result<Self, TestBedError> {
        let number = NEXT_LB_BED.fetch_add(1, Ordering::Relaxed) + 1;
        let pid = std::process::id();
        let names: Vec<String> = ["client", "lb", "backend"]
            .iter()
            .map(|role| format!("{NAMESPACE_PREFIX}{pid}-line{number}-{role}"))
            .collect();
        let mut bed = Self {
            paths: [0, 1, 2].map(|index| Path::new(NETNS_DIR).join(&names[index])),
            names: Vec::new(),
            server: None,
        };
        for name in &names {
            run_ok(Command::new("ip").args(["netns", "add", name]))?;
            bed.names.push(name.clone());
        }
        bed.build(&names, (number % 250 + 1) as u8)?;
        Ok(bed)
    }

    fn build(&self, names: &[String], subnet: u8) -> Result<(), TestBedError> {
        let [client, lb, backend] = &self.paths;
        let mac = |host: u8| format!("02:c9:{subnet:02x}:00:00:{host:02x}");
        let (front, back) = (format!("10.197.{subnet}"), format!("10.196.{subnet}"));
        for path in &self.paths {
            quiet_ipv6(path)?;
        }
        for (local, local_mac, peer_ns, peer, peer_mac) in [
            (INTERFACE, mac(1), &names[1], LINE_CLIENT_SIDE, mac(2)),
            (LINE_BACKEND_SIDE, mac(3), &names[2], INTERFACE, mac(4)),
        ] {
            let owner = if local == INTERFACE {
                &names[0]
            } else {
                &names[1]
            };
            run_ok(Command::new("ip").args([
                "link", "add", local, "address", &local_mac, "netns", owner, "type", "veth",
                "peer", "name", peer, "address", &peer_mac, "netns", peer_ns,
            ]))?;
        }
        let client_v4 = format!("{front}.1");
        let lb_front = format!("{front}.2");
        let lb_back = format!("{back}.2");
        let backend_v4 = format!("{back}.1");
        for (path, interface, address, neighbour, neighbour_mac) in [
            (client, INTERFACE, &client_v4, &lb_front, mac(2)),
            (lb, LINE_CLIENT_SIDE, &lb_front, &client_v4, mac(1)),
            (lb, LINE_BACKEND_SIDE, &lb_back, &backend_v4, mac(4)),
            (backend, INTERFACE, &backend_v4, &lb_back, mac(3)),
        ] {
            configure_interface(path, interface, address, neighbour, &neighbour_mac)?;
        }
        self.route_and_forward(&lb_front, &lb_back)
    }

    /// The routes to the VIP (client) and back (backend), the VIPs on the
    /// backend's `lo`, forwarding on the balancer, no reverse path filter.
    fn route_and_forward(&self, lb_front: &str, lb_back: &str) -> Result<(), TestBedError> {
        let [client, lb, backend] = &self.paths;
        run_in(
            client,
            "ip",
            &["route", "add", &format!("{VIP4}/32"), "via", lb_front],
        )?;
        run_in(backend, "ip", &["route", "add", "default", "via", lb_back])?;
        run_in(
            backend,
            "ip",
            &["addr", "add", &format!("{VIP4}/32"), "dev", "lo"],
        )?;
        // nginx listens on both VIPs.
        let vip6 = format!("{VIP6}/128");
        run_in(
            backend,
            "ip",
            &["-6", "addr", "add", &vip6, "dev", "lo", "nodad"],
        )?;
        run_in(
            lb,
            "sysctl",
            &["-q", "-w", "net.ipv4.conf.all.forwarding=1"],
        )?;
        for path in &self.paths {
            run_in(
                path,
                "sysctl",
                &[
                    "-q",
                    "-w",
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0",
                ],
            )?;
        }
        Ok(())
    }

    /// The backend's address.
    pub fn backend_address(&self) -> Result<String, TestBedError> {
        let mut command = nsenter(&self.paths[2], "ip");
        command.args(["-4", "-o", "addr", "show", "dev", INTERFACE]);
        let output = run_ok(&mut command)?;
        let text = String::from_utf8_lossy(&output.stdout);
        text.split_whitespace()
            .skip_while(|word| *word != "inet")
            .nth(1)
            .and_then(|cidr| cidr.split('/').next())
            .map(str::to_string)
            .ok_or_else(|| TestBedError::Io {
                what: "reading the backend's address".into(),
                source: std::io::Error::other(text.to_string()),
            })
    }

    /// What nginx said on stderr so far.
    pub fn server_log(&self) -> String {
        self.server
            .as_ref()
            .and_then(|(_, dir)| std::fs::read_to_string(dir.join("nginx.stderr")).ok())
            .unwrap_or_default()
    }

    /// Starts nginx on the backend as `b1`.
    pub fn start_backend(&mut self) -> Result<(), TestBedError> {
        let dir = std::env::temp_dir().join(format!("xdpath-line-{}", self.names.join("-")));
        let child = start_nginx(&self.paths[2], Role::B1, &dir, &[])?;
        self.server = Some((child, dir));
        Ok(())
    }
}

/// Runs `program args` in the namespace at `path`.
fn run_in(path: &Path, program: &str, args: &[&str]) -> Result<(), TestBedError> {
    run_ok(nsenter(path, program).args(args)).map(drop)
}

/// One end of a link of the line: `lo` and `interface` up, its address,
/// a permanent entry for the neighbour at the other end, checksums filled
/// in by the sender.
fn configure_interface(
    path: &Path,
    interface: &str,
    address: &str,
    neighbour: &str,
    neighbour_mac: &str,
) -> Result<(), TestBedError> {
    run_in(path, "ip", &["link", "set", "lo", "up"])?;
    run_in(
        path,
        "ip",
        &["addr", "add", &format!("{address}/24"), "dev", interface],
    )?;
    run_in(path, "ip", &["link", "set", interface, "up"])?;
    run_in(
        path,
        "ip",
        &[
            "neigh",
            "replace",
            neighbour,
            "lladdr",
            neighbour_mac,
            "dev",
            interface,
            "nud",
            "permanent",
        ],
    )?;
    // As in `LbBed`: senders fill their checksums in.
    run_in(path, "ethtool", &["-K", interface, "tx", "off"])
}

impl Drop for LineBed {
    fn drop(&mut self) {
        if let Some((child, dir)) = &mut self.server {
            crate::servers::stop_nginx(child);
            let _ = std::fs::remove_dir_all(dir);
        }
        for name in &self.names {
            let path = Path::new(NETNS_DIR).join(name);
            if let Err(error) = remove_namespace(name, &path) {
                eprintln!("xdpath line test bed: cleaning up {name}: {error}");
            }
        }
    }
}
