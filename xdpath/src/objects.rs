//! The eBPF objects, built by `build.rs` and embedded in the binary.

/// The xdpath XDP program (`xdpath-ebpf/src/main.rs`).
pub static XDPATH: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpath.bpf.o"));

/// The empty XDP program, `return XDP_PASS` (`xdpath-ebpf/src/empty.rs`).
pub static EMPTY: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpath-empty.bpf.o"));

/// The AF_XDP redirect program (`xdpath-ebpf/src/xsk.rs`): every frame to
/// the socket in `XSKS[rx_queue_index]`, `XDP_PASS` when that slot is empty.
/// See [`crate::afxdp`].
pub static XSK: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpath-xsk.bpf.o"));

/// Name of the entry point in [`XDPATH`].
pub const XDPATH_PROGRAM: &str = "xdpath";
/// Name of the filter stage in [`XDPATH`] (reached by tail call).
pub const FILTER_PROGRAM: &str = "xdpath_filter";
/// Name of the SYN-cookie stage in [`XDPATH`] (reached by tail call from the
/// filter stage).
pub const SYNCOOKIE_PROGRAM: &str = "xdpath_syncookie";
/// The balancing stage (decapsulation on a backend, the load balancer).
pub const BALANCE_PROGRAM: &str = "xdpath_balance";
/// The forwarding stage (FIB lookup, rewrite, redirect).
pub const FORWARD_PROGRAM: &str = "xdpath_forward";
/// Name of the steering stage (to a CPU or an AF_XDP socket) in [`XDPATH`].
pub const STEER_PROGRAM: &str = "xdpath_steer";
/// Name of the entry point in [`EMPTY`].
pub const EMPTY_PROGRAM: &str = "xdpath_empty";
/// Name of the entry point in [`XSK`].
pub const XSK_PROGRAM: &str = "xdpath_xsk";
/// Name of the socket map in [`XSK`] (an `XSKMAP` of 64 entries, indexed by
/// receive queue).
pub const XSK_MAP: &str = "XSKS";
/// Name of the flag map in [`XSK`] (one `u32`): bit
/// [`XSK_NEIGHBOURS_TO_STACK`] sends ARP and IPv6 neighbour discovery to
/// the stack instead of the socket.
pub const XSK_FLAGS_MAP: &str = "XSK_FLAGS";
/// The flag of [`XSK_FLAGS_MAP`] that keeps neighbour discovery in the
/// kernel.
pub const XSK_NEIGHBOURS_TO_STACK: u32 = 1;

/// The minimal redirect program (`xdpath-ebpf/src/redirect.rs`), the
/// forwarding benchmark's peer.
pub static REDIRECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpath-redirect.bpf.o"));
/// Name of the entry point in [`REDIRECT`].
pub const REDIRECT_PROGRAM: &str = "xdpath_redirect";

/// The flood generator of the end-to-end tests (`xdpath-ebpf/src/flood.rs`),
/// run with live frames by [`crate::flood`].
pub static FLOOD: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpath-flood.bpf.o"));
/// Name of the entry point in [`FLOOD`].
pub const FLOOD_PROGRAM: &str = "xdpath_flood";
