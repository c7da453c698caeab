//! The daemon's request types (`xdpathd::requests`): taken apart as axum
//! does (JSON bodies with `serde_json`, query strings with
//! `serde_urlencoded`), then through the checks the handlers run before
//! anything changes. The first input byte picks the request; the rest is
//! its body or query string.

use serde::de::DeserializeOwned;
use xdpath::control::compile::compile_limit;
use xdpath::control::ops::limit_spec;
use xdpath::control::parse::{parse_cidr, parse_duration};
use xdpath::control::rulefile::management_conflict;
use xdpath::control::state::{BlockSpec, FilterState, Management};
use xdpath::lb::compile;
use xdpath::lb::edit::{self, ConfigChange, VipOptions};
use xdpath::lb::owner::{apply, limits};
use xdpath::lb::state::{Encap, LbState, VipId};
use xdpathd::requests::{
    BackendQuery, BackendWeight, BackendsQuery, HealthArgs, LimitArgs, NewBlock, NewVip,
    OwnerState, PrefixQuery, RuleArgs, TopQuery, VipQuery,
};

use crate::assert_one_line;
use crate::text::{assert_rule_round_trips, installs};

fn body<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

fn query<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_urlencoded::from_str(std::str::from_utf8(bytes).ok()?).ok()
}

/// One request of the kind the first byte picks: no panic; every refusal
/// one line; what is accepted round-trips and installs.
pub fn api_request(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    // The two last kinds came later: the first eleven keep their corpus.
    match kind {
        0xfe => {
            return body(rest)
                .into_iter()
                .for_each(|document| owner_document(&document))
        }
        0xff => return body(rest).into_iter().for_each(|check| health(&check)),
        _ => {}
    }
    match kind % 11 {
        0 => body(rest).into_iter().for_each(|rule| new_rule(&rule)),
        1 => body(rest).into_iter().for_each(|limit| new_limit(&limit)),
        2 => body(rest).into_iter().for_each(|block| new_block(&block)),
        3 => body(rest).into_iter().for_each(|vip| new_vip(&vip)),
        4 => body(rest)
            .into_iter()
            .for_each(|backend| backend_weight(&backend, false)),
        5 => body(rest)
            .into_iter()
            .for_each(|backend| backend_weight(&backend, true)),
        6 => query(rest).into_iter().for_each(|top: TopQuery| {
            if let Err(message) = top.choice() {
                assert_one_line(&message);
            }
        }),
        7 => query(rest).into_iter().for_each(|prefix: PrefixQuery| {
            let _ = checked_prefix(&prefix.prefix);
        }),
        8 => query(rest).into_iter().for_each(|vip: VipQuery| {
            let _ = checked_vip(&vip.vip);
        }),
        9 => query(rest).into_iter().for_each(|backends: BackendsQuery| {
            backends.vip.as_deref().map(checked_vip);
        }),
        _ => query(rest).into_iter().for_each(|backend: BackendQuery| {
            let vip = checked_vip(&backend.vip);
            let address = edit::parse_address(&backend.address).map_err(|error| error.to_string());
            if let (Some(vip), Ok(address)) = (vip, address) {
                let mut state = balancer_with(vip);
                let removed = edit::del_backend(&mut state, &vip, address);
                assert!(removed.is_err(), "removed a backend that was never added");
            }
        }),
    }
}

/// A prefix: refused in one line, or printed as it parses back.
fn checked_prefix(text: &str) -> Option<xdpath::control::parse::Cidr> {
    match parse_cidr(text) {
        Ok(prefix) => {
            assert_eq!(
                parse_cidr(&prefix.to_string()).ok(),
                Some(prefix),
                "{prefix}"
            );
            Some(prefix)
        }
        Err(error) => {
            assert_one_line(&error.to_string());
            None
        }
    }
}

/// A VIP: refused in one line, or printed as it parses back.
fn checked_vip(text: &str) -> Option<VipId> {
    match edit::parse_vip(text) {
        Ok(vip) => {
            assert_eq!(edit::parse_vip(&vip.to_string()).ok(), Some(vip), "{vip}");
            Some(vip)
        }
        Err(error) => {
            assert_one_line(&error.to_string());
            None
        }
    }
}

fn new_rule(rule: &RuleArgs) {
    match rule.to_spec() {
        Ok(mut spec) => {
            assert_rule_round_trips(&spec);
            let _ = management_conflict(&spec, &Management::default());
            spec.id = 1;
            let state = FilterState {
                rules: vec![spec],
                ..FilterState::default()
            };
            if let Err(error) = installs(&state) {
                panic!("an accepted rule does not install: {error}");
            }
        }
        Err(error) => assert_one_line(&error.to_string()),
    }
}

fn new_limit(limit: &LimitArgs) {
    let spec = match limit_spec(limit, 1) {
        Ok(spec) => spec,
        Err(error) => return assert_one_line(&error.to_string()),
    };
    if let Err(error) = compile_limit(&spec) {
        return assert_one_line(&error.to_string());
    }
    let state = FilterState {
        rate_limits: vec![spec],
        ..FilterState::default()
    };
    if let Err(error) = installs(&state) {
        panic!("an accepted rate limit does not install: {error}");
    }
}

fn new_block(block: &NewBlock) {
    let Some(prefix) = checked_prefix(&block.prefix) else {
        return;
    };
    let seconds = match block.ttl.as_deref().map(parse_duration).transpose() {
        Ok(seconds) => seconds,
        Err(error) => return assert_one_line(&error.to_string()),
    };
    let state = FilterState {
        blocklist: vec![BlockSpec {
            prefix,
            expires_at: seconds.map(|seconds| 1_750_000_000u64.saturating_add(seconds)),
            vni: None,
        }],
        ..FilterState::default()
    };
    if let Err(error) = installs(&state) {
        panic!("an accepted block does not install: {error}");
    }
}

/// A balancer configured as `lb config` would (both source prefixes, a
/// fixed next hop), with `vip` added with default options.
fn balancer_with(vip: VipId) -> LbState {
    let mut state = LbState::default();
    edit::configure(
        &mut state,
        &ConfigChange {
            source_v4: Some("172.16.0.0/16".into()),
            source_v6: Some("2001:db8:ff00::/64".into()),
            next_hop: Some("02:00:00:00:00:99".into()),
            seed: None,
            connection_table: None,
            mtu: None,
        },
    )
    .expect("a valid balancer config");
    let options = VipOptions {
        encap: Encap::Ipip,
        gue_port: None,
        source_hash: false,
        no_conntrack: false,
        ring_size: Some(7),
        sample_rate: 0,
    };
    edit::add_vip(&mut state, vip, options).expect("a VIP in an empty balancer");
    state
}

/// An owner's document: refused in one line, or its edits applied to an
/// empty namespace compile, and applying them again changes nothing.
fn owner_document(document: &OwnerState) {
    let desired = match xdpath::lb::owner::parse_document("fuzz", document) {
        Ok(desired) => desired,
        Err(error) => return assert_one_line(&error.to_string()),
    };
    let mut state = LbState::default();
    state.settings.source_v4 = parse_cidr("172.16.0.0/16").ok();
    state.settings.source_v6 = parse_cidr("fd00::/64").ok();
    let mut filter = FilterState::default();
    let edited = apply::edit_vips(&mut state, "fuzz", &desired.vips)
        .and_then(|()| limits::edit_limits(&mut filter, "fuzz", &desired.limits, true));
    if let Err(error) = edited {
        return assert_one_line(&error.to_string());
    }
    let (once, filter_once) = (state.clone(), filter.clone());
    let again = apply::edit_vips(&mut state, "fuzz", &desired.vips)
        .and_then(|()| limits::edit_limits(&mut filter, "fuzz", &desired.limits, true));
    assert!(again.is_ok(), "a document applied once is refused again");
    assert_eq!(state, once, "the same document changed the balancer again");
    assert_eq!(
        filter, filter_once,
        "the same document changed the limits again"
    );
    if let Err(error) = compile::plan(&LbState::default(), &mut state, true) {
        assert_one_line(&error.to_string());
    }
}

/// A health check request: refused in one line, or set on a VIP.
fn health(request: &HealthArgs) {
    let Some(vip) = checked_vip(&request.vip) else {
        return;
    };
    let mut state = balancer_with(vip);
    let result =
        edit::health_check(request).and_then(|check| edit::set_health(&mut state, &vip, check));
    if let Err(error) = result {
        assert_one_line(&error.to_string());
    }
}

/// Compiles a balancer: accepted edits must compile.
fn assert_compiles(state: &LbState) {
    let mut state = state.clone();
    if let Err(error) = compile::plan(&LbState::default(), &mut state, true) {
        panic!("an accepted balancer edit does not compile: {error}");
    }
}

fn new_vip(request: &NewVip) {
    if checked_vip(&request.vip).is_none() {
        return;
    }
    let parsed = match xdpath::lb::ops::parse_new_vip(request) {
        Ok(parsed) => parsed,
        Err(error) => return assert_one_line(&error.to_string()),
    };
    let mut state = LbState::default();
    match xdpath::lb::ops::add_parsed(&mut state, &parsed) {
        Ok(()) => match compile::plan(&LbState::default(), &mut state.clone(), true) {
            Ok(_) => {}
            Err(error) => assert_one_line(&error.to_string()),
        },
        Err(error) => assert_one_line(&error.to_string()),
    }
}

fn backend_weight(request: &BackendWeight, change_weight: bool) {
    let Some(vip) = checked_vip(&request.vip) else {
        return;
    };
    let address = match edit::parse_address(&request.address) {
        Ok(address) => address,
        Err(error) => return assert_one_line(&error.to_string()),
    };
    let mut state = balancer_with(vip);
    let result = if change_weight {
        edit::add_backend(&mut state, &vip, address, 1)
            .and_then(|()| edit::set_weight(&mut state, &vip, address, request.weight))
    } else {
        edit::add_backend(&mut state, &vip, address, request.weight)
    };
    match result {
        Ok(()) => assert_compiles(&state),
        Err(error) => assert_one_line(&error.to_string()),
    }
}
