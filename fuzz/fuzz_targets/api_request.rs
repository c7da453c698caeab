//! `cargo fuzz run api_request`: see [`xdpath_fuzz::api_request`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdpath_fuzz::api_request(data));
