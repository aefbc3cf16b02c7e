//! The `codepipeline` and `codebuild` start targets against a real moto server, with
//! `switchyard serve` as a child process: what each call carries (moto's request recorder shows
//! the bodies, since moto keeps neither `sourceRevisions` nor the idempotency tokens nor
//! CodeBuild's environment overrides), the run recorded, the same token after a crash between
//! the call and its record, and an unknown pipeline dead-lettered at once with its hint.

use serde_json::{Value, json};
use switchyard_lab::{Moto, Serve, or_skip};

use crate::support::{Project, SECRET, change, eventually, serve, sha, try_post};

/// A project with a `standard` receiver `hooks` and the one pipeline `deploy` of `start`.
fn project(start: &str) -> Project {
    let p = Project::new();
    p.file("secret", SECRET);
    p.file(
        "switchyard.yaml",
        &format!(
            "state_dir: state\nreceivers:\n  - name: hooks\n    provider: standard\n    secrets: [file:{}]\ndispatch: {{backoff: 50ms}}\n",
            p.root().join("secret").display()
        ),
    );
    p.file(
        "triggers/deploy.yaml",
        &format!("repository: https://github.com/acme/api.git\non: push\nstart:\n{start}"),
    );
    p
}

/// The environment of a `serve` whose AWS targets reach moto through the SDK's own chain
/// (`AWS_ENDPOINT_URL`, `AWS_REGION`), with no `eventbridge:` section.
fn env(moto: &Moto) -> Vec<(&'static str, String)> {
    let mut env = moto.env();
    env.push(("AWS_ENDPOINT_URL", moto.endpoint.clone()));
    env
}

/// Posts a push of `refs/heads/main` to `after`.
async fn push(served: &Serve, delivery: &str, after: &str) {
    let (status, answer) = try_post(served.addr(), delivery, &change("refs/heads/main", after))
        .await
        .expect("serve answers");
    assert_eq!(status, 202, "{answer}");
}

/// The starts of `outbox list --all --format json`.
fn starts(p: &Project) -> Vec<Value> {
    let run = p.run(&["outbox", "list", "--all", "--format", "json"], &[], "");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Waits until the project's one start is in `state`; that start.
async fn the_start(p: &Project, state: &str) -> Value {
    let start = eventually(30, &format!("a {state} start"), || {
        starts(p).into_iter().find(|s| s["state"] == state)
    })
    .await;
    assert_eq!(starts(p).len(), 1, "one change, one start");
    start
}

/// The recorded bodies of `operation` whose `key` is `name` (the recording is the server's).
async fn recorded(moto: &Moto, operation: &str, key: &str, name: &str) -> Vec<Value> {
    moto.recorded(operation)
        .await
        .expect("the recording")
        .into_iter()
        .filter(|b| b[key] == name)
        .collect()
}

const PIPELINE: &str = "  codepipeline:\n    name: api-deploy\n    source_action: Source\n    variables:\n      BRANCH: \"${branch}\"\n      START: \"${start_id}\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_starts_one_pipeline_execution_on_its_commit() {
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    moto.record().await.expect("recording");
    moto.pipeline("api-deploy", "Source", &["BRANCH", "START"])
        .await
        .expect("pipeline");
    let p = project(PIPELINE);
    let served = serve(p.root(), &env(&moto)).await;
    push(&served, "d-1", &sha(2)).await;
    let start = the_start(&p, "succeeded").await;
    let start_id = start["start_id"].as_str().expect("start id");
    assert_eq!(start["attempts"], 1, "{start}");

    // Read without the SDK: moto answers ListPipelineExecutions with times the SDK refuses.
    let ids = moto
        .pipeline_executions("api-deploy")
        .await
        .expect("executions");
    assert_eq!(ids.len(), 1, "exactly one execution: {ids:?}");
    assert_eq!(start["run"], ids[0], "the run is the execution id");

    let sent = recorded(&moto, "StartPipelineExecution", "name", "api-deploy").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["sourceRevisions"],
        json!([{"actionName": "Source", "revisionType": "COMMIT_ID", "revisionValue": sha(2)}])
    );
    assert_eq!(
        sent[0]["variables"],
        json!([{"name": "BRANCH", "value": "main"}, {"name": "START", "value": start_id}])
    );
    assert_eq!(sent[0]["clientRequestToken"], start_id);
    assert!(served.stop().await, "serve stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_attempted_again_after_a_crash_sends_the_same_token() {
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    moto.record().await.expect("recording");
    moto.pipeline("api-deploy", "Source", &["BRANCH", "START"])
        .await
        .expect("pipeline");
    let p = project(PIPELINE);
    // The process aborts once the target answered, before the outcome is recorded.
    let mut crashing = env(&moto);
    crashing.push(("SWITCHYARD_CRASH_AT", "start-attempted".into()));
    let mut served = serve(p.root(), &crashing).await;
    push(&served, "d-1", &sha(3)).await;
    eventually(30, "the abort", || {
        served
            .child()
            .and_then(|c| c.try_wait().ok().flatten())
            .map(|_| ())
    })
    .await;
    assert_eq!(
        recorded(&moto, "StartPipelineExecution", "name", "api-deploy")
            .await
            .len(),
        1,
        "called once before the crash"
    );
    let left = starts(&p);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(
        left[0]["state"], "succeeded",
        "the success was never recorded"
    );

    let served = serve(p.root(), &env(&moto)).await;
    let start = the_start(&p, "succeeded").await;
    let start_id = start["start_id"].as_str().expect("start id");
    let sent = recorded(&moto, "StartPipelineExecution", "name", "api-deploy").await;
    assert_eq!(sent.len(), 2, "attempted again after the restart: {sent:?}");
    assert!(
        sent.iter().all(|b| b["clientRequestToken"] == start_id),
        "both attempts carry the start id as token: {sent:?}"
    );
    assert!(served.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_starts_one_build_of_its_commit_with_the_environment_rendered() {
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    moto.record().await.expect("recording");
    moto.build_project("web-build").await.expect("project");
    let p = project(
        "  codebuild:\n    project: web-build\n    environment:\n      BRANCH: \"${branch}\"\n      START: \"${start_id}\"\n",
    );
    // This time the endpoint and region come from the `eventbridge:` section, as the
    // `eventbridge` and `sqs` targets take them (no AWS_ENDPOINT_URL: without the section the
    // SDK would try AWS itself, which this machine cannot reach).
    let (queue, _, _) = moto.queue("web-build-in", 30, 5).await;
    let config = std::fs::read_to_string(p.root().join("switchyard.yaml")).expect("config");
    p.file(
        "switchyard.yaml",
        &format!(
            "{config}eventbridge:\n  queue_url: {queue}\n  region: {}\n  endpoint_url: {}\n",
            switchyard_lab::REGION,
            moto.endpoint
        ),
    );
    let served = serve(p.root(), &moto.env()).await;
    push(&served, "d-1", &sha(4)).await;
    let start = the_start(&p, "succeeded").await;
    let start_id = start["start_id"].as_str().expect("start id");
    let run = start["run"].as_str().expect("the run is recorded");

    let builds = moto
        .codebuild()
        .batch_get_builds()
        .ids(run)
        .send()
        .await
        .expect("builds");
    let build = builds.builds().first().expect("the build the run names");
    assert_eq!(build.project_name(), Some("web-build"));
    assert_eq!(build.source_version(), Some(sha(4).as_str()));

    let sent = recorded(&moto, "StartBuild", "projectName", "web-build").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["sourceVersion"], sha(4));
    assert_eq!(
        sent[0]["environmentVariablesOverride"],
        json!([
            {"name": "BRANCH", "value": "main", "type": "PLAINTEXT"},
            {"name": "START", "value": start_id, "type": "PLAINTEXT"},
        ])
    );
    assert_eq!(sent[0]["idempotencyToken"], start_id);
    assert!(served.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_that_does_not_exist_is_dead_lettered_at_once_with_a_hint() {
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    let p = project("  codepipeline:\n    name: no-such-pipeline\n    source_action: Source\n");
    let served = serve(p.root(), &env(&moto)).await;
    push(&served, "d-1", &sha(5)).await;
    let start = the_start(&p, "dead").await;
    assert_eq!(start["attempts"], 1, "{start}");
    let error = start["last_error"].as_str().expect("an error");
    assert!(error.contains("PipelineNotFoundException"), "{error}");
    let listed = p.run(&["outbox", "list"], &[], "");
    assert!(
        listed.stdout.contains(
            "hint: check the pipeline name \"no-such-pipeline\" and the region (us-east-1)"
        ),
        "{}",
        listed.stdout
    );
    assert!(served.stop().await);
}

/// A GitLab push of `refs/heads/main` from `before` to `after` changing `paths`, as GitLab sends
/// it for the example's repository (the shape of `tests/fixtures/gitlab/push-event.json`).
fn gitlab_push(before: &str, after: &str, paths: &[&str]) -> String {
    let mut push: Value = serde_json::from_str(include_str!("../fixtures/gitlab/push-event.json"))
        .expect("the fixture");
    push["ref"] = json!("refs/heads/main");
    push["before"] = json!(before);
    push["after"] = json!(after);
    push["checkout_sha"] = json!(after);
    push["project"]["git_http_url"] = json!("https://gitlab.com/acme/platform.git");
    push["project"]["git_ssh_url"] = json!("git@gitlab.com:acme/platform.git");
    push["project"]["web_url"] = json!("https://gitlab.com/acme/platform");
    push["project"]["path_with_namespace"] = json!("acme/platform");
    push["project"]["default_branch"] = json!("main");
    push["repository"]["git_http_url"] = json!("https://gitlab.com/acme/platform.git");
    push["repository"]["homepage"] = json!("https://gitlab.com/acme/platform");
    push["repository"]["url"] = json!("git@gitlab.com:acme/platform.git");
    push["total_commits_count"] = json!(1);
    push["commits"] = json!([{
        "id": after, "message": "change", "title": "change",
        "timestamp": "2026-12-03T10:00:00+00:00",
        "url": format!("https://gitlab.com/acme/platform/-/commit/{after}"),
        "author": {"name": "A", "email": "a@example.com"},
        "added": [], "modified": paths, "removed": [],
    }]);
    push.to_string()
}

/// The example of the README, `examples/gitlab-to-codepipeline`, as shipped: a GitLab push that
/// its filter takes starts the CodePipeline pipeline once, on the pushed commit; one that its
/// filter excludes (documentation only) starts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gitlab_example_starts_its_pipeline_on_the_exact_commit() {
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    moto.record().await.expect("recording");
    moto.pipeline("platform-deploy", "Source", &["GIT_REF", "CHANGE_ID"])
        .await
        .expect("pipeline");
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join("gitlab-to-codepipeline");
    let p = Project::new();
    for file in ["switchyard.yaml", "triggers/platform-deploy.yaml"] {
        let text = std::fs::read_to_string(example.join(file)).expect("the example");
        p.file(file, &text);
    }
    let secret = "example-gitlab-webhook-secret";
    let mut env = env(&moto);
    env.push(("GITLAB_WEBHOOK_SECRET", secret.to_owned()));
    let served = serve(p.root(), &env).await;
    let post = |delivery: &'static str, body: String| {
        let headers: Vec<(String, String)> = [
            ("X-Gitlab-Event", "Push Hook"),
            ("X-Gitlab-Event-UUID", delivery),
            ("X-Gitlab-Token", secret),
            ("Content-Type", "application/json"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let addr = served.addr();
        async move {
            switchyard_lab::try_request(addr, "POST", "/hooks/gitlab", &headers, body.into())
                .await
                .expect("serve answers")
        }
    };
    // Documentation only: excluded by the filter, nothing starts.
    let (status, answer) = post(
        "d-docs",
        gitlab_push(&sha(1), &sha(2), &["services/api/README.md"]),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    // A service's code: started.
    let (status, answer) = post(
        "d-code",
        gitlab_push(&sha(2), &sha(3), &["services/api/src/lib.rs"]),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let start = the_start(&p, "succeeded").await;

    let sent = recorded(&moto, "StartPipelineExecution", "name", "platform-deploy").await;
    assert_eq!(
        sent.len(),
        1,
        "one start, for the code change only: {sent:?}"
    );
    assert_eq!(
        sent[0]["sourceRevisions"],
        json!([{"actionName": "Source", "revisionType": "COMMIT_ID", "revisionValue": sha(3)}])
    );
    assert_eq!(sent[0]["clientRequestToken"], start["start_id"]);
    assert_eq!(
        sent[0]["variables"][0],
        json!({"name": "GIT_REF", "value": "refs/heads/main"})
    );
    let ids = moto
        .pipeline_executions("platform-deploy")
        .await
        .expect("executions");
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(start["run"], ids[0]);
    assert!(served.stop().await, "serve stops cleanly");
}
