//! serde's messages in a config file's own terms: `invalid type: string
//! "10", expected u32` becomes `expected a whole number from 0 to
//! 4294967295, found the text "10" (write id = 10, without quotes)`.
//! Messages of any other shape pass unchanged.

/// The keys whose values are durations, for the example in a hint.
const DURATION_KEYS: &[&str] = &[
    "ttl",
    "interval",
    "timeout",
    "counter_interval",
    "active_timeout",
    "idle_timeout",
    "window",
    "cooldown",
];

/// A serde message about the value of `key`, said in the config's terms.
pub(super) fn plain(message: &str, key: &str) -> String {
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return wrong_type(found, expected, key);
        }
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!(
                "{} is out of range: expected {}",
                value(found),
                kind(expected)
            );
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            let choices = expected.trim_start_matches("one of ").replace('`', "");
            return format!("{} is not one of: {choices}", found.replace('`', "\""));
        }
    }
    message.to_string()
}

fn wrong_type(found: &str, expected: &str, key: &str) -> String {
    let expected_kind = kind(expected);
    let hint = hint(found, expected, key);
    format!("expected {expected_kind}, found {}{hint}", value(found))
}

/// What serde expected, in words.
fn kind(expected: &str) -> String {
    match expected {
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" | "i64" => "a whole number".into(),
        "a boolean" => "true or false".into(),
        "a string" => "text in quotes".into(),
        "a sequence" => "a list, e.g. [\"a\", \"b\"]".into(),
        other => other.into(),
    }
}

/// What serde found, in words.
fn value(found: &str) -> String {
    if let Some(text) = found.strip_prefix("string ") {
        return format!("the text {text}");
    }
    for prefix in ["integer ", "floating point "] {
        if let Some(number) = found.strip_prefix(prefix) {
            return format!("the number {}", number.trim_matches('`'));
        }
    }
    if let Some(flag) = found.strip_prefix("boolean ") {
        return flag.trim_matches('`').to_string();
    }
    found.to_string()
}

/// How to write the value instead, where that is plain.
fn hint(found: &str, expected: &str, key: &str) -> String {
    let number = kind(expected).starts_with("a whole number");
    if let Some(text) = found.strip_prefix("string ") {
        let inner = text.trim_matches('"');
        if number && inner.parse::<u64>().is_ok() {
            return format!(" (write {key} = {inner}, without quotes)");
        }
        if expected == "a boolean" && matches!(inner, "true" | "false") {
            return format!(" (write {key} = {inner}, without quotes)");
        }
    }
    if let Some(number_text) = found.strip_prefix("integer ") {
        let digits = number_text.trim_matches('`');
        if expected == "a string" {
            return if DURATION_KEYS.contains(&key) {
                format!(
                    " (write {key} = \"{digits}s\": a duration needs its unit, s, ms, m, h or d)"
                )
            } else {
                format!(" (write {key} = \"{digits}\")")
            };
        }
        if expected == "a boolean" {
            return format!(" (write {key} = true or {key} = false)");
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn serde_words_become_the_configs() {
        let cases = [
            ("invalid type: string \"10\", expected u32", "id", "expected a whole number from 0 to 4294967295, found the text \"10\" (write id = 10, without quotes)"),
            ("invalid type: integer `20`, expected a string", "counter_interval", "expected text in quotes, found the number 20 (write counter_interval = \"20s\": a duration needs its unit, s, ms, m, h or d)"),
            ("invalid type: integer `1`, expected a boolean", "monitor", "expected true or false, found the number 1 (write monitor = true or monitor = false)"),
            ("invalid value: integer `70000`, expected u16", "gue_port", "the number 70000 is out of range: expected a whole number from 0 to 65535"),
            ("unknown variant `fast`, expected one of `auto`, `native`", "mode", "\"fast\" is not one of: auto, native"),
            ("a message of its own", "x", "a message of its own"),
        ];
        for (message, key, expected) in cases {
            assert_eq!(plain(message, key), expected);
        }
    }
}
