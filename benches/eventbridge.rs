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
//! smoke run with 10 events. Needs moto_server (`.ci/test` installs it; see tests/it/moto.rs).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{Credentials, Region};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const REGION: &str = "us-east-1";

struct Sizes {
    latency_events: usize,
    backlog: usize,
    fast_backlog: usize,
    consumers: usize,
}

fn moto_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SWITCHYARD_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/moto-venv/bin/moto_server");
    venv.exists().then_some(venv)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A child process killed (with its group) on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

fn spawn_group(cmd: &mut Command) -> Killed {
    use std::os::unix::process::CommandExt as _;
    Killed(cmd.process_group(0).spawn().expect("spawn"))
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
            Credentials::new("testing", "testing", None, None, "bench"),
        ))
        .http_client(switchyard::aws::http_client())
        .build()
}

async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .expect("url")
        .to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attributes")
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("arn")
        .clone();
    (url, arn)
}

async fn rule(events: &aws_sdk_eventbridge::Client, name: &str, source: &str, arn: &str) {
    events
        .put_rule()
        .name(name)
        .event_pattern(serde_json::json!({"source": [source]}).to_string())
        .send()
        .await
        .expect("rule");
    events
        .put_targets()
        .rule(name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("targets");
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
    let entries = details.iter().map(|d| {
        aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source(source)
            .detail_type("switchyard.change/v1")
            .detail(d)
            .build()
    });
    let out = events
        .put_events()
        .set_entries(Some(entries.collect()))
        .send()
        .await
        .expect("put events");
    assert_eq!(out.failed_entry_count(), 0);
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n = {})",
        pct(&ms, 0.5),
        pct(&ms, 0.99),
        ms[ms.len() - 1],
        ms.len()
    )
}

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// The runner the `http` target posts to: when each change's start first arrived.
async fn runner(arrivals: Arrivals) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let arrivals = Arc::clone(&arrivals);
            let service = service_fn(move |req: Request<Incoming>| {
                let arrivals = Arc::clone(&arrivals);
                async move {
                    let at = Instant::now();
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    if let (Some(after), Ok(mut a)) =
                        (v["event"]["after"].as_str(), arrivals.lock())
                    {
                        a.entry(after.to_owned()).or_insert(at);
                    }
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// `switchyard serve` on the queue, starting pipeline `p` through `http` to the runner.
fn serve(
    dir: &Path,
    endpoint: &str,
    queue_url: &str,
    consumers: usize,
    runner: SocketAddr,
) -> (Killed, u16) {
    let port = free_port();
    std::fs::create_dir_all(dir.join("triggers")).expect("triggers");
    std::fs::write(
        dir.join("switchyard.yaml"),
        format!("listen: 127.0.0.1:{port}\nstate_dir: state\neventbridge:\n  queue_url: {queue_url}\n  region: {REGION}\n  endpoint_url: {endpoint}\n  consumers: {consumers}\n  wait: 20s\ndispatch: {{attempts: 3, backoff: 100ms}}\n"),
    )
    .expect("config");
    std::fs::write(
        dir.join("triggers/p.yaml"),
        format!("repository: https://github.com/acme/api.git\non: push\nmode: parallel\nconcurrency: 64\nstart:\n  http: {{url: \"http://{runner}/start\"}}\n"),
    )
    .expect("pipeline");
    let child = spawn_group(
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("serve")
            .current_dir(dir)
            .env("SWITCHYARD_LOG", "warn")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    );
    wait_port(port);
    (child, port)
}

/// The stored-message count from serve's metrics.
async fn stored(port: u16) -> u64 {
    let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return 0;
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return 0;
    };
    tokio::spawn(conn);
    let req = Request::get("/metrics")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let Ok(resp) = sender.send_request(req).await else {
        return 0;
    };
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(r#"switchyard_sqs_messages_total{outcome="stored"} "#))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
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
    let Some(moto) = moto_server() else {
        assert!(
            std::env::var_os("SWITCHYARD_TEST_STRICT").is_none(),
            "moto_server is missing: .ci/test installs moto[server]"
        );
        eprintln!("skipped: moto_server is missing (run .ci/test, which installs it)");
        return;
    };
    let port = free_port();
    let _moto = spawn_group(
        Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_port(port);
    let endpoint = format!("http://127.0.0.1:{port}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sdk = sdk(&endpoint);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let events = aws_sdk_eventbridge::Client::new(&sdk);

        // 1. moto alone.
        let (probe_url, probe_arn) = queue(&sqs, "probe").await;
        rule(&events, "probe", "bench.probe", &probe_arn).await;
        let mut moto_ms = Vec::new();
        for n in 0..sizes.latency_events {
            let began = Instant::now();
            put(&events, "bench.probe", &[change(n).1]).await;
            loop {
                let out = sqs.receive_message().queue_url(&probe_url).wait_time_seconds(5).send().await.expect("receive");
                if let Some(m) = out.messages().first() {
                    moto_ms.push(began.elapsed().as_secs_f64() * 1000.0);
                    sqs.delete_message().queue_url(&probe_url).set_receipt_handle(m.receipt_handle().map(str::to_owned)).send().await.expect("delete");
                    break;
                }
            }
        }
        println!("eventbridge/moto alone: PutEvents → rule → SQS → ReceiveMessage: {}", summary(moto_ms));

        // 2. Through switchyard to a start.
        let arrivals: Arrivals = Arc::default();
        let runner = runner(Arc::clone(&arrivals)).await;
        let (changes_url, changes_arn) = queue(&sqs, "changes").await;
        rule(&events, "changes", "bench.changes", &changes_arn).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let (server, _) = serve(dir.path(), &endpoint, &changes_url, sizes.consumers, runner);
        // Let the consumers' first long polls begin.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut start_ms = Vec::new();
        for n in 0..sizes.latency_events {
            let (after, detail) = change(1_000_000 + n);
            let began = Instant::now();
            put(&events, "bench.changes", &[detail]).await;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(at) = arrivals.lock().ok().and_then(|a| a.get(&after).copied()) {
                    start_ms.push(at.duration_since(began).as_secs_f64() * 1000.0);
                    break;
                }
                assert!(Instant::now() < deadline, "event {n} never started");
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        println!("eventbridge/switchyard: PutEvents → start (http target) with {} consumers: {}", sizes.consumers, summary(start_ms));
        drop(server);

        // 3. Throughput from a backlog.
        let (backlog_url, backlog_arn) = queue(&sqs, "backlog").await;
        rule(&events, "backlog", "bench.backlog", &backlog_arn).await;
        let details: Vec<String> = (0..sizes.backlog).map(|n| change(2_000_000 + n).1).collect();
        for chunk in details.chunks(10) {
            put(&events, "bench.backlog", chunk).await;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let began = Instant::now();
        let (server, serve_port2) = serve(dir.path(), &endpoint, &backlog_url, sizes.consumers, runner);
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            if stored(serve_port2).await >= sizes.backlog as u64 {
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
        let (server, _) = serve(dir.path(), &format!("http://{}", fake.addr), &format!("http://{}/123456789012/fast", fake.addr), sizes.consumers, runner);
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                let service = service_fn(move |req: Request<Incoming>| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, Infallible>(state.answer(req).await) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
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
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
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
