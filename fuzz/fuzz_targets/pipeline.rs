//! `cargo fuzz run pipeline`: see [`xdpath_fuzz::pipeline`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdpath_fuzz::pipeline(data));
