//! GitLab webhook deliveries: `Push Hook`, `Tag Push Hook` and `Merge Request Hook`; every other
//! event type is answered as no change.
//!
//! The event type is in `X-Gitlab-Event` and again in the body's `object_kind`; the two must
//! agree. A push lists at most 20 commits and says how many were pushed in
//! `total_commits_count`: the union of the listed files is complete only when every pushed
//! commit is listed. GitLab sends no `forced` flag, so a forced push cannot be told from a
//! fast-forward. Merge request actions: `open`→`opened`, `reopen`→`reopened`, `update` with
//! new commits (`oldrev`)→`updated`, other `update`s→`edited`, `merge`→`closed` merged,
//! `close`→`closed` not merged, anything else lowercased.

use hyper::HeaderMap;
use jiff::Timestamp;

use super::common::{self, Coverage, Field, Pull, Push};
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
    let payload = common::parse_body(body)?;
    let root = Field::root(&payload);
    let object_kind = match kind {
        "Push Hook" => "push",
        "Tag Push Hook" => "tag_push",
        "Merge Request Hook" => "merge_request",
        other => {
            return Ok(Normalized::Ignored(common::not_a_change(
                Provider::GitLab,
                other,
            )));
        }
    };
    let said = root.get("object_kind").str()?;
    if said != object_kind {
        return Err(root.get("object_kind").error(format!(
            "is {said:?}, but X-Gitlab-Event {kind:?} means {object_kind:?}"
        )));
    }
    let event = match object_kind {
        "merge_request" => merge_request(&root, headers, received_at)?,
        _ => push(&root, headers, received_at)?,
    };
    Ok(Normalized::Changes(vec![event]))
}

/// A push or tag push: created, deleted or moved.
fn push(
    root: &Field<'_>,
    headers: &HeaderMap,
    received_at: Timestamp,
) -> Result<ChangeEvent, NormalizeError> {
    let git_ref = root.get("ref").full_ref()?;
    let before = root.get("before").sha()?;
    let after = root.get("after").sha()?;
    let commits = root.get("commits").opt_array()?;
    let listed = commits.as_ref().map(Vec::len);
    let total = root.get("total_commits_count").opt_u64()?;
    let commit_count = total.or_else(|| listed.and_then(|n| u64::try_from(n).ok()));
    let commits = commits.unwrap_or_default();
    let changed_paths = common::changed_paths(&commits)?;
    // The head commit is the listed commit whose id is `after` (GitLab lists oldest first).
    let mut occurred_at = None;
    for commit in &commits {
        let id = commit.get("id");
        if id
            .opt_str()?
            .is_some_and(|id| id.eq_ignore_ascii_case(&after))
        {
            occurred_at = commit.get("timestamp").timestamp();
        }
    }
    let coverage = Coverage {
        created: event::is_zero(&before),
        deleted: event::is_zero(&after),
        forced: false,
        listed: listed.unwrap_or(0),
        pushed: total,
        has_file_lists: true,
    };
    common::push_event(
        Provider::GitLab,
        headers,
        received_at,
        Push {
            repository: common::repository(&[
                root.get("project").get("git_http_url"),
                root.get("repository").get("git_http_url"),
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
    root: &Field<'_>,
    headers: &HeaderMap,
    received_at: Timestamp,
) -> Result<ChangeEvent, NormalizeError> {
    let attrs = root.get("object_attributes");
    let raw = attrs.get("action").str()?;
    if raw.is_empty() {
        return Err(attrs.get("action").error("must not be empty"));
    }
    let oldrev = attrs.get("oldrev").opt_sha()?;
    let merged_state = attrs.get("state").opt_str()? == Some("merged");
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
        root.get("project").get("git_http_url"),
        attrs.get("target").get("git_http_url"),
    ])?;
    common::pull_event(
        Provider::GitLab,
        headers,
        received_at,
        Pull {
            repository,
            number: attrs.get("iid").u64()?,
            action,
            merged,
            head_ref: attrs.get("source_branch").short_ref("refs/heads/")?,
            head_sha: attrs.get("last_commit").get("id").abbrev_sha()?,
            base_ref: attrs.get("target_branch").short_ref("refs/heads/")?,
            base_sha: None,
            before: oldrev,
            commit_count: None,
            occurred_at: attrs.get("updated_at").timestamp(),
        },
    )
}
