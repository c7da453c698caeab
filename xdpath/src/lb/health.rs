//! Health checks of load-balancer backends: one probe (a TCP connect, an
//! HTTP GET that must answer with the expected status, an ICMP echo or a
//! UDP datagram that must not be refused: [`super::echo`]) and the
//! rise/fall bookkeeping that turns probe results into up and down. The
//! daemon runs them; a backend that goes down is taken out of its VIP's
//! Maglev table and given a new generation, so its established flows are
//! placed again on the others rather than sent on to a failed server
//! ([`super::edit::set_down`]); it is put back once it is up.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use super::state::{CheckKind, HealthCheck};

/// Probes `address` once; `Err` says why it failed.
///
/// # Examples
///
/// ```
/// use xdpath::lb::health::probe;
/// use xdpath::lb::state::{CheckKind, HealthCheck};
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let port = listener.local_addr()?.port();
/// let check = HealthCheck {
///     kind: CheckKind::Tcp, port, path: "/".into(), status: 200, codes: Vec::new(),
///     interval_ms: 1000, timeout_ms: 500, rise: 2, fall: 2,
/// };
/// assert!(probe(&check, "127.0.0.1".parse()?, 80).is_ok());
/// drop(listener);
/// assert!(probe(&check, "127.0.0.1".parse()?, 80).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn probe(check: &HealthCheck, address: IpAddr, vip_port: u16) -> Result<(), String> {
    let timeout = Duration::from_millis(check.timeout_ms.max(1));
    if check.kind == CheckKind::Ping {
        return super::echo::ping(address, timeout);
    }
    let port = if check.port == 0 {
        vip_port
    } else {
        check.port
    };
    if port == 0 {
        return Err("no port to check (an all-ports VIP needs a check port)".into());
    }
    let target = SocketAddr::new(address, port);
    if check.kind == CheckKind::Udp {
        return super::echo::udp_connect(target, timeout);
    }
    let mut stream =
        TcpStream::connect_timeout(&target, timeout).map_err(|error| error.to_string())?;
    if check.kind == CheckKind::Tcp {
        return Ok(());
    }
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|error| error.to_string())?;
    let host = match address {
        IpAddr::V4(address) => address.to_string(),
        IpAddr::V6(address) => format!("[{address}]"),
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: xdpathd-health\r\nConnection: close\r\n\r\n",
        check.path
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|error| error.to_string())?;
    // The status line is all that matters; 64 bytes hold it.
    let mut head = [0u8; 64];
    let mut filled = 0;
    while filled < head.len() && !head[..filled].contains(&b'\n') {
        let read = stream
            .read(&mut head[filled..])
            .map_err(|error| error.to_string())?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    let line = String::from_utf8_lossy(&head[..filled]);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {}",
                crate::text::quote(line.lines().next().unwrap_or(""))
            )
        })?;
    if check.expects(status) {
        Ok(())
    } else {
        Err(format!(
            "HTTP status {status}, expected {}",
            check.codes_text()
        ))
    }
}

/// One backend's run of results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracker {
    /// Up (in the table) or down.
    pub up: bool,
    /// Passes in a row.
    pub passes: u32,
    /// Failures in a row.
    pub failures: u32,
}

impl Tracker {
    /// A backend's tracker, starting in the state the data path has.
    pub fn new(up: bool) -> Self {
        Self {
            up,
            passes: 0,
            failures: 0,
        }
    }

    /// Records a probe; returns the new state when it flips: down after
    /// `fall` failures in a row, up after `rise` passes in a row.
    pub fn observe(&mut self, passed: bool, rise: u32, fall: u32) -> Option<bool> {
        if passed {
            self.passes = self.passes.saturating_add(1);
            self.failures = 0;
            if !self.up && self.passes >= rise {
                self.up = true;
                return Some(true);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.passes = 0;
            if self.up && self.failures >= fall {
                self.up = false;
                return Some(false);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_falls_and_rises_on_runs_only() {
        let mut tracker = Tracker::new(true);
        assert_eq!(tracker.observe(false, 2, 3), None);
        assert_eq!(tracker.observe(false, 2, 3), None);
        assert_eq!(tracker.observe(true, 2, 3), None, "a pass breaks the run");
        assert_eq!(tracker.observe(false, 2, 3), None);
        assert_eq!(tracker.observe(false, 2, 3), None);
        assert_eq!(tracker.observe(false, 2, 3), Some(false));
        assert_eq!(tracker.observe(false, 2, 3), None, "already down");
        assert_eq!(tracker.observe(true, 2, 3), None);
        assert_eq!(tracker.observe(true, 2, 3), Some(true));
    }

    #[test]
    fn http_checks_read_the_status() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = std::thread::spawn(move || {
            for answer in [
                "HTTP/1.1 200 OK\r\n\r\n",
                "HTTP/1.1 204 No Content\r\n\r\n",
                "HTTP/1.1 503 Busy\r\n\r\n",
                "junk",
            ] {
                let (mut stream, _) = listener.accept().expect("accept");
                let mut request = [0u8; 256];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        let check = HealthCheck {
            kind: CheckKind::Http,
            port,
            path: "/health".into(),
            status: 200,
            codes: vec![(200, 204)],
            interval_ms: 1000,
            timeout_ms: 1000,
            rise: 1,
            fall: 1,
        };
        let localhost: IpAddr = "127.0.0.1".parse().expect("address");
        assert_eq!(probe(&check, localhost, 0), Ok(()));
        assert_eq!(probe(&check, localhost, 0), Ok(()), "204 is in 200-204");
        assert!(probe(&check, localhost, 0).is_err_and(|why| why.contains("503")));
        assert!(probe(&check, localhost, 0).is_err_and(|why| why.contains("not an HTTP")));
        let _ = server.join();
    }
}
