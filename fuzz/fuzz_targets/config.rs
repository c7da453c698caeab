//! `cargo fuzz run config`: see [`xdpath_fuzz::config`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdpath_fuzz::config(data));
