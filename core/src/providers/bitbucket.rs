//! Bitbucket Cloud webhook deliveries: `repo:push` and `pullrequest:created|updated|fulfilled|
//! rejected`; every other event key is answered as no change (`diagnostics:ping` as a ping).
//!
//! The event key is in `X-Event-Key`. One push may carry several changes, one per ref: each
//! becomes its own event. A change names its ref by type (`branch`, `tag`) and name; a created
//! ref has no `old`, a deleted one no `new`. Bitbucket lists at most a few commits per change
//! (`truncated` says when there were more) and never the files they touched, so a push's
//! changed paths are never complete, except for a deletion, whose (empty) list is whole.
//! Pull-request payloads give 12-character abbreviated object ids; `after` is then zeros and
//! `pull_request.head_sha` the abbreviation.

use http::HeaderMap;
use jiff::Timestamp;

use super::common::{self, Coverage, Pull, Push};
use super::payload::{self, Ignored, List, Slot, Text, View, shapes};
use super::{NormalizeError, Normalized};
use crate::config::Provider;
use crate::event::{ChangeEvent, ZERO_SHA};
use crate::repo::RepoId;

/// Normalizes one Bitbucket Cloud delivery.
pub fn normalize(
    headers: &HeaderMap,
    body: &[u8],
    received_at: Timestamp,
) -> Result<Normalized, NormalizeError> {
    let key = common::event_type(headers, &["X-Event-Key"])?;
    let (action, merged) = match key {
        "repo:push" => {
            let payload = payload::parse::<Bitbucket<'_>>(body)?;
            return Ok(Normalized::Changes(push(
                &View::root(&payload),
                headers,
                received_at,
            )?));
        }
        "diagnostics:ping" => {
            payload::parse::<Ignored>(body)?;
            return Ok(Normalized::Ping);
        }
        "pullrequest:created" => ("opened", false),
        "pullrequest:updated" => ("updated", false),
        "pullrequest:fulfilled" => ("closed", true),
        "pullrequest:rejected" => ("closed", false),
        other => {
            payload::parse::<Ignored>(body)?;
            return Ok(Normalized::Ignored(common::not_a_change(
                Provider::Bitbucket,
                other,
            )));
        }
    };
    let payload = payload::parse::<Bitbucket<'_>>(body)?;
    let event = pull_request(&View::root(&payload), headers, received_at, action, merged)?;
    Ok(Normalized::Changes(vec![event]))
}

/// The repository a payload block names: its web address (`links.html.href`,
/// `https://bitbucket.org/OWNER/REPO`), else `bitbucket.org/` and its `full_name`.
fn repository(block: &View<'_, Repository<'_>>) -> Result<RepoId, NormalizeError> {
    let href = block
        .get("links", |r| &r.links)
        .get("html", |l| &l.html)
        .get("href", |h| &h.href);
    let full_name = block.get("full_name", |r| &r.full_name);
    if !href.is_present()
        && let Some(name) = full_name.opt_str()?
    {
        return RepoId::parse(&format!("https://bitbucket.org/{name}"), None)
            .map_err(|e| full_name.error(e.to_string()));
    }
    href.repository()
}

/// Every change of a push, in the order given.
fn push(
    root: &View<'_, Bitbucket<'_>>,
    headers: &HeaderMap,
    received_at: Timestamp,
) -> Result<Vec<ChangeEvent>, NormalizeError> {
    let repository = repository(&root.get("repository", |p| &p.repository))?;
    let changes = root
        .get("push", |p| &p.push)
        .get("changes", |p| &p.changes)
        .array()?;
    let mut events = Vec::with_capacity(changes.len());
    for change in changes.iter() {
        events.push(change_event(
            &change,
            repository.clone(),
            headers,
            received_at,
        )?);
    }
    Ok(events)
}

/// One change of a push: one ref created, moved or deleted.
fn change_event(
    change: &View<'_, Change<'_>>,
    repository: RepoId,
    headers: &HeaderMap,
    received_at: Timestamp,
) -> Result<ChangeEvent, NormalizeError> {
    let new = change.get("new", |c| &c.new);
    let old = change.get("old", |c| &c.old);
    // The ref's type and name: from the new state, or for a deletion from the old one.
    let named = if new.is_present() || !old.is_present() {
        &new
    } else {
        &old
    };
    let kind = named.get("type", |s| &s.r#type);
    let prefix = match kind.str()? {
        "branch" => "refs/heads/",
        "tag" => "refs/tags/",
        other => {
            return Err(kind.error(format!("is {other:?}, expected \"branch\" or \"tag\"")));
        }
    };
    let git_ref = named.get("name", |s| &s.name).short_ref(prefix)?;
    let sha = |state: &View<'_, RefState<'_>>| -> Result<String, NormalizeError> {
        if state.is_present() {
            state
                .get("target", |s| &s.target)
                .get("hash", |t| &t.hash)
                .sha()
        } else {
            Ok(ZERO_SHA.to_owned())
        }
    };
    let before = sha(&old)?;
    let after = sha(&new)?;
    let commits = change.get("commits", |c| &c.commits).opt_array()?;
    let truncated = change
        .get("truncated", |c| &c.truncated)
        .opt_bool()?
        .unwrap_or(false);
    let commit_count = commits
        .filter(|_| !truncated)
        .and_then(|c| u64::try_from(c.len()).ok());
    let coverage = Coverage {
        created: !old.is_present(),
        deleted: !new.is_present(),
        forced: change
            .get("forced", |c| &c.forced)
            .opt_bool()?
            .unwrap_or(false),
        listed: commits.map_or(0, |c| c.len()),
        pushed: commit_count,
        has_file_lists: false,
    };
    common::push_event(
        Provider::Bitbucket,
        headers,
        received_at,
        Push {
            repository,
            git_ref,
            before,
            after,
            commit_count,
            changed_paths: Vec::new(),
            changed_paths_complete: coverage.complete(),
            occurred_at: new
                .get("target", |s| &s.target)
                .get("date", |t| &t.date)
                .timestamp(),
        },
    )
}

/// A pull-request activity; `action` and `merged` follow from the event key.
fn pull_request(
    root: &View<'_, Bitbucket<'_>>,
    headers: &HeaderMap,
    received_at: Timestamp,
    action: &str,
    merged: bool,
) -> Result<ChangeEvent, NormalizeError> {
    let pr = root.get("pullrequest", |p| &p.pullrequest);
    let source = pr.get("source", |p| &p.source);
    let destination = pr.get("destination", |p| &p.destination);
    // The base repository: the destination's, else the payload's (the same one).
    let target = destination.get("repository", |e| &e.repository);
    let repository = if target.is_present() {
        repository(&target)?
    } else {
        repository(&root.get("repository", |p| &p.repository))?
    };
    common::pull_event(
        Provider::Bitbucket,
        headers,
        received_at,
        Pull {
            repository,
            number: pr.get("id", |p| &p.id).u64()?,
            action: action.to_owned(),
            merged,
            head_ref: source
                .get("branch", |e| &e.branch)
                .get("name", |b| &b.name)
                .short_ref("refs/heads/")?,
            head_sha: source
                .get("commit", |e| &e.commit)
                .get("hash", |c| &c.hash)
                .abbrev_sha()?,
            base_ref: destination
                .get("branch", |e| &e.branch)
                .get("name", |b| &b.name)
                .short_ref("refs/heads/")?,
            base_sha: destination
                .get("commit", |e| &e.commit)
                .get("hash", |c| &c.hash)
                .opt_abbrev_sha()?,
            before: None,
            commit_count: None,
            occurred_at: pr.get("updated_on", |p| &p.updated_on).timestamp(),
        },
    )
}

shapes! {
    /// A Bitbucket Cloud delivery: a push or a pull-request activity.
    struct Bitbucket<'a> {
        repository: Slot<Repository<'a>>,
        push: Slot<PushBlock<'a>>,
        pullrequest: Slot<PullRequest<'a>>,
    }

    /// A repository: `links.html.href` and `full_name`.
    struct Repository<'a> {
        links: Slot<Links<'a>>,
        full_name: Text<'a>,
    }

    struct Links<'a> {
        html: Slot<Link<'a>>,
    }

    struct Link<'a> {
        href: Text<'a>,
    }

    /// A push's `push` block: one change per ref.
    struct PushBlock<'a> {
        changes: List<Change<'a>>,
    }

    /// One ref's change; the commits are only counted.
    struct Change<'a> {
        new: Slot<RefState<'a>>,
        old: Slot<RefState<'a>>,
        commits: List<Ignored>,
        truncated: Slot<bool>,
        forced: Slot<bool>,
    }

    /// A ref's state before or after the change.
    struct RefState<'a> {
        r#type: Text<'a>,
        name: Text<'a>,
        target: Slot<Target<'a>>,
    }

    /// The commit a ref or a pull request's end points at.
    struct Target<'a> {
        hash: Text<'a>,
        date: Text<'a>,
    }

    /// A pull request: its number, its two ends and when it last changed.
    struct PullRequest<'a> {
        id: Slot<u64>,
        source: Slot<End<'a>>,
        destination: Slot<End<'a>>,
        updated_on: Text<'a>,
    }

    /// A pull request's source or destination.
    struct End<'a> {
        branch: Slot<BranchName<'a>>,
        commit: Slot<Target<'a>>,
        repository: Slot<Repository<'a>>,
    }

    struct BranchName<'a> {
        name: Text<'a>,
    }
}
