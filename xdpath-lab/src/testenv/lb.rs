//! A load-balancing test bed on one L2 segment: a client, two balancers
//! (for ECMP tests) and three backends, each in its own namespace, joined
//! by a bridge in a switch namespace. Addresses are static and so are the
//! neighbours, in IPv4 and IPv6. Backends carry the VIPs on their loopback
//! and answer clients directly (direct server return).
//!
//! Dropping the [`LbBed`] stops its servers and removes every namespace
//! with its xdpath pins and state. Names follow [`crate::testenv`]'s
//! `xdpt-<pid>-<n>-<role>`, so a crashed run is swept like the others.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::testenv::{
    nsenter, remove_namespace, run, run_ok, TestBedError, NAMESPACE_PREFIX, NETNS_DIR,
};
use xdpath::netns;

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

    fn build(&mut self) -> Result<(), TestBedError> {
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
        let ip = |args: &[&str]| {
            let mut command = nsenter(&host.path, "ip");
            command.args(args);
            run_ok(&mut command)
        };
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
        for peer in self.hosts.iter().filter(|peer| peer.role != host.role) {
            let mac = crate::testenv::format_mac(peer.mac);
            for address in [peer.ipv4.to_string(), peer.ipv6.to_string()] {
                ip(&[
                    "neigh",
                    "replace",
                    &address,
                    "lladdr",
                    &mac,
                    "dev",
                    INTERFACE,
                    "nud",
                    "permanent",
                ])?;
            }
        }
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

    /// Starts nginx on every backend: each VIP on [`HTTP_PORTS`]
    /// answers `/` with the backend's name and serves `/big`
    /// ([`BIG_FILE_BYTES`], different on each backend); every answer has
    /// an `X-Backend` header. Waits until each answers on its own.
    pub fn start_backends(&mut self) -> Result<(), TestBedError> {
        for role in Role::BACKENDS {
            let dir = std::env::temp_dir().join(format!(
                "xdpath-lbbed-{}-{}-{}",
                std::process::id(),
                self.number,
                role.name()
            ));
            let child = self.spawn_backend(role, &dir)?;
            self.servers.push((child, dir));
        }
        for role in Role::BACKENDS {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let url = format!("http://{VIP4}/");
                let output = self.exec(role, "curl", ["-s", "--max-time", "1", &url])?;
                if String::from_utf8_lossy(&output.stdout).trim() == role.name() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(TestBedError::Io {
                        what: format!("nginx on {}", role.name()),
                        source: std::io::Error::other("did not answer within 10 s"),
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }
}

impl LbBed {
    fn spawn_backend(&self, role: Role, dir: &Path) -> Result<Child, TestBedError> {
        let host = self.host(role);
        let own = [host.ipv4.to_string(), format!("[{}]", host.ipv6)];
        start_nginx(&host.path, role, dir, &own)
    }

    fn server_of(&mut self, role: Role) -> Option<&mut (Child, PathBuf)> {
        let position = Role::BACKENDS.iter().position(|known| *known == role)?;
        self.servers.get_mut(position)
    }

    /// Stops backend `role`'s nginx (after [`LbBed::start_backends`]).
    pub fn stop_backend(&mut self, role: Role) {
        if let Some((child, _)) = self.server_of(role) {
            crate::servers::stop_nginx(child);
        }
    }

    /// Starts backend `role`'s nginx again after [`LbBed::stop_backend`].
    pub fn restart_backend(&mut self, role: Role) -> Result<(), TestBedError> {
        let dir = match self.server_of(role) {
            Some((_, dir)) => dir.clone(),
            None => return Ok(()),
        };
        let child = self.spawn_backend(role, &dir)?;
        if let Some(server) = self.server_of(role) {
            server.0 = child;
        }
        Ok(())
    }
}

/// Starts nginx in the namespace at `path` as backend `role`, with its
/// files in `dir` (see [`LbBed::start_backends`]).
pub fn start_nginx(
    path: &Path,
    role: Role,
    dir: &Path,
    own: &[String],
) -> Result<Child, TestBedError> {
    let io = |what: &str| {
        let what = format!("{what} for {}", role.name());
        move |source| TestBedError::Io { what, source }
    };
    std::fs::create_dir_all(dir).map_err(io("making the nginx directory"))?;
    std::fs::write(dir.join("big"), big_file(role)).map_err(io("writing /big"))?;
    let mut listen = String::new();
    for port in HTTP_PORTS {
        listen.push_str(&format!("listen {VIP4}:{port}; listen [{VIP6}]:{port}; "));
    }
    // The backend's own addresses, for health checks.
    for address in own {
        listen.push_str(&format!("listen {address}:80; "));
    }
    let name = role.name();
    let config = format!(
        "user root;\nworker_processes 1;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log stderr crit;\n\
         events {{ worker_connections 1024; }}\n\
         http {{ access_log off; client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;\n\
         fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;\n\
         server {{ {listen}\n\
         location = /big {{ root {dir}; add_header X-Backend {name}; }}\n\
         location / {{ add_header X-Backend {name}; return 200 \"{name}\\n\"; }} }} }}\n",
        dir = dir.display()
    );
    let config_path = dir.join("nginx.conf");
    std::fs::write(&config_path, config).map_err(io("writing nginx.conf"))?;
    nsenter(path, "nginx")
        .arg("-c")
        .arg(&config_path)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("nginx.stderr")).map_err(io("making nginx.stderr"))?)
        .spawn()
        .map_err(io("starting nginx"))
}

/// The `/big` file of a backend: its name, then a pattern of its own.
pub fn big_file(role: Role) -> Vec<u8> {
    let seed = u32::from(role.host());
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut bytes = Vec::with_capacity(BIG_FILE_BYTES);
    bytes.extend_from_slice(role.name().as_bytes());
    while bytes.len() < BIG_FILE_BYTES {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(BIG_FILE_BYTES);
    bytes
}

/// IPv6 without autoconfiguration noise, inherited by interfaces made
/// later.
fn quiet_ipv6(path: &Path) -> Result<(), TestBedError> {
    let mut sysctl = nsenter(path, "sysctl");
    sysctl.args(["-q", "-w"]);
    for scope in ["all", "default"] {
        for (key, value) in [
            ("accept_dad", "0"),
            ("accept_ra", "0"),
            ("router_solicitations", "0"),
        ] {
            sysctl.arg(format!("net.ipv6.conf.{scope}.{key}={value}"));
        }
    }
    sysctl.arg("net.ipv6.conf.default.addr_gen_mode=1");
    run_ok(&mut sysctl).map(drop)
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
        let run = |path: &Path, program: &str, args: &[&str]| {
            let mut command = nsenter(path, program);
            command.args(args);
            run_ok(&mut command).map(drop)
        };
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
            run(path, "ip", &["link", "set", "lo", "up"])?;
            run(
                path,
                "ip",
                &["addr", "add", &format!("{address}/24"), "dev", interface],
            )?;
            run(path, "ip", &["link", "set", interface, "up"])?;
            run(
                path,
                "ip",
                &[
                    "neigh",
                    "replace",
                    neighbour,
                    "lladdr",
                    &neighbour_mac,
                    "dev",
                    interface,
                    "nud",
                    "permanent",
                ],
            )?;
            // As in `LbBed`: senders fill their checksums in.
            run(path, "ethtool", &["-K", interface, "tx", "off"])?;
        }
        run(
            client,
            "ip",
            &["route", "add", &format!("{VIP4}/32"), "via", &lb_front],
        )?;
        run(backend, "ip", &["route", "add", "default", "via", &lb_back])?;
        run(
            backend,
            "ip",
            &["addr", "add", &format!("{VIP4}/32"), "dev", "lo"],
        )?;
        // nginx listens on both VIPs.
        let vip6 = format!("{VIP6}/128");
        run(
            backend,
            "ip",
            &["-6", "addr", "add", &vip6, "dev", "lo", "nodad"],
        )?;
        run(
            lb,
            "sysctl",
            &["-q", "-w", "net.ipv4.conf.all.forwarding=1"],
        )?;
        for path in &self.paths {
            run(
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

/// Python for the LB beds' clients: `ask(s)` sends one `GET /` on the
/// connected socket `s` and returns the answer's `X-Backend` header
/// (`none` without one, `closed` when the connection closes first). The
/// tests' scripts start with it.
pub const PY_ASK_BACKEND: &str = r#"
def ask(s):
    s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
            fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
            if len(body) >= int(fields.get(b"content-length", b"0")):
                return fields.get(b"x-backend", b"none").decode()
        chunk = s.recv(4096)
        if not chunk:
            return "closed"
        data += chunk
"#;
