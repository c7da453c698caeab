//! Writing a balancer configuration into the kernel's maps and into the
//! native tables, from one compiled form.

use std::collections::BTreeSet;
use xdpath_core::abi;

use xdpath_core::lb::{
    AllowKey, Backend, LbConfig, NewFlowSlot, Vip, VipKey, VipSlot, MAX_RING_SIZE, MAX_VIPS,
    NEW_FLOW_SEED,
};
use xdpath_core::NativeTables;

use crate::control::apply::ApplyError;
use crate::control::kernel::KernelMaps;

/// A balancer configuration in the data path's terms.
#[derive(Clone, Debug, Default)]
pub struct CompiledLb {
    /// Global settings.
    pub config: LbConfig,
    /// VIPs.
    pub vips: Vec<(VipKey, Vip)>,
    /// Maglev rings by ring number: backend index per slot.
    pub rings: Vec<(u32, Vec<u32>)>,
    /// Backends by index.
    pub backends: Vec<(u32, Backend)>,
    /// The allow lists' trie entries (of VIPs with `VIP_ALLOW_LIST`).
    pub allow: Vec<AllowKey>,
    /// Each VIP's sample rate by slot (0: its interface's).
    pub sample_rates: Vec<(u32, u32)>,
}

/// The bytes of a `#[repr(C)]` map value without padding.
pub(crate) fn bytes_of<T: Copy>(value: &T) -> &[u8] {
    // SAFETY: the balancer's map types are repr(C) with no padding bytes
    // (every one spells its reserved bytes out), so all bytes are
    // initialised.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}

impl CompiledLb {
    /// Writes rings, backends and allow lists first and the VIPs and config
    /// last, so nothing points at a slot before it is filled; the VIPs by
    /// slot are cleared where they change before anything is written and
    /// written after the VIP table ([`CompiledLb::clear_changed_vip_slots`]).
    pub fn install_kernel(&self, maps: &KernelMaps) -> Result<(), ApplyError> {
        self.clear_changed_vip_slots(maps)?;
        self.install_allow(maps)?;
        for (ring, slots) in &self.rings {
            let slots = &slots[..slots.len().min(MAX_RING_SIZE as usize)];
            let bytes: Vec<u8> = slots.iter().flat_map(|slot| slot.to_ne_bytes()).collect();
            maps.write_array(abi::map::MAGLEV_RINGS, ring * MAX_RING_SIZE, &bytes, 4)?;
        }
        for (index, backend) in &self.backends {
            maps.update(abi::map::BACKENDS, &index.to_ne_bytes(), bytes_of(backend))?;
        }
        for (slot, rate) in &self.sample_rates {
            maps.update(
                abi::map::VIP_SAMPLE_RATES,
                &slot.to_ne_bytes(),
                &rate.to_ne_bytes(),
            )?;
        }
        for (key, vip) in &self.vips {
            maps.update(abi::map::VIPS, bytes_of(key), bytes_of(vip))?;
        }
        for (slot, entry) in self.vip_slots() {
            maps.update(
                abi::map::VIPS_BY_SLOT,
                &slot.to_ne_bytes(),
                bytes_of(&entry),
            )?;
        }
        seed_new_flows(maps)?;
        maps.update(
            abi::map::LB_CONFIG,
            &0u32.to_ne_bytes(),
            bytes_of(&self.live_config()),
        )
    }

    /// What `VIPS_BY_SLOT` holds once this configuration is installed:
    /// each VIP's key and entry in its slot (the others zero).
    pub fn vip_slots(&self) -> impl Iterator<Item = (u32, VipSlot)> + '_ {
        self.vips
            .iter()
            .map(|(key, vip)| (vip.index, VipSlot::new(*key, *vip)))
    }

    /// Zeroes each `VIPS_BY_SLOT` entry that this configuration changes
    /// (a VIP's settings, a VIP moved or gone). Done before any other
    /// write, and before a leaving VIP is deleted (`session::install`): a
    /// zero slot sends an established flow's frames through the VIP
    /// table's lookup, so whatever point a writer stops at, the fast path
    /// balances by no settings the VIP table does not hold (`VipSlot`).
    /// An unchanged entry is left as it is.
    pub fn clear_changed_vip_slots(&self, maps: &KernelMaps) -> Result<(), ApplyError> {
        let wanted: Vec<(u32, VipSlot)> = self.vip_slots().collect();
        let zero = VipSlot::default();
        for slot in 0..MAX_VIPS {
            let mut held = vec![0u8; size_of::<VipSlot>()];
            maps.lookup(abi::map::VIPS_BY_SLOT, &slot.to_ne_bytes(), &mut held)?;
            let wants = wanted
                .iter()
                .find(|(at, _)| *at == slot)
                .map_or(zero, |(_, entry)| *entry);
            if held != bytes_of(&zero) && held != bytes_of(&wants) {
                maps.update(abi::map::VIPS_BY_SLOT, &slot.to_ne_bytes(), bytes_of(&zero))?;
            }
        }
        Ok(())
    }

    /// Makes the allow-list trie hold exactly [`CompiledLb::allow`]:
    /// entries it should not hold are removed first, then the missing ones
    /// added, so while a list changes from A to B the VIP takes no source
    /// beyond A and B's common part, and a slot's new VIP never inherits
    /// its old one's sources (fail closed; the VIPs are written after).
    fn install_allow(&self, maps: &KernelMaps) -> Result<(), ApplyError> {
        let wanted: BTreeSet<&[u8]> = self.allow.iter().map(bytes_of).collect();
        let present = allow_entries(maps)?;
        for key in present
            .iter()
            .filter(|key| !wanted.contains(key.as_slice()))
        {
            maps.delete(abi::map::VIP_ALLOW, key)?;
        }
        for key in wanted
            .iter()
            .filter(|key| !present.iter().any(|have| have.as_slice() == **key))
        {
            maps.update(abi::map::VIP_ALLOW, key, &[1u8])?;
        }
        Ok(())
    }

    /// The config with the filter of VIP addresses filled in.
    pub fn live_config(&self) -> LbConfig {
        let mut config = self.config;
        config.set_vip_addresses(self.vips.iter().map(|(key, _)| &key.address));
        config
    }

    /// The same into the native tables.
    pub fn install_native(&self, tables: &mut NativeTables) {
        for (ring, slots) in &self.rings {
            tables.lb.rings.insert(*ring, slots.clone());
        }
        for (index, backend) in &self.backends {
            tables.lb.backends.insert(*index, *backend);
        }
        tables.lb.allow.clear();
        for key in &self.allow {
            tables.lb.allow(key);
        }
        tables.lb.sample_rates = self.sample_rates.iter().copied().collect();
        for (key, vip) in &self.vips {
            tables.lb.vips.insert(*key, *vip);
        }
        if tables.lb.new_flow_seed == 0 {
            tables.lb.new_flow_seed = random_seed();
        }
        tables.lb.config = self.live_config();
    }
}

/// Gives the new-flow table its seed if it has none yet (a table just
/// created): a random word, kept while the table lives, so that a sender
/// cannot choose flows that share a slot and a tag (`lb::NewFlowSlot`).
/// Two installs at once may both write one; the later wins, and the few
/// flows placed under the other meanwhile are placed again at their ACK.
fn seed_new_flows(maps: &KernelMaps) -> Result<(), ApplyError> {
    if new_flow_seed(maps)? != 0 {
        return Ok(());
    }
    let seeded = NewFlowSlot {
        tag: random_seed(),
        ..NewFlowSlot::default()
    };
    maps.update(
        abi::map::NEW_FLOW_TABLE,
        &NEW_FLOW_SEED.to_ne_bytes(),
        bytes_of(&seeded),
    )
}

/// The kernel's new-flow seed (zero: none yet). A native build that must
/// place flows as the kernel does takes this one (`NativeLb::new_flow_seed`).
pub fn new_flow_seed(maps: &KernelMaps) -> Result<u64, ApplyError> {
    let mut entry = [0u8; size_of::<NewFlowSlot>()];
    maps.lookup(
        abi::map::NEW_FLOW_TABLE,
        &NEW_FLOW_SEED.to_ne_bytes(),
        &mut entry,
    )?;
    let mut tag = [0u8; 8];
    tag.copy_from_slice(entry.get(..8).unwrap_or(&[0; 8]));
    Ok(u64::from_ne_bytes(tag))
}

/// A random nonzero word (std's per-process random hash keys).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish() | 1
}

/// The keys the kernel's allow-list trie holds, as bytes.
pub(crate) fn allow_entries(maps: &KernelMaps) -> Result<BTreeSet<Vec<u8>>, ApplyError> {
    Ok(maps
        .entries(abi::map::VIP_ALLOW, size_of::<AllowKey>(), 1)?
        .into_iter()
        .map(|(key, _)| key)
        .collect())
}
