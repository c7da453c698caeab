//! The runtime's serving loop: receive a batch from each socket, run the
//! pipeline on every frame, send each where its verdict says, then the
//! stack's output; once a second, the state files and the counter
//! snapshot. [`super::run`] sets up what it works on.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xdpath_core::{pipeline, Action, FrameBuffer, NativeTables};

use super::egress::Egress;
use super::fib::{self, FibSlot};
use super::report::{Counts, Snapshot, Tallies};
use super::state::{StateWatch, States};
use super::tap::Tap;
use super::RuntimeError;
use crate::afxdp::{XskError, XskSocket};
use crate::control::kernel::monotonic_now_ns;
use crate::control::state::{self as state_files};

/// How often the state files are looked at and the snapshot written.
pub(super) const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// The longest wait for a frame: how late a stop is noticed.
pub(super) const IDLE_WAIT_MS: i32 = 50;

/// Everything a frame may be sent through.
pub(super) struct Outputs {
    pub(super) ifindex: u32,
    /// The exception path, one device for every serving thread.
    pub(super) tap: Option<Arc<Tap>>,
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
            Action::Pass => match self.tap.as_deref().map(|tap| tap.write_frame(frame)) {
                Some(Ok(())) => self.tallies.to_stack += 1,
                Some(Err(_)) | None => self.tallies.lost += 1,
            },
            Action::Drop | Action::Aborted => {}
        }
        Ok(())
    }
}

/// What every serving thread shares, borrowed from [`super::run`].
pub(super) struct Shared<'a> {
    pub(super) interface: &'a str,
    pub(super) ifindex: u32,
    pub(super) forward: bool,
    /// The backends whose next hops the FIB watcher resolves.
    pub(super) backends: &'a Mutex<Vec<[u8; 16]>>,
    /// The FIB watcher's latest view.
    pub(super) fib: &'a Mutex<FibSlot>,
    /// Each thread's counts as it last published them, by thread.
    pub(super) counts: &'a Mutex<Vec<Counts>>,
    /// The last state thread 0 read and installed, for the others.
    pub(super) states: &'a Mutex<StateSlot>,
    pub(super) snapshot_file: &'a Path,
}

/// The state files' contents thread 0 last installed, and how many times
/// it has installed one. Thread 0 is the one reader of the files: were
/// every thread to read them, two changes within a second followed by a
/// refused one could leave threads enforcing different last-good states.
#[derive(Debug, Default)]
pub(super) struct StateSlot {
    generation: u64,
    states: Option<Arc<States>>,
}

impl Shared<'_> {
    /// The sum of the counts the threads last published.
    pub(super) fn summed(&self) -> Counts {
        self.counts
            .lock()
            .map(|all| Counts::sum(all.iter()))
            .unwrap_or_default()
    }
}

/// What one serving thread owns: its tables (its counters, connection
/// tables; the rate limits' buckets are shared between threads), its
/// view of the state files, its sockets and outputs.
pub(super) struct Worker {
    pub(super) tables: NativeTables,
    pub(super) watch: StateWatch,
    pub(super) sockets: Vec<XskSocket>,
    pub(super) outputs: Outputs,
    /// The generation of the FIB view last installed.
    pub(super) fib_generation: u64,
    /// The generation of the [`StateSlot`] last installed (threads but 0).
    pub(super) state_generation: u64,
    /// Time spent in passes that found work.
    pub(super) busy: Duration,
}

/// Why a serving thread stopped before it was asked to.
#[derive(Debug)]
pub(super) enum Failed {
    /// A socket kept failing for a housekeeping period.
    Socket { queue: u32, source: XskError },
    /// The interface was deleted: its sockets receive nothing more, and
    /// no error says so.
    InterfaceGone,
}

impl Failed {
    /// The runtime's error for this stop, on `interface`.
    pub(super) fn into_error(self, interface: &str) -> RuntimeError {
        match self {
            Self::Socket { queue, source } => RuntimeError::Serving { queue, source },
            Self::InterfaceGone => RuntimeError::InterfaceGone {
                interface: interface.to_string(),
            },
        }
    }
}

/// One serving thread at work: thread 0 also reads the stack's output,
/// writes the snapshot and counts state changes (every thread takes them,
/// but they are counted once).
pub(super) struct Serving<'a> {
    pub(super) shared: &'a Shared<'a>,
    pub(super) index: usize,
    pub(super) worker: &'a mut Worker,
}

impl Serving<'_> {
    /// Serves frames until `stop` says so or `duration` from `started` has
    /// passed; adds the time spent in passes that found work to the
    /// worker's.
    ///
    /// One clock read a pass while frames keep coming: the end of a pass
    /// is the start of the next, and the tables' monotonic nanoseconds are
    /// counted from it. A clock read costs about 50-100 ns on this
    /// project's VM (`Instant::now`, TSC through the vDSO, measured
    /// 101 ns under load), and the loop read the clock five times a pass,
    /// which at a few frames a pass was as much as the pipeline's work.
    ///
    /// # Errors
    ///
    /// [`Failed::Socket`]: a socket whose receive failed on every pass for
    /// a whole housekeeping period; [`Failed::InterfaceGone`]: the
    /// interface was deleted. Serving stops.
    pub(super) fn serve(
        &mut self,
        started: Instant,
        duration: Option<Duration>,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), Failed> {
        let clock = PassClock::new(started);
        let mut next_housekeeping = started + HOUSEKEEPING;
        let mut frame = FrameBuffer::new(&[]);
        let mut from_stack = vec![0u8; 65_536];
        // Busy while frames keep coming (no system call per batch); a pass
        // that finds nothing waits in poll.
        let mut idle = true;
        let mut tap_readable = false;
        let mut passes: u32 = 0;
        let mut failing: Option<(Instant, Failed)> = None;
        let mut now = Instant::now();
        let reads_tap = self.index == 0;
        loop {
            if stop() || duration.is_some_and(|limit| now.duration_since(started) >= limit) {
                break;
            }
            if idle {
                let tap = self.worker.outputs.tap.as_deref().filter(|_| reads_tap);
                tap_readable = wait(&self.worker.sockets, tap);
                now = Instant::now();
            }
            passes = passes.wrapping_add(1);
            let pass_started = now;
            self.worker.tables.set_now_ns(clock.ns_at(pass_started));
            let (mut busy, error) = self.receive_all(&mut frame);
            match error {
                None => failing = None,
                Some(error) if failing.is_none() => failing = Some((pass_started, error)),
                Some(_) => {}
            }
            // The stack's output: when poll said so, and now and then while busy.
            let look_at_tap = reads_tap && (tap_readable || (!idle && passes.is_multiple_of(64)));
            tap_readable = false;
            if look_at_tap {
                busy |= self.send_stack_output(&mut from_stack);
            }
            idle = !busy;
            now = Instant::now();
            if busy {
                self.worker.busy += now.duration_since(pass_started);
            }
            if now >= next_housekeeping {
                next_housekeeping = now + HOUSEKEEPING;
                // A deleted interface's sockets just go quiet: without this
                // the runtime served nothing, silently, until stopped.
                if crate::netif::interface_gone(self.shared.ifindex) {
                    return Err(Failed::InterfaceGone);
                }
                self.housekeeping();
                let failed_long = failing
                    .as_ref()
                    .is_some_and(|(since, _)| now.duration_since(*since) >= HOUSEKEEPING);
                if failed_long {
                    if let Some((_, failed)) = failing.take() {
                        return Err(failed);
                    }
                }
            }
        }
        Ok(())
    }

    /// Receives a batch from each socket, runs the pipeline on each frame
    /// and delivers it; a frame for the socket's own TX ring is answered
    /// from its own UMEM frame (no copy out, no allocation). Whether any
    /// frame came, and the error of a socket that failed (none if any
    /// socket received).
    fn receive_all(&mut self, frame: &mut FrameBuffer) -> (bool, Option<Failed>) {
        let mut busy = false;
        let mut failed = None;
        let Worker {
            tables,
            sockets,
            outputs,
            ..
        } = &mut *self.worker;
        for socket in sockets.iter_mut() {
            let result = socket.recv_each_reply(Duration::ZERO, |received| {
                frame.reload(received.bytes());
                let verdict = pipeline::process_frame(frame, tables);
                let delivered = outputs.deliver(
                    verdict.outcome.action,
                    verdict.redirect_ifindex,
                    frame.bytes(),
                );
                if let Err(answer) = delivered {
                    if received.reply(answer).is_err() {
                        outputs.tallies.lost += 1;
                    }
                }
            });
            let (received, replied) = match result {
                Ok(counts) => counts,
                Err(source) => {
                    failed = Some(Failed::Socket {
                        queue: socket.queue(),
                        source,
                    });
                    (0, 0)
                }
            };
            outputs.tallies.received += received as u64;
            outputs.tallies.transmitted += replied as u64;
            busy |= received > 0;
        }
        (busy, failed.filter(|_| !busy))
    }

    /// Sends up to 64 frames the stack wrote to the TAP device out of the
    /// first socket; whether there were any.
    fn send_stack_output(&mut self, from_stack: &mut [u8]) -> bool {
        let outputs = &mut self.worker.outputs;
        let (Some(tap), Some(first)) = (outputs.tap.as_deref(), self.worker.sockets.first_mut())
        else {
            return false;
        };
        let mut read = 0;
        while read < 64 {
            let Ok(Some(bytes)) = tap.read_frame(from_stack) else {
                break;
            };
            read += 1;
            if enqueue(first, bytes) {
                outputs.tallies.from_stack += 1;
            } else {
                outputs.tallies.lost += 1;
            }
        }
        if read > 0 {
            let _ = first.flush(Duration::ZERO);
        }
        read > 0
    }

    /// Installs the FIB watcher's view if this thread has not yet.
    fn take_fib_view(&mut self) {
        let newer = self
            .shared
            .fib
            .lock()
            .ok()
            .and_then(|mut slot| slot.take_newer(self.worker.fib_generation));
        if let Some((generation, view)) = newer {
            fib::install_shared(&mut self.worker.tables, view);
            self.worker.fib_generation = generation;
        }
    }

    /// Once a second: installs the FIB watcher's view, takes up a changed
    /// state (resolving new backends at once), publishes this thread's
    /// counts and (thread 0) writes the snapshot.
    fn housekeeping(&mut self) {
        self.take_fib_view();
        let first = self.index == 0;
        if first {
            self.read_state();
        } else {
            self.follow_state();
        }
        self.publish();
        if first {
            write_snapshot(
                self.shared.snapshot_file,
                self.shared.interface,
                &self.shared.summed(),
                false,
            );
        }
    }

    /// Thread 0: takes up a changed state from the files and, once it is
    /// installed here, hands it to the other threads.
    fn read_state(&mut self) {
        let worker = &mut *self.worker;
        let installed = match worker.watch.read_changed() {
            Ok(Some(states)) => worker
                .watch
                .install(&mut worker.tables, &states)
                .map(|_| Some(states)),
            Ok(None) => Ok(None),
            Err(error) => Err(error),
        };
        match installed {
            Ok(Some(states)) => {
                worker.outputs.tallies.reloads += 1;
                if let Ok(mut slot) = self.shared.states.lock() {
                    slot.generation += 1;
                    slot.states = Some(Arc::new(states));
                }
                self.resolve_new_backends();
            }
            Ok(None) => {}
            Err(error) => {
                worker.outputs.tallies.refused_reloads += 1;
                log::warn!(
                    "the user-space runtime refused a state change; the last good state stays: {error}"
                );
            }
        }
    }

    /// Threads but 0: installs the state thread 0 installed last, if newer
    /// than this thread's. It compiled there; should it not here, the
    /// thread keeps its state and says so (counted as a refused change).
    fn follow_state(&mut self) {
        let newer = self.shared.states.lock().ok().and_then(|slot| {
            (slot.generation > self.worker.state_generation)
                .then(|| slot.states.clone().map(|states| (slot.generation, states)))
                .flatten()
        });
        let Some((generation, states)) = newer else {
            return;
        };
        self.worker.state_generation = generation;
        let worker = &mut *self.worker;
        match worker.watch.install(&mut worker.tables, &states) {
            Ok(_) => self.resolve_new_backends(),
            Err(error) => {
                worker.outputs.tallies.refused_reloads += 1;
                log::error!(
                    "serving thread {} cannot install the state thread 0 installed; it keeps \
                     its last one, which now differs: {error}",
                    self.index
                );
            }
        }
    }

    /// New backends get their next hops now, not a second later (a state
    /// change is rare; the wait is short): the first thread to take the
    /// new state asks the kernel and publishes the view, under the
    /// backends' lock; the others find it in the slot.
    fn resolve_new_backends(&mut self) {
        let now = fib::backends(&self.worker.tables);
        let Ok(mut list) = self.shared.backends.lock() else {
            return;
        };
        if *list != now {
            let shared = self.shared;
            let view = fib::resolve(&now, shared.ifindex, shared.interface, shared.forward);
            if let Ok(mut slot) = shared.fib.lock() {
                slot.publish(view);
            }
            *list = now;
        }
        // This thread's view (or the one another thread published for the
        // same backends) is in the slot.
        drop(list);
        self.take_fib_view();
    }

    /// Puts this thread's counts where the snapshot writer sums them.
    pub(super) fn publish(&self) {
        let counts = Counts::of(&self.worker.tables, self.worker.outputs.tallies);
        if let Ok(mut all) = self.shared.counts.lock() {
            if let Some(slot) = all.get_mut(self.index) {
                *slot = counts;
            }
        }
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
/// interface (`finished` once the runtime has stopped): the sum over the
/// serving threads.
pub(super) fn write_snapshot(path: &Path, interface: &str, counts: &Counts, finished: bool) {
    let snapshot = Snapshot {
        interface: interface.to_string(),
        pid: std::process::id(),
        finished,
        counters: counts.counters.clone(),
        rule_hits: counts.rule_hits.iter().map(|(&id, &n)| (id, n)).collect(),
        limit_drops: counts.limit_drops.iter().map(|(&at, &n)| (at, n)).collect(),
        address_drops: counts
            .address_drops
            .iter()
            .map(|(&id, &n)| (id, n))
            .collect(),
        tallies: counts.tallies,
    };
    if let Err(error) = state_files::save_plain(path, &snapshot) {
        log::warn!("the user-space runtime cannot write its counter snapshot: {error}");
    }
}
