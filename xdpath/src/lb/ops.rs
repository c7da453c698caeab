//! The balancer changes the CLI and the daemon share, one per request
//! type of [`crate::api`]: each parses its request, opens the locked
//! session, changes the state and commits (which checks everything before
//! the first map write), so a refused change changes nothing and both
//! front ends give the same results.

use std::net::IpAddr;

use super::edit::{self, VipOptions};
use super::session::LbSession;
use super::state::{LbState, VipId};
use super::LbError;
use crate::api::requests::{BackendQuery, BackendWeight, NewVip, VipQuery};

/// Adds a VIP.
pub fn add_vip(request: &NewVip) -> Result<VipId, LbError> {
    let (id, options) = parse_new_vip(request)?;
    let mut session = LbSession::open()?;
    edit::add_vip(&mut session.state, id, options)?;
    session.commit()?;
    Ok(id)
}

/// Deletes a VIP and its backends.
pub fn del_vip(request: &VipQuery) -> Result<VipId, LbError> {
    let id = edit::parse_vip(&request.vip)?;
    let mut session = LbSession::open()?;
    edit::del_vip(&mut session.state, &id)?;
    session.commit()?;
    Ok(id)
}

/// Adds a backend to a VIP.
pub fn add_backend(request: &BackendWeight) -> Result<(VipId, IpAddr), LbError> {
    let (id, address) = parse_backend(&request.vip, &request.address)?;
    let mut session = LbSession::open()?;
    edit::add_backend(&mut session.state, &id, address, request.weight)?;
    session.commit()?;
    Ok((id, address))
}

/// Changes a backend's weight (0 drains it).
pub fn set_weight(request: &BackendWeight) -> Result<(VipId, IpAddr), LbError> {
    let (id, address) = parse_backend(&request.vip, &request.address)?;
    let mut session = LbSession::open()?;
    edit::set_weight(&mut session.state, &id, address, request.weight)?;
    session.commit()?;
    Ok((id, address))
}

/// Removes a backend: its flows move to the others.
pub fn del_backend(request: &BackendQuery) -> Result<(VipId, IpAddr), LbError> {
    let (id, address) = parse_backend(&request.vip, &request.address)?;
    let mut session = LbSession::open()?;
    edit::del_backend(&mut session.state, &id, address)?;
    session.commit()?;
    Ok((id, address))
}

/// A VIP and a backend address, parsed.
pub fn parse_backend(vip: &str, address: &str) -> Result<(VipId, IpAddr), LbError> {
    Ok((edit::parse_vip(vip)?, edit::parse_address(address)?))
}

/// A new VIP's address and options, parsed: what [`add_vip`] checks
/// before it reads any state, so a remote call can give the same errors
/// as a local one.
pub fn parse_new_vip(request: &NewVip) -> Result<(VipId, VipOptions), LbError> {
    let id = edit::parse_vip(&request.vip)?;
    let mut options = VipOptions {
        encap: request.encap()?,
        gue_port: request.gue_port,
        source_hash: false,
        no_conntrack: false,
        ring_size: request.ring_size,
    };
    edit::parse_flags(&request.flags.join(","), &mut options)?;
    Ok((id, options))
}

/// The kernel's FIB lookup from XDP answers only where forwarding is on;
/// without it every frame to a VIP would be dropped (`lb-no-route`).
pub fn forwarding_warnings(state: &LbState) -> Vec<String> {
    if state.settings.next_hop_mac.is_some() {
        return Vec::new();
    }
    let backends = || state.vips.iter().flat_map(|vip| vip.backends.iter());
    let mut warnings = Vec::new();
    for (ipv4, key) in [
        (true, "net/ipv4/conf/all/forwarding"),
        (false, "net/ipv6/conf/all/forwarding"),
    ] {
        if !backends().any(|backend| backend.address.is_ipv4() == ipv4) {
            continue;
        }
        let path = format!("/proc/sys/{key}");
        if std::fs::read_to_string(&path).is_ok_and(|value| value.trim() == "0") {
            warnings.push(format!(
                "{} is 0: the FIB lookup for {} backends fails and their traffic is dropped \
                 (lb-no-route); enable forwarding or set `xdpath lb config --next-hop MAC`",
                key.replace('/', "."),
                if ipv4 { "IPv4" } else { "IPv6" }
            ));
        }
    }
    warnings
}
