//! The control plane as front ends see it: one request type per operation
//! ([`requests`]) and the [`ControlPlane`] trait that carries them out,
//! either here on the locked state and pinned maps ([`Local`]) or through
//! the namespace's daemon ([`Remote`], over [`daemon`]'s socket) so that
//! its config generation, log and health checker see the change. Both run
//! the same checks first, so a request gets the same answer either way.
//!
//! The CLI picks one with [`control_plane`]; the daemon's handlers call
//! [`Local`] (they are the daemon).

pub mod daemon;
mod remote;
pub mod requests;

use std::net::IpAddr;

pub use remote::Remote;
pub use requests::{
    BackendQuery, BackendWeight, HealthArgs, LbConfigArgs, LimitArgs, Naming, NewBlock, NewVip,
    OwnerState, PrefixQuery, RequestError, RuleArgs, VipAllow, VipQuery,
};

use crate::control::parse::Cidr;
use crate::control::{ops, ControlError};
use crate::lb::owner::apply::OwnerChange;
use crate::lb::state::{LbSettings, VipId};
use crate::lb::{self, LbError};

/// The changes a front end can ask for, each with its one request type.
/// Reads (listings, counters) are not here: they read the pinned state
/// directly, which is the same whoever changed it.
pub trait ControlPlane {
    /// Adds a filter rule; returns its id.
    fn add_rule(&self, request: &RuleArgs) -> Result<u32, ControlError>;
    /// Deletes filter rule `id`.
    fn del_rule(&self, id: u32) -> Result<(), ControlError>;
    /// Adds a rate limit; returns its id.
    fn add_limit(&self, request: &LimitArgs) -> Result<u32, ControlError>;
    /// Deletes rate limit `id`.
    fn del_limit(&self, id: u32) -> Result<(), ControlError>;
    /// Blocks a prefix; returns it as parsed.
    fn add_block(&self, request: &NewBlock) -> Result<Cidr, ControlError>;
    /// Unblocks a prefix; returns it as parsed.
    fn del_block(&self, request: &PrefixQuery) -> Result<Cidr, ControlError>;
    /// Adds a VIP.
    fn add_vip(&self, request: &NewVip) -> Result<VipId, LbError>;
    /// Deletes a VIP and its backends.
    fn del_vip(&self, request: &VipQuery) -> Result<VipId, LbError>;
    /// Adds a backend to a VIP.
    fn add_backend(&self, request: &BackendWeight) -> Result<(VipId, IpAddr), LbError>;
    /// Changes a backend's weight.
    fn set_weight(&self, request: &BackendWeight) -> Result<(VipId, IpAddr), LbError>;
    /// Removes a backend from a VIP.
    fn del_backend(&self, request: &BackendQuery) -> Result<(VipId, IpAddr), LbError>;
    /// Creates a VIP or gives it these options and allowed sources; true
    /// when created.
    fn put_vip(&self, request: &NewVip) -> Result<(VipId, bool), LbError>;
    /// Replaces a VIP's allowed sources.
    fn set_allow(&self, request: &VipAllow) -> Result<VipId, LbError>;
    /// Sets (kind `off`: removes) a VIP's health check; true when checked.
    fn set_health(&self, request: &HealthArgs) -> Result<(VipId, bool), LbError>;
    /// Removes a VIP's health check.
    fn clear_health(&self, request: &VipQuery) -> Result<VipId, LbError>;
    /// Changes the balancer's shared settings; returns them all.
    fn configure_lb(&self, request: &LbConfigArgs) -> Result<LbSettings, LbError>;
    /// Makes an owner's state exactly `document`.
    fn put_owner(&self, owner: &str, document: &OwnerState) -> Result<OwnerChange, LbError>;
    /// Removes everything an owner made.
    fn delete_owner(&self, owner: &str) -> Result<OwnerChange, LbError>;
}

/// The control plane of this namespace: its daemon when one answers
/// here, else this process on the pinned state.
pub fn control_plane() -> Box<dyn ControlPlane> {
    match daemon::socket() {
        Some(socket) => Box::new(Remote::new(socket)),
        None => Box::new(Local),
    }
}

/// Changes made by this process: it takes the namespace's lock, changes
/// the state and installs it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Local;

impl ControlPlane for Local {
    fn add_rule(&self, request: &RuleArgs) -> Result<u32, ControlError> {
        ops::add_rule(request)
    }

    fn del_rule(&self, id: u32) -> Result<(), ControlError> {
        ops::del_rule(id)
    }

    fn add_limit(&self, request: &LimitArgs) -> Result<u32, ControlError> {
        ops::add_limit(request)
    }

    fn del_limit(&self, id: u32) -> Result<(), ControlError> {
        ops::del_limit(id)
    }

    fn add_block(&self, request: &NewBlock) -> Result<Cidr, ControlError> {
        ops::add_block(request)
    }

    fn del_block(&self, request: &PrefixQuery) -> Result<Cidr, ControlError> {
        ops::del_block(request)
    }

    fn add_vip(&self, request: &NewVip) -> Result<VipId, LbError> {
        lb::ops::add_vip(request)
    }

    fn del_vip(&self, request: &VipQuery) -> Result<VipId, LbError> {
        lb::ops::del_vip(request)
    }

    fn add_backend(&self, request: &BackendWeight) -> Result<(VipId, IpAddr), LbError> {
        lb::ops::add_backend(request)
    }

    fn set_weight(&self, request: &BackendWeight) -> Result<(VipId, IpAddr), LbError> {
        lb::ops::set_weight(request)
    }

    fn del_backend(&self, request: &BackendQuery) -> Result<(VipId, IpAddr), LbError> {
        lb::ops::del_backend(request)
    }

    fn put_vip(&self, request: &NewVip) -> Result<(VipId, bool), LbError> {
        lb::ops::put_vip(request)
    }

    fn set_allow(&self, request: &VipAllow) -> Result<VipId, LbError> {
        lb::ops::set_allow(request)
    }

    fn set_health(&self, request: &HealthArgs) -> Result<(VipId, bool), LbError> {
        lb::ops::set_health(request)
    }

    fn clear_health(&self, request: &VipQuery) -> Result<VipId, LbError> {
        lb::ops::clear_health(request)
    }

    fn configure_lb(&self, request: &LbConfigArgs) -> Result<LbSettings, LbError> {
        lb::ops::configure(request)
    }

    fn put_owner(&self, owner: &str, document: &OwnerState) -> Result<OwnerChange, LbError> {
        lb::owner::apply::put_owner(owner, document)
    }

    fn delete_owner(&self, owner: &str) -> Result<OwnerChange, LbError> {
        lb::owner::apply::delete_owner(owner)
    }
}
