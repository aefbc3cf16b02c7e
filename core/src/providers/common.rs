//! What the four provider normalizers share: the event-type header, the payload shapes GitHub
//! and Gitea/Forgejo have in common (and the commit GitLab lists the same way), the rules that
//! judge a push's file lists, and the event builders.
//!
//! Nothing here panics on any input: a missing field, a field of the wrong type or a value that
//! is no object id, ref, path or repository becomes a [`NormalizeError`] naming its JSON path.

use std::borrow::Cow;
use std::collections::HashSet;

use http::HeaderMap;
use jiff::Timestamp;

use super::payload::{Items, List, Slot, Text, View, shapes};
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

/// The repository named by the first of `candidates` that is present; when none is, the error
/// names the first as missing.
pub(super) fn repository(candidates: &[View<'_, Cow<'_, str>>]) -> Result<RepoId, NormalizeError> {
    match candidates
        .iter()
        .find(|f| f.is_present())
        .or(candidates.first())
    {
        Some(field) => field.repository(),
        None => Err(NormalizeError::new("repository", "is missing")),
    }
}

shapes! {
    /// A commit as push payloads list it (GitHub, Gitea/Forgejo and GitLab alike).
    pub(super) struct Commit<'a> {
        pub(super) id: Text<'a>,
        pub(super) timestamp: Text<'a>,
        pub(super) added: List<Cow<'a, str>>,
        pub(super) modified: List<Cow<'a, str>>,
        pub(super) removed: List<Cow<'a, str>>,
    }
}

impl<'a> Commit<'a> {
    /// The commit's three file lists, by their JSON names.
    pub(super) fn file_lists<'s>(
        commit: &View<'s, Commit<'a>>,
    ) -> [View<'s, Vec<Slot<Cow<'a, str>>>>; 3] {
        [
            commit.get("added", |c| &c.added),
            commit.get("modified", |c| &c.modified),
            commit.get("removed", |c| &c.removed),
        ]
    }
}

/// The union of the `added`, `modified` and `removed` lists of `commits`, in first-seen order,
/// each path normalized; a path that escapes the repository (`../etc/passwd`) is an error naming
/// where it stands.
pub(super) fn changed_paths(commits: Items<'_, Commit<'_>>) -> Result<Vec<String>, NormalizeError> {
    let mut seen = HashSet::new();
    let mut paths = Vec::new();
    for commit in commits.iter() {
        for list in Commit::file_lists(&commit) {
            for item in list.opt_array()?.unwrap_or(Items::EMPTY).iter() {
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

shapes! {
    /// A push in the shape GitHub and Gitea/Forgejo share.
    pub(super) struct ForgePush<'a> {
        r#ref: Text<'a>,
        before: Text<'a>,
        after: Text<'a>,
        forced: Slot<bool>,
        commits: List<Commit<'a>>,
        repository: Slot<Repository<'a>>,
        head_commit: Slot<Commit<'a>>,
        /// Gitea and Forgejo only: how many commits were pushed.
        pub(super) total_commits: Slot<u64>,
    }

    /// A repository as GitHub and Gitea/Forgejo name it.
    pub(super) struct Repository<'a> {
        clone_url: Text<'a>,
    }

    /// A pull-request event in the GitHub shape, which Gitea and Forgejo copy.
    pub(super) struct ForgePull<'a> {
        action: Text<'a>,
        number: Slot<u64>,
        before: Text<'a>,
        pull_request: Slot<PullBlock<'a>>,
        repository: Slot<Repository<'a>>,
    }

    /// The `pull_request` block of a [`ForgePull`].
    pub(super) struct PullBlock<'a> {
        number: Slot<u64>,
        merged: Slot<bool>,
        commits: Slot<u64>,
        updated_at: Text<'a>,
        head: Slot<Branch<'a>>,
        base: Slot<Branch<'a>>,
    }

    /// The head or base of a [`PullRequest`].
    pub(super) struct Branch<'a> {
        r#ref: Text<'a>,
        sha: Text<'a>,
        repo: Slot<Repository<'a>>,
    }
}

/// A [`ForgePush`]: `ref`, `before`, `after`, `forced`, `commits` with file lists,
/// `repository.clone_url`, `head_commit.timestamp`. `counts` gets the number of listed commits
/// (when there is a list) and says what was pushed.
pub(super) fn forge_push(
    root: &View<'_, ForgePush<'_>>,
    provider: Provider,
    headers: &HeaderMap,
    received_at: Timestamp,
    counts: impl FnOnce(Option<usize>) -> Result<Counts, NormalizeError>,
) -> Result<ChangeEvent, NormalizeError> {
    let git_ref = root.get("ref", |p| &p.r#ref).full_ref()?;
    let before = root.get("before", |p| &p.before).sha()?;
    let after = root.get("after", |p| &p.after).sha()?;
    let commits = root.get("commits", |p| &p.commits).opt_array()?;
    let listed = commits.map(|c| c.len());
    let Counts {
        commit_count,
        pushed,
    } = counts(listed)?;
    let changed_paths = changed_paths(commits.unwrap_or(Items::EMPTY))?;
    let coverage = Coverage {
        created: event::is_zero(&before),
        deleted: event::is_zero(&after),
        forced: root
            .get("forced", |p| &p.forced)
            .opt_bool()?
            .unwrap_or(false),
        listed: listed.unwrap_or(0),
        pushed,
        has_file_lists: true,
    };
    push_event(
        provider,
        headers,
        received_at,
        Push {
            repository: root
                .get("repository", |p| &p.repository)
                .get("clone_url", |r| &r.clone_url)
                .repository()?,
            git_ref,
            before,
            after,
            commit_count,
            changed_paths,
            changed_paths_complete: coverage.complete(),
            occurred_at: root
                .get("head_commit", |p| &p.head_commit)
                .get("timestamp", |c| &c.timestamp)
                .timestamp(),
        },
    )
}

/// A [`ForgePull`]: `action`, `number`, `pull_request.{head,base}.{ref,sha}`,
/// `pull_request.merged`, `pull_request.updated_at`, the base repository in
/// `pull_request.base.repo` or `repository`. `map_action` turns the provider's action into the
/// schema's (the `closed` merge state is filled in here).
pub(super) fn forge_pull_request(
    root: &View<'_, ForgePull<'_>>,
    provider: Provider,
    headers: &HeaderMap,
    received_at: Timestamp,
    map_action: fn(&str) -> Cow<'static, str>,
) -> Result<ChangeEvent, NormalizeError> {
    let pr = root.get("pull_request", |p| &p.pull_request);
    let action = root.get("action", |p| &p.action);
    let raw_action = action.str()?;
    if raw_action.is_empty() {
        return Err(action.error("must not be empty"));
    }
    let number = match root.get("number", |p| &p.number).opt_u64()? {
        Some(n) => n,
        None => pr.get("number", |p| &p.number).u64()?,
    };
    let head = pr.get("head", |p| &p.head);
    let base = pr.get("base", |p| &p.base);
    let repository = repository(&[
        base.get("repo", |b| &b.repo)
            .get("clone_url", |r| &r.clone_url),
        root.get("repository", |p| &p.repository)
            .get("clone_url", |r| &r.clone_url),
    ])?;
    pull_event(
        provider,
        headers,
        received_at,
        Pull {
            repository,
            number,
            action: map_action(raw_action).into_owned(),
            merged: pr.get("merged", |p| &p.merged).opt_bool()?.unwrap_or(false),
            head_ref: head.get("ref", |b| &b.r#ref).short_ref("refs/heads/")?,
            head_sha: head.get("sha", |b| &b.sha).abbrev_sha()?,
            base_ref: base.get("ref", |b| &b.r#ref).short_ref("refs/heads/")?,
            base_sha: base.get("sha", |b| &b.sha).opt_abbrev_sha()?,
            before: root.get("before", |p| &p.before).opt_sha()?,
            commit_count: pr.get("commits", |p| &p.commits).opt_u64()?,
            occurred_at: pr.get("updated_at", |p| &p.updated_at).timestamp(),
        },
    )
}
