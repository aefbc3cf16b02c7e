//! A JSON document that borrows its strings from the payload and keeps objects as lists.
//!
//! Provider payloads are large (7 KB for a small GitHub push) and only a few dozen of their
//! fields matter. `serde_json::Value` allocates every string and builds a `BTreeMap` for every
//! object; this keeps the text in place (unless it holds escapes) and reads objects linearly,
//! which is faster for the small objects payloads are made of. serde_json's recursion limit
//! still applies, so a deeply nested body is an error, not a stack overflow.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One JSON value.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Json<'a> {
    Null,
    Bool(bool),
    /// A non-negative integer.
    Unsigned(u64),
    /// A negative integer.
    Signed(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Members in document order; when a key repeats, the last one counts (as in serde_json).
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Parses a document.
    pub(super) fn parse(body: &'a [u8]) -> Result<Json<'a>, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// The member `key` of an object.
    pub(super) fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl fmt::Display for Json<'_> {
    /// Numbers as JSON writes them (for error messages).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Unsigned(n) => write!(f, "{n}"),
            Json::Signed(n) => write!(f, "{n}"),
            Json::Float(n) => write!(f, "{n}"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Null => f.write_str("null"),
            Json::Str(s) => write!(f, "{s:?}"),
            Json::Array(_) => f.write_str("[…]"),
            Json::Object(_) => f.write_str("{…}"),
        }
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(if v >= 0 {
            Json::Unsigned(v as u64)
        } else {
            Json::Signed(v)
        })
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Unsigned(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        Ok(Json::Float(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        Deserialize::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(key) = map.next_key::<Key<'de>>()? {
            members.push((key.0, map.next_value()?));
        }
        Ok(Json::Object(members))
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_serde_json_and_borrows() {
        let text =
            br#"{"a": [1, -2, 3.5, true, null, "x"], "b": {"c": "d\"e"}, "a2": "f", "a2": "g"}"#;
        let doc = Json::parse(text).unwrap_or_else(|e| panic!("{e}"));
        let Some(Json::Array(a)) = doc.get("a") else {
            panic!("no array")
        };
        assert_eq!(
            a,
            &vec![
                Json::Unsigned(1),
                Json::Signed(-2),
                Json::Float(3.5),
                Json::Bool(true),
                Json::Null,
                Json::Str(Cow::Borrowed("x"))
            ]
        );
        assert!(
            matches!(a[5], Json::Str(Cow::Borrowed(_))),
            "plain strings are borrowed"
        );
        assert_eq!(
            doc.get("b").and_then(|b| b.get("c")),
            Some(&Json::Str(Cow::Owned("d\"e".into())))
        );
        assert_eq!(
            doc.get("a2"),
            Some(&Json::Str(Cow::Borrowed("g"))),
            "the last of repeated keys"
        );
        assert_eq!(doc.get("zz"), None);
        let bomb = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(Json::parse(bomb.as_bytes()).is_err(), "recursion limit");
        assert!(Json::parse(b"{\"a\": ").is_err());
    }
}
