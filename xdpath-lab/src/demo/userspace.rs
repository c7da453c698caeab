//! The demo's third act: the same packet logic in user space. With the
//! kernel program detached, `xdpath run --userspace` (the library call
//! behind it) takes the interface over AF_XDP; the same traffic and pings
//! go through it (the pings reach the stack through its TAP device), and
//! its counters must be exactly the kernel's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xdpath_core::{InterfaceConfig, MalformedPolicy};

use crate::demo::{check_interrupted, ping, DemoError, PINGS, PING_SIZE};
use crate::testenv::TestBed;
use crate::traffic::Mix;
use xdpath::afxdp::XskOptions;
use xdpath::stats;
use xdpath::userspace::{self, Exception, RuntimeOptions};

/// How long the runtime gets to come up.
const START_TIMEOUT: Duration = Duration::from_secs(10);

fn io(what: &str) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        what: what.to_string(),
        source,
    }
}

/// Runs the act on a bed whose side A has no xdpath attached.
pub fn userspace_act(bed: &TestBed, say: &dyn Fn(String), json: bool) -> Result<(), DemoError> {
    let a = bed.a().clone();
    say(format!(
        "the same packet logic in user space: xdpath run --userspace {} (AF_XDP, copy mode; passed frames reach the stack through xtap-{})",
        a.interface, a.interface
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let options = RuntimeOptions {
        interface: a.interface.clone(),
        queues: None,
        config: InterfaceConfig::new(MalformedPolicy::Drop),
        exception: Exception::Tap,
        xsk: XskOptions::default(),
        duration: None,
        threads: false,
    };
    let (path, flag) = (a.path.clone(), stop.clone());
    let runtime = std::thread::spawn(move || {
        xdpath::netns::enter(&path).map_err(io("entering namespace A"))?;
        Ok::<_, DemoError>(userspace::run(&options, &|| flag.load(Ordering::Relaxed))?)
    });
    let started = Instant::now();
    while !crate::testenv::has_xdp_program(&a.path, &a.interface) {
        if runtime.is_finished() || started.elapsed() > START_TIMEOUT {
            stop.store(true, Ordering::Relaxed);
            return match runtime.join() {
                Ok(Err(error)) => Err(error),
                _ => Err(DemoError::Mismatch(
                    vec!["the runtime did not start".into()],
                )),
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let result = traffic(bed);
    stop.store(true, Ordering::Relaxed);
    let report = runtime
        .join()
        .map_err(|_| DemoError::Mismatch(vec!["the runtime panicked".into()]))??;
    let expected = result?;
    let interface = a.interface.clone();
    let counters = bed
        .run_in_a(move || userspace::read_snapshot(&interface))
        .map_err(io("reading the runtime's counters"))?
        .map(|snapshot| snapshot.counters())
        .unwrap_or_default();
    let differences = expected.differences(&counters);
    if !json {
        println!();
        println!("{} (user space, AF_XDP):", a.interface);
        print!("{}", stats::CounterTable(&report.counters));
        println!();
    }
    if !differences.is_empty() {
        return Err(DemoError::Mismatch(differences));
    }
    say(format!(
        "user-space counters match the traffic exactly, as the kernel's did: {} frames, {} to the stack through {}",
        report.tallies.received,
        report.tallies.to_stack,
        report.tap.as_deref().unwrap_or("-"),
    ));
    Ok(())
}

/// The kernel act's traffic again: the mix and the pings. The counters it
/// should leave.
fn traffic(bed: &TestBed) -> Result<crate::traffic::Expected, DemoError> {
    let (a, b) = (bed.a().clone(), bed.b().clone());
    let mix = Mix::for_bed(bed);
    let sender = mix.clone();
    let out = b.interface.clone();
    bed.run_in_b(move || sender.send(&out))
        .and_then(|result| result)
        .map_err(io("sending from B"))?;
    check_interrupted()?;
    let mut expected = mix.expected(MalformedPolicy::Drop);
    for (v6, address) in [(false, a.ipv4.to_string()), (true, a.ipv6.to_string())] {
        ping(bed, v6, &address)?;
        expected.add_pings(v6, PINGS, PING_SIZE);
        check_interrupted()?;
    }
    // The runtime writes its snapshot once a second and at its end.
    std::thread::sleep(Duration::from_millis(100));
    Ok(expected)
}
