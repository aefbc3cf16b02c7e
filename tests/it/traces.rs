//! Traces and logs end to end, against the real `serve` (a child process), the lab's runner and
//! the lab's OTLP collector stub: a delivery's `traceparent` reaches the runner's request and
//! `exec`'s `TRACEPARENT` in the same trace, a delivery without one (or with a malformed one)
//! still gives its starts a valid one, spans go to an OTLP endpoint in the delivery's trace and
//! are flushed at a graceful stop, and `--log-format json` prints one JSON object a line with
//! the change's ids.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use switchyard::signature::hmac_sha256_hex;
use switchyard::trace::TraceParent;
use switchyard_lab::{Arrival, Collector, Runner, Serve};

use crate::support::{Project, eventually, request};

const GITHUB_SECRET: &str = "It's a Secret to Everybody";

/// The delivery's trace: `traceparent` as a caller (GitHub behind a tracing proxy) sends it.
const SENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn fixture() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/github/push_with-new-branch.payload.json");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A project with a `github` receiver and two pipelines on the fixture's repository: `http`
/// to the runner at `runner`, and `exec` writing its `TRACEPARENT` to `ROOT/traceparent`.
fn project(runner: std::net::SocketAddr) -> Project {
    let p = Project::served(
        "  - name: github\n    provider: github\n    secrets: [\"file:$DIR/github.secret\"]\n",
    );
    p.file("github.secret", GITHUB_SECRET);
    let repository = "https://github.com/Codertocat/Hello-World.git";
    p.file(
        "triggers/http.yaml",
        &format!("repository: {repository}\non: push\nstart:\n  http: {{url: \"http://{runner}/start\"}}\n"),
    );
    let out = p.root().join("traceparent");
    p.file(
        "triggers/exec.yaml",
        &format!(
            "repository: {repository}\non: push\nstart:\n  exec: [\"/bin/sh\", \"-c\", \"printf '%s' \\\"$TRACEPARENT\\\" > {}\"]\n",
            out.display()
        ),
    );
    p
}

/// A signed GitHub push delivery of the fixture under delivery id `delivery`, with
/// `traceparent` when given: (status, answer).
async fn deliver(serve: &Serve, delivery: &str, traceparent: Option<&str>) -> (u16, Value) {
    let body = fixture();
    let mut headers: Vec<(String, String)> = vec![
        ("Content-Type".into(), "application/json".into()),
        ("X-GitHub-Event".into(), "push".into()),
        ("X-GitHub-Delivery".into(), delivery.into()),
        ("X-GitHub-Hook-ID".into(), "42".into()),
        (
            "X-Hub-Signature-256".into(),
            format!(
                "sha256={}",
                hmac_sha256_hex(GITHUB_SECRET.as_bytes(), &body)
            ),
        ),
    ];
    if let Some(t) = traceparent {
        headers.push(("traceparent".into(), t.into()));
    }
    let (status, text) = request(serve.addr(), "POST", "/hooks/github", &headers, body).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The `traceparent` of the runner's first request, parsed (it must be a valid one).
async fn runner_traceparent(runner: &Runner) -> TraceParent {
    let arrival: Arrival = runner
        .wait_for(Duration::from_secs(20), |a| a.first().cloned())
        .await
        .expect("the start reaches the runner");
    let header = arrival
        .headers
        .get("traceparent")
        .unwrap_or_else(|| panic!("no traceparent among {:?}", arrival.headers));
    TraceParent::parse(header).unwrap_or_else(|| panic!("an invalid traceparent: {header:?}"))
}

/// What `exec` found in `TRACEPARENT`, parsed.
async fn exec_traceparent(root: &Path) -> TraceParent {
    let text = eventually(20, "exec writes its TRACEPARENT", || {
        std::fs::read_to_string(root.join("traceparent"))
            .ok()
            .filter(|t| !t.is_empty())
    })
    .await;
    TraceParent::parse(&text).unwrap_or_else(|| panic!("an invalid TRACEPARENT: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_traceparent_reaches_the_runner_and_exec_in_its_trace_with_json_logs() {
    let (runner, addr) = Runner::start().await.expect("runner");
    let p = project(addr);
    let serve = crate::support::serve(p.root(), &[("SWITCHYARD_LOG_FORMAT", "json".into())]).await;
    let (status, answer) = deliver(&serve, "d-1", Some(SENT)).await;
    assert_eq!(status, 202, "{answer}");
    let change_id = answer["change"].as_str().expect("a change id").to_owned();

    let sent = TraceParent::parse(SENT).expect("valid");
    let http = runner_traceparent(&runner).await;
    assert_eq!(http.trace_id_hex(), TRACE_ID, "the delivery's trace");
    assert_ne!(http.parent_id(), sent.parent_id(), "a span id of its own");
    let exec = exec_traceparent(p.root()).await;
    assert_eq!(exec.trace_id_hex(), TRACE_ID);
    assert_ne!(exec.parent_id(), sent.parent_id());

    // Every line of standard error is one JSON object; the change's own lines carry its ids.
    let err = eventually(10, "both starts logged", || {
        let err = serve.err();
        (err.matches("\"message\":\"started\"").count() >= 2).then_some(err)
    })
    .await;
    let lines: Vec<Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let accepted = lines
        .iter()
        .find(|l| l["message"] == "change accepted")
        .unwrap_or_else(|| panic!("no \"change accepted\" line:\n{err}"));
    assert_eq!(accepted["change_id"], change_id.as_str(), "{accepted}");
    assert_eq!(accepted["delivery_id"], "42:d-1", "{accepted}");
    assert_eq!(accepted["receiver"], "github", "{accepted}");
    assert_eq!(accepted["level"], "INFO", "{accepted}");
    let started: Vec<&Value> = lines.iter().filter(|l| l["message"] == "started").collect();
    assert_eq!(started.len(), 2, "{err}");
    for line in started {
        assert_eq!(line["change_id"], change_id.as_str(), "{line}");
        assert!(
            line["start_id"].as_str().is_some_and(|s| s.len() == 32),
            "{line}"
        );
        assert_eq!(line["spans"], serde_json::json!(["dispatch"]), "{line}");
    }
    assert!(
        !err.contains(GITHUB_SECRET) && !err.contains("sha256="),
        "a secret reached the log:\n{err}"
    );
    assert!(serve.stop().await, "serve stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_without_a_valid_traceparent_still_gives_its_starts_one() {
    for sent in [
        None,
        Some("00-not-a-traceparent-01"),
        Some(&SENT.to_uppercase()[..]),
    ] {
        let (runner, addr) = Runner::start().await.expect("runner");
        let p = project(addr);
        let serve = crate::support::serve(p.root(), &[]).await;
        let (status, answer) = deliver(&serve, "d-1", sent).await;
        assert_eq!(status, 202, "{sent:?} is never a refusal: {answer}");
        let http = runner_traceparent(&runner).await;
        let exec = exec_traceparent(p.root()).await;
        assert_ne!(http.trace_id_hex(), TRACE_ID, "{sent:?}: a new trace");
        assert_eq!(
            Some(http.trace_id_hex().as_str()),
            answer["change"].as_str(),
            "{sent:?}: the trace the change's id names"
        );
        assert_eq!(
            exec.trace_id(),
            http.trace_id(),
            "{sent:?}: one trace for the change's starts"
        );
        assert_ne!(exec.parent_id(), http.parent_id());
        assert!(serve.stop().await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_go_to_the_otlp_endpoint_in_the_delivery_trace_and_are_flushed_at_stop() {
    let (collector, otlp) = Collector::start().await.expect("collector");
    let (runner, addr) = Runner::start().await.expect("runner");
    let p = project(addr);
    let serve = crate::support::serve(
        p.root(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}")),
            // Nothing is exported before the stop: the flush at the stop must do it.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000".into()),
        ],
    )
    .await;
    let (status, answer) = deliver(&serve, "d-1", Some(SENT)).await;
    assert_eq!(status, 202, "{answer}");
    let change_id = answer["change"].as_str().expect("a change id").to_owned();
    let http = runner_traceparent(&runner).await;
    exec_traceparent(p.root()).await;
    eventually(10, "both starts recorded", || {
        (serve.err().matches("started").count() >= 2).then_some(())
    })
    .await;
    assert!(collector.exports().is_empty(), "exported before the stop");
    assert!(serve.stop().await, "serve stops cleanly");

    let exports = collector.exports();
    assert!(!exports.is_empty(), "nothing was exported at the stop");
    let trace_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&TRACE_ID[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    assert!(
        exports
            .iter()
            .any(|e| e.body.windows(16).any(|w| w == trace_bytes.as_slice())),
        "no export holds the delivery's trace id"
    );
    assert!(
        exports
            .iter()
            .all(|e| e.content_type == "application/x-protobuf"),
        "OTLP/HTTP protobuf"
    );
    let spans = collector.spans();
    let named = |name: &str| -> Vec<_> { spans.iter().filter(|s| s.name == name).collect() };
    for name in ["receive", "verify", "store", "dispatch", "attempt"] {
        let found = named(name);
        assert!(!found.is_empty(), "no span {name}: {spans:#?}");
        for span in found {
            assert_eq!(span.trace_id, TRACE_ID, "{span:?}");
            assert_eq!(span.service, "switchyard", "{span:?}");
        }
    }
    let receive = named("receive")[0];
    assert_eq!(
        receive.parent_span_id, "00f067aa0ba902b7",
        "the sender's span"
    );
    assert_eq!(receive.attribute("delivery_id"), Some("42:d-1"));
    assert_eq!(
        named("store")[0].attribute("change_id"),
        Some(change_id.as_str())
    );
    // The runner's request is a child of the attempt that sent it.
    let attempt_ids: Vec<&str> = named("attempt")
        .iter()
        .map(|s| s.span_id.as_str())
        .collect();
    let sent_from = hex(&http.parent_id());
    assert!(
        attempt_ids.contains(&sent_from.as_str()),
        "the runner's parent {sent_from} is none of the attempts {attempt_ids:?}"
    );
    // The starts follow the store of the change: receive → store → dispatch → attempt.
    let store = named("store")[0];
    assert_eq!(store.parent_span_id, receive.span_id);
    assert_eq!(named("verify")[0].parent_span_id, receive.span_id);
    for dispatch in named("dispatch") {
        assert_eq!(dispatch.parent_span_id, store.span_id, "{dispatch:?}");
        assert_eq!(dispatch.attribute("change_id"), Some(change_id.as_str()));
        assert!(dispatch.attribute("start_id").is_some(), "{dispatch:?}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn an_unknown_log_format_is_an_error_naming_it_and_the_choices() {
    let p = Project::new();
    // The harness leaves the shell's SWITCHYARD_LOG_FORMAT out of every run.
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = p.run(args, env, "");
        (out.code, out.stderr)
    };
    let (code, err) = run(&["--log-format", "xml", "check"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--log-format: unknown log format \"xml\"")
            && err.contains("choose text (the default) or json"),
        "{err}"
    );
    let (code, err) = run(&["check"], &[("SWITCHYARD_LOG_FORMAT", "yaml")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("SWITCHYARD_LOG_FORMAT: unknown log format \"yaml\""),
        "{err}"
    );
    // The flag is global and wins over the variable.
    let (code, err) = run(
        &["check", "--log-format", "json"],
        &[("SWITCHYARD_LOG_FORMAT", "yaml")],
    );
    assert_eq!(code, Some(0), "{err}");
}
