//! Client text in log lines and error messages: escaped, so that a newline,
//! a carriage return or a terminal escape sequence in a prefix, a VIP or a
//! query cannot start a forged log line or rewrite one on a terminal; and
//! shortened where it is quoted, so that a large input does not make a
//! large message.

use std::fmt::Write;

/// The most characters of client text quoted in one message.
pub const QUOTE_LIMIT: usize = 100;

/// `text` with control characters (and the Unicode line and paragraph
/// separators) escaped as Rust escapes them: one line, nothing a terminal
/// acts on.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        push_escaped(&mut escaped, character);
    }
    escaped
}

fn push_escaped(out: &mut String, character: char) {
    if character.is_control() || matches!(character, '\u{2028}' | '\u{2029}') {
        let _ = write!(out, "{}", character.escape_debug());
    } else {
        out.push(character);
    }
}

/// `text` in double quotes, escaped (also its quotes and backslashes, so
/// that the quote is unambiguous), at most [`QUOTE_LIMIT`] characters of
/// it (then `...`).
pub fn quote(text: &str) -> String {
    let mut quoted = String::from("\"");
    let mut shown = 0;
    for character in text.chars().take(QUOTE_LIMIT) {
        if matches!(character, '"' | '\\') {
            quoted.push('\\');
            quoted.push(character);
        } else {
            push_escaped(&mut quoted, character);
        }
        shown += character.len_utf8();
    }
    quoted.push('"');
    if shown < text.len() {
        quoted.push_str("...");
    }
    quoted
}

/// Bytes that may not be UTF-8, quoted: printable ASCII as it is, the rest
/// as `\xNN`, at most [`QUOTE_LIMIT`] bytes.
pub fn quote_bytes(bytes: &[u8]) -> String {
    let shown = bytes.get(..QUOTE_LIMIT).unwrap_or(bytes);
    let escaped = shown.escape_ascii().to_string();
    if shown.len() < bytes.len() {
        format!("\"{escaped}\"...")
    } else {
        format!("\"{escaped}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_a_log_reader_or_terminal_acts_on_stays() {
        let forged = "9.9.9.0/24\n2026-01-01T00:00:00Z INFO applied\r\u{1b}[2K\u{2028}";
        let escaped = escape(forged);
        assert_eq!(
            escaped,
            "9.9.9.0/24\\n2026-01-01T00:00:00Z INFO applied\\r\\u{1b}[2K\\u{2028}"
        );
        assert!(!escaped.chars().any(char::is_control));
        assert_eq!(escape("10.0.0.0/8 \"ok\" ü"), "10.0.0.0/8 \"ok\" ü");
    }

    #[test]
    fn quotes_are_short_and_escaped() {
        assert_eq!(quote("-1"), "\"-1\"");
        assert_eq!(quote("a\"b\n\\"), "\"a\\\"b\\n\\\\\"");
        assert_eq!(escape(&quote("a\nb")), quote("a\nb"));
        let long = quote(&"x".repeat(10_000));
        assert_eq!(long.len(), QUOTE_LIMIT + 5);
        assert!(long.ends_with("\"..."));
        assert_eq!(quote_bytes(b"x = \"\xff\""), "\"x = \\\"\\xff\\\"\"");
        assert!(quote_bytes(&[0xff; 1000]).ends_with("\"..."));
    }
}
