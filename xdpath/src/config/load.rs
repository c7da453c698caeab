//! Reading a config file and collecting every mistake in it.
//!
//! The TOML is parsed with recovery, so every syntax error is listed (and
//! then nothing else: the rest may not be what was meant); then it is
//! deserialized into [`FileConfig`]. serde stops at the first mistake, so
//! the value it points at (by its span) is removed from the document and
//! the rest deserialized again, until it goes through; then the values are
//! parsed and checked by [`super::convert`], which reports every mistake of
//! its own. Byte offsets become `line:column` at the end.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

use super::report::{Environment, Report};
use super::schema::FileConfig;
use super::{ConfigErrors, DesiredConfig, Diagnostic};
use crate::input::{read_text, TextLimits};

/// The most values removed for serde's sake before giving up on the rest.
const MAX_ROUNDS: usize = 200;

/// What a config file may be. The example config is 3 KiB; a blocklist
/// of 100,000 entries, one a line, about 4 MiB. A line holds at most an
/// inline array of a few tens of thousands of prefixes.
pub const CONFIG_LIMITS: TextLimits = TextLimits {
    max_bytes: 64 << 20,
    max_line: 1 << 20,
};

/// Reads and checks a config file (interfaces are looked up in this
/// thread's network namespace). Any mistake refuses the whole file, with
/// every mistake listed.
pub fn load(path: &Path) -> Result<DesiredConfig, ConfigErrors> {
    let file = path.display().to_string();
    let text = read_text(path, CONFIG_LIMITS).map_err(|error| ConfigErrors {
        file: file.clone(),
        errors: vec![Diagnostic {
            position: None,
            path: String::new(),
            message: error.to_string(),
        }],
    })?;
    load_str(&text, &file, &Environment::host())
}

/// Checks config text; `file` names it in the errors.
pub fn load_str(
    text: &str,
    file: &str,
    environment: &Environment,
) -> Result<DesiredConfig, ConfigErrors> {
    let mut report = Report::new(text);
    let (root, syntax) = DeTable::parse_recoverable(text);
    for error in &syntax {
        let message = match (error.message(), error.span()) {
            // Which key, in the file's own words.
            ("duplicate key", Some(span)) => match text.get(span) {
                Some(key) => format!(
                    "duplicate key `{}`: each key may be given once in a table",
                    key.trim()
                ),
                None => "duplicate key".to_string(),
            },
            (message, _) => message.to_string(),
        };
        report.error(error.span(), "", format!("syntax error: {message}"));
    }
    if !syntax.is_empty() {
        // What recovery made of the rest is not what was meant.
        return report.finish(file).map(|()| DesiredConfig::default());
    }
    let parsed = deserialize_collecting(root, &mut report);
    let config = super::convert::desired(&parsed, environment, &mut report);
    report.finish(file).map(|()| config)
}

/// One step of a path into the document.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

fn display(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(key) if text.is_empty() => text.push_str(key),
            Step::Key(key) => {
                text.push('.');
                text.push_str(key);
            }
            Step::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

/// Deserializes the document, reporting and removing what serde refuses
/// until the rest goes through.
fn deserialize_collecting(mut root: Spanned<DeTable<'_>>, report: &mut Report<'_>) -> FileConfig {
    for _ in 0..MAX_ROUNDS {
        let error = match FileConfig::deserialize(toml::de::Deserializer::from(root.clone())) {
            Ok(parsed) => return parsed,
            Err(error) => error,
        };
        let span = error.span();
        let found = span.as_ref().and_then(|span| find(root.get_ref(), span));
        let Some(path) = found else {
            report.error(span, "", error.message().to_string());
            break;
        };
        let shown = display(&path);
        let key = path.iter().rev().find_map(|step| match step {
            Step::Key(key) => Some(key.as_str()),
            Step::Index(_) => None,
        });
        let message = super::words::plain(error.message(), key.unwrap_or(""));
        report.error(span, shown.clone(), message);
        report.pruned.insert(shown);
        if !remove_in_table(root.get_mut(), &path) {
            break;
        }
    }
    FileConfig::default()
}

fn holds(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// The deepest key or value whose span holds `span`.
fn find(root: &DeTable<'_>, span: &Range<usize>) -> Option<Vec<Step>> {
    let mut best = None;
    let mut path = Vec::new();
    find_in_table(root, span, &mut path, &mut best);
    best
}

fn consider(path: &[Step], best: &mut Option<Vec<Step>>) {
    if best.as_ref().is_none_or(|found| path.len() > found.len()) {
        *best = Some(path.to_vec());
    }
}

fn find_in_table(
    table: &DeTable<'_>,
    span: &Range<usize>,
    path: &mut Vec<Step>,
    best: &mut Option<Vec<Step>>,
) {
    for (key, value) in table.iter() {
        path.push(Step::Key(key.get_ref().to_string()));
        if holds(&key.span(), span) || holds(&value.span(), span) {
            consider(path, best);
        }
        find_in_value(value.get_ref(), span, path, best);
        path.pop();
    }
}

fn find_in_value(
    value: &DeValue<'_>,
    span: &Range<usize>,
    path: &mut Vec<Step>,
    best: &mut Option<Vec<Step>>,
) {
    match value {
        DeValue::Table(table) => find_in_table(table, span, path, best),
        DeValue::Array(array) => {
            for (index, item) in array.iter().enumerate() {
                path.push(Step::Index(index));
                if holds(&item.span(), span) {
                    consider(path, best);
                }
                find_in_value(item.get_ref(), span, path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

fn remove_in_table(table: &mut DeTable<'_>, path: &[Step]) -> bool {
    match path {
        [Step::Key(key)] => table.remove(key.as_str()).is_some(),
        [Step::Key(key), rest @ ..] => table
            .get_mut(key.as_str())
            .is_some_and(|value| remove_in_value(value.get_mut(), rest)),
        _ => false,
    }
}

fn remove_in_value(value: &mut DeValue<'_>, path: &[Step]) -> bool {
    match (value, path) {
        (DeValue::Table(table), _) => remove_in_table(table, path),
        (DeValue::Array(array), [Step::Index(index)]) if *index < array.len() => {
            let mut kept = DeArray::new();
            for (at, item) in array.iter().enumerate() {
                if at != *index {
                    kept.push(item.clone());
                }
            }
            *array = kept;
            true
        }
        (DeValue::Array(array), [Step::Index(index), rest @ ..]) => array
            .get_mut(*index)
            .is_some_and(|item| remove_in_value(item.get_mut(), rest)),
        _ => false,
    }
}
