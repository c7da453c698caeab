//! The harness of the AF_XDP tests: the Python senders and receivers in
//! B, marked UDP frames, the program attached with a socket registered,
//! and the interface's XDP mode.

use std::io::Lines;
use std::process::ChildStdout;

use super::*;

pub(crate) const PYTHON: &str = "/usr/bin/python3";
pub(crate) const RX_FRAMES: usize = 5;
pub(crate) const TX_FRAMES: usize = 3;
pub(crate) const RX_MARKER: &[u8] = b"xdpath-afxdp-rx-";
pub(crate) const TX_MARKER: &[u8] = b"xdpath-afxdp-tx-";

/// Sends each hex argument as one frame on the interface `argv[1]`.
pub(crate) const SEND_PY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for frame in sys.argv[2:]:
    s.send(bytes.fromhex(frame))
"#;

/// Captures incoming frames on `argv[1]` holding the marker `argv[2]`
/// (hex) and prints each as hex; after `argv[3]` of them keeps listening
/// half a second for extras. Prints "ready" once bound.
pub(crate) const RECEIVE_PY: &str = r#"
import socket, sys, time
iface, marker, want = sys.argv[1], bytes.fromhex(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: keep every frame
s.bind((iface, 0))
s.settimeout(0.05)
print("ready", flush=True)
got, deadline, linger = 0, time.monotonic() + 10, None
while time.monotonic() < deadline and (linger is None or time.monotonic() < linger):
    try:
        data, address = s.recvfrom(65535)
    except socket.timeout:
        continue
    if address[2] == socket.PACKET_OUTGOING or marker not in data:
        continue
    print(data.hex(), flush=True)
    got += 1
    if got >= want and linger is None:
        linger = time.monotonic() + 0.5
"#;

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// An Ethernet/IPv4/UDP frame from `from` to `to`, checksums filled in.
pub(crate) fn udp_frame(
    from: &Endpoint,
    to: &Endpoint,
    source_port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let (source, destination): (Ipv4Addr, Ipv4Addr) = (from.ipv4, to.ipv4);
    let udp_len = 8 + payload.len();
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    ip.extend_from_slice(&source.octets());
    ip.extend_from_slice(&destination.octets());
    let ip_sum = checksum::of(&ip);
    ip[10..12].copy_from_slice(&ip_sum.to_be_bytes());

    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&source_port.to_be_bytes());
    udp.extend_from_slice(&47_000u16.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&source.octets());
    pseudo.extend_from_slice(&destination.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    pseudo.extend_from_slice(&udp);
    let udp_sum = match checksum::of(&pseudo) {
        0 => 0xffff,
        sum => sum,
    };
    udp[6..8].copy_from_slice(&udp_sum.to_be_bytes());

    let mut frame = Vec::with_capacity(14 + ip.len() + udp.len());
    frame.extend_from_slice(&to.mac);
    frame.extend_from_slice(&from.mac);
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&udp);
    frame
}

pub(crate) fn frames(from: &Endpoint, to: &Endpoint, marker: &[u8], count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|index| {
            let mut payload = marker.to_vec();
            payload.extend_from_slice(format!("{index:02}-").as_bytes());
            // Different lengths, and one frame of a full MTU.
            let len = if index == count - 1 {
                1472
            } else {
                40 + index * 37
            };
            payload.resize(len, b'0' + index as u8);
            udp_frame(from, to, 40_000 + index as u16, &payload)
        })
        .collect()
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Kills and reaps a child on drop, so a failing test leaves nothing behind.
pub(crate) struct ChildGuard(pub(crate) Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A packet socket on B's veth ([`RECEIVE_PY`]) that prints, in hex,
/// each of the `count` frames carrying `marker` it sees.
pub(crate) struct Receiver {
    child: ChildGuard,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Receiver {
    /// Starts the receiver in B and waits until it is ready.
    pub(crate) fn start(bed: &TestBed, marker: &[u8], count: usize) -> Self {
        let mut child = ChildGuard(
            bed.command(Side::B, PYTHON)
                .args([
                    "-c",
                    RECEIVE_PY,
                    &bed.b().interface,
                    &hex(marker),
                    &count.to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start the receiver in B"),
        );
        let mut lines = BufReader::new(child.0.stdout.take().expect("piped stdout")).lines();
        match lines.next() {
            Some(Ok(line)) if line == "ready" => {}
            other => panic!("the receiver in B did not start: {other:?}"),
        }
        Self { child, lines }
    }

    /// Waits for the receiver to end (successfully); the frames it saw.
    pub(crate) fn captured(mut self) -> Vec<String> {
        let captured: Vec<String> = (&mut self.lines)
            .map(|line| line.expect("receiver output"))
            .collect();
        let status = self.child.0.wait().expect("receiver exit");
        assert!(status.success(), "receiver in B: {status}");
        captured
    }
}

/// In namespace A: the redirect program attached to A's veth in driver
/// mode, and a socket on queue 0 registered in `XSKS[0]`.
pub(crate) fn setup(bed: &TestBed) -> (Ebpf, XskSocket) {
    setup_with(bed, XskOptions::default())
}

/// [`setup`] with a socket of these options.
pub(crate) fn setup_with(bed: &TestBed, options: XskOptions) -> (Ebpf, XskSocket) {
    let interface = bed.a().interface.clone();
    bed.run_in_a(move || -> Result<(Ebpf, XskSocket), String> {
        let mut ebpf = Ebpf::load(objects::XSK).map_err(|error| format!("load: {error}"))?;
        let program: &mut Xdp = ebpf
            .program_mut(abi::program::XSK)
            .ok_or("no xdpath_xsk program")?
            .try_into()
            .map_err(|error| format!("not XDP: {error}"))?;
        program
            .load()
            .map_err(|error| format!("verifier: {error}"))?;
        program
            .attach(&interface, XdpMode::Driver)
            .map_err(|error| format!("attach to {interface}: {error}"))?;
        let socket =
            XskSocket::open(&interface, 0, options).map_err(|error| format!("open: {error}"))?;
        let mut sockets = XskMap::try_from(ebpf.map_mut(abi::map::XSKS).ok_or("no XSKS map")?)
            .map_err(|error| format!("XSKS: {error}"))?;
        socket
            .register(&mut sockets, 0)
            .map_err(|error| format!("register: {error}"))?;
        Ok((ebpf, socket))
    })
    .expect("thread in namespace A")
    .unwrap_or_else(|error| panic!("setting up AF_XDP in namespace A: {error}"))
}

/// XDP mode of A's veth as `ip -j link` reports it (1: driver).
pub(crate) fn xdp_mode(bed: &TestBed) -> Value {
    let xdp =
        xdpath_lab::testenv::link_xdp(&bed.a().path, &bed.a().interface).expect("ip link show");
    xdp.map_or(Value::Null, |xdp| xdp["mode"].clone())
}

/// Frames a small-ring test moves, in batches below the 64 fill entries.
pub(crate) const WRAP_BATCH: usize = 50;
pub(crate) const WRAP_TOTAL: usize = 10 * WRAP_BATCH;

/// Rings of 64 and 128 frames (64 receive, 64 transmit): a few hundred
/// frames recycle every buffer several times.
pub(crate) const SMALL_RINGS: XskOptions = XskOptions {
    frames: 128,
    frame_size: 2048,
    ring_size: 64,
    copy_mode: true,
};

/// A UDP frame carrying `marker`, then `index` in four digits, padded to
/// a length that varies with `index`.
pub(crate) fn numbered(from: &Endpoint, to: &Endpoint, marker: &[u8], index: usize) -> Vec<u8> {
    let mut payload = marker.to_vec();
    payload.extend_from_slice(format!("{index:04}").as_bytes());
    payload.resize(18 + index % 300, b'x');
    udp_frame(from, to, 40_000 + (index % 1000) as u16, &payload)
}
