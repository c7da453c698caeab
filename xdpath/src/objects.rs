//! The eBPF objects, built by `build.rs` and embedded in the binary. Their
//! program and map names are in [`xdpath_core::abi`].

/// The xdpath XDP program (`xdpath-ebpf/src/main.rs`).
pub static XDPATH: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpath.bpf.o"));

/// The empty XDP program, `return XDP_PASS` (`xdpath-ebpf/src/empty.rs`).
pub static EMPTY: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpath-empty.bpf.o"));

/// The AF_XDP redirect program (`xdpath-ebpf/src/xsk.rs`): every frame to
/// the socket in `XSKS[rx_queue_index]`, `XDP_PASS` when that slot is empty.
/// See [`crate::afxdp`].
pub static XSK: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpath-xsk.bpf.o"));

/// The minimal redirect program (`xdpath-ebpf/src/redirect.rs`), the
/// forwarding benchmark's peer.
pub static REDIRECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpath-redirect.bpf.o"));

/// The flood generator of the end-to-end tests (`xdpath-ebpf/src/flood.rs`),
/// run with live frames by `xdpath_lab::flood`.
pub static FLOOD: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpath-flood.bpf.o"));

/// The reference balancer (`xdpath-ebpf/src/reflb.rs`), the balancer
/// benchmark's peer: Katran's per-packet work, written for this project.
pub static REFLB: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpath-reflb.bpf.o"));
