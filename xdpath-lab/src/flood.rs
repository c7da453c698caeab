//! A bounded flood of spoofed IPv4 frames for the end-to-end tests: UDP
//! datagrams or TCP segments from random sources, each random flow sending
//! a set number of frames back to back (the "adaptive" floods of issue 14:
//! two frames per source, so that an LRU table sees every entry used
//! again).
//!
//! How: the `xdpath-flood` program (`xdpath-ebpf/src/flood.rs`) runs with
//! `BPF_PROG_TEST_RUN` in live-frames mode, as if the template frame had
//! arrived on the interface named; each run gives it the source of its
//! flow (`xdpath_core::flood`) and sends it out of that interface
//! (`XDP_TX`). On a veth the frame goes straight to the XDP program of the
//! peer, with no socket buffer on the way: a raw socket on this 2-core
//! machine reached 110-210 kpps against xdpath, too few to churn a
//! 262,144-entry table as the 355 kpps flood did. The peer must run
//! an XDP program (a veth hands `XDP_TX`'d frames only to one).
//!
//! Where the kernel refuses live frames (`EPERM`: seen on a Firecracker
//! VM of this project's machine kind with Linux 6.18.44, where ordinary
//! test runs work), the same frames are built in user space by the same
//! rewrite and sent from an AF_XDP socket instead, with a warning.
//!
//! Bounded in frames and in time; it sends only out of the interface
//! named, in the network namespace of the calling thread: run it inside
//! [`xdpath::netns::run_in`] on a test bed. Spoofed sources are public
//! unicast IPv4 (never 0/8, 10/8, 127/8 or 224/3), so they never collide
//! with a bed's own addresses.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xdpath_core::flood::{rewrite, FloodPlan, FLOOD_MAX_FRAME, FLOOD_RANDOM_PORTS, FLOOD_UDP};
use xdpath_core::wire::protocol;
use xdpath_core::FrameBuffer;

use xdpath::afxdp::{XskError, XskOptions, XskSocket};
use xdpath::dataplane::{DataplaneError, LoadedProgram};

/// Frames per test run: a few milliseconds, so a stop is heard soon.
const CALL_FRAMES: u32 = 16_384;
/// The socket of the fallback: 2,048 frames to send from.
const SOCKET_OPTIONS: XskOptions = XskOptions {
    frames: 4096,
    frame_size: 2048,
    ring_size: 2048,
    copy_mode: true,
};
/// Frames the fallback queues between looks at the clock and the stop.
const SOCKET_BATCH: u64 = 1024;
/// The fallback's pace, frames per second. Unpaced it sent 520-550
/// kframes/s here, and B's veth dropped about 1,100 frames in 16 s before
/// A's XDP program (its ring full while the peer's NAPI ran behind), which
/// voids a flood test's counts; the live generator is no faster than this.
const SOCKET_RATE: u64 = 400_000;
/// Ethernet header length (the template is untagged).
const ETH: usize = 14;

/// What to send.
#[derive(Clone, Debug)]
pub struct Flood {
    /// The interface to send from, in the calling thread's namespace.
    pub interface: String,
    /// The frame every flood frame is made from: an untagged IPv4 frame
    /// without options carrying TCP or UDP (as `FrameSpec::build` makes),
    /// of an even length up to 64 bytes.
    /// Each random flow replaces its source address and, with
    /// `random_ports`, its source port; the checksums follow.
    pub template: Vec<u8>,
    /// Frames each random flow sends, back to back (at least 1).
    pub frames_per_flow: u32,
    /// Draw a random source port per flow too.
    pub random_ports: bool,
    /// Stop after this many frames.
    pub max_frames: u64,
    /// Stop after this long.
    pub max_duration: Duration,
    /// Seed of the random sources (the same seed, the same flows).
    pub seed: u64,
}

/// What was sent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FloodReport {
    /// Frames sent (a full veth ring may still drop some).
    pub frames: u64,
    /// Random flows started.
    pub flows: u64,
    /// How long it ran.
    pub elapsed: Duration,
}

impl FloodReport {
    /// Frames per second.
    pub fn frames_per_second(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Errors of a flood.
#[derive(Debug, thiserror::Error)]
pub enum FloodError {
    /// The template is not a frame the generator rewrites.
    #[error(
        "the flood template must be an untagged IPv4 frame without options carrying TCP or \
         UDP, of an even length up to 64 bytes ({length} bytes)"
    )]
    Template {
        /// Its length.
        length: usize,
    },
    /// The interface is not in this namespace.
    #[error("interface {interface} does not exist in this network namespace")]
    Interface {
        /// Its name.
        interface: String,
    },
    /// Loading or running the generator failed.
    #[error("the flood generator: {0}")]
    Generator(#[from] DataplaneError),
    /// The AF_XDP socket that sends when live frames are refused failed.
    #[error("the flood's AF_XDP socket: {0}")]
    Socket(#[from] XskError),
}

impl Flood {
    /// Sends until `max_frames`, `max_duration` or `stop`, whichever comes
    /// first.
    pub fn run(&self, stop: &AtomicBool) -> Result<FloodReport, FloodError> {
        let mut flags = template_flags(&self.template)?;
        if self.random_ports {
            flags |= FLOOD_RANDOM_PORTS;
        }
        let ifindex =
            xdpath::observe::capture::interface_index(&self.interface).ok_or_else(|| {
                FloodError::Interface {
                    interface: self.interface.clone(),
                }
            })?;
        let per_flow = self.frames_per_flow.max(1);
        let mut plan = FloodPlan {
            seed: self.seed,
            frames_per_flow: per_flow,
            flags,
            length: self.template.len() as u32,
            ..FloodPlan::default()
        };
        plan.template[..self.template.len()].copy_from_slice(&self.template);
        let mut generator = LoadedProgram::load_flood(&plan)?;
        // The xdp_md the generator sees: data 0, data_end the frame's
        // length (the kernel insists), data_meta 0, the ingress interface
        // (where XDP_TX sends), queue 0, egress 0.
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(self.template.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        let mut report = FloodReport::default();
        let started = Instant::now();
        while self.goes_on(report.frames, stop, started) {
            let repeat = (self.max_frames - report.frames).min(u64::from(CALL_FRAMES)) as u32;
            match generator.run_live(&self.template, &ctx, repeat) {
                Ok(_) => report.frames += u64::from(repeat),
                Err(error) if error.is_test_run_refused() && report.frames == 0 => {
                    eprintln!(
                        "xdpath flood: live frames refused by this kernel ({error}); the flood \
                         is sent from an AF_XDP socket instead, at a lower rate"
                    );
                    report.frames = self.send_from_socket(&plan, stop, started)?;
                    break;
                }
                Err(error) => return Err(error.into()),
            }
        }
        report.elapsed = started.elapsed();
        report.flows = report.frames.div_ceil(u64::from(per_flow));
        Ok(report)
    }

    /// Whether to send more, with `sent` frames out since `started`.
    fn goes_on(&self, sent: u64, stop: &AtomicBool, started: Instant) -> bool {
        sent < self.max_frames && self.in_time(stop, started)
    }

    /// Whether neither `stop` nor `max_duration` since `started` has come.
    fn in_time(&self, stop: &AtomicBool, started: Instant) -> bool {
        !stop.load(Ordering::Relaxed) && started.elapsed() < self.max_duration
    }

    /// The same frames as the generator program's (the same rewrite of
    /// the template, frame by frame), built here and sent from an AF_XDP
    /// socket at [`SOCKET_RATE`]; how many were sent.
    fn send_from_socket(
        &self,
        plan: &FloodPlan,
        stop: &AtomicBool,
        started: Instant,
    ) -> Result<u64, FloodError> {
        let sender = SocketSender {
            interface: &self.interface,
            queue: 0,
            template: &self.template,
            rate: Some(SOCKET_RATE),
        };
        sender.send(
            self.max_frames,
            || self.in_time(stop, started),
            |index, frame| rewrite(frame, plan, index),
        )
    }
}

/// Frames built in user space and sent from an AF_XDP socket in copy
/// mode on one queue of an interface (in the calling thread's namespace):
/// what replaces live frames (`BPF_F_TEST_XDP_LIVE_FRAMES`) on kernels
/// that refuse them (`EPERM`). A veth peer sees the same frames, at the
/// rate one core builds them and the kernel copies them.
pub struct SocketSender<'a> {
    /// The interface to send from.
    pub interface: &'a str,
    /// The queue to send on (veth hands the frames to the peer's RX queue
    /// of the same number).
    pub queue: u32,
    /// The frame each one starts from.
    pub template: &'a [u8],
    /// Frames per second at most; `None`: as fast as it goes.
    pub rate: Option<u64>,
}

impl SocketSender<'_> {
    /// Sends up to `count` frames while `goes_on()` (asked every
    /// [`SOCKET_BATCH`] frames, not every frame: it may read the clock),
    /// each frame the template as `rewrite` leaves it for its index
    /// (`false`: the frame cannot be made); how many were sent.
    ///
    /// # Errors
    ///
    /// [`FloodError::Socket`] (no such interface, the queue taken, ...),
    /// [`FloodError::Template`] when `rewrite` refuses.
    pub fn send(
        &self,
        count: u64,
        goes_on: impl Fn() -> bool,
        mut rewrite: impl FnMut(u64, &mut FrameBuffer) -> bool,
    ) -> Result<u64, FloodError> {
        let mut socket = XskSocket::open(self.interface, self.queue, SOCKET_OPTIONS)?;
        let mut frame = FrameBuffer::new(self.template);
        let started = Instant::now();
        let mut sent: u64 = 0;
        while sent < count && goes_on() {
            let batch_end = count.min(sent + SOCKET_BATCH);
            while sent < batch_end {
                frame.reload(self.template);
                if !rewrite(sent, &mut frame) {
                    return Err(FloodError::Template {
                        length: self.template.len(),
                    });
                }
                match socket.enqueue(frame.bytes()) {
                    Ok(()) => sent += 1,
                    Err(XskError::TxBusy { .. }) => {
                        socket.flush(Duration::from_millis(1))?;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            socket.flush(Duration::ZERO)?;
            if let Some(rate) = self.rate.filter(|&rate| rate > 0) {
                let due = Duration::from_secs_f64(sent as f64 / rate as f64);
                if let Some(early) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(early);
                }
            }
        }
        socket.flush(Duration::from_secs(1))?;
        Ok(sent)
    }
}

/// The plan flags of a template the generator can rewrite.
fn template_flags(template: &[u8]) -> Result<u32, FloodError> {
    let refused = FloodError::Template {
        length: template.len(),
    };
    let ipv4 = template.get(12..14) == Some(&[0x08, 0x00][..]);
    let plain_header = template.get(ETH) == Some(&0x45);
    let (protocol, l4_length) = match template.get(ETH + 9) {
        Some(&protocol::UDP) => (protocol::UDP, 8),
        Some(&protocol::TCP) => (protocol::TCP, 20),
        _ => return Err(refused),
    };
    let length = template.len();
    if !ipv4
        || !plain_header
        || length < ETH + 20 + l4_length
        || length > FLOOD_MAX_FRAME
        || !length.is_multiple_of(2)
    {
        return Err(refused);
    }
    Ok(if protocol == protocol::UDP {
        FLOOD_UDP
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xdpath_core::build::{FrameSpec, Network, Transport};
    use xdpath_core::wire::tcp::FLAG_SYN;

    #[test]
    fn templates_the_generator_rewrites() {
        let v4 = Network::V4([10, 0, 0, 2], [10, 0, 0, 1]);
        let udp = FrameSpec::new(v4, Transport::udp(1, 9)).build();
        let tcp = FrameSpec::new(v4, Transport::tcp(1, 80, FLAG_SYN)).build();
        assert_eq!(template_flags(&udp).ok(), Some(FLOOD_UDP));
        assert_eq!(template_flags(&tcp).ok(), Some(0));
        let v6 = FrameSpec::new(Network::V6([0; 16], [1; 16]), Transport::udp(1, 2)).build();
        let icmp = FrameSpec::new(v4, Transport::EchoRequest).build();
        let tagged = FrameSpec::new(v4, Transport::udp(1, 2))
            .with_vlans(&[5])
            .build();
        let long = FrameSpec::new(v4, Transport::udp(1, 2))
            .with_payload(&[0; 30])
            .build();
        let odd = FrameSpec::new(v4, Transport::udp(1, 2))
            .with_payload(&[0; 1])
            .build();
        for template in [v6, icmp, tagged, long, odd, tcp[..40].to_vec(), vec![0; 10]] {
            assert!(template_flags(&template).is_err(), "{template:?}");
        }
    }
}
