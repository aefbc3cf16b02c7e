//! Provider payloads to change events: GitHub, GitLab, Bitbucket Cloud and Gitea/Forgejo.
//!
//! Pure functions of (headers, body): no I/O, no signature checks (those are the receiver's),
//! never a panic on any input. A delivery becomes zero or more change events, a ping, or an
//! event that is no change (ignored, with the reason the sender is told).

pub mod bitbucket;
mod common;
pub mod gitea;
pub mod github;
pub mod gitlab;
mod payload;
#[cfg(test)]
mod tests;

use http::HeaderMap;
use jiff::Timestamp;

use crate::config::Provider;
use crate::event::{ChangeEvent, EventError};

/// What one delivery means.
#[derive(Clone, Debug, PartialEq)]
pub enum Normalized {
    /// One change event per change the delivery reports (Bitbucket pushes may carry several).
    Changes(Vec<ChangeEvent>),
    /// A ping: the hook works.
    Ping,
    /// A well-formed delivery that is no change to start anything for (issue comments, stars,
    /// GitHub `create`/`delete`, which duplicate the push); the reason is told to the sender.
    Ignored(String),
}

/// A delivery that cannot be understood: answered 400, naming what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct NormalizeError {
    /// Where in the delivery: a header name or a JSON path (`push.changes[0].new.target.hash`).
    pub field: String,
    pub message: String,
}

impl NormalizeError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> NormalizeError {
        NormalizeError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<EventError> for NormalizeError {
    fn from(e: EventError) -> NormalizeError {
        NormalizeError {
            field: e.field,
            message: e.message,
        }
    }
}

/// A header's value as text.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Delivery headers written as `Name: value` (`switchyard normalize --header`); the error names
/// the line and what is wrong with it.
pub fn parse_headers(lines: &[String]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("--header {line:?} is not `Name: value`"));
        };
        let name = http::header::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|e| format!("--header {line:?}: bad header name: {e}"))?;
        let value = http::header::HeaderValue::from_str(value.trim())
            .map_err(|e| format!("--header {line:?}: bad header value: {e}"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Normalizes one delivery of `provider`. `received_at` stamps every event; the delivery id
/// (see [`delivery_id`]) goes into each event's source.
pub fn normalize(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    received_at: Timestamp,
) -> Result<Normalized, NormalizeError> {
    match provider {
        Provider::GitHub => github::normalize(headers, body, received_at),
        Provider::GitLab => gitlab::normalize(headers, body, received_at),
        Provider::Bitbucket => bitbucket::normalize(headers, body, received_at),
        Provider::Gitea => gitea::normalize(headers, body, received_at),
        Provider::Standard => Err(NormalizeError::new(
            "provider",
            "standard deliveries are change events already: post them to a standard receiver",
        )),
    }
}

/// The provider's id of this delivery, the same on a redelivery: GitHub's `X-GitHub-Delivery`
/// with `X-GitHub-Hook-ID`; GitLab's `webhook-id`, `Idempotency-Key` or `X-Gitlab-Event-UUID`;
/// Bitbucket's `X-Request-UUID`; Gitea's `X-Gitea-Delivery` / `X-Forgejo-Delivery`.
pub fn delivery_id(provider: Provider, headers: &HeaderMap) -> Option<String> {
    let h = |name| header(headers, name).filter(|v| !v.is_empty());
    match provider {
        Provider::GitHub => {
            let delivery = h("x-github-delivery")?;
            Some(match h("x-github-hook-id") {
                Some(hook) => format!("{hook}:{delivery}"),
                None => delivery.to_owned(),
            })
        }
        Provider::GitLab => h("webhook-id")
            .or_else(|| h("idempotency-key"))
            .or_else(|| h("x-gitlab-event-uuid"))
            .map(str::to_owned),
        Provider::Bitbucket => h("x-request-uuid").map(str::to_owned),
        Provider::Gitea => h("x-gitea-delivery")
            .or_else(|| h("x-forgejo-delivery"))
            .map(str::to_owned),
        Provider::Standard => h("webhook-id").map(str::to_owned),
    }
}
