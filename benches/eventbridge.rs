//! The events path against a real moto server on loopback:
//!
//! 1. moto alone: PutEvents → rule → SQS → the bench's own ReceiveMessage, p50/p99: moto's
//!    share of the latency.
//! 2. PutEvents → rule → SQS → `switchyard serve` (release build) → `http` start arriving at the
//!    bench's runner, p50/p99 over 200 events put one at a time.
//! 3. Throughput with 4 consumers: (a) 500 changes waiting in a moto queue (moto scans its
//!    queue on every receive, so deeper backlogs only measure moto); (b) 20,000 changes from
//!    an in-process SQS responder that answers at once, to show what switchyard itself
//!    sustains when the queue is not the bound. Changes stored (messages deleted) per second.
//!
//! `cargo bench --bench eventbridge`. Without `--bench` (as under `cargo test --benches`) a
//! smoke run with 10 events. Needs moto_server (`.ci/test` installs it); moto, the serve child,
//! the runner and the metrics reader are the lab's (`lab/`), and latencies are summarized with
//! its nearest-rank percentiles.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use switchyard_lab::moto::put_events;
use switchyard_lab::{Moto, REGION, Runner, Serve, ServeCommand, Summary, or_skip};

struct Sizes {
    latency_events: usize,
    backlog: usize,
    fast_backlog: usize,
    consumers: usize,
}

/// A queue on moto and the rule that sends it every event of `source`; the queue's URL.
async fn queue(moto: &Moto, name: &str, source: &str) -> String {
    let (url, arn) = moto.create_queue(name, &[]).await.expect("queue");
    let pattern = serde_json::json!({"source": [source]});
    moto.rule(name, &pattern, &arn).await.expect("rule");
    url
}

fn change(n: usize) -> (String, String) {
    let after = format!("{:040x}", n + 1);
    let detail = serde_json::json!({
        "schema": "switchyard.change/v1",
        "repository": "https://github.com/acme/api.git",
        "kind": "push",
        "ref": "refs/heads/main",
        "before": "1111111111111111111111111111111111111111",
        "after": after,
        "changed_paths": ["src/lib.rs"],
    });
    (after, detail.to_string())
}

async fn put(events: &aws_sdk_eventbridge::Client, source: &str, details: &[String]) {
    let entries: Vec<_> = details
        .iter()
        .map(|d| (source, "switchyard.change/v1", None, d.clone()))
        .collect();
    put_events(events, &entries).await.expect("put events");
}

/// p50, p99 and max of milliseconds (nearest rank).
fn summary(ms: &[f64]) -> String {
    let s = Summary::of(ms);
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n = {})",
        s.p50, s.p99, s.max, s.n
    )
}

/// `switchyard serve` on the queue, starting pipeline `p` through `http` to the runner.
async fn serve(
    dir: &Path,
    endpoint: &str,
    queue_url: &str,
    consumers: usize,
    runner: SocketAddr,
    moto: &Moto,
) -> Serve {
    std::fs::create_dir_all(dir.join("triggers")).expect("triggers");
    std::fs::write(
        dir.join("switchyard.yaml"),
        format!("state_dir: state\neventbridge:\n  queue_url: {queue_url}\n  region: {REGION}\n  endpoint_url: {endpoint}\n  consumers: {consumers}\n  wait: 20s\ndispatch: {{attempts: 3, backoff: 100ms}}\n"),
    )
    .expect("config");
    std::fs::write(
        dir.join("triggers/p.yaml"),
        format!("repository: https://github.com/acme/api.git\non: push\nmode: parallel\nconcurrency: 64\nstart:\n  http: {{url: \"http://{runner}/start\"}}\n"),
    )
    .expect("pipeline");
    ServeCommand::new(env!("CARGO_BIN_EXE_switchyard"), dir)
        .envs(&moto.env())
        .env("SWITCHYARD_LOG", "warn")
        .start()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// The messages `serve` stored (and deleted).
async fn stored(serve: &Serve) -> f64 {
    serve
        .metrics()
        .await
        .sum("switchyard_sqs_messages_total", &[("outcome", "stored")])
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        Sizes {
            latency_events: 200,
            backlog: 500,
            fast_backlog: 20_000,
            consumers: 4,
        }
    } else {
        Sizes {
            latency_events: 10,
            backlog: 100,
            fast_backlog: 500,
            consumers: 4,
        }
    };
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let events = moto.events();
        let endpoint = moto.endpoint.clone();

        // 1. moto alone.
        let probe_url = queue(&moto, "probe", "bench.probe").await;
        let mut moto_ms = Vec::new();
        for n in 0..sizes.latency_events {
            let within = Duration::from_secs(30);
            moto_ms.push(moto.delivery_ms("bench.probe", change(n).1, &probe_url, within).await.expect("moto delivers"));
        }
        println!("eventbridge/moto alone: PutEvents → rule → SQS → ReceiveMessage: {}", summary(&moto_ms));

        // 2. Through switchyard to a start.
        let (arrivals, runner) = Runner::start().await.expect("runner");
        let changes_url = queue(&moto, "changes", "bench.changes").await;
        let dir = tempfile::tempdir().expect("temp dir");
        let server = serve(dir.path(), &endpoint, &changes_url, sizes.consumers, runner, &moto).await;
        // Let the consumers' first long polls begin.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut start_ms = Vec::new();
        for n in 0..sizes.latency_events {
            let (after, detail) = change(1_000_000 + n);
            let began = Instant::now();
            put(&events, "bench.changes", &[detail]).await;
            let at = arrivals
                .wait_for(Duration::from_secs(30), |a| a.iter().find(|x| x.sha == after).map(|x| x.at))
                .await
                .unwrap_or_else(|| panic!("event {n} never started"));
            start_ms.push(at.duration_since(began).as_secs_f64() * 1000.0);
        }
        println!("eventbridge/switchyard: PutEvents → start (http target) with {} consumers: {}", sizes.consumers, summary(&start_ms));
        drop(server);

        // 3. Throughput from a backlog.
        let backlog_url = queue(&moto, "backlog", "bench.backlog").await;
        let details: Vec<String> = (0..sizes.backlog).map(|n| change(2_000_000 + n).1).collect();
        for chunk in details.chunks(10) {
            put(&events, "bench.backlog", chunk).await;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let began = Instant::now();
        let server = serve(dir.path(), &endpoint, &backlog_url, sizes.consumers, runner, &moto).await;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            if stored(&server).await >= sizes.backlog as f64 {
                break;
            }
            assert!(Instant::now() < deadline, "the backlog was not consumed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let secs = began.elapsed().as_secs_f64();
        println!(
            "eventbridge/throughput from moto: {} changes stored by {} consumers in {:.2} s: {:.0} per second (serve's start-up included)",
            sizes.backlog,
            sizes.consumers,
            secs,
            sizes.backlog as f64 / secs
        );
        drop(server);

        // 3b. The same consumers against a responder that answers at once.
        let fake = FakeSqs::start(sizes.fast_backlog).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let fake_endpoint = format!("http://{}", fake.addr);
        let fake_queue = format!("{fake_endpoint}/123456789012/fast");
        let server = serve(dir.path(), &fake_endpoint, &fake_queue, sizes.consumers, runner, &moto).await;
        let deadline = Instant::now() + Duration::from_secs(600);
        while fake.deleted() < sizes.fast_backlog {
            assert!(Instant::now() < deadline, "the fast backlog was not consumed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let secs = fake.first_receive().map_or(0.0, |t| t.elapsed().as_secs_f64());
        println!(
            "eventbridge/throughput, in-process SQS responder: {} changes stored by {} consumers in {:.2} s: {:.0} per second",
            sizes.fast_backlog,
            sizes.consumers,
            secs,
            sizes.fast_backlog as f64 / secs
        );
        drop(server);
    });
}

/// Answers SQS's JSON protocol at once: `ReceiveMessage` hands out the next 10 of `total`
/// EventBridge events (each a `switchyard.change/v1` change), `DeleteMessageBatch` counts.
struct FakeSqs {
    addr: SocketAddr,
    state: Arc<FakeState>,
}

#[derive(Default)]
struct FakeState {
    next: std::sync::atomic::AtomicUsize,
    deleted: std::sync::atomic::AtomicUsize,
    first: Mutex<Option<Instant>>,
    total: usize,
}

impl FakeSqs {
    async fn start(total: usize) -> FakeSqs {
        let state = Arc::new(FakeState {
            total,
            ..FakeState::default()
        });
        let shared = Arc::clone(&state);
        let addr = switchyard_lab::http::serve(move |req: Request<Incoming>| {
            let state = Arc::clone(&shared);
            async move { state.answer(req).await }
        })
        .await
        .expect("serve the SQS responder");
        FakeSqs { addr, state }
    }

    fn deleted(&self) -> usize {
        self.state
            .deleted
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn first_receive(&self) -> Option<Instant> {
        self.state.first.lock().ok().and_then(|f| *f)
    }
}

impl FakeState {
    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        use std::sync::atomic::Ordering::Relaxed;
        let target = req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = switchyard_lab::http::read_body(req.into_body()).await;
        let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let answer = match target.as_str() {
            "AmazonSQS.ReceiveMessage" => {
                if let Ok(mut first) = self.first.lock() {
                    first.get_or_insert_with(Instant::now);
                }
                let from = self.next.fetch_add(10, Relaxed);
                let messages: Vec<serde_json::Value> = (from..(from + 10).min(self.total))
                    .map(|n| {
                        let (_, detail) = change(3_000_000 + n);
                        let event = serde_json::json!({
                            "version": "0", "id": format!("fast-{n}"), "detail-type": "switchyard.change/v1",
                            "source": "bench.fast", "time": "2026-11-26T10:00:00Z", "region": REGION,
                            "resources": [], "detail": serde_json::from_str::<serde_json::Value>(&detail).unwrap_or_default(),
                        });
                        serde_json::json!({"MessageId": format!("m{n}"), "ReceiptHandle": format!("r{n}"), "Body": event.to_string()})
                    })
                    .collect();
                if messages.is_empty() {
                    // An empty queue: a short long poll.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                serde_json::json!({"Messages": messages})
            }
            "AmazonSQS.DeleteMessageBatch" => {
                let ids: Vec<serde_json::Value> = request["Entries"]
                    .as_array()
                    .map(|e| {
                        e.iter()
                            .map(|x| serde_json::json!({"Id": x["Id"]}))
                            .collect()
                    })
                    .unwrap_or_default();
                self.deleted.fetch_add(ids.len(), Relaxed);
                serde_json::json!({"Successful": ids, "Failed": []})
            }
            _ => serde_json::json!({"Successful": [], "Failed": []}),
        };
        let mut resp = Response::new(Full::new(Bytes::from(answer.to_string())));
        resp.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        resp
    }
}
