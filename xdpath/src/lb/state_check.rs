//! What a balancer state file that parses may still get wrong: the kernel
//! places each VIP by its slot and each backend by its index, so two in
//! one place, or one past a map's end, cannot be installed (the install
//! failed part way with the kernel's E2BIG) or, worse, install as one
//! (two VIPs sharing a slot share a ring and counters, and read back as
//! enforced exactly: hostile lb F11). Every edit keeps these; only a
//! damaged or hand-edited file breaks them, and such a file is refused
//! whole, before anything is installed from it.

use std::collections::BTreeSet;

use xdpath_core::lb::{MAX_BACKENDS, MAX_RING_SIZE, MAX_VIPS};

use super::state::LbState;

impl crate::control::state::StateFile for LbState {
    const KIND: &'static str = "lb";
    const LEGACY_KEYS: &'static [&'static str] = &["settings", "vips", "next_generation"];

    fn check(&self) -> Result<(), String> {
        check(self)
    }
}

/// Whether `state` can be installed as it stands; why not.
pub(super) fn check(state: &LbState) -> Result<(), String> {
    if state.vips.len() > MAX_VIPS as usize {
        return Err(format!("{} VIPs (at most {MAX_VIPS})", state.vips.len()));
    }
    let (mut slots, mut ids, mut indexes) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for vip in &state.vips {
        let id = vip.id;
        if vip.slot >= MAX_VIPS || !slots.insert(vip.slot) {
            return Err(format!(
                "VIP {id}: slot {} is past the last ({}) or another VIP's",
                vip.slot,
                MAX_VIPS - 1
            ));
        }
        if !ids.insert(id) {
            return Err(format!("VIP {id} is there twice"));
        }
        if vip.live_ring > 1 {
            return Err(format!("VIP {id}: live ring {} (0 or 1)", vip.live_ring));
        }
        if vip.ring_size == 0 || vip.ring_size > MAX_RING_SIZE {
            return Err(format!(
                "VIP {id}: table size {} (1 to {MAX_RING_SIZE})",
                vip.ring_size
            ));
        }
        let mut addresses = BTreeSet::new();
        for backend in &vip.backends {
            let address = backend.address;
            if !addresses.insert(address) {
                return Err(format!("VIP {id}: backend {address} is there twice"));
            }
            if backend.index >= MAX_BACKENDS || !indexes.insert(backend.index) {
                return Err(format!(
                    "VIP {id}: backend {address}: index {} is past the last ({}) or another backend's",
                    backend.index,
                    MAX_BACKENDS - 1
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(json: &str) -> LbState {
        serde_json::from_str(json).expect("a state")
    }

    const TWO_VIPS: &str = r#"{"settings":{},"next_generation":3,"vips":[
        {"id":{"address":"203.0.113.10","port":80,"protocol":"tcp"},"encap":"ipip","ring_size":65537,"slot":0,
         "backends":[{"address":"10.0.0.1","weight":1,"index":0,"generation":1},
                     {"address":"10.0.0.2","weight":1,"index":1,"generation":2}]},
        {"id":{"address":"203.0.113.11","port":80,"protocol":"tcp"},"encap":"ipip","ring_size":65537,"slot":1,
         "backends":[{"address":"10.0.0.1","weight":1,"index":2,"generation":3}]}]}"#;

    #[test]
    fn a_state_as_the_edits_keep_it_passes() {
        assert_eq!(check(&state(TWO_VIPS)), Ok(()));
    }

    #[test]
    fn slots_and_indexes_past_the_maps_or_shared_are_refused() {
        let cases = [
            (
                r#""slot":1,"#,
                r#""slot":0,"#,
                "slot 0 is past the last (31) or another VIP's",
            ),
            (r#""slot":1,"#, r#""slot":99,"#, "slot 99"),
            (
                r#""index":2,"#,
                r#""index":1,"#,
                "index 1 is past the last (4095) or another backend's",
            ),
            (r#""index":2,"#, r#""index":5000,"#, "index 5000"),
            (
                r#""203.0.113.11""#,
                r#""203.0.113.10""#,
                "VIP 203.0.113.10:80/tcp is there twice",
            ),
            (
                r#""10.0.0.2""#,
                r#""10.0.0.1""#,
                "backend 10.0.0.1 is there twice",
            ),
            (
                r#""ring_size":65537,"slot":1"#,
                r#""ring_size":0,"slot":1"#,
                "table size 0",
            ),
        ];
        for (from, to, says) in cases {
            let damaged = TWO_VIPS.replacen(from, to, 1);
            assert_ne!(damaged, TWO_VIPS, "{from}");
            let why = check(&state(&damaged)).expect_err(to);
            assert!(why.contains(says), "{to}: {why}");
        }
    }

    #[test]
    fn more_vips_than_the_kernel_holds_are_refused() {
        let mut many = state(TWO_VIPS);
        let template = many.vips[1].clone();
        many.vips = (0..=MAX_VIPS)
            .map(|slot| {
                let mut vip = template.clone();
                vip.slot = slot;
                vip.id.port = 1000 + slot as u16;
                vip.backends.clear();
                vip
            })
            .collect();
        let why = check(&many).expect_err("33 VIPs");
        assert!(why.contains("33 VIPs (at most 32)"), "{why}");
    }
}
