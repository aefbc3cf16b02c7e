//! The runner targets reached over HTTP: `github_actions` (workflow_dispatch with the run's
//! details, repository_dispatch), `gitlab` (the pipeline trigger API), `buildkite` (create a
//! build) and `jenkins` (`buildWithParameters`). Each builds its runner's documented request from
//! the target's templates, sends it with the shared client (with the change's `traceparent`)
//! and reads the run it made from the answer.
//!
//! The answers are judged alike: 2xx is success; 429, and a 403 that says a rate limit ran out,
//! is throttling, retried after `Retry-After` (or the limit's reset); 408 and 5xx are retried;
//! 401 and 403 are dead-lettered at once with a hint naming the permission the credential
//! lacks, 404 with a hint naming what was not found, any other status as it is. The credential
//! is read at every attempt and never shown: a message that would quote it has it masked.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION, USER_AGENT};

use super::http::{AGENT, Answer, Client, TRACEPARENT, send};
use super::{Failure, Started};
use crate::secret::SecretRef;
use crate::target::{Buildkite, GithubActions, GithubDispatch, Gitlab, Jenkins};
use crate::template::{Context, Template};
use crate::trace::TraceParent;

/// What a runner needs from a failed answer to explain it.
struct Hints {
    /// The runner's name in messages.
    runner: &'static str,
    /// What the credential must be allowed (401, 403).
    permission: String,
    /// What may not exist (404).
    not_found: String,
}

/// Reads a target's credential for this attempt. A credential that cannot be read is retried:
/// it may be a secret being rotated or mounted.
fn credential(secret: &SecretRef, what: &str) -> Result<String, Failure> {
    let value = secret
        .resolve()
        .map_err(|e| Failure::retry(format!("{what}: {e}")))?;
    let value = value.trim().to_owned();
    if value.is_empty() {
        return Err(Failure::retry(format!("{what}: {secret} is empty")));
    }
    Ok(value)
}

/// Renders `NAME: TEMPLATE` entries.
fn render_all(entries: &[(String, Template)], ctx: &Context<'_>) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|(name, t)| (name.clone(), t.render(ctx)))
        .collect()
}

/// A JSON object of rendered entries.
fn object(entries: &[(String, Template)], ctx: &Context<'_>) -> serde_json::Value {
    serde_json::Value::Object(
        entries
            .iter()
            .map(|(name, t)| (name.clone(), serde_json::Value::String(t.render(ctx))))
            .collect(),
    )
}

/// `application/x-www-form-urlencoded` of one value (also right for a query).
pub fn form_encode(text: &str, out: &mut String) {
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

/// A form body of `(name, value)` pairs.
pub fn form(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        form_encode(name, &mut out);
        out.push('=');
        form_encode(value, &mut out);
    }
    out
}

/// One path segment, percent-encoded (a GitLab project path's `/` included).
pub fn segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A request with the headers every runner call carries.
fn request(
    url: &str,
    content_type: &'static str,
    traceparent: &TraceParent,
) -> hyper::http::request::Builder {
    Request::post(url)
        .header(USER_AGENT, AGENT)
        .header(CONTENT_TYPE, HeaderValue::from_static(content_type))
        .header(TRACEPARENT, traceparent.to_string())
}

/// Sends `req` and judges the answer: the answer when it is a success, else the failure.
async fn exchange(
    client: &Client,
    req: hyper::http::request::Builder,
    body: String,
    url: &str,
    secrets: &[&str],
    hints: &Hints,
    timeout: Duration,
) -> Result<Answer, Failure> {
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Failure::dead(format!("cannot build a request for {url}: {e}")))?;
    let answer = send(client, req, timeout)
        .await
        .map_err(|f| mask(f, secrets))?;
    if answer.status.is_success() {
        return Ok(answer);
    }
    Err(mask(judge(&answer, url, hints), secrets))
}

/// The failure of an answer that is not a success.
fn judge(answer: &Answer, url: &str, hints: &Hints) -> Failure {
    let message = answer.describe("POST", url);
    let code = answer.status.as_u16();
    let runner = hints.runner;
    // GitHub answers a spent rate limit with 403 (or 429) and says when it resets.
    let limit_spent = answer
        .headers
        .get("x-ratelimit-remaining")
        .is_some_and(|v| v.as_bytes() == b"0");
    if code == 429 || (code == 403 && (limit_spent || answer.headers.contains_key("retry-after"))) {
        let after = answer.retry_after().or_else(|| {
            let reset: i64 = answer
                .headers
                .get("x-ratelimit-reset")?
                .to_str()
                .ok()?
                .parse()
                .ok()?;
            let wait = reset * 1000 - jiff::Timestamp::now().as_millisecond();
            Some(Duration::from_millis(wait.max(0) as u64))
        });
        return Failure::throttled(format!("{message} ({runner} is throttling)"), after);
    }
    match code {
        401 => Failure::dead(format!(
            "{message}\nhint: {runner} refused the credential: check that it is current, and that it {}",
            hints.permission
        )),
        403 => Failure::dead(format!(
            "{message}\nhint: the credential lacks a permission: it {}",
            hints.permission
        )),
        404 => Failure::dead(format!("{message}\nhint: {}", hints.not_found)),
        _ => answer.failure(message),
    }
}

/// The failure with every appearance of the credential masked, in each form it was sent in
/// (a token, and Jenkins' Basic `user:token` encoded).
fn mask(mut f: Failure, secrets: &[&str]) -> Failure {
    for secret in secrets {
        if secret.len() >= 4 && f.message.contains(secret) {
            f.message = f.message.replace(secret, "[credential]");
        }
    }
    f
}

/// A JSON answer's value at `key`, as text (a number too).
fn field(answer: &Answer, keys: &[&str]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(&answer.body).ok()?;
    keys.iter().find_map(|k| match value.get(*k)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// A `workflow_dispatch` (asking for the run's details, so the run comes back) or a
/// `repository_dispatch` (GitHub answers 204 and tells no run).
pub async fn github_actions(
    client: &Client,
    target: &GithubActions,
    ctx: &Context<'_>,
    traceparent: &TraceParent,
    timeout: Duration,
) -> Result<Started, Failure> {
    let token = credential(&target.token, "start.github_actions.token")?;
    let (url, body, hints) = match &target.dispatch {
        GithubDispatch::Workflow {
            workflow,
            git_ref,
            inputs,
        } => {
            let url = format!(
                "{}/repos/{}/actions/workflows/{}/dispatches",
                target.api_url,
                target.repository,
                segment(workflow)
            );
            let body = serde_json::json!({
                "ref": git_ref.render(ctx),
                "inputs": object(inputs, ctx),
                "return_run_details": true,
            });
            let hints = Hints {
                runner: "GitHub",
                permission: format!(
                    "needs \"Actions: write\" on {} (a fine-grained token; a classic one needs the `repo` scope)",
                    target.repository
                ),
                not_found: format!(
                    "check that {} exists and has .github/workflows/{workflow}; GitHub also answers 404 to a token that cannot see the repository",
                    target.repository
                ),
            };
            (url, body, hints)
        }
        GithubDispatch::Repository {
            event_type,
            client_payload,
        } => {
            let url = format!("{}/repos/{}/dispatches", target.api_url, target.repository);
            let body = serde_json::json!({
                "event_type": event_type.render(ctx),
                "client_payload": object(client_payload, ctx),
            });
            let hints = Hints {
                runner: "GitHub",
                permission: format!(
                    "needs \"Contents: write\" on {} (a fine-grained token; a classic one needs the `repo` scope)",
                    target.repository
                ),
                not_found: format!(
                    "check that {} exists; GitHub also answers 404 to a token that cannot see the repository",
                    target.repository
                ),
            };
            (url, body, hints)
        }
    };
    let req = request(&url, "application/json", traceparent)
        .header(ACCEPT, "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .header(AUTHORIZATION, format!("Bearer {token}"));
    let answer = exchange(
        client,
        req,
        body.to_string(),
        &url,
        &[&token],
        &hints,
        timeout,
    )
    .await?;
    // 200 with `workflow_run_id`, `run_url` and `html_url`; 204 from a server that does not
    // know `return_run_details` yet, and from every repository_dispatch.
    Ok(Started {
        run: field(&answer, &["html_url", "run_url", "workflow_run_id"]),
    })
}

/// `POST /api/v4/projects/:id/trigger/pipeline` with the trigger token, the ref and the
/// variables as a form. GitLab answers 201 with the pipeline (`id`, `web_url`).
pub async fn gitlab(
    client: &Client,
    target: &Gitlab,
    ctx: &Context<'_>,
    traceparent: &TraceParent,
    timeout: Duration,
) -> Result<Started, Failure> {
    let token = credential(&target.token, "start.gitlab.token")?;
    let url = format!(
        "{}/api/v4/projects/{}/trigger/pipeline",
        target.url,
        segment(&target.project)
    );
    let mut pairs = vec![
        ("token".to_owned(), token.clone()),
        ("ref".to_owned(), target.git_ref.render(ctx)),
    ];
    for (name, value) in render_all(&target.variables, ctx) {
        pairs.push((format!("variables[{name}]"), value));
    }
    let hints = Hints {
        runner: "GitLab",
        permission: format!(
            "is a pipeline trigger token of {} (Settings > CI/CD > Pipeline trigger tokens) whose owner may run pipelines on the ref",
            target.project
        ),
        not_found: format!(
            "check that project {} exists on {} and that the ref exists there; GitLab also answers 404 to a token of another project",
            target.project, target.url
        ),
    };
    let req = request(&url, "application/x-www-form-urlencoded", traceparent)
        .header(ACCEPT, "application/json");
    let answer = exchange(client, req, form(&pairs), &url, &[&token], &hints, timeout).await?;
    Ok(Started {
        run: field(&answer, &["web_url", "id"]),
    })
}

/// `POST /v2/organizations/{org}/pipelines/{pipeline}/builds` with commit, branch, message, env
/// and meta-data. Buildkite answers 201 with the build (`web_url`, `number`).
pub async fn buildkite(
    client: &Client,
    target: &Buildkite,
    ctx: &Context<'_>,
    traceparent: &TraceParent,
    timeout: Duration,
) -> Result<Started, Failure> {
    let token = credential(&target.token, "start.buildkite.token")?;
    let url = format!(
        "{}/v2/organizations/{}/pipelines/{}/builds",
        target.api_url, target.organization, target.pipeline
    );
    let body = serde_json::json!({
        "commit": target.commit.render(ctx),
        "branch": target.branch.render(ctx),
        "message": target.message.render(ctx),
        "env": object(&target.env, ctx),
        "meta_data": object(&target.meta_data, ctx),
    });
    let hints = Hints {
        runner: "Buildkite",
        permission: format!(
            "needs the `write_builds` scope and access to organization {}",
            target.organization
        ),
        not_found: format!(
            "check that pipeline {}/{} exists; Buildkite also answers 404 to a token without access to it",
            target.organization, target.pipeline
        ),
    };
    let req = request(&url, "application/json", traceparent)
        .header(ACCEPT, "application/json")
        .header(AUTHORIZATION, format!("Bearer {token}"));
    let answer = exchange(
        client,
        req,
        body.to_string(),
        &url,
        &[&token],
        &hints,
        timeout,
    )
    .await?;
    Ok(Started {
        run: field(&answer, &["web_url", "url", "id"]),
    })
}

/// `POST /job/A/job/B/buildWithParameters` (or `/build` without parameters) with the user's
/// API token by Basic auth, which needs no crumb. Jenkins answers 201 with the queue item in
/// `Location`: that is the run's reference (the build number comes only once it leaves the
/// queue).
pub async fn jenkins(
    client: &Client,
    target: &Jenkins,
    ctx: &Context<'_>,
    traceparent: &TraceParent,
    timeout: Duration,
) -> Result<Started, Failure> {
    let token = credential(&target.token, "start.jenkins.token")?;
    let mut url = target.url.clone();
    for part in target.job.split('/') {
        url.push_str("/job/");
        url.push_str(&segment(part));
    }
    url.push_str(if target.parameters.is_empty() {
        "/build"
    } else {
        "/buildWithParameters"
    });
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{token}", target.user));
    let hints = Hints {
        runner: "Jenkins",
        permission: format!(
            "belongs to user {} (an API token, not a password) with the Job/Build permission on {}",
            target.user, target.job
        ),
        not_found: format!(
            "check that job {} exists on {} (folders as `folder/job`); Jenkins also answers 404 to a user without Job/Read",
            target.job, target.url
        ),
    };
    let req = request(&url, "application/x-www-form-urlencoded", traceparent)
        .header(AUTHORIZATION, format!("Basic {basic}"));
    let body = form(&render_all(&target.parameters, ctx));
    // Jenkins may quote either: the header as sent, or the user and token it decoded.
    let secrets = [basic.as_str(), token.as_str()];
    let answer = exchange(client, req, body, &url, &secrets, &hints, timeout).await?;
    let location = answer
        .headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(Started { run: location })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_segments_encode_every_byte_that_is_not_plain() {
        let pairs = vec![
            ("variables[A B]".to_owned(), "x&y=z/ü".to_owned()),
            ("ref".to_owned(), "main".to_owned()),
        ];
        assert_eq!(
            form(&pairs),
            "variables%5BA+B%5D=x%26y%3Dz%2F%C3%BC&ref=main"
        );
        assert_eq!(segment("acme/api"), "acme%2Fapi");
        assert_eq!(segment("deploy.yml"), "deploy.yml");
    }

    #[test]
    fn a_credential_in_a_message_is_masked_in_every_form_it_was_sent_in() {
        // (message, secrets, masked)
        let cases: [(&str, &[&str], &str); 3] = [
            (
                "echo: glptt-0123456789 refused",
                &["glptt-0123456789"],
                "echo: [credential] refused",
            ),
            (
                "Basic Y2ktYm90OjExYWJjZGVm or ci-bot:11abcdef",
                &["Y2ktYm90OjExYWJjZGVm", "11abcdef"],
                "Basic [credential] or ci-bot:[credential]",
            ),
            ("too short to mask: abc", &["abc"], "too short to mask: abc"),
        ];
        for (message, secrets, masked) in cases {
            assert_eq!(mask(Failure::dead(message), secrets).message, masked);
        }
    }
}
