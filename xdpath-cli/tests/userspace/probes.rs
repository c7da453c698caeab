//! Probes and helpers of the live tests: ping, polling, an HTTP server,
//! xdpath in a router bed's namespace, frames through the router.

use super::*;

/// `ping -c 1` from B to `address`; whether a reply came.
pub(crate) fn ping(bed: &TestBed, address: &str) -> bool {
    bed.exec(Side::B, "ping", ["-c", "1", "-W", "1", address])
        .is_ok_and(|output| output.status.success())
}

/// Polls `check` for up to `limit`; whether it became true.
pub(crate) fn within(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An HTTP server (python3 -m http.server) in A, stopped on drop.
pub(crate) struct HttpServer(pub(crate) Child);

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs xdpath in the namespace at `path` (a router bed's); it must
/// succeed.
pub(crate) fn xdpath_at(path: &Path, args: &[&str]) {
    let output = nsenter(path, XDPATH)
        .args(args)
        .output()
        .expect("run xdpath");
    assert!(
        output.status.success(),
        "xdpath {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Sends `frames` from h1 through the router; what h2 received meanwhile.
pub(crate) fn through_router(bed: &RouterBed, frames: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let at_h2 = capture(
        &bed.path(Node::H2),
        &bed.h2.interface,
        Duration::from_millis(1200),
    );
    let h1 = bed.h1.interface.clone();
    xdpath::netns::run_in(&bed.path(Node::H1), move || traffic::send(&h1, &frames))
        .expect("run in h1")
        .expect("send from h1");
    at_h2.join().expect("capture at h2")
}

/// UDP frames to port 7000 among `frames`, IPv4 or IPv6, sorted.
pub(crate) fn udp_7000(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut found: Vec<Vec<u8>> = frames
        .iter()
        .filter(|frame| match frame.get(12..14) {
            Some([0x08, 0x00]) => {
                frame.get(23) == Some(&17) && frame.get(36..38) == Some(&[0x1b, 0x58])
            }
            Some([0x86, 0xdd]) => {
                frame.get(20) == Some(&17) && frame.get(56..58) == Some(&[0x1b, 0x58])
            }
            _ => false,
        })
        .cloned()
        .collect();
    found.sort();
    found
}
