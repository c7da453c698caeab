//! The fixtures' addresses and ports, and a program loaded with SYN
//! cookies on for the protected ports.

use super::*;

pub(crate) const SYN: u8 = 0x02;
pub(crate) const ACK: u8 = 0x10;
pub(crate) const PSH: u8 = 0x08;

pub(crate) const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub(crate) const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
pub(crate) const CLIENT4: [u8; 4] = [192, 0, 2, 1];
pub(crate) const SERVER4: [u8; 4] = [198, 51, 100, 2];
pub(crate) const CLIENT6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub(crate) const SERVER6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
pub(crate) const CLIENT_PORT: u16 = 40_000;
pub(crate) const SERVER_PORT: u16 = 8080;
pub(crate) const CLIENT_SEQ: u32 = 0x1234_5678;
/// MSS, SACK permitted, timestamps, NOP, window scale: what Linux sends.
pub(crate) const LINUX_SYN_OPTIONS: [u8; 20] = [
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
];

#[repr(transparent)]
#[derive(Clone, Copy)]
pub(crate) struct PodFilterConfig(FilterConfig);
// SAFETY: FilterConfig is #[repr(C)]: three u32 and four u8, no padding.
unsafe impl Pod for PodFilterConfig {}

pub(crate) fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "these tests need root");
}

/// Turns SYN-cookie mode on in a `FILTER_CONFIG` map.
pub(crate) fn enable_cookie_flag(map: &mut Map) {
    let mut config: Array<&mut MapData, PodFilterConfig> =
        Array::try_from(map).expect("FILTER_CONFIG is an array");
    let mut current = config.get(&0, 0).expect("read FILTER_CONFIG").0;
    current.flags |= FILTER_SYN_COOKIES;
    config
        .set(0, PodFilterConfig(current), 0)
        .expect("write FILTER_CONFIG");
}

/// Sets `ports` in a `SYNCOOKIE_PORTS` bitmap.
pub(crate) fn protect_ports(map: &mut Map, ports: &[u16]) {
    let mut bitmap: Array<&mut MapData, u64> =
        Array::try_from(map).expect("SYNCOOKIE_PORTS is an array");
    for &port in ports {
        let word = u32::from(port / 64);
        let value = bitmap.get(&word, 0).expect("read SYNCOOKIE_PORTS");
        bitmap
            .set(word, value | 1 << (port % 64), 0)
            .expect("write SYNCOOKIE_PORTS");
    }
}

/// An instance as freshly loaded (not attached; from the binary's pool,
/// every map put back) with cookies on for `SERVER_PORT`.
pub(crate) fn loaded_with_cookies() -> Reused {
    require_root();
    let mut program = Reused::take(InterfaceConfig::default()).expect("a fresh xdpath program");
    let ebpf = program.ebpf_mut();
    enable_cookie_flag(
        ebpf.map_mut(abi::map::FILTER_CONFIG)
            .expect(abi::map::FILTER_CONFIG),
    );
    protect_ports(
        ebpf.map_mut(abi::map::SYNCOOKIE_PORTS)
            .expect(abi::map::SYNCOOKIE_PORTS),
        &[SERVER_PORT],
    );
    program
}
