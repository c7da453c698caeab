//! Frames and samples that the unit tests of the observation modules
//! share.

use xdpath_core::observe::RecordMeta;
use xdpath_core::{Action, Reason};

use super::Sample;

/// The first bytes of an Ethernet frame carrying IPv4: zero MAC
/// addresses, then an IPv4 header (no options, no checksum) of
/// `total_length` carrying `protocol` from `source` to `destination`.
/// The transport header, if any, is the caller's to append.
pub(crate) fn ipv4_frame(
    protocol: u8,
    total_length: u8,
    source: [u8; 4],
    destination: [u8; 4],
) -> Vec<u8> {
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, total_length, 0, 0, 0, 0, 64]);
    frame.extend_from_slice(&[protocol, 0, 0]);
    frame.extend_from_slice(&source);
    frame.extend_from_slice(&destination);
    frame
}

/// A sample of `data`, the start of a frame of `frame_len` bytes sampled
/// 1 in `sample_rate`, taken at `unix_ns`; the rest of its metadata zero.
pub(crate) fn sample_of(data: Vec<u8>, frame_len: u32, sample_rate: u32, unix_ns: u64) -> Sample {
    Sample {
        meta: RecordMeta {
            frame_len,
            sample_rate,
            ..Default::default()
        },
        unix_ns,
        data,
    }
}

/// `sample` as the data path reports it from interface `ifindex`, with
/// the verdict it gave the frame.
pub(crate) fn with_verdict(
    mut sample: Sample,
    ifindex: u32,
    action: Action,
    reason: Reason,
) -> Sample {
    sample.meta.ifindex = ifindex;
    sample.meta.action = action as u8;
    sample.meta.reason = reason as u8;
    sample
}
