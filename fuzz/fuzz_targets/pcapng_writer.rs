//! `cargo fuzz run pcapng_writer`: see [`xdpath_fuzz::pcapng_writer`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdpath_fuzz::pcapng_writer(data));
