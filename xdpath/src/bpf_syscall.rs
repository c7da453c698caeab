//! The `bpf(2)` system call itself, for what aya 0.14 does not do or keeps
//! to itself: element and batch operations on maps by descriptor
//! (`control::kernel`, `kernel_batch`), opening a pinned object and
//! updating a link (`dataplane::reload`), a link's info
//! (`dataplane::link_info`) and test runs (the lab's balancer benchmark).
//! Each caller declares the `bpf_attr` of its command as a `#[repr(C)]`
//! struct of the leading fields it uses; the kernel takes the rest as zero.

use std::io;

/// The commands used, by their number in the kernel's `enum bpf_cmd`.
pub mod command {
    /// `BPF_MAP_LOOKUP_ELEM`.
    pub const MAP_LOOKUP_ELEM: libc::c_long = 1;
    /// `BPF_MAP_UPDATE_ELEM`.
    pub const MAP_UPDATE_ELEM: libc::c_long = 2;
    /// `BPF_MAP_DELETE_ELEM`.
    pub const MAP_DELETE_ELEM: libc::c_long = 3;
    /// `BPF_MAP_GET_NEXT_KEY`.
    pub const MAP_GET_NEXT_KEY: libc::c_long = 4;
    /// `BPF_OBJ_GET`: opens a pinned object.
    pub const OBJ_GET: libc::c_long = 7;
    /// `BPF_PROG_TEST_RUN`.
    pub const PROG_TEST_RUN: libc::c_long = 10;
    /// `BPF_OBJ_GET_INFO_BY_FD`.
    pub const OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    /// `BPF_MAP_LOOKUP_BATCH` (Linux 5.6+).
    pub const MAP_LOOKUP_BATCH: libc::c_long = 24;
    /// `BPF_MAP_LOOKUP_AND_DELETE_BATCH` (Linux 5.6+).
    pub const MAP_LOOKUP_AND_DELETE_BATCH: libc::c_long = 25;
    /// `BPF_MAP_UPDATE_BATCH` (Linux 5.6+).
    pub const MAP_UPDATE_BATCH: libc::c_long = 26;
    /// `BPF_LINK_UPDATE`.
    pub const LINK_UPDATE: libc::c_long = 29;
}

/// The `bpf_attr` of the element commands (lookup, update, delete, next
/// key): the map, pointers to a key and a value, the update flags.
#[repr(C)]
pub struct ElementAttr {
    /// The map's descriptor.
    pub map_fd: u32,
    /// Padding, zero.
    pub pad: u32,
    /// Address of the key.
    pub key: u64,
    /// Address of the value (of the next key, for `MAP_GET_NEXT_KEY`).
    pub value: u64,
    /// `BPF_ANY`, `BPF_NOEXIST` or `BPF_EXIST` for updates.
    pub flags: u64,
}

/// The `bpf_attr` of the batch commands: position tokens in and out, the
/// key and value buffers, how many entries (the kernel writes back how
/// many it did), the map.
#[repr(C)]
pub struct BatchAttr {
    /// Address of the position token to go on from; 0: the start.
    pub in_batch: u64,
    /// Address where the kernel writes the next position token.
    pub out_batch: u64,
    /// Address of the keys.
    pub keys: u64,
    /// Address of the values.
    pub values: u64,
    /// Entries in the buffers; entries done, after the call.
    pub count: u32,
    /// The map's descriptor.
    pub map_fd: u32,
    /// Flags of each element.
    pub elem_flags: u64,
    /// Flags of the call, zero.
    pub flags: u64,
}

/// Calls `bpf(command, attr, size_of::<A>())` and returns what the kernel
/// returns: a new descriptor for the commands that make one, else 0. The
/// kernel may write results back into `attr`.
///
/// # Safety
///
/// `attr` must be a `bpf_attr` of `command` (its leading fields, in the
/// kernel's layout), and every pointer in it must refer to memory of the
/// sizes it states, alive for the call and writable where the command
/// writes.
pub unsafe fn bpf<A>(command: libc::c_long, attr: &mut A) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is valid for `command`, as the caller promised; the
    // size passed is its own.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            attr as *mut A,
            std::mem::size_of::<A>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}
