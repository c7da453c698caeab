//! The interface a pinned XDP link is attached to, read from the kernel
//! (`BPF_OBJ_GET`, then `BPF_OBJ_GET_INFO_BY_FD`). A link another tool
//! detached (`bpftool link detach`, `BPF_LINK_DETACH`) stays pinned but
//! reports interface 0: its pin alone does not say the program runs.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
/// `bpf_link_info.xdp.ifindex`: after `type`, `id` and `prog_id` (three
/// u32) the union starts 8-aligned, at byte 16.
const XDP_IFINDEX_OFFSET: usize = 16;

#[repr(C)]
struct ObjGetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

fn bpf<T>(command: libc::c_long, attr: &mut T) -> libc::c_long {
    // SAFETY: `attr` is a valid bpf_attr for `command`; its pointers refer
    // to live buffers for the duration of the call.
    unsafe { libc::syscall(libc::SYS_bpf, command, attr as *mut T, size_of::<T>()) }
}

/// The interface index the link pinned at `path` is attached to (0 when it
/// was detached); `None` when it cannot be read.
pub(super) fn xdp_link_ifindex(path: &Path) -> Option<u32> {
    let path = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut get = ObjGetAttr {
        pathname: path.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    let fd = bpf(BPF_OBJ_GET, &mut get);
    if fd < 0 {
        return None;
    }
    // SAFETY: BPF_OBJ_GET returned a new descriptor that we own.
    let fd = unsafe { OwnedFd::from_raw_fd(i32::try_from(fd).ok()?) };
    let mut info = [0u8; 64];
    let mut attr = InfoAttr {
        bpf_fd: u32::try_from(fd.as_raw_fd()).ok()?,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    if bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) < 0 {
        return None;
    }
    let bytes = info.get(XDP_IFINDEX_OFFSET..XDP_IFINDEX_OFFSET + 4)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}
