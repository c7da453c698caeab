//! The value shapes a config field may take besides plain TOML types: a
//! [`Scalar`] (a string or an integer, as text) and [`Items`] (one value
//! or a list, each with its place in the file).

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// A string or an integer, as text: `dport = 22` or `dport = "1000-2000"`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string or an integer")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Scalar, E> {
        Ok(Scalar(text.to_string()))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Scalar, E> {
        Ok(Scalar(value.to_string()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Scalar, E> {
        Ok(Scalar(value.to_string()))
    }
}

/// One value of an [`Items`] list and where it is (none: the list was a
/// single value, which is where the field is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Its place in the file.
    pub span: Option<std::ops::Range<usize>>,
    /// The value as text.
    pub text: String,
}

/// One value or a list: `src = "10.0.0.0/8"` or `src = ["10.0.0.0/8",
/// "192.0.2.0/24"]`; strings or integers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Items(pub Vec<Item>);

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ItemsVisitor)
    }
}

struct ItemsVisitor;

impl ItemsVisitor {
    fn single(text: String) -> Items {
        Items(vec![Item { span: None, text }])
    }
}

impl<'de> Visitor<'de> for ItemsVisitor {
    type Value = Items;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string, an integer or an array of them")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Items, E> {
        Ok(Self::single(text.to_string()))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Items, E> {
        Ok(Self::single(value.to_string()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Items, E> {
        Ok(Self::single(value.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
        let mut items = Vec::new();
        while let Some(value) = seq.next_element::<Spanned<Scalar>>()? {
            items.push(Item {
                span: Some(value.span()),
                text: value.into_inner().0,
            });
        }
        Ok(Items(items))
    }
}
