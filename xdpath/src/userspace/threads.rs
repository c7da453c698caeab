//! `--threads`: one serving thread per queue socket, thread *i* pinned to
//! CPU *i* mod the online CPUs, as the kernel program runs on the CPU of
//! each queue's interrupt (pair it with IRQ affinity: queue *i*'s
//! interrupt on CPU *i*, so the frames are warm where they are served).
//!
//! Each thread has its own tables (counters, connection tables: a flow
//! stays on its queue, as RSS keeps it, like the kernel's
//! `--connection-table per-cpu`), its own installed state (thread 0
//! reads the state files and hands what it installed to the others),
//! packet socket and tallies; the rate limits' buckets are one table for all
//! ([`xdpath_core::NativeTables::share_buckets`]). The thread that ends
//! first, for whatever reason (the duration, a failed socket, a panic),
//! stops the others.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::serve::{Serving, Shared, Worker, IDLE_WAIT_MS};
use super::RuntimeError;

/// Sets the flag when dropped: when its thread ends, returning or
/// unwinding.
struct HaltOnExit<'a>(&'a AtomicBool);

impl Drop for HaltOnExit<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Serves each worker on a thread of its own until `stop` says so (asked
/// here, on the calling thread), `duration` ends or a thread ends; returns
/// the CPU each thread was pinned to.
///
/// # Errors
///
/// The first thread's failure: a socket that kept failing, a thread that
/// panicked or could not be started. The others are stopped first.
pub(super) fn serve(
    shared: &Shared<'_>,
    workers: &mut [Worker],
    started: Instant,
    duration: Option<Duration>,
    stop: &dyn Fn() -> bool,
) -> Result<Vec<Option<usize>>, RuntimeError> {
    let halt = AtomicBool::new(false);
    let online = online_cpus();
    std::thread::scope(|scope| {
        let mut threads = Vec::new();
        let mut failure = None;
        for (index, worker) in workers.iter_mut().enumerate() {
            let queue = worker.sockets.first().map_or(0, |socket| socket.queue());
            let halt = &halt;
            let spawned = std::thread::Builder::new()
                .name(format!("xdpath-q{queue}"))
                .spawn_scoped(scope, move || {
                    let _halt = HaltOnExit(halt);
                    let cpu = index % online;
                    let pinned = match pin_thread_to(cpu) {
                        Ok(()) => Some(cpu),
                        Err(error) => {
                            log::warn!(
                                "cannot pin the thread of queue {queue} to CPU {cpu}: {error}"
                            );
                            None
                        }
                    };
                    let result = Serving {
                        shared,
                        index,
                        worker,
                    }
                    .serve(started, duration, &|| halt.load(Ordering::Relaxed));
                    (pinned, result)
                });
            match spawned {
                Ok(thread) => threads.push((index, queue, thread)),
                Err(source) => {
                    halt.store(true, Ordering::Relaxed);
                    failure = Some(RuntimeError::Io {
                        what: "start a serving thread",
                        source,
                    });
                    break;
                }
            }
        }
        while !halt.load(Ordering::Relaxed) {
            if stop() {
                halt.store(true, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(IDLE_WAIT_MS.unsigned_abs().into()));
        }
        let mut cpus = Vec::new();
        for (index, queue, thread) in threads {
            match thread.join() {
                Ok((cpu, Ok(()))) => cpus.push(cpu),
                Ok((cpu, Err(failed))) => {
                    cpus.push(cpu);
                    failure.get_or_insert(failed.into_error(shared.interface));
                }
                Err(panic) => {
                    cpus.push(None);
                    let reason = panic
                        .downcast_ref::<&str>()
                        .map(|text| (*text).to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_string());
                    failure.get_or_insert(RuntimeError::Thread {
                        index,
                        queue,
                        reason,
                    });
                }
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(cpus),
        }
    })
}

/// The online CPUs (at least 1).
fn online_cpus() -> usize {
    // SAFETY: sysconf has no memory preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(online).unwrap_or(1).max(1)
}

/// Pins the calling thread to `cpu` (`sched_setaffinity`); `EINVAL` for
/// a CPU past `CPU_SETSIZE`. Also what the benchmarks pin with.
///
/// # Errors
///
/// The system call's.
pub fn pin_thread_to(cpu: usize) -> std::io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE, checked above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: a valid set of the size given; 0 is the calling thread.
    let result = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
