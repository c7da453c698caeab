//! Real servers and tools run inside a test bed's namespaces: nginx on
//! side A, curl and hping3 on side B. Used by the end-to-end tests and by
//! `xdpath bench --flood`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::testenv::{Side, TestBed};

/// Errors of starting a server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The server could not be started.
    #[error("starting {what}: {source}")]
    Start {
        /// Which server.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed.
        detail: String,
    },
    /// It started but never answered.
    #[error("{what} did not answer within {seconds} s")]
    NoAnswer {
        /// Which server.
        what: &'static str,
        /// How long we waited.
        seconds: u64,
    },
}

/// nginx answering `ok` on port 80 of side A's IPv4 address; stopped and
/// its files removed on drop.
pub struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx in namespace A with a listen backlog of `backlog` and
    /// waits until it answers a fetch from side B.
    pub fn start(bed: &TestBed, backlog: u32) -> Result<Self, ServerError> {
        let dir = std::env::temp_dir().join(format!(
            "xdpath-nginx-{}-{}",
            std::process::id(),
            bed.number()
        ));
        let io = |source| ServerError::Start {
            what: "nginx",
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let address = bed.a().ipv4;
        let config = format!(
            "user root;\nworker_processes 1;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log stderr crit;\n\
             events {{ worker_connections 512; }}\n\
             http {{ access_log off; client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;\n\
             fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;\n\
             server {{ listen {address}:80 backlog={backlog}; location / {{ return 200 \"ok\\n\"; }} }} }}\n",
            dir = dir.display()
        );
        let config_path = dir.join("nginx.conf");
        std::fs::write(&config_path, config).map_err(io)?;
        let child = bed
            .command(Side::A, "nginx")
            .arg("-c")
            .arg(&config_path)
            .arg("-p")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io)?;
        let nginx = Self { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if fetch(bed, Duration::from_secs(1)) {
                return Ok(nginx);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(ServerError::NoAnswer {
            what: "nginx",
            seconds: 10,
        })
    }
}

/// Stops an nginx master and its workers: SIGTERM makes the master stop
/// them (SIGKILL would leave the workers running, still serving); SIGKILL
/// only if it has not gone within 5 s.
pub fn stop_nginx(child: &mut Child) {
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop_nginx(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// nginx on side A made fragile against SYN floods, so that a flood that is
/// not stopped visibly hurts: `tcp_syncookies=0`, a SYN backlog of 16, no
/// TCP metrics (a client the kernel remembers counts as "proven" and gets
/// past a nearly full SYN queue), and a route back to `spoofed` via side B
/// (without one the kernel drops a SYN before queueing it, as it could not
/// send the SYN-ACK; B drops the SYN-ACKs).
pub fn fragile_nginx(bed: &TestBed, spoofed: &str) -> Result<Nginx, ServerError> {
    let via = bed.b().ipv4.to_string();
    let setup = |program: &str, args: &[&str]| -> Result<(), ServerError> {
        let output = bed
            .exec(Side::A, program, args)
            .map_err(|error| ServerError::Start {
                what: "nginx",
                source: std::io::Error::other(error.to_string()),
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(ServerError::Start {
                what: "nginx",
                source: std::io::Error::other(format!(
                    "{program} {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&output.stderr).trim()
                )),
            })
        }
    };
    setup("ip", &["route", "add", spoofed, "via", &via])?;
    for setting in [
        "net.ipv4.tcp_syncookies=0",
        "net.ipv4.tcp_max_syn_backlog=16",
        "net.core.somaxconn=16",
        "net.ipv4.tcp_no_metrics_save=1",
    ] {
        setup("sysctl", &["-q", "-w", setting])?;
    }
    Nginx::start(bed, 16)
}

/// One HTTP fetch from side B to nginx on side A; true on a 200 in time.
pub fn fetch(bed: &TestBed, timeout: Duration) -> bool {
    let url = format!("http://{}/", bed.a().ipv4);
    let output = bed
        .command(Side::B, "curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time"])
        .arg(format!("{:.1}", timeout.as_secs_f64()))
        .arg(url)
        .output();
    matches!(output, Ok(output) if output.stdout == b"200")
}

/// Fetches `count` times, one after another, and counts the successes.
pub fn fetch_many(bed: &TestBed, count: usize, timeout: Duration) -> usize {
    (0..count).filter(|_| fetch(bed, timeout)).count()
}

/// Starts `hping3 ARGS` in namespace B, stopped after `seconds` by
/// `timeout` (so a crashed caller leaves no flood running).
pub fn hping3(bed: &TestBed, seconds: u32, args: &[&str]) -> Result<Child, ServerError> {
    let mut command: Command = bed.command(Side::B, "timeout");
    command
        .arg("--signal=INT")
        .arg(seconds.to_string())
        .arg("hping3")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command.spawn().map_err(|source| ServerError::Start {
        what: "hping3",
        source,
    })
}

/// Runs this very `xdpath` binary with `args` inside a side's namespace
/// (under `nsenter --net`, as an operator would) and returns its stdout.
pub fn xdpath_in(bed: &TestBed, side: Side, args: &[&str]) -> Result<String, ServerError> {
    let command = format!("xdpath {}", args.join(" "));
    let exe = std::env::current_exe().map_err(|source| ServerError::Start {
        what: "xdpath",
        source,
    })?;
    let output = bed
        .exec(side, exe, args)
        .map_err(|error| ServerError::Command {
            command: command.clone(),
            detail: error.to_string(),
        })?;
    if !output.status.success() {
        return Err(ServerError::Command {
            command,
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
