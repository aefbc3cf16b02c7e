//! GitLab webhook deliveries: `Push Hook`, `Tag Push Hook` and `Merge Request Hook` of project
//! and group hooks, and the same three events of an instance's system hook (`System Hook`);
//! every other event type is answered as no change.
//!
//! The event type is in `X-Gitlab-Event` and again in the body's `object_kind`; the two must
//! agree. A push lists at most 20 commits and says how many were pushed in
//! `total_commits_count`: the union of the listed files is complete only when every pushed
//! commit is listed with its files. GitLab sends no `forced` flag, so a forced push cannot be
//! told from a fast-forward. Merge request actions: `open`→`opened`, `reopen`→`reopened`,
//! `update` with new commits (`oldrev`)→`updated`, other `update`s→`edited`, `merge`→`closed`
//! merged, `close`→`closed` not merged, anything else lowercased.
//!
//! A system hook sends every event as `System Hook` and names it in the body: `event_name`
//! (`push`, `tag_push`, `project_create`, …) or, in GitLab's newer schema, `object_kind`
//! (`merge_request`). Its pushes and merge requests are the project hook's payloads and become
//! the same change events (the same ids). GitLab's documented examples leave out `object_kind`,
//! which a system hook does without, and the commits' file lists, which leaves the paths
//! incomplete. Every other system event is no change, `repository_update` included.

use http::HeaderMap;
use jiff::Timestamp;

use super::common::{self, Commit, Coverage, Pull, Push};
use super::payload::{self, Items, List, Slot, Text, View, shapes};
use super::{NormalizeError, Normalized};
use crate::config::Provider;
use crate::event::{self, ChangeEvent};

/// Normalizes one GitLab delivery.
pub fn normalize(
    headers: &HeaderMap,
    body: &[u8],
    received_at: Timestamp,
) -> Result<Normalized, NormalizeError> {
    let kind = common::event_type(headers, &["X-Gitlab-Event"])?;
    let payload = payload::parse::<GitLab<'_>>(body)?;
    let root = View::root(&payload);
    let object_kind = match kind {
        "Push Hook" => "push",
        "Tag Push Hook" => "tag_push",
        "Merge Request Hook" => "merge_request",
        "System Hook" => return system_hook(&root, headers, received_at),
        other => {
            return Ok(Normalized::Ignored(common::not_a_change(
                Provider::GitLab,
                other,
            )));
        }
    };
    let said_at = root.get("object_kind", |p| &p.object_kind);
    let said = said_at.str()?;
    if said != object_kind {
        return Err(said_at.error(format!(
            "is {said:?}, but X-Gitlab-Event {kind:?} means {object_kind:?}"
        )));
    }
    let event = match object_kind {
        "merge_request" => merge_request(&root, headers, received_at)?,
        _ => push(&root, headers, received_at)?,
    };
    Ok(Normalized::Changes(vec![event]))
}

/// The system events that are changes, as a system hook names them.
const SYSTEM_CHANGES: [&str; 3] = ["push", "tag_push", "merge_request"];

/// A system hook's delivery: a push, tag push or merge request read exactly as a project hook's,
/// anything else no change. The event is named by `event_name` or `object_kind`; GitLab sends
/// both for pushes, the documented examples only one. When both are given and either names a
/// change they must agree, so that a payload cannot be read as a change it does not claim to be.
fn system_hook(
    root: &View<'_, GitLab<'_>>,
    headers: &HeaderMap,
    received_at: Timestamp,
) -> Result<Normalized, NormalizeError> {
    let event_name = root.get("event_name", |p| &p.event_name);
    let object_kind = root.get("object_kind", |p| &p.object_kind);
    let (field, event) = match (event_name.opt_str()?, object_kind.opt_str()?) {
        (Some(named), Some(kind))
            if named != kind
                && (SYSTEM_CHANGES.contains(&named) || SYSTEM_CHANGES.contains(&kind)) =>
        {
            return Err(object_kind.error(format!("is {kind:?}, but event_name is {named:?}")));
        }
        (Some(named), _) => (&event_name, named),
        (None, Some(kind)) => (&object_kind, kind),
        (None, None) => {
            return Err(event_name
                .error("is missing: a system hook names its event in event_name or object_kind"));
        }
    };
    let event = match event {
        "push" | "tag_push" => push(root, headers, received_at)?,
        "merge_request" => merge_request(root, headers, received_at)?,
        "" => return Err(field.error("must not be empty")),
        // GitLab sends `repository_update` once per push, besides one `push` or `tag_push` event
        // per ref it moved (when those are enabled on the hook). The per-ref events carry the
        // change with its commits and files; `repository_update` has only each ref's before and
        // after, so as a change it would at best repeat a push (the same id: a second notice)
        // and at worst arrive first and stand for it with no paths. It is ignored, and the
        // reason says which events to enable: a new system hook sends only this one.
        "repository_update" => {
            return Ok(Normalized::Ignored(format!(
                "{} system event \"repository_update\" duplicates the push and tag_push events \
                 of the same push (enable those on the system hook)",
                Provider::GitLab
            )));
        }
        other => {
            return Ok(Normalized::Ignored(format!(
                "{} system event {other:?} is not a change",
                Provider::GitLab
            )));
        }
    };
    Ok(Normalized::Changes(vec![event]))
}

/// A push or tag push: created, deleted or moved.
fn push(
    root: &View<'_, GitLab<'_>>,
    headers: &HeaderMap,
    received_at: Timestamp,
) -> Result<ChangeEvent, NormalizeError> {
    let git_ref = root.get("ref", |p| &p.r#ref).full_ref()?;
    let before = root.get("before", |p| &p.before).sha()?;
    let after = root.get("after", |p| &p.after).sha()?;
    let commits = root.get("commits", |p| &p.commits).opt_array()?;
    let listed = commits.map(|c| c.len());
    let total = root
        .get("total_commits_count", |p| &p.total_commits_count)
        .opt_u64()?;
    let commit_count = total.or_else(|| listed.and_then(|n| u64::try_from(n).ok()));
    let commits = commits.unwrap_or(Items::EMPTY);
    let changed_paths = common::changed_paths(commits)?;
    // A commit listed without its `added`, `modified` and `removed` lists says nothing of its
    // files (GitLab leaves them out where it builds a push without changed files, as in the
    // documented system-hook push): the union of the listed files is then not the whole change.
    let lists_files = commits.iter().all(|commit| {
        Commit::file_lists(&commit)
            .iter()
            .all(|list| list.is_present())
    });
    // The head commit is the listed commit whose id is `after` (GitLab lists oldest first).
    let mut occurred_at = None;
    for commit in commits.iter() {
        let id = commit.get("id", |c| &c.id);
        if id
            .opt_str()?
            .is_some_and(|id| id.eq_ignore_ascii_case(&after))
        {
            occurred_at = commit.get("timestamp", |c| &c.timestamp).timestamp();
        }
    }
    let coverage = Coverage {
        created: event::is_zero(&before),
        deleted: event::is_zero(&after),
        forced: false,
        listed: listed.unwrap_or(0),
        pushed: total,
        has_file_lists: lists_files,
    };
    common::push_event(
        Provider::GitLab,
        headers,
        received_at,
        Push {
            repository: common::repository(&[
                root.get("project", |p| &p.project)
                    .get("git_http_url", |p| &p.git_http_url),
                root.get("repository", |p| &p.repository)
                    .get("git_http_url", |p| &p.git_http_url),
            ])?,
            git_ref,
            before,
            after,
            commit_count,
            changed_paths,
            changed_paths_complete: coverage.complete(),
            occurred_at,
        },
    )
}

/// A merge request activity.
fn merge_request(
    root: &View<'_, GitLab<'_>>,
    headers: &HeaderMap,
    received_at: Timestamp,
) -> Result<ChangeEvent, NormalizeError> {
    let attrs = root.get("object_attributes", |p| &p.object_attributes);
    let action = attrs.get("action", |a| &a.action);
    let raw = action.str()?;
    if raw.is_empty() {
        return Err(action.error("must not be empty"));
    }
    let oldrev = attrs.get("oldrev", |a| &a.oldrev).opt_sha()?;
    let merged_state = attrs.get("state", |a| &a.state).opt_str()? == Some("merged");
    let (action, merged) = match raw {
        "open" => ("opened".to_owned(), false),
        "reopen" => ("reopened".to_owned(), false),
        "update" if oldrev.is_some() => ("updated".to_owned(), merged_state),
        "update" => ("edited".to_owned(), merged_state),
        "merge" => ("closed".to_owned(), true),
        "close" => ("closed".to_owned(), false),
        other => (common::passthrough(other), merged_state),
    };
    // `project` is the target project; the base of a merge request is where it merges to.
    let repository = common::repository(&[
        root.get("project", |p| &p.project)
            .get("git_http_url", |p| &p.git_http_url),
        attrs
            .get("target", |a| &a.target)
            .get("git_http_url", |p| &p.git_http_url),
    ])?;
    common::pull_event(
        Provider::GitLab,
        headers,
        received_at,
        Pull {
            repository,
            number: attrs.get("iid", |a| &a.iid).u64()?,
            action,
            merged,
            head_ref: attrs
                .get("source_branch", |a| &a.source_branch)
                .short_ref("refs/heads/")?,
            head_sha: attrs
                .get("last_commit", |a| &a.last_commit)
                .get("id", |c| &c.id)
                .abbrev_sha()?,
            base_ref: attrs
                .get("target_branch", |a| &a.target_branch)
                .short_ref("refs/heads/")?,
            base_sha: None,
            before: oldrev,
            commit_count: None,
            occurred_at: attrs.get("updated_at", |a| &a.updated_at).timestamp(),
        },
    )
}

shapes! {
    /// A GitLab delivery: a push, tag push or merge request, of a project, group or system hook.
    struct GitLab<'a> {
        object_kind: Text<'a>,
        event_name: Text<'a>,
        r#ref: Text<'a>,
        before: Text<'a>,
        after: Text<'a>,
        commits: List<Commit<'a>>,
        total_commits_count: Slot<u64>,
        project: Slot<Project<'a>>,
        repository: Slot<Project<'a>>,
        object_attributes: Slot<MergeRequest<'a>>,
    }

    /// A project (or the older `repository` block) as GitLab names it.
    struct Project<'a> {
        git_http_url: Text<'a>,
    }

    /// A merge request's `object_attributes`.
    struct MergeRequest<'a> {
        action: Text<'a>,
        oldrev: Text<'a>,
        state: Text<'a>,
        iid: Slot<u64>,
        source_branch: Text<'a>,
        target_branch: Text<'a>,
        last_commit: Slot<Commit<'a>>,
        target: Slot<Project<'a>>,
        updated_at: Text<'a>,
    }
}
