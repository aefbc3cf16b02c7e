//! How a change is announced: a signed GitHub push delivery, a CodeCommit "Repository State
//! Change" event put on the bus, and the headers of a Standard Webhooks delivery.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use serde_json::{Value, json};
use switchyard::signature::{Key, hmac_sha256_hex, sign};

use crate::git::Push;
use crate::moto::put_events;
use crate::{ACCOUNT, REGION};

/// The body of a GitHub push delivery for `push`, as GitHub sends it the moment it lands.
pub fn github_push(push: &Push) -> Value {
    let timestamp = jiff::Timestamp::now().to_string();
    let commit = json!({
        "id": push.after,
        "tree_id": push.after,
        "distinct": true,
        "message": "bench push",
        "timestamp": timestamp,
        "author": {"name": "bench", "email": "bench@localhost", "username": "bench"},
        "committer": {"name": "bench", "email": "bench@localhost", "username": "bench"},
        "added": if push.added { vec![push.path.clone()] } else { Vec::new() },
        "removed": [],
        "modified": if push.added { Vec::new() } else { vec![push.path.clone()] },
    });
    let name = &push.repository;
    json!({
        "ref": format!("refs/heads/{}", push.branch),
        "before": push.before,
        "after": push.after,
        "created": false,
        "deleted": false,
        "forced": false,
        "base_ref": null,
        "compare": format!("https://example.invalid/{name}/compare"),
        "commits": [commit.clone()],
        "head_commit": commit,
        "repository": {
            "name": name,
            "full_name": format!("lab/{name}"),
            "private": true,
            "clone_url": format!("https://git-codecommit.{REGION}.amazonaws.com/v1/repos/{name}"),
            "default_branch": "main",
        },
        "pusher": {"name": "bench", "email": "bench@localhost"},
        "sender": {"login": "bench", "id": 1},
    })
}

/// Signs `push`'s GitHub delivery with `secret` and posts it to `serve`'s receiver
/// `/hooks/github`; the HTTP status.
pub async fn send_webhook(
    client: &switchyard::transport::http::Client,
    serve: SocketAddr,
    secret: &str,
    push: &Push,
) -> anyhow::Result<u16> {
    let body = serde_json::to_vec(&github_push(push))?;
    let signature = format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), &body));
    let request = Request::post(format!("http://{serve}/hooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header(
            "x-github-delivery",
            format!("{}-{}", push.repository, push.after),
        )
        .header("x-github-hook-id", "1")
        .header("x-hub-signature-256", signature)
        .body(Full::new(Bytes::from(body)))?;
    let response = client.request(request).await?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    Ok(status)
}

/// The detail of a CodeCommit "Repository State Change" event: `branch` of `repository`
/// moved from `before` to `after`.
pub fn codecommit_detail(repository: &str, branch: &str, before: &str, after: &str) -> Value {
    json!({
        "event": "referenceUpdated",
        "repositoryName": repository,
        "repositoryId": "12345678-1234-5678-abcd-12345678abcd",
        "referenceType": "branch",
        "referenceName": branch,
        "referenceFullName": format!("refs/heads/{branch}"),
        "commitId": after,
        "oldCommitId": before,
    })
}

/// The ARN of CodeCommit repository `name` in the lab's account.
pub fn codecommit_arn(name: &str) -> String {
    format!("arn:aws:codecommit:{REGION}:{ACCOUNT}:{name}")
}

/// Puts a CodeCommit "Repository State Change" event of `repository` with `detail` on the
/// default bus; its event id.
pub async fn put_codecommit(
    events: &aws_sdk_eventbridge::Client,
    repository: &str,
    detail: &Value,
) -> anyhow::Result<String> {
    let arn = codecommit_arn(repository);
    let entry = (
        "aws.codecommit",
        "CodeCommit Repository State Change",
        Some(arn.as_str()),
        detail.to_string(),
    );
    let ids = put_events(events, &[entry]).await?;
    ids.into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("PutEvents returned no event id"))
}

/// Puts the CodeCommit event of `push` on the default bus.
pub async fn send_event(events: &aws_sdk_eventbridge::Client, push: &Push) -> anyhow::Result<()> {
    let detail = codecommit_detail(&push.repository, &push.branch, &push.before, &push.after);
    put_codecommit(events, &push.repository, &detail).await?;
    Ok(())
}

/// The headers of a Standard Webhooks delivery of `body` under message id `id`, signed with
/// `secret` (`whsec_…`) at Unix time `timestamp`.
pub fn standard_webhook_headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    let key = Key::from_secret(secret).expect("a Standard Webhooks secret (whsec_…)");
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), sign(&key, id, timestamp, body)),
        ("content-type".into(), "application/json".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::identity;
    use switchyard::config::Provider;
    use switchyard::sources::eventbridge::envelope::{Envelope, parse};
    use switchyard::sources::providers::{self, Normalized};

    fn push() -> Push {
        Push {
            repository: "r3".into(),
            branch: "dev".into(),
            before: "1".repeat(40),
            after: "2".repeat(40),
            path: "src/api/f1.txt".into(),
            added: true,
            at_ms: 0.0,
        }
    }

    #[test]
    fn the_webhook_and_the_event_name_the_polled_identity() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            "x-github-event",
            hyper::header::HeaderValue::from_static("push"),
        );
        let body = serde_json::to_vec(&github_push(&push())).unwrap_or_default();
        let events =
            match providers::normalize(Provider::GitHub, &headers, &body, jiff::Timestamp::now()) {
                Ok(Normalized::Changes(events)) => events,
                other => panic!("{other:?}"),
            };
        assert_eq!(events[0].repository, identity("r3"));
        assert_eq!(events[0].git_ref, "refs/heads/dev");
        assert_eq!(events[0].changed_paths, ["src/api/f1.txt"]);
        assert!(events[0].changed_paths_complete);

        let p = push();
        let event = json!({
            "version": "0", "id": "e-1", "detail-type": "CodeCommit Repository State Change",
            "source": "aws.codecommit", "account": ACCOUNT, "time": "2026-11-26T00:00:00Z",
            "region": REGION, "resources": [codecommit_arn("r3")],
            "detail": codecommit_detail(&p.repository, &p.branch, &p.before, &p.after),
        });
        match parse(event.to_string().as_bytes(), jiff::Timestamp::now()) {
            Ok(Envelope::Changes { changes, .. }) => {
                assert_eq!(changes[0].repository, identity("r3"));
                assert_eq!(changes[0].id, events[0].id, "one change, whichever source");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn standard_webhook_headers_verify() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let headers = standard_webhook_headers(secret, "msg-1", 1_700_000_000, b"{}");
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(get("webhook-id"), "msg-1");
        assert_eq!(get("webhook-timestamp"), "1700000000");
        let key = Key::from_secret(secret).expect("key");
        assert_eq!(
            get("webhook-signature"),
            sign(&key, "msg-1", 1_700_000_000, b"{}")
        );
    }
}
