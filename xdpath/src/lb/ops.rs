//! The balancer changes the CLI and the daemon share, one per request
//! type of [`crate::api`]: each parses its request, opens the locked
//! session, changes the state and commits (which checks everything before
//! the first map write), so a refused change changes nothing and both
//! front ends give the same results.

use std::net::IpAddr;

use super::edit::{self, ConfigChange, VipOptions};
use super::session::LbSession;
use super::state::{LbSettings, LbState, VipId};
use super::LbError;
use crate::api::requests::{
    BackendQuery, BackendWeight, HealthArgs, LbConfigArgs, NewVip, VipAllow, VipQuery,
};
use crate::control::parse::Cidr;

/// A new VIP's request, parsed: what [`add_vip`] and [`put_vip`] check
/// before they read any state, so a remote call can give the same errors
/// as a local one.
#[derive(Clone, Debug)]
pub struct ParsedVip {
    /// Address, port and protocol.
    pub id: VipId,
    /// Encapsulation, flags, table size.
    pub options: VipOptions,
    /// The allowed sources (empty: every source).
    pub allow: Vec<Cidr>,
    /// Its owner.
    pub owner: Option<String>,
}

/// Adds a VIP.
pub fn add_vip(request: &NewVip) -> Result<VipId, LbError> {
    let parsed = parse_new_vip(request)?;
    let mut session = LbSession::open()?;
    add_parsed(&mut session.state, &parsed)?;
    session.commit()?;
    Ok(parsed.id)
}

/// Adds a parsed VIP to `state`.
pub fn add_parsed(state: &mut LbState, parsed: &ParsedVip) -> Result<(), LbError> {
    edit::add_vip(state, parsed.id, parsed.options)?;
    edit::set_allow(state, &parsed.id, parsed.allow.clone())?;
    if let Some(spec) = state.vip_mut(&parsed.id) {
        spec.owner = parsed.owner.clone();
    }
    Ok(())
}

/// Creates a VIP, or gives the one there these options and allow list
/// (its pool, health check and connections stay): the same request again
/// changes nothing. A VIP of another owner (or unowned, when the request
/// names one; owned, when it names none) is refused. True when created.
pub fn put_vip(request: &NewVip) -> Result<(VipId, bool), LbError> {
    let parsed = parse_new_vip(request)?;
    let mut session = LbSession::open()?;
    let created = put_parsed(&mut session.state, &parsed)?;
    session.commit()?;
    Ok((parsed.id, created))
}

/// [`put_vip`] on `state`.
pub fn put_parsed(state: &mut LbState, parsed: &ParsedVip) -> Result<bool, LbError> {
    let Some(held) = state.vip(&parsed.id).map(|vip| vip.owner.clone()) else {
        add_parsed(state, parsed)?;
        return Ok(true);
    };
    if held != parsed.owner {
        return Err(LbError::OwnerConflict {
            vip: parsed.id,
            held,
            wanted: parsed.owner.clone(),
        });
    }
    edit::set_options(state, &parsed.id, &parsed.options)?;
    edit::set_allow(state, &parsed.id, parsed.allow.clone())?;
    Ok(false)
}

/// Replaces a VIP's allowed sources.
pub fn set_allow(request: &VipAllow) -> Result<VipId, LbError> {
    let (id, allow) = parse_allow_request(request)?;
    let mut session = LbSession::open()?;
    unowned(&session.state, &id)?;
    edit::set_allow(&mut session.state, &id, allow)?;
    session.commit()?;
    Ok(id)
}

/// A [`VipAllow`], parsed.
pub fn parse_allow_request(request: &VipAllow) -> Result<(VipId, Vec<Cidr>), LbError> {
    Ok((
        edit::parse_vip(&request.vip)?,
        edit::parse_allow(&request.allow)?,
    ))
}

/// Sets a VIP's health check (kind `off`: removes it, every backend back
/// in the table). Returns the VIP and whether it is now checked.
pub fn set_health(request: &HealthArgs) -> Result<(VipId, bool), LbError> {
    let id = edit::parse_vip(&request.vip)?;
    let check = edit::health_check(request)?;
    let checked = check.is_some();
    let mut session = LbSession::open()?;
    unowned(&session.state, &id)?;
    edit::set_health(&mut session.state, &id, check)?;
    session.commit()?;
    Ok((id, checked))
}

/// Removes a VIP's health check.
pub fn clear_health(request: &VipQuery) -> Result<VipId, LbError> {
    let id = edit::parse_vip(&request.vip)?;
    let mut session = LbSession::open()?;
    unowned(&session.state, &id)?;
    edit::set_health(&mut session.state, &id, None)?;
    session.commit()?;
    Ok(id)
}

/// Changes the shared settings (those the request gives); returns them
/// all. Checked whole before anything is written: a backend whose family
/// would lose its outer source refuses the change.
pub fn configure(request: &LbConfigArgs) -> Result<LbSettings, LbError> {
    let change = config_change(request);
    // Held across the table swap too: xdpathd's check must not read the
    // namespace between the save and the swap (it would see the old kind).
    let (_dir, _lock) = crate::control::session::lock_state_dir().map_err(LbError::from)?;
    let mut session = LbSession::open()?;
    edit::configure(&mut session.state, &change)?;
    let settings = session.state.settings.clone();
    session.commit()?;
    apply_connection_table(settings.connection_table)?;
    Ok(settings)
}

/// Makes the namespace's connection tables of the kind the saved
/// settings ask for (see [`crate::dataplane::set_connection_table`]):
/// after a commit that may have changed it.
pub fn apply_connection_table(table: crate::dataplane::ConnectionTable) -> Result<(), LbError> {
    crate::dataplane::set_connection_table(table)
        .map(drop)
        .map_err(|error| LbError::from(crate::control::ControlError::from(error)))
}

/// The edit an [`LbConfigArgs`] asks for.
pub fn config_change(request: &LbConfigArgs) -> ConfigChange {
    ConfigChange {
        source_v4: request.source_v4.clone(),
        source_v6: request.source_v6.clone(),
        next_hop: request.next_hop.clone(),
        seed: request.seed,
        connection_table: request.connection_table,
        mtu: request.mtu,
    }
}

/// Deletes a VIP and its backends.
pub fn del_vip(request: &VipQuery) -> Result<VipId, LbError> {
    let id = edit::parse_vip(&request.vip)?;
    let mut session = LbSession::open()?;
    unowned(&session.state, &id)?;
    edit::del_vip(&mut session.state, &id)?;
    session.commit()?;
    Ok(id)
}

/// Adds a backend to a VIP.
pub fn add_backend(request: &BackendWeight) -> Result<(VipId, IpAddr), LbError> {
    let (id, address) = parse_backend(&request.vip, &request.address)?;
    let mut session = LbSession::open()?;
    unowned(&session.state, &id)?;
    edit::add_backend(&mut session.state, &id, address, request.weight)?;
    session.commit()?;
    Ok((id, address))
}

/// Changes a backend's weight (0 drains it).
pub fn set_weight(request: &BackendWeight) -> Result<(VipId, IpAddr), LbError> {
    let (id, address) = parse_backend(&request.vip, &request.address)?;
    let mut session = LbSession::open()?;
    unowned(&session.state, &id)?;
    edit::set_weight(&mut session.state, &id, address, request.weight)?;
    session.commit()?;
    Ok((id, address))
}

/// Removes a backend: its flows move to the others.
pub fn del_backend(request: &BackendQuery) -> Result<(VipId, IpAddr), LbError> {
    let (id, address) = parse_backend(&request.vip, &request.address)?;
    let mut session = LbSession::open()?;
    unowned(&session.state, &id)?;
    edit::del_backend(&mut session.state, &id, address)?;
    session.commit()?;
    Ok((id, address))
}

/// Refuses a one-by-one change to an owner's VIP ([`LbError::OwnedVip`]);
/// a VIP not there is left for the edit to report.
fn unowned(state: &LbState, id: &VipId) -> Result<(), LbError> {
    match state.vip(id).and_then(|vip| vip.owner.clone()) {
        Some(owner) => Err(LbError::OwnedVip { vip: *id, owner }),
        None => Ok(()),
    }
}

/// A VIP and a backend address, parsed.
pub fn parse_backend(vip: &str, address: &str) -> Result<(VipId, IpAddr), LbError> {
    Ok((edit::parse_vip(vip)?, edit::parse_address(address)?))
}

/// A new VIP's request, parsed and checked (but for what needs the state).
pub fn parse_new_vip(request: &NewVip) -> Result<ParsedVip, LbError> {
    let id = edit::parse_vip(&request.vip)?;
    let mut options = VipOptions {
        encap: request.encap()?,
        gue_port: request.gue_port,
        source_hash: false,
        no_conntrack: false,
        ring_size: request.ring_size,
        sample_rate: edit::check_sample_rate(request.sample_rate.unwrap_or(0))?,
    };
    edit::parse_flags(&request.flags.join(","), &mut options)?;
    edit::gue_port_for(&options)?;
    if let Some(size) = options.ring_size {
        use super::maglev::{is_prime, MaglevError, MAX_TABLE_SIZE, MIN_TABLE_SIZE};
        let problem = if !(MIN_TABLE_SIZE..=MAX_TABLE_SIZE).contains(&size) {
            Some(MaglevError::SizeOutOfRange { size })
        } else if !is_prime(size) {
            Some(MaglevError::NotPrime { size })
        } else {
            None
        };
        if let Some(source) = problem {
            return Err(LbError::Table { vip: id, source });
        }
    }
    if let Some(owner) = &request.owner {
        edit::check_owner(owner)?;
    }
    Ok(ParsedVip {
        id,
        options,
        allow: edit::parse_allow(&request.allow)?,
        owner: request.owner.clone(),
    })
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
