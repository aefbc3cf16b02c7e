//! `switchyard lambda` through the real lambda_runtime client loop: the binary runs as a child
//! process against a fake of the Lambda Runtime API served here on loopback
//! (`/2018-06-01/runtime/invocation/next`, `/response`, `/error`), and is fed EventBridge events,
//! SQS batches and function URL requests built around the fixtures.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};
use switchyard::signature::hmac_sha256_hex;

use switchyard_lab::announce::put_codecommit;
use switchyard_lab::{Captured, Moto, or_skip};

use crate::support::{Project, eventually, switchyard};

mod dynamodb;

const SECRET: &str = "It's a Secret to Everybody";

/// The repository of the CodeCommit fixtures.
const CODECOMMIT: &str = "codecommit::us-east-2://MyDemoRepo";

fn fixture(path: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture_json(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the function answered one invocation: `/response` or `/error`, and the body.
#[derive(Debug)]
struct Outcome {
    kind: &'static str,
    body: Value,
}

/// The fake Runtime API: invocations wait in a queue for the client's `next`, and answers are
/// kept by request id.
#[derive(Default)]
struct Runtime {
    queue: Mutex<VecDeque<(String, Value)>>,
    queued: tokio::sync::Notify,
    answers: Mutex<HashMap<String, Outcome>>,
    answered: tokio::sync::Notify,
    init_errors: Mutex<Vec<Value>>,
}

impl Runtime {
    /// Serves on loopback until the test's runtime ends.
    async fn start() -> (Arc<Runtime>, SocketAddr) {
        let runtime = Arc::new(Runtime::default());
        let shared = Arc::clone(&runtime);
        let addr = switchyard_lab::http::serve(move |request| Arc::clone(&shared).answer(request))
            .await
            .expect("serve the Runtime API");
        (runtime, addr)
    }

    async fn answer(self: Arc<Self>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        let body = switchyard_lab::http::read_body(request.into_body()).await;
        let status = |code: u16, body: &str| {
            let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
            *r.status_mut() = hyper::StatusCode::from_u16(code).expect("status");
            r
        };
        let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
            return status(404, "not the Runtime API");
        };
        if rest == "invocation/next" {
            let (id, payload) = self.next().await;
            let deadline = jiff::Timestamp::now().as_millisecond() + 30_000;
            let response = Response::builder()
                .header("lambda-runtime-aws-request-id", &id)
                .header("lambda-runtime-deadline-ms", deadline.to_string())
                .header(
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:switchyard",
                )
                .header(
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000",
                )
                .body(Full::new(Bytes::from(payload.to_string())))
                .expect("response");
            return response;
        }
        if rest == "init/error" {
            let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            self.init_errors.lock().expect("lock").push(value);
            return status(202, "{}");
        }
        let Some((id, kind)) = rest
            .strip_prefix("invocation/")
            .and_then(|r| r.split_once('/'))
        else {
            return status(404, "unknown path");
        };
        let kind = match kind {
            "response" => "response",
            "error" => "error",
            _ => return status(404, "unknown path"),
        };
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        self.answers
            .lock()
            .expect("lock")
            .insert(id.to_owned(), Outcome { kind, body });
        self.answered.notify_waiters();
        status(202, "{\"status\":\"OK\"}")
    }

    async fn next(&self) -> (String, Value) {
        loop {
            let notified = self.queued.notified();
            if let Some(item) = self.queue.lock().expect("lock").pop_front() {
                return item;
            }
            notified.await;
        }
    }

    /// Hands `payload` to the function and waits for its answer.
    async fn invoke(&self, payload: Value) -> Outcome {
        let id = format!("req-{}", fastrand::u64(..));
        self.queue
            .lock()
            .expect("lock")
            .push_back((id.clone(), payload));
        self.queued.notify_waiters();
        let wait = async {
            loop {
                let notified = self.answered.notified();
                if let Some(outcome) = self.answers.lock().expect("lock").remove(&id) {
                    return outcome;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("the function answered within 30 s")
    }
}

/// `switchyard lambda` as Lambda runs it: the environment AWS sets, the package in `root`.
struct Function {
    child: Child,
    stderr: Arc<Captured>,
}

impl Function {
    fn start(root: &Path, api: SocketAddr, env: &[(&str, &str)]) -> Function {
        let api = api.to_string();
        let task_root = root.display().to_string();
        let aws = [
            ("AWS_LAMBDA_RUNTIME_API", api.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", "switchyard"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("LAMBDA_TASK_ROOT", task_root.as_str()),
            ("SWITCHYARD_LOG", "info"),
        ];
        let env: Vec<(&str, &str)> = aws.iter().chain(env).copied().collect();
        let mut child = switchyard(root, &["lambda"], &env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchyard lambda");
        let stderr = Captured::spawn(child.stderr.take().expect("stderr"), None);
        Function { child, stderr }
    }

    fn err(&self) -> String {
        self.stderr.text()
    }

    /// The log once `check` holds of it: lines arrive through a pipe, after the answer.
    async fn logged(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        eventually(10, what, || {
            let err = self.err();
            check(&err).then_some(err)
        })
        .await
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A package: pipelines on the CodeCommit repository that append what started them to
/// `started.log`, one on `broken` whose start always fails, and quick retries.
fn package() -> Project {
    let p = Project::new();
    let log = p.root().join("started.log");
    let printer = format!(
        "repository: {CODECOMMIT}\non:\n  push:\n    branches: [main, feature]\nstart:\n  exec: [\"/bin/sh\", \"-c\", \"printf '%s %s %s\\\\n' \\\"$SWITCHYARD_REF\\\" \\\"$SWITCHYARD_START_ID\\\" \\\"$SWITCHYARD_SOURCE\\\" >> {}\"]\n",
        log.display()
    );
    p.file("triggers/printer.yaml", &printer);
    p.file(
        "triggers/broken.yaml",
        &format!(
            "repository: {CODECOMMIT}\non:\n  push:\n    branches: [broken]\nstart:\n  exec: [\"/bin/sh\", \"-c\", \"exit 3\"]\n"
        ),
    );
    p.file(
        "switchyard.yaml",
        "dispatch:\n  attempts: 3\n  backoff: 20ms\n  backoff_max: 50ms\n",
    );
    p
}

/// The lines of `started.log`.
fn started(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join("started.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The CodeCommit "Repository State Change" fixture, made a real update of `branch`.
fn reference_updated(event_id: &str, branch: &str, n: u64) -> Value {
    let mut event = fixture_json("aws/codecommit_referenceUpdated.json");
    event["id"] = json!(event_id);
    let detail = &mut event["detail"];
    detail["referenceName"] = json!(branch);
    detail["referenceFullName"] = json!(format!("refs/heads/{branch}"));
    detail["oldCommitId"] = json!(crate::support::sha(n));
    detail["commitId"] = json!(crate::support::sha(n + 1));
    event
}

/// An SQS batch as the event source mapping hands it over: each body an EventBridge event.
fn sqs_batch(records: &[(&str, String)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764151885000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:switchyard",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    json!({ "Records": records })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_batch_reports_exactly_the_records_that_were_not_started() {
    let (runtime, api) = Runtime::start().await;
    let package = package();
    let function = Function::start(package.root(), api, &[]);
    let malformed =
        String::from_utf8(fixture("aws/codecommit_referenceUpdated.json")).expect("utf-8");
    let batch = sqs_batch(&[
        ("m-main", reference_updated("e-1", "main", 1).to_string()),
        (
            "m-broken",
            reference_updated("e-2", "broken", 3).to_string(),
        ),
        // The AWS documentation's sample: placeholder commit ids, which no repository has.
        ("m-placeholder", malformed),
        (
            "m-feature",
            reference_updated("e-3", "feature", 5).to_string(),
        ),
        ("m-not-json", "{\"detail-type\": ".to_owned()),
    ]);
    let outcome = runtime.invoke(batch).await;
    assert_eq!(outcome.kind, "response", "{outcome:?}\n{}", function.err());
    assert_eq!(
        outcome.body,
        json!({"batchItemFailures": [
            {"itemIdentifier": "m-broken"},
            {"itemIdentifier": "m-not-json"},
            {"itemIdentifier": "m-placeholder"},
        ]}),
        "{}",
        function.err()
    );
    let lines = started(package.root());
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, branch) in lines.iter().zip(["refs/heads/main", "refs/heads/feature"]) {
        let fields: Vec<&str> = line.split(' ').collect();
        assert!(lines.iter().any(|l| l.starts_with(branch)), "{lines:?}");
        assert_eq!(fields.len(), 3, "{line}");
        assert!(
            fields[1].len() == 32 && fields[1].bytes().all(|b| b.is_ascii_hexdigit()),
            "{line}"
        );
        assert_eq!(fields[2], "eventbridge", "{line}");
    }
    let err = function
        .logged("the failed start and the malformed record", |err| {
            err.contains("could not be started") && err.contains("detail.commitId")
        })
        .await;
    assert!(
        err.contains("could not be started") && err.contains("exit"),
        "{err}"
    );
    assert!(
        err.contains("detail.commitId"),
        "the malformed record is named: {err}"
    );

    // SQS delivers the failed records again (and, at least once, maybe a started one): the
    // started one is not repeated by this instance, the broken one fails again.
    let again = sqs_batch(&[
        (
            "m-main-again",
            reference_updated("e-1", "main", 1).to_string(),
        ),
        (
            "m-broken-again",
            reference_updated("e-2", "broken", 3).to_string(),
        ),
    ]);
    let outcome = runtime.invoke(again).await;
    assert_eq!(
        outcome.body,
        json!({"batchItemFailures": [{"itemIdentifier": "m-broken-again"}]}),
        "{}",
        function.err()
    );
    assert_eq!(started(package.root()).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eventbridge_event_starts_or_fails_the_invocation_for_aws_to_retry() {
    let (runtime, api) = Runtime::start().await;
    let package = package();
    let function = Function::start(package.root(), api, &[]);

    let outcome = runtime.invoke(reference_updated("e-10", "main", 10)).await;
    assert_eq!(outcome.kind, "response", "{outcome:?}\n{}", function.err());
    assert_eq!(outcome.body["status"], "accepted", "{outcome:?}");
    assert_eq!(outcome.body["event"], "e-10");
    let starts = outcome.body["changes"][0]["starts"].clone();
    let lines = started(package.root());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        starts,
        json!([lines[0].split(' ').nth(1).expect("start id")]),
        "the answer names the start id the runner got"
    );

    // A start that keeps failing fails the invocation: AWS retries an asynchronous invocation
    // and then hands the event to the on-failure destination.
    let outcome = runtime
        .invoke(reference_updated("e-11", "broken", 20))
        .await;
    assert_eq!(outcome.kind, "error", "{outcome:?}");
    assert_eq!(outcome.body["errorType"], "switchyard.NotStarted");
    let message = outcome.body["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("broken: ") && message.contains("1 of 1 pipeline"),
        "{message}"
    );
    let err = function
        .logged("the retries", |err| err.contains("AWS to deliver again"))
        .await;
    assert_eq!(err.matches("start failed; will retry").count(), 2, "{err}");

    // A well-formed event that is no change is answered, not failed.
    let mut comment = reference_updated("e-12", "main", 30);
    comment["detail-type"] = json!("CodeCommit Comment on Commit");
    let outcome = runtime.invoke(comment).await;
    assert_eq!(outcome.kind, "response", "{outcome:?}");
    assert_eq!(outcome.body["status"], "ignored");

    // Something no trigger sends is an error that says what it expected.
    let outcome = runtime.invoke(json!({"hello": "world"})).await;
    assert_eq!(outcome.kind, "error", "{outcome:?}");
    let message = outcome.body["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("neither an EventBridge event"),
        "{message}"
    );
    assert_eq!(started(package.root()).len(), 1);
}

/// A function URL request (payload format 2.0) as AWS builds it: lower-cased headers, the body
/// base64-encoded.
fn url_request(method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Value {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), json!(v)))
        .collect();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghijklmnop",
            "domainName": "abcdefghijklmnop.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghijklmnop",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "GitHub-Hookshot/1"
            },
            "requestId": "id",
            "routeKey": "$default",
            "stage": "$default",
            "time": "26/Nov/2026:16:00:00 +0000",
            "timeEpoch": 1764172800000i64
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true
    })
}

fn github_headers(body: &[u8], secret: &str, delivery: &str) -> Vec<(String, String)> {
    vec![
        ("Content-Type".into(), "application/json".into()),
        ("X-GitHub-Event".into(), "push".into()),
        ("X-GitHub-Delivery".into(), delivery.into()),
        (
            "X-Hub-Signature-256".into(),
            format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), body)),
        ),
    ]
}

/// The answer's status and JSON body.
fn http(outcome: &Outcome) -> (i64, Value) {
    assert_eq!(outcome.kind, "response", "{outcome:?}");
    let status = outcome.body["statusCode"].as_i64().expect("statusCode");
    let body = outcome.body["body"].as_str().unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(json!(body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_url_takes_signed_webhooks_with_the_answers_of_serve() {
    let (runtime, api) = Runtime::start().await;
    // No switchyard.yaml: the receiver comes from the environment alone.
    let package = Project::new();
    let log = package.root().join("started.log");
    package.file(
        "triggers/hello.yaml",
        &format!(
            "repository: https://github.com/Codertocat/Hello-World.git\non: push\nstart:\n  exec: [\"/bin/sh\", \"-c\", \"printf '%s %s\\\\n' \\\"$SWITCHYARD_REF\\\" \\\"$SWITCHYARD_SOURCE\\\" >> {}\"]\n",
            log.display()
        ),
    );
    let function = Function::start(package.root(), api, &[("SWITCHYARD_SECRET_GITHUB", SECRET)]);
    let body = fixture("github/push_with-new-branch.payload.json");

    let signed = url_request(
        "POST",
        "/hooks/github",
        &github_headers(&body, SECRET, "d-1"),
        &body,
    );
    let (status, answer) = http(&runtime.invoke(signed.clone()).await);
    assert_eq!(status, 202, "{answer}\n{}", function.err());
    assert_eq!(answer["status"], "accepted");
    assert_eq!(
        answer["starts"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    assert_eq!(started(package.root()), ["refs/heads/master webhook"]);

    // The same delivery again (GitHub's "Redeliver"): this instance started it already.
    let (status, answer) = http(&runtime.invoke(signed).await);
    assert_eq!(
        (status, answer["status"].clone()),
        (202, json!("duplicate")),
        "{answer}"
    );
    assert_eq!(started(package.root()).len(), 1);

    let forged = url_request(
        "POST",
        "/hooks/github",
        &github_headers(&body, "not the secret", "d-2"),
        &body,
    );
    let (status, answer) = http(&runtime.invoke(forged).await);
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["status"], "rejected");
    assert_eq!(started(package.root()).len(), 1);

    let (status, answer) = http(
        &runtime
            .invoke(url_request("POST", "/hooks/gitlab", &[], b"{}"))
            .await,
    );
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("gitlab"),
        "{answer}"
    );

    let (status, _) = http(
        &runtime
            .invoke(url_request("GET", "/hooks/github", &[], b""))
            .await,
    );
    assert_eq!(status, 405);

    let healthz = runtime
        .invoke(url_request("GET", "/healthz", &[], b""))
        .await;
    assert_eq!(healthz.body["statusCode"], 200, "{healthz:?}");
    assert_eq!(healthz.body["body"], "ok\n");

    let mut not_base64 = url_request("POST", "/hooks/github", &[], b"");
    not_base64["body"] = json!("%%% not base64 %%%");
    let (status, answer) = http(&runtime.invoke(not_base64).await);
    assert_eq!(status, 400, "{answer}");

    let err = function
        .logged("the refusals", |err| {
            err.matches("delivery refused").count() >= 2
        })
        .await;
    assert!(!err.contains(SECRET), "the secret reached the log: {err}");
    assert!(runtime.init_errors.lock().expect("lock").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_url_traceparent_reaches_the_starts_it_makes() {
    let (runtime, api) = Runtime::start().await;
    let package = Project::new();
    let log = package.root().join("traceparents.log");
    package.file(
        "triggers/hello.yaml",
        &format!(
            "repository: https://github.com/Codertocat/Hello-World.git\non: push\nstart:\n  exec: [\"/bin/sh\", \"-c\", \"printf '%s\\\\n' \\\"$TRACEPARENT\\\" >> {}\"]\n",
            log.display()
        ),
    );
    let function = Function::start(package.root(), api, &[("SWITCHYARD_SECRET_GITHUB", SECRET)]);
    let body = fixture("github/push_with-new-branch.payload.json");
    let sent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut headers = github_headers(&body, SECRET, "d-1");
    headers.push(("traceparent".into(), sent.into()));
    let (status, answer) = http(
        &runtime
            .invoke(url_request("POST", "/hooks/github", &headers, &body))
            .await,
    );
    assert_eq!(status, 202, "{answer}\n{}", function.err());
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    let got = lines.trim();
    assert!(
        got.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && got.ends_with("-01"),
        "TRACEPARENT={got:?}"
    );
    assert_ne!(got, sent, "a span id of the start's own");
    assert_eq!(
        switchyard::trace::TraceParent::parse(got).map(|t| t.to_string()),
        Some(got.to_owned())
    );
}

#[test]
fn outside_lambda_the_command_says_where_it_runs() {
    let package = Project::new();
    // The harness leaves AWS_LAMBDA_RUNTIME_API out of every run.
    let run = package.run(&["lambda"], &[], "");
    assert_eq!(run.code, Some(1));
    let err = &run.stderr;
    assert!(
        err.contains("AWS_LAMBDA_RUNTIME_API is not set") && err.contains("switchyard serve"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_with_broken_definitions_does_not_start() {
    let (_runtime, api) = Runtime::start().await;
    let package = Project::new();
    package.file("triggers/bad.yaml", "repository: [\non: push\n");
    let mut function = Function::start(package.root(), api, &[]);
    let status = eventually(20, "the function to exit", || {
        function.child.try_wait().ok().flatten()
    })
    .await;
    assert_eq!(status.code(), Some(1));
    function
        .logged("the definitions' error", |err| err.contains("bad.yaml"))
        .await;
}

/// The events path on a real moto server: PutEvents → rule → queue; the test hands the queue's
/// messages over as the event source mapping does, and the pipeline's `sqs` start target sends
/// to a FIFO queue on moto. A second, fresh instance given the same record (a redelivery that
/// lands on another instance) starts again with the same start id, which the FIFO queue's
/// deduplication drops: the runner sees one start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_moto_a_redelivery_to_another_instance_carries_the_same_start_id() {
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    let (queue, queue_arn, _) = moto.queue("lambda-in", 30, 5).await;
    moto.rule_to_queue("aws.codecommit", &queue_arn).await;
    let fifo = [(
        aws_sdk_sqs::types::QueueAttributeName::FifoQueue,
        "true".to_owned(),
    )];
    let (runner, _) = moto
        .create_queue("runner.fifo", &fifo)
        .await
        .expect("create FIFO queue");
    let package = Project::new();
    package.file(
        "triggers/runner.yaml",
        &format!(
            "repository: codecommit::us-east-1://MyDemoRepo\non: push\nstart:\n  sqs:\n    queue_url: {runner}\n"
        ),
    );
    let detail = reference_updated("ignored", "main", 40)["detail"].clone();
    put_codecommit(&moto.events(), "MyDemoRepo", &detail)
        .await
        .expect("put events");
    let received = moto
        .sqs()
        .receive_message()
        .queue_url(&queue)
        .wait_time_seconds(5)
        .send()
        .await
        .expect("receive");
    let message = received
        .messages()
        .first()
        .expect("the rule delivered the event");
    let record = sqs_batch(&[(
        message.message_id().expect("message id"),
        message.body().expect("body").to_owned(),
    )]);

    let mut env: Vec<(&str, String)> = moto.env();
    env.push(("AWS_ENDPOINT_URL", moto.endpoint.clone()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut start_ids = Vec::new();
    for instance in 0..2 {
        let (runtime, api) = Runtime::start().await;
        let function = Function::start(package.root(), api, &env);
        let outcome = runtime.invoke(record.clone()).await;
        assert_eq!(
            outcome.body,
            json!({"batchItemFailures": []}),
            "instance {instance}: {}",
            function.err()
        );
        let err = function
            .logged("the start", |err| err.contains("start="))
            .await;
        let id = err
            .split("start=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("instance {instance} logged no start: {err}"))
            .to_owned();
        start_ids.push(id);
    }
    assert_eq!(
        start_ids[0], start_ids[1],
        "both instances use one start id"
    );
    let out = moto
        .sqs()
        .receive_message()
        .queue_url(&runner)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("receive the starts");
    let bodies: Vec<Value> = out
        .messages()
        .iter()
        .filter_map(|m| serde_json::from_str(m.body()?).ok())
        .collect();
    assert_eq!(bodies.len(), 1, "the repeat was dropped: {bodies:?}");
    assert_eq!(bodies[0]["start_id"], json!(start_ids[0]));
    assert_eq!(bodies[0]["pipeline"], "runner");
    assert_eq!(bodies[0]["event"]["source"]["kind"], "eventbridge");
}

/// The binary runs on Lambda's `provided.al2023` runtime: the only shared libraries it needs
/// are glibc's and libgcc's (zlib is linked in), and no symbol it imports needs a glibc newer
/// than AL2023's 2.34. Read with binutils' `objdump`, which every Rust build machine has (it
/// comes with the linker).
#[test]
fn the_binary_needs_only_what_provided_al2023_has() {
    let out = match std::process::Command::new("objdump")
        .args(["-T", "-p", env!("CARGO_BIN_EXE_switchyard")])
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            assert!(
                std::env::var_os("SWITCHYARD_TEST_STRICT").is_none(),
                "objdump cannot be run here ({e}): install binutils"
            );
            eprintln!("skipped: objdump cannot be run here ({e})");
            return;
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let glibc = [
        "libc.so.6",
        "libm.so.6",
        "libgcc_s.so.1",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
    ];
    let needed: Vec<&str> = table
        .lines()
        .filter_map(|l| l.trim().strip_prefix("NEEDED"))
        .map(str::trim)
        .collect();
    assert!(needed.contains(&"libc.so.6"), "{needed:?}");
    let foreign: Vec<&&str> = needed.iter().filter(|n| !glibc.contains(n)).collect();
    assert!(
        foreign.is_empty(),
        "the binary needs {foreign:?}, which provided.al2023 may not have: link it in"
    );
    let mut newest = (0u32, 0u32);
    for version in table.split("GLIBC_").skip(1) {
        let digits: String = version
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = digits.split('.').filter_map(|p| p.parse::<u32>().ok());
        if let (Some(major), Some(minor)) = (parts.next(), parts.next()) {
            newest = newest.max((major, minor));
        }
    }
    assert!(newest >= (2, 2), "no glibc symbol found:\n{table}");
    assert!(
        newest <= (2, 34),
        "the binary needs GLIBC_{}.{}, newer than provided.al2023's 2.34: build it on an older distribution (deploy/README.md)",
        newest.0,
        newest.1
    );
}

/// The Lambda shape's main use: a CodeCommit push (an EventBridge event handed to the function)
/// starts a CodePipeline V2 pipeline on the pushed commit, with the start id as the request
/// token, before the invocation is answered (moto's recorder shows what was sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_starts_a_codepipeline_pipeline_on_its_commit() {
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    moto.record().await.expect("recording");
    moto.pipeline("release", "Source", &["REF"])
        .await
        .expect("pipeline");
    let package = Project::new();
    package.file(
        "triggers/release.yaml",
        &format!(
            "repository: {CODECOMMIT}\non: push\nstart:\n  codepipeline: {{name: release, source_action: Source, variables: {{REF: \"${{ref}}\"}}}}\n"
        ),
    );
    let mut env: Vec<(&str, String)> = moto.env();
    env.push(("AWS_ENDPOINT_URL", moto.endpoint.clone()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (runtime, api) = Runtime::start().await;
    let function = Function::start(package.root(), api, &env);

    let outcome = runtime.invoke(reference_updated("e-50", "main", 50)).await;
    assert_eq!(outcome.kind, "response", "{outcome:?}\n{}", function.err());
    assert_eq!(outcome.body["status"], "accepted", "{outcome:?}");
    let start_id = outcome.body["changes"][0]["starts"][0].clone();
    let sent: Vec<Value> = moto
        .recorded("StartPipelineExecution")
        .await
        .expect("the recording")
        .into_iter()
        .filter(|b| b["name"] == "release")
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["sourceRevisions"],
        json!([{"actionName": "Source", "revisionType": "COMMIT_ID", "revisionValue": crate::support::sha(51)}])
    );
    assert_eq!(sent[0]["clientRequestToken"], start_id);
    assert_eq!(
        sent[0]["variables"],
        json!([{"name": "REF", "value": "refs/heads/main"}])
    );
    let executions = moto
        .pipeline_executions("release")
        .await
        .expect("executions");
    assert_eq!(executions.len(), 1, "{executions:?}");
    function
        .logged("the run", |err| err.contains(executions[0].as_str()))
        .await;
}
