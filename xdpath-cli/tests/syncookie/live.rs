//! The live bed: a TCP server behind cookies in a namespace, a client
//! fetching from it, and the counters and half-open sockets read back.

use super::*;

/// A TCP server in a namespace: answers each connection's request line
/// with `REPLY_BYTES` bytes, until dropped.
pub(crate) struct Server {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) thread: Option<std::thread::JoinHandle<()>>,
}

pub(crate) const REPLY_BYTES: usize = 256 * 1024;

impl Server {
    pub(crate) fn start(namespace: &Path, port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = namespace.to_path_buf();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            xdpath::netns::enter(&path).expect("enter namespace A");
            let listener = TcpListener::bind(("::", port)).expect("bind the listener (dual stack)");
            listener.set_nonblocking(true).expect("nonblocking");
            ready_tx.send(()).expect("ready");
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).expect("blocking");
                        stream
                            .set_read_timeout(Some(Duration::from_secs(5)))
                            .expect("timeout");
                        let mut request = [0u8; 64];
                        let _ = stream.read(&mut request);
                        let _ = stream.write_all(&vec![b'x'; REPLY_BYTES]);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the listener is up");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Connects from namespace B and fetches the reply; the byte count.
pub(crate) fn fetch(bed: &TestBed, address: IpAddr, port: u16) -> std::io::Result<usize> {
    bed.run_in_b(move || -> std::io::Result<usize> {
        let mut stream =
            TcpStream::connect_timeout(&SocketAddr::new(address, port), Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"GET /\n")?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply)?;
        Ok(reply.len())
    })?
}

/// A bed with xdpath attached in A (native), cookies on for `port`, the
/// listener's namespace in cookie mode, and NAPI on B's veth so XDP_TX
/// frames reach it.
pub(crate) fn cookie_bed(port: u16) -> TestBed {
    require_root();
    let bed = TestBed::new().expect("build the test bed");
    bed.exec_ok(Side::A, "sysctl", ["-q", "-w", "net.ipv4.tcp_syncookies=2"])
        .expect("tcp_syncookies=2 in A");
    // A default route, as real hosts have: the kernel only stamps its
    // listener's cookie window (tcp_synq_overflow) for a SYN it can route a
    // SYN-ACK back to, and the SYNs a flood lets through are spoofed.
    let (via4, via6) = (bed.b().ipv4.to_string(), bed.b().ipv6.to_string());
    bed.exec_ok(Side::A, "ip", ["route", "add", "default", "via", &via4])
        .expect("IPv4 default route in A");
    bed.exec_ok(
        Side::A,
        "ip",
        ["-6", "route", "add", "default", "via", &via6],
    )
    .expect("IPv6 default route in A");
    // veth hands XDP_TX frames to its peer's XDP receive ring, which is
    // only served while the peer has an XDP program too: attach xdpath
    // (nothing configured, so it passes everything) on B's end.
    let peer = bed.b().interface.clone();
    let output = bed
        .exec(Side::B, XDPATH, ["attach", &peer, "--mode", "native"])
        .expect("run xdpath attach in B");
    assert!(
        output.status.success(),
        "attach in B: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let interface = bed.a().interface.clone();
    let output = bed
        .exec(Side::A, XDPATH, ["attach", &interface, "--mode", "native"])
        .expect("run xdpath attach");
    assert!(
        output.status.success(),
        "attach: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shared = bed.a().pin_dir().join(SHARED_DIR_NAME);
    let open = |name: &str| {
        let data = MapData::from_pin(shared.join(name)).expect("open pinned map");
        Map::Array(data)
    };
    protect_ports(&mut open(abi::map::SYNCOOKIE_PORTS), &[port]);
    enable_cookie_flag(&mut open(abi::map::FILTER_CONFIG));
    bed
}

pub(crate) fn interface_counter(bed: &TestBed, action: Action, reason: Reason) -> Counter {
    let interface = bed.a().interface.clone();
    bed.run_in_a(move || xdpath::dataplane::interface_counters(&interface))
        .expect("run in A")
        .expect("read counters")[counter_index(action, reason) as usize]
}

pub(crate) fn syn_recv_count(bed: &TestBed) -> usize {
    let output = bed
        .exec_ok(Side::A, "ss", ["-Htn", "state", "syn-recv"])
        .expect("ss in A");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count()
}
