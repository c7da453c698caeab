//! `xdpath run --userspace IF --threads` on a veth pair with two queues:
//! both threads serve, their counters add up in `xdpath stats` and the
//! report, a per-source rate limit is one table over both, a rule added
//! while running reaches both, a state that does not parse is refused
//! (once in the report).
//!
//! veth hands a frame to the peer's RX queue of the sender's TX queue;
//! B's packet socket picks the TX queue by the frame's flow hash, so
//! frames of many source ports land on both of A's queues (each test
//! checks that both threads got frames).

use super::*;

/// Two RX and TX queues on both ends of the bed's veth pair.
pub(crate) fn two_queues(bed: &TestBed) {
    for side in [Side::A, Side::B] {
        let interface = bed.side(side).interface.clone();
        bed.exec_ok(side, "ethtool", ["-L", &interface, "rx", "2", "tx", "2"])
            .expect("two queues on the veth end");
    }
}

/// UDP frames from `source` in B to A's `port`, one per source port from
/// 40 000 on (so many flows, spread over the queues).
fn udp_frames(bed: &TestBed, source: [u8; 4], port: u16, count: u16) -> Vec<Vec<u8>> {
    let (a, b) = (bed.a(), bed.b());
    (0..count)
        .map(|n| {
            FrameSpec::new(
                Network::V4(source, a.ipv4.octets()),
                Transport::udp(40_000 + n, port),
            )
            .with_payload(b"threads")
            .with_macs(b.mac, a.mac)
            .build()
        })
        .collect()
}

/// Sends `frames` from B.
fn send_from_b(bed: &TestBed, frames: Vec<Vec<u8>>) {
    let b_interface = bed.b().interface.clone();
    bed.run_in_b(move || traffic::send(&b_interface, &frames))
        .expect("run in B")
        .expect("send from B");
}

/// `counters`, once the runtime has written its first snapshot (a second
/// after its start); empty before.
fn counters_soon(bed: &TestBed) -> BTreeMap<(String, String), (u64, u64)> {
    let interface = bed.a().interface.clone();
    if xdpath_in(bed, Side::A, &["stats", &interface])
        .status
        .success()
    {
        counters(bed)
    } else {
        BTreeMap::new()
    }
}

/// Packets of (action, reason) in `counters`.
fn packets(counters: &BTreeMap<(String, String), (u64, u64)>, action: &str, reason: &str) -> u64 {
    counters
        .get(&(action.to_string(), reason.to_string()))
        .map_or(0, |counter| counter.0)
}

/// The report's threads: (queue, frames) each; asserts there are two and
/// both served frames.
pub(crate) fn both_threads_served(report: &serde_json::Value) -> Vec<(u64, u64)> {
    let threads: Vec<(u64, u64)> = report["threads"]
        .as_array()
        .unwrap_or_else(|| panic!("no threads in the report: {report}"))
        .iter()
        .map(|thread| {
            (
                thread["queue"].as_u64().unwrap_or(u64::MAX),
                thread["frames"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(threads.len(), 2, "a thread per queue: {report}");
    assert_eq!(
        threads.iter().map(|thread| thread.0).collect::<Vec<_>>(),
        [0, 1]
    );
    assert!(
        threads.iter().all(|thread| thread.1 > 0),
        "both threads served frames: {report}"
    );
    let frames: u64 = threads.iter().map(|thread| thread.1).sum();
    assert_eq!(
        report["tallies"]["received"].as_u64(),
        Some(frames),
        "the tallies are the threads' sum: {report}"
    );
    threads
}

#[test]
fn threads_serve_both_queues_and_their_counters_add_up() {
    xdpath_lab::needs_root!();
    let bed = bed();
    two_queues(&bed);
    drop_udp_9999(&bed, Side::A);
    let blocked = format!(
        "{}.{}.{}.{}/32",
        BLOCKED[0], BLOCKED[1], BLOCKED[2], BLOCKED[3]
    );
    xdpath(&bed, Side::A, &["block", "add", &blocked]);
    let b4 = bed.b().ipv4.octets();
    let runtime = Runtime::start(&bed, &["--threads"]);
    let mut frames = udp_frames(&bed, b4, 7777, 64);
    frames.extend(udp_frames(&bed, b4, 9999, 48));
    frames.extend(udp_frames(&bed, BLOCKED, 7777, 16));
    send_from_b(&bed, frames);
    // `xdpath stats` while it runs: the sum over the threads, written
    // once a second by thread 0.
    let live = within(Duration::from_secs(5), || {
        let now = counters_soon(&bed);
        packets(&now, "pass", "ipv4-udp") == 64
            && packets(&now, "drop", "rule-deny") == 48
            && packets(&now, "drop", "blocklisted") == 16
    });
    assert!(
        live,
        "the live snapshot sums the threads: {:?}",
        counters_soon(&bed)
    );
    let report = runtime.stop();
    both_threads_served(&report);
    let after = counters(&bed);
    assert_eq!(packets(&after, "pass", "ipv4-udp"), 64, "{after:?}");
    assert_eq!(packets(&after, "drop", "rule-deny"), 48, "{after:?}");
    assert_eq!(packets(&after, "drop", "blocklisted"), 16, "{after:?}");
    let total: u64 = after.values().map(|counter| counter.0).sum();
    assert_eq!(
        report["tallies"]["received"].as_u64(),
        Some(total),
        "every frame counted once: {report}"
    );
    // Both threads wrote passed frames into the one TAP device (ours, and
    // whatever IPv6 control frames B's stack sent meanwhile).
    let passed: u64 = after
        .iter()
        .filter(|((action, _), _)| action == "pass")
        .map(|(_, counter)| counter.0)
        .sum();
    assert_eq!(
        report["tallies"]["to_stack"].as_u64(),
        Some(passed),
        "{report}"
    );
    let rows = report["counters"].as_array().expect("counter rows");
    let rule_row = rows
        .iter()
        .find(|row| row["reason"] == "rule-deny")
        .map(|row| row["packets"].clone());
    assert_eq!(rule_row, Some(serde_json::json!(48)), "{report}");
}

#[test]
fn a_rule_added_while_running_reaches_every_thread() {
    xdpath_lab::needs_root!();
    let bed = bed();
    two_queues(&bed);
    let runtime = Runtime::start(&bed, &["--threads", "--exception", "drop"]);
    let id = drop_udp_9999(&bed, Side::A);
    // Each thread looks at the state files once a second.
    std::thread::sleep(Duration::from_millis(2500));
    send_from_b(&bed, udp_frames(&bed, bed.b().ipv4.octets(), 9999, 64));
    let dropped = within(Duration::from_secs(5), || {
        packets(&counters_soon(&bed), "drop", "rule-deny") == 64
    });
    assert!(
        dropped,
        "every thread drops by the new rule: {:?}",
        counters(&bed)
    );
    xdpath(&bed, Side::A, &["filter", "del", id.trim()]);
    std::thread::sleep(Duration::from_millis(2500));
    send_from_b(&bed, udp_frames(&bed, bed.b().ipv4.octets(), 9999, 64));
    let counted = within(Duration::from_secs(5), || {
        packets(&counters_soon(&bed), "pass", "ipv4-udp") == 64
    });
    assert!(counted, "{:?}", counters_soon(&bed));
    let after = counters(&bed);
    // A state file that does not parse: every thread refuses it (and keeps
    // the last good state), counted once. (`xdpath stats` refuses it too,
    // so the counters were read first.)
    let filter_file = bed.a().state_dir().join(xdpath::control::state::STATE_FILE);
    std::fs::write(&filter_file, "{ not json").expect("corrupt the filter state");
    std::thread::sleep(Duration::from_millis(2500));
    let report = runtime.stop();
    assert_eq!(report["tallies"]["refused_reloads"], 1, "{report}");
    // Only this test's frames came, so both threads got some of the
    // rule's frames and some of the last ones.
    both_threads_served(&report);
    assert_eq!(packets(&after, "drop", "rule-deny"), 64, "{after:?}");
    assert_eq!(packets(&after, "pass", "ipv4-udp"), 64, "{after:?}");
    assert_eq!(report["tallies"]["reloads"], 2, "counted once: {report}");
}

#[test]
fn a_rate_limit_is_one_table_over_the_threads() {
    xdpath_lab::needs_root!();
    one_limit_over_the_threads(&["--per", "src"]);
}

/// The same with a limit of one address (the address table): one entry
/// for both threads, its drops listed on the limit while the runtime
/// runs.
#[test]
fn an_address_limit_is_one_entry_over_the_threads() {
    xdpath_lab::needs_root!();
    one_limit_over_the_threads(&["--per", "dst", "--scope", "ADDRESS_OF_A"]);
}

/// 400 frames of one source to A over both queues of a runtime with
/// `--threads`, under a limit of `kind` (`ADDRESS_OF_A` stands for A's
/// address as a /32): the limit holds them once, not once per thread.
fn one_limit_over_the_threads(kind: &[&str]) {
    let bed = bed();
    two_queues(&bed);
    // A slow rate beside the burst: the frames take milliseconds, so the
    // source's share is the burst and a little; one burst per thread
    // would be twice the burst, and the rate would have to run for
    // BURST / RATE = 4 s for one table to pass as many.
    const RATE: u64 = 5;
    const BURST: u64 = 20;
    let scope = format!("{}/32", bed.a().ipv4);
    let (rate, burst) = (RATE.to_string(), BURST.to_string());
    let mut args = vec!["ratelimit", "add", "--pps", &rate, "--burst", &burst];
    args.extend(kind.iter().map(|word| {
        if *word == "ADDRESS_OF_A" {
            scope.as_str()
        } else {
            word
        }
    }));
    let id = xdpath(&bed, Side::A, &args).trim().to_string();
    let runtime = Runtime::start(&bed, &["--threads", "--exception", "drop"]);
    let frames = udp_frames(&bed, bed.b().ipv4.octets(), 7777, 400);
    let started = Instant::now();
    send_from_b(&bed, frames);
    let sent_in = started.elapsed().as_secs_f64();
    // The last frames may still be in the sockets' rings; the runtime
    // charges them when it takes them.
    let settled = within(Duration::from_secs(5), || {
        let now = counters_soon(&bed);
        packets(&now, "pass", "ipv4-udp") + packets(&now, "drop", "rate-limited") == 400
    });
    let elapsed = started.elapsed().as_secs_f64();
    assert!(settled, "every frame counted: {:?}", counters_soon(&bed));
    // The limit's drops as listed while the runtime runs (its snapshot).
    let listed_drops = within(Duration::from_secs(3), || {
        let limits: serde_json::Value =
            serde_json::from_str(&xdpath(&bed, Side::A, &["--json", "ratelimit", "list"]))
                .expect("JSON");
        let drops = limits[0]["drops"].as_u64().unwrap_or(0);
        drops == packets(&counters_soon(&bed), "drop", "rate-limited")
    });
    let report = runtime.stop();
    both_threads_served(&report);
    let after = counters(&bed);
    let passed = packets(&after, "pass", "ipv4-udp");
    // One table: the burst once, plus the rate over the time until every
    // frame was counted (generous: they were sent in `sent_in`).
    let bound = BURST + (RATE as f64 * elapsed).ceil() as u64;
    assert!(
        passed >= BURST && passed <= bound,
        "{passed} frames passed, the limit allows {bound} \
         (burst {BURST}, sent in {sent_in:.3} s, counted by {elapsed:.2} s)"
    );
    assert!(passed < 2 * BURST, "{passed}: the burst was given twice");
    assert_eq!(packets(&after, "drop", "rate-limited"), 400 - passed);
    assert!(
        listed_drops,
        "limit {id}: its listed drops are the runtime's rate-limited frames"
    );
}
