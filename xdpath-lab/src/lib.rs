//! The xdpath lab: network-namespace test beds, traffic and servers to
//! drive them, the benchmarks (`xdpath bench`) and the demo (`xdpath
//! demo`). None of it is product code: the library (`xdpath`) does not
//! depend on it; the CLI uses it for `bench` and `demo`, and the tests for
//! their beds. [`signals`] (Ctrl-C as a flag) is here because the demo
//! and the CLI's long-running commands share it; the library takes stop
//! conditions as arguments instead.

pub mod bench;
pub mod demo;
pub mod flood;
pub mod servers;
pub mod signals;
pub mod testenv;
pub mod traffic;
