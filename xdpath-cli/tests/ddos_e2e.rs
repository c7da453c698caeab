//! DDoS filtering end to end (needs root): hping3 floods from namespace B
//! while a client in B fetches pages from nginx in namespace A, where
//! xdpath runs in native mode. With xdpath's defences the client is
//! unharmed and the counters show the flood dropped at XDP; with xdpath
//! detached, the same flood makes the client's fetches fail.
//!
//! The protected host runs nginx set up by `servers::fragile_nginx`
//! (`tcp_syncookies=0`, a small SYN backlog), so that a SYN flood from a
//! spoofed source (whose SYN-ACKs go nowhere) visibly fills the SYN queue
//! when nothing stops it.

mod common;

use std::time::{Duration, Instant};

use common::{bed, counted, fetch, fetch_many, hping3, json, nginx, servers, xdpath_ok, Nginx};
use xdpath_lab::testenv::TestBed;

/// The spoofed source of the SYN flood, and its prefix.
const SPOOFED: &str = "198.18.0.7";
const SPOOFED_PREFIX: &str = "198.18.0.0/15";
const FLOOD_SECONDS: u32 = 6;
const FETCH_TIMEOUT: Duration = Duration::from_secs(1);

fn fragile_listener(bed: &TestBed) -> Nginx {
    servers::fragile_nginx(bed, SPOOFED_PREFIX).expect("nginx in namespace A")
}

/// Fetches while a SYN flood and a UDP reflection flood run, only inside
/// the flood's window; returns (succeeded, tried).
fn fetch_under_flood(bed: &TestBed) -> (usize, usize) {
    let target = bed.a().ipv4.to_string();
    let started = Instant::now();
    let mut syn = hping3(
        bed,
        FLOOD_SECONDS,
        &["-S", "-p", "80", "--flood", "-a", SPOOFED, &target],
    );
    let mut udp = hping3(
        bed,
        FLOOD_SECONDS,
        &[
            "--udp",
            "-s",
            "53",
            "-k",
            "-p",
            "7777",
            "--flood",
            "--rand-source",
            &target,
        ],
    );
    // Let the flood fill the SYN queue before the client starts, and stop
    // a fetch timeout before the flood ends.
    std::thread::sleep(Duration::from_millis(500));
    let window = Duration::from_secs(u64::from(FLOOD_SECONDS)) - FETCH_TIMEOUT;
    let (mut succeeded, mut tried) = (0, 0);
    while started.elapsed() < window {
        tried += 1;
        if fetch(bed, FETCH_TIMEOUT) {
            succeeded += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = syn.wait();
    let _ = udp.wait();
    (succeeded, tried)
}

#[test]
fn flood_is_dropped_at_xdp_and_the_client_is_unharmed_then_hurts_without_xdpath() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let _nginx = fragile_listener(&bed);
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface, "--mode", "native"]);
    xdpath_ok(&bed, &["block", "add", SPOOFED_PREFIX, "--ttl", "10m"]);
    xdpath_ok(&bed, &["guard", "amplification", "on"]);

    let (protected, tried) = fetch_under_flood(&bed);
    let stats = json(&xdpath_ok(&bed, &["--json", "stats"]));
    let blocked = counted(&stats, "drop", "blocklisted");
    let amplification = counted(&stats, "drop", "amplification");
    assert!(
        tried >= 5,
        "the client kept fetching during the flood ({tried} fetches)"
    );
    assert_eq!(
        protected, tried,
        "every fetch succeeds under the flood with xdpath"
    );
    assert!(
        blocked > 1000,
        "the SYN flood is dropped at XDP: {blocked} blocklisted drops"
    );
    assert!(
        amplification > 1000,
        "the reflection flood is dropped at XDP: {amplification} drops"
    );
    assert!(
        counted(&stats, "pass", "ipv4-tcp") > 0,
        "the client's traffic passes"
    );

    // The same flood with xdpath detached: the SYN queue fills and the
    // client's connections time out.
    xdpath_ok(&bed, &["detach", &interface]);
    let (unprotected, tried) = fetch_under_flood(&bed);
    assert!(
        unprotected * 2 < tried,
        "without xdpath the flood should hurt the client: {unprotected}/{tried} fetches succeeded"
    );
}

#[test]
fn per_source_syn_limit_and_udp_limit_drop_floods_from_one_source() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let _nginx = nginx(&bed, 511);
    let interface = bed.a().interface.clone();
    let target = bed.a().ipv4.to_string();
    xdpath_ok(&bed, &["attach", &interface, "--mode", "native"]);
    xdpath_ok(
        &bed,
        &[
            "ratelimit",
            "add",
            "--syn",
            "--pps",
            "20",
            "--burst",
            "20",
            "--per",
            "src",
        ],
    );
    xdpath_ok(
        &bed,
        &[
            "ratelimit",
            "add",
            "--proto",
            "udp",
            "--pps",
            "1000",
            "--burst",
            "1000",
            "--per",
            "src",
        ],
    );

    let mut syn = hping3(
        &bed,
        3,
        &["-S", "-p", "80", "--flood", "-a", "203.0.113.9", &target],
    );
    let mut udp = hping3(&bed, 3, &["--udp", "-p", "9", "--flood", &target]);
    let succeeded = fetch_many(&bed, 5, FETCH_TIMEOUT);
    let _ = syn.wait();
    let _ = udp.wait();

    let stats = json(&xdpath_ok(&bed, &["--json", "stats"]));
    let syn_dropped = counted(&stats, "drop", "syn-rate-limited");
    let udp_dropped = counted(&stats, "drop", "rate-limited");
    let udp_passed = counted(&stats, "pass", "ipv4-udp");
    assert_eq!(
        succeeded, 5,
        "the client (its own source, few SYNs) is not limited"
    );
    assert!(
        syn_dropped > 1000,
        "SYN flood from one source limited: {syn_dropped} drops"
    );
    assert!(
        udp_dropped > 1000,
        "UDP flood from one source limited: {udp_dropped} drops"
    );
    // 3 s at 1,000/s plus the burst, with slack for timing.
    assert!(
        udp_passed <= 3 * 1000 + 1000 + 500,
        "at most the limit passes: {udp_passed}"
    );

    let limits = json(&xdpath_ok(&bed, &["--json", "ratelimit", "list"]));
    let drops: u64 = limits
        .as_array()
        .expect("a list of limits")
        .iter()
        .filter_map(|limit| limit["drops"].as_u64())
        .sum();
    assert_eq!(
        drops,
        syn_dropped + udp_dropped,
        "per-limit drops add up to the per-reason drops"
    );
}

/// Monitor mode on an interface: what the filter would drop is counted
/// (as a pass, with the drop's reason) and delivered: the blocked client's
/// pings are answered.
#[test]
fn interface_monitor_mode_counts_without_dropping() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    let client = format!("{}/32", bed.b().ipv4);
    xdpath_ok(
        &bed,
        &["attach", &interface, "--mode", "native", "--monitor"],
    );
    xdpath_ok(&bed, &["block", "add", &client, "--ttl", "10m"]);
    let status = json(&xdpath_ok(&bed, &["--json", "status"]));
    assert_eq!(
        status[0]["monitor"], true,
        "status shows monitor mode: {status}"
    );

    let target = bed.a().ipv4.to_string();
    let ping = bed
        .exec(
            xdpath_lab::testenv::Side::B,
            "ping",
            ["-c", "3", "-i", "0.2", "-W", "2", &target],
        )
        .expect("ping");
    assert!(ping.status.success(), "pings are answered in monitor mode");
    let stats = json(&xdpath_ok(&bed, &["--json", "stats"]));
    assert!(
        counted(&stats, "pass", "blocklisted") >= 3,
        "would-be drops are counted: {stats}"
    );
    assert_eq!(
        counted(&stats, "drop", "blocklisted"),
        0,
        "nothing is dropped"
    );

    // Out of monitor mode the same entry drops.
    xdpath_ok(&bed, &["detach", &interface]);
    xdpath_ok(&bed, &["attach", &interface, "--mode", "native"]);
    let ping = bed
        .exec(
            xdpath_lab::testenv::Side::B,
            "ping",
            ["-c", "2", "-i", "0.2", "-W", "1", &target],
        )
        .expect("ping");
    assert!(!ping.status.success(), "the blocked client gets no replies");
    let stats = json(&xdpath_ok(&bed, &["--json", "stats"]));
    assert!(
        counted(&stats, "drop", "blocklisted") >= 2,
        "now dropped: {stats}"
    );
}
