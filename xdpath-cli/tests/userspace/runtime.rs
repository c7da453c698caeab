//! The harness of the kernel ≡ user space comparison: capturing frames on
//! an interface, the traffic of one run, the filter and balancer
//! configuration, the counters, and a runtime started and stopped.

use super::*;

/// Frames an interface receives (not those it sends) for `window`,
/// captured by a packet socket in the namespace at `path`. The capture is
/// listening when this returns.
pub(crate) fn capture(path: &Path, interface: &str, window: Duration) -> JoinHandle<Vec<Vec<u8>>> {
    let path = path.to_path_buf();
    let interface = interface.to_string();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        xdpath::netns::enter(&path).expect("enter the namespace");
        let ifindex = xdpath::control::interface_index(&interface).expect("the interface");
        // SAFETY: plain socket(2); owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                (libc::ETH_P_ALL as u16).to_be() as i32,
            )
        };
        assert!(fd >= 0, "packet socket");
        // SAFETY: a fresh descriptor.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: zeroed sockaddr_ll is valid; bind to the interface.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        address.sll_ifindex = ifindex as i32;
        let bound = unsafe {
            libc::bind(
                socket.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(bound, 0, "bind the packet socket");
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: a valid timeval option.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                size_of::<libc::timeval>() as u32,
            )
        };
        ready_tx.send(()).expect("ready");
        let mut frames = Vec::new();
        let end = Instant::now() + window;
        let mut buffer = vec![0u8; 65_536];
        while Instant::now() < end {
            // SAFETY: zeroed sockaddr_ll to receive into.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len = size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: buffer and address valid for their lengths.
            let len = unsafe {
                libc::recvfrom(
                    socket.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut from_len,
                )
            };
            if len > 0 && from.sll_pkttype != libc::PACKET_OUTGOING {
                frames.push(buffer[..len as usize].to_vec());
            }
        }
        frames
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the capture is listening");
    handle
}

/// The frames of one run: the mix, frames the state acts on, and SYNs to
/// the VIP from several ports.
pub(crate) fn traffic(bed: &TestBed) -> Vec<Vec<u8>> {
    let (a, b) = (bed.a(), bed.b());
    let spec = |network, transport| {
        FrameSpec::new(network, transport)
            .with_macs(b.mac, a.mac)
            .build()
    };
    let v4 = Network::V4(b.ipv4.octets(), a.ipv4.octets());
    let mut frames: Vec<Vec<u8>> = Mix::for_bed(bed)
        .frames
        .into_iter()
        .map(|frame| frame.bytes)
        .collect();
    frames.push(spec(v4, Transport::udp(40_100, 9999)));
    frames.push(spec(v4, Transport::udp(40_101, 7777)));
    frames.push(spec(
        Network::V4(BLOCKED, a.ipv4.octets()),
        Transport::udp(40_102, 7777),
    ));
    for port in 41_000..41_008 {
        frames.push(spec(
            Network::V4(b.ipv4.octets(), VIP),
            Transport::tcp(port, 80, 0x02),
        ));
    }
    // A full-size segment (IP 1500 bytes, DF): too big for A's 1500-byte
    // device once encapsulated, answered with ICMP by both builds.
    frames.push(
        FrameSpec::new(
            Network::V4(b.ipv4.octets(), VIP),
            Transport::tcp(41_010, 80, 0x10),
        )
        .with_macs(b.mac, a.mac)
        .with_payload(&[0x5a; 1460])
        .build(),
    );
    frames
}

/// ICMP "fragmentation needed" frames among `frames`, sorted.
pub(crate) fn too_big_answers(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut found: Vec<Vec<u8>> = frames
        .iter()
        .filter(|frame| {
            frame.len() > 36
                && frame[12..14] == [0x08, 0x00]
                && frame[23] == 1
                && frame[34..36] == [3, 4]
        })
        .cloned()
        .collect();
    found.sort();
    found
}

/// IPIP frames (IPv4 protocol 4) among `frames`.
pub(crate) fn encapsulated(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut found: Vec<Vec<u8>> = frames
        .iter()
        .filter(|frame| frame.len() > 34 && frame[12..14] == [0x08, 0x00] && frame[23] == 4)
        .cloned()
        .collect();
    found.sort();
    found
}

/// The same state in A for both runs: two deny rules, a blocklisted
/// source, a VIP with B as its only backend (IPIP).
pub(crate) fn configure(bed: &TestBed) {
    let b = bed.b();
    // The balancer's next hop comes from the FIB, which answers only
    // where the kernel forwards.
    bed.exec_ok(
        Side::A,
        "sysctl",
        ["-q", "-w", "net.ipv4.conf.all.forwarding=1"],
    )
    .expect("forwarding in A");
    drop_udp_9999(bed, Side::A);
    let source6 = format!("{}/128", b.ipv6);
    xdpath(
        bed,
        Side::A,
        &[
            "filter", "add", "--src", &source6, "--proto", "tcp", "--action", "drop",
        ],
    );
    let blocked = format!(
        "{}.{}.{}.{}/32",
        BLOCKED[0], BLOCKED[1], BLOCKED[2], BLOCKED[3]
    );
    xdpath(bed, Side::A, &["block", "add", &blocked]);
    xdpath(
        bed,
        Side::A,
        &[
            "lb",
            "config",
            "--source-v4",
            "172.16.0.0/16",
            "--source-v6",
            "fd00:172::/64",
        ],
    );
    let vip = format!("{}.{}.{}.{}:80/tcp", VIP[0], VIP[1], VIP[2], VIP[3]);
    xdpath(bed, Side::A, &["lb", "vip", "add", &vip]);
    xdpath(
        bed,
        Side::A,
        &["lb", "backend", "add", &vip, &b.ipv4.to_string()],
    );
}

/// The (verdict, reason) → packets, bytes of `xdpath stats IF --json`.
pub(crate) fn counters(bed: &TestBed) -> BTreeMap<(String, String), (u64, u64)> {
    let interface = bed.a().interface.clone();
    let text = xdpath(bed, Side::A, &["--json", "stats", &interface]);
    let value: serde_json::Value = serde_json::from_str(&text).expect("stats JSON");
    let rows = value[0]["counters"]
        .as_array()
        .expect("counter rows")
        .clone();
    rows.iter()
        .map(|row| {
            (
                (
                    row["action"].as_str().unwrap_or("").to_string(),
                    row["reason"].as_str().unwrap_or("").to_string(),
                ),
                (
                    row["packets"].as_u64().unwrap_or(0),
                    row["bytes"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect()
}

/// The user-space runtime on A's interface, stopped (SIGTERM) on drop.
pub(crate) struct Runtime {
    pub(crate) child: Child,
}

impl Runtime {
    pub(crate) fn start(bed: &TestBed, extra: &[&str]) -> Self {
        Self::start_in(&bed.a().path, &bed.a().interface, extra)
    }

    /// On `interface` in the namespace at `path`.
    pub(crate) fn start_in(path: &Path, interface: &str, extra: &[&str]) -> Self {
        let child = nsenter(path, XDPATH)
            .args(["--json", "run", "--userspace", interface])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start xdpath run");
        let runtime = Self { child };
        // Up once its redirect program is attached (the last step).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !has_xdp_program(path, interface) {
            assert!(
                Instant::now() < deadline,
                "the runtime never attached its program"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        runtime
    }

    /// Stops it and returns its JSON report.
    pub(crate) fn stop(mut self) -> serde_json::Value {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let output =
            std::mem::replace(&mut self.child, Command::new("true").spawn().expect("true"))
                .wait_with_output()
                .expect("wait for xdpath run");
        assert!(
            output.status.success(),
            "xdpath run: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("the runtime's JSON report")
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // SAFETY: signalling our own child (harmless if it has ended).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// One pass of the traffic: what reached A's stack (on `stack_interface`)
/// and what came back to B.
pub(crate) fn send_and_capture(
    bed: &TestBed,
    stack_interface: &str,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let window = Duration::from_millis(1500);
    let at_stack = capture(&bed.a().path, stack_interface, window);
    let b_interface = bed.b().interface.clone();
    let at_b = capture(&bed.b().path, &b_interface, window);
    let frames = traffic(bed);
    bed.run_in_b(move || traffic::send(&b_interface, &frames))
        .expect("run in B")
        .expect("send the traffic");
    let mut stack = at_stack.join().expect("capture at A");
    stack.sort();
    (stack, at_b.join().expect("capture at B"))
}
