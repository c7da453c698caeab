//! The data path under adaptive floods (issue 14, items 13 and 14), end to
//! end in test namespaces: the floods of the issue, sent by
//! [`xdpath_lab::flood`] out of a bed's own veth (spoofed sources, two frames
//! per random flow, bounded in frames and time), at xdpath attached in
//! native mode.
//!
//! - A per-source rate limit must hold for a limited source while a flood
//!   of random sources churns the per-source bucket table.
//! - Established load-balanced flows must keep their backend while a SYN
//!   flood churns the balancer's tables.
//!
//! One flood at a time: the two tests share the machine's CPUs with the
//! floods they send, so they take turns. Needs root, nginx and python3.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use xdpath_core::abi;

use common::{bed, json, xdpath_ok, xdpath_ok_in};
use xdpath_core::build::{FrameSpec, Network, Transport};
use xdpath_core::wire::tcp::FLAG_SYN;
use xdpath_lab::flood::{Flood, FloodReport};
use xdpath_lab::testenv::lb::{LbBed, Role, INTERFACE, PY_ASK_BACKEND, VIP4};

static ONE_FLOOD_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_flood_at_a_time() -> MutexGuard<'static, ()> {
    ONE_FLOOD_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A flood running on its own thread inside a namespace until stopped (or
/// until its own bounds).
struct Running {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<FloodReport, String>>,
}

impl Running {
    fn start(namespace: std::path::PathBuf, flood: Flood) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            match xdpath::netns::run_in(&namespace, move || flood.run(&flag)) {
                Ok(Ok(report)) => Ok(report),
                Ok(Err(error)) => Err(error.to_string()),
                Err(error) => Err(format!("entering the namespace: {error}")),
            }
        });
        Self { stop, thread }
    }

    fn stop(self) -> FloodReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .expect("the flood thread")
            .expect("the flood")
    }
}

// ---- item 13: a rate-limited source under a source-table flood

/// The limit of the issue: 1 datagram a second, bursts of 5, per source.
const LIMIT_PPS: u64 = 1;
const LIMIT_BURST: u64 = 5;
/// The limited source sends 5 datagrams every 2 s, 8 times.
const ROUNDS: u32 = 8;
const PER_ROUND: u32 = 5;
const ROUND_GAP: Duration = Duration::from_secs(2);
/// The port the limited source sends to (a socket in A counts them).
const LIMITED_PORT: u16 = 7001;
/// The last byte of the address the flood is sent to: on A's link, A's
/// MAC, but not A's address (see the test).
const FLOOD_HOST: u8 = 99;

#[test]
fn a_per_source_limit_holds_while_random_sources_churn_the_bucket_table() {
    xdpath_lab::needs_root!();
    let _turn = one_flood_at_a_time();
    let bed = bed();
    let interface = bed.a().interface.clone();
    let (a, b) = (bed.a().ipv4, bed.b().ipv4);
    let mut flood_target = a.octets();
    flood_target[3] = FLOOD_HOST;
    xdpath_ok(&bed, &["attach", &interface, "--mode", "native"]);
    let (pps, burst) = (LIMIT_PPS.to_string(), LIMIT_BURST.to_string());
    xdpath_ok(
        &bed,
        &[
            "ratelimit",
            "add",
            "--proto",
            "udp",
            "--pps",
            &pps,
            "--burst",
            &burst,
            "--per",
            "src",
        ],
    );
    // A second limit, checked after the first, drops what the flood sends
    // to its own address once the first has charged it: the flood churns
    // the per-source buckets exactly as it would at A's address, but A's
    // stack does not spend the machine's CPUs on it.
    let flood_scope = format!("{}/32", std::net::Ipv4Addr::from(flood_target));
    xdpath_ok(
        &bed,
        &[
            "ratelimit",
            "add",
            "--pps",
            "1",
            "--burst",
            "1",
            "--per",
            "dst",
            "--scope",
            &flood_scope,
        ],
    );
    let limits = json(&xdpath_ok(&bed, &["--json", "ratelimit", "list"]));
    let limit_id = limits[0]["id"].as_u64().expect("the limit's id") as u32;
    let buckets = SourceBuckets::open(&bed);
    let receiver = bed
        .run_in_a(move || UdpSocket::bind((a, LIMITED_PORT)))
        .expect("enter A")
        .expect("bind in A");
    let sender = bed
        .run_in_b(move || UdpSocket::bind((b, 0)))
        .expect("enter B")
        .expect("bind in B");
    // A flood that overruns B's veth queue may drop limited datagrams
    // before XDP; a run whose losses could hide an escape (seen in full
    // suite runs: 5,731 and 17,652 frames dropped) is made again, at most
    // twice more.
    let mut attempt = 0;
    let (evicted, lost, passed, sent, allowed, report) = loop {
        attempt += 1;
        let template = FrameSpec::new(
            Network::V4(b.octets(), flood_target),
            Transport::udp(40000, 9),
        )
        .with_macs(bed.b().mac, bed.a().mac)
        .with_payload(&[0; 18])
        .build();
        let flood = Running::start(
            bed.b().path.clone(),
            Flood {
                interface: bed.b().interface.clone(),
                template,
                frames_per_flow: 2,
                random_ports: false,
                max_frames: 60_000_000,
                max_duration: Duration::from_secs(60),
                seed: 13,
            },
        );
        // Let the flood fill the table before the limited source starts.
        std::thread::sleep(ROUND_GAP);
        let lost_before = tx_dropped(&bed);
        let target = SocketAddr::from((a, LIMITED_PORT));
        let first = Instant::now();
        let mut evicted = 0;
        for round in 0..ROUNDS {
            if round > 0 {
                // A gap, then until the flood has evicted the bucket (a busy
                // machine floods slower: 280 kframes/s left it in the table
                // after 2 s under a parallel build), at most two gaps more.
                std::thread::sleep(ROUND_GAP);
                let deadline = Instant::now() + ROUND_GAP * 2;
                while buckets.holds(b, limit_id) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                evicted += u32::from(!buckets.holds(b, limit_id));
            }
            for datagram in 0..PER_ROUND {
                sender
                    .send_to(&[round as u8, datagram as u8], target)
                    .expect("send");
            }
        }
        let span = first.elapsed();
        std::thread::sleep(Duration::from_millis(300));
        let report = flood.stop();

        let passed = received_from(&receiver, b.into());
        let lost = tx_dropped(&bed) - lost_before;
        let sent = u64::from(ROUNDS * PER_ROUND);
        // What the limit allows over the time the source sent: the burst, then
        // the rate (a coarse-clock tick of slack).
        let allowed = LIMIT_BURST + LIMIT_PPS * span.as_secs() + 1;
        eprintln!(
            "flood: {} frames, {} random sources in {:.1} s ({:.0} frames/s); the limited source's \
             bucket was evicted before {evicted} of {} rounds; {passed} of {sent} passed over {:.1} s \
             (the limit allows {allowed}); {lost} lost before XDP",
            report.frames,
            report.flows,
            report.elapsed.as_secs_f64(),
            report.frames_per_second(),
            ROUNDS - 1,
            span.as_secs_f64()
        );
        // A frame B's veth dropped before XDP may have been a limited
        // datagram: counting each as one that would have passed keeps the
        // check sound when a busy machine loses a few flood frames.
        let worst = passed + lost.min(sent - passed);
        if worst <= allowed || attempt == 3 {
            break (evicted, lost, passed, sent, allowed, report);
        }
        eprintln!(
            "attempt {attempt} void: B's veth dropped {lost}, too many to tell ({passed} passed, \
             at most {allowed} allowed); measuring again"
        );
    };
    assert!(
        evicted * 2 >= ROUNDS - 1,
        "the flood must evict the limited source's bucket between its rounds: it did before \
         {evicted} of {} rounds ({:.0} frames/s; is the machine busy?)",
        ROUNDS - 1,
        report.frames_per_second()
    );
    assert!(
        passed + lost.min(sent - passed) <= allowed,
        "the limited source escaped its limit: {passed} of {sent} passed and {lost} frames were \
         lost before XDP (each counted as passed), at most {allowed} allowed"
    );
}

/// Frames B's veth dropped on the way to A: the limited source's (the
/// flood's live frames are counted apart, as XDP transmit errors).
fn tx_dropped(bed: &xdpath_lab::testenv::TestBed) -> u64 {
    let output = bed
        .exec(
            xdpath_lab::testenv::Side::B,
            "ip",
            ["-j", "-s", "link", "show", "dev", &bed.b().interface],
        )
        .expect("ip link");
    let links = json(&String::from_utf8_lossy(&output.stdout));
    links[0]["stats64"]["tx"]["dropped"]
        .as_u64()
        .expect("tx dropped")
}

/// This namespace's per-source bucket table (`SRC_BUCKETS`), read from
/// user space (a lookup from user space does not touch the LRU order).
struct SourceBuckets(aya::maps::HashMap<aya::maps::MapData, [u8; 24], [u8; 24]>);

impl SourceBuckets {
    fn open(bed: &xdpath_lab::testenv::TestBed) -> Self {
        let dir = bed
            .run_in_a(xdpath::dataplane::shared_dir)
            .expect("enter A")
            .expect("the shared pin directory");
        let data = aya::maps::MapData::from_pin(dir.join(abi::map::SRC_BUCKETS))
            .expect(abi::map::SRC_BUCKETS);
        Self(
            aya::maps::HashMap::try_from(aya::maps::Map::LruHashMap(data))
                .expect("SRC_BUCKETS is a hash map"),
        )
    }

    /// Whether it holds the bucket of `source` (a /32) under limit `id`.
    fn holds(&self, source: std::net::Ipv4Addr, id: u32) -> bool {
        let mut key = [0u8; 24];
        key[10..12].copy_from_slice(&[0xff, 0xff]);
        key[12..16].copy_from_slice(&source.octets());
        key[16..20].copy_from_slice(&id.to_ne_bytes());
        self.0.get(&key, 0).is_ok()
    }
}

/// Datagrams waiting on `socket` from `source`.
fn received_from(socket: &UdpSocket, source: std::net::IpAddr) -> u64 {
    socket.set_nonblocking(true).expect("non-blocking");
    let mut buffer = [0u8; 64];
    let mut count = 0;
    while let Ok((_, from)) = socket.recv_from(&mut buffer) {
        count += u64::from(from.ip() == source);
    }
    count
}

// ---- item 14: established flows under a SYN flood at the VIP

/// Idle HTTP connections to the VIP held open by the client.
const IDLE_FLOWS: usize = 200;
/// The adaptive flood of the issue: two SYNs per random flow, 1.9M flows
/// in 8 s (here at most as many, for at most as long: the balancer's path
/// through the test bed, XDP_TX back over a bridge to backends that
/// decapsulate, takes about 100,000 frames a second on the 2-core test
/// machine).
const FLOOD_FLOWS: u64 = 1_900_000;
const FLOOD_TIME: Duration = Duration::from_secs(8);
/// Connection-table entries in the kernel (`MAX_CONNECTIONS`).
const CONNECTIONS: u64 = 131_072;

/// Opens `count` keep-alive connections to `vip:80`, asks each once and
/// prints `port backend`, then `ready`; after a line on stdin asks each
/// again on the same connection and prints `port backend` (or the error).
/// Run after [`PY_ASK_BACKEND`].
const HOLDER: &str = r#"
import socket, sys
vip, count = sys.argv[1], int(sys.argv[2])
held = []
for _ in range(count):
    s = socket.create_connection((vip, 80), timeout=5)
    held.append(s)
    print(s.getsockname()[1], ask(s), flush=True)
print("ready", flush=True)
sys.stdin.readline()
for s in held:
    try:
        backend = ask(s)
    except OSError as error:
        backend = "error:" + type(error).__name__
    print(s.getsockname()[1], backend, flush=True)
"#;

/// `port backend` lines of the holder until `ready` (or its end).
fn held_backends(lines: &mut impl Iterator<Item = String>) -> Vec<(u16, String)> {
    lines
        .take_while(|line| line != "ready")
        .filter_map(|line| {
            let (port, backend) = line.split_once(' ')?;
            Some((port.parse().ok()?, backend.to_string()))
        })
        .collect()
}

fn start_holder(bed: &LbBed) -> Child {
    bed.command(Role::Client, "/usr/bin/python3")
        .args([
            "-c",
            &format!("{PY_ASK_BACKEND}{HOLDER}"),
            &VIP4.to_string(),
            &IDLE_FLOWS.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3")
}

#[test]
fn established_flows_keep_their_backend_through_an_adaptive_syn_flood() {
    xdpath_lab::needs_root!();
    let _turn = one_flood_at_a_time();
    let mut bed = LbBed::new().expect("bed");
    for role in Role::BACKENDS {
        xdpath_ok_in(&bed, role, &["decap", INTERFACE]);
        // The backends drop the spoofed SYNs at the reverse-path check
        // (they have no route back), so the machine's CPUs go to the
        // balancer, which still places every flood flow.
        bed.exec_ok(
            role,
            "sysctl",
            ["-q", "-w", "net.ipv4.conf.eth0.rp_filter=1"],
        )
        .expect("rp_filter");
    }
    bed.start_backends().expect("nginx");
    let vip = format!("{VIP4}:80/tcp");
    xdpath_ok_in(&bed, Role::Lb1, &["attach", INTERFACE]);
    xdpath_ok_in(
        &bed,
        Role::Lb1,
        &["lb", "config", "--source-v4", "172.16.0.0/16"],
    );
    xdpath_ok_in(&bed, Role::Lb1, &["lb", "vip", "add", &vip]);
    for role in Role::BACKENDS {
        let address = bed.host(role).ipv4.to_string();
        xdpath_ok_in(&bed, Role::Lb1, &["lb", "backend", "add", &vip, &address]);
    }

    let mut holder = start_holder(&bed);
    let mut lines = BufReader::new(holder.stdout.take().expect("stdout"))
        .lines()
        .map_while(Result::ok);
    let before = held_backends(&mut lines);
    assert_eq!(
        before.len(),
        IDLE_FLOWS,
        "every idle flow answered: {before:?}"
    );
    let drained = busiest(&before);
    let drained_address = bed.host(drained).ipv4.to_string();
    xdpath_ok_in(
        &bed,
        Role::Lb1,
        &["lb", "backend", "set-weight", &vip, &drained_address, "0"],
    );

    let client = bed.host(Role::Client);
    let template = FrameSpec::new(
        Network::V4(client.ipv4.octets(), VIP4.octets()),
        Transport::tcp(40000, 80, FLAG_SYN),
    )
    .with_macs(client.mac, bed.host(Role::Lb1).mac)
    .build();
    // Sent from the switch's port towards the balancer, straight into the
    // balancer's XDP program (the bed attaches xdpath to that port, so a
    // veth there takes XDP_TX'd frames): the client's own way in, without
    // the bridge's work per frame.
    let report = Running::start(
        bed.switch_path(),
        Flood {
            interface: LbBed::switch_port(Role::Lb1),
            template,
            frames_per_flow: 2,
            random_ports: true,
            max_frames: 2 * FLOOD_FLOWS,
            max_duration: FLOOD_TIME,
            seed: 14,
        },
    )
    .stop_when_done();
    let stats = json(&xdpath_ok_in(&bed, Role::Lb1, &["--json", "lb", "stats"]));
    let misses = stats["connection_table"]["misses"].as_u64().unwrap_or(0);

    holder
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("tell the holder");
    let after: Vec<(u16, String)> = lines
        .filter_map(|line| {
            let (port, backend) = line.split_once(' ')?;
            Some((port.parse().ok()?, backend.to_string()))
        })
        .collect();
    let _ = holder.wait();
    let moved: Vec<_> = before
        .iter()
        .zip(&after)
        .filter(|(first, second)| first != second)
        .collect();
    eprintln!(
        "flood: {} frames, {} random flows in {:.1} s ({:.0} frames/s); the balancer missed \
         its tables {misses} times; {} of {IDLE_FLOWS} idle flows moved ({} drained)",
        report.frames,
        report.flows,
        report.elapsed.as_secs_f64(),
        report.frames_per_second(),
        moved.len(),
        drained.name()
    );
    assert!(
        misses >= 2 * CONNECTIONS,
        "the flood must churn the connection table: {misses} new flows placed"
    );
    assert_eq!(
        after.len(),
        IDLE_FLOWS,
        "every idle flow asked again: {after:?}"
    );
    assert!(moved.is_empty(), "idle flows moved: {moved:?}");
}

/// The backend holding the most flows.
fn busiest(flows: &[(u16, String)]) -> Role {
    Role::BACKENDS
        .into_iter()
        .max_by_key(|role| flows.iter().filter(|(_, name)| name == role.name()).count())
        .unwrap_or(Role::B1)
}

impl Running {
    /// Waits for the flood to reach its own bounds.
    fn stop_when_done(self) -> FloodReport {
        self.thread
            .join()
            .expect("the flood thread")
            .expect("the flood")
    }
}
