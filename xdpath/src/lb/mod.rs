//! The layer-4 load balancer's control side: the desired state of a
//! namespace ([`state`]), changes to it checked one by one ([`edit`]), its
//! compilation into the data path's maps with Maglev tables ([`compile`],
//! [`maglev`], [`install`]), one locked control call ([`session`]), the
//! changes the front ends share ([`ops`], through [`crate::api`]) and the
//! JSON they show ([`views`]). A refused change changes nothing: every
//! check runs before the first map write.

pub mod compile;
pub mod decap;
pub mod echo;
pub mod edit;
pub mod health;
pub mod install;
pub mod maglev;
pub mod ops;
pub mod owner;
pub mod readback;
pub mod session;
pub mod state;
mod state_check;
pub mod stats;
pub mod views;

use crate::text::quote;
use state::VipId;

/// The smallest path MTU `lb config --mtu` takes: Linux's smallest path
/// MTU for IPv4 (552, `ip_rt_min_pmtu`; a sender told less stops setting
/// DF) and the largest encapsulation (48 bytes, GUE over IPv6).
pub const MIN_PATH_MTU: u32 = 600;
/// The smallest path MTU with an IPv6 VIP: IPv6's minimum MTU (1280, RFC
/// 8200, which no sender goes below) and the largest encapsulation.
pub const MIN_PATH_MTU_V6: u32 = 1328;

/// Why a balancer command failed.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    /// A VIP did not parse.
    #[error(
        "invalid VIP {}: {why} (expected ADDRESS:PORT/tcp|udp, e.g. 203.0.113.10:80/tcp, \
         [2001:db8::10]:443/tcp, or * as the port for every port)",
        quote(text)
    )]
    VipSyntax {
        /// What was typed.
        text: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A backend address did not parse, or is no address to send a
    /// VIP's traffic to.
    #[error("invalid backend address {}: {why}", quote(text))]
    Address {
        /// What was typed.
        text: String,
        /// What is wrong.
        why: &'static str,
    },
    /// This host's addresses could not be listed (to refuse a VIP on one).
    #[error("cannot list this host's addresses: {source}")]
    LocalAddresses {
        /// Why.
        source: std::io::Error,
    },
    /// A new VIP on this host's own (or a loopback) address.
    #[error("VIP {vip} is refused: {why}")]
    LocalVip {
        /// The VIP.
        vip: VipId,
        /// Why.
        why: &'static str,
    },
    /// A VIP or backend written as an IPv4-mapped IPv6 address: the data
    /// path keeps IPv4 addresses in that form, so it would be the IPv4
    /// VIP or backend of the same address (and an IPv6 frame to or from
    /// one is malformed, never balanced).
    #[error(
        "{what} {address} is an IPv4-mapped IPv6 address: write it as {ipv4} (the data path \
         keeps IPv4 addresses in that form, and drops IPv6 frames to or from one as malformed)"
    )]
    MappedAddress {
        /// `VIP` or `backend`.
        what: &'static str,
        /// The address as written.
        address: std::net::IpAddr,
        /// Its IPv4 form.
        ipv4: std::net::Ipv4Addr,
    },
    /// A MAC address did not parse.
    #[error(
        "invalid MAC address {} (expected six hex bytes, e.g. 02:00:00:00:00:01)",
        quote(text)
    )]
    Mac {
        /// What was typed.
        text: String,
    },
    /// A prefix did not parse.
    #[error(transparent)]
    Prefix(#[from] crate::control::parse::ParseError),
    /// The VIP is already configured.
    #[error("VIP {vip} already exists")]
    VipExists {
        /// The VIP.
        vip: VipId,
    },
    /// No such VIP.
    #[error("no VIP {vip} (see `xdpath lb vip list`)")]
    NoSuchVip {
        /// The VIP asked for.
        vip: VipId,
    },
    /// The backend is already in the VIP's pool.
    #[error("backend {backend} is already in VIP {vip}")]
    BackendExists {
        /// The VIP.
        vip: VipId,
        /// The backend.
        backend: std::net::IpAddr,
    },
    /// No such backend in the pool.
    #[error("VIP {vip} has no backend {backend}")]
    NoSuchBackend {
        /// The VIP.
        vip: VipId,
        /// The backend asked for.
        backend: std::net::IpAddr,
    },
    /// A weight outside `0..=MAX_WEIGHT`.
    #[error(
        "weight {weight} is out of range (0-{}; 0 drains the backend)",
        maglev::MAX_WEIGHT
    )]
    Weight {
        /// The weight asked for.
        weight: u64,
    },
    /// The encapsulation needs an outer source of the backend's family.
    #[error(
        "backend {backend} is {family} but no {family} outer source prefix is configured, so \
         {encap} cannot carry traffic to it; set one with `xdpath lb config --source-{flag} PREFIX`"
    )]
    NoOuterSource {
        /// The backend.
        backend: std::net::IpAddr,
        /// `IPv4` or `IPv6`.
        family: &'static str,
        /// `v4` or `v6`.
        flag: &'static str,
        /// The VIP's encapsulation.
        encap: &'static str,
    },
    /// An outer source prefix of the wrong family.
    #[error("--source-{flag} needs an {family} prefix, not {prefix}")]
    SourceFamily {
        /// The prefix given.
        prefix: crate::control::parse::Cidr,
        /// `v4` or `v6`.
        flag: &'static str,
        /// `IPv4` or `IPv6`.
        family: &'static str,
    },
    /// A path MTU out of range.
    #[error(
        "--mtu {mtu} is out of range: 0 (only the egress device's MTU) or {MIN_PATH_MTU} to 65535"
    )]
    Mtu {
        /// The MTU given.
        mtu: u32,
    },
    /// A path MTU too small for an IPv6 VIP.
    #[error(
        "the path MTU {mtu} (lb config --mtu) is below {MIN_PATH_MTU_V6}, the least IPv6 VIP {vip} \
         needs (its clients' 1280-byte packets, encapsulated)"
    )]
    MtuForIpv6 {
        /// The MTU set or asked for.
        mtu: u32,
        /// The IPv6 VIP (the first, or the one being added).
        vip: VipId,
    },
    /// Too many VIPs.
    #[error("at most {} VIPs", xdpath_core::lb::MAX_VIPS)]
    TooManyVips,
    /// Too many backends.
    #[error("at most {} backends over all VIPs", xdpath_core::lb::MAX_BACKENDS)]
    TooManyBackends,
    /// The Maglev table cannot be built.
    #[error("VIP {vip}: {source}")]
    Table {
        /// The VIP.
        vip: VipId,
        /// Why.
        source: maglev::MaglevError,
    },
    /// More weighted backends than the VIP's table holds once the ones
    /// down for failing their checks come back.
    #[error(
        "VIP {vip}: {backends} weighted backends for table size {size}: at most size / 2 are \
         allowed (backends down for failing their health check count: each comes back when \
         healthy)"
    )]
    Overfull {
        /// The VIP.
        vip: VipId,
        /// Its weighted backends, up or down.
        backends: usize,
        /// Its table size.
        size: u32,
    },
    /// A health check that needs a port (tcp, http, udp) without one on
    /// an all-ports VIP.
    #[error(
        "VIP {vip}: a {kind} health check has {} (give one with --port)",
        health::NO_CHECK_PORT
    )]
    PortlessCheck {
        /// The VIP.
        vip: VipId,
        /// The check's kind.
        kind: &'static str,
    },
    /// GUE without a port, or a port without GUE.
    #[error("{0}")]
    Usage(String),
    /// An encapsulation that is neither IPIP nor GUE.
    #[error("encap {} is not ipip or gue", quote(given))]
    Encap {
        /// What was asked for.
        given: String,
    },
    /// An owner tag that is not one.
    #[error(
        "invalid owner {}: {why} (an owner is 1-64 letters, digits and _ . : -)",
        quote(text)
    )]
    Owner {
        /// What was given.
        text: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The VIP belongs to another owner (or to none, or the request names
    /// none): it is left alone.
    #[error("VIP {vip} is {}, not {}: it is left alone", owned_by(held.as_deref()), owned_by(wanted.as_deref()))]
    OwnerConflict {
        /// The VIP.
        vip: VipId,
        /// Its owner.
        held: Option<String>,
        /// The owner the request acts for.
        wanted: Option<String>,
    },
    /// The VIP is an owner's (from its document): it and its backends,
    /// allowed sources and health check change through that document, not
    /// one by one, as an owner's rules and limits.
    #[error("VIP {vip} is owner {}'s: change it through the owner's document (PUT /v1/owners/OWNER, `xdpath lb owner apply|delete`)", quote(owner))]
    OwnedVip {
        /// The VIP.
        vip: VipId,
        /// Its owner.
        owner: String,
    },
    /// No VIP or rate limit has this owner.
    #[error("no owner {} (see `xdpath owner list`)", quote(owner))]
    NoSuchOwner {
        /// The owner asked for.
        owner: String,
    },
    /// Too many allowed-source prefixes over all VIPs.
    #[error(
        "{count} allowed-source prefixes over all VIPs: at most {}",
        xdpath_core::lb::MAX_ALLOW_PREFIXES
    )]
    TooManyAllowPrefixes {
        /// How many the change would make.
        count: usize,
    },
    /// Locking, reading or saving state, or writing the maps failed.
    /// (Boxed: it is large, and every balancer result carries it.)
    #[error(transparent)]
    Control(Box<crate::control::ControlError>),
}

/// `owned by "x"`, or `unowned`.
fn owned_by(owner: Option<&str>) -> String {
    match owner {
        Some(owner) => format!("owned by {}", quote(owner)),
        None => "unowned".into(),
    }
}

impl From<crate::control::ControlError> for LbError {
    fn from(error: crate::control::ControlError) -> Self {
        Self::Control(Box::new(error))
    }
}

impl From<crate::control::apply::ApplyError> for LbError {
    fn from(error: crate::control::apply::ApplyError) -> Self {
        Self::Control(Box::new(error.into()))
    }
}

impl From<crate::control::state::StateError> for LbError {
    fn from(error: crate::control::state::StateError) -> Self {
        Self::Control(Box::new(error.into()))
    }
}
