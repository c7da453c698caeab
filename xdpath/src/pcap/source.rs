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
    /// Bytes of frame check sequence the frame ends with (pcap's FCS bits,
    /// pcapng's `if_fcslen`): not part of what XDP sees.
    pub(super) fcs_len: u8,
}

impl RawFrame {
    /// The frame without its frame check sequence, as a NIC hands it to
    /// XDP (it strips the FCS): fed to the pipeline with it, the 4 bytes
    /// would read as frame data — a frame whose IP length runs past its
    /// end would pass, and every byte count be 4 too high.
    pub(super) fn without_fcs(mut self) -> Self {
        let fcs = u32::from(self.fcs_len);
        if fcs > 0 {
            self.original_len = self.original_len.saturating_sub(fcs);
            self.data.truncate(self.original_len as usize);
            self.fcs_len = 0;
        }
        self
    }
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
