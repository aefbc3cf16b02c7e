//! What the four provider normalizers share: a JSON walker that names the path of whatever is
//! missing or ill-typed, the checks every payload field goes through, and the event builders.
//!
//! Nothing here panics on any input: a missing field, a field of the wrong type or a value that
//! is no object id, ref, path or repository becomes a [`NormalizeError`] naming its JSON path.

use std::borrow::Cow;
use std::collections::HashSet;

use super::json::Json as Value;
use hyper::HeaderMap;
use jiff::Timestamp;

use super::{NormalizeError, delivery_id, header};
use crate::config::Provider;
use crate::event::{
    self, ChangeEvent, ChangeKind, PullRequest, SCHEMA, Source, SourceKind, ZERO_SHA,
};
use crate::repo::RepoId;

/// The value of the first of `names` that is present and not empty; the error names the first.
pub(super) fn event_type<'h>(
    headers: &'h HeaderMap,
    names: &[&str],
) -> Result<&'h str, NormalizeError> {
    names
        .iter()
        .find_map(|name| header(headers, name).filter(|v| !v.is_empty()))
        .ok_or_else(|| {
            let first = names.first().copied().unwrap_or("event type header");
            NormalizeError::new(first, "is missing: it names the event type of the delivery")
        })
}

/// The reason given for a well-formed delivery whose event type is no change.
pub(super) fn not_a_change(provider: Provider, event: &str) -> String {
    format!("{} event {event:?} is not a change", provider)
}

/// The reason given for the `create`/`delete` events GitHub and Gitea send next to the push.
pub(super) fn duplicates_push(provider: Provider, event: &str) -> String {
    format!("{} {event:?} events duplicate the push event", provider)
}

/// Parses a delivery body, which must be a JSON object. serde_json's recursion limit turns a
/// deeply nested body into an error here, like any other malformed JSON.
pub(super) fn parse_body(body: &[u8]) -> Result<Value<'_>, NormalizeError> {
    let value = Value::parse(body)
        .map_err(|e| NormalizeError::new("body", format!("is not valid JSON: {e}")))?;
    if matches!(value, Value::Object(_)) {
        Ok(value)
    } else {
        Err(NormalizeError::new(
            "body",
            format!("must be a JSON object, not {}", kind(&value)),
        ))
    }
}

/// How a JSON value is named in an error.
fn kind(value: &Value<'_>) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Unsigned(_) | Value::Signed(_) | Value::Float(_) => "a number",
        Value::Str(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A place in a payload, by JSON path (`push.changes[1].new.target.hash`), and what is there.
/// JSON `null` counts as absent. Walking through something that is not an object remembers the
/// fault, which the first read reports.
#[derive(Clone, Debug)]
pub(super) struct Field<'a> {
    path: String,
    state: State<'a>,
}

#[derive(Clone, Debug)]
enum State<'a> {
    Present(&'a Value<'a>),
    Absent,
    Broken(NormalizeError),
}

impl<'a> Field<'a> {
    /// The whole payload.
    pub(super) fn root(value: &'a Value<'a>) -> Field<'a> {
        Field {
            path: String::new(),
            state: State::Present(value),
        }
    }

    fn at(path: String, value: Option<&'a Value<'a>>) -> Field<'a> {
        let state = match value {
            Some(Value::Null) | None => State::Absent,
            Some(v) => State::Present(v),
        };
        Field { path, state }
    }

    /// The member `key` of this object.
    pub(super) fn get(&self, key: &str) -> Field<'a> {
        let path = if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        };
        let state = match &self.state {
            State::Present(object @ Value::Object(_)) => return Field::at(path, object.get(key)),
            State::Present(other) => {
                State::Broken(self.error(format!("must be an object, not {}", kind(other))))
            }
            State::Absent => State::Absent,
            State::Broken(e) => State::Broken(e.clone()),
        };
        Field { path, state }
    }

    /// An error about this field.
    pub(super) fn error(&self, message: impl Into<String>) -> NormalizeError {
        let field = if self.path.is_empty() {
            "body"
        } else {
            &self.path
        };
        NormalizeError::new(field, message)
    }

    /// True when a value (not `null`) is here.
    pub(super) fn is_present(&self) -> bool {
        matches!(self.state, State::Present(_))
    }

    fn value(&self) -> Result<Option<&'a Value<'a>>, NormalizeError> {
        match &self.state {
            State::Present(v) => Ok(Some(v)),
            State::Absent => Ok(None),
            State::Broken(e) => Err(e.clone()),
        }
    }

    fn wrong_type(&self, wanted: &str, got: &Value<'_>) -> NormalizeError {
        self.error(format!("must be {wanted}, not {}", kind(got)))
    }

    fn missing(&self) -> NormalizeError {
        self.error("is missing")
    }

    /// A string, if one is here.
    pub(super) fn opt_str(&self) -> Result<Option<&'a str>, NormalizeError> {
        match self.value()? {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type("a string", other)),
        }
    }

    /// A required string.
    pub(super) fn str(&self) -> Result<&'a str, NormalizeError> {
        self.opt_str()?.ok_or_else(|| self.missing())
    }

    /// A non-negative integer, if one is here.
    pub(super) fn opt_u64(&self) -> Result<Option<u64>, NormalizeError> {
        match self.value()? {
            None => Ok(None),
            Some(Value::Unsigned(n)) => Ok(Some(*n)),
            Some(n @ (Value::Signed(_) | Value::Float(_))) => {
                Err(self.error(format!("must be a non-negative integer, not {n}")))
            }
            Some(other) => Err(self.wrong_type("a non-negative integer", other)),
        }
    }

    /// A required non-negative integer.
    pub(super) fn u64(&self) -> Result<u64, NormalizeError> {
        self.opt_u64()?.ok_or_else(|| self.missing())
    }

    /// A boolean, if one is here.
    pub(super) fn opt_bool(&self) -> Result<Option<bool>, NormalizeError> {
        match self.value()? {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong_type("a boolean", other)),
        }
    }

    /// The elements of an array, if one is here; `null` elements count as absent.
    pub(super) fn opt_array(&self) -> Result<Option<Vec<Field<'a>>>, NormalizeError> {
        match self.value()? {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Field::at(format!("{}[{i}]", self.path), Some(v)))
                    .collect(),
            )),
            Some(other) => Err(self.wrong_type("an array", other)),
        }
    }

    /// The elements of a required array.
    pub(super) fn array(&self) -> Result<Vec<Field<'a>>, NormalizeError> {
        self.opt_array()?.ok_or_else(|| self.missing())
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

/// The repository named by the first of `candidates` that is present; when none is, the error
/// names the first as missing.
pub(super) fn repository(candidates: &[Field<'_>]) -> Result<RepoId, NormalizeError> {
    match candidates
        .iter()
        .find(|f| f.is_present())
        .or(candidates.first())
    {
        Some(field) => field.repository(),
        None => Err(NormalizeError::new("repository", "is missing")),
    }
}

/// The union of the `added`, `modified` and `removed` lists of `commits`, in first-seen order,
/// each path normalized; a path that escapes the repository (`../etc/passwd`) is an error naming
/// where it stands.
pub(super) fn changed_paths(commits: &[Field<'_>]) -> Result<Vec<String>, NormalizeError> {
    let mut seen = HashSet::new();
    let mut paths = Vec::new();
    for commit in commits {
        for list in ["added", "modified", "removed"] {
            for item in commit.get(list).opt_array()?.unwrap_or_default() {
                let path = item.str()?;
                let clean = event::normalize_path(path).map_err(|why| item.error(why))?;
                if seen.insert(clean.clone()) {
                    paths.push(clean);
                }
            }
        }
    }
    Ok(paths)
}

/// Whether a push payload's file lists can be trusted to cover the whole change.
#[derive(Clone, Copy, Debug)]
pub(super) struct Coverage {
    /// The ref was created: its files must be computed against a base the payload does not give.
    pub(super) created: bool,
    /// The ref was deleted: nothing changed in it, so the empty list is whole.
    pub(super) deleted: bool,
    /// A forced push: the listed commits do not cover the files of the commits it dropped.
    pub(super) forced: bool,
    /// How many commits the payload lists.
    pub(super) listed: usize,
    /// How many commits were pushed, when the payload says so in a way that can be trusted.
    pub(super) pushed: Option<u64>,
    /// The provider gives file lists at all (Bitbucket does not).
    pub(super) has_file_lists: bool,
}

impl Coverage {
    /// True only when the union of the listed commits' files is the whole change.
    pub(super) fn complete(self) -> bool {
        if self.deleted {
            return true;
        }
        self.has_file_lists
            && !self.created
            && !self.forced
            && self.pushed == u64::try_from(self.listed).ok()
    }
}

/// The parts of a push a provider's payload gives.
#[derive(Debug)]
pub(super) struct Push {
    pub(super) repository: RepoId,
    pub(super) git_ref: String,
    pub(super) before: String,
    pub(super) after: String,
    pub(super) commit_count: Option<u64>,
    pub(super) changed_paths: Vec<String>,
    pub(super) changed_paths_complete: bool,
    pub(super) occurred_at: Option<Timestamp>,
}

/// The parts of a pull-request activity a provider's payload gives.
#[derive(Debug)]
pub(super) struct Pull {
    pub(super) repository: RepoId,
    pub(super) number: u64,
    pub(super) action: String,
    pub(super) merged: bool,
    pub(super) head_ref: String,
    pub(super) head_sha: String,
    pub(super) base_ref: String,
    pub(super) base_sha: Option<String>,
    /// The head before new commits came, when the payload says (GitHub `synchronize`).
    pub(super) before: Option<String>,
    pub(super) commit_count: Option<u64>,
    pub(super) occurred_at: Option<Timestamp>,
}

/// Where the event came from: this webhook delivery.
fn source(provider: Provider, headers: &HeaderMap) -> Source {
    Source {
        kind: SourceKind::Webhook,
        provider: Some(provider.as_str().to_owned()),
        delivery_id: delivery_id(provider, headers),
    }
}

/// Seals a push into a change event. `created`/`deleted` follow the zero object ids; a deleted
/// ref has no changed paths.
pub(super) fn push_event(
    provider: Provider,
    headers: &HeaderMap,
    received_at: Timestamp,
    push: Push,
) -> Result<ChangeEvent, NormalizeError> {
    let created = event::is_zero(&push.before);
    let deleted = event::is_zero(&push.after);
    let changed_paths = if deleted {
        Vec::new()
    } else {
        push.changed_paths
    };
    let event = ChangeEvent {
        schema: SCHEMA.to_owned(),
        id: String::new(),
        repository: push.repository,
        kind: ChangeKind::Push,
        git_ref: push.git_ref,
        before: push.before,
        after: push.after,
        created,
        deleted,
        commit_count: push.commit_count,
        changed_paths,
        changed_paths_complete: push.changed_paths_complete,
        completion: None,
        pull_request: None,
        source: source(provider, headers),
        occurred_at: push.occurred_at,
        received_at,
    };
    Ok(event.seal()?)
}

/// Seals a pull-request activity into a change event: `ref` is the head branch, `after` the head
/// when it is a full object id (zeros otherwise), no file list.
pub(super) fn pull_event(
    provider: Provider,
    headers: &HeaderMap,
    received_at: Timestamp,
    pull: Pull,
) -> Result<ChangeEvent, NormalizeError> {
    let after = event::normalize_sha(&pull.head_sha).unwrap_or_else(|| ZERO_SHA.to_owned());
    let event = ChangeEvent {
        schema: SCHEMA.to_owned(),
        id: String::new(),
        repository: pull.repository,
        kind: ChangeKind::PullRequest,
        git_ref: pull.head_ref,
        before: pull.before.unwrap_or_else(|| ZERO_SHA.to_owned()),
        after,
        created: false,
        deleted: false,
        commit_count: pull.commit_count,
        changed_paths: Vec::new(),
        changed_paths_complete: false,
        completion: None,
        pull_request: Some(PullRequest {
            number: pull.number,
            action: pull.action,
            merged: pull.merged,
            base_ref: pull.base_ref,
            base_sha: pull.base_sha,
            head_sha: pull.head_sha,
        }),
        source: source(provider, headers),
        occurred_at: pull.occurred_at,
        received_at,
    };
    Ok(event.seal()?)
}

/// A provider's own activity name as the schema passes it through: lowercased.
pub(super) fn passthrough(action: &str) -> String {
    action.to_ascii_lowercase()
}

/// The commit figures of a GitHub-shaped push.
pub(super) struct Counts {
    /// The `commit_count` to report.
    pub(super) commit_count: Option<u64>,
    /// How many commits were pushed, when the payload says for sure (to judge the list whole).
    pub(super) pushed: Option<u64>,
}

/// A push in the shape GitHub and Gitea/Forgejo share: `ref`, `before`, `after`, `forced`,
/// `commits` with file lists, `repository.clone_url`, `head_commit.timestamp`. `counts` gets
/// the number of listed commits (when there is a list) and says what was pushed.
pub(super) fn forge_push(
    root: &Field<'_>,
    provider: Provider,
    headers: &HeaderMap,
    received_at: Timestamp,
    counts: impl FnOnce(Option<usize>) -> Result<Counts, NormalizeError>,
) -> Result<ChangeEvent, NormalizeError> {
    let git_ref = root.get("ref").full_ref()?;
    let before = root.get("before").sha()?;
    let after = root.get("after").sha()?;
    let commits = root.get("commits").opt_array()?;
    let listed = commits.as_ref().map(Vec::len);
    let Counts {
        commit_count,
        pushed,
    } = counts(listed)?;
    let changed_paths = changed_paths(commits.as_deref().unwrap_or_default())?;
    let coverage = Coverage {
        created: event::is_zero(&before),
        deleted: event::is_zero(&after),
        forced: root.get("forced").opt_bool()?.unwrap_or(false),
        listed: listed.unwrap_or(0),
        pushed,
        has_file_lists: true,
    };
    push_event(
        provider,
        headers,
        received_at,
        Push {
            repository: root.get("repository").get("clone_url").repository()?,
            git_ref,
            before,
            after,
            commit_count,
            changed_paths,
            changed_paths_complete: coverage.complete(),
            occurred_at: root.get("head_commit").get("timestamp").timestamp(),
        },
    )
}

/// A pull-request event in the GitHub shape, which Gitea and Forgejo copy: `action`, `number`,
/// `pull_request.{head,base}.{ref,sha}`, `pull_request.merged`, `pull_request.updated_at`, the
/// base repository in `pull_request.base.repo` or `repository`. `map_action` turns the
/// provider's action into the schema's (the `closed` merge state is filled in here).
pub(super) fn forge_pull_request(
    root: &Field<'_>,
    provider: Provider,
    headers: &HeaderMap,
    received_at: Timestamp,
    map_action: fn(&str) -> Cow<'static, str>,
) -> Result<ChangeEvent, NormalizeError> {
    let pr = root.get("pull_request");
    let raw_action = root.get("action").str()?;
    if raw_action.is_empty() {
        return Err(root.get("action").error("must not be empty"));
    }
    let number = match root.get("number").opt_u64()? {
        Some(n) => n,
        None => pr.get("number").u64()?,
    };
    let head = pr.get("head");
    let base = pr.get("base");
    let repository = repository(&[
        base.get("repo").get("clone_url"),
        root.get("repository").get("clone_url"),
    ])?;
    pull_event(
        provider,
        headers,
        received_at,
        Pull {
            repository,
            number,
            action: map_action(raw_action).into_owned(),
            merged: pr.get("merged").opt_bool()?.unwrap_or(false),
            head_ref: head.get("ref").short_ref("refs/heads/")?,
            head_sha: head.get("sha").abbrev_sha()?,
            base_ref: base.get("ref").short_ref("refs/heads/")?,
            base_sha: base.get("sha").opt_abbrev_sha()?,
            before: root.get("before").opt_sha()?,
            commit_count: pr.get("commits").opt_u64()?,
            occurred_at: pr.get("updated_at").timestamp(),
        },
    )
}
