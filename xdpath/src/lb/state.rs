//! The desired balancer state of a network namespace, in operator terms
//! (addresses, ports, weights). It is kept as JSON at
//! `/var/lib/xdpath/<netns id>/lb.json` beside the filter's state, and compiled
//! to the data path's maps by [`super::compile`].

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::control::parse::Cidr;

/// The state file's name inside a namespace's directory.
pub const LB_STATE_FILE: &str = "lb.json";

/// The transport protocol of a VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L4 {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

impl L4 {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// How frames reach a VIP's backends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encap {
    /// IP in IP: protocol 4 (IPv4 inside) or 41 (IPv6 inside).
    #[default]
    Ipip,
    /// Generic UDP Encapsulation, variant 1, to a UDP port.
    Gue,
}

impl Encap {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ipip => "ipip",
            Self::Gue => "gue",
        }
    }
}

/// What identifies a VIP: address, port (0: every port) and protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VipId {
    /// The address clients connect to.
    pub address: IpAddr,
    /// The destination port; 0 for every port.
    pub port: u16,
    /// TCP or UDP.
    pub protocol: L4,
}

impl fmt::Display for VipId {
    /// `203.0.113.10:80/tcp`, `[2001:db8::10]:443/tcp`, `203.0.113.10:*/udp`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.address {
            IpAddr::V4(address) => write!(formatter, "{address}")?,
            IpAddr::V6(address) => write!(formatter, "[{address}]")?,
        }
        if self.port == 0 {
            write!(formatter, ":*/{}", self.protocol.name())
        } else {
            write!(formatter, ":{}/{}", self.port, self.protocol.name())
        }
    }
}

/// One backend of a VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendSpec {
    /// Where its traffic is encapsulated to.
    pub address: IpAddr,
    /// Relative weight, 0 to `MAX_WEIGHT`; 0 drains it (no new flows,
    /// established ones stay).
    pub weight: u32,
    /// Its slot in the data path's backend array (and counters).
    pub index: u32,
    /// Tells the slot's successive owners apart in the connection table.
    pub generation: u32,
    /// Failed its VIP's health check: out of the table like a drained
    /// backend (established flows stay) until it passes again. Set by the
    /// daemon's health checker.
    #[serde(default)]
    pub down: bool,
}

impl BackendSpec {
    /// The weight the table is built with: 0 while down.
    pub fn effective_weight(&self) -> u32 {
        if self.down {
            0
        } else {
            self.weight
        }
    }
}

/// How a VIP's backends are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// A TCP connection is accepted.
    Tcp,
    /// An HTTP GET answers with the expected status.
    Http,
    /// An ICMP (ICMPv6) echo is answered.
    Ping,
    /// A UDP datagram to the port is not refused (no ICMP port
    /// unreachable comes back).
    Udp,
}

impl CheckKind {
    /// Every kind, as requests name them.
    pub const ALL: [Self; 4] = [Self::Tcp, Self::Http, Self::Ping, Self::Udp];

    /// Its name in requests, files and output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Http => "http",
            Self::Ping => "ping",
            Self::Udp => "udp",
        }
    }

    /// The kind named `text`.
    pub fn from_name(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == text)
    }
}

/// A VIP's health check of its backends (run by `xdpathd`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// TCP connect or HTTP GET.
    pub kind: CheckKind,
    /// The port checked on the backend's own address; 0: the VIP's port.
    #[serde(default)]
    pub port: u16,
    /// The HTTP path.
    #[serde(default = "default_path")]
    pub path: String,
    /// The HTTP status that means healthy (the first of `codes`, when
    /// those are given).
    #[serde(default = "default_status")]
    pub status: u16,
    /// The HTTP statuses that mean healthy, as inclusive ranges (`200`,
    /// `200,202`, `200-204`); empty: `status` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<(u16, u16)>,
    /// Time between checks of one backend, milliseconds.
    pub interval_ms: u64,
    /// How long a check may take, milliseconds.
    pub timeout_ms: u64,
    /// Passes in a row that bring a down backend back.
    pub rise: u32,
    /// Failures in a row that take a backend down.
    pub fall: u32,
}

fn default_path() -> String {
    "/".into()
}

fn default_status() -> u16 {
    200
}

impl HealthCheck {
    /// Whether an HTTP answer with `status` means healthy.
    pub fn expects(&self, status: u16) -> bool {
        if self.codes.is_empty() {
            return status == self.status;
        }
        self.codes
            .iter()
            .any(|(low, high)| (*low..=*high).contains(&status))
    }

    /// The statuses that mean healthy: `200`, `200,202-204`.
    pub fn codes_text(&self) -> String {
        if self.codes.is_empty() {
            return self.status.to_string();
        }
        let ranges: Vec<String> = self
            .codes
            .iter()
            .map(|(low, high)| {
                if low == high {
                    low.to_string()
                } else {
                    format!("{low}-{high}")
                }
            })
            .collect();
        ranges.join(",")
    }
}

/// One VIP with its pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipSpec {
    /// Address, port and protocol.
    pub id: VipId,
    /// IPIP or GUE.
    pub encap: Encap,
    /// The GUE destination port (with `Encap::Gue`).
    #[serde(default)]
    pub gue_port: u16,
    /// Hash on the source address only, so all of a client's flows go to
    /// one backend.
    #[serde(default)]
    pub source_hash: bool,
    /// Do not use the connection table: pure Maglev, cheaper, but a pool
    /// change moves some established flows.
    #[serde(default)]
    pub no_conntrack: bool,
    /// The Maglev table's size, a prime.
    pub ring_size: u32,
    /// Sample 1 in N of its frames in place of its interface's rate; 0:
    /// the interface's rate.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sample_rate: u32,
    /// Its slot (statistics index; rings `2 * slot` and `2 * slot + 1`).
    pub slot: u32,
    /// Which of its two rings is live (0 or 1).
    #[serde(default)]
    pub live_ring: u32,
    /// The backends, in the order they were added (the table does not
    /// depend on it).
    #[serde(default)]
    pub backends: Vec<BackendSpec>,
    /// How its backends are checked; none: not checked.
    #[serde(default)]
    pub health: Option<HealthCheck>,
    /// The sources that may reach it (IPv4 and IPv6 prefixes); empty:
    /// every source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Cidr>,
    /// Who made it (an opaque tag, checked by `lb::owner::check_owner`): an
    /// owner's document (`PUT /v1/owners/{owner}`) changes only its own
    /// VIPs, and a config file leaves them alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl VipSpec {
    /// The backend at `address`.
    pub fn backend(&self, address: IpAddr) -> Option<&BackendSpec> {
        self.backends
            .iter()
            .find(|backend| backend.address == address)
    }
}

/// Settings shared by every VIP.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbSettings {
    /// The outer IPv4 source prefix; the host bits come from the flow hash
    /// so backends' receive-side scaling spreads flows. Needed for IPv4
    /// backends.
    #[serde(default)]
    pub source_v4: Option<Cidr>,
    /// The outer IPv6 source prefix; needed for IPv6 backends.
    #[serde(default)]
    pub source_v6: Option<Cidr>,
    /// Send every encapsulated frame to this MAC (out of the receiving
    /// interface) instead of asking the kernel's FIB.
    #[serde(default)]
    pub next_hop_mac: Option<String>,
    /// Seed of the Maglev permutations: balancers behind one ECMP group must
    /// share it.
    #[serde(default)]
    pub seed: u64,
    /// One LRU for all CPUs or one per CPU: fixed when the namespace's
    /// connection tables are created (a change re-creates them, see
    /// `lb::ops::configure`).
    #[serde(default)]
    pub connection_table: crate::dataplane::ConnectionTable,
    /// The largest outer IP packet the path to the backends carries; 0:
    /// only the egress device's MTU bounds (`lb config --mtu`).
    #[serde(default)]
    pub mtu: u16,
}

/// The desired balancer state of a namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbState {
    /// Shared settings.
    #[serde(default)]
    pub settings: LbSettings,
    /// The VIPs.
    #[serde(default)]
    pub vips: Vec<VipSpec>,
    /// The generation the next new backend gets.
    #[serde(default)]
    pub next_generation: u32,
}

// Its `StateFile` impl (kind, legacy keys, the check of what a file that
// parses may still get wrong) is in `state_check`.

/// The connection-table kind of this namespace's saved balancer state
/// (`None` without a state file or when it cannot be read).
pub fn saved_connection_table() -> Option<crate::dataplane::ConnectionTable> {
    let dir = crate::control::state::state_dir().ok()?;
    let path = dir.join(LB_STATE_FILE);
    if !path.exists() {
        return None;
    }
    crate::control::state::load::<LbState>(&path)
        .ok()
        .map(|state| state.settings.connection_table)
}

impl LbState {
    /// The VIP `id`.
    pub fn vip(&self, id: &VipId) -> Option<&VipSpec> {
        self.vips.iter().find(|vip| vip.id == *id)
    }

    /// The VIP `id`, to change.
    pub fn vip_mut(&mut self, id: &VipId) -> Option<&mut VipSpec> {
        self.vips.iter_mut().find(|vip| vip.id == *id)
    }
}

/// For `skip_serializing_if`: a zero left out of the state file.
fn is_zero(value: &u32) -> bool {
    *value == 0
}
