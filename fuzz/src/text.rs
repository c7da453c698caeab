//! Text an operator writes: rule files and the TOML config.

use xdpath::config::plan::plan;
use xdpath::config::DesiredConfig;
use xdpath::config::{load_str, Environment};
use xdpath::control::apply::install_fresh;
use xdpath::control::parse::{parse_cidr, parse_port_range, parse_tcp_flags};
use xdpath::control::rulefile::parse_rules;
use xdpath::control::state::{FilterState, RuleSpec};
use xdpath::lb::compile;
use xdpath::lb::state::LbState;
use xdpath_core::NativeTables;

use crate::assert_one_line;

/// The wall clock the checks pretend it is (a fixed time keeps every run
/// of an input the same).
const NOW: u64 = 1_750_000_000;

/// Installs `state` into fresh native tables, every interface resolving.
pub(crate) fn installs(state: &FilterState) -> Result<(), String> {
    install_fresh(&mut NativeTables::default(), state, &|_| Some(2), NOW)
        .map_err(|error| error.to_string())
}

/// The parts of a rule print as they parse back.
pub(crate) fn assert_rule_round_trips(rule: &RuleSpec) {
    for prefix in rule.sources.iter().chain(&rule.destination) {
        assert_eq!(
            parse_cidr(&prefix.to_string()).ok(),
            Some(*prefix),
            "{prefix}"
        );
    }
    if let Some(ports) = rule.ports {
        assert_eq!(
            parse_port_range(&ports.to_string()).ok(),
            Some(ports),
            "{ports}"
        );
    }
    if let Some(flags) = rule.tcp_flags {
        assert_eq!(
            parse_tcp_flags(&flags.to_string()).ok(),
            Some(flags),
            "{flags}"
        );
    }
}

/// A rule file (`filter load`, `replay --rules`): no panic; an error is
/// one line and names a line of the file; rules that parse round-trip
/// their parts and install.
pub fn rule_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_rules(text) {
        Ok(rules) => {
            for rule in &rules {
                assert_rule_round_trips(rule);
            }
            let mut state = FilterState {
                rules,
                ..FilterState::default()
            };
            for (index, rule) in state.rules.iter_mut().enumerate() {
                rule.id = index as u32 + 1;
            }
            if let Err(error) = installs(&state) {
                panic!("parsed rules do not install: {error}");
            }
        }
        Err((line, message)) => {
            assert_one_line(&message);
            assert!(line >= 1 && line <= text.lines().count(), "line {line}");
        }
    }
}

/// The TOML config (`xdpath apply -f`, `POST /v1/config`): no panic;
/// every error a line of its own; a config that loads installs (the
/// filter into native tables, the balancer through the compiler), is the
/// empty plan against itself, and survives the JSON its state files use.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let environment = Environment {
        interface_exists: Box::new(|name| matches!(name, "lo" | "eth0" | "veth0")),
        now: NOW,
    };
    let desired = match load_str(text, "fuzz.toml", &environment) {
        Ok(desired) => desired,
        Err(errors) => {
            assert!(!errors.errors.is_empty());
            for line in errors.lines() {
                assert_one_line(&line);
            }
            return;
        }
    };
    if let Err(error) = installs(&desired.filter) {
        panic!("a loaded config's filter does not install: {error}");
    }
    let mut lb = desired.lb.clone();
    if let Err(error) = compile::plan(&LbState::default(), &mut lb, true) {
        panic!("a loaded config's balancer does not compile: {error}");
    }
    assert!(
        plan(&desired, &desired).is_empty(),
        "a config differs from itself"
    );
    let _ = plan(&DesiredConfig::default(), &desired).to_string();
    let json = serde_json::to_string(&desired).expect("a config as JSON");
    let back: DesiredConfig = serde_json::from_str(&json).expect("JSON read back");
    assert_eq!(back, desired);
}
