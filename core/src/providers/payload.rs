//! Provider payloads as typed structs that borrow from the body, and the walk that names the
//! JSON path of whatever is missing or ill-typed.
//!
//! Each provider states the shape it reads once, as `#[derive(Deserialize)]` structs whose
//! fields are [`Slot`]s. serde skips every member no struct names without building it (strings
//! without escapes are borrowed), and a slot takes whatever JSON stands in its place: nothing
//! (absent or `null`), the value expected, or a value of another kind, remembered only as what
//! it was. Reading a body into its struct therefore fails only when the body is no JSON object
//! (or no UTF-8), and when an object repeats a key its struct names (serde's derived code
//! refuses a duplicate field, which the last one would otherwise win silently).
//!
//! The normalizers read the slots through [`View`], which knows the JSON path
//! (`push.changes[1].new.target.hash`) and only then judges: a field of the wrong kind, a
//! missing one or a value that is no object id, ref, path or repository becomes a
//! [`NormalizeError`] naming that path, in the order the normalizer reads them, and a field no
//! normalizer reads is never an error. Nothing here panics on any input. How deep serde_json
//! recurses is bounded by the structs: a value no struct expects is skipped without recursion,
//! so however deeply a body nests, it is no stack overflow.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use jiff::Timestamp;
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::NormalizeError;
use crate::event;
use crate::repo::RepoId;

/// What a payload holds where it should hold a `T`.
#[derive(Clone, Debug, Default)]
pub(super) enum Slot<T> {
    /// Nothing: the member is absent or `null`.
    #[default]
    Absent,
    /// The value expected.
    Here(T),
    /// A value of another kind.
    Other(Got),
}

/// A string where one is expected; borrowed from the body unless it has escapes.
pub(super) type Text<'a> = Slot<Cow<'a, str>>;

/// An array where one is expected.
pub(super) type List<T> = Slot<Vec<Slot<T>>>;

/// A value of the wrong kind, kept as what it was (a number whole, for the error).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Got {
    Bool,
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Str,
    Array,
    Object,
}

impl Got {
    /// How the kind is named in an error.
    fn kind(self) -> &'static str {
        match self {
            Got::Bool => "a boolean",
            Got::Unsigned(_) | Got::Signed(_) | Got::Float(_) => "a number",
            Got::Str => "a string",
            Got::Array => "an array",
            Got::Object => "an object",
        }
    }
}

/// A type a [`Slot`] holds, and the JSON values that make one; any other value is kept as a
/// [`Got`] (and skipped, when it is an array or an object).
pub(super) trait Expect<'de>: Sized {
    fn from_bool(_: bool) -> Option<Self> {
        None
    }

    fn from_u64(_: u64) -> Option<Self> {
        None
    }

    fn from_str(_: Cow<'de, str>) -> Option<Self> {
        None
    }

    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl Expect<'_> for bool {
    fn from_bool(v: bool) -> Option<bool> {
        Some(v)
    }
}

impl Expect<'_> for u64 {
    fn from_u64(v: u64) -> Option<u64> {
        Some(v)
    }
}

impl<'de: 'a, 'a> Expect<'de> for Cow<'a, str> {
    fn from_str(v: Cow<'de, str>) -> Option<Cow<'a, str>> {
        Some(v)
    }
}

impl<'de, T: Expect<'de>> Expect<'de> for Vec<Slot<T>> {
    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Some(items))
    }
}

/// A payload struct: a JSON object makes one, through its derived `Deserialize`.
pub(super) trait Object<'de>: Deserialize<'de> {}

impl<'de, T: Object<'de>> Expect<'de> for T {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Option<T>, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Some)
    }
}

/// Declares payload structs: each borrows its strings from the body (`'a`), takes every
/// member as optional (a [`Slot`] is absent by default) and is an [`Object`].
macro_rules! shapes {
    ($($(#[$meta:meta])* $vis:vis struct $name:ident<'a> { $($body:tt)* })*) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Default, serde::Deserialize)]
            #[serde(default, bound(deserialize = "'de: 'a"))]
            $vis struct $name<'a> { $($body)* }

            impl<'de: 'a, 'a> $crate::providers::payload::Object<'de> for $name<'a> {}
        )*
    };
}
pub(super) use shapes;

/// An object none of whose members is read: the body of a delivery that is no change, a
/// commit that is only counted.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Ignored {}

impl Object<'_> for Ignored {}

impl<'de, T: Expect<'de>> Deserialize<'de> for Slot<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Slot<T>, D::Error> {
        d.deserialize_any(SlotVisitor(PhantomData))
    }
}

struct SlotVisitor<T>(PhantomData<T>);

impl<'de, T: Expect<'de>> Visitor<'de> for SlotVisitor<T> {
    type Value = Slot<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Slot<T>, E> {
        Ok(Slot::Absent)
    }

    fn visit_none<E>(self) -> Result<Slot<T>, E> {
        Ok(Slot::Absent)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Slot<T>, D::Error> {
        Slot::deserialize(d)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Slot<T>, E> {
        Ok(T::from_bool(v).map_or(Slot::Other(Got::Bool), Slot::Here))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Slot<T>, E> {
        Ok(T::from_u64(v).map_or(Slot::Other(Got::Unsigned(v)), Slot::Here))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Slot<T>, E> {
        Ok(match u64::try_from(v) {
            Ok(v) => T::from_u64(v).map_or(Slot::Other(Got::Unsigned(v)), Slot::Here),
            Err(_) => Slot::Other(Got::Signed(v)),
        })
    }

    fn visit_f64<E>(self, v: f64) -> Result<Slot<T>, E> {
        Ok(Slot::Other(Got::Float(v)))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Slot<T>, E> {
        Ok(T::from_str(Cow::Borrowed(v)).map_or(Slot::Other(Got::Str), Slot::Here))
    }

    fn visit_str<E>(self, v: &str) -> Result<Slot<T>, E> {
        Ok(T::from_str(Cow::Owned(v.to_owned())).map_or(Slot::Other(Got::Str), Slot::Here))
    }

    fn visit_string<E>(self, v: String) -> Result<Slot<T>, E> {
        Ok(T::from_str(Cow::Owned(v)).map_or(Slot::Other(Got::Str), Slot::Here))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Slot<T>, A::Error> {
        Ok(T::from_seq(seq)?.map_or(Slot::Other(Got::Array), Slot::Here))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Slot<T>, A::Error> {
        Ok(T::from_map(map)?.map_or(Slot::Other(Got::Object), Slot::Here))
    }
}

/// Reads a delivery body, which must be a JSON object, as `T`.
pub(super) fn parse<'a, T: Object<'a>>(body: &'a [u8]) -> Result<T, NormalizeError> {
    let not_json =
        |e: &dyn fmt::Display| NormalizeError::new("body", format!("is not valid JSON: {e}"));
    // serde_json checks the UTF-8 of the strings it reads, not of those it skips.
    let text = std::str::from_utf8(body).map_err(|e| not_json(&e))?;
    let not_object =
        |what: &str| NormalizeError::new("body", format!("must be a JSON object, not {what}"));
    match serde_json::from_str::<Slot<T>>(text) {
        Ok(Slot::Here(payload)) => Ok(payload),
        Ok(Slot::Absent) => Err(not_object("null")),
        Ok(Slot::Other(got)) => Err(not_object(got.kind())),
        // The only data error a slot leaves: a duplicate field.
        Err(e) if e.is_data() => Err(NormalizeError::new("body", e.to_string())),
        Err(e) => Err(not_json(&e)),
    }
}

/// The deepest JSON path a normalizer reads has 6 steps
/// (`pullrequest.destination.repository.links.html.href`).
const DEPTH: usize = 8;

/// A JSON path, without allocating: `push.changes[1].new.target.hash`.
#[derive(Clone, Copy, Debug)]
struct At {
    steps: [Step; DEPTH],
    len: u8,
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Key(&'static str),
    Index(usize),
}

impl At {
    const ROOT: At = At {
        steps: [Step::Index(0); DEPTH],
        len: 0,
    };

    fn then(mut self, step: Step) -> At {
        debug_assert!(
            usize::from(self.len) < DEPTH,
            "a JSON path deeper than {DEPTH}"
        );
        if let Some(slot) = self.steps.get_mut(usize::from(self.len)) {
            *slot = step;
            self.len += 1;
        }
        self
    }

    /// The path of the first `len` steps, `body` when there are none.
    fn name(&self, len: u8) -> String {
        let steps = self.steps.get(..usize::from(len)).unwrap_or_default();
        if steps.is_empty() {
            return "body".to_owned();
        }
        let mut name = String::new();
        for step in steps {
            match step {
                Step::Key(key) if name.is_empty() => name.push_str(key),
                Step::Key(key) => {
                    name.push('.');
                    name.push_str(key);
                }
                Step::Index(i) => name.push_str(&format!("[{i}]")),
            }
        }
        name
    }
}

/// A place in a payload, by JSON path, and what is there. Walking through something that is not
/// an object remembers where, which the first read reports.
#[derive(Debug)]
pub(super) struct View<'s, T> {
    at: At,
    state: State<'s, T>,
}

#[derive(Debug)]
enum State<'s, T> {
    Here(&'s T),
    /// A value of another kind than `T`.
    Other(Got),
    Absent,
    /// The value at the first `.0` steps of the path is a `.1`, not an object.
    Broken(u8, Got),
}

impl<T> Clone for View<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for View<'_, T> {}

impl<T> Clone for State<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for State<'_, T> {}

impl<'s, T> View<'s, T> {
    /// The whole payload.
    pub(super) fn root(payload: &'s T) -> View<'s, T> {
        View {
            at: At::ROOT,
            state: State::Here(payload),
        }
    }

    fn at(at: At, slot: &'s Slot<T>) -> View<'s, T> {
        let state = match slot {
            Slot::Absent => State::Absent,
            Slot::Here(value) => State::Here(value),
            Slot::Other(got) => State::Other(*got),
        };
        View { at, state }
    }

    /// The member `key` of this object, which `field` picks from its struct.
    pub(super) fn get<U>(
        &self,
        key: &'static str,
        field: impl FnOnce(&'s T) -> &'s Slot<U>,
    ) -> View<'s, U> {
        let at = self.at.then(Step::Key(key));
        let state = match self.state {
            State::Here(object) => return View::at(at, field(object)),
            State::Other(got) => State::Broken(self.at.len, got),
            State::Absent => State::Absent,
            State::Broken(len, got) => State::Broken(len, got),
        };
        View { at, state }
    }

    /// An error about this field.
    pub(super) fn error(&self, message: impl Into<String>) -> NormalizeError {
        NormalizeError::new(self.at.name(self.at.len), message)
    }

    /// True when a value (not `null`) is here.
    pub(super) fn is_present(&self) -> bool {
        matches!(self.state, State::Here(_) | State::Other(_))
    }

    /// The value, if one is here; an error when another kind of value is (`wanted` names the
    /// kind expected) or when the path leads through something that is not an object.
    fn value(&self, wanted: &str) -> Result<Option<&'s T>, NormalizeError> {
        match self.state {
            State::Here(value) => Ok(Some(value)),
            State::Absent => Ok(None),
            State::Other(got) => Err(self.error(format!("must be {wanted}, not {}", got.kind()))),
            State::Broken(len, got) => Err(NormalizeError::new(
                self.at.name(len),
                format!("must be an object, not {}", got.kind()),
            )),
        }
    }

    fn missing(&self) -> NormalizeError {
        self.error("is missing")
    }
}

impl<'s> View<'s, Cow<'_, str>> {
    /// A string, if one is here.
    pub(super) fn opt_str(&self) -> Result<Option<&'s str>, NormalizeError> {
        Ok(self.value("a string")?.map(|s| &**s))
    }

    /// A required string.
    pub(super) fn str(&self) -> Result<&'s str, NormalizeError> {
        self.opt_str()?.ok_or_else(|| self.missing())
    }

    /// A full 40 or 64 character object id, lowercased.
    pub(super) fn sha(&self) -> Result<String, NormalizeError> {
        let s = self.str()?;
        event::normalize_sha(s)
            .ok_or_else(|| self.error(format!("{s:?} is not a 40 or 64 character hex object id")))
    }

    /// A full object id, if one is here.
    pub(super) fn opt_sha(&self) -> Result<Option<String>, NormalizeError> {
        if self.opt_str()?.is_none() {
            return Ok(None);
        }
        self.sha().map(Some)
    }

    /// An object id that may be abbreviated (7 to 64 hex digits), lowercased.
    pub(super) fn abbrev_sha(&self) -> Result<String, NormalizeError> {
        let s = self.str()?;
        event::normalize_abbrev_sha(s)
            .ok_or_else(|| self.error(format!("{s:?} is not a hex object id")))
    }

    /// A possibly abbreviated object id, if one is here.
    pub(super) fn opt_abbrev_sha(&self) -> Result<Option<String>, NormalizeError> {
        if self.opt_str()?.is_none() {
            return Ok(None);
        }
        self.abbrev_sha().map(Some)
    }

    /// A full ref name git accepts (`refs/heads/main`).
    pub(super) fn full_ref(&self) -> Result<String, NormalizeError> {
        let s = self.str()?;
        event::check_ref(s).map_err(|why| self.error(why))?;
        Ok(s.to_owned())
    }

    /// A short branch or tag name made into a full ref: `prefix` is `refs/heads/` or `refs/tags/`.
    pub(super) fn short_ref(&self, prefix: &str) -> Result<String, NormalizeError> {
        let full = format!("{prefix}{}", self.str()?);
        event::check_ref(&full).map_err(|why| self.error(why))?;
        Ok(full)
    }

    /// A repository named by its clone or web URL. A local path is refused: a provider always
    /// names a hosted repository, never one on this machine's disk.
    pub(super) fn repository(&self) -> Result<RepoId, NormalizeError> {
        let s = self.str()?;
        let id = RepoId::parse(s, None).map_err(|e| self.error(e.to_string()))?;
        if id.is_local() {
            return Err(self.error(format!("{s:?} is a local path, not a repository URL")));
        }
        Ok(id)
    }

    /// A point in time, if one is here and readable: RFC 3339 (`2019-05-15T15:20:33Z`,
    /// `2011-12-12T14:27:31+02:00`) or GitLab's older `2013-12-03 17:23:34 UTC`. Anything else
    /// is `None`: when a change happened is worth knowing, never worth refusing a delivery for.
    pub(super) fn timestamp(&self) -> Option<Timestamp> {
        let s = self.opt_str().ok().flatten()?.trim();
        if let Ok(ts) = s.parse::<Timestamp>() {
            return Some(ts);
        }
        let utc = s.strip_suffix(" UTC")?;
        format!("{}Z", utc.replacen(' ', "T", 1)).parse().ok()
    }
}

impl View<'_, u64> {
    /// A non-negative integer, if one is here.
    pub(super) fn opt_u64(&self) -> Result<Option<u64>, NormalizeError> {
        match self.state {
            State::Other(Got::Signed(n)) => Err(self.not_non_negative(&n)),
            State::Other(Got::Float(n)) => Err(self.not_non_negative(&n)),
            _ => Ok(self.value("a non-negative integer")?.copied()),
        }
    }

    fn not_non_negative(&self, n: &dyn fmt::Display) -> NormalizeError {
        self.error(format!("must be a non-negative integer, not {n}"))
    }

    /// A required non-negative integer.
    pub(super) fn u64(&self) -> Result<u64, NormalizeError> {
        self.opt_u64()?.ok_or_else(|| self.missing())
    }
}

impl View<'_, bool> {
    /// A boolean, if one is here.
    pub(super) fn opt_bool(&self) -> Result<Option<bool>, NormalizeError> {
        Ok(self.value("a boolean")?.copied())
    }
}

impl<'s, U> View<'s, Vec<Slot<U>>> {
    /// The elements of an array, if one is here; `null` elements count as absent.
    pub(super) fn opt_array(&self) -> Result<Option<Items<'s, U>>, NormalizeError> {
        Ok(self
            .value("an array")?
            .map(|slots| Items { at: self.at, slots }))
    }

    /// The elements of a required array.
    pub(super) fn array(&self) -> Result<Items<'s, U>, NormalizeError> {
        self.opt_array()?.ok_or_else(|| self.missing())
    }
}

/// The elements of an array in a payload.
#[derive(Debug)]
pub(super) struct Items<'s, U> {
    at: At,
    slots: &'s [Slot<U>],
}

impl<U> Clone for Items<'_, U> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<U> Copy for Items<'_, U> {}

impl<'s, U> Items<'s, U> {
    /// No elements.
    pub(super) const EMPTY: Items<'s, U> = Items {
        at: At::ROOT,
        slots: &[],
    };

    /// How many elements.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Each element, by its path (`commits[1]`).
    pub(super) fn iter(&self) -> impl Iterator<Item = View<'s, U>> + 's {
        let at = self.at;
        let slots = self.slots;
        slots
            .iter()
            .enumerate()
            .map(move |(i, slot)| View::at(at.then(Step::Index(i)), slot))
    }
}
