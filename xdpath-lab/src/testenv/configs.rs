//! Configs for tests that need a large one: the size of the config a
//! hostile test killed half-way (issue 13, item 6).

use std::fmt::Write;

/// Rules in [`large_config`].
pub const LARGE_RULES: u32 = 2_000;
/// VIPs in [`large_config`].
pub const LARGE_VIPS: u32 = 32;
/// Backends of each VIP in [`large_config`].
pub const LARGE_BACKENDS: u32 = 120;
/// Backends of each VIP whose weight a variant changes (576 in all).
pub const LARGE_REWEIGHTED: u32 = 18;

/// A config for `interface` with [`LARGE_RULES`] rules and [`LARGE_VIPS`]
/// VIPs of [`LARGE_BACKENDS`] backends. Two variants differ in every
/// rule's port and in the weights of [`LARGE_REWEIGHTED`] backends of each
/// VIP, so a mix of two variants is told apart from either.
pub fn large_config(interface: &str, variant: u32) -> String {
    let mut text = format!(
        "[[interface]]\nname = \"{interface}\"\nmode = \"generic\"\n\n[filter]\ndefault = \"pass\"\n"
    );
    for id in 1..=LARGE_RULES {
        let port = 1_000 + (id + variant * 7) % 60_000;
        let _ = write!(
            text,
            "[[filter.rule]]\nid = {id}\nsrc = \"10.{}.{}.0/24\"\nproto = \"udp\"\ndport = {port}\naction = \"drop\"\n",
            id / 256,
            id % 256
        );
    }
    text.push_str("\n[lb]\nsource_v4 = \"172.16.0.0/16\"\nnext_hop = \"02:00:00:00:00:99\"\n");
    for vip in 0..LARGE_VIPS {
        let _ = write!(
            text,
            "[[lb.vip]]\nvip = \"203.0.113.{}:80/tcp\"\nring_size = 1009\n",
            vip + 1
        );
        for backend in 0..LARGE_BACKENDS {
            let weight = if backend < LARGE_REWEIGHTED {
                1 + (variant % 50)
            } else {
                1
            };
            let _ = write!(
                text,
                "[[lb.vip.backend]]\naddress = \"10.200.{vip}.{}\"\nweight = {weight}\n",
                backend + 1
            );
        }
    }
    text
}
