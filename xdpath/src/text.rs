//! Operator input shown in messages. [`quote`] is the one way an error
//! quotes what it was given: in double quotes, with control and invisible
//! characters escaped and anything past [`QUOTE_CHARS`] characters cut, so
//! an error is one short line whatever it quotes (a 10 MB rule-file line,
//! an argument holding a newline). [`one_line`] is the last guard before a
//! message is printed.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::path::Path;

/// The most characters of an input a message quotes; longer input is cut
/// there and its length given in bytes.
pub const QUOTE_CHARS: usize = 96;

/// Input as a message shows it; see [`quote`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quoted<'a>(Cow<'a, str>);

/// Quotes `text` for a message: `"10.0.0.300/8"`, `"a\nb"`,
/// `"aaaa…" (10485760 bytes)`.
///
/// # Examples
///
/// ```
/// use xdpath::text::quote;
/// assert_eq!(quote("10.0.0.0/8").to_string(), "\"10.0.0.0/8\"");
/// assert_eq!(quote("a\nb\0").to_string(), "\"a\\nb\\0\"");
/// let long = "x".repeat(100_000);
/// assert!(quote(&long).to_string().ends_with("…\" (100000 bytes)"));
/// ```
pub fn quote(text: &str) -> Quoted<'_> {
    Quoted(Cow::Borrowed(text))
}

/// Quotes a path (not valid UTF-8: with U+FFFD where it is not).
pub fn quote_path(path: &Path) -> Quoted<'_> {
    Quoted(path.to_string_lossy())
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_char('"')?;
        for (count, character) in self.0.chars().enumerate() {
            if count == QUOTE_CHARS {
                return write!(formatter, "…\" ({} bytes)", self.0.len());
            }
            write_escaped(formatter, character)?;
        }
        formatter.write_char('"')
    }
}

/// `message` with every control or invisible character escaped, so it
/// prints as one line: what main does to an error before printing it,
/// whatever quoted (or failed to quote) its input.
pub fn one_line(message: &str) -> Cow<'_, str> {
    if !message.chars().any(needs_escape) {
        return Cow::Borrowed(message);
    }
    let mut line = String::with_capacity(message.len() + 8);
    for character in message.chars() {
        if needs_escape(character) {
            let _ = write_escaped(&mut line, character);
        } else {
            line.push(character);
        }
    }
    Cow::Owned(line)
}

/// Control characters, and the format characters that hide or reorder
/// text on a terminal (zero-width spaces, bidirectional overrides, BOM).
fn needs_escape(character: char) -> bool {
    character.is_control()
        || matches!(character,
            '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

fn write_escaped(out: &mut impl fmt::Write, character: char) -> fmt::Result {
    match character {
        '"' => out.write_str("\\\""),
        '\\' => out.write_str("\\\\"),
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        '\0' => out.write_str("\\0"),
        other if needs_escape(other) => write!(out, "\\u{{{:x}}}", u32::from(other)),
        other => out.write_char(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_and_shortens() {
        assert_eq!(quote("").to_string(), "\"\"");
        assert_eq!(quote("say \"hi\"\\").to_string(), r#""say \"hi\"\\""#);
        assert_eq!(quote("a\r\n\tb").to_string(), r#""a\r\n\tb""#);
        assert_eq!(quote("\u{1b}[2J").to_string(), r#""\u{1b}[2J""#);
        assert_eq!(quote("ab\u{202e}cd").to_string(), r#""ab\u{202e}cd""#);
        assert_eq!(quote("héllo").to_string(), "\"héllo\"");
        let exact = "y".repeat(QUOTE_CHARS);
        assert_eq!(quote(&exact).to_string(), format!("\"{exact}\""));
        let long = format!("{exact}z\n");
        let shown = quote(&long).to_string();
        assert_eq!(shown, format!("\"{exact}…\" ({} bytes)", long.len()));
        // Escapes count as one character each.
        let newlines = "\n".repeat(1_000_000);
        assert!(quote(&newlines).to_string().len() < 3 * QUOTE_CHARS);
        assert_eq!(
            quote_path(Path::new("/tmp/a\nb")).to_string(),
            r#""/tmp/a\nb""#
        );
    }

    #[test]
    fn one_line_escapes_only_what_it_must() {
        assert!(matches!(one_line("plain: 10.0.0.0/8"), Cow::Borrowed(_)));
        assert_eq!(one_line("a\nb\0c"), r#"a\nb\0c"#);
        assert_eq!(one_line("keeps \"quotes\""), "keeps \"quotes\"");
    }
}
