//! The difference between what a namespace has and what a config asks
//! for: interfaces to attach, detach or attach again; filter rules, blocks,
//! limits, guards and management entries; balancer settings, VIPs and
//! backends. [`apply`](super::apply()) makes exactly these changes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::config::observe::ObserveSpec;
use crate::config::{DesiredConfig, InterfaceSpec, Mode};
use crate::control::state::{BlockSpec, FilterState, Management};
use crate::lb::state::LbState;

mod describe;

/// What happens to one thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// It is added (an interface: attached).
    Add,
    /// It is removed (an interface: detached).
    Remove,
    /// It changes (an interface: detached and attached again).
    Change,
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Added, removed or changed.
    pub action: Action,
    /// What kind of thing: `interface`, `rule`, `default`, `block`,
    /// `ratelimit`, `ratelimit-order`, `guard`, `mgmt-prefix`, `mgmt-port`,
    /// `setting`, `vip`, `backend`.
    pub what: &'static str,
    /// Which one: an interface name, a rule id, a prefix, a VIP, `VIP
    /// ADDRESS` for a backend, a setting's name.
    pub key: String,
    /// How it is now (for changes and removals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// How it will be (for changes and additions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// Everything `apply` would change, by part.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Interfaces to attach, detach, or detach and attach again.
    pub interfaces: Vec<Change>,
    /// Filter changes.
    pub filter: Vec<Change>,
    /// Balancer changes.
    pub lb: Vec<Change>,
    /// Export, analytics and mitigation changes.
    pub observe: Vec<Change>,
    /// Steering CPUs and AF_XDP flows.
    pub steering: Vec<Change>,
    /// Where the kernel's maps, read back, differ from the saved state
    /// (after a reboot, lost pins, a crash or another tool): `apply`
    /// installs the state there too.
    #[serde(default)]
    pub kernel: Vec<String>,
}

impl Plan {
    /// The names of the interfaces whose change is one of `actions`.
    pub fn interfaces_with<'a>(
        &'a self,
        actions: &'a [Action],
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.interfaces
            .iter()
            .filter(move |change| actions.contains(&change.action))
            .map(|change| change.key.as_str())
    }

    /// True when the namespace matches the config.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many changes.
    pub fn len(&self) -> usize {
        self.interfaces.len()
            + self.filter.len()
            + self.lb.len()
            + self.observe.len()
            + self.steering.len()
            + self.kernel.len()
    }

    /// Every change, interfaces first.
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.interfaces
            .iter()
            .chain(&self.filter)
            .chain(&self.lb)
            .chain(&self.observe)
            .chain(&self.steering)
    }
}

fn added(what: &'static str, key: impl ToString, to: String) -> Change {
    Change {
        action: Action::Add,
        what,
        key: key.to_string(),
        from: None,
        to: Some(to),
    }
}

fn removed(what: &'static str, key: impl ToString, from: String) -> Change {
    Change {
        action: Action::Remove,
        what,
        key: key.to_string(),
        from: Some(from),
        to: None,
    }
}

fn changed(what: &'static str, key: impl ToString, from: String, to: String) -> Change {
    Change {
        action: Action::Change,
        what,
        key: key.to_string(),
        from: Some(from),
        to: Some(to),
    }
}

/// Compares keyed items: additions, removals, and changes where `same`
/// says no.
fn diff_keyed<K: Ord + fmt::Display + Clone, V>(
    out: &mut Vec<Change>,
    what: &'static str,
    current: &BTreeMap<K, V>,
    desired: &BTreeMap<K, V>,
    same: impl Fn(&V, &V) -> bool,
    show: impl Fn(&V) -> String,
) {
    for (key, old) in current {
        match desired.get(key) {
            None => out.push(removed(what, key, show(old))),
            Some(new) if !same(old, new) => out.push(changed(what, key, show(old), show(new))),
            Some(_) => {}
        }
    }
    for (key, new) in desired {
        if !current.contains_key(key) {
            out.push(added(what, key, show(new)));
        }
    }
}

/// What must change to go from `current` to `desired`.
pub fn plan(current: &DesiredConfig, desired: &DesiredConfig) -> Plan {
    Plan {
        interfaces: interfaces(&current.interfaces, &desired.interfaces),
        filter: filter(&current.filter, &desired.filter),
        lb: lb(&current.lb, &desired.lb),
        observe: observe(&current.observe, &desired.observe),
        steering: steering(current, desired),
        kernel: Vec::new(),
    }
}

/// Steering changes. The CPU list counts only when an interface steers.
fn steering(current: &DesiredConfig, desired: &DesiredConfig) -> Vec<Change> {
    let keyed =
        |spec: &crate::config::steering::SteeringSpec, steers: bool| -> BTreeMap<String, String> {
            spec.describe()
                .into_iter()
                .filter(|(key, _)| steers || key != "cpus")
                .collect()
        };
    let steers = desired.interfaces.iter().any(|spec| spec.steer);
    let mut out = Vec::new();
    diff_keyed(
        &mut out,
        "steering",
        &keyed(&current.steering, steers),
        &keyed(&desired.steering, steers),
        |a, b| a == b,
        Clone::clone,
    );
    out
}

fn observe(current: &ObserveSpec, desired: &ObserveSpec) -> Vec<Change> {
    let keyed = |spec: &ObserveSpec| -> BTreeMap<&'static str, String> {
        spec.describe().into_iter().collect()
    };
    let mut out = Vec::new();
    diff_keyed(
        &mut out,
        "observe",
        &keyed(current),
        &keyed(desired),
        |a, b| a == b,
        Clone::clone,
    );
    // Settings a description leaves out (agent, template refresh,
    // exempt prefixes) still count.
    if out.is_empty() && current != desired {
        out.push(changed(
            "observe",
            "settings",
            "as now".into(),
            "as the config says".into(),
        ));
    }
    out
}

/// True when an interface attached as `current` is what `desired` asks
/// for (`auto` is satisfied by native or generic, and by `auto`).
pub fn interface_matches(current: &InterfaceSpec, desired: &InterfaceSpec) -> bool {
    let mode = match desired.mode {
        Mode::Auto => current.mode != Mode::Offload,
        mode => current.mode == mode,
    };
    !current.stale
        && mode
        && current.malformed == desired.malformed
        && current.monitor == desired.monitor
        && current.decap == desired.decap
        && current.gue_port == desired.gue_port
        && current.sample_rate == desired.sample_rate
        && current.forward == desired.forward
        && current.steer == desired.steer
}

/// True when an interface attached as `current` needs attaching again to
/// become `desired`: another mode, or a program that is not healthy.
/// Everything else is in its program's `CONFIG` map and is changed in
/// place: a reattach loads the program first (about 2 s of verifier time
/// here), and the interface runs no program until it is attached again.
pub fn needs_reattach(current: &InterfaceSpec, desired: &InterfaceSpec) -> bool {
    let in_place = InterfaceSpec {
        sample_rate: desired.sample_rate,
        forward: desired.forward,
        steer: desired.steer,
        malformed: desired.malformed,
        monitor: desired.monitor,
        decap: desired.decap,
        gue_port: desired.gue_port,
        ..current.clone()
    };
    !interface_matches(&in_place, desired)
}

fn interfaces(current: &[InterfaceSpec], desired: &[InterfaceSpec]) -> Vec<Change> {
    // A stale interface in a config (a snapshot's) cannot be attached.
    let by_name = |list: &[InterfaceSpec], keep_stale: bool| -> BTreeMap<String, InterfaceSpec> {
        list.iter()
            .filter(|spec| keep_stale || !spec.stale)
            .map(|spec| (spec.name.clone(), spec.clone()))
            .collect()
    };
    let mut out = Vec::new();
    let (current, desired) = (by_name(current, true), by_name(desired, false));
    diff_keyed(
        &mut out,
        "interface",
        &current,
        &desired,
        interface_matches,
        describe::interface,
    );
    out
}

/// What a blocklist entry is known by in a plan: its prefix, and its VNI
/// if it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct BlockName {
    prefix: crate::control::parse::Cidr,
    vni: Option<u32>,
}

impl fmt::Display for BlockName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.vni {
            Some(vni) => write!(f, "{} vni {vni}", self.prefix),
            None => write!(f, "{}", self.prefix),
        }
    }
}

/// True when two blocklist entries need no change: the same kind of
/// expiry (a running expiry is not extended by applying again).
pub fn block_same(current: &BlockSpec, desired: &BlockSpec) -> bool {
    current.expires_at.is_some() == desired.expires_at.is_some()
}

fn filter(current: &FilterState, desired: &FilterState) -> Vec<Change> {
    let mut out = Vec::new();
    rule_changes(&mut out, current, desired);
    let blocks = |state: &FilterState| {
        state
            .blocklist
            .iter()
            .map(|block| {
                let name = BlockName {
                    prefix: block.prefix,
                    vni: block.vni,
                };
                (name, *block)
            })
            .collect()
    };
    diff_keyed(
        &mut out,
        "block",
        &blocks(current),
        &blocks(desired),
        block_same,
        describe::block,
    );
    limit_changes(&mut out, current, desired);
    for (name, old, new) in describe::guards(&current.guards, &desired.guards) {
        if old != new {
            out.push(changed("guard", name, old, new));
        }
    }
    management_changes(&mut out, &current.management, &desired.management);
    out
}

/// The filter's rules that differ, then its default action.
fn rule_changes(out: &mut Vec<Change>, current: &FilterState, desired: &FilterState) {
    let rules = |state: &FilterState| {
        state
            .rules
            .iter()
            .map(|rule| (rule.id, rule.clone()))
            .collect()
    };
    diff_keyed(
        out,
        "rule",
        &rules(current),
        &rules(desired),
        |a, b| a == b,
        describe::rule,
    );
    let default =
        |state: &FilterState| describe::default(state.default_action, state.default_monitor);
    if default(current) != default(desired) {
        out.push(changed("default", "", default(current), default(desired)));
    }
}

/// The rate limits that differ, then the order of those that stay.
fn limit_changes(out: &mut Vec<Change>, current: &FilterState, desired: &FilterState) {
    let limits = |state: &FilterState| {
        state
            .rate_limits
            .iter()
            .map(|limit| (limit.id, limit.clone()))
            .collect()
    };
    diff_keyed(
        out,
        "ratelimit",
        &limits(current),
        &limits(desired),
        // Where a limit is kept is not what it limits: apply moves it
        // to the address table only when every program reads the table
        // (`merge_filter`), so a plan cannot promise the move.
        |a, b| {
            crate::control::state::LimitSpec {
                table: b.table,
                ..a.clone()
            } == *b
        },
        describe::limit,
    );
    let order = |state: &FilterState, other: &FilterState| -> Vec<u32> {
        let kept: BTreeSet<u32> = other.rate_limits.iter().map(|limit| limit.id).collect();
        state
            .rate_limits
            .iter()
            .map(|limit| limit.id)
            .filter(|id| kept.contains(id))
            .collect()
    };
    let (old_order, new_order) = (order(current, desired), order(desired, current));
    if old_order != new_order {
        out.push(changed(
            "ratelimit-order",
            "",
            describe::ids(&old_order),
            describe::ids(&new_order),
        ));
    }
}

/// The management prefixes, then ports, added or removed.
fn management_changes(out: &mut Vec<Change>, old: &Management, new: &Management) {
    diff_keyed(
        out,
        "mgmt-prefix",
        &set(&old.prefixes),
        &set(&new.prefixes),
        |_, _| true,
        |_| "never dropped".into(),
    );
    diff_keyed(
        out,
        "mgmt-port",
        &set(&old.ports),
        &set(&new.ports),
        |_, _| true,
        |_| "never dropped".into(),
    );
}

fn set<T: Ord + Copy>(list: &[T]) -> BTreeMap<T, ()> {
    list.iter().map(|item| (*item, ())).collect()
}

fn lb(current: &LbState, desired: &LbState) -> Vec<Change> {
    let mut out = Vec::new();
    for (name, old, new) in describe::settings(&current.settings, &desired.settings) {
        if old != new {
            out.push(changed("setting", name, old, new));
        }
    }
    let vips = |state: &LbState| {
        state
            .vips
            .iter()
            .map(|vip| (vip.id, vip.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let (old, new) = (vips(current), vips(desired));
    diff_keyed(
        &mut out,
        "vip",
        &old,
        &new,
        |a, b| describe::vip(a) == describe::vip(b),
        describe::vip,
    );
    for (id, vip) in &new {
        let weights =
            |spec: Option<&crate::lb::state::VipSpec>| -> BTreeMap<std::net::IpAddr, u32> {
                spec.map(|spec| {
                    spec.backends
                        .iter()
                        .map(|backend| (backend.address, backend.weight))
                        .collect()
                })
                .unwrap_or_default()
            };
        let (before, after) = (weights(old.get(id)), weights(Some(vip)));
        let mut backends = Vec::new();
        diff_keyed(
            &mut backends,
            "backend",
            &before,
            &after,
            |a, b| a == b,
            |weight| format!("weight {weight}"),
        );
        for mut change in backends {
            change.key = format!("{id} {}", change.key);
            out.push(change);
        }
    }
    out
}
