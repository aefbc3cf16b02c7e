//! The change event `switchyard.change/v1`: the one shape every source reduces a notice to.
//!
//! The id is derived, never chosen by a source: for a push from (repository, ref, before, after),
//! for a pull request from (repository, number, action, head sha). The same push reported by a
//! webhook, an EventBridge event and a poll therefore has one id. This module does no I/O.

use std::borrow::Cow;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::repo::RepoId;

/// The schema name every change event carries.
pub const SCHEMA: &str = "switchyard.change/v1";

/// The object id git uses for "no object": a created ref's `before`, a deleted ref's `after`.
pub const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// A change to a repository, normalized.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub schema: String,
    pub id: String,
    pub repository: RepoId,
    pub kind: ChangeKind,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub before: String,
    pub after: String,
    pub created: bool,
    pub deleted: bool,
    pub commit_count: Option<u64>,
    pub changed_paths: Vec<String>,
    pub changed_paths_complete: bool,
    /// Set when switchyard tried to complete `changed_paths` from its mirror: how that went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion: Option<Completion>,
    pub pull_request: Option<PullRequest>,
    pub source: Source,
    #[serde(with = "opt_millis")]
    pub occurred_at: Option<Timestamp>,
    #[serde(with = "millis")]
    pub received_at: Timestamp,
}

/// Push or pull request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Push,
    PullRequest,
}

/// How the completion of an event's changed paths from switchyard's mirror went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    pub outcome: CompletionOutcome,
    /// Why the paths stayed unknown, when they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The end of a completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionOutcome {
    /// The paths were computed from the mirror; the list is complete.
    Completed,
    /// The mirror could not give them (unreachable, objects missing): still unknown.
    Failed,
    /// Not done within `polling.complete_within`: dispatched with the paths unknown.
    TimedOut,
}

impl fmt::Display for CompletionOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompletionOutcome::Completed => "completed from the mirror",
            CompletionOutcome::Failed => "could not be completed from the mirror",
            CompletionOutcome::TimedOut => "not completed in time",
        })
    }
}

/// The pull-request part of a change event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    /// `opened`, `reopened`, `updated`, `closed`, or the provider's own lowercased activity name.
    pub action: String,
    pub merged: bool,
    pub base_ref: String,
    pub base_sha: Option<String>,
    pub head_sha: String,
}

/// Which source reported the change, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub kind: SourceKind,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub delivery_id: Option<String>,
}

/// The three ways a change arrives, plus a hand-written event given to a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Webhook,
    Eventbridge,
    Poll,
    Manual,
}

impl SourceKind {
    /// The word stored, shown and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Webhook => "webhook",
            SourceKind::Eventbridge => "eventbridge",
            SourceKind::Poll => "poll",
            SourceKind::Manual => "manual",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a ref names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind<'a> {
    Branch(&'a str),
    Tag(&'a str),
    Other(&'a str),
}

/// A change event that could not be accepted, naming the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EventError {
    pub field: String,
    pub message: String,
}

impl EventError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> EventError {
        EventError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The shape accepted on input: derived and stamped fields may be left out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputEvent {
    schema: String,
    #[serde(default)]
    id: Option<String>,
    repository: String,
    kind: ChangeKind,
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    #[serde(default)]
    created: Option<bool>,
    #[serde(default)]
    deleted: Option<bool>,
    #[serde(default)]
    commit_count: Option<u64>,
    #[serde(default)]
    changed_paths: Vec<String>,
    #[serde(default)]
    changed_paths_complete: Option<bool>,
    #[serde(default)]
    completion: Option<Completion>,
    #[serde(default)]
    pull_request: Option<PullRequest>,
    #[serde(default)]
    source: Option<Source>,
    #[serde(default, with = "opt_millis")]
    occurred_at: Option<Timestamp>,
    #[serde(default, with = "opt_millis")]
    received_at: Option<Timestamp>,
}

impl ChangeEvent {
    /// Parses a change event from JSON written by any producer, validates every field, fills the
    /// derived ones (`id`, `created`, `deleted`) and stamps `received_at` and `source` when absent.
    /// A given `id` must equal the derived one.
    pub fn from_json(bytes: &[u8], default_source: Source) -> Result<ChangeEvent, EventError> {
        let input: InputEvent =
            serde_json::from_slice(bytes).map_err(|e| EventError::new("event", format!("{e}")))?;
        if input.schema != SCHEMA {
            return Err(EventError::new(
                "schema",
                format!("is {:?}, expected {SCHEMA:?}", input.schema),
            ));
        }
        let repository = RepoId::parse_id(&input.repository)
            .map_err(|e| EventError::new("repository", e.to_string()))?;
        let before = normalize_sha(&input.before).ok_or_else(|| {
            EventError::new("before", "must be a 40 or 64 character hex object id")
        })?;
        let after = normalize_sha(&input.after).ok_or_else(|| {
            EventError::new("after", "must be a 40 or 64 character hex object id")
        })?;
        let mut changed_paths = Vec::with_capacity(input.changed_paths.len());
        for (i, path) in input.changed_paths.iter().enumerate() {
            let clean = normalize_path(path)
                .map_err(|why| EventError::new(format!("changed_paths[{i}]"), why))?;
            changed_paths.push(clean);
        }
        let mut event = ChangeEvent {
            schema: SCHEMA.to_owned(),
            id: String::new(),
            repository,
            kind: input.kind,
            git_ref: input.git_ref,
            created: input.created.unwrap_or(is_zero(&before)),
            deleted: input.deleted.unwrap_or(is_zero(&after)),
            before,
            after,
            commit_count: input.commit_count,
            changed_paths,
            changed_paths_complete: input.changed_paths_complete.unwrap_or(true),
            completion: input.completion,
            pull_request: input.pull_request,
            source: input.source.unwrap_or(default_source),
            occurred_at: input.occurred_at,
            received_at: input.received_at.unwrap_or_else(Timestamp::now),
        };
        event.validate()?;
        event.id = event.derive_id();
        if let Some(given) = input.id
            && given != event.id
        {
            return Err(EventError::new(
                "id",
                format!(
                    "{given:?} is not the derived id {:?}; leave it out to derive it",
                    event.id
                ),
            ));
        }
        Ok(event)
    }

    /// Checks the invariants the schema states. Paths must already be normalized.
    pub fn validate(&self) -> Result<(), EventError> {
        check_ref(&self.git_ref).map_err(|why| EventError::new("ref", why))?;
        for (field, sha) in [("before", &self.before), ("after", &self.after)] {
            if normalize_sha(sha).as_deref() != Some(sha.as_str()) {
                return Err(EventError::new(field, "must be a lowercase hex object id"));
            }
        }
        match (self.kind, &self.pull_request) {
            (ChangeKind::Push, Some(_)) => {
                return Err(EventError::new("pull_request", "must be null for a push"));
            }
            (ChangeKind::PullRequest, None) => {
                return Err(EventError::new(
                    "pull_request",
                    "is required for a pull_request",
                ));
            }
            (ChangeKind::PullRequest, Some(pr)) => {
                check_ref(&pr.base_ref)
                    .map_err(|why| EventError::new("pull_request.base_ref", why))?;
                if pr.action.is_empty() {
                    return Err(EventError::new("pull_request.action", "must not be empty"));
                }
                if normalize_abbrev_sha(&pr.head_sha).as_deref() != Some(pr.head_sha.as_str()) {
                    return Err(EventError::new(
                        "pull_request.head_sha",
                        "must be a lowercase hex object id",
                    ));
                }
                if let Some(base) = &pr.base_sha
                    && normalize_abbrev_sha(base).as_deref() != Some(base.as_str())
                {
                    return Err(EventError::new(
                        "pull_request.base_sha",
                        "must be a lowercase hex object id",
                    ));
                }
                if self.created || self.deleted {
                    return Err(EventError::new(
                        "created",
                        "a pull request is neither created nor deleted as a ref",
                    ));
                }
            }
            (ChangeKind::Push, None) => {
                if self.created != is_zero(&self.before) {
                    return Err(EventError::new(
                        "created",
                        "must be true exactly when `before` is all zeros",
                    ));
                }
                if self.deleted != is_zero(&self.after) {
                    return Err(EventError::new(
                        "deleted",
                        "must be true exactly when `after` is all zeros",
                    ));
                }
                if self.created && self.deleted {
                    return Err(EventError::new(
                        "after",
                        "a ref cannot be created and deleted",
                    ));
                }
            }
        }
        for (i, path) in self.changed_paths.iter().enumerate() {
            if normalize_path(path).as_deref() != Ok(path.as_str()) {
                return Err(EventError::new(
                    format!("changed_paths[{i}]"),
                    "must be a normalized repository-relative path",
                ));
            }
        }
        Ok(())
    }

    /// Finishes an event a source built: lowercases the object ids, normalizes the changed paths
    /// (dropping repeats), validates every field and derives the id. The error names the field.
    pub fn seal(mut self) -> Result<ChangeEvent, EventError> {
        self.schema = SCHEMA.to_owned();
        let lower = |field: &str, sha: &str| {
            normalize_sha(sha).ok_or_else(|| {
                EventError::new(
                    field,
                    format!("{sha:?} is not a 40 or 64 character hex object id"),
                )
            })
        };
        self.before = lower("before", &self.before)?;
        self.after = lower("after", &self.after)?;
        let abbrev = |field: &str, sha: &str| {
            normalize_abbrev_sha(sha)
                .ok_or_else(|| EventError::new(field, format!("{sha:?} is not a hex object id")))
        };
        if let Some(pr) = &mut self.pull_request {
            pr.head_sha = abbrev("pull_request.head_sha", &pr.head_sha)?;
            if let Some(base) = &pr.base_sha {
                pr.base_sha = Some(abbrev("pull_request.base_sha", base)?);
            }
        }
        let mut paths = Vec::with_capacity(self.changed_paths.len());
        let mut seen = std::collections::HashSet::with_capacity(self.changed_paths.len());
        for (i, path) in self.changed_paths.iter().enumerate() {
            let clean = normalize_path(path)
                .map_err(|why| EventError::new(format!("changed_paths[{i}]"), why))?;
            if seen.insert(clean.clone()) {
                paths.push(clean);
            }
        }
        self.changed_paths = paths;
        self.validate()?;
        self.id = self.derive_id();
        Ok(self)
    }

    /// The stable id of this change: the same change from any source has the same id.
    pub fn derive_id(&self) -> String {
        let mut h = Sha256::new();
        let mut part = |s: &str| {
            h.update(s.as_bytes());
            h.update([0u8]);
        };
        part(SCHEMA);
        part(self.repository.as_str());
        match &self.pull_request {
            Some(pr) if self.kind == ChangeKind::PullRequest => {
                part("pull_request");
                part(&pr.number.to_string());
                part(&pr.action);
                part(&pr.head_sha);
            }
            _ => {
                part("push");
                part(&self.git_ref);
                part(&self.before);
                part(&self.after);
            }
        }
        crate::signature::to_hex(&h.finalize()[..16])
    }

    /// What the pushed ref names (for a pull request, its head branch).
    pub fn ref_kind(&self) -> RefKind<'_> {
        ref_kind(&self.git_ref)
    }

    /// The commit a pipeline should build: `after` for a push, the head for a pull request.
    pub fn sha(&self) -> &str {
        match &self.pull_request {
            Some(pr) => &pr.head_sha,
            None => &self.after,
        }
    }
}

/// Splits a full ref name into branch, tag or other.
pub fn ref_kind(full: &str) -> RefKind<'_> {
    if let Some(b) = full.strip_prefix("refs/heads/") {
        RefKind::Branch(b)
    } else if let Some(t) = full.strip_prefix("refs/tags/") {
        RefKind::Tag(t)
    } else {
        RefKind::Other(full)
    }
}

/// True when `sha` is git's "no object" id (any length).
pub fn is_zero(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

/// Lowercases a 40 (SHA-1) or 64 (SHA-256) hex object id; `None` when it is not one.
pub fn normalize_sha(sha: &str) -> Option<String> {
    let ok = matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| sha.to_ascii_lowercase())
}

/// Lowercases an object id that may be abbreviated (7 to 64 hex digits), as Bitbucket Cloud
/// gives in pull-request payloads; `None` when it is not one.
pub fn normalize_abbrev_sha(sha: &str) -> Option<String> {
    let ok = (7..=64).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| sha.to_ascii_lowercase())
}

/// A ref, path or repository from a payload as people see it, on the status page and in the
/// commands' text: the characters that are invisible or reorder text (bidirectional controls,
/// zero-width characters, control characters) are written as escapes (`\u{202E}`), so a ref
/// cannot be made to read as another. The JSON answers keep the value as it is.
pub fn shown(text: &str) -> Cow<'_, str> {
    if !text.chars().any(deceives) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if deceives(c) {
            out.push_str(&format!("\\u{{{:04X}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether `c` is invisible or changes how the text around it reads (Unicode's bidirectional
/// formatting characters, as in CVE-2021-42574, the zero-width and other format characters
/// that render as nothing, and control characters).
fn deceives(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// Checks a full ref name against git's rules for ref names (`git check-ref-format`).
pub fn check_ref(name: &str) -> Result<(), String> {
    if !name.starts_with("refs/") {
        return Err(format!(
            "{name:?} is not a full ref name (refs/heads/…, refs/tags/…)"
        ));
    }
    if name.len() > 1024 {
        return Err("is longer than 1024 bytes".to_owned());
    }
    let bad_char = name.chars().find(|&c| {
        c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
    });
    if let Some(c) = bad_char {
        return Err(format!(
            "{name:?} contains {c:?}, which git does not allow in a ref"
        ));
    }
    if name.contains("..") || name.contains("@{") || name.contains("//") || name.ends_with('/') {
        return Err(format!("{name:?} is not a valid git ref name"));
    }
    for component in name.split('/') {
        if component.is_empty() || component.starts_with('.') || component.ends_with(".lock") {
            return Err(format!("{name:?} is not a valid git ref name"));
        }
    }
    if name.ends_with('.') || name == "refs/heads/@" {
        return Err(format!("{name:?} is not a valid git ref name"));
    }
    Ok(())
}

/// Normalizes a changed path from a provider: strips a leading `/` or `./`, collapses `//`.
/// A path with a `..` segment, an empty path or one with a NUL byte is rejected.
pub fn normalize_path(path: &str) -> Result<String, String> {
    if path.contains('\0') {
        return Err("contains a NUL byte".to_owned());
    }
    let mut out = String::with_capacity(path.len());
    for segment in path.split('/') {
        match segment {
            "" | "." => continue,
            ".." => return Err(format!("{path:?} has a \"..\" segment")),
            s => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(s);
            }
        }
    }
    if out.is_empty() {
        return Err(format!("{path:?} names no file"));
    }
    Ok(out)
}

/// RFC 3339 with milliseconds, always in UTC: `2026-11-26T10:00:00.120Z`.
pub fn format_millis(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A time in Unix ms as [`format_millis`] writes it; the number itself when out of range.
pub fn format_ms(ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .map(format_millis)
        .unwrap_or_else(|_| ms.to_string())
}

mod millis {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_millis(*ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

mod opt_millis {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match ts {
            Some(ts) => s.serialize_str(&super::format_millis(*ts)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
        text.map(|t| t.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests;
