//! `cargo fuzz run pcapng_reader`: see [`xdpath_fuzz::pcapng_reader`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdpath_fuzz::pcapng_reader(data));
