//! Health checks of load-balancer backends: one probe (a TCP connect, an
//! HTTP GET that must answer with the expected status, an ICMP echo or a
//! UDP datagram that must not be refused: [`super::echo`]) and the
//! rise/fall bookkeeping that turns probe results into up and down. The
//! daemon runs them; a backend that goes down is taken out of its VIP's
//! Maglev table and given a new generation, so its established flows are
//! placed again on the others rather than sent on to a failed server
//! ([`super::edit::set_down`]); it is put back once it is up.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::state::{CheckKind, HealthCheck};

/// Probes `address` once, within the check's timeout for all of it
/// (connect, request and answer); `Err` says why it failed.
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
    // One deadline for the whole check: `--timeout` is how long a check
    // may take, so a backend that trickles its answer (or connects slowly
    // and then answers slowly) fails instead of passing late.
    let deadline = Deadline::after(Duration::from_millis(check.timeout_ms.max(1)));
    if check.kind == CheckKind::Ping {
        return super::echo::ping(address, deadline.left()?);
    }
    let port = if check.port == 0 {
        vip_port
    } else {
        check.port
    };
    if port == 0 {
        return Err(NO_CHECK_PORT.into());
    }
    let target = SocketAddr::new(address, port);
    if check.kind == CheckKind::Udp {
        return super::echo::udp_connect(target, deadline.left()?);
    }
    let mut stream = TcpStream::connect_timeout(&target, deadline.left()?)
        .map_err(|error| deadline.explain("connecting", &error))?;
    if check.kind == CheckKind::Tcp {
        return Ok(());
    }
    let host = match address {
        IpAddr::V4(address) => address.to_string(),
        IpAddr::V6(address) => format!("[{address}]"),
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: xdpathd-health\r\nConnection: close\r\n\r\n",
        check.path
    );
    write_by(&mut stream, request.as_bytes(), &deadline)?;
    let head = read_status_line(&mut stream, &deadline)?;
    let line = String::from_utf8_lossy(&head);
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

/// Why a check of an all-ports VIP without a check port cannot be made
/// (also the refusal of such a check: [`super::edit::set_health`]).
pub const NO_CHECK_PORT: &str = "no port to check (an all-ports VIP needs a check port)";

/// The end of one check, which every step of it shares.
struct Deadline {
    end: Instant,
    timeout: Duration,
}

impl Deadline {
    fn after(timeout: Duration) -> Self {
        Self {
            end: Instant::now() + timeout,
            timeout,
        }
    }

    /// The time left, or the check's failure once there is none (a zero
    /// socket timeout would mean "wait for ever").
    fn left(&self) -> Result<Duration, String> {
        let left = self.end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(self.expired())
        } else {
            Ok(left)
        }
    }

    fn expired(&self) -> String {
        format!(
            "no complete answer within the check's timeout ({} ms)",
            self.timeout.as_millis()
        )
    }

    /// A socket error while `doing`: a timeout is the check's.
    fn explain(&self, doing: &str, error: &std::io::Error) -> String {
        if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
            self.expired()
        } else {
            format!("{doing}: {error}")
        }
    }
}

/// Writes all of `bytes` before the deadline.
fn write_by(stream: &mut TcpStream, mut bytes: &[u8], deadline: &Deadline) -> Result<(), String> {
    while !bytes.is_empty() {
        stream
            .set_write_timeout(Some(deadline.left()?))
            .map_err(|error| error.to_string())?;
        match stream.write(bytes) {
            Ok(0) => return Err("sending the request: the connection was closed".into()),
            Ok(written) => bytes = bytes.get(written..).unwrap_or_default(),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(deadline.explain("sending the request", &error)),
        }
    }
    Ok(())
}

/// Reads up to the end of the status line (64 bytes hold it; more is not
/// needed) before the deadline, or what came before the server closed.
fn read_status_line(stream: &mut TcpStream, deadline: &Deadline) -> Result<Vec<u8>, String> {
    let mut head = Vec::with_capacity(64);
    let mut chunk = [0u8; 64];
    while head.len() < chunk.len() && !head.contains(&b'\n') {
        stream
            .set_read_timeout(Some(deadline.left()?))
            .map_err(|error| error.to_string())?;
        let wanted = chunk.len() - head.len();
        match stream.read(chunk.get_mut(..wanted).unwrap_or_default()) {
            Ok(0) => break,
            Ok(read) => head.extend_from_slice(chunk.get(..read).unwrap_or_default()),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(deadline.explain("reading the answer", &error)),
        }
    }
    Ok(head)
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

    /// `--timeout` bounds the whole check: a server that sends a valid
    /// status line one byte at a time, each byte well within the timeout,
    /// fails once the timeout is spent (it passed after ~17 reads when the
    /// timeout was per read).
    #[test]
    fn a_trickling_answer_fails_within_the_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = [0u8; 256];
            let _ = stream.read(&mut request);
            for byte in b"HTTP/1.1 200 OK\r\n\r\n" {
                std::thread::sleep(Duration::from_millis(60));
                if stream.write_all(&[*byte]).is_err() {
                    return;
                }
            }
        });
        let check = HealthCheck {
            kind: CheckKind::Http,
            port,
            path: "/".into(),
            status: 200,
            codes: Vec::new(),
            interval_ms: 1000,
            timeout_ms: 300,
            rise: 1,
            fall: 1,
        };
        let start = Instant::now();
        let result = probe(&check, "127.0.0.1".parse().expect("address"), 0);
        let took = start.elapsed();
        assert!(
            result
                .as_ref()
                .is_err_and(|why| why.contains("within the check's timeout (300 ms)")),
            "{result:?} after {took:?}"
        );
        assert!(took < Duration::from_millis(600), "took {took:?}");
        let _ = server.join();
    }
}
