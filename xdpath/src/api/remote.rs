//! [`Remote`]: the changes sent to the namespace's daemon over its socket.
//! Each request is checked here first, with the same parsers the daemon
//! runs, so a mistake gets the same one-line error as a local change, and
//! the request travels as the JSON of its own type.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::daemon::{call, query_value};
use super::{
    BackendQuery, BackendWeight, ControlPlane, HealthArgs, LbConfigArgs, LimitArgs, NewBlock,
    NewVip, OwnerState, PrefixQuery, RuleArgs, VipAllow, VipQuery,
};
use crate::control::parse::{parse_cidr, parse_duration, Cidr};
use crate::control::{ops, ControlError};
use crate::lb::owner::apply::OwnerChange;
use crate::lb::state::{LbSettings, VipId};
use crate::lb::{self, LbError};

/// The daemon listening on `socket`.
#[derive(Clone, Debug)]
pub struct Remote {
    socket: PathBuf,
}

impl Remote {
    /// The daemon on `socket`.
    pub fn new(socket: PathBuf) -> Self {
        Self { socket }
    }

    /// One call; the daemon's answer, or its refusal as an error.
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, ControlError> {
        Ok(call(&self.socket, method, path, body.as_ref())?)
    }

    /// A request body: the JSON of its type.
    fn body(request: &impl Serialize) -> Result<Option<Value>, ControlError> {
        serde_json::to_value(request)
            .map(Some)
            .map_err(|error| ControlError::Usage(error.to_string()))
    }

    /// The id a `POST` answered with.
    fn id(&self, answer: &Value) -> Result<u32, ControlError> {
        answer["id"]
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| {
                ControlError::from(super::daemon::DaemonError::Protocol {
                    socket: self.socket.clone(),
                    why: format!("no id in the answer {answer}"),
                })
            })
    }
}

impl ControlPlane for Remote {
    fn add_rule(&self, request: &RuleArgs) -> Result<u32, ControlError> {
        request.to_spec()?;
        self.id(&self.send("POST", "/v1/rules", Self::body(request)?)?)
    }

    fn del_rule(&self, id: u32) -> Result<(), ControlError> {
        self.send("DELETE", &format!("/v1/rules/{id}"), None)
            .map(drop)
    }

    fn add_limit(&self, request: &LimitArgs) -> Result<u32, ControlError> {
        ops::limit_spec(request, 1)?;
        self.id(&self.send("POST", "/v1/ratelimits", Self::body(request)?)?)
    }

    fn del_limit(&self, id: u32) -> Result<(), ControlError> {
        self.send("DELETE", &format!("/v1/ratelimits/{id}"), None)
            .map(drop)
    }

    fn add_block(&self, request: &NewBlock) -> Result<Cidr, ControlError> {
        let prefix = parse_cidr(&request.prefix)?;
        request.ttl.as_deref().map(parse_duration).transpose()?;
        self.send("POST", "/v1/blocklist", Self::body(request)?)?;
        Ok(prefix)
    }

    fn del_block(&self, request: &PrefixQuery) -> Result<Cidr, ControlError> {
        let prefix = parse_cidr(&request.prefix)?;
        let mut path = format!("/v1/blocklist?prefix={}", query_value(&request.prefix));
        if let Some(vni) = &request.vni {
            path.push_str(&format!("&vni={}", query_value(vni)));
        }
        self.send("DELETE", &path, None)?;
        Ok(prefix)
    }

    fn add_vip(&self, request: &NewVip) -> Result<VipId, LbError> {
        let parsed = lb::ops::parse_new_vip(request)?;
        self.send("POST", "/v1/vips", Self::body(request)?)?;
        Ok(parsed.id)
    }

    fn del_vip(&self, request: &VipQuery) -> Result<VipId, LbError> {
        let id = lb::edit::parse_vip(&request.vip)?;
        let path = format!("/v1/vips?vip={}", query_value(&request.vip));
        self.send("DELETE", &path, None)?;
        Ok(id)
    }

    fn add_backend(&self, request: &BackendWeight) -> Result<(VipId, IpAddr), LbError> {
        let parsed = lb::ops::parse_backend(&request.vip, &request.address)?;
        self.send("POST", "/v1/backends", Self::body(request)?)?;
        Ok(parsed)
    }

    fn set_weight(&self, request: &BackendWeight) -> Result<(VipId, IpAddr), LbError> {
        let parsed = lb::ops::parse_backend(&request.vip, &request.address)?;
        self.send("PUT", "/v1/backends", Self::body(request)?)?;
        Ok(parsed)
    }

    fn del_backend(&self, request: &BackendQuery) -> Result<(VipId, IpAddr), LbError> {
        let parsed = lb::ops::parse_backend(&request.vip, &request.address)?;
        let path = format!(
            "/v1/backends?vip={}&address={}",
            query_value(&request.vip),
            query_value(&request.address)
        );
        self.send("DELETE", &path, None)?;
        Ok(parsed)
    }

    fn put_vip(&self, request: &NewVip) -> Result<(VipId, bool), LbError> {
        let parsed = lb::ops::parse_new_vip(request)?;
        let answer = self.send("PUT", "/v1/vips", Self::body(request)?)?;
        Ok((parsed.id, answer["created"].as_bool().unwrap_or(false)))
    }

    fn set_allow(&self, request: &VipAllow) -> Result<VipId, LbError> {
        let (id, _) = lb::ops::parse_allow_request(request)?;
        self.send("PUT", "/v1/vips/allow", Self::body(request)?)?;
        Ok(id)
    }

    fn set_health(&self, request: &HealthArgs) -> Result<(VipId, bool), LbError> {
        let id = lb::edit::parse_vip(&request.vip)?;
        let checked = lb::edit::health_check(request)?.is_some();
        self.send("PUT", "/v1/vips/health", Self::body(request)?)?;
        Ok((id, checked))
    }

    fn clear_health(&self, request: &VipQuery) -> Result<VipId, LbError> {
        let id = lb::edit::parse_vip(&request.vip)?;
        let path = format!("/v1/vips/health?vip={}", query_value(&request.vip));
        self.send("DELETE", &path, None)?;
        Ok(id)
    }

    fn configure_lb(&self, request: &LbConfigArgs) -> Result<LbSettings, LbError> {
        let mut scratch = lb::state::LbState::default();
        lb::edit::configure(&mut scratch, &lb::ops::config_change(request))?;
        self.send("PUT", "/v1/lb/config", Self::body(request)?)?;
        // Reads are the state's, whoever changed it.
        Ok(lb::session::LbSession::read()?.state.settings)
    }

    fn put_owner(&self, owner: &str, document: &OwnerState) -> Result<OwnerChange, LbError> {
        let desired = lb::owner::parse_document(owner, document)?;
        let path = format!("/v1/owners/{}", query_value(owner));
        let answer = self.send("PUT", &path, Self::body(document)?)?;
        Ok(OwnerChange {
            owner: owner.to_string(),
            changed: answer["changed"].as_bool().unwrap_or(true),
            vips: desired.vips.iter().map(|vip| vip.parsed.id).collect(),
            limits: desired.limits.len(),
            rules: desired.rules.len(),
        })
    }

    fn delete_owner(&self, owner: &str) -> Result<OwnerChange, LbError> {
        lb::edit::check_owner(owner)?;
        let path = format!("/v1/owners/{}", query_value(owner));
        let answer = self.send("DELETE", &path, None)?;
        Ok(OwnerChange {
            owner: owner.to_string(),
            changed: answer["changed"].as_bool().unwrap_or(true),
            vips: Vec::new(),
            limits: 0,
            rules: 0,
        })
    }
}
