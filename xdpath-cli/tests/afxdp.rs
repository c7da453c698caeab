//! AF_XDP end to end, in network namespaces (needs root).
//!
//! Namespace A: the `xdpath-xsk` program attached in driver mode to A's
//! veth end redirects every frame to `XSKS[rx_queue]`, where an
//! [`XskSocket`] on queue 0 sits. Side B sends known UDP frames from a raw
//! packet socket (Python, `AF_PACKET`): the socket must receive exactly
//! those bytes. Then the socket sends frames, and a raw packet socket in B
//! must capture exactly those bytes. Bad input (a missing interface, a
//! queue the veth does not have, a queue already taken, frames of the wrong
//! size) must give the library's structured errors.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use xdpath_core::abi;
use xdpath_core::wire::checksum;

mod common;
#[path = "afxdp/harness.rs"]
mod harness;
#[path = "afxdp/reply.rs"]
mod reply;

use aya::maps::XskMap;
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;
use serde_json::Value;
use xdpath::afxdp::{XskError, XskOptions, XskSocket, XskStep};
use xdpath::objects;
use xdpath_lab::testenv::{Endpoint, Side, TestBed};

use harness::*;

// Long: the RX half, then the TX half on the same socket and bed.
#[test]
fn receives_and_sends_exact_frames() {
    xdpath_lab::needs_root!();
    let bed = common::bed();
    let (a, b) = (bed.a().clone(), bed.b().clone());
    let (ebpf, mut socket) = setup(&bed);
    assert_eq!(xdp_mode(&bed), 1, "xdpath_xsk attached in driver mode");
    assert_eq!(socket.queue(), 0);
    assert_eq!(socket.interface(), a.interface);

    // Nothing has arrived yet: a zero timeout returns at once.
    let mut received = Vec::new();
    let start = Instant::now();
    assert_eq!(socket.recv(Duration::ZERO, &mut received).unwrap(), 0);
    assert!(start.elapsed() < Duration::from_millis(100));

    // RX: B sends known frames; the socket must get exactly them.
    let sent = frames(&b, &a, RX_MARKER, RX_FRAMES);
    let mut args = vec!["-c".to_string(), SEND_PY.to_string(), b.interface.clone()];
    args.extend(sent.iter().map(|frame| hex(frame)));
    bed.exec_ok(Side::B, PYTHON, &args).expect("send from B");

    let deadline = Instant::now() + Duration::from_secs(5);
    let ours = |frames: &[Vec<u8>]| {
        frames
            .iter()
            .filter(|frame| contains(frame, RX_MARKER))
            .count()
    };
    while ours(&received) < RX_FRAMES && Instant::now() < deadline {
        socket
            .recv(Duration::from_millis(200), &mut received)
            .expect("recv");
    }
    // Anything extra (a duplicate) would show up now.
    socket
        .recv(Duration::from_millis(300), &mut received)
        .expect("recv");
    let matched: Vec<Vec<u8>> = received
        .iter()
        .filter(|frame| contains(frame, RX_MARKER))
        .cloned()
        .collect();
    let noise = received.len() - matched.len();
    assert_eq!(
        matched.len(),
        RX_FRAMES,
        "frames with the marker received by the socket ({noise} other frames)"
    );
    assert_eq!(
        matched, sent,
        "the socket received exactly the bytes B sent"
    );
    eprintln!(
        "RX: {} of {} frames byte-identical, {} unrelated frames",
        matched.len(),
        sent.len(),
        noise
    );

    // TX: the socket sends known frames; a packet socket in B must see
    // exactly them.
    let receiver = Receiver::start(&bed, TX_MARKER, TX_FRAMES);
    let outgoing = frames(&a, &b, TX_MARKER, TX_FRAMES);
    for frame in &outgoing {
        socket.send(frame).expect("send");
    }
    assert_eq!(
        socket.flush(Duration::from_secs(2)).expect("flush"),
        0,
        "every frame completed"
    );
    let captured = receiver.captured();
    let expected: Vec<String> = outgoing.iter().map(|frame| hex(frame)).collect();
    assert_eq!(
        captured, expected,
        "B captured exactly the frames the socket sent"
    );
    eprintln!(
        "TX: {} of {} frames byte-identical at B",
        captured.len(),
        outgoing.len()
    );

    let stats = socket.stats().expect("stats");
    eprintln!("{stats:?}");
    assert_eq!(stats.received, received.len() as u64);
    assert_eq!(
        (stats.fill_refills, stats.fill_pending),
        (stats.received, 0),
        "once the socket found nothing more, every received frame was back in the fill ring"
    );
    assert_eq!(stats.tx_queued, TX_FRAMES as u64);
    assert_eq!(stats.sent, TX_FRAMES as u64);
    assert_eq!(stats.rx_dropped, 0);
    assert_eq!(stats.invalid_descs, 0);
    assert_eq!(stats.rx_invalid_descs, 0);
    assert_eq!(stats.tx_invalid_descs, 0);

    drop(socket);
    drop(ebpf);
    assert_eq!(
        xdp_mode(&bed),
        Value::Null,
        "detached when the program is dropped"
    );
}

// Long: one bad input or misuse after another, each with its error.
#[test]
fn bad_input_gives_clear_errors() {
    xdpath_lab::needs_root!();
    let bed = common::bed();
    let interface = bed.a().interface.clone();
    let outcome = bed
        .run_in_a(move || {
            let missing = XskSocket::open("xdpt-nosuch0", 0, XskOptions::default());
            let queue_7 = XskSocket::open(&interface, 7, XskOptions::default());
            let first = XskSocket::open(&interface, 0, XskOptions::default());
            let second = XskSocket::open(&interface, 0, XskOptions::default());
            let bad_options = XskSocket::open(
                &interface,
                0,
                XskOptions {
                    frame_size: 3000,
                    ..XskOptions::default()
                },
            );
            (interface, missing, queue_7, first, second, bad_options)
        })
        .expect("thread in namespace A");
    let (interface, missing, queue_7, first, second, bad_options) = outcome;

    match missing {
        Err(error @ XskError::InterfaceNotFound { .. }) => {
            assert_eq!(
                error.to_string(),
                "interface \"xdpt-nosuch0\" not found in this network namespace"
            );
        }
        other => panic!("missing interface: {other:?}"),
    }
    match queue_7 {
        Err(
            ref error @ XskError::QueueNotFound {
                ref interface,
                queue,
                available,
            },
        ) => {
            assert_eq!(
                (interface.as_str(), queue, available),
                (bed.a().interface.as_str(), 7, 1)
            );
            assert_eq!(
                error.to_string(),
                format!("queue 7 does not exist on {} (it has 1)", bed.a().interface)
            );
        }
        other => panic!("queue 7: {other:?}"),
    }
    let mut first = first.expect("a socket on queue 0");
    match second {
        Err(XskError::Bind {
            queue: 0, source, ..
        }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EBUSY), "{source}");
        }
        other => panic!("second socket on queue 0: {other:?}"),
    }
    match bad_options {
        Err(XskError::InvalidOptions {
            option: "frame_size",
            value: 3000,
            ..
        }) => {}
        other => panic!("frame size 3000: {other:?}"),
    }
    assert_eq!(first.interface(), interface);

    // Frames of the wrong size are refused before they reach the kernel.
    match first.send(&[0; 13]) {
        Err(XskError::FrameTooShort { len: 13, min: 14 }) => {}
        other => panic!("13-byte frame: {other:?}"),
    }
    match first.send(&vec![0; 2049]) {
        Err(XskError::FrameTooLarge {
            len: 2049,
            max: 2048,
        }) => {}
        other => panic!("2049-byte frame: {other:?}"),
    }
    // No program redirects to it: nothing arrives.
    let mut frames = Vec::new();
    assert_eq!(
        first
            .recv(Duration::from_millis(50), &mut frames)
            .expect("recv"),
        0
    );
    let stats = first.stats().expect("stats");
    assert_eq!((stats.received, stats.sent, stats.tx_queued), (0, 0, 0));
    // The steps have readable names.
    assert_eq!(
        XskStep::RegisterUmem.to_string(),
        "setsockopt(XDP_UMEM_REG)"
    );
}

/// Small rings (64 entries, 128 frames) wrapped several times both ways:
/// every receive buffer is recycled through the fill ring about eight
/// times and every transmit buffer through the completion ring as often,
/// and no frame is lost, duplicated or reordered.
// Long: the RX half, then the TX half on the same small rings.
#[test]
fn small_rings_wrap_without_loss() {
    xdpath_lab::needs_root!();
    const BATCH: usize = WRAP_BATCH;
    const TOTAL: usize = WRAP_TOTAL;
    let bed = common::bed();
    let (a, b) = (bed.a().clone(), bed.b().clone());
    let (ebpf, mut socket) = setup_with(&bed, SMALL_RINGS);
    // RX: batches below the 64 fill entries, drained between batches.
    let sent: Vec<Vec<u8>> = (0..TOTAL)
        .map(|index| numbered(&b, &a, RX_MARKER, index))
        .collect();
    let mut received = Vec::new();
    for batch in sent.chunks(BATCH) {
        let mut args = vec!["-c".to_string(), SEND_PY.to_string(), b.interface.clone()];
        args.extend(batch.iter().map(|frame| hex(frame)));
        bed.exec_ok(Side::B, PYTHON, &args).expect("send from B");
        let want = received.len() + batch.len();
        let deadline = Instant::now() + Duration::from_secs(5);
        while received.len() < want && Instant::now() < deadline {
            socket
                .recv(Duration::from_millis(200), &mut received)
                .expect("recv");
        }
    }
    socket
        .recv(Duration::from_millis(200), &mut received)
        .expect("recv");
    received.retain(|frame| contains(frame, RX_MARKER));
    assert_eq!(received.len(), TOTAL, "every frame received once");
    assert!(received == sent, "received in order, byte-identical");

    // TX: more frames than the 64 TX buffers, so buffers come back through
    // the completion ring many times.
    let receiver = Receiver::start(&bed, TX_MARKER, TOTAL);
    let outgoing: Vec<Vec<u8>> = (0..TOTAL)
        .map(|index| numbered(&a, &b, TX_MARKER, index))
        .collect();
    let mut busy = 0;
    for frame in &outgoing {
        loop {
            match socket.send(frame) {
                Ok(()) => break,
                Err(XskError::TxBusy { .. }) => {
                    busy += 1;
                    assert!(busy < 10_000, "TX stays busy");
                    socket.flush(Duration::from_millis(10)).expect("flush");
                }
                Err(error) => panic!("send: {error}"),
            }
        }
    }
    assert_eq!(socket.flush(Duration::from_secs(2)).expect("flush"), 0);
    let captured = receiver.captured();
    let expected: Vec<String> = outgoing.iter().map(|frame| hex(frame)).collect();
    if captured.len() != TOTAL {
        let links = bed.exec(
            Side::B,
            "ip",
            ["-s", "-s", "link", "show", "dev", &b.interface],
        );
        eprintln!(
            "{:?}",
            links.map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        );
    }
    assert_eq!(captured.len(), TOTAL, "B captured every frame once");
    assert!(
        captured == expected,
        "B captured them in order, byte-identical"
    );

    let stats = socket.stats().expect("stats");
    eprintln!("small rings: {stats:?}, TX busy {busy} times");
    assert_eq!(stats.sent, TOTAL as u64);
    assert_eq!(stats.tx_queued, TOTAL as u64);
    assert!(stats.received >= TOTAL as u64);
    assert_eq!(
        (stats.fill_refills, stats.fill_pending),
        (stats.received, 0),
        "once the socket found nothing more, every received frame was back in the fill ring"
    );
    assert_eq!(stats.rx_dropped, 0);
    drop(socket);
    drop(ebpf);
}
