//! Labels: a few `key = value` pairs a rule or rate limit carries for
//! whoever reads its counters (Prometheus labels on
//! `xdpath_rule_hits_total` and `xdpath_ratelimit_drops_total`, the JSON
//! rows). An OpenStack Neutron agent names the Neutron objects with them
//! (`port_id`, `qos_policy_id`, ...). They change nothing in the data path.

use std::collections::BTreeMap;

use super::ParseError;

/// A rule's or limit's labels, in key order.
pub type Labels = BTreeMap<String, String>;

/// At most this many labels on one rule or limit.
pub const MAX_LABELS: usize = 4;
/// A key is at most this long (`[a-z_][a-z0-9_]{0,31}`).
pub const MAX_KEY: usize = 32;
/// A value is at most this many characters.
pub const MAX_VALUE: usize = 128;
/// Keys xdpath's own metrics use, so refused.
pub const RESERVED: [&str; 3] = ["rule", "limit", "owner"];

/// Checks labels: at most [`MAX_LABELS`], each key
/// `[a-z_][a-z0-9_]{0,31}`, not `__`-prefixed (Prometheus keeps those)
/// and not one of [`RESERVED`], each value 1 to [`MAX_VALUE`] characters
/// without control characters.
pub fn check_labels(labels: &Labels) -> Result<(), ParseError> {
    if labels.len() > MAX_LABELS {
        return Err(ParseError::LabelCount {
            count: labels.len(),
        });
    }
    for (key, value) in labels {
        if let Some(why) = bad_key(key) {
            return Err(ParseError::LabelKey {
                key: key.clone(),
                why,
            });
        }
        if let Some(why) = bad_value(value) {
            return Err(ParseError::LabelValue {
                key: key.clone(),
                why,
            });
        }
    }
    Ok(())
}

fn bad_key(key: &str) -> Option<&'static str> {
    let mut chars = key.chars();
    let Some(first) = chars.next() else {
        return Some("empty");
    };
    if key.len() > MAX_KEY {
        return Some("longer than 32 characters");
    }
    if !(first.is_ascii_lowercase() || first == '_')
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Some("expected [a-z_][a-z0-9_]*");
    }
    if key.starts_with("__") {
        return Some("keys starting with __ are Prometheus's own");
    }
    if RESERVED.contains(&key) {
        return Some("xdpath's own label (rule, limit and owner are)");
    }
    None
}

fn bad_value(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        return Some("empty");
    }
    if value.chars().count() > MAX_VALUE {
        return Some("longer than 128 characters");
    }
    if value.chars().any(char::is_control) {
        return Some("holds a control character");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_string(), (*value).to_string()))
            .collect()
    }

    #[test]
    fn good_labels_pass() {
        let good = labels(&[
            ("port_id", "6a1f0c3e-1b2d-4c5e-8f90-123456789abc"),
            ("_x9", "a \"quoted\" \\ value"),
        ]);
        assert_eq!(check_labels(&good), Ok(()));
        assert_eq!(check_labels(&Labels::new()), Ok(()));
    }

    #[test]
    fn bad_labels_are_refused_with_their_reason() {
        let long_key = "k".repeat(33);
        let long_value = "v".repeat(129);
        for (pairs, expected) in [
            (vec![("", "x")], "label key \"\": empty"),
            (vec![("Port", "x")], "expected [a-z_][a-z0-9_]*"),
            (vec![("9a", "x")], "expected [a-z_][a-z0-9_]*"),
            (vec![("a-b", "x")], "expected [a-z_][a-z0-9_]*"),
            (vec![("__name", "x")], "Prometheus's own"),
            (vec![("owner", "x")], "xdpath's own label"),
            (vec![("rule", "x")], "xdpath's own label"),
            (vec![(long_key.as_str(), "x")], "longer than 32"),
            (vec![("a", "")], "empty"),
            (vec![("a", long_value.as_str())], "longer than 128"),
            (vec![("a", "x\ny")], "control character"),
            (
                vec![("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")],
                "5 labels",
            ),
        ] {
            let error = check_labels(&labels(&pairs)).expect_err("refused");
            let text = error.to_string();
            assert!(text.contains(expected), "{pairs:?}: {text}");
            assert!(!text.contains('\n'), "{text}");
        }
    }
}
