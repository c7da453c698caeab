//! xdpath in user space: loading and attaching the XDP program, pinned
//! state, the control plane (filter, balancer, config), observation and
//! export, and the native runtimes (AF_XDP, in memory, pcap replay).
//!
//! The CLI (`xdpath-cli`, the `xdpath` binary) and the daemon (`xdpathd`)
//! are front ends over this library; the test beds, benchmarks and the demo
//! are in `xdpath-lab`, the kernel ≡ native harness in `xdpath-testing`.

pub mod afxdp;
pub mod api;
pub mod bpf_syscall;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod input;
pub mod lb;
pub(crate) mod netif;
pub mod netns;
pub mod objects;
pub mod observe;
pub mod pcap;
pub mod private_files;
pub mod reconcile;
pub mod recovery;
pub mod replay;
pub mod report;
pub mod stats;
pub mod text;
pub mod userspace;
