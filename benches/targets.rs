//! What a start target costs beyond its network call: building the request from the templates,
//! serializing it, signing it (the AWS targets: SigV4 through the SDK), reading the answer and
//! the run in it.
//!
//! Each target starts against a loopback server that answers at once as its runner would (the
//! run id in the body or `Location`), through the real `transport::Transports`. Interleaved with
//! each start, the same client sends a bare POST to the same server (no body to build, nothing
//! to read); the overhead of a start is its time minus that bare exchange's, pair by pair, and
//! the figure is the median of those differences. Recording the run id with the start is one
//! more bound column of the UPDATE that records the outcome anyway (`store::Finish::columns`):
//! it is not a separate cost, and not measured here.
//!
//! The fake and the starts run on one thread: no wake-up crosses threads, so what differs between
//! a start and the bare exchange is the work each does, not the scheduler's luck
//! (`TARGETS_BENCH_THREADS=N` runs them on N worker threads instead: then cross-thread wake-ups,
//! tens of µs each way on a loaded 2-core machine, dominate both sides and their difference).
//!
//! `cargo bench --bench targets`: 3,000 pairs per target (`TARGETS_BENCH_PAIRS=N` for another
//! number, `TARGETS_BENCH_ONLY=codepipeline,codebuild` for some targets, e.g. under `perf`).
//! Without `--bench` (as under `cargo test --benches`) 30 pairs, which checks that every target
//! starts and returns its run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use switchyard::event::{ChangeEvent, Source, SourceKind};
use switchyard::pipeline::Pipelines;
use switchyard::target::Attempt;
use switchyard::transport::{Transports, aws, http};
use switchyard_lab::{Moto, Summary};
use tracing::Instrument as _;

/// Each target's definition, pointed at the fake at `{base}`.
const TARGETS: &[(&str, &str)] = &[
    ("http", "http: {url: \"{base}/start\", secret: {secret}}"),
    (
        "github_actions",
        "github_actions: {api_url: \"{base}\", repository: acme/api, workflow: deploy.yml, token: {token}, inputs: {sha: \"${sha}\", change: \"${change_id}\", start: \"${start_id}\"}}",
    ),
    (
        "gitlab",
        "gitlab: {url: \"{base}\", project: acme/api, token: {token}, variables: {SHA: \"${sha}\", START: \"${start_id}\", REPO: \"${repository}\"}}",
    ),
    (
        "buildkite",
        "buildkite: {api_url: \"{base}\", organization: acme, pipeline: api, token: {token}, env: {SHA: \"${sha}\"}, meta_data: {start: \"${start_id}\"}}",
    ),
    (
        "jenkins",
        "jenkins: {url: \"{base}\", job: folder/api, user: bot, token: {token}, parameters: {SHA: \"${sha}\", START: \"${start_id}\"}}",
    ),
    (
        "codepipeline",
        "codepipeline: {name: platform-deploy, source_action: Source, variables: {GIT_REF: \"${ref}\", CHANGE_ID: \"${change_id}\"}}",
    ),
    (
        "codebuild",
        "codebuild: {project: api, environment: {SHA: \"${sha}\", START: \"${start_id}\"}}",
    ),
];

/// The fake: every runner's success, at once.
async fn answer(req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let _ = switchyard_lab::http::read_body(req.into_body()).await;
    let json = |status: u16, body: &str| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("a response")
    };
    if target.ends_with("StartPipelineExecution") {
        return Response::builder()
            .header("content-type", "application/x-amz-json-1.1")
            .body(Full::new(Bytes::from_static(
                br#"{"pipelineExecutionId":"6f3c1a52-1111-4222-8333-944455556666"}"#,
            )))
            .expect("a response");
    }
    if target.ends_with("StartBuild") {
        return Response::builder()
            .header("content-type", "application/x-amz-json-1.1")
            .body(Full::new(Bytes::from_static(
                br#"{"build":{"id":"api:6f3c1a52-1111-4222-8333-944455556666","arn":"arn:aws:codebuild:us-east-1:123456789012:build/api:6f3c1a52-1111-4222-8333-944455556666","buildStatus":"IN_PROGRESS"}}"#,
            )))
            .expect("a response");
    }
    if path == "/bare" || path == "/start" {
        return Response::builder()
            .status(204)
            .body(Full::new(Bytes::new()))
            .expect("a response");
    }
    if path.ends_with("/dispatches") {
        return json(
            200,
            r#"{"workflow_run_id":22000001,"run_url":"https://api.github.com/repos/acme/api/actions/runs/22000001","html_url":"https://github.com/acme/api/actions/runs/22000001"}"#,
        );
    }
    if path.ends_with("/trigger/pipeline") {
        return json(
            201,
            r#"{"id":4242,"iid":12,"project_id":7,"status":"created","ref":"main","sha":"2222222222222222222222222222222222222222","web_url":"https://gitlab.com/acme/api/-/pipelines/4242"}"#,
        );
    }
    if path.ends_with("/builds") {
        return json(
            201,
            r#"{"id":"f62a1b4d-10f9-4790-bc1c-e2c3a0c80983","number":42,"state":"scheduled","web_url":"https://buildkite.com/acme/api/builds/42"}"#,
        );
    }
    if path.contains("/job/") {
        return Response::builder()
            .status(201)
            .header("location", "http://127.0.0.1/queue/item/42/")
            .body(Full::new(Bytes::new()))
            .expect("a response");
    }
    json(404, r#"{"message":"Not Found"}"#)
}

fn event() -> (ChangeEvent, String) {
    let json = serde_json::json!({
        "schema": "switchyard.change/v1",
        "repository": "gitlab.com/acme/platform",
        "kind": "push",
        "ref": "refs/heads/main",
        "before": "1111111111111111111111111111111111111111",
        "after": "2222222222222222222222222222222222222222",
        "commit_count": 1,
        "changed_paths": ["services/api/src/lib.rs", "libs/core/src/lib.rs"],
        "changed_paths_complete": true,
        "pull_request": null,
        "occurred_at": null,
    });
    let source = Source {
        kind: SourceKind::Manual,
        provider: None,
        delivery_id: None,
    };
    let event = ChangeEvent::from_json(json.to_string().as_bytes(), source).expect("an event");
    let text = serde_json::to_string(&event).expect("json");
    (event, text)
}

/// One pipeline per target, in a temporary `triggers/`.
fn pipelines(base: &str, dir: &std::path::Path) -> Pipelines {
    // The credentials come from files, so that the bench sets no environment variable.
    let token = dir.join("token");
    let secret = dir.join("secret");
    std::fs::write(&token, "bench-token-0123456789").expect("token");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
    let triggers = dir.join("triggers");
    std::fs::create_dir_all(&triggers).expect("triggers/");
    for (name, start) in TARGETS {
        let text = format!(
            "pipeline: {name}\nrepository: https://gitlab.com/acme/platform.git\nstart:\n  {}\n",
            start
                .replace("{base}", base)
                .replace("{token}", &format!("file:{}", token.display()))
                .replace("{secret}", &format!("file:{}", secret.display()))
        );
        std::fs::write(triggers.join(format!("{name}.yaml")), text).expect("a definition");
    }
    let (pipelines, diagnostics) = Pipelines::load_dir(&triggers);
    assert!(
        diagnostics.is_empty(),
        "the bench's definitions: {diagnostics:?}"
    );
    pipelines
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    // `TARGETS_BENCH_PAIRS=N` and `TARGETS_BENCH_ONLY=a,b` (for profiling one target).
    let pairs = std::env::var("TARGETS_BENCH_PAIRS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if full { 3000 } else { 30 });
    let only = std::env::var("TARGETS_BENCH_ONLY").unwrap_or_default();
    let dir = tempfile::tempdir().expect("a temp dir");
    let threads: usize = std::env::var("TARGETS_BENCH_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let runtime = if threads == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    }
    .enable_all()
    .build()
    .expect("runtime");
    runtime.block_on(async {
        let addr = switchyard_lab::http::serve(answer).await.expect("the fake");
        let base = format!("http://{addr}");
        let definitions = pipelines(&base, dir.path());
        let sdk = Moto::at(&base).sdk();
        let transports = Arc::new(Transports::new(
            aws::Aws::from_config(&sdk),
            PathBuf::from(dir.path()),
        ));
        let client = http::client();
        let (event, event_json) = event();
        let traceparent = switchyard::trace::TraceParent::root();
        println!(
            "{:<16} {:>12} {:>12} {:>14} {:>12}",
            "target", "start p50", "bare p50", "overhead p50", "overhead p90"
        );
        for (name, _) in TARGETS {
            if !only.is_empty() && !only.split(',').any(|o| o == *name) {
                continue;
            }
            let pipeline = definitions.get(name).expect("the pipeline");
            // As the dispatcher attempts: in a span `attempt`, with a traceparent of its own.
            let start = async |p: &switchyard::pipeline::Pipeline| {
                let (span, traceparent) = switchyard::telemetry::attempt(1, &traceparent);
                let attempt = Attempt {
                    pipeline: name,
                    start_id: "0123456789abcdef0123456789abcdef",
                    number: 1,
                    event: &event,
                    event_json: &event_json,
                    traceparent: &traceparent,
                    timeout: p.timeout,
                };
                transports
                    .attempt(&p.target, &attempt)
                    .instrument(span)
                    .await
            };
            let mut start_us = Vec::with_capacity(pairs);
            let mut bare_us = Vec::with_capacity(pairs);
            let mut overhead_us = Vec::with_capacity(pairs);
            // Warm the connection pool and the SDK's clients.
            for _ in 0..20 {
                let started = start(pipeline).await;
                if let Err(f) = &started {
                    panic!("{name}: {}", f.message);
                }
                bare(&client, &base).await;
            }
            for i in 0..pairs {
                let t0 = Instant::now();
                let started = start(pipeline)
                    .await
                    .unwrap_or_else(|f| panic!("{name}: {}", f.message));
                let t1 = Instant::now();
                bare(&client, &base).await;
                let t2 = Instant::now();
                if i == 0 && *name != "http" {
                    assert!(started.id.is_some(), "{name} returned no run");
                }
                let s = micros(t1 - t0);
                let b = micros(t2 - t1);
                start_us.push(s);
                bare_us.push(b);
                overhead_us.push(s - b);
            }
            let (start, bare, overhead) = (
                Summary::of(&start_us),
                Summary::of(&bare_us),
                Summary::of(&overhead_us),
            );
            println!(
                "{:<16} {:>10.1}µs {:>10.1}µs {:>12.1}µs {:>10.1}µs",
                name, start.p50, bare.p50, overhead.p50, overhead.p90
            );
        }
    });
}

async fn bare(client: &http::Client, base: &str) {
    let req = Request::post(format!("{base}/bare"))
        .header("user-agent", switchyard::target::exchange::AGENT)
        .body(Bytes::new())
        .expect("a request");
    let (status, _, _) = http::send(client, req, Duration::from_secs(10))
        .await
        .unwrap_or_else(|f| panic!("bare POST: {}", f.message));
    assert_eq!(status.as_u16(), 204);
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
