//! A delivery of any provider with any event type, headers and body: `normalize` and
//! `delivery_id` answer, never panic. The first byte picks the provider and the event type, the
//! second a delivery-id header; the rest is the body.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use switchyard_core::config::Provider;
use switchyard_core::providers;

const EVENTS: [(Provider, &str, &str); 16] = [
    (Provider::GitHub, "x-github-event", "push"),
    (Provider::GitHub, "x-github-event", "pull_request"),
    (Provider::GitHub, "x-github-event", "ping"),
    (Provider::GitHub, "x-github-event", "create"),
    (Provider::GitLab, "x-gitlab-event", "Push Hook"),
    (Provider::GitLab, "x-gitlab-event", "Tag Push Hook"),
    (Provider::GitLab, "x-gitlab-event", "Merge Request Hook"),
    (Provider::GitLab, "x-gitlab-event", "System Hook"),
    (Provider::Bitbucket, "x-event-key", "repo:push"),
    (Provider::Bitbucket, "x-event-key", "pullrequest:created"),
    (Provider::Bitbucket, "x-event-key", "pullrequest:fulfilled"),
    (Provider::Bitbucket, "x-event-key", "diagnostics:ping"),
    (Provider::Gitea, "x-gitea-event", "push"),
    (Provider::Gitea, "x-gitea-event", "pull_request"),
    (Provider::Gitea, "x-forgejo-event", "push"),
    (Provider::Standard, "webhook-id", "x"),
];

const IDS: [&str; 6] = [
    "x-github-delivery",
    "x-github-hook-id",
    "x-gitlab-event-uuid",
    "x-request-uuid",
    "x-gitea-delivery",
    "idempotency-key",
];

fuzz_target!(|data: &[u8]| {
    let [pick, id, body @ ..] = data else {
        return;
    };
    let (provider, header, event) = EVENTS[usize::from(*pick) % EVENTS.len()];
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static(header),
        HeaderValue::from_static(event),
    );
    let id_header = IDS[usize::from(*id) % IDS.len()];
    if let Ok(value) = HeaderValue::from_bytes(&body[..body.len().min(usize::from(*id) % 48)]) {
        headers.insert(HeaderName::from_static(id_header), value);
    }
    let _ = providers::normalize(provider, &headers, body, jiff::Timestamp::UNIX_EPOCH);
    let _ = providers::delivery_id(provider, &headers);
});
