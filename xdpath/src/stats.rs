//! Counter tables as the CLI and tests read them.

use xdpath_core::{stats::counter_index, Action, Counter, Reason};

/// One non-zero (action, reason) counter.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CounterRow {
    /// The verdict.
    pub action: &'static str,
    /// The class or malformed reason.
    pub reason: &'static str,
    /// Whether the reason marks a malformed frame.
    pub malformed: bool,
    /// Frames.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The non-zero rows of a counter array, in (action, reason) order.
pub fn rows(counters: &[Counter]) -> Vec<CounterRow> {
    let mut rows = Vec::new();
    for action in Action::ALL {
        for reason in Reason::ALL {
            let Some(counter) = counters.get(counter_index(action, reason) as usize) else {
                continue;
            };
            if counter.packets == 0 {
                continue;
            }
            rows.push(CounterRow {
                action: action.name(),
                reason: reason.name(),
                malformed: reason.is_malformed(),
                packets: counter.packets,
                bytes: counter.bytes,
            });
        }
    }
    rows
}

/// Total packets with the given action.
pub fn total(counters: &[Counter], action: Action) -> u64 {
    Reason::ALL
        .iter()
        .filter_map(|reason| counters.get(counter_index(action, *reason) as usize))
        .map(|counter| counter.packets)
        .sum()
}

/// Prints rows as an aligned table.
pub fn print_table(rows: &[CounterRow]) {
    println!(
        "{:<9} {:<26} {:>12} {:>14}",
        "VERDICT", "REASON", "PACKETS", "BYTES"
    );
    for row in rows {
        println!(
            "{:<9} {:<26} {:>12} {:>14}",
            row.action, row.reason, row.packets, row.bytes
        );
    }
    let packets: u64 = rows.iter().map(|row| row.packets).sum();
    let bytes: u64 = rows.iter().map(|row| row.bytes).sum();
    println!("{:<9} {:<26} {:>12} {:>14}", "total", "", packets, bytes);
}
