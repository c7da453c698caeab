//! Running the rows: each row's state change predicted, both builds run,
//! verdicts, outputs and state compared.

use super::*;

/// The state a row leaves, from the state before it and the backend its
/// output went to.
pub(crate) fn expected_state(row: &Row, before: &Snapshot, backend: Option<[u8; 16]>) -> Snapshot {
    let mut expected = before.clone();
    let mut count = |new_flow: u64| {
        let mut tuple = tuple_of(&row.frame);
        let vip_value = vip_of(&tuple);
        let vip = vip_value.index as usize;
        let backend = backend_index(backend.expect("an encapsulated output"));
        let bytes = row.frame.len() as u64;
        for counter in [&mut expected.vips[vip], &mut expected.backends[backend]] {
            counter[0] += 1;
            counter[1] += bytes;
            counter[2] += new_flow;
        }
        // A source-hashed VIP keeps one entry per client.
        if vip_value.flags & VIP_SOURCE_HASH != 0 {
            tuple.source_port = 0;
            tuple.destination_port = 0;
        }
        (tuple.key_bytes(), backend as u32, 1)
    };
    // A frame to a VIP that was not forwarded counts once for the VIP, by
    // reason.
    if VIP_DROP_REASONS.contains(&row.reason) {
        let vip = vip_of(&tuple_of(&row.frame)).index;
        let index = vip_drop_index(vip, row.reason).expect("a VIP drop slot") as usize;
        expected.drops[index] += 1;
    }
    let opening = is_bare_syn(&row.frame);
    match row.table {
        Table::Untouched => {}
        Table::NewFlow => {
            let connection = count(1);
            expected.misses += 1;
            if opening || !is_tcp(&row.frame) {
                if opening {
                    // A new connection on an earlier one's 5-tuple, whose
                    // backend left the ring, drops the earlier one's entry.
                    expected.connections.retain(|held| held.0 != connection.0);
                }
                // A bare SYN or a first datagram takes its slot in the
                // new-flow table from whichever flow held it.
                let entry = new_flow_entry(&connection, before.seed);
                expected.new_connections.retain(|held| held.0 != entry.0);
                expected.new_connections.insert(entry);
            } else {
                expected.connections.insert(connection);
            }
        }
        Table::Hit => {
            let connection = count(0);
            expected.hits += 1;
            let established = before.connections.contains(&connection);
            assert!(
                established
                    || before
                        .new_connections
                        .contains(&new_flow_entry(&connection, before.seed)),
                "{}: a hit on the flow's own connection and backend",
                row.description
            );
            // A flow found only in the new-flow table is copied to the
            // established one by its next frame that is not a bare SYN (an
            // ICMP error is no packet of the flow).
            if !established && !opening && !is_too_big(&row.frame) {
                expected.connections.insert(connection);
            }
        }
        Table::IcmpMiss => {
            count(0);
            expected.misses += 1;
        }
        Table::NoBackend => expected.misses += 1,
        Table::Stateless => {
            count(1);
        }
    }
    expected
}

/// Runs the rows in order on one balancer (Maglev table `table`); returns
/// the outputs.
pub(crate) fn check_rows(table: Vec<u32>, rows: &Rows) -> Vec<Vec<u8>> {
    let mut builds = Builds::balancer(table.clone());
    let mut outputs: Vec<Vec<u8>> = Vec::new();
    for row in &rows.rows {
        let description = row.description.as_str();
        let before = builds.snapshot(description);
        let ran = builds.run(description, &row.frame);
        assert_eq!(
            (ran.action, ran.reason),
            (row.action, row.reason),
            "{description}: verdict"
        );
        let backend = match row.output {
            Output::Encapsulated => {
                let backend = check_output(description, &row.frame, &ran.output);
                let pick = maglev_pick(&table, &row.frame);
                assert_eq!(backend, pick, "{description}: the Maglev table's backend");
                Some(backend)
            }
            Output::SameBackendAs(other) => {
                let backend = check_output(description, &row.frame, &ran.output);
                let expected = outer_destination(&outputs[other]);
                assert_eq!(backend, expected, "{description}: row {other}'s backend");
                Some(backend)
            }
            Output::SameAs(other) => {
                let backend = check_output(description, &row.frame, &ran.output);
                assert_eq!(
                    ran.output, outputs[other],
                    "{description}: row {other}'s output"
                );
                Some(backend)
            }
            Output::Unchanged => {
                assert_eq!(ran.output, row.frame, "{description}: unchanged");
                None
            }
            Output::Dropped => None,
        };
        let after = builds.snapshot(description);
        let expected = expected_state(row, &before, backend);
        assert_eq!(
            after, expected,
            "{description}: connection table and counters"
        );
        outputs.push(ran.output);
    }
    outputs
}
