//! `lb config`: the settings every VIP shares.

use super::super::state::{LbState, VipId};
use super::super::LbError;
use super::{format_mac, parse_mac};
use crate::control::parse::{parse_cidr, Cidr};

/// What `lb config` changes; `None` leaves a setting alone.
#[derive(Clone, Debug, Default)]
pub struct ConfigChange {
    /// `--source-v4`: a prefix, or `none` to remove it.
    pub source_v4: Option<String>,
    /// `--source-v6`.
    pub source_v6: Option<String>,
    /// `--next-hop`: `fib` or a MAC.
    pub next_hop: Option<String>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--connection-table`.
    pub connection_table: Option<crate::dataplane::ConnectionTable>,
    /// `--mtu`: 0 for the device's alone.
    pub mtu: Option<u32>,
}

fn parse_source(text: &str, ipv4: bool) -> Result<Option<Cidr>, LbError> {
    if text == "none" {
        return Ok(None);
    }
    let prefix = parse_cidr(text)?;
    if prefix.ipv4 != ipv4 {
        return Err(LbError::SourceFamily {
            prefix,
            flag: if ipv4 { "v4" } else { "v6" },
            family: if ipv4 { "IPv4" } else { "IPv6" },
        });
    }
    Ok(Some(prefix))
}

/// Applies an `lb config` change.
pub fn configure(state: &mut LbState, change: &ConfigChange) -> Result<(), LbError> {
    if let Some(text) = &change.source_v4 {
        state.settings.source_v4 = parse_source(text, true)?;
    }
    if let Some(text) = &change.source_v6 {
        state.settings.source_v6 = parse_source(text, false)?;
    }
    if let Some(text) = &change.next_hop {
        state.settings.next_hop_mac = match text.as_str() {
            "fib" => None,
            mac => Some(format_mac(parse_mac(mac)?)),
        };
    }
    if let Some(seed) = change.seed {
        state.settings.seed = seed;
    }
    if let Some(table) = change.connection_table {
        state.settings.connection_table = table;
    }
    // Only a new MTU is checked: one already saved (a config sent again)
    // stays as it is.
    if let Some(mtu) = change
        .mtu
        .filter(|mtu| *mtu != u32::from(state.settings.mtu))
    {
        let in_range = mtu == 0 || (crate::lb::MIN_PATH_MTU..=65535).contains(&mtu);
        let mtu = u16::try_from(mtu)
            .ok()
            .filter(|_| in_range)
            .ok_or(LbError::Mtu { mtu })?;
        let ipv6_vip = state.vips.iter().find(|vip| vip.id.address.is_ipv6());
        path_mtu_fits(mtu, ipv6_vip.map(|vip| vip.id))?;
        state.settings.mtu = mtu;
    }
    Ok(())
}

/// Refuses a path MTU (0: the device's) the IPv6 VIP `vip` cannot work
/// under.
pub(super) fn path_mtu_fits(mtu: u16, vip: Option<VipId>) -> Result<(), LbError> {
    let mtu = u32::from(mtu);
    match vip {
        Some(vip) if mtu != 0 && mtu < crate::lb::MIN_PATH_MTU_V6 => {
            Err(LbError::MtuForIpv6 { mtu, vip })
        }
        _ => Ok(()),
    }
}
