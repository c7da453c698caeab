//! `xdpath reload` end to end (needs root): the program on a busy interface
//! is replaced ten times while a client in namespace B makes HTTP requests
//! to nginx in namespace A, each on a new TCP connection, and B pings A
//! from a blocklisted address. Not one request may fail; the program id
//! changes at every reload; no counter ever goes back; the rule's hits and
//! the blocklist's drops keep growing across every reload; the interface's
//! config and mode stay; and afterwards the filter still obeys its control
//! plane (the blocklist entry removed, the pings pass). A second test
//! counts a known traffic mix exactly across reloads in generic mode.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{
    assert_counters_settle, bed, counted, counters_of, fetch, json, nginx, xdpath_ok, XDPATH,
};
use serde_json::Value;
use xdpath_core::{Action, Counter, MalformedPolicy};
use xdpath_lab::testenv::{Side, TestBed};
use xdpath_lab::traffic::{Expected, Mix};

const RELOADS: usize = 10;
/// The client goes on until the reloads are done and it has made at least
/// this many requests.
const MIN_REQUESTS: u64 = 300;
/// A prefix no traffic of the bed comes from: a drop rule that must stay
/// installed (and harmless) across the reloads.
const UNRELATED: &str = "203.0.113.0/24";

/// An HTTP client for namespace B: one request per new connection
/// (`Connection: close`), 2 s timeout each, until the stop file exists and
/// at least `min` requests were made; prints a JSON summary.
const CLIENT: &str = r#"
import http.client, json, os, sys, time
host, stop, least = sys.argv[1], sys.argv[2], int(sys.argv[3])
ok = failed = 0
worst = 0.0
errors = []
while not os.path.exists(stop) or ok + failed < least:
    started = time.monotonic()
    try:
        connection = http.client.HTTPConnection(host, 80, timeout=2)
        connection.request("GET", "/", headers={"Connection": "close"})
        response = connection.getresponse()
        body = response.read()
        connection.close()
        if response.status == 200 and body == b"ok\n":
            ok += 1
        else:
            failed += 1
            errors.append("status %d" % response.status)
    except Exception as error:
        failed += 1
        errors.append(repr(error))
    worst = max(worst, time.monotonic() - started)
print(json.dumps({"ok": ok, "failed": failed, "worst_ms": worst * 1000, "errors": errors[:5]}))
"#;

/// Kills a child when dropped, so a failed assertion leaves nothing running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Packets per `(action, reason)` of `xdpath --json stats`.
fn counter_map(stats: &Value) -> BTreeMap<String, u64> {
    let mut map = BTreeMap::new();
    for interface in stats.as_array().into_iter().flatten() {
        for row in interface["counters"].as_array().into_iter().flatten() {
            let key = format!(
                "{}/{}",
                row["action"].as_str().unwrap_or("?"),
                row["reason"].as_str().unwrap_or("?")
            );
            *map.entry(key).or_default() += row["packets"].as_u64().unwrap_or(0);
        }
    }
    map
}

/// Hits of rule `id` in `xdpath --json stats`.
fn rule_hits(stats: &Value, id: u64) -> u64 {
    stats[0]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|rule| rule["id"].as_u64() == Some(id))
        .and_then(|rule| rule["hits"].as_u64())
        .unwrap_or(0)
}

fn stats(bed: &TestBed) -> Value {
    json(&xdpath_ok(bed, &["--json", "stats"]))
}

/// Every counter is at least what it was.
fn assert_not_backwards(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>, when: &str) {
    for (key, old) in before {
        let new = after.get(key).copied().unwrap_or(0);
        assert!(
            new >= *old,
            "{when}: counter {key} went back from {old} to {new}"
        );
    }
}

/// Stops a `ping` with SIGINT and returns (transmitted, received) from
/// its summary.
fn stop_ping(mut ping: Running) -> (u64, u64) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(ping.0.id() as i32, libc::SIGINT) };
    let mut output = String::new();
    if let Some(mut stdout) = ping.0.stdout.take() {
        use std::io::Read;
        let _ = stdout.read_to_string(&mut output);
    }
    let _ = ping.0.wait();
    // "2199 packets transmitted, 0 received, 100% packet loss, time 23828ms"
    let numbers: Vec<u64> = output
        .lines()
        .find(|line| line.contains("packets transmitted"))
        .map(|line| {
            line.split(',')
                .filter_map(|part| part.split_whitespace().next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    match numbers[..] {
        [transmitted, received, ..] => (transmitted, received),
        _ => panic!("no summary from ping: {output}"),
    }
}

/// Pings A's IPv6 address from B three times; true if any answer came.
fn ping6_answered(bed: &TestBed) -> bool {
    let target = bed.a().ipv6.to_string();
    bed.exec(
        Side::B,
        "ping",
        ["-6", "-c", "3", "-i", "0.2", "-W", "1", &target],
    )
    .map(|output| output.status.success())
    .unwrap_or(false)
}

#[test]
fn reload_ten_times_under_traffic_loses_no_request_and_keeps_state() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let _nginx = nginx(&bed, 128);
    let interface = bed.a().interface.clone();
    let client_v4 = format!("{}/32", bed.b().ipv4);
    let blocked_v6 = format!("{}/128", bed.b().ipv6);

    xdpath_ok(
        &bed,
        &[
            "attach",
            &interface,
            "--mode",
            "native",
            "--malformed",
            "drop",
        ],
    );
    // A pass rule the HTTP traffic hits, and a drop rule nothing hits.
    let pass_rule = json(&xdpath_ok(
        &bed,
        &[
            "--json", "filter", "add", "--src", &client_v4, "--proto", "tcp", "--dport", "80",
            "--action", "pass",
        ],
    ));
    let pass_id = pass_rule["id"].as_u64().expect("rule id");
    xdpath_ok(
        &bed,
        &["filter", "add", "--src", UNRELATED, "--action", "drop"],
    );
    // B's IPv6 address is blocked: its pings are dropped at XDP.
    xdpath_ok(&bed, &["block", "add", &blocked_v6, "--ttl", "1h"]);
    assert!(!ping6_answered(&bed), "the blocklisted source is dropped");
    let status_before = json(&xdpath_ok(&bed, &["--json", "status"]));
    let rules_before = json(&xdpath_ok(&bed, &["--json", "filter", "list"]));

    // Traffic: pings from the blocked address, asked for every millisecond
    // (unanswered, ping sends about 100 a second here). Not one may be
    // answered: any moment without the filter would let some through.
    // And the HTTP client. Ping's deadline is far past the test's run
    // (`stop_ping` ends it): ten reloads took 148 s on a loaded VM, past a
    // 120 s deadline, and the last round then saw no blocked pings.
    let target_v6 = bed.a().ipv6.to_string();
    let pings = Running(
        bed.command(Side::B, "ping")
            .args(["-6", "-q", "-i", "0.001", "-w", "900", &target_v6])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ping in namespace B"),
    );
    let stop: PathBuf = std::env::temp_dir().join(format!(
        "xdpath-upgrade-stop-{}-{}",
        std::process::id(),
        bed.number()
    ));
    let _ = std::fs::remove_file(&stop);
    let client = bed
        .command(Side::B, "python3")
        .args(["-c", CLIENT, &bed.a().ipv4.to_string()])
        .arg(&stop)
        .arg(MIN_REQUESTS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 in namespace B");
    let mut client = Running(client);
    std::thread::sleep(Duration::from_millis(500));

    let mut previous = stats(&bed);
    let mut program_id = status_before[0]["program_id"].as_u64().expect("program id");
    let mut ids = vec![program_id];
    let mut slowest_reload = Duration::ZERO;
    for round in 1..=RELOADS {
        let started = Instant::now();
        let report = json(&xdpath_ok(&bed, &["--json", "reload", &interface]));
        slowest_reload = slowest_reload.max(started.elapsed());
        let old = report["old_program_id"].as_u64().expect("old id");
        let new = report["new_program_id"].as_u64().expect("new id");
        assert_eq!(
            old, program_id,
            "reload {round}: the old id is the running program's"
        );
        assert_ne!(new, old, "reload {round}: a new program runs");
        assert!(
            !ids.contains(&new),
            "reload {round}: program id {new} is new"
        );
        assert_eq!(report["mode"], "native", "reload {round}: the mode stays");
        program_id = new;
        ids.push(new);

        // Let traffic reach the new program, then compare.
        std::thread::sleep(Duration::from_millis(200));
        let now = stats(&bed);
        assert_not_backwards(
            &counter_map(&previous),
            &counter_map(&now),
            &format!("reload {round}"),
        );
        let (blocked_then, blocked_now) = (
            counted(&previous, "drop", "blocklisted"),
            counted(&now, "drop", "blocklisted"),
        );
        assert!(
            blocked_now > blocked_then,
            "reload {round}: blocklisted drops go on ({blocked_then} -> {blocked_now})"
        );
        let (hits_then, hits_now) = (rule_hits(&previous, pass_id), rule_hits(&now, pass_id));
        assert!(
            hits_now > hits_then,
            "reload {round}: the rule's hits go on ({hits_then} -> {hits_now})"
        );
        let status = json(&xdpath_ok(&bed, &["--json", "status"]));
        assert_eq!(
            status[0]["program_id"].as_u64(),
            Some(new),
            "reload {round}: status shows the new program"
        );
        previous = now;
    }

    std::fs::write(&stop, b"").expect("stop file");
    let mut output = String::new();
    if let Some(mut stdout) = client.0.stdout.take() {
        use std::io::Read;
        stdout.read_to_string(&mut output).expect("client output");
    }
    let exit = client.0.wait().expect("client");
    let _ = std::fs::remove_file(&stop);
    let (pings_sent, pings_answered) = stop_ping(pings);
    assert!(exit.success(), "the HTTP client failed: {output}");
    let summary = json(output.trim());
    let ok = summary["ok"].as_u64().expect("ok");
    let failed = summary["failed"].as_u64().expect("failed");
    eprintln!(
        "upgrade: {RELOADS} reloads (slowest {} ms), {ok} HTTP requests, {failed} failed, \
         slowest request {:.1} ms; {pings_sent} pings from the blocked source, \
         {pings_answered} answered; program ids {ids:?}",
        slowest_reload.as_millis(),
        summary["worst_ms"].as_f64().unwrap_or(0.0)
    );
    assert_eq!(failed, 0, "no request fails across the reloads: {summary}");
    assert!(pings_sent > 100, "{pings_sent} blocked pings were sent");
    assert_eq!(
        pings_answered, 0,
        "the blocklist held at every moment of the reloads"
    );
    assert!(ok >= MIN_REQUESTS, "the client made {ok} requests");
    let last = stats(&bed);
    assert_eq!(
        counted(&last, "drop", "blocklisted"),
        xdpath::stats::packets_in_json(&last, "drop", None),
        "nothing but the blocklisted pings was dropped"
    );

    // The interface's own state came through: mode, config, attach time.
    let status_after = json(&xdpath_ok(&bed, &["--json", "status"]));
    for field in ["mode", "malformed", "monitor", "attached_since", "healthy"] {
        assert_eq!(
            status_after[0][field], status_before[0][field],
            "{field} stays across reloads"
        );
    }
    assert_eq!(status_after[0]["malformed"], "drop");
    assert_eq!(
        json(&xdpath_ok(&bed, &["--json", "filter", "list"]))
            .as_array()
            .map(Vec::len),
        rules_before.as_array().map(Vec::len),
        "the rules are all there"
    );

    // The last program obeys the control plane: still dropping the blocked
    // source, passing it once unblocked, and the pass rule still counts.
    assert!(
        !ping6_answered(&bed),
        "the blocklisted source is still dropped"
    );
    xdpath_ok(&bed, &["block", "del", &blocked_v6]);
    assert!(ping6_answered(&bed), "unblocked, the source's pings pass");
    let hits = rule_hits(&stats(&bed), pass_id);
    assert!(
        fetch(&bed, Duration::from_secs(2)),
        "a fetch after the reloads"
    );
    assert!(
        rule_hits(&stats(&bed), pass_id) > hits,
        "the rule counts the new connection"
    );

    // A reload of an interface xdpath is not attached to changes nothing.
    let refused = bed
        .exec(Side::A, XDPATH, ["reload", "lo"])
        .expect("run xdpath");
    assert!(!refused.status.success(), "reload of lo is refused");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not attached to \"lo\""),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(
        json(&xdpath_ok(&bed, &["--json", "status"]))[0]["program_id"].as_u64(),
        Some(program_id)
    );
}

/// The counters as `xdpath --json stats IFACE` reports them, by slot.
fn exact_counters(bed: &TestBed) -> Vec<Counter> {
    let interface = bed.a().interface.as_str();
    let report = json(&xdpath_ok(bed, &["--json", "stats", interface]));
    counters_of(&report[0]["counters"])
}

/// Waits until the counters equal `expected`, then checks they stay so.
fn assert_exact(bed: &TestBed, expected: &Expected, when: &str) {
    assert_counters_settle(expected, || exact_counters(bed), when);
}

/// In generic mode, with `--malformed drop`: the mixed traffic set (every
/// frame class, malformed ones included) sent once before and once after
/// each of two reloads is counted exactly three times. Counters neither
/// reset nor double, and the new program applies the interface's pinned
/// config (it drops the malformed frames). Concurrent reloads take turns.
#[test]
fn generic_mode_reload_keeps_config_and_counts_exactly() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(
        &bed,
        &[
            "attach",
            &interface,
            "--mode",
            "generic",
            "--malformed",
            "drop",
        ],
    );
    let mix = Mix::for_bed(&bed);
    let once = mix.expected(MalformedPolicy::Drop);
    assert!(
        once.packets_with(Action::Drop) >= 10,
        "the mix has malformed frames"
    );
    let send = |bed: &TestBed| {
        let mix = mix.clone();
        let peer = bed.b().interface.clone();
        bed.run_in_b(move || mix.send(&peer))
            .expect("enter namespace B")
            .expect("send the mix");
    };
    let mut ids = Vec::new();
    for round in 1..=3u64 {
        if round > 1 {
            let report = json(&xdpath_ok(&bed, &["--json", "reload", &interface]));
            assert_eq!(report["mode"], "generic");
            ids.push(report["new_program_id"].as_u64().expect("new id"));
        }
        send(&bed);
        let mut expected = Expected::default();
        expected.add_all(&once, round);
        assert_exact(&bed, &expected, &format!("round {round}"));
    }
    ids.dedup();
    assert_eq!(ids.len(), 2, "two new programs: {ids:?}");
    let status = json(&xdpath_ok(&bed, &["--json", "status"]));
    assert_eq!(status[0]["mode"], "generic");
    assert_eq!(status[0]["malformed"], "drop");
    assert_eq!(status[0]["program_id"].as_u64(), ids.last().copied());

    // Three reloads at once: they take turns (a lock on the pin directory),
    // so each replaces the one before it: the old ids and new ids chain.
    let start = ids.last().copied().expect("an id");
    let reports: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| json(&xdpath_ok(&bed, &["--json", "reload", &interface]))))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("reload thread"))
            .collect()
    });
    let mut current = start;
    for _ in 0..reports.len() {
        let next = reports
            .iter()
            .find(|report| report["old_program_id"].as_u64() == Some(current))
            .unwrap_or_else(|| panic!("no reload replaced {current}: {reports:?}"));
        current = next["new_program_id"].as_u64().expect("new id");
    }
    let status = json(&xdpath_ok(&bed, &["--json", "status"]));
    assert_eq!(status[0]["program_id"].as_u64(), Some(current));
    send(&bed);
    let mut expected = Expected::default();
    expected.add_all(&once, 4);
    assert_exact(&bed, &expected, "after concurrent reloads");
    xdpath_ok(&bed, &["detach", &interface]);
    assert!(
        !bed.a().interface_pin_dir().exists(),
        "detach after reloads removes every pin"
    );
}
