//! Starting the user-space runtime: the state, the sockets, the TAP
//! device and the AF_XDP program; then [`Serving::serve`] runs the loop,
//! and the report is made of what it counted.

use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;
use xdpath_core::abi;

use aya::maps::XskMap;
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;
use xdpath_core::NativeTables;

use super::egress::Egress;
use super::fib;
use super::report::{snapshot_path, Tallies};
use super::serve::{write_snapshot, Outputs, Serving, HOUSEKEEPING};
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
    let ifindex = free_interface(interface)?;
    let state_dir = state_files::state_dir().map_err(|error| RuntimeError::Io {
        what: "the namespace's state directory",
        source: std::io::Error::other(error.to_string()),
    })?;
    // The state first: a state that does not compile stops the start
    // before anything is attached.
    let (mut tables, mut watch, first_backends) = start_tables(options, ifindex, &state_dir)?;
    let forward = options.config.forward != 0;
    let backends = Arc::new(Mutex::new(first_backends));

    let (queues, mut sockets) = open_sockets(options)?;
    let tap = open_tap(options.exception, interface)?;
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
    let (views, _watcher) = start_fib_watcher(&backends, ifindex, interface, forward)?;

    let mut outputs = Outputs {
        ifindex,
        tap,
        egress,
        tallies: Tallies::default(),
    };
    let snapshot_file = snapshot_path(&state_dir, interface);
    let started = Instant::now();
    let busy_time = Serving {
        interface,
        ifindex,
        forward,
        tables: &mut tables,
        watch: &mut watch,
        backends: &backends,
        views: &views,
        sockets: &mut sockets,
        outputs: &mut outputs,
        snapshot_file: &snapshot_file,
    }
    .serve(started, options.duration, stop);
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
/// `forward`, the forwarding table) each second; its views come on the
/// receiver.
fn start_fib_watcher(
    backends: &Arc<Mutex<Vec<[u8; 16]>>>,
    ifindex: u32,
    interface: &str,
    forward: bool,
) -> Result<(Receiver<fib::FibView>, JoinHandle<()>), RuntimeError> {
    let (views_tx, views) = std::sync::mpsc::channel();
    let watcher = fib::spawn_watcher(
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
    Ok((views, watcher))
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
