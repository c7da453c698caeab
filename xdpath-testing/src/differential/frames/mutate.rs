//! Mutating frames: random edits, mostly in the headers after the
//! Ethernet header, with the IPv4 checksum sometimes fixed after.

use super::super::headers::fix_ipv4_checksum;
use super::{Generator, EDGE_WORDS};

impl Generator {
    /// Applies `count` random edits to `frame`.
    pub fn mutate(&mut self, frame: &mut Vec<u8>, count: usize) {
        for _ in 0..count {
            self.mutate_once(frame);
        }
    }

    /// A position: mostly in the headers after the Ethernet header (an
    /// edit there reaches the parser's later stages; one in the Ethernet
    /// header mostly makes a non-IP frame).
    fn position(&mut self, length: usize) -> usize {
        match self.rng.below(10) {
            0 => self.rng.below(length.min(14)),
            1 => self.rng.below(length),
            _ if length > 14 => 14 + self.rng.below(length.min(96) - 14),
            _ => self.rng.below(length),
        }
    }

    fn mutate_once(&mut self, frame: &mut Vec<u8>) {
        let at = self.position(frame.len());
        match self.rng.below(10) {
            0 | 1 => {
                if let Some(byte) = frame.get_mut(at) {
                    *byte = self.rng.byte();
                }
            }
            2 => {
                if let Some(byte) = frame.get_mut(at) {
                    *byte ^= 1 << self.rng.below(8);
                }
            }
            3 => {
                let word = self.rng.pick(&EDGE_WORDS).to_be_bytes();
                if let Some(slot) = frame.get_mut(at..at + 2) {
                    slot.copy_from_slice(&word);
                }
            }
            4 => {
                let keep = self.rng.below(frame.len() + 1);
                frame.truncate(keep);
            }
            5 => {
                let extra = self.rng.below(64);
                frame.extend(self.rng.bytes(extra));
            }
            6 => {
                let count = 1 + self.rng.below(16);
                let extra = self.rng.bytes(count);
                let at = at.min(frame.len());
                frame.splice(at..at, extra);
            }
            7 => {
                let end = (at + 1 + self.rng.below(16)).min(frame.len());
                if at < end {
                    frame.drain(at..end);
                }
            }
            8 if !self.seeds.is_empty() => {
                // Splice: this frame's head, another seed's tail.
                let other = &self.seeds[self.rng.below(self.seeds.len())];
                let from = self.rng.below(other.len() + 1);
                frame.truncate(at);
                frame.extend_from_slice(&other[from..]);
            }
            _ => fix_ipv4_checksum(frame),
        }
    }
}
