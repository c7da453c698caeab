//! The backends' web servers: nginx on each backend of the [`LbBed`], the
//! file it serves, and the Python client helper the tests use to ask
//! which backend answered.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{LbBed, Role, BIG_FILE_BYTES, HTTP_PORTS, VIP4, VIP6};
use crate::testenv::{nsenter, TestBedError};

impl LbBed {
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
