//! A config entry that *is* an API request: `[[filter.rule]]` holds a
//! [`RuleArgs`](crate::api::RuleArgs), `[[lb.vip]]` a
//! [`NewVip`](crate::api::NewVip), and so on, so a field added to a
//! request type is a field of the config too. [`Entry`] keeps, beside the
//! request, where each of its fields is in the file (for the report) and
//! the fields only a file has (a rule's `id`, a VIP's backends).
//!
//! serde stops at the first mistake and the reader ([`super::load`])
//! removes the value it points at; so each field is checked on its own as
//! it is read, and a wrong one is refused at its own place in the file.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// What a file entry has besides its request: read by key as the entry is
/// read, with toml's own deserializer (so `Spanned` fields keep places).
pub trait Extras: Default {
    /// The keys that are this and not the request's.
    const KEYS: &'static [&'static str];

    /// Reads the value of one of [`Extras::KEYS`].
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

/// An entry with nothing besides its request.
#[derive(Debug, Default)]
pub struct NoExtras;

impl Extras for NoExtras {
    const KEYS: &'static [&'static str] = &[];

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, _: &mut A) -> Result<(), A::Error> {
        Err(de::Error::custom(format!("unexpected key `{key}`")))
    }
}

/// A request as a file gives it, with the places of its fields.
#[derive(Debug)]
pub struct Entry<R, X = NoExtras> {
    /// The request, as the CLI and the API would make it.
    pub request: R,
    /// The file-only fields.
    pub extras: X,
    /// Each request field given, with the place of its value and, for a
    /// list, of each item.
    places: Vec<(String, Place)>,
}

/// Where a value is.
#[derive(Clone, Debug)]
struct Place {
    value: Range<usize>,
    items: Vec<Range<usize>>,
}

impl<R, X> Entry<R, X> {
    /// The place of a field's value, if the file gives the field.
    pub fn span(&self, field: &str) -> Option<Range<usize>> {
        self.place(field).map(|place| place.value.clone())
    }

    /// The places of a list field's items (empty for a single value).
    pub fn item_spans(&self, field: &str) -> &[Range<usize>] {
        self.place(field)
            .map_or(&[], |place| place.items.as_slice())
    }

    /// A field's value with its place; none if the file does not give it.
    pub fn spanned<T: Clone>(&self, field: &str, value: &Option<T>) -> Option<Spanned<T>> {
        let value = value.as_ref()?;
        Some(Spanned::new(self.span(field)?, value.clone()))
    }

    fn place(&self, field: &str) -> Option<&Place> {
        self.places
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, place)| place)
    }
}

impl<'de, R: DeserializeOwned, X: Extras> Deserialize<'de> for Entry<R, X> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntryVisitor(PhantomData))
    }
}

struct EntryVisitor<R, X>(PhantomData<(R, X)>);

impl<'de, R: DeserializeOwned, X: Extras> Visitor<'de> for EntryVisitor<R, X> {
    type Value = Entry<R, X>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry<R, X>, A::Error> {
        let fields = field_names::<R>();
        let mut extras = X::default();
        let mut table = toml::Table::new();
        let mut places = Vec::new();
        let known = KnownKey {
            fields,
            extras: X::KEYS,
        };
        while let Some(key) = map.next_key_seed(known)? {
            if X::KEYS.contains(&key.as_str()) {
                extras.read(&key, &mut map)?;
                continue;
            }
            // Refused inside the value, so the error carries its place.
            let value = map.next_value_seed(Field::<R> {
                key: &key,
                request: PhantomData,
            })?;
            places.push((key.clone(), value.place));
            table.insert(key, value.value);
        }
        // Each field went through alone; what is left is a missing one.
        let request = R::deserialize(toml::Value::Table(table))
            .map_err(|error| de::Error::custom(error.message()))?;
        Ok(Entry {
            request,
            extras,
            places,
        })
    }
}

/// A key of the entry: a request field or an extra; any other is refused
/// at the key.
#[derive(Clone, Copy)]
struct KnownKey {
    fields: &'static [&'static str],
    extras: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for KnownKey {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        let key = String::deserialize(deserializer)?;
        if self.fields.contains(&key.as_str()) || self.extras.contains(&key.as_str()) {
            return Ok(key);
        }
        let known: Vec<String> = self
            .fields
            .iter()
            .chain(self.extras)
            .map(|name| format!("`{name}`"))
            .collect();
        Err(de::Error::custom(format!(
            "unknown field `{key}`, expected one of {}",
            known.join(", ")
        )))
    }
}

/// One request field's value, checked alone against the request type.
struct Field<'a, R> {
    key: &'a str,
    request: PhantomData<R>,
}

struct Checked {
    value: toml::Value,
    place: Place,
}

impl<'de, R: DeserializeOwned> DeserializeSeed<'de> for Field<'_, R> {
    type Value = Checked;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Checked, D::Error> {
        let node = Spanned::<Node>::deserialize(deserializer)?;
        let place = Place {
            value: node.span(),
            items: node.get_ref().item_spans(),
        };
        let value = node.into_inner().into_value();
        let mut alone = toml::Table::new();
        alone.insert(self.key.to_string(), value.clone());
        // A field that is fine alone fails only for the fields missing.
        if let Err(error) = R::deserialize(toml::Value::Table(alone)) {
            if !error.message().starts_with("missing field") {
                return Err(de::Error::custom(error.message()));
            }
        }
        Ok(Checked { value, place })
    }
}

/// A TOML value with the places of a list's items.
#[derive(Debug)]
enum Node {
    Plain(toml::Value),
    List(Vec<Spanned<toml::Value>>),
}

impl Node {
    fn item_spans(&self) -> Vec<Range<usize>> {
        match self {
            Node::Plain(_) => Vec::new(),
            Node::List(items) => items.iter().map(Spanned::span).collect(),
        }
    }

    fn into_value(self) -> toml::Value {
        match self {
            Node::Plain(value) => value,
            Node::List(items) => {
                toml::Value::Array(items.into_iter().map(Spanned::into_inner).collect())
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Node, E> {
        Ok(Node::Plain(toml::Value::Boolean(value)))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Node, E> {
        Ok(Node::Plain(toml::Value::Integer(value)))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Node, E> {
        i64::try_from(value)
            .map(|value| Node::Plain(toml::Value::Integer(value)))
            .map_err(|_| de::Error::custom(format!("{value} is too large")))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Node, E> {
        Ok(Node::Plain(toml::Value::Float(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Node, E> {
        Ok(Node::Plain(toml::Value::String(value.to_string())))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<toml::Value>>()? {
            items.push(item);
        }
        Ok(Node::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Node, A::Error> {
        let table = toml::Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Node::Plain(toml::Value::Table(table)))
    }
}

/// The field names of a struct, as its `Deserialize` gives them to the
/// deserializer (none for anything else).
pub fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _refused = T::deserialize(FieldNames(&mut names));
    names
}

/// A deserializer that only records the fields it is asked for.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("names only"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}
