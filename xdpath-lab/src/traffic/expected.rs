//! [`Expected`]: the exact (action, reason) counters a mix should leave,
//! and how they compare with the counters read back.

use std::collections::BTreeMap;

use xdpath_core::stats::counter_index;
use xdpath_core::{Action, Counter, Reason, COUNTER_SLOTS};

use super::socket::ping_frame_len;
use xdpath::stats::CounterRow;

/// Expected counters: packets and bytes per (action, reason).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    counters: BTreeMap<(Action, Reason), Counter>,
}

impl Expected {
    /// Adds `packets` frames of `bytes` bytes in all.
    pub fn add(&mut self, action: Action, reason: Reason, packets: u64, bytes: u64) -> &mut Self {
        let counter = self.counters.entry((action, reason)).or_default();
        counter.packets += packets;
        counter.bytes += bytes;
        self
    }

    /// Adds `count` ping echo requests of `size` data bytes (`ping -s`),
    /// IPv4 or IPv6, passed.
    pub fn add_pings(&mut self, v6: bool, count: u64, size: u64) -> &mut Self {
        let (reason, header) = if v6 {
            (Reason::Ipv6Icmp, 40)
        } else {
            (Reason::Ipv4Icmp, 20)
        };
        self.add(
            Action::Pass,
            reason,
            count,
            count * ping_frame_len(header, size),
        )
    }

    /// Adds everything in `other`, `times` times.
    pub fn add_all(&mut self, other: &Expected, times: u64) -> &mut Self {
        for (&(action, reason), counter) in &other.counters {
            self.add(
                action,
                reason,
                counter.packets * times,
                counter.bytes * times,
            );
        }
        self
    }

    /// One (action, reason) counter.
    pub fn get(&self, action: Action, reason: Reason) -> Counter {
        self.counters
            .get(&(action, reason))
            .copied()
            .unwrap_or_default()
    }

    /// Total packets expected.
    pub fn packets(&self) -> u64 {
        self.counters.values().map(|counter| counter.packets).sum()
    }

    /// Total packets expected with `action`.
    pub fn packets_with(&self, action: Action) -> u64 {
        self.counters
            .iter()
            .filter(|((a, _), _)| *a == action)
            .map(|(_, counter)| counter.packets)
            .sum()
    }

    /// As a counter array, indexed like the kernel's.
    pub fn to_counters(&self) -> Vec<Counter> {
        let mut counters = vec![Counter::default(); COUNTER_SLOTS as usize];
        for (&(action, reason), counter) in &self.counters {
            if let Some(slot) = counters.get_mut(counter_index(action, reason) as usize) {
                *slot = *counter;
            }
        }
        counters
    }

    /// As the rows `xdpath stats` prints.
    pub fn rows(&self) -> Vec<CounterRow> {
        xdpath::stats::rows(&self.to_counters())
    }

    /// How `actual` differs from this, one line per differing counter;
    /// empty when they agree exactly.
    pub fn differences(&self, actual: &[Counter]) -> Vec<String> {
        let wanted = self.to_counters();
        let mut lines = Vec::new();
        for action in Action::ALL {
            for reason in Reason::ALL {
                let index = counter_index(action, reason) as usize;
                let want = wanted.get(index).copied().unwrap_or_default();
                let got = actual.get(index).copied().unwrap_or_default();
                if want != got {
                    lines.push(format!(
                        "{} {}: expected {} packets / {} bytes, counted {} / {}",
                        action.name(),
                        reason.name(),
                        want.packets,
                        want.bytes,
                        got.packets,
                        got.bytes
                    ));
                }
            }
        }
        lines
    }
}
