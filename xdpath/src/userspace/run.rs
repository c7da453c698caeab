//! Starting the user-space runtime: the state, the sockets, the TAP
//! device and the AF_XDP program; then [`Serving::serve`] runs the loop,
//! and the report is made of what it counted.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use xdpath_core::abi;

use aya::maps::XskMap;
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;
use xdpath_core::NativeTables;

use super::egress::Egress;
use super::fib::{self, FibSlot};
use super::report::{snapshot_path, Counts, ThreadReport};
use super::serve::{write_snapshot, Outputs, Serving, Shared, StateSlot, Worker, HOUSEKEEPING};
use super::state::StateWatch;
use super::tap::{mac_and_mtu, tap_name, Tap};
use super::{Exception, RuntimeError, RuntimeOptions, RuntimeReport};
use crate::afxdp::XskSocket;
use crate::control::interface_index;
use crate::control::state::{self as state_files};
use crate::objects;

/// Runs the user-space runtime until `stop` says so (or the duration
/// ends), then reports.
///
/// # Errors
///
/// Anything that keeps it from starting (no interface, the kernel program
/// attached there, a queue that does not exist, no TAP device, a state
/// that does not compile); once running, failures are counted, not fatal,
/// except a socket that fails for a whole second, the interface deleted,
/// or (with threads) a serving thread that panics: serving stops, and the
/// counters so far are in the snapshot.
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
///     threads: false,
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
    let ifindex = free_interface(interface)?;
    let state_dir = state_files::state_dir().map_err(|error| RuntimeError::Io {
        what: "the namespace's state directory",
        source: std::io::Error::other(error.to_string()),
    })?;
    // The state first: a state that does not compile stops the start
    // before anything is attached.
    let (tables, watch, first_backends) = start_tables(options, ifindex, &state_dir)?;
    let forward = options.config.forward != 0;
    let backends = Mutex::new(first_backends);

    let (queues, sockets) = open_sockets(options)?;
    let tap = open_tap(options.exception, interface)?.map(Arc::new);
    let mut workers = workers(tables, watch, sockets, tap, ifindex, options.threads)?;
    // Attached last, once every socket can take its frames: until the
    // program is there, the stack keeps the interface.
    let all_sockets = workers.iter().flat_map(|worker| worker.sockets.iter());
    let (_program, xdp_mode) = attach(interface, all_sockets, options.exception == Exception::Tap)?;
    // The note goes when this returns, with the program.
    let _owner = crate::dataplane::owner::UserspaceOwner::claim(interface).map_err(|source| {
        RuntimeError::Io {
            what: "write the note that this process serves the interface",
            source,
        }
    })?;
    let backends = Arc::new(backends);
    let fib_slot = Arc::new(Mutex::new(FibSlot::new(workers.len())));
    let _watcher = start_fib_watcher(&backends, &fib_slot, ifindex, interface, forward)?;

    let counts = Mutex::new(vec![Counts::default(); workers.len()]);
    let states = Mutex::new(StateSlot::default());
    let snapshot_file = snapshot_path(&state_dir, interface);
    let shared = Shared {
        interface,
        ifindex,
        forward,
        backends: &backends,
        fib: &fib_slot,
        counts: &counts,
        states: &states,
        snapshot_file: &snapshot_file,
    };
    let started = Instant::now();
    let (served, cpus) = serve(&shared, &mut workers, started, options, stop);
    for (index, worker) in workers.iter_mut().enumerate() {
        Serving {
            shared: &shared,
            index,
            worker,
        }
        .publish();
    }
    let total = shared.summed();
    write_snapshot(&snapshot_file, interface, &total, true);
    served?;
    Ok(report(
        options, queues, xdp_mode, started, &workers, total, &cpus,
    ))
}

/// Serves on this thread (one worker), or on a thread per worker; the
/// outcome, and the CPU each thread was pinned to.
fn serve(
    shared: &Shared<'_>,
    workers: &mut [Worker],
    started: Instant,
    options: &RuntimeOptions,
    stop: &dyn Fn() -> bool,
) -> (Result<(), RuntimeError>, Vec<Option<usize>>) {
    if options.threads {
        match super::threads::serve(shared, workers, started, options.duration, stop) {
            Ok(cpus) => (Ok(()), cpus),
            Err(error) => (Err(error), Vec::new()),
        }
    } else {
        let Some(worker) = workers.first_mut() else {
            return (Ok(()), Vec::new());
        };
        let served = Serving {
            shared,
            index: 0,
            worker,
        }
        .serve(started, options.duration, stop)
        .map_err(|failed| failed.into_error(shared.interface));
        (served, Vec::new())
    }
}

/// What the run did, summed over the workers.
fn report(
    options: &RuntimeOptions,
    queues: u32,
    xdp_mode: &'static str,
    started: Instant,
    workers: &[Worker],
    total: Counts,
    cpus: &[Option<usize>],
) -> RuntimeReport {
    let sockets = || workers.iter().flat_map(|worker| worker.sockets.iter());
    let socket_drops = sockets()
        .filter_map(|socket| socket.stats().ok())
        .map(|stats| stats.rx_dropped + stats.rx_ring_full)
        .sum();
    let busy: Duration = workers.iter().map(|worker| worker.busy).sum();
    let threads = if options.threads {
        workers
            .iter()
            .enumerate()
            .map(|(index, worker)| ThreadReport {
                queue: worker.sockets.first().map_or(0, XskSocket::queue),
                cpu: cpus.get(index).copied().flatten(),
                frames: worker.outputs.tallies.received,
                busy_seconds: worker.busy.as_secs_f64(),
            })
            .collect()
    } else {
        Vec::new()
    };
    RuntimeReport {
        cpu_seconds: super::report::cpu_seconds(),
        busy_seconds: busy.as_secs_f64(),
        socket_drops,
        interface: options.interface.clone(),
        queues,
        xdp_mode,
        exception: options.exception,
        tap: workers
            .first()
            .and_then(|worker| worker.outputs.tap.as_ref())
            .map(|tap| tap.name().to_string()),
        elapsed_seconds: started.elapsed().as_secs_f64(),
        counters: crate::stats::rows(&total.counters()),
        tallies: total.tallies,
        threads,
    }
}

/// The workers: one serving every socket, or (`threads`) one per socket,
/// each with a copy of the tables made after the buckets were shared, its
/// own watch (starting from what is installed) and packet socket.
fn workers(
    mut tables: NativeTables,
    watch: StateWatch,
    sockets: Vec<XskSocket>,
    tap: Option<Arc<Tap>>,
    ifindex: u32,
    threads: bool,
) -> Result<Vec<Worker>, RuntimeError> {
    let outputs = || -> Result<Outputs, RuntimeError> {
        let egress = Egress::open().map_err(|source| RuntimeError::Io {
            what: "open the packet socket for redirects",
            source,
        })?;
        Ok(Outputs {
            ifindex,
            tap: tap.clone(),
            egress,
            tallies: Default::default(),
        })
    };
    let worker = |tables, watch, sockets| -> Result<Worker, RuntimeError> {
        Ok(Worker {
            tables,
            watch,
            sockets,
            outputs: outputs()?,
            fib_generation: 0,
            state_generation: 0,
            busy: Duration::ZERO,
        })
    };
    if !threads {
        return Ok(vec![worker(tables, watch, sockets)?]);
    }
    // Shared before the clones, so every clone charges the one table (the
    // handle itself is not needed: the tables hold it).
    let _buckets = tables.share_buckets();
    sockets
        .into_iter()
        .map(|socket| worker(tables.clone(), watch.clone(), vec![socket]))
        .collect()
}

/// The ifindex of `interface`, which must exist and not run the kernel
/// program.
fn free_interface(interface: &str) -> Result<u32, RuntimeError> {
    let ifindex = interface_index(interface).ok_or_else(|| RuntimeError::NoInterface {
        interface: interface.to_string(),
    })?;
    if crate::dataplane::read_interface_config(interface).is_ok() {
        return Err(RuntimeError::KernelAttached {
            interface: interface.to_string(),
        });
    }
    Ok(ifindex)
}

/// The native tables with the namespace's state and the backends' first
/// next hops, the watch that keeps the state current, and those backends.
fn start_tables(
    options: &RuntimeOptions,
    ifindex: u32,
    state_dir: &Path,
) -> Result<(NativeTables, StateWatch, Vec<[u8; 16]>), RuntimeError> {
    let mut tables = NativeTables::new(options.config);
    tables.ifindex = ifindex;
    let mut watch = StateWatch::new(state_dir);
    watch.refresh(&mut tables)?;
    let forward = options.config.forward != 0;
    let first_backends = fib::backends(&tables);
    let view = fib::resolve(&first_backends, ifindex, &options.interface, forward);
    fib::install(&mut tables, view);
    Ok((tables, watch, first_backends))
}

/// One socket per queue (`--queues`, else every queue of the interface);
/// returns their number too.
fn open_sockets(options: &RuntimeOptions) -> Result<(u32, Vec<XskSocket>), RuntimeError> {
    let interface = options.interface.as_str();
    let queues = match options.queues {
        Some(queues) => queues,
        None => crate::afxdp::queue_count(interface).unwrap_or(1),
    }
    .max(1);
    let mut sockets = Vec::new();
    for queue in 0..queues {
        sockets.push(XskSocket::open(interface, queue, options.xsk)?);
    }
    Ok((queues, sockets))
}

/// Starts the thread that resolves `backends`' next hops (and, with
/// `forward`, the forwarding table) each second; its views go into
/// `slot`, until the slot is dropped.
fn start_fib_watcher(
    backends: &Arc<Mutex<Vec<[u8; 16]>>>,
    slot: &Arc<Mutex<FibSlot>>,
    ifindex: u32,
    interface: &str,
    forward: bool,
) -> Result<JoinHandle<()>, RuntimeError> {
    fib::spawn_watcher(
        backends.clone(),
        ifindex,
        interface.to_string(),
        forward,
        HOUSEKEEPING,
        Arc::downgrade(slot),
    )
    .map_err(|source| RuntimeError::Io {
        what: "start the FIB watcher",
        source,
    })
}

/// The TAP device frames for the stack go to, with the interface's MAC and
/// MTU (none when exceptions are dropped).
fn open_tap(exception: Exception, interface: &str) -> Result<Option<Tap>, RuntimeError> {
    match exception {
        Exception::Tap => {
            let name = tap_name(interface);
            let (mac, mtu) = mac_and_mtu(interface).map_err(|source| RuntimeError::Io {
                what: "read the interface's MAC and MTU",
                source,
            })?;
            Ok(Some(
                Tap::create(&name, mac, mtu)
                    .map_err(|source| RuntimeError::Tap { name, source })?,
            ))
        }
        Exception::Drop => Ok(None),
    }
}

/// Loads the AF_XDP redirect program, puts each socket in its queue's
/// slot and attaches it: native mode, else generic.
fn attach<'s>(
    interface: &str,
    sockets: impl Iterator<Item = &'s XskSocket>,
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
