//! `cargo fuzz run packet`: see [`xdpath_fuzz::packet`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdpath_fuzz::packet(data));
