//! The interface a pinned XDP link is attached to and the program it runs,
//! read from the kernel (`BPF_OBJ_GET`, then `BPF_OBJ_GET_INFO_BY_FD`).
//! A link another tool detached (`bpftool link detach`, `BPF_LINK_DETACH`)
//! stays pinned but reports interface 0: its pin alone does not say the
//! program runs.

use std::os::fd::AsRawFd;
use std::path::Path;

use crate::bpf_syscall::{bpf, command};

/// `bpf_link_info.xdp.ifindex`: after `type`, `id` and `prog_id` (three
/// u32) the union starts 8-aligned, at byte 16.
const XDP_IFINDEX_OFFSET: usize = 16;

#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `bpf_link_info.prog_id`: after `type` and `id`.
const PROGRAM_ID_OFFSET: usize = 8;

/// The interface index the link pinned at `path` is attached to (0 when it
/// was detached); `None` when it cannot be read.
pub(super) fn xdp_link_ifindex(path: &Path) -> Option<u32> {
    word_at(path, XDP_IFINDEX_OFFSET).ok()
}

/// The id of the program the link pinned at `path` runs, or why it
/// cannot be read.
pub(super) fn link_program_id(path: &Path) -> Result<u32, String> {
    word_at(path, PROGRAM_ID_OFFSET)
}

/// The `u32` at `offset` of the link's `bpf_link_info`.
fn word_at(path: &Path, offset: usize) -> Result<u32, String> {
    let fd = super::reload::obj_get(path).map_err(|error| error.to_string())?;
    let mut info = [0u8; 64];
    let mut attr = InfoAttr {
        bpf_fd: u32::try_from(fd.as_raw_fd()).map_err(|error| error.to_string())?,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: `attr` is a valid bpf_attr for BPF_OBJ_GET_INFO_BY_FD; its
    // pointer refers to `info`, alive for the call and `info_len` long.
    unsafe { bpf(command::OBJ_GET_INFO_BY_FD, &mut attr) }
        .map_err(|error| format!("the link's info: {error}"))?;
    let bytes = info
        .get(offset..offset + 4)
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        .ok_or("the link's info is short")?;
    Ok(u32::from_ne_bytes(bytes))
}
