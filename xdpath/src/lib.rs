//! xdpath in user space: loading and attaching the XDP program, pinned
//! state, the native runtimes (in memory and pcap replay), benchmarks, the
//! demo and the network-namespace test environment.
//!
//! The CLI (`xdpath`) is a thin layer over this library.

pub mod afxdp;
pub mod bench;
pub mod bench_flood;
pub mod bench_forward;
pub mod bench_lb;
pub mod bench_observe;
pub mod bench_userspace;
pub mod config;
pub mod control;
pub mod daemon_client;
pub mod dataplane;
pub mod demo;
pub mod demo_lb;
pub mod demo_userspace;
pub mod differential;
pub mod flood;
pub mod input;
pub mod lb;
pub mod netns;
pub mod objects;
pub mod observe;
pub mod pcap;
pub mod private_files;
pub mod reconcile;
pub mod replay;
pub mod servers;
pub mod signals;
pub mod stats;
pub mod testenv;
pub mod testenv_configs;
pub mod testenv_lb;
pub mod testenv_router;
pub mod text;
pub mod traffic;
pub mod usage;
pub mod userspace;
