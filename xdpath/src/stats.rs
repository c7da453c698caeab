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

/// Counter rows as an aligned table, with a total line.
pub struct CounterTable<'a>(pub &'a [CounterRow]);

impl std::fmt::Display for CounterTable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rows = self.0;
        writeln!(
            f,
            "{:<9} {:<26} {:>12} {:>14}",
            "VERDICT", "REASON", "PACKETS", "BYTES"
        )?;
        for row in rows {
            writeln!(
                f,
                "{:<9} {:<26} {:>12} {:>14}",
                row.action, row.reason, row.packets, row.bytes
            )?;
        }
        let packets: u64 = rows.iter().map(|row| row.packets).sum();
        let bytes: u64 = rows.iter().map(|row| row.bytes).sum();
        writeln!(f, "{:<9} {:<26} {:>12} {:>14}", "total", "", packets, bytes)?;
        Ok(())
    }
}

/// `after - before`, slot by slot (counters only grow).
pub fn difference(before: &[Counter], after: &[Counter]) -> Vec<Counter> {
    before
        .iter()
        .zip(after)
        .map(|(before, after)| Counter {
            packets: after.packets.saturating_sub(before.packets),
            bytes: after.bytes.saturating_sub(before.bytes),
        })
        .collect()
}

/// Packets in the output of `xdpath --json stats` whose verdict is
/// `action` and, when given, whose reason is `reason`, over all interfaces.
pub fn packets_in_json(stats: &serde_json::Value, action: &str, reason: Option<&str>) -> u64 {
    stats
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|interface| interface["counters"].as_array())
        .flatten()
        .filter(|row| {
            row["action"] == action && reason.is_none_or(|reason| row["reason"] == reason)
        })
        .filter_map(|row| row["packets"].as_u64())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_counts_and_differences() {
        let stats = serde_json::json!([
            {"interface": "a", "counters": [
                {"action": "drop", "reason": "blocklisted", "packets": 5},
                {"action": "drop", "reason": "amplification", "packets": 2},
                {"action": "pass", "reason": "ipv4-tcp", "packets": 7}]},
            {"interface": "b", "counters": [{"action": "drop", "reason": "blocklisted", "packets": 1}]}
        ]);
        assert_eq!(packets_in_json(&stats, "drop", None), 8);
        assert_eq!(packets_in_json(&stats, "drop", Some("blocklisted")), 6);
        assert_eq!(packets_in_json(&stats, "pass", Some("ipv4-udp")), 0);
        let before = [Counter {
            packets: 1,
            bytes: 10,
        }];
        let after = [Counter {
            packets: 3,
            bytes: 50,
        }];
        assert_eq!(
            difference(&before, &after),
            vec![Counter {
                packets: 2,
                bytes: 40
            }]
        );
    }
}
