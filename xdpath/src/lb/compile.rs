//! From the operator's balancer state to the data path's: Maglev tables,
//! VIP and backend entries, and the plan of what to write given what the
//! maps hold.
//!
//! A VIP's new table is written to its idle ring and goes live with one
//! write of the VIP; a removed backend's slot is cleared only after every
//! VIP has stopped pointing at it. The tables depend only on addresses,
//! weights, table sizes and the seed — never on insertion order or on the
//! backend slots — so balancers behind one ECMP group agree.

use std::net::IpAddr;

use super::edit::parse_mac;
use super::install::CompiledLb;
use super::maglev::{build_table, MaglevBackend, NO_BACKEND};
use super::state::{BackendSpec, Encap, LbState, VipSpec};
use super::LbError;
use xdpath_core::lb::{
    mac_value, AllowKey, Backend, LbConfig, Vip, VipKey, BACKEND_OUT_OF_RING, ENCAP_GUE,
    ENCAP_IPIP, LB_ENABLED, LB_ESTABLISHED_BY_SLOT, LB_FIXED_NEXT_HOP, MAX_ALLOW_PREFIXES,
    MAX_RING_SIZE, VIP_ALLOW_LIST, VIP_NO_CONNTRACK, VIP_SAMPLED, VIP_SOURCE_HASH,
};
use xdpath_core::parse::ipv4_mapped;

/// An address as the data path stores it (IPv4-mapped for IPv4).
pub fn address_bytes(address: IpAddr) -> [u8; 16] {
    match address {
        IpAddr::V4(address) => ipv4_mapped(address.octets()),
        IpAddr::V6(address) => address.octets(),
    }
}

/// The VIP table key of a VIP.
pub fn vip_key(vip: &VipSpec) -> VipKey {
    VipKey {
        address: address_bytes(vip.id.address),
        port: vip.id.port,
        protocol: vip.id.protocol.number(),
        reserved: [0; 5],
    }
}

/// A backend's entry, as one of the VIP in `vip_slot`.
fn backend_entry(backend: &BackendSpec, vip_slot: u32) -> Backend {
    Backend {
        address: address_bytes(backend.address),
        generation: backend.generation,
        family: if backend.address.is_ipv4() { 4 } else { 6 },
        flags: if backend.effective_weight() == 0 {
            BACKEND_OUT_OF_RING
        } else {
            0
        },
        // Slots are below `MAX_VIPS` (32): the sum fits.
        vip: u16::try_from(vip_slot + 1).unwrap_or(0),
    }
}

/// The allow-list trie's entries of a VIP (none: every source).
pub fn allow_keys(vip: &VipSpec) -> impl Iterator<Item = AllowKey> + '_ {
    vip.allow.iter().map(move |prefix| {
        let family = if prefix.ipv4 { 4 } else { 6 };
        AllowKey::new(vip.slot, family, &prefix.address, prefix.mapped_length())
    })
}

/// Checks what single edits cannot: every backend's family has an outer
/// source prefix, and the allow lists fit their trie.
pub fn validate(state: &LbState) -> Result<(), LbError> {
    let allowed: usize = state.vips.iter().map(|vip| vip.allow.len()).sum();
    if allowed > MAX_ALLOW_PREFIXES as usize {
        return Err(LbError::TooManyAllowPrefixes { count: allowed });
    }
    for vip in &state.vips {
        for backend in &vip.backends {
            let (present, family, flag) = if backend.address.is_ipv4() {
                (state.settings.source_v4.is_some(), "IPv4", "v4")
            } else {
                (state.settings.source_v6.is_some(), "IPv6", "v6")
            };
            if !present {
                return Err(LbError::NoOuterSource {
                    backend: backend.address,
                    family,
                    flag,
                    encap: vip.encap.name(),
                });
            }
        }
    }
    Ok(())
}

/// A VIP's Maglev table: backend slot per table entry. Drained backends
/// (weight 0) get no entry.
pub fn vip_table(vip: &VipSpec, seed: u64) -> Result<Vec<u32>, LbError> {
    let pool: Vec<MaglevBackend> = vip
        .backends
        .iter()
        .map(|backend| MaglevBackend {
            address: address_bytes(backend.address),
            weight: backend.effective_weight(),
        })
        .collect();
    let table = build_table(&pool, vip.ring_size, seed).map_err(|source| LbError::Table {
        vip: vip.id,
        source,
    })?;
    Ok(table
        .into_iter()
        .map(|position| {
            vip.backends
                .get(position as usize)
                .map_or(NO_BACKEND, |backend| backend.index)
        })
        .collect())
}

/// What a VIP's table is built from: if it is unchanged, so is the table.
fn table_inputs(vip: &VipSpec, seed: u64) -> (u32, u64, Vec<(IpAddr, u32, u32)>) {
    let mut pool: Vec<(IpAddr, u32, u32)> = vip
        .backends
        .iter()
        .filter(|backend| backend.effective_weight() > 0)
        .map(|backend| (backend.address, backend.index, backend.effective_weight()))
        .collect();
    pool.sort_unstable();
    (vip.ring_size, seed, pool)
}

fn lb_config(state: &LbState) -> Result<LbConfig, LbError> {
    let mut config = LbConfig::default();
    if state.vips.is_empty() {
        return Ok(config);
    }
    config.flags = LB_ENABLED;
    if state
        .vips
        .iter()
        .all(|vip| vip.id.port != 0 && !vip.source_hash && !vip.no_conntrack)
    {
        config.flags |= LB_ESTABLISHED_BY_SLOT;
    }
    config.mtu = state.settings.mtu;
    if let Some(mac) = &state.settings.next_hop_mac {
        config.flags |= LB_FIXED_NEXT_HOP;
        config.next_hop_mac = mac_value(parse_mac(mac)?);
    }
    if let Some(prefix) = state.settings.source_v4 {
        config.source_v4 = prefix.address;
        config.source_v4_len = prefix.mapped_length();
    }
    if let Some(prefix) = state.settings.source_v6 {
        config.source_v6 = prefix.address;
        config.source_v6_len = prefix.mapped_length();
    }
    Ok(config)
}

/// Everything one commit writes and retires.
#[derive(Debug, Default)]
pub struct Plan {
    /// Written first (rings, backends), then VIPs and the config.
    pub compiled: CompiledLb,
    /// VIPs to delete (before anything is written: see `session::install`).
    pub retired_vips: Vec<VipKey>,
    /// Backend slots to clear after no VIP's live table points at them.
    pub retired_backends: Vec<u32>,
    /// VIP statistics slots to zero before their VIP goes live.
    pub new_vip_slots: Vec<u32>,
    /// Backend statistics slots to zero before their backend is used.
    pub new_backend_slots: Vec<u32>,
}

/// Compiles `desired` against what the maps hold (`installed`, or nothing
/// when `fresh`), choosing each changed VIP's idle ring; it updates
/// `desired`'s live rings to match. Fails before anything is written.
pub fn plan(installed: &LbState, desired: &mut LbState, fresh: bool) -> Result<Plan, LbError> {
    validate(desired)?;
    let mut plan = Plan {
        compiled: CompiledLb {
            config: lb_config(desired)?,
            ..CompiledLb::default()
        },
        ..Plan::default()
    };
    let seed = desired.settings.seed;
    for vip in &mut desired.vips {
        let before = installed
            .vip(&vip.id)
            .filter(|old| !fresh && old.slot == vip.slot);
        let table = vip_table(vip, seed)?;
        match before {
            Some(old) if table_inputs(old, installed.settings.seed) == table_inputs(vip, seed) => {
                vip.live_ring = old.live_ring;
            }
            Some(old) => {
                vip.live_ring = 1 - old.live_ring.min(1);
                plan.compiled.rings.push((ring_number(vip), table));
            }
            None => {
                plan.new_vip_slots.push(vip.slot);
                plan.compiled.rings.push((ring_number(vip), table));
            }
        }
        plan.compiled.allow.extend(allow_keys(vip));
        plan.compiled.sample_rates.push((vip.slot, vip.sample_rate));
        plan.compiled.vips.push((vip_key(vip), vip_entry(vip)));
        for backend in &vip.backends {
            let known = !fresh
                && installed
                    .vips
                    .iter()
                    .flat_map(|old| old.backends.iter())
                    .any(|old| old.index == backend.index && old.address == backend.address);
            if !known {
                plan.new_backend_slots.push(backend.index);
            }
            plan.compiled
                .backends
                .push((backend.index, backend_entry(backend, vip.slot)));
        }
    }
    if !fresh {
        for old in &installed.vips {
            if desired.vip(&old.id).is_none_or(|vip| vip.slot != old.slot) {
                plan.retired_vips.push(vip_key(old));
            }
            for backend in &old.backends {
                if plan
                    .compiled
                    .backends
                    .iter()
                    .all(|(index, _)| *index != backend.index)
                {
                    plan.retired_backends.push(backend.index);
                }
            }
        }
    }
    Ok(plan)
}

/// A VIP's entry in the VIP table (its live ring as `live_ring` says).
fn vip_entry(vip: &VipSpec) -> Vip {
    let mut value = Vip {
        index: vip.slot,
        ring: ring_number(vip),
        ring_size: vip.ring_size.min(MAX_RING_SIZE),
        gue_port: vip.gue_port,
        flags: 0,
        encap: match vip.encap {
            Encap::Ipip => ENCAP_IPIP,
            Encap::Gue => ENCAP_GUE,
        },
    };
    for (on, flag) in [
        (vip.source_hash, VIP_SOURCE_HASH),
        (vip.no_conntrack, VIP_NO_CONNTRACK),
        (!vip.allow.is_empty(), VIP_ALLOW_LIST),
        (vip.sample_rate != 0, VIP_SAMPLED),
    ] {
        if on {
            value.flags |= flag;
        }
    }
    value
}

/// The ring a VIP's live table is in.
fn ring_number(vip: &VipSpec) -> u32 {
    vip.slot * 2 + vip.live_ring.min(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::edit::{add_backend, add_vip, configure, del_backend, parse_vip, set_weight};
    use crate::lb::edit::{ConfigChange, VipOptions};

    fn options() -> VipOptions {
        VipOptions {
            encap: Encap::Ipip,
            gue_port: None,
            source_hash: false,
            no_conntrack: false,
            ring_size: Some(65_537),
            sample_rate: 0,
        }
    }

    fn configured() -> LbState {
        let mut state = LbState::default();
        configure(
            &mut state,
            &ConfigChange {
                source_v4: Some("172.16.0.0/16".into()),
                next_hop: Some("02:00:00:00:00:99".into()),
                ..ConfigChange::default()
            },
        )
        .expect("config");
        state
    }

    #[test]
    fn a_backend_needs_an_outer_source_of_its_family() {
        let mut state = configured();
        let vip = parse_vip("[2001:db8::10]:443/tcp").expect("vip");
        add_vip(&mut state, vip, options()).expect("vip");
        add_backend(&mut state, &vip, "2001:db8::5".parse().expect("v6"), 1).expect("edit");
        let installed = LbState::default();
        let error = plan(&installed, &mut state.clone(), false).expect_err("no v6 source");
        assert!(error.to_string().contains("--source-v6"), "{error}");
        // An IPv4 backend of an IPv6 VIP is fine: 6in4.
        let mut mixed = configured();
        add_vip(&mut mixed, vip, options()).expect("vip");
        add_backend(&mut mixed, &vip, "10.0.0.1".parse().expect("v4"), 1).expect("edit");
        plan(&installed, &mut mixed, false).expect("6in4");
    }

    #[test]
    fn only_changed_tables_are_rewritten_to_the_idle_ring() {
        let mut state = configured();
        let first = parse_vip("203.0.113.10:80/tcp").expect("vip");
        let second = parse_vip("203.0.113.10:443/tcp").expect("vip");
        for vip in [first, second] {
            add_vip(&mut state, vip, options()).expect("vip");
            for address in ["10.0.0.1", "10.0.0.2"] {
                add_backend(&mut state, &vip, address.parse().expect("a"), 1).expect("b");
            }
        }
        let fresh = plan(&LbState::default(), &mut state, true).expect("fresh");
        assert_eq!(fresh.compiled.rings.len(), 2);
        assert_eq!(fresh.new_backend_slots.len(), 4);
        let installed = state.clone();

        let mut desired = installed.clone();
        set_weight(&mut desired, &second, "10.0.0.2".parse().expect("a"), 0).expect("drain");
        let change = plan(&installed, &mut desired, false).expect("drain");
        assert_eq!(change.compiled.rings.len(), 1);
        let (ring, table) = &change.compiled.rings[0];
        assert_eq!(*ring, 3, "VIP slot 1's idle ring");
        let drained = desired
            .vip(&second)
            .and_then(|vip| vip.backend("10.0.0.2".parse().expect("a")))
            .expect("b")
            .index;
        assert!(table.iter().all(|slot| *slot != drained));
        assert!(
            change.retired_backends.is_empty(),
            "a drained backend stays"
        );
        assert!(change.new_backend_slots.is_empty());

        let mut removed = installed.clone();
        del_backend(&mut removed, &first, "10.0.0.1".parse().expect("a")).expect("del");
        let change = plan(&installed, &mut removed, false).expect("remove");
        assert_eq!(change.retired_backends, vec![0]);
        assert_eq!(change.compiled.rings[0].0, 1);
    }

    #[test]
    fn tables_do_not_depend_on_insertion_order_or_slots() {
        let addresses = ["10.0.0.1", "10.0.0.2", "2001:db8::3", "10.0.0.4"];
        let vip = parse_vip("203.0.113.10:80/tcp").expect("vip");
        let build = |order: &[usize], decoy_first: bool| {
            let mut state = configured();
            configure(
                &mut state,
                &ConfigChange {
                    source_v6: Some("2001:db8:ff::/64".into()),
                    ..ConfigChange::default()
                },
            )
            .expect("v6");
            // A VIP and backends added and removed first shift the slots.
            if decoy_first {
                let decoy = parse_vip("203.0.113.99:80/tcp").expect("decoy");
                add_vip(&mut state, decoy, options()).expect("decoy");
                add_backend(&mut state, &decoy, "10.9.9.9".parse().expect("a"), 1).expect("b");
            }
            add_vip(&mut state, vip, options()).expect("vip");
            for position in order {
                let address = addresses[*position].parse().expect("a");
                add_backend(&mut state, &vip, address, 1 + *position as u64).expect("b");
            }
            let spec = state.vip(&vip).expect("spec").clone();
            let table = vip_table(&spec, 0).expect("table");
            table
                .iter()
                .map(|index| {
                    spec.backends
                        .iter()
                        .find(|backend| backend.index == *index)
                        .map(|backend| backend.address)
                })
                .collect::<Vec<_>>()
        };
        let reference = build(&[0, 1, 2, 3], false);
        assert!(reference.iter().all(Option::is_some));
        assert_eq!(reference, build(&[3, 1, 0, 2], true));
    }
}
