//! Steering flows to an AF_XDP application end to end (needs root):
//! `xdpath xsk add --proto udp --dport 9000` in namespace A, an application
//! there with a `SteeredReceiver` on the veth's queue, hping3 traffic from
//! namespace B. The application gets exactly the steered flow's frames and
//! nothing else; other traffic still reaches the stack; once the
//! application is gone, the flow goes back to the stack.

mod common;

use std::time::{Duration, Instant};

use common::{bed, json, xdpath, xdpath_ok};
use xdpath::afxdp::{SteeredReceiver, XskOptions};
use xdpath_lab::testenv::{Side, TestBed};

const STEERED: u16 = 9000;
const OTHER: u16 = 9001;
const FRAMES: usize = 5;

fn udp(bed: &TestBed, port: u16) -> std::process::Command {
    let mut command = bed.command(Side::B, "hping3");
    command.args([
        "--udp",
        "-q",
        "-c",
        &FRAMES.to_string(),
        "-i",
        "u20000",
        "-s",
        "5555",
        "-k",
        "-d",
        "20",
        "-p",
        &port.to_string(),
        &bed.a().ipv4.to_string(),
    ]);
    command
}

fn udp_destination_port(frame: &[u8]) -> Option<u16> {
    let fields = xdpath::observe::flow::parse(frame)?;
    (fields.protocol == 17).then_some(fields.destination_port)
}

#[test]
fn the_application_gets_exactly_the_steered_flow() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface, "--mode", "native"]);
    xdpath_ok(
        &bed,
        &[
            "xsk",
            "add",
            "--proto",
            "udp",
            "--dport",
            &STEERED.to_string(),
        ],
    );
    let listed = json(&xdpath_ok(&bed, &["--json", "xsk", "list"]));
    assert_eq!(
        listed,
        serde_json::json!([{ "protocol": 17, "port": STEERED }])
    );

    let mut steered = udp(&bed, STEERED);
    let mut other = udp(&bed, OTHER);
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        let _ = steered.output();
        let _ = other.output();
    });
    let iface = interface.clone();
    let frames = bed
        .run_in_a(move || -> Result<Vec<Vec<u8>>, String> {
            let mut receiver = SteeredReceiver::open(&iface, 0, XskOptions::default())
                .map_err(|error| error.to_string())?;
            let mut frames = Vec::new();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(3) {
                receiver
                    .recv(Duration::from_millis(100), &mut frames)
                    .map_err(|error| error.to_string())?;
            }
            Ok(frames)
        })
        .expect("run in A")
        .expect("receive");
    sender.join().expect("sender");
    let ports: Vec<Option<u16>> = frames
        .iter()
        .map(|frame| udp_destination_port(frame))
        .collect();
    assert_eq!(
        ports,
        vec![Some(STEERED); FRAMES],
        "the application got {ports:?}"
    );
    for frame in &frames {
        let fields = xdpath::observe::flow::parse(frame).unwrap();
        assert_eq!(fields.source.to_string(), bed.b().ipv4.to_string());
        assert_eq!(frame.len(), 14 + 20 + 8 + 20);
    }
    // The other flow reached the stack (which answered port unreachable).
    let stats = json(&xdpath_ok(&bed, &["--json", "stats", &interface]));
    let passed = xdpath::stats::packets_in_json(&stats, "pass", Some("ipv4-udp"));
    let redirected = xdpath::stats::packets_in_json(&stats, "redirect", Some("ipv4-udp"));
    assert_eq!(
        (passed, redirected),
        (FRAMES as u64, FRAMES as u64),
        "{stats}"
    );

    // The application is gone: the steered flow goes to the stack again.
    let _ = udp(&bed, STEERED).output();
    let stats = json(&xdpath_ok(&bed, &["--json", "stats", &interface]));
    let passed = xdpath::stats::packets_in_json(&stats, "pass", Some("ipv4-udp"));
    assert_eq!(passed, 2 * FRAMES as u64, "{stats}");
}

#[test]
fn bad_steering_to_user_space_is_refused_clearly() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface]);
    for (args, message) in [
        (
            vec!["xsk", "add", "--proto", "icmp", "--dport", "1"],
            "only tcp and udp",
        ),
        (
            vec!["xsk", "add", "--proto", "udp", "--dport", "0"],
            "port 0",
        ),
        (
            vec!["xsk", "del", "--proto", "udp", "--dport", "53"],
            "is not steered",
        ),
    ] {
        let output = xdpath(&bed, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(message),
            "{args:?}: {stderr}"
        );
    }
    let iface = interface.clone();
    let errors = bed
        .run_in_a(move || {
            let missing_queue = SteeredReceiver::open(&iface, 5, XskOptions::default())
                .err()
                .map(|error| error.to_string());
            let not_attached = SteeredReceiver::open("lo", 0, XskOptions::default())
                .err()
                .map(|error| error.to_string());
            (missing_queue, not_attached)
        })
        .expect("run in A");
    let (missing_queue, not_attached) = errors;
    assert!(
        missing_queue
            .as_deref()
            .is_some_and(|text| text.contains("queue 5 does not exist")),
        "{missing_queue:?}"
    );
    assert!(
        not_attached
            .as_deref()
            .is_some_and(|text| text.contains("not attached to \"lo\"")),
        "{not_attached:?}"
    );
}
