//! What checking a config reports, shared by the reader ([`super::load`])
//! and the converters ([`super::convert`] and its parts): the [`Report`]
//! of mistakes with their places, the [`Environment`] a config is checked
//! against, and the helpers that parse a field or a list into it.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::hash::Hash;
use std::ops::Range;

use toml::Spanned;

use super::entry::Entry;
use super::values::{Item, Items};
use super::{ConfigErrors, Diagnostic};
use crate::api::RequestError;

/// What a config is checked against besides itself.
pub struct Environment {
    /// Whether an interface of this name exists.
    pub interface_exists: Box<dyn Fn(&str) -> bool>,
    /// Now, wall-clock seconds: a blocklist `ttl` counts from here.
    pub now: u64,
}

impl Environment {
    /// This thread's network namespace, now.
    pub fn host() -> Self {
        Self {
            interface_exists: Box::new(|name| crate::control::interface_index(name).is_some()),
            now: crate::control::wall_now(),
        }
    }
}

/// The mistakes found so far and where they are.
pub(super) struct Report<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
    errors: Vec<Diagnostic>,
    /// Paths whose values were removed for serde (so they are not
    /// reported again as missing).
    pub(super) pruned: HashSet<String>,
}

impl<'a> Report<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Self {
            text,
            line_starts,
            errors: Vec::new(),
            pruned: HashSet::new(),
        }
    }

    /// Records a mistake at `span` (none: no place in the file).
    pub(super) fn error(
        &mut self,
        span: Option<Range<usize>>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        let position = span.map(|span| self.position(span.start));
        self.errors.push(Diagnostic {
            position,
            path: path.into(),
            message: message.into(),
        });
    }

    /// Records that a required field is missing, unless its value was
    /// removed because it was already reported as wrong.
    pub(super) fn missing(&mut self, span: Range<usize>, path: &str, field: &str, what: &str) {
        let full = format!("{path}.{field}");
        if !self.pruned.contains(&full) {
            self.error(
                Some(span),
                path,
                format!("missing field `{field}` ({what})"),
            );
        }
    }

    /// True when something at or under `path` was reported already.
    pub(super) fn touched(&self, path: &str) -> bool {
        self.errors.iter().any(|error| {
            error.path == path
                || error.path.starts_with(&format!("{path}."))
                || error.path.starts_with(&format!("{path}["))
        })
    }

    /// How many mistakes so far.
    pub(super) fn count(&self) -> usize {
        self.errors.len()
    }

    /// True while nothing is wrong.
    pub(super) fn clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self
            .line_starts
            .partition_point(|start| *start <= offset)
            .max(1);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |text| text.chars().count());
        (line, column + 1)
    }

    /// Every mistake in file order.
    pub(super) fn finish(self, file: &str) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let mut errors: Vec<Diagnostic> = Vec::new();
        for error in self.errors {
            if !errors.contains(&error) {
                errors.push(error);
            }
        }
        errors.sort_by_key(|error| error.position.unwrap_or((0, 0)));
        Err(ConfigErrors {
            file: file.to_string(),
            errors,
        })
    }
}

/// Parses an optional field; a mistake is reported at the field.
pub(super) fn field<V, T, E: Display>(
    report: &mut Report<'_>,
    value: &Option<Spanned<V>>,
    path: String,
    parse: impl FnOnce(&V) -> Result<T, E>,
) -> Option<T> {
    let value = value.as_ref()?;
    parse(value.get_ref())
        .map_err(|error| report.error(Some(value.span()), path, error.to_string()))
        .ok()
}

/// Parses every item of a list; each mistake is reported at its item.
/// Returns the values with their places and paths.
pub(super) fn items<T, E: Display>(
    report: &mut Report<'_>,
    list: &Option<Spanned<Items>>,
    path: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Option<Vec<(T, Range<usize>, String)>> {
    let list = list.as_ref()?;
    let mut parsed = Vec::new();
    for (index, Item { span, text }) in list.get_ref().0.iter().enumerate() {
        let (span, path) = match span {
            Some(span) => (span.clone(), format!("{path}[{index}]")),
            None => (list.span(), path.to_string()),
        };
        match parse(text) {
            Ok(value) => parsed.push((value, span, path)),
            Err(error) => report.error(Some(span), path, error.to_string()),
        }
    }
    Some(parsed)
}

/// Reports every value listed a second time.
pub(super) fn unique<K: Eq + Hash + Display>(
    report: &mut Report<'_>,
    entries: &[(K, Range<usize>, String)],
    what: &str,
) {
    let mut seen: HashMap<&K, &str> = HashMap::new();
    for (key, span, path) in entries {
        if let Some(first) = seen.insert(key, path) {
            report.error(
                Some(span.clone()),
                path.clone(),
                format!("{what} {key} is listed twice (also {first})"),
            );
        }
    }
}

/// Parses a request field of a file entry; a mistake is reported at the
/// field's value.
pub(super) fn entry_field<R, X, T, E: Display>(
    report: &mut Report<'_>,
    entry: &Entry<R, X>,
    path: &str,
    name: &str,
    value: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Option<T> {
    let value = value?;
    parse(value)
        .map_err(|error| {
            report.error(
                entry.span(name),
                format!("{path}.{name}"),
                error.to_string(),
            )
        })
        .ok()
}

/// Parses each item of a comma-joined list field of a file entry (a TOML
/// list or one value); each mistake is reported at its item. None when the
/// field is absent or any item is wrong.
pub(super) fn entry_items<R, X, T, E: Display>(
    report: &mut Report<'_>,
    entry: &Entry<R, X>,
    path: &str,
    name: &str,
    value: Option<&str>,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Option<Vec<T>> {
    let texts: Vec<&str> = value?.split(',').map(str::trim).collect();
    let items = entry.item_spans(name);
    let before = report.count();
    let mut parsed = Vec::new();
    for (index, text) in texts.iter().enumerate() {
        // A list's item names its place, unless an item held a comma.
        let (span, place) = match items.get(index) {
            Some(span) if items.len() == texts.len() => {
                (Some(span.clone()), format!("{path}.{name}[{index}]"))
            }
            _ => (entry.span(name), format!("{path}.{name}")),
        };
        match parse(text) {
            Ok(value) => parsed.push(value),
            Err(error) => report.error(span, place, error.to_string()),
        }
    }
    (report.count() == before).then_some(parsed)
}

/// Runs a request's own check on a file entry; a refusal is reported at
/// the field it names (or the entry).
pub(super) fn entry_request<R, X, T>(
    report: &mut Report<'_>,
    entry: &Spanned<Entry<R, X>>,
    path: &str,
    check: impl FnOnce(&R) -> Result<T, RequestError>,
) -> Option<T> {
    let item = entry.get_ref();
    check(&item.request)
        .map_err(|error| match error.field {
            Some(field) => report.error(
                item.span(field).or(Some(entry.span())),
                format!("{path}.{field}"),
                error.message,
            ),
            None => report.error(Some(entry.span()), path, error.message),
        })
        .ok()
}
