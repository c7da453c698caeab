//! Values the CLI used to take wrongly (issue 14, items 8, 11 and 12):
//! durations and counts out of range (`top --interval 18446744073709551616`
//! exited 101 with a backtrace), a non-root `status` that called a healthy
//! interface gone, host bits silently masked, `/08`, broadcast VIPs,
//! loopback backends, a SYN-cookie guard with no ports, and `sample` on a
//! deleted interface. Each is refused with one line, exit status 1, and
//! changes nothing.
//!
//! Every command runs in namespace A of its own test bed (needs root).

mod common;

use common::cli::{binary, crashed, one_error, run_command, run_in, QUICK};
use common::{bed, xdpath_ok};
use serde_json::Value;
use xdpath_lab::testenv::{Side, TestBed};

fn json(bed: &TestBed, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&xdpath_ok(bed, &args)).expect("JSON output")
}

/// Everything a refused command must leave alone.
fn snapshot(bed: &TestBed) -> Vec<Value> {
    [
        &["filter", "list"][..],
        &["ratelimit", "list"],
        &["block", "list"],
        &["mgmt", "list"],
        &["guard", "show"],
        &["lb", "config"],
        &["lb", "vip", "list"],
        &["lb", "backend", "list"],
        &["status"],
    ]
    .iter()
    .map(|args| json(bed, args))
    .collect()
}

/// Each case fails with one line holding its needles and changes nothing.
fn refused(bed: &TestBed, cases: &[(Vec<&str>, Vec<&str>)]) {
    for (args, needles) in cases {
        let before = snapshot(bed);
        let run = run_in(bed, Side::A, args, QUICK);
        assert!(!crashed(&run), "{args:?} crashed: {}", run.stderr);
        one_error(&run, 1, needles);
        assert_eq!(snapshot(bed), before, "{args:?} changed the state");
    }
}

#[test]
fn durations_and_counts_out_of_range_are_refused() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface]);
    let capture = std::env::temp_dir().join(format!("xdpath-never-{}.pcapng", std::process::id()));
    let capture = capture.to_str().expect("UTF-8");
    // `--option=VALUE`: a value starting with `-` is taken as a value.
    let interval: Vec<String> = ["18446744073709551616", "-1", "NaN", "inf", "0", "1e-9"]
        .iter()
        .map(|value| format!("--interval={value}"))
        .collect();
    let duration: Vec<String> = ["1e300", "-1", "NaN", "inf", "0"]
        .iter()
        .map(|value| format!("--duration={value}"))
        .collect();
    let mut cases: Vec<(Vec<&str>, Vec<&str>)> = Vec::new();
    for interval in &interval {
        cases.push((
            vec!["top", "-n", "1", interval],
            vec!["--interval must be from 0.01 to 3600 seconds"],
        ));
    }
    for duration in &duration {
        cases.push((
            vec!["capture", duration, "-w", capture],
            vec!["--duration must be from 0.001 to 315360000 seconds"],
        ));
        cases.push((
            vec!["run", "--userspace", &interface, duration],
            vec![
                "--duration",
                "must be a positive number of seconds, at most 315360000",
            ],
        ));
        cases.push((
            vec![
                "export",
                "sflow",
                &interface,
                "--collector",
                "127.0.0.1:6343",
                "--rate",
                "1",
                duration,
            ],
            vec!["--duration must be a positive number of seconds"],
        ));
    }
    for (collector, why) in [
        ("127.0.0.1:0", "port 0"),
        ("0.0.0.0:6343", "unspecified address"),
        ("255.255.255.255:6343", "broadcast address"),
    ] {
        cases.push((
            vec![
                "export",
                "ipfix",
                &interface,
                "--collector",
                collector,
                "--rate",
                "1",
            ],
            vec!["collector", why],
        ));
    }
    cases.extend([
        (
            vec![
                "block",
                "add",
                "192.0.2.0/24",
                "--ttl",
                "99999999999999999d",
            ],
            vec!["invalid duration \"99999999999999999d\"", "at most 3650d"],
        ),
        (
            vec!["block", "add", "192.0.2.0/24", "--ttl", "3651d"],
            vec!["at most 3650d"],
        ),
        (
            vec!["bench", "--trials", "1000000"],
            vec!["--trials 1000000 is out of range (1-1000)"],
        ),
        (
            vec!["bench", "--native-packets", "18446744073709551615"],
            vec!["--native-packets"],
        ),
        (
            vec!["bench", "--flood", "0"],
            vec!["--flood 0 is out of range (1-3600)"],
        ),
    ]);
    refused(&bed, &cases);
    assert!(
        !std::path::Path::new(capture).exists(),
        "no capture file was made"
    );
    // In range, `top` still runs.
    xdpath_ok(&bed, &["top", "-n", "1", "--interval", "0.05"]);
}

#[test]
fn a_user_without_rights_is_told_status_needs_root() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface]);
    let as_nobody = |args: &[&str]| {
        let mut command = bed.command(Side::A, "setpriv");
        command
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(binary())
            .args(args);
        run_command(command, QUICK)
    };
    for args in [&["status"][..], &["status", "--json"]] {
        let run = as_nobody(args);
        let line = one_error(&run, 1, &["needs root: "]);
        assert!(!line.contains("gone"), "{line}");
    }
    // Root still sees it healthy.
    let status = json(&bed, &["status"]);
    assert_eq!(status[0]["healthy"], true, "{status}");
    assert!(xdpath_ok(&bed, &["status"]).contains("attached"));
}

#[test]
fn host_bits_and_leading_zeros_are_refused_with_the_network_meant() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface]);
    let meant = |network: &'static str| vec!["host bits are set", network];
    refused(
        &bed,
        &[
            (
                vec!["filter", "add", "--src", "1.2.3.4/8", "--action", "drop"],
                meant("did you mean 1.0.0.0/8?"),
            ),
            (
                vec![
                    "filter",
                    "add",
                    "--dst",
                    "2001:db8::1/32",
                    "--action",
                    "drop",
                ],
                meant("did you mean 2001:db8::/32?"),
            ),
            (
                vec!["block", "add", "203.0.113.7/24"],
                meant("did you mean 203.0.113.0/24?"),
            ),
            (
                vec!["block", "del", "203.0.113.7/24"],
                meant("did you mean 203.0.113.0/24?"),
            ),
            (
                vec!["mgmt", "add", "192.0.2.9/28"],
                meant("did you mean 192.0.2.0/28?"),
            ),
            (
                vec!["ratelimit", "add", "--pps", "10", "--scope", "10.1.2.3/16"],
                meant("did you mean 10.1.0.0/16?"),
            ),
            (
                vec![
                    "guard",
                    "amplification",
                    "on",
                    "--expect",
                    "198.51.100.1/24",
                ],
                meant("did you mean 198.51.100.0/24?"),
            ),
            (
                vec!["lb", "config", "--source-v4", "172.16.9.9/16"],
                meant("did you mean 172.16.0.0/16?"),
            ),
            (
                vec!["lb", "config", "--source-v6", "fd00::1/64"],
                meant("did you mean fd00::/64?"),
            ),
            (
                vec!["filter", "add", "--src", "10.0.0.0/08", "--action", "drop"],
                vec!["the prefix length has a leading zero"],
            ),
            (
                vec!["filter", "add", "--src", "010.0.0.0/8", "--action", "drop"],
                vec!["without leading zeros"],
            ),
        ],
    );
    // What they meant goes in.
    xdpath_ok(
        &bed,
        &["filter", "add", "--src", "1.0.0.0/8", "--action", "drop"],
    );
    xdpath_ok(&bed, &["block", "add", "203.0.113.0/24"]);
    assert_eq!(
        json(&bed, &["block", "list"])[0]["prefix"],
        "203.0.113.0/24"
    );
}

#[test]
fn unusable_vips_and_backends_are_refused() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface]);
    xdpath_ok(
        &bed,
        &[
            "lb",
            "config",
            "--source-v4",
            "172.16.0.0/16",
            "--source-v6",
            "fd00:172::/64",
            "--next-hop",
            "02:00:00:00:00:01",
        ],
    );
    xdpath_ok(&bed, &["lb", "vip", "add", "203.0.113.10:80/tcp"]);
    xdpath_ok(&bed, &["lb", "vip", "add", "[2001:db8::10]:80/tcp"]);
    let vip = "203.0.113.10:80/tcp";
    let vip6 = "[2001:db8::10]:80/tcp";
    let unicast = vec!["a VIP must be a unicast address"];
    refused(
        &bed,
        &[
            (
                vec!["lb", "vip", "add", "255.255.255.255:80/tcp"],
                unicast.clone(),
            ),
            (vec!["lb", "vip", "add", "0.0.0.0:80/tcp"], unicast.clone()),
            (
                vec!["lb", "vip", "add", "224.0.0.1:80/udp"],
                unicast.clone(),
            ),
            (vec!["lb", "vip", "add", "[::]:80/tcp"], unicast.clone()),
            (
                vec!["lb", "vip", "add", "[ff02::1]:80/udp"],
                unicast.clone(),
            ),
            (
                vec!["lb", "backend", "add", vip, "127.0.0.1"],
                vec!["invalid backend address \"127.0.0.1\": a loopback address"],
            ),
            (
                vec!["lb", "backend", "add", vip, "127.1.2.3"],
                vec!["a loopback address"],
            ),
            (
                vec!["lb", "backend", "add", vip6, "::1"],
                vec!["invalid backend address \"::1\": a loopback address"],
            ),
            (
                vec!["lb", "backend", "add", vip, "255.255.255.255"],
                vec!["not a unicast address"],
            ),
            (
                vec!["lb", "backend", "add", vip, "0.0.0.0"],
                vec!["not a unicast address"],
            ),
            (
                vec!["lb", "backend", "add", vip, "239.1.1.1"],
                vec!["not a unicast address"],
            ),
            (
                vec!["lb", "backend", "add", vip, "203.0.113.10"],
                vec!["invalid backend address", "the VIP's own address"],
            ),
        ],
    );
    xdpath_ok(&bed, &["lb", "backend", "add", vip, "10.0.0.1"]);
}

#[test]
fn a_guard_with_no_ports_is_refused() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface]);
    refused(
        &bed,
        &[
            (
                vec!["guard", "syn-cookies", "on", "--ports", ""],
                vec!["the SYN-cookie guard is on with no ports"],
            ),
            (
                vec!["guard", "syn-cookies", "on", "--ports", " , "],
                vec!["SYN-cookie guard is on with no ports"],
            ),
            (
                vec!["guard", "syn-cookies", "on"],
                vec!["SYN-cookie guard is on with no ports"],
            ),
            (
                vec!["guard", "amplification", "on", "--ports", ""],
                vec!["the amplification guard is on with no ports"],
            ),
        ],
    );
    assert_eq!(
        json(&bed, &["guard", "show"])["syn_cookies"]["enabled"],
        false
    );
    xdpath_ok(&bed, &["guard", "syn-cookies", "on", "--ports", "80,443"]);
    // Off, an empty list is fine: nothing claims to be guarded.
    xdpath_ok(&bed, &["guard", "syn-cookies", "off", "--ports", ""]);
}

#[test]
fn sample_on_a_deleted_interface_is_refused() {
    xdpath_lab::needs_root!();
    let bed = bed();
    // A second veth pair inside A, to delete under the attached program.
    let dummy = format!("xdptd{}", bed.number());
    let peer = format!("xdptp{}", bed.number());
    bed.exec_ok(
        Side::A,
        "ip",
        ["link", "add", &dummy, "type", "veth", "peer", "name", &peer],
    )
    .expect("ip link add");
    xdpath_ok(&bed, &["attach", &dummy, "--mode", "generic"]);
    xdpath_ok(&bed, &["sample", &dummy, "10"]);
    bed.exec_ok(Side::A, "ip", ["link", "del", &dummy])
        .expect("ip link del");
    let status = json(&bed, &["status"]);
    assert_eq!(status[0]["healthy"], false, "{status}");
    refused(
        &bed,
        &[
            (
                vec!["sample", &dummy, "100"],
                vec![&dummy, "is gone", "xdpath detach"],
            ),
            (vec!["sample", &dummy, "off"], vec![&dummy, "is gone"]),
        ],
    );
    xdpath_ok(&bed, &["detach", &dummy]);
}

/// A VNI is 24 bits: one past the top, a fraction, a word, and
/// `--vni` on a rate limit are refused with one line naming the range.
#[test]
fn a_vni_out_of_range_is_refused() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface]);
    let range = || vec!["invalid VNI", "0-16777215"];
    let rule = |vni: &'static str| {
        vec![
            "filter",
            "add",
            "--vni",
            vni,
            "--src",
            "10.0.0.0/8",
            "--action",
            "drop",
        ]
    };
    refused(
        &bed,
        &[
            (rule("16777216"), range()),
            (rule("1.5"), range()),
            (rule("tenant"), range()),
            (
                vec!["ratelimit", "add", "--pps", "10", "--vni", "99999999"],
                range(),
            ),
        ],
    );
    // The edges are taken.
    for vni in ["0", "16777215"] {
        xdpath_ok(&bed, &rule(vni));
    }
    xdpath_ok(
        &bed,
        &["ratelimit", "add", "--pps", "10", "--vni", "16777215"],
    );
    let listed = json(&bed, &["filter", "list"]);
    let vnis: Vec<u64> = listed["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|rule| rule["vni"].as_u64())
        .collect();
    assert_eq!(vnis, [0, 16_777_215]);
}

#[test]
fn icmp_types_out_of_range_or_off_icmp_are_refused() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface]);
    let add = |rest: &[&'static str]| {
        let mut args = vec!["filter", "add", "--src", "192.0.2.0/24"];
        args.extend_from_slice(rest);
        args.extend_from_slice(&["--action", "drop"]);
        args
    };
    refused(
        &bed,
        &[
            (
                add(&["--proto", "icmp", "--icmp-type", "256"]),
                vec!["invalid ICMP type \"256\"", "0-255"],
            ),
            (
                add(&["--proto", "icmp", "--icmp-type", "3/"]),
                vec!["invalid ICMP type \"3/\""],
            ),
            (
                add(&["--proto", "icmp", "--icmp-type", "3/4/5"]),
                vec!["invalid ICMP type \"3/4/5\""],
            ),
            (
                add(&["--proto", "tcp", "--icmp-type", "8"]),
                vec!["needs protocol icmp or icmpv6", "protocol \"tcp\""],
            ),
            (
                add(&["--icmp-type", "8"]),
                vec!["needs protocol icmp or icmpv6", "the rule has none"],
            ),
            (
                add(&["--proto", "icmp", "--icmp-type", "8", "--dport", "80"]),
                vec!["exclude each other"],
            ),
        ],
    );
    // In range, the rule is listed with its type and code.
    xdpath_ok(
        &bed,
        &[
            "filter",
            "add",
            "--src",
            "2001:db8::/32",
            "--proto",
            "icmpv6",
            "--icmp-type",
            "1/4",
            "--action",
            "drop",
        ],
    );
    let rules = json(&bed, &["filter", "list"]);
    assert_eq!(rules["rules"][0]["icmp_type"], "1/4", "{rules}");
    assert_eq!(rules["rules"][0]["protocol"], "icmpv6", "{rules}");
    assert!(xdpath_ok(&bed, &["filter", "list"]).contains("type 1/4"));
}
