//! GitHub webhook deliveries: `push`, `pull_request`, `ping`; `create`/`delete` and every other
//! event type are answered as no change.
//!
//! The event type is in `X-GitHub-Event`. A push lists at most 2048 commits, each with its
//! `added`/`modified`/`removed` files; the changed paths are their union, complete only for a
//! fast-forward of an existing ref whose commits are all listed. A pull request carries no file
//! list; `synchronize` (new commits) becomes `updated`.

use std::borrow::Cow;

use http::HeaderMap;
use jiff::Timestamp;

use super::common::{self, Counts, ForgePull, ForgePush};
use super::payload::{self, Ignored, View};
use super::{NormalizeError, Normalized};
use crate::config::Provider;
use crate::event::ChangeEvent;

/// The most commits a GitHub push payload lists: at this count the list may be cut short.
const COMMIT_CAP: usize = 2048;

/// Normalizes one GitHub delivery.
pub fn normalize(
    headers: &HeaderMap,
    body: &[u8],
    received_at: Timestamp,
) -> Result<Normalized, NormalizeError> {
    let kind = common::event_type(headers, &["X-GitHub-Event"])?;
    let event = match kind {
        "push" => push(&payload::parse(body)?, headers, received_at)?,
        "pull_request" => common::forge_pull_request(
            &View::root(&payload::parse::<ForgePull<'_>>(body)?),
            Provider::GitHub,
            headers,
            received_at,
            action,
        )?,
        "ping" => {
            payload::parse::<Ignored>(body)?;
            return Ok(Normalized::Ping);
        }
        "create" | "delete" => {
            payload::parse::<Ignored>(body)?;
            return Ok(Normalized::Ignored(common::duplicates_push(
                Provider::GitHub,
                kind,
            )));
        }
        other => {
            payload::parse::<Ignored>(body)?;
            return Ok(Normalized::Ignored(common::not_a_change(
                Provider::GitHub,
                other,
            )));
        }
    };
    Ok(Normalized::Changes(vec![event]))
}

/// A push: branch or tag, fast-forward, forced, created or deleted.
fn push(
    payload: &ForgePush<'_>,
    headers: &HeaderMap,
    received_at: Timestamp,
) -> Result<ChangeEvent, NormalizeError> {
    let root = View::root(payload);
    common::forge_push(&root, Provider::GitHub, headers, received_at, |listed| {
        // The list stops at the cap: at the cap, how many were pushed is unknown.
        let count = listed
            .filter(|&n| n < COMMIT_CAP)
            .and_then(|n| u64::try_from(n).ok());
        Ok(Counts {
            commit_count: count,
            pushed: count,
        })
    })
}

/// GitHub's pull-request action in the schema's words.
fn action(raw: &str) -> Cow<'static, str> {
    match raw {
        "opened" => Cow::Borrowed("opened"),
        "reopened" => Cow::Borrowed("reopened"),
        "synchronize" => Cow::Borrowed("updated"),
        "closed" => Cow::Borrowed("closed"),
        other => Cow::Owned(common::passthrough(other)),
    }
}
