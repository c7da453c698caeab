//! `cargo fuzz run pcap_reader`: see [`xdpath_fuzz::pcap_reader`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdpath_fuzz::pcap_reader(data));
