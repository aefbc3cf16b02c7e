//! Micro-benchmarks of the pure work on a change notice's path, each on one core and without
//! I/O: checking its signature, turning it into a change event, and deciding the pipelines.
//!
//! - `signature/github_sha256`: a GitHub `X-Hub-Signature-256` check
//!   (`signature::verify_hmac_sha256_hex`) of the GitHub push fixture (8.8 KB).
//! - `signature/standard_webhooks`: a Standard Webhooks check (`signature::verify`, a `whsec_`
//!   key) of the same body.
//! - `normalize/github_push`, `normalize/gitlab_push`: `providers::normalize` of the GitHub
//!   (`push_with-new-branch`) and GitLab (`push-event`) push fixtures.
//! - `normalize/eventbridge_envelope`: `eventbridge::envelope::parse` of the EventBridge event
//!   moto delivers to SQS (the captured fixture with its placeholder commit ids replaced by
//!   full ones, which the parser requires).
//! - `filter/decide_20_pipelines`: `Pipelines::matching` of one push touching 25 paths against
//!   20 pipelines, half in each filter dialect.
//! - `filter/decision_log_20_pipelines`: what the intake does instead, `Pipelines::decisions`
//!   (every pipeline decided and narrated, all 20 watching the repository) and the decision
//!   log encoded as the store keeps it.
//!
//! Setup checks once that every input is valid (a signature that verifies, a delivery that
//! normalizes to one change, the pipelines expected to start), so that no benchmark measures an
//! error path. Without `--bench` (as under `cargo test --benches`) criterion runs each one once.
//!
//! Run with `cargo bench --bench micro` (add `-- --quick` for a short run).

use std::collections::BTreeSet;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use jiff::Timestamp;
use switchyard::config::Provider;
use switchyard::diag::Severity;
use switchyard::event::{ChangeEvent, Source, SourceKind};
use switchyard::pipeline::Pipelines;
use switchyard::signature::{self, Headers, Key};
use switchyard::sources::eventbridge::envelope::{self, Envelope};
use switchyard::sources::providers::{self, Normalized};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const REPOSITORY: &str = "https://github.com/acme/mono.git";
/// Pipelines of the filter benchmark, one per service.
const PIPELINES: usize = 20;
/// Services whose code the push changes (the next one has only its documentation changed).
const CHANGED_SERVICES: usize = 8;

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let value = HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{name}: {e}"));
        map.insert(HeaderName::from_static(name), value);
    }
    map
}

fn received() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap_or_else(|e| panic!("{e}"))
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

fn signatures(c: &mut Criterion) {
    let body = fixture("github/push_with-new-branch.payload.json");

    // GitHub: hex HMAC-SHA256 of the body under the hook's secret.
    let secret = b"It's a Secret to Everybody";
    let hex = signature::hmac_sha256_hex(secret, &body);
    let keys: [&[u8]; 1] = [secret];
    assert!(signature::verify_hmac_sha256_hex(&keys, &body, &hex));
    let mut wrong = hex.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap_or_else(|e| panic!("{e}"));
    assert!(!signature::verify_hmac_sha256_hex(&keys, &body, &wrong));

    // Standard Webhooks: `v1,<base64>` of `{id}.{timestamp}.{body}` under a `whsec_` key.
    let key = Key::from_secret(&format!("whsec_{}", B64.encode([7u8; 32])))
        .unwrap_or_else(|e| panic!("{e}"));
    let now = received().as_second();
    let id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    let timestamp = now.to_string();
    let sig = signature::sign(&key, id, now, &body);
    let std_headers = Headers {
        id: Some(id),
        timestamp: Some(&timestamp),
        signature: Some(&sig),
    };
    let std_keys = [key];
    assert_eq!(
        signature::verify(&std_keys, std_headers, &body, now),
        Ok(())
    );
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert!(signature::verify(&std_keys, std_headers, &tampered, now).is_err());
    eprintln!("signature: body {} bytes", body.len());

    let mut group = c.benchmark_group("signature");
    configure(&mut group);
    group.bench_function("github_sha256", |b| {
        b.iter(|| {
            signature::verify_hmac_sha256_hex(black_box(&keys), black_box(&body), black_box(&hex))
        })
    });
    group.bench_function("standard_webhooks", |b| {
        b.iter(|| {
            signature::verify(
                black_box(&std_keys),
                black_box(std_headers),
                black_box(&body),
                now,
            )
        })
    });
    group.finish();
}

/// The number of change events of a delivery; panics unless it is made of changes.
fn changes(n: &Normalized) -> usize {
    match n {
        Normalized::Changes(events) => events.len(),
        other => panic!("expected changes, got {other:?}"),
    }
}

/// The EventBridge event moto puts in the queue, with full commit ids in place of the
/// placeholders of the capture (as `tests/it/lambda.rs` does).
fn eventbridge_body() -> Vec<u8> {
    let raw = fixture("aws/moto_sqs_body_from_eventbridge.json");
    let captured = envelope::parse(&raw, received());
    assert!(
        captured
            .as_ref()
            .is_err_and(|e| e.field == "detail.commitId"),
        "the capture's placeholder ids are expected to be refused: {captured:?}"
    );
    let mut event: serde_json::Value =
        serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("{e}"));
    let detail = &mut event["detail"];
    for (field, n) in [
        ("commitId", 2u64),
        ("oldCommitId", 1),
        ("baseCommitId", 1),
        ("sourceCommitId", 2),
        ("destinationCommitId", 1),
    ] {
        detail[field] = serde_json::json!(format!("{n:040x}"));
    }
    detail["referenceFullName"] = serde_json::json!("refs/heads/main");
    serde_json::to_vec(&event).unwrap_or_else(|e| panic!("{e}"))
}

fn normalization(c: &mut Criterion) {
    let github = fixture("github/push_with-new-branch.payload.json");
    let github_headers = headers(&[
        ("x-github-event", "push"),
        ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("x-github-hook-id", "109948940"),
    ]);
    let gitlab = fixture("gitlab/push-event.json");
    let gitlab_headers = headers(&[
        ("x-gitlab-event", "Push Hook"),
        (
            "x-gitlab-event-uuid",
            "13792a34-cac6-4fda-95a8-c58e00a3954e",
        ),
    ]);
    let eventbridge = eventbridge_body();

    let normalize = |provider, headers: &HeaderMap, body: &[u8]| {
        providers::normalize(provider, headers, body, received())
            .unwrap_or_else(|e| panic!("{provider:?}: {e}"))
    };
    assert_eq!(
        changes(&normalize(Provider::GitHub, &github_headers, &github)),
        1
    );
    assert_eq!(
        changes(&normalize(Provider::GitLab, &gitlab_headers, &gitlab)),
        1
    );
    match envelope::parse(&eventbridge, received()) {
        Ok(Envelope::Changes { changes, .. }) => assert_eq!(changes.len(), 1),
        other => panic!("expected one change, got {other:?}"),
    }
    eprintln!(
        "normalize: GitHub push {} bytes, GitLab push {} bytes, EventBridge event {} bytes",
        github.len(),
        gitlab.len(),
        eventbridge.len()
    );

    let mut group = c.benchmark_group("normalize");
    configure(&mut group);
    group.bench_function("github_push", |b| {
        b.iter(|| {
            providers::normalize(
                Provider::GitHub,
                black_box(&github_headers),
                black_box(&github),
                received(),
            )
        })
    });
    group.bench_function("gitlab_push", |b| {
        b.iter(|| {
            providers::normalize(
                Provider::GitLab,
                black_box(&gitlab_headers),
                black_box(&gitlab),
                received(),
            )
        })
    });
    group.bench_function("eventbridge_envelope", |b| {
        b.iter(|| envelope::parse(black_box(&eventbridge), received()))
    });
    group.finish();
}

/// Pipeline `i` builds service `i` on `main` (and release branches), leaving out Markdown: even
/// ones in the CodePipeline dialect, odd ones in the GitHub Actions dialect.
fn definition(i: usize) -> (String, String) {
    let name = format!("svc-{i}-build");
    let filter = if i.is_multiple_of(2) {
        format!(
            "triggers:\n  - gitConfiguration:\n      sourceActionName: Source\n      push:\n        \
             - branches: {{includes: [\"main\", \"release/**\"]}}\n          \
             filePaths: {{includes: [\"services/svc-{i}/**\", \"libs/common/**\"], excludes: [\"**/*.md\"]}}\n"
        )
    } else {
        format!(
            "on:\n  push:\n    branches: [\"main\", \"release/**\"]\n    \
             paths: [\"services/svc-{i}/**\", \"!**/*.md\"]\n"
        )
    };
    let yaml = format!(
        "pipeline: {name}\nrepository: {REPOSITORY}\n{filter}start: {{exec: [\"./run\", \"{name}\"]}}\n"
    );
    (format!("triggers/{name}.yaml"), yaml)
}

/// A push to `main` changing three files in each of the first services and the documentation
/// of the next one.
fn push_event() -> ChangeEvent {
    let mut paths: Vec<String> = (0..CHANGED_SERVICES)
        .flat_map(|s| {
            [
                format!("services/svc-{s}/src/main.rs"),
                format!("services/svc-{s}/src/handlers/orders.rs"),
                format!("services/svc-{s}/README.md"),
            ]
        })
        .collect();
    paths.push(format!("services/svc-{CHANGED_SERVICES}/docs/guide.md"));
    let json = serde_json::json!({
        "schema": "switchyard.change/v1",
        "repository": REPOSITORY,
        "kind": "push",
        "ref": "refs/heads/main",
        "before": "1111111111111111111111111111111111111111",
        "after": "2222222222222222222222222222222222222222",
        "changed_paths": paths,
        "changed_paths_complete": true,
        "pull_request": null,
    });
    let source = Source {
        kind: SourceKind::Manual,
        provider: None,
        delivery_id: None,
    };
    ChangeEvent::from_json(json.to_string().as_bytes(), source)
        .unwrap_or_else(|e| panic!("the event is invalid: {e}"))
}

fn filters(c: &mut Criterion) {
    let files: Vec<(String, String)> = (0..PIPELINES).map(definition).collect();
    let (pipelines, diags) = Pipelines::load_texts(&files, Path::new("/"));
    let errors: Vec<_> = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(pipelines.list.len(), PIPELINES);
    let event = push_event();
    let started: BTreeSet<&str> = pipelines
        .matching(&event)
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let expected: BTreeSet<String> = (0..CHANGED_SERVICES)
        .map(|i| format!("svc-{i}-build"))
        .collect();
    assert_eq!(
        started,
        expected.iter().map(String::as_str).collect(),
        "the pipelines of the changed services start, no other"
    );
    eprintln!(
        "filter: {} pipelines, {} changed paths, {} started",
        pipelines.list.len(),
        event.changed_paths.len(),
        started.len()
    );

    let mut group = c.benchmark_group("filter");
    configure(&mut group);
    group.bench_function("decide_20_pipelines", |b| {
        b.iter(|| black_box(pipelines.matching(black_box(&event))).len())
    });
    // What the intake does now: decide every pipeline and narrate those that watch the
    // repository (here all 20), then encode the decision log as stored.
    group.bench_function("decision_log_20_pipelines", |b| {
        b.iter(|| {
            let decided = pipelines.decisions(black_box(&event));
            let log: Vec<_> = decided.into_iter().map(|(_, d)| d).collect();
            black_box(switchyard::store::encode_decisions(&log)).len()
        })
    });
    group.finish();
}

criterion_group!(benches, signatures, normalization, filters);
criterion_main!(benches);
