//! The runtime's serving loop: receive a batch from each socket, run the
//! pipeline on every frame, send each where its verdict says, then the
//! stack's output; once a second, the state files and the counter
//! snapshot. [`super::run`] sets up what it works on.

use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xdpath_core::{pipeline, Action, FrameBuffer, NativeTables};

use super::egress::Egress;
use super::fib;
use super::report::{Snapshot, Tallies};
use super::state::StateWatch;
use super::tap::Tap;
use crate::afxdp::{XskError, XskSocket};
use crate::control::kernel::monotonic_now_ns;
use crate::control::state::{self as state_files};

/// How often the state files are looked at and the snapshot written.
pub(super) const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// The longest wait for a frame: how late a stop is noticed.
const IDLE_WAIT_MS: i32 = 50;

/// Everything a frame may be sent through.
pub(super) struct Outputs {
    pub(super) ifindex: u32,
    pub(super) tap: Option<Tap>,
    pub(super) egress: Egress,
    pub(super) tallies: Tallies,
}

impl Outputs {
    /// Sends `frame` where `action` says; `Err(frame)` hands back a frame
    /// for this interface's own TX ring (`XDP_TX`, or a redirect to this
    /// interface), which the caller answers in place.
    fn deliver<'f>(
        &mut self,
        action: Action,
        redirect_ifindex: u32,
        frame: &'f [u8],
    ) -> Result<(), &'f [u8]> {
        match action {
            Action::Tx => return Err(frame),
            Action::Redirect if redirect_ifindex == self.ifindex || redirect_ifindex == 0 => {
                return Err(frame)
            }
            Action::Redirect => match self.egress.send(redirect_ifindex, frame) {
                Ok(()) => self.tallies.redirected += 1,
                Err(_) => self.tallies.lost += 1,
            },
            Action::Pass => match self.tap.as_mut().map(|tap| tap.write_frame(frame)) {
                Some(Ok(())) => self.tallies.to_stack += 1,
                Some(Err(_)) | None => self.tallies.lost += 1,
            },
            Action::Drop | Action::Aborted => {}
        }
        Ok(())
    }
}

/// What the loop works on, borrowed from [`super::run`], which owns it (and so
/// drops it in its own order: the program goes before the sockets).
pub(super) struct Serving<'a> {
    pub(super) interface: &'a str,
    pub(super) ifindex: u32,
    pub(super) forward: bool,
    pub(super) tables: &'a mut NativeTables,
    pub(super) watch: &'a mut StateWatch,
    /// The backends whose next hops the FIB watcher resolves.
    pub(super) backends: &'a Mutex<Vec<[u8; 16]>>,
    /// The FIB watcher's views.
    pub(super) views: &'a Receiver<fib::FibView>,
    pub(super) sockets: &'a mut [XskSocket],
    pub(super) outputs: &'a mut Outputs,
    pub(super) snapshot_file: &'a Path,
}

impl Serving<'_> {
    /// Serves frames until `stop` says so or `duration` from `started` has
    /// passed; returns the time spent in passes that found work.
    ///
    /// One clock read a pass while frames keep coming: the end of a pass
    /// is the start of the next, and the tables' monotonic nanoseconds are
    /// counted from it. A clock read costs about 50-100 ns on this
    /// project's VM (`Instant::now`, TSC through the vDSO, measured
    /// 101 ns under load), and the loop read the clock five times a pass,
    /// which at a few frames a pass was as much as the pipeline's work.
    pub(super) fn serve(
        &mut self,
        started: Instant,
        duration: Option<Duration>,
        stop: &dyn Fn() -> bool,
    ) -> Duration {
        let clock = PassClock::new(started);
        let mut next_housekeeping = started + HOUSEKEEPING;
        let mut frame = FrameBuffer::new(&[]);
        let mut from_stack = vec![0u8; 65_536];
        // Busy while frames keep coming (no system call per batch); a pass
        // that finds nothing waits in poll.
        let mut idle = true;
        let mut tap_readable = false;
        let mut passes: u32 = 0;
        let mut busy_time = Duration::ZERO;
        let mut now = Instant::now();
        loop {
            if stop() || duration.is_some_and(|limit| now.duration_since(started) >= limit) {
                break;
            }
            if idle {
                tap_readable = wait(self.sockets, self.outputs.tap.as_ref());
                now = Instant::now();
            }
            passes = passes.wrapping_add(1);
            let pass_started = now;
            self.tables.set_now_ns(clock.ns_at(pass_started));
            let mut busy = self.receive_all(&mut frame);
            // The stack's output: when poll said so, and now and then while busy.
            let look_at_tap = tap_readable || (!idle && passes.is_multiple_of(64));
            tap_readable = false;
            if look_at_tap {
                busy |= self.send_stack_output(&mut from_stack);
            }
            idle = !busy;
            now = Instant::now();
            if busy {
                busy_time += now.duration_since(pass_started);
            }
            if now >= next_housekeeping {
                next_housekeeping = now + HOUSEKEEPING;
                self.housekeeping();
            }
        }
        busy_time
    }

    /// Receives a batch from each socket, runs the pipeline on each frame
    /// and delivers it; a frame for the socket's own TX ring is answered
    /// from its own UMEM frame (no copy out, no allocation). Whether any
    /// frame came.
    fn receive_all(&mut self, frame: &mut FrameBuffer) -> bool {
        let mut busy = false;
        for socket in self.sockets.iter_mut() {
            let (received, replied) = socket
                .recv_each_reply(Duration::ZERO, |received| {
                    frame.reload(received.bytes());
                    let verdict = pipeline::process_frame(frame, self.tables);
                    let delivered = self.outputs.deliver(
                        verdict.outcome.action,
                        verdict.redirect_ifindex,
                        frame.bytes(),
                    );
                    if let Err(answer) = delivered {
                        if received.reply(answer).is_err() {
                            self.outputs.tallies.lost += 1;
                        }
                    }
                })
                .unwrap_or((0, 0));
            self.outputs.tallies.received += received as u64;
            self.outputs.tallies.transmitted += replied as u64;
            busy |= received > 0;
        }
        busy
    }

    /// Sends up to 64 frames the stack wrote to the TAP device out of the
    /// first socket; whether there were any.
    fn send_stack_output(&mut self, from_stack: &mut [u8]) -> bool {
        let (Some(tap), Some(first)) = (self.outputs.tap.as_mut(), self.sockets.first_mut()) else {
            return false;
        };
        let mut read = 0;
        while read < 64 {
            let Ok(Some(bytes)) = tap.read_frame(from_stack) else {
                break;
            };
            read += 1;
            if enqueue(first, bytes) {
                self.outputs.tallies.from_stack += 1;
            } else {
                self.outputs.tallies.lost += 1;
            }
        }
        if read > 0 {
            let _ = first.flush(Duration::ZERO);
        }
        read > 0
    }

    /// Once a second: installs the FIB watcher's views, takes up a changed
    /// state (resolving new backends at once) and writes the snapshot.
    fn housekeeping(&mut self) {
        while let Ok(view) = self.views.try_recv() {
            fib::install(self.tables, view);
        }
        match self.watch.refresh(self.tables) {
            Ok(true) => {
                self.outputs.tallies.reloads += 1;
                // New backends get their next hops now, not a second
                // later (a state change is rare; the wait is short).
                let now = fib::backends(self.tables);
                if let Ok(mut list) = self.backends.lock() {
                    if *list != now {
                        let view = fib::resolve(&now, self.ifindex, self.interface, self.forward);
                        fib::install(self.tables, view);
                        *list = now;
                    }
                }
            }
            Ok(false) => {}
            Err(error) => {
                self.outputs.tallies.refused_reloads += 1;
                log::warn!(
                    "the user-space runtime refused a state change; the last good state stays: {error}"
                );
            }
        }
        write_snapshot(
            self.snapshot_file,
            self.interface,
            self.tables,
            self.outputs.tallies,
            false,
        );
    }
}

/// `CLOCK_MONOTONIC` nanoseconds (the tables' clock) of an `Instant`,
/// from one reading of both at the start: no second clock read a pass.
struct PassClock {
    base_instant: Instant,
    base_ns: u64,
}

impl PassClock {
    fn new(base_instant: Instant) -> Self {
        Self {
            base_instant,
            base_ns: monotonic_now_ns().saturating_sub(elapsed_ns(base_instant, Instant::now())),
        }
    }

    fn ns_at(&self, at: Instant) -> u64 {
        self.base_ns
            .saturating_add(elapsed_ns(self.base_instant, at))
    }
}

/// Nanoseconds from `from` to `to` (0 if `to` is earlier).
fn elapsed_ns(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_nanos()).unwrap_or(u64::MAX)
}

/// Waits until a socket or the TAP device has something, or a while;
/// whether the TAP device has.
fn wait(sockets: &[XskSocket], tap: Option<&Tap>) -> bool {
    let mut entries: Vec<libc::pollfd> = sockets
        .iter()
        .map(|socket| socket.fd())
        .chain(tap.map(Tap::raw_fd))
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: live pollfd entries and their count. An error (EINTR) only
    // ends the wait early.
    unsafe {
        libc::poll(
            entries.as_mut_ptr(),
            entries.len() as libc::nfds_t,
            IDLE_WAIT_MS,
        )
    };
    tap.is_some()
        && entries
            .last()
            .is_some_and(|entry| entry.revents & libc::POLLIN != 0)
}

/// Puts one frame on a socket's TX ring (flushing once if the ring is
/// full); whether it went on.
fn enqueue(socket: &mut XskSocket, frame: &[u8]) -> bool {
    let mut result = socket.enqueue(frame);
    if matches!(result, Err(XskError::TxBusy { .. })) {
        let _ = socket.flush(Duration::from_millis(1));
        result = socket.enqueue(frame);
    }
    result.is_ok()
}

/// Writes the counter snapshot `xdpath stats` reads for a user-space
/// interface (`finished` once the runtime has stopped).
pub(super) fn write_snapshot(
    path: &std::path::Path,
    interface: &str,
    tables: &NativeTables,
    tallies: Tallies,
    finished: bool,
) {
    let mut rule_hits: Vec<(u32, u64)> = tables.rule_hits.iter().map(|(&id, &n)| (id, n)).collect();
    rule_hits.sort_unstable();
    let snapshot = Snapshot {
        interface: interface.to_string(),
        pid: std::process::id(),
        finished,
        counters: tables
            .counters()
            .iter()
            .map(|counter| [counter.packets, counter.bytes])
            .collect(),
        rule_hits,
        tallies,
    };
    if let Err(error) = state_files::save_plain(path, &snapshot) {
        log::warn!("the user-space runtime cannot write its counter snapshot: {error}");
    }
}
