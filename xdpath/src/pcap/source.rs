//! What the two formats' readers hand [`PcapReader`](super::PcapReader):
//! frames as the file holds them.

use std::io::{self, Read};

use super::link::Interface;
use super::Timestamp;

/// A frame as the file holds it, before it is made Ethernet.
#[derive(Debug)]
pub(super) struct RawFrame {
    pub(super) link_type: u32,
    pub(super) interface: Option<Interface>,
    pub(super) timestamp: Timestamp,
    pub(super) original_len: u32,
    pub(super) data: Vec<u8>,
    /// Cut to the snapshot length.
    pub(super) clipped: bool,
}

/// Reads until `buffer` is full or the input ends; returns the bytes read.
pub(super) fn read_full(input: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}
