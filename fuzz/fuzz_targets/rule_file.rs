//! `cargo fuzz run rule_file`: see [`xdpath_fuzz::rule_file`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdpath_fuzz::rule_file(data));
