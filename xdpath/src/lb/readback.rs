//! Reading the balancer's maps back and comparing them with a desired
//! state: the config, every VIP entry (and no other) and the VIPs by
//! slot, every backend slot the state uses, and each VIP's live Maglev
//! ring.

use std::collections::HashMap;
use xdpath_core::abi;

use xdpath_core::lb::{LbConfig, Vip, VipKey, VipSlot, LB_ENABLED, MAX_RING_SIZE, MAX_VIPS};

use super::compile::plan;
use super::install::{bytes_of, CompiledLb};
use super::state::LbState;
use super::LbError;
use crate::control::kernel::KernelMaps;

/// Every difference between the maps and `desired`, one line each (empty:
/// the kernel balances exactly as the state says).
pub fn compare(maps: &KernelMaps, desired: &LbState) -> Result<Vec<String>, LbError> {
    let mut wanted = desired.clone();
    // The whole state as a fresh install would write it; the live rings
    // stay the ones the state names.
    let compiled = plan(&LbState::default(), &mut wanted, true)?.compiled;
    let mut differences = Vec::new();
    let mut config = [0u8; size_of::<LbConfig>()];
    maps.lookup(abi::map::LB_CONFIG, &0u32.to_ne_bytes(), &mut config)?;
    if config[..] != *bytes_of(&compiled.live_config()) {
        differences.push(if config.iter().all(|byte| *byte == 0) {
            "balancer settings: the kernel has none (its maps are new or were emptied)".into()
        } else {
            "balancer settings differ".into()
        });
    }
    // Every install seeds the new-flow table; a table made since (by an
    // upgrade's reload, its map new) has none and records no SYN.
    let balancing = compiled.live_config().flags & LB_ENABLED != 0;
    if balancing && super::install::new_flow_seed(maps)? == 0 {
        differences.push(
            "new-flow table: no seed, so no new flow is recorded and each frame of one \
             is placed by the Maglev table afresh (its map was made after the balancer \
             was installed)"
                .into(),
        );
    }
    let kernel: HashMap<Vec<u8>, Vec<u8>> = maps
        .entries(abi::map::VIPS, size_of::<VipKey>(), size_of::<Vip>())?
        .into_iter()
        .collect();
    let (mut missing, mut different) = (0usize, 0usize);
    for (key, vip) in &compiled.vips {
        match kernel.get(bytes_of(key)) {
            None => missing += 1,
            Some(value) if value[..] != *bytes_of(vip) => different += 1,
            Some(_) => {}
        }
    }
    let extra = (kernel.len() + missing).saturating_sub(compiled.vips.len());
    if missing + different + extra > 0 {
        differences.push(format!(
            "VIPs: {missing} of the state's {} missing from the kernel, {different} different, {extra} in the kernel that the state does not hold",
            compiled.vips.len()
        ));
    }
    let mut backends_off = 0usize;
    for (index, backend) in &compiled.backends {
        let mut value = vec![0u8; size_of_val(backend)];
        let found = maps.lookup(abi::map::BACKENDS, &index.to_ne_bytes(), &mut value)?;
        if !found || value[..] != *bytes_of(backend) {
            backends_off += 1;
        }
    }
    if backends_off > 0 {
        differences.push(format!(
            "backends: {backends_off} of the state's {} differ in the kernel",
            compiled.backends.len()
        ));
    }
    let allowed = super::install::allow_entries(maps)?;
    let wanted: std::collections::BTreeSet<Vec<u8>> = compiled
        .allow
        .iter()
        .map(|key| bytes_of(key).to_vec())
        .collect();
    if allowed != wanted {
        differences.push(format!(
            "allow lists: {} of the state's {} prefixes missing from the kernel, {} in the kernel that the state does not hold",
            wanted.difference(&allowed).count(),
            wanted.len(),
            allowed.difference(&wanted).count()
        ));
    }
    // The kind is fixed when the tables are made: a change that could not
    // reload every interface leaves the old kind in force.
    if let Ok(Some(kind)) = crate::dataplane::pinned_connection_table() {
        let asked = desired.settings.connection_table;
        if kind != asked {
            differences.push(format!(
                "connection tables: the kernel's are {kind}, the state asks for {asked} (run `xdpath lb config --connection-table {asked}` again)"
            ));
        }
    }
    let rates_off = rates_off(maps, &compiled)?;
    if rates_off > 0 {
        differences.push(format!(
            "sample rates: {rates_off} of the state's sampled VIPs have another rate in the kernel"
        ));
    }
    let (slots_missing, slots_stale) = vip_slots_off(maps, &compiled)?;
    if slots_missing + slots_stale > 0 {
        differences.push(format!(
            "VIPs by slot: {slots_missing} of the state's {} VIPs missing (their established flows take the VIP table's lookup, slower but right), {slots_stale} slots holding what the state does not (an established flow of such a VIP may be balanced by settings the VIP table no longer holds)",
            compiled.vips.len()
        ));
    }
    let rings_off = rings_off(maps, &compiled)?;
    if rings_off > 0 {
        differences.push(format!(
            "Maglev tables: {rings_off} of the state's {} differ in the kernel",
            compiled.rings.len()
        ));
    }
    Ok(differences)
}

/// How many VIPs sampled at their own rate have another in the kernel
/// (the rate of a VIP without `VIP_SAMPLED` is never read).
fn rates_off(maps: &KernelMaps, compiled: &CompiledLb) -> Result<usize, LbError> {
    let mut off = 0;
    for (slot, rate) in compiled.sample_rates.iter().filter(|(_, rate)| *rate != 0) {
        let mut value = [0u8; 4];
        let found = maps.lookup(abi::map::VIP_SAMPLE_RATES, &slot.to_ne_bytes(), &mut value)?;
        if !found || u32::from_ne_bytes(value) != *rate {
            off += 1;
        }
    }
    Ok(off)
}

/// `VIPS_BY_SLOT` against the compiled VIPs: how many VIPs' entries are
/// zero (a writer stopped between clearing and writing them), and how
/// many slots hold anything else but zero or what the state holds.
fn vip_slots_off(maps: &KernelMaps, compiled: &CompiledLb) -> Result<(usize, usize), LbError> {
    let wanted: HashMap<u32, VipSlot> = compiled.vip_slots().collect();
    let zero = VipSlot::default();
    let (mut missing, mut stale) = (0, 0);
    for slot in 0..MAX_VIPS {
        let mut held = vec![0u8; size_of::<VipSlot>()];
        maps.lookup(abi::map::VIPS_BY_SLOT, &slot.to_ne_bytes(), &mut held)?;
        let wants = wanted.get(&slot).copied().unwrap_or(zero);
        if held[..] == *bytes_of(&wants) {
            continue;
        }
        if held[..] == *bytes_of(&zero) {
            missing += 1;
        } else {
            stale += 1;
        }
    }
    Ok((missing, stale))
}

/// How many of the compiled live rings the kernel holds otherwise.
fn rings_off(maps: &KernelMaps, compiled: &CompiledLb) -> Result<usize, LbError> {
    let mut off = 0;
    for (ring, slots) in &compiled.rings {
        let slots = &slots[..slots.len().min(MAX_RING_SIZE as usize)];
        let read = maps.read_array_from(
            abi::map::MAGLEV_RINGS,
            ring * MAX_RING_SIZE,
            slots.len() as u32,
            4,
        )?;
        let wanted: Vec<u8> = slots.iter().flat_map(|slot| slot.to_ne_bytes()).collect();
        if read != wanted {
            off += 1;
        }
    }
    Ok(off)
}

/// Deletes the VIP entries the maps hold beyond `compiled`'s (after a
/// reinstall over maps that held something else).
pub fn remove_extra_vips(maps: &KernelMaps, compiled: &CompiledLb) -> Result<(), LbError> {
    let wanted: std::collections::HashSet<&[u8]> =
        compiled.vips.iter().map(|(key, _)| bytes_of(key)).collect();
    for (key, _) in maps.entries(abi::map::VIPS, size_of::<VipKey>(), size_of::<Vip>())? {
        if !wanted.contains(&key[..]) {
            maps.delete(abi::map::VIPS, &key)?;
        }
    }
    Ok(())
}
