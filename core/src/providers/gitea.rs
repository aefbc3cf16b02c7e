//! Gitea and Forgejo webhook deliveries: `push` and `pull_request`; `create`/`delete` (which
//! duplicate the push) and every other event type are answered as no change.
//!
//! The event type is in `X-Gitea-Event` or `X-Forgejo-Event`. The payloads copy GitHub's shape.
//! A push lists at most the server's feed limit of commits (`[ui] FEED_MAX_COMMIT_NUM`, 5 by
//! default); newer servers say how many were pushed in `total_commits`, and only then can the
//! union of the listed files be trusted whole. Gitea sends no `forced` flag, so a forced push
//! cannot be told from a fast-forward. `synchronized` (new commits) becomes `updated`.

use std::borrow::Cow;

use http::HeaderMap;
use jiff::Timestamp;

use super::common::{self, Counts, ForgePull, ForgePush};
use super::payload::{self, Ignored, View};
use super::{NormalizeError, Normalized};
use crate::config::Provider;
use crate::event::ChangeEvent;

/// Normalizes one Gitea or Forgejo delivery.
pub fn normalize(
    headers: &HeaderMap,
    body: &[u8],
    received_at: Timestamp,
) -> Result<Normalized, NormalizeError> {
    let kind = common::event_type(headers, &["X-Gitea-Event", "X-Forgejo-Event"])?;
    let event = match kind {
        "push" => push(&payload::parse(body)?, headers, received_at)?,
        "pull_request" => common::forge_pull_request(
            &View::root(&payload::parse::<ForgePull<'_>>(body)?),
            Provider::Gitea,
            headers,
            received_at,
            action,
        )?,
        "create" | "delete" => {
            payload::parse::<Ignored>(body)?;
            return Ok(Normalized::Ignored(common::duplicates_push(
                Provider::Gitea,
                kind,
            )));
        }
        other => {
            payload::parse::<Ignored>(body)?;
            return Ok(Normalized::Ignored(common::not_a_change(
                Provider::Gitea,
                other,
            )));
        }
    };
    Ok(Normalized::Changes(vec![event]))
}

/// A push: branch or tag, created, deleted or moved.
fn push(
    payload: &ForgePush<'_>,
    headers: &HeaderMap,
    received_at: Timestamp,
) -> Result<ChangeEvent, NormalizeError> {
    let root = View::root(payload);
    let total = root.get("total_commits", |p| &p.total_commits).opt_u64()?;
    common::forge_push(&root, Provider::Gitea, headers, received_at, |listed| {
        // Without `total_commits` the listed count is the best figure there is, but the list
        // may have been cut at the feed limit: the paths are then not trusted whole.
        let commit_count = total.or_else(|| listed.and_then(|n| u64::try_from(n).ok()));
        Ok(Counts {
            commit_count,
            pushed: total,
        })
    })
}

/// Gitea's pull-request action in the schema's words.
fn action(raw: &str) -> Cow<'static, str> {
    match raw {
        "opened" => Cow::Borrowed("opened"),
        "reopened" => Cow::Borrowed("reopened"),
        "synchronized" => Cow::Borrowed("updated"),
        "closed" => Cow::Borrowed("closed"),
        other => Cow::Owned(common::passthrough(other)),
    }
}
