//! The balancer's part of an apply: the config's `[lb]` turned into the
//! `lb` commands' edits on a copy of the saved state, so that what stays
//! keeps its slot (shared by the apply and by what it refuses up front).

use crate::lb::edit::{self, ConfigChange, VipOptions};
use crate::lb::state::{Encap, LbSettings, LbState, VipId, VipSpec};
use crate::lb::LbError;

/// Turns `state` into `desired` with the `lb` commands' edits: VIPs
/// removed, settings, VIPs added or their options changed in place (their slot
/// and backends stay), then per VIP backends removed, reweighted, added.
/// The VIPs owners made (`lb::owner`) are left alone; a config VIP one of
/// them holds is refused.
pub fn edit_lb(state: &mut LbState, desired: &LbState) -> Result<(), LbError> {
    if let Some(held) = desired.vips.iter().find_map(|wanted| {
        state
            .vip(&wanted.id)
            .filter(|have| have.owner.is_some() && have.owner != wanted.owner)
    }) {
        return Err(LbError::OwnerConflict {
            vip: held.id,
            held: held.owner.clone(),
            wanted: None,
        });
    }
    let gone: Vec<VipId> = state
        .vips
        .iter()
        .filter(|vip| vip.owner.is_none() && desired.vip(&vip.id).is_none())
        .map(|vip| vip.id)
        .collect();
    for id in &gone {
        edit::del_vip(state, id)?;
    }
    // After the VIPs it drops are gone (an IPv6 one no longer holds the
    // path MTU up), before the ones it adds (their backends need the
    // outer sources).
    configure_lb(state, &desired.settings)?;
    for wanted in &desired.vips {
        add_or_update_vip(state, wanted)?;
        if state.vip(&wanted.id).map(|vip| &vip.health) != Some(&wanted.health) {
            edit::set_health(state, &wanted.id, wanted.health.clone())?;
        }
        edit_backends(state, wanted)?;
    }
    Ok(())
}

/// `lb config` with every setting of `settings`.
fn configure_lb(state: &mut LbState, settings: &LbSettings) -> Result<(), LbError> {
    let prefix = |prefix: Option<crate::control::parse::Cidr>| {
        Some(prefix.map_or("none".into(), |prefix| prefix.to_string()))
    };
    edit::configure(
        state,
        &ConfigChange {
            source_v4: prefix(settings.source_v4),
            source_v6: prefix(settings.source_v6),
            next_hop: Some(
                settings
                    .next_hop_mac
                    .clone()
                    .unwrap_or_else(|| "fib".into()),
            ),
            seed: Some(settings.seed),
            connection_table: Some(settings.connection_table),
            mtu: Some(u32::from(settings.mtu)),
        },
    )
}

/// Adds the VIP `wanted` (with `lb vip add`), or sets the options of the
/// one already there.
fn add_or_update_vip(state: &mut LbState, wanted: &VipSpec) -> Result<(), LbError> {
    match state.vip_mut(&wanted.id) {
        None => {
            let options = VipOptions {
                encap: wanted.encap,
                gue_port: (wanted.encap == Encap::Gue).then_some(wanted.gue_port),
                source_hash: wanted.source_hash,
                no_conntrack: wanted.no_conntrack,
                ring_size: Some(wanted.ring_size),
                sample_rate: wanted.sample_rate,
            };
            edit::add_vip(state, wanted.id, options)?;
            edit::set_allow(state, &wanted.id, wanted.allow.clone())?;
        }
        Some(have) => {
            // No `lb` command changes a VIP's options; the compiler
            // rebuilds its table and entry when they change.
            have.encap = wanted.encap;
            have.gue_port = wanted.gue_port;
            have.source_hash = wanted.source_hash;
            have.no_conntrack = wanted.no_conntrack;
            have.ring_size = wanted.ring_size;
            have.sample_rate = wanted.sample_rate;
            have.allow = wanted.allow.clone();
        }
    }
    Ok(())
}

/// Gives the VIP `wanted`'s backends: removes those it lacks, then
/// reweights or adds the others.
fn edit_backends(state: &mut LbState, wanted: &VipSpec) -> Result<(), LbError> {
    let have: Vec<(std::net::IpAddr, u32)> = state
        .vip(&wanted.id)
        .map(|vip| {
            vip.backends
                .iter()
                .map(|backend| (backend.address, backend.weight))
                .collect()
        })
        .unwrap_or_default();
    for (address, _) in &have {
        if wanted.backend(*address).is_none() {
            edit::del_backend(state, &wanted.id, *address)?;
        }
    }
    for backend in &wanted.backends {
        match have.iter().find(|(address, _)| *address == backend.address) {
            Some((_, weight)) if *weight == backend.weight => {}
            Some(_) => edit::set_weight(state, &wanted.id, backend.address, backend.weight.into())?,
            None => edit::add_backend(state, &wanted.id, backend.address, backend.weight.into())?,
        }
    }
    Ok(())
}
