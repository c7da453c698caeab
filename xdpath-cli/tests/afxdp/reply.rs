//! Answers in place: every frame B sends is answered by A's socket from
//! the frame's own UMEM buffer (`recv_each_reply`), on rings small enough
//! that each buffer goes RX → TX → completion → fill several times.

use super::*;

/// 500 frames in batches of 50 on 64-entry rings: every answer reaches B
/// in order and byte-identical, and receiving never starves, which it
/// would after 64 answers if the buffers lent to TX did not come back to
/// the fill ring.
#[test]
fn answers_in_place_recycle_their_buffers_without_loss() {
    xdpath_lab::needs_root!();
    let bed = common::bed();
    let (a, b) = (bed.a().clone(), bed.b().clone());
    let (ebpf, mut socket) = setup_with(&bed, SMALL_RINGS);
    let answer_to = |index: usize| numbered(&a, &b, TX_MARKER, index);
    // Each frame B sends, by its bytes: what the socket receives is
    // looked up here (a short frame's digits are cut off by its padding).
    let sent: std::collections::HashMap<Vec<u8>, usize> = (0..WRAP_TOTAL)
        .map(|index| (numbered(&b, &a, RX_MARKER, index), index))
        .collect();
    let receiver = Receiver::start(&bed, TX_MARKER, WRAP_TOTAL);

    let mut answered = 0;
    let mut refused = 0;
    let mut seen = Vec::new();
    let mut others = 0;
    for (batch_index, batch) in (0..WRAP_TOTAL)
        .collect::<Vec<_>>()
        .chunks(WRAP_BATCH)
        .enumerate()
    {
        let mut args = vec!["-c".to_string(), SEND_PY.to_string(), b.interface.clone()];
        args.extend(
            batch
                .iter()
                .map(|&index| hex(&numbered(&b, &a, RX_MARKER, index))),
        );
        bed.exec_ok(Side::B, PYTHON, &args).expect("send from B");
        let want = (batch_index + 1) * WRAP_BATCH;
        let deadline = Instant::now() + Duration::from_secs(5);
        while answered + refused < want && Instant::now() < deadline {
            let (_, replied) = socket
                .recv_each_reply(Duration::from_millis(200), |received| {
                    let Some(&index) = sent.get(received.bytes()) else {
                        others += 1;
                        return;
                    };
                    seen.push(index);
                    match received.reply(&answer_to(index)) {
                        Ok(()) => {}
                        Err(XskError::TxBusy { .. }) => refused += 1,
                        Err(error) => panic!("reply: {error}"),
                    }
                })
                .expect("recv_each_reply");
            answered += replied;
        }
    }
    assert_eq!(socket.flush(Duration::from_secs(2)).expect("flush"), 0);
    let stats = socket.stats().expect("stats");
    let missing: Vec<usize> = (0..WRAP_TOTAL)
        .filter(|index| !seen.contains(index))
        .collect();
    assert_eq!(
        (answered, refused),
        (WRAP_TOTAL, 0),
        "every frame answered: {stats:?}, missing {missing:?}, {others} other frames"
    );

    let captured = receiver.captured();
    let expected: Vec<String> = (0..WRAP_TOTAL)
        .map(|index| hex(&answer_to(index)))
        .collect();
    assert_eq!(captured.len(), WRAP_TOTAL, "B captured every answer once");
    assert!(captured == expected, "in order, byte-identical");
    let stats = socket.stats().expect("stats");
    assert_eq!(stats.sent, WRAP_TOTAL as u64);
    assert_eq!(stats.rx_dropped, 0, "{stats:?}");
    assert_eq!(
        stats.rx_fill_ring_empty_descs, 0,
        "the fill ring never ran dry: {stats:?}"
    );
    // A frame too long for a UMEM frame is refused and changes nothing.
    let receiver = Receiver::start(&bed, TX_MARKER, 1);
    let mut too_large = None;
    let frame = numbered(&b, &a, RX_MARKER, 0);
    bed.exec_ok(
        Side::B,
        PYTHON,
        &[
            "-c".into(),
            SEND_PY.into(),
            b.interface.clone(),
            hex(&frame),
        ],
    )
    .expect("send from B");
    let (handed, replied) = socket
        .recv_each_reply(Duration::from_secs(2), |received| {
            too_large = Some(received.reply(&[0u8; 4096]));
        })
        .expect("recv_each_reply");
    assert_eq!((handed, replied), (1, 0));
    assert!(matches!(
        too_large,
        Some(Err(XskError::FrameTooLarge {
            len: 4096,
            max: 2048
        }))
    ));
    assert!(receiver.captured().is_empty(), "nothing was sent");
    drop(socket);
    drop(ebpf);
}
