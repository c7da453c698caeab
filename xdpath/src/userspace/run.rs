//! The runtime's loop: receive a batch from each socket, run the pipeline
//! on every frame, send each where its verdict says, then the stack's
//! output; once a second, the state files and the counter snapshot.

use std::time::{Duration, Instant};
use xdpath_core::abi;

use aya::maps::XskMap;
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;
use xdpath_core::{pipeline, Action, FrameBuffer, NativeTables};

use std::sync::{Arc, Mutex};

use super::egress::Egress;
use super::fib;
use super::report::{snapshot_path, Snapshot, Tallies};
use super::state::StateWatch;
use super::tap::{mac_and_mtu, tap_name, Tap};
use super::{Exception, RuntimeError, RuntimeOptions, RuntimeReport};
use crate::afxdp::{XskError, XskSocket};
use crate::control::interface_index;
use crate::control::kernel::monotonic_now_ns;
use crate::control::state::{self as state_files};
use crate::objects;

/// How often the state files are looked at and the snapshot written.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// The longest wait for a frame: how late a stop is noticed.
const IDLE_WAIT_MS: i32 = 50;

/// Everything a frame may be sent through.
struct Outputs {
    ifindex: u32,
    tap: Option<Tap>,
    egress: Egress,
    /// Frames for this interface's TX ring, sent after the batch.
    transmit: Vec<Vec<u8>>,
    tallies: Tallies,
}

impl Outputs {
    fn deliver(&mut self, action: Action, redirect_ifindex: u32, frame: &[u8]) {
        match action {
            Action::Tx => self.transmit.push(frame.to_vec()),
            Action::Redirect if redirect_ifindex == self.ifindex || redirect_ifindex == 0 => {
                self.transmit.push(frame.to_vec());
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
    }
}

/// Runs the user-space runtime until `stop` says so (or the duration
/// ends), then reports.
///
/// # Errors
///
/// Anything that keeps it from starting (no interface, the kernel program
/// attached there, a queue that does not exist, no TAP device, a state
/// that does not compile); once running, failures are counted, not fatal.
///
/// # Examples
///
/// ```no_run
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use xdpath::afxdp::XskOptions;
/// use xdpath::userspace::{self, Exception, RuntimeOptions};
/// use xdpath_core::InterfaceConfig;
///
/// let stop = AtomicBool::new(false);
/// let options = RuntimeOptions {
///     interface: "eth0".into(),
///     queues: None,
///     config: InterfaceConfig::default(),
///     exception: Exception::Tap,
///     xsk: XskOptions::default(),
///     duration: Some(std::time::Duration::from_secs(10)),
/// };
/// let report = userspace::run(&options, &|| stop.load(Ordering::Relaxed))?;
/// print!("{report}");
/// # Ok::<(), userspace::RuntimeError>(())
/// ```
pub fn run(
    options: &RuntimeOptions,
    stop: &dyn Fn() -> bool,
) -> Result<RuntimeReport, RuntimeError> {
    let interface = options.interface.as_str();
    let ifindex = interface_index(interface).ok_or_else(|| RuntimeError::NoInterface {
        interface: interface.to_string(),
    })?;
    if crate::dataplane::read_interface_config(interface).is_ok() {
        return Err(RuntimeError::KernelAttached {
            interface: interface.to_string(),
        });
    }
    let state_dir = state_files::state_dir().map_err(|error| RuntimeError::Io {
        what: "the namespace's state directory",
        source: std::io::Error::other(error.to_string()),
    })?;
    // The state first: a state that does not compile stops the start
    // before anything is attached.
    let mut tables = NativeTables::new(options.config);
    tables.ifindex = ifindex;
    let mut watch = StateWatch::new(&state_dir);
    watch.refresh(&mut tables)?;
    let forward = options.config.forward != 0;
    let first_backends = fib::backends(&tables);
    let view = fib::resolve(&first_backends, ifindex, interface, forward);
    fib::install(&mut tables, view);
    let backends = Arc::new(Mutex::new(first_backends));

    let queues = match options.queues {
        Some(queues) => queues,
        None => crate::afxdp::queue_count(interface).unwrap_or(1),
    }
    .max(1);
    let mut sockets = Vec::new();
    for queue in 0..queues {
        sockets.push(XskSocket::open(interface, queue, options.xsk)?);
    }
    let tap = match options.exception {
        Exception::Tap => {
            let name = tap_name(interface);
            let (mac, mtu) = mac_and_mtu(interface).map_err(|source| RuntimeError::Io {
                what: "read the interface's MAC and MTU",
                source,
            })?;
            Some(
                Tap::create(&name, mac, mtu)
                    .map_err(|source| RuntimeError::Tap { name, source })?,
            )
        }
        Exception::Drop => None,
    };
    let egress = Egress::open().map_err(|source| RuntimeError::Io {
        what: "open the packet socket for redirects",
        source,
    })?;
    // Attached last, once every socket can take its frames: until the
    // program is there, the stack keeps the interface.
    let (_program, xdp_mode) = attach(interface, &sockets, tap.is_some())?;
    // The note goes when this returns, with the program.
    let _owner = crate::dataplane::owner::UserspaceOwner::claim(interface).map_err(|source| {
        RuntimeError::Io {
            what: "write the note that this process serves the interface",
            source,
        }
    })?;
    let (views_tx, views) = std::sync::mpsc::channel();
    let _watcher = fib::spawn_watcher(
        backends.clone(),
        ifindex,
        interface.to_string(),
        forward,
        HOUSEKEEPING,
        views_tx,
    )
    .map_err(|source| RuntimeError::Io {
        what: "start the FIB watcher",
        source,
    })?;

    let mut outputs = Outputs {
        ifindex,
        tap,
        egress,
        transmit: Vec::new(),
        tallies: Tallies::default(),
    };
    let snapshot_file = snapshot_path(&state_dir, interface);
    let started = Instant::now();
    let mut next_housekeeping = started + HOUSEKEEPING;
    let mut frame = FrameBuffer::new(&[]);
    let mut from_stack = vec![0u8; 65_536];
    // Busy while frames keep coming (no system call per batch); a pass
    // that finds nothing waits in poll.
    let mut idle = true;
    let mut tap_readable = false;
    let mut passes: u32 = 0;
    let mut busy_time = Duration::ZERO;
    loop {
        if stop()
            || options
                .duration
                .is_some_and(|limit| started.elapsed() >= limit)
        {
            break;
        }
        if idle {
            tap_readable = wait(&sockets, outputs.tap.as_ref());
        }
        passes = passes.wrapping_add(1);
        let pass_started = Instant::now();
        let mut busy = false;
        tables.set_now_ns(monotonic_now_ns());
        for socket in &mut sockets {
            let received = socket
                .recv_each(Duration::ZERO, |bytes| {
                    frame.reload(bytes);
                    let verdict = pipeline::process_frame(&mut frame, &mut tables);
                    outputs.deliver(
                        verdict.outcome.action,
                        verdict.redirect_ifindex,
                        frame.bytes(),
                    );
                })
                .unwrap_or(0);
            outputs.tallies.received += received as u64;
            busy |= received > 0;
            let transmit = std::mem::take(&mut outputs.transmit);
            outputs.tallies.transmitted += send_all(socket, &transmit, &mut outputs.tallies);
        }
        // The stack's output: when poll said so, and now and then while busy.
        let look_at_tap = tap_readable || (!idle && passes.is_multiple_of(64));
        tap_readable = false;
        if let (true, Some(tap), Some(first)) =
            (look_at_tap, outputs.tap.as_mut(), sockets.first_mut())
        {
            let mut batch = Vec::new();
            while let Ok(Some(bytes)) = tap.read_frame(&mut from_stack) {
                batch.push(bytes.to_vec());
                if batch.len() >= 64 {
                    break;
                }
            }
            busy |= !batch.is_empty();
            let sent = send_all(first, &batch, &mut outputs.tallies);
            outputs.tallies.from_stack += sent;
        }
        idle = !busy;
        if busy {
            busy_time += pass_started.elapsed();
        }
        if Instant::now() >= next_housekeeping {
            next_housekeeping = Instant::now() + HOUSEKEEPING;
            while let Ok(view) = views.try_recv() {
                fib::install(&mut tables, view);
            }
            match watch.refresh(&mut tables) {
                Ok(true) => {
                    outputs.tallies.reloads += 1;
                    // New backends get their next hops now, not a second
                    // later (a state change is rare; the wait is short).
                    let now = fib::backends(&tables);
                    if let Ok(mut list) = backends.lock() {
                        if *list != now {
                            let view = fib::resolve(&now, ifindex, interface, forward);
                            fib::install(&mut tables, view);
                            *list = now;
                        }
                    }
                }
                Ok(false) => {}
                Err(error) => {
                    outputs.tallies.refused_reloads += 1;
                    log::warn!(
                        "the user-space runtime refused a state change; the last good state stays: {error}"
                    );
                }
            }
            write_snapshot(&snapshot_file, interface, &tables, outputs.tallies, false);
        }
    }
    write_snapshot(&snapshot_file, interface, &tables, outputs.tallies, true);
    let socket_drops = sockets
        .iter()
        .filter_map(|socket| socket.stats().ok())
        .map(|stats| stats.rx_dropped + stats.rx_ring_full)
        .sum();
    Ok(RuntimeReport {
        cpu_seconds: super::report::cpu_seconds(),
        busy_seconds: busy_time.as_secs_f64(),
        socket_drops,
        interface: interface.to_string(),
        queues,
        xdp_mode,
        exception: options.exception,
        tap: outputs.tap.as_ref().map(|tap| tap.name().to_string()),
        elapsed_seconds: started.elapsed().as_secs_f64(),
        counters: crate::stats::rows(tables.counters()),
        tallies: outputs.tallies,
    })
}

/// Loads the AF_XDP redirect program, puts each socket in its queue's
/// slot and attaches it: native mode, else generic.
fn attach(
    interface: &str,
    sockets: &[XskSocket],
    neighbours_to_stack: bool,
) -> Result<(Ebpf, &'static str), RuntimeError> {
    let failed = |reason: String| RuntimeError::Attach {
        interface: interface.to_string(),
        reason,
    };
    let mut ebpf = Ebpf::load(objects::XSK).map_err(|error| failed(error.to_string()))?;
    {
        let map = ebpf
            .map_mut(abi::map::XSKS)
            .ok_or_else(|| failed("no XSKS map in the program".into()))?;
        let mut slots = XskMap::try_from(map).map_err(|error| failed(error.to_string()))?;
        for socket in sockets {
            socket.register(&mut slots, socket.queue())?;
        }
    }
    if neighbours_to_stack {
        let map = ebpf
            .map_mut(abi::map::XSK_FLAGS)
            .ok_or_else(|| failed("no XSK_FLAGS map in the program".into()))?;
        let mut flags: aya::maps::Array<_, u32> =
            aya::maps::Array::try_from(map).map_err(|error| failed(error.to_string()))?;
        flags
            .set(0, abi::XSK_NEIGHBOURS_TO_STACK, 0)
            .map_err(|error| failed(error.to_string()))?;
    }
    let program: &mut Xdp = ebpf
        .program_mut(abi::program::XSK)
        .ok_or_else(|| failed("no xdpath_xsk program".into()))?
        .try_into()
        .map_err(|error: aya::programs::ProgramError| failed(error.to_string()))?;
    program.load().map_err(|error| failed(error.to_string()))?;
    let mode = match program.attach(interface, XdpMode::Driver) {
        Ok(_) => "native",
        Err(native) => {
            program
                .attach(interface, XdpMode::Skb)
                .map_err(|generic| failed(format!("native: {native}; generic: {generic}")))?;
            "generic"
        }
    };
    Ok((ebpf, mode))
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

/// Puts frames on a socket's TX ring and kicks once; how many went on.
fn send_all(socket: &mut XskSocket, frames: &[Vec<u8>], tallies: &mut Tallies) -> u64 {
    let mut queued = 0;
    for frame in frames {
        let mut result = socket.enqueue(frame);
        if matches!(result, Err(XskError::TxBusy { .. })) {
            let _ = socket.flush(Duration::from_millis(1));
            result = socket.enqueue(frame);
        }
        match result {
            Ok(()) => queued += 1,
            Err(_) => tallies.lost += 1,
        }
    }
    if !frames.is_empty() {
        let _ = socket.flush(Duration::ZERO);
    }
    queued
}

fn write_snapshot(
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
