//! `xdpath demo`: builds a two-namespace test bed, attaches xdpath in
//! native mode on one end, sends a mixed traffic set and real pings from the
//! other, prints the counters, checks them against what was sent, blocks
//! and unblocks the sender, and removes everything again; then balances
//! HTTP over three backends ([`crate::demo::lb`]).
//!
//! The demo is a self-check too: it fails when a counter differs from what
//! the traffic should have produced. Whatever happens (an error, Ctrl-C),
//! the test bed is removed: dropping it unpins xdpath and deletes both
//! namespaces.

pub mod lb;
pub mod userspace;

use std::time::{Duration, Instant};

use xdpath_core::{Counter, InterfaceConfig, MalformedPolicy};

use crate::servers::xdpath_in;
use crate::testenv::{Side, TestBed, TestBedError};
use crate::traffic::{Expected, Mix};
use xdpath::dataplane::{self, AttachedMode, DataplaneError, ModeChoice};
use xdpath::stats;

/// Pings of each IP version the demo sends.
pub(crate) const PINGS: u64 = 3;
/// Data bytes per ping.
pub(crate) const PING_SIZE: u64 = 56;
/// How long to wait for the frames to be counted.
const COUNT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The test bed could not be built or used.
    #[error("test bed: {0}")]
    TestBed(#[from] TestBedError),
    /// Attaching, reading counters or detaching failed.
    #[error("{0}")]
    Dataplane(#[from] DataplaneError),
    /// Sending traffic or entering a namespace failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// A ping got no answer.
    #[error("`{command}` in namespace {namespace} failed: {detail}")]
    Ping {
        /// The ping command.
        command: String,
        /// Where it ran.
        namespace: String,
        /// Its output.
        detail: String,
    },
    /// The counters are not what the traffic should have produced.
    #[error("the counters do not match the traffic sent: {}", .0.join("; "))]
    Mismatch(Vec<String>),
    /// Ctrl-C or SIGTERM.
    #[error("interrupted (the test bed has been removed)")]
    Interrupted,
    /// An `xdpath` command of the filter act failed.
    #[error(transparent)]
    Command(#[from] crate::servers::ServerError),
    /// Writing the JSON report failed.
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The user-space runtime could not run.
    #[error(transparent)]
    Runtime(#[from] xdpath::userspace::RuntimeError),
}

pub(crate) fn check_interrupted() -> Result<(), DemoError> {
    if crate::signals::interrupted() {
        return Err(DemoError::Interrupted);
    }
    Ok(())
}

/// Runs the demo. With `json`, stdout gets one JSON report and the
/// narrative goes to stderr.
pub fn run(json: bool) -> Result<(), DemoError> {
    let _signals = crate::signals::SignalGuard::install();
    // Ctrl-C reaches the children too (`ip`, `ping`): their failure is the
    // interruption, not an error of its own.
    run_steps(json).map_err(|error| {
        if crate::signals::interrupted() {
            DemoError::Interrupted
        } else {
            error
        }
    })
}

fn run_steps(json: bool) -> Result<(), DemoError> {
    let say = |line: String| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };

    let stale = TestBed::sweep_stale()?;
    if !stale.is_empty() {
        say(format!(
            "removed namespaces left by earlier runs: {}",
            stale.join(", ")
        ));
    }
    check_interrupted()?;
    let bed = TestBed::new()?;
    let (a, b) = (bed.a().clone(), bed.b().clone());
    say(format!(
        "test bed: namespace {} ({}, {} / {}) <-veth-> namespace {} ({}, {} / {})",
        a.namespace, a.interface, a.ipv4, a.ipv6, b.namespace, b.interface, b.ipv4, b.ipv6
    ));
    check_interrupted()?;

    counting_act(&bed, &say, json)?;
    filter_act(&bed, &say)?;

    let interface = a.interface.clone();
    bed.run_in_a(move || dataplane::detach(&interface))
        .map_err(|source| DemoError::Io {
            what: format!("entering {}", a.namespace),
            source,
        })??;
    say(format!("detached from {}", a.interface));
    crate::demo::userspace::userspace_act(&bed, &say, json)?;
    say("removing the test bed".to_string());
    drop(bed);
    check_interrupted()?;

    let show = |table: &str| {
        if json {
            eprint!("{table}");
        } else {
            print!("{table}");
        }
    };
    crate::demo::lb::lb_act(&say, &show)?;
    say("done".to_string());
    Ok(())
}

/// The counters at work: attach xdpath to side A, send the traffic mix and
/// pings from side B, show the counters and check them against the traffic.
fn counting_act(bed: &TestBed, say: &dyn Fn(String), json: bool) -> Result<(), DemoError> {
    let mode = attach_native(bed, say)?;
    let (mix, expected) = send_traffic(bed, say)?;
    let counters = wait_for_counters(bed, &expected)?;
    let differences = expected.differences(&counters);
    let rows = stats::rows(&counters);
    if json {
        if differences.is_empty() {
            println!("{}", counting_report(bed, mode, &mix, &rows)?);
        }
    } else {
        println!();
        println!("{} ({} mode):", bed.a().interface, mode.name());
        print!("{}", stats::CounterTable(&rows));
        println!();
    }
    if !differences.is_empty() {
        return Err(DemoError::Mismatch(differences));
    }
    say(format!(
        "counters match the traffic exactly: {} passed, {} dropped",
        stats::total(&counters, xdpath_core::Action::Pass),
        stats::total(&counters, xdpath_core::Action::Drop)
    ));
    Ok(())
}

/// Attaches xdpath to side A in native mode, dropping malformed frames.
fn attach_native(bed: &TestBed, say: &dyn Fn(String)) -> Result<AttachedMode, DemoError> {
    let a = bed.a();
    say(format!(
        "attaching xdpath to {} in native mode, dropping malformed frames",
        a.interface
    ));
    let interface = a.interface.clone();
    let mode = bed
        .run_in_a(move || {
            dataplane::attach(
                &interface,
                ModeChoice::Native,
                InterfaceConfig::new(MalformedPolicy::Drop),
            )
        })
        .map_err(|source| DemoError::Io {
            what: format!("entering {}", a.namespace),
            source,
        })??;
    check_interrupted()?;
    Ok(mode)
}

/// Sends the traffic mix from side B, then pings side A over IPv4 and
/// IPv6; returns the mix and the counters it should produce.
fn send_traffic(bed: &TestBed, say: &dyn Fn(String)) -> Result<(Mix, Expected), DemoError> {
    let (a, b) = (bed.a(), bed.b());
    let mix = Mix::for_bed(bed);
    say(format!(
        "sending {} frames from {} ({} malformed; IPv4/IPv6, TCP/UDP/ICMP, 802.1Q and QinQ)",
        mix.len(),
        b.interface,
        mix.malformed()
    ));
    let sender = mix.clone();
    let out = b.interface.clone();
    bed.run_in_b(move || sender.send(&out))
        .and_then(|result| result)
        .map_err(|source| DemoError::Io {
            what: format!("sending from {}", b.interface),
            source,
        })?;
    check_interrupted()?;

    let mut expected = mix.expected(MalformedPolicy::Drop);
    for (v6, address) in [(false, a.ipv4.to_string()), (true, a.ipv6.to_string())] {
        say(format!("ping -c {PINGS} {address} from {}", b.namespace));
        ping(bed, v6, &address)?;
        expected.add_pings(v6, PINGS, PING_SIZE);
        check_interrupted()?;
    }
    Ok((mix, expected))
}

/// The JSON report of the counting act: the bed, what was sent, the
/// counters (which matched).
fn counting_report(
    bed: &TestBed,
    mode: AttachedMode,
    mix: &Mix,
    rows: &[stats::CounterRow],
) -> Result<String, DemoError> {
    let (a, b) = (bed.a(), bed.b());
    let report = serde_json::json!({
        "testbed": {
            "a": { "namespace": a.namespace, "interface": a.interface, "ipv4": a.ipv4, "ipv6": a.ipv6, "mac": a.mac_string() },
            "b": { "namespace": b.namespace, "interface": b.interface, "ipv4": b.ipv4, "ipv6": b.ipv6, "mac": b.mac_string() },
        },
        "mode": mode,
        "malformed": "drop",
        "sent": {
            "frames": mix.len(),
            "malformed": mix.malformed(),
            "pings_ipv4": PINGS,
            "pings_ipv6": PINGS,
        },
        "counters": rows,
        "match": true,
    });
    Ok(serde_json::to_string_pretty(&report)?)
}

/// The filter at work: block side B's address, see its pings dropped at
/// XDP (counted as `blocklisted`), unblock it, see them answered again.
fn filter_act(bed: &TestBed, say: &dyn Fn(String)) -> Result<(), DemoError> {
    let (a, b) = (bed.a(), bed.b());
    let blocked = format!("{}/32", b.ipv4);
    say(format!(
        "xdpath block add {blocked} --ttl 1m   (in {})",
        a.namespace
    ));
    xdpath_in(bed, Side::A, &["block", "add", &blocked, "--ttl", "1m"])?;
    let capture_file =
        std::env::temp_dir().join(format!("xdpath-demo-{}.pcapng", std::process::id()));
    say(format!(
        "xdpath capture --verdict drop --reason blocklisted -c {PINGS} -w {}",
        capture_file.display()
    ));
    let capture = start_capture(bed, &capture_file)?;
    say(format!(
        "ping -c {PINGS} {} from {}: no replies expected",
        a.ipv4, b.namespace
    ));
    if ping(bed, false, &a.ipv4.to_string()).is_ok() {
        return Err(DemoError::Mismatch(vec![format!(
            "{} still got replies while blocked",
            b.ipv4
        )]));
    }
    check_interrupted()?;
    show_capture(capture, &capture_file, say)?;
    let stats: serde_json::Value =
        serde_json::from_str(&xdpath_in(bed, Side::A, &["--json", "stats"])?)?;
    let dropped = stats::packets_in_json(&stats, "drop", Some("blocklisted"));
    if dropped < PINGS {
        return Err(DemoError::Mismatch(vec![format!(
            "{dropped} frames counted as blocklisted, {PINGS} pings sent"
        )]));
    }
    say(format!("dropped at XDP as blocklisted: {dropped} frames"));
    xdpath_in(bed, Side::A, &["block", "del", &blocked])?;
    say(format!(
        "xdpath block del {blocked}; ping -c {PINGS} {} again",
        a.ipv4
    ));
    ping(bed, false, &a.ipv4.to_string())?;
    say("answered again".to_string());
    Ok(())
}

/// `xdpath capture` of the blocked pings, in the background; returns once
/// it is capturing.
fn start_capture(bed: &TestBed, file: &std::path::Path) -> Result<std::process::Child, DemoError> {
    use std::io::BufRead;
    let failed = |detail: String| {
        DemoError::Command(crate::servers::ServerError::Command {
            command: "xdpath capture".into(),
            detail,
        })
    };
    let exe = std::env::current_exe().map_err(|error| failed(error.to_string()))?;
    let count = PINGS.to_string();
    let mut child = bed
        .command(Side::A, exe)
        .args([
            "capture",
            "--verdict",
            "drop",
            "--reason",
            "blocklisted",
            "-c",
            &count,
        ])
        .args(["--duration", "20", "-w"])
        .arg(file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|error| failed(error.to_string()))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| failed("no stderr".into()))?;
    let mut lines = std::io::BufReader::new(stderr).lines();
    match lines.next() {
        Some(Ok(line)) if line.contains("capturing") => Ok(child),
        other => {
            let _ = child.kill();
            let _ = child.wait();
            Err(failed(format!("{other:?}")))
        }
    }
}

/// Waits for the capture and shows what it holds, as tshark reads it.
fn show_capture(
    mut capture: std::process::Child,
    file: &std::path::Path,
    say: &dyn Fn(String),
) -> Result<(), DemoError> {
    let status = capture.wait().map_err(|error| {
        DemoError::Command(crate::servers::ServerError::Command {
            command: "xdpath capture".into(),
            detail: error.to_string(),
        })
    })?;
    let output = std::process::Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args([
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "_ws.col.Info",
        ])
        .args(["-e", "frame.comment"])
        .output();
    let _ = std::fs::remove_file(file);
    let text = match output {
        Ok(output) if status.success() => String::from_utf8_lossy(&output.stdout).into_owned(),
        _ => return Err(DemoError::Mismatch(vec!["the capture failed".into()])),
    };
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() as u64 != PINGS {
        return Err(DemoError::Mismatch(vec![format!(
            "the capture holds {} frames, {PINGS} pings were dropped",
            lines.len()
        )]));
    }
    say(format!(
        "the capture, read by tshark ({} frames):",
        lines.len()
    ));
    for line in lines.iter().take(3) {
        say(format!("  {}", line.replace('\t', "  ")));
    }
    Ok(())
}

pub(crate) fn ping(bed: &TestBed, v6: bool, address: &str) -> Result<(), DemoError> {
    let count = PINGS.to_string();
    let size = PING_SIZE.to_string();
    let family = if v6 { "-6" } else { "-4" };
    let args = [
        family, "-q", "-n", "-c", &count, "-i", "0.2", "-W", "2", "-s", &size, address,
    ];
    let output = bed.exec(Side::B, "ping", args)?;
    if !output.status.success() {
        check_interrupted()?;
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        return Err(DemoError::Ping {
            command: format!("ping {}", args.join(" ")),
            namespace: bed.b().namespace.clone(),
            detail: text.trim().replace('\n', " / "),
        });
    }
    Ok(())
}

/// Reads the counters in namespace A until they match `expected` (frames
/// are counted asynchronously) or the timeout passes; returns the last read.
fn wait_for_counters(bed: &TestBed, expected: &Expected) -> Result<Vec<Counter>, DemoError> {
    let start = Instant::now();
    loop {
        let interface = bed.a().interface.clone();
        let counters = bed
            .run_in_a(move || dataplane::interface_counters(&interface))
            .map_err(|source| DemoError::Io {
                what: format!("entering {}", bed.a().namespace),
                source,
            })??;
        if expected.differences(&counters).is_empty() || start.elapsed() > COUNT_TIMEOUT {
            return Ok(counters);
        }
        check_interrupted()?;
        std::thread::sleep(Duration::from_millis(20));
    }
}
