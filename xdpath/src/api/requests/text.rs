//! Values that a request takes as text but that JSON and TOML may write
//! as numbers (`"dport": 22`, `pps = 1000`) or, for lists of prefixes, as
//! arrays (`src = ["10.0.0.0/8", "192.0.2.0/24"]`): all become the text the
//! CLI would have been given, so one parser reads every front end.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// A string or an integer, as text.
pub(crate) fn scalar<'de, D: Deserializer<'de>>(from: D) -> Result<Option<String>, D::Error> {
    from.deserialize_any(Text { list: false })
}

/// A string or a list of strings, as text (a list joined by commas, as
/// the CLI takes it).
pub(super) fn list<'de, D: Deserializer<'de>>(from: D) -> Result<Option<String>, D::Error> {
    from.deserialize_any(Text { list: true })
}

struct Text {
    list: bool,
}

impl<'de> Visitor<'de> for Text {
    type Value = Option<String>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.list {
            formatter.write_str("a string or a list of strings")
        } else {
            formatter.write_str("a string or an integer")
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Option<String>, E> {
        Ok(Some(text.to_string()))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Option<String>, E> {
        self.number(value).map(Some)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Option<String>, E> {
        self.number(value).map(Some)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        if !self.list {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        }
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<String>()? {
            items.push(item);
        }
        if items.is_empty() {
            return Err(de::Error::custom("an empty list"));
        }
        Ok(Some(items.join(",")))
    }
}

impl Text {
    /// A number is text where a scalar is asked for; a list of prefixes
    /// holds none.
    fn number<E: de::Error>(&self, value: impl ToString) -> Result<String, E> {
        let text = value.to_string();
        if self.list {
            return Err(de::Error::invalid_type(de::Unexpected::Other(&text), self));
        }
        Ok(text)
    }
}

/// One string or a list of them (`flags = "source-hash"` or `flags =
/// ["source-hash", "no-conntrack"]`).
pub(super) fn many<'de, D: Deserializer<'de>>(from: D) -> Result<Vec<String>, D::Error> {
    struct Many;
    impl<'de> Visitor<'de> for Many {
        type Value = Vec<String>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a string or a list of strings")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<String>, E> {
            Ok(vec![text.to_string()])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                items.push(item);
            }
            Ok(items)
        }
    }
    from.deserialize_any(Many)
}

/// Labels, each name given once: a JSON object that names one twice is
/// refused, not read as its last value (a TOML table cannot name one twice).
pub(super) fn labels<'de, D: Deserializer<'de>>(
    from: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    struct Labels;
    impl<'de> Visitor<'de> for Labels {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a map of label names to text")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut labels = BTreeMap::new();
            while let Some((name, value)) = map.next_entry::<String, String>()? {
                if labels.contains_key(&name) {
                    return Err(de::Error::custom(format!(
                        "label {} is given twice",
                        crate::text::quote(&name)
                    )));
                }
                labels.insert(name, value);
            }
            Ok(labels)
        }
    }
    from.deserialize_map(Labels)
}

#[cfg(test)]
mod tests {
    use crate::api::RuleArgs;

    #[test]
    fn a_label_named_twice_is_refused() {
        let rule = |labels: &str| {
            serde_json::from_str::<RuleArgs>(&format!(
                r#"{{"src":"10.0.0.0/8","action":"drop","labels":{labels}}}"#
            ))
        };
        let once = rule(r#"{"port_id":"p-1","zone":"a"}"#).expect("once each");
        assert_eq!(once.labels.len(), 2);
        let twice = rule(r#"{"port_id":"p-1","port_id":"p-2"}"#).expect_err("twice");
        assert!(
            twice
                .to_string()
                .contains("label \"port_id\" is given twice"),
            "{twice}"
        );
        let error = rule(r#"["port_id"]"#).expect_err("not a map");
        assert!(error.is_data(), "{error}");
    }
}
