//! How each push is announced: a signed GitHub push delivery, a CodeCommit EventBridge event.

use std::net::SocketAddr;

use anyhow::bail;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use serde_json::{Value, json};

use crate::signature::hmac_sha256_hex;

use super::*;

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

/// Signs and posts a GitHub push delivery to `serve`; the HTTP status.
pub async fn send_webhook(
    client: &crate::dispatch::http::Client,
    serve: SocketAddr,
    push: &Push,
) -> anyhow::Result<u16> {
    let body = serde_json::to_vec(&github_push(push))?;
    let signature = format!("sha256={}", hmac_sha256_hex(SECRET.as_bytes(), &body));
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

/// The CodeCommit "Repository State Change" detail of `push`.
pub fn codecommit_detail(push: &Push) -> Value {
    json!({
        "event": "referenceUpdated",
        "repositoryName": push.repository,
        "repositoryId": "00000000-0000-0000-0000-000000000000",
        "referenceType": "branch",
        "referenceName": push.branch,
        "referenceFullName": format!("refs/heads/{}", push.branch),
        "commitId": push.after,
        "oldCommitId": push.before,
    })
}

/// Puts the CodeCommit event of `push` on the default bus.
pub async fn send_event(events: &aws_sdk_eventbridge::Client, push: &Push) -> anyhow::Result<()> {
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source("aws.codecommit")
        .detail_type("CodeCommit Repository State Change")
        .resources(format!(
            "arn:aws:codecommit:{REGION}:{ACCOUNT}:{}",
            push.repository
        ))
        .detail(codecommit_detail(push).to_string())
        .build();
    let out = events
        .put_events()
        .entries(entry)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("PutEvents: {}", crate::aws::describe(&e)))?;
    if out.failed_entry_count() > 0 {
        bail!("PutEvents: an entry failed");
    }
    Ok(())
}
