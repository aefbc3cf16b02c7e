//! Reads beside the intake: what many readers of the status page's API cost a signed push.
//!
//! One `switchyard serve` (the binary cargo built with this benchmark, or `READS_BENCH_BIN`: a
//! saved build of an earlier revision, to compare in the same conditions) on SQLite, in a temp
//! dir with `SWITCHYARD_LOG=warn`, is given 15,000 changes through a Standard Webhooks receiver
//! (the lab's load generator, paced; no pipeline watches the repository). Then 16 anonymous
//! clients read `GET /api/changes?limit=10000` in a closed loop, each on a keep-alive
//! connection; meanwhile a signed GitHub push (a distinct `after` each, `X-Hub-Signature-256`,
//! GitHub's own payload) is posted every 100 ms on a fresh connection, and `GET /readyz` asked
//! every 100 ms, each waiting for the one before. Reported: the push's latency (p50, p90, p99,
//! max), `/readyz`'s, the reads answered (statuses, bytes, changes in each answer, latency) and
//! the machine's load. Target: a signed push answered in < 1 s at p99 under that load.
//!
//! `cargo bench --bench reads`. Environment: `READS_BENCH_CHANGES` (stored first, default
//! 15,000), `READS_BENCH_READERS` (default 16), `READS_BENCH_LIMIT` (the `limit` each read asks,
//! default 10,000), `READS_BENCH_PUSHES` (default 100), `READS_BENCH_BIN`, `READS_BENCH_OPERATOR=1`
//! (the readers read as the logged-in operator, whose pages are not capped at 500 changes: the
//! reads' own cost, without the anonymous cap). The figures also go to
//! `target/reads-bench.json`. Without `--bench` (as under `cargo test --benches`): 300 changes,
//! 4 readers, 10 pushes, the same checks (every push accepted, reads answered), nothing
//! asserted about time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http_body_util::Full;
use hyper::Request;
use serde_json::{Value, json};
use switchyard::signature::{Key, hmac_sha256_hex};
use switchyard_lab::load::{Signer, connect, exchange, paced};
use switchyard_lab::stats::Summary;
use switchyard_lab::{Push, ServeCommand, github_push, try_request};

fn number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

/// The `switchyard` binary under test: `READS_BENCH_BIN`, else the one cargo built.
fn switchyard_bin() -> PathBuf {
    std::env::var_os("READS_BENCH_BIN")
        .filter(|v| !v.is_empty())
        .map_or_else(|| env!("CARGO_BIN_EXE_switchyard").into(), PathBuf::from)
}

/// What the readers saw.
#[derive(Debug, Default)]
struct Reads {
    answered: u64,
    statuses: std::collections::BTreeMap<u16, u64>,
    bytes: u64,
    /// Changes in each answer.
    changes: Vec<f64>,
    latencies_ms: Vec<f64>,
    errors: u64,
}

/// The operator's session cookie, from `POST /login` with `token`.
async fn log_in(addr: SocketAddr, token: &str) -> String {
    let mut sender = connect(addr).await.expect("a connection");
    let req = Request::post("/login")
        .header("host", addr.to_string())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::from(format!("token={token}&next=/")))
        .expect("a request");
    let answer = sender.send_request(req).await.expect("the login's answer");
    assert_eq!(answer.status(), 303, "the login succeeds");
    let cookie = answer
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie");
    cookie.split(';').next().unwrap_or(cookie).to_owned()
}

/// One reader: reads `path` on a keep-alive connection until `stop`.
async fn reader(
    addr: SocketAddr,
    path: String,
    cookie: Option<String>,
    stop: Arc<AtomicBool>,
) -> Reads {
    let mut out = Reads::default();
    let mut sender = None;
    while !stop.load(Ordering::Relaxed) {
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match connect(addr).await {
                Ok(s) => sender.insert(s),
                Err(_) => {
                    out.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let mut req = Request::get(&path).header("host", addr.to_string());
        if let Some(cookie) = &cookie {
            req = req.header("cookie", cookie);
        }
        let req = req.body(Full::default()).expect("a request");
        let sent = Instant::now();
        match exchange(s, req).await {
            Ok((status, body)) => {
                out.answered += 1;
                *out.statuses.entry(status.as_u16()).or_default() += 1;
                out.bytes += body.len() as u64;
                out.latencies_ms.push(sent.elapsed().as_secs_f64() * 1e3);
                if let Ok(v) = serde_json::from_slice::<Value>(&body)
                    && let Some(list) = v["changes"].as_array()
                {
                    out.changes.push(list.len() as f64);
                }
            }
            Err(_) => {
                out.errors += 1;
                sender = None;
            }
        }
    }
    out
}

/// Posts GitHub push `n` to `/hooks/github`, signed with `secret`, on a fresh connection; its
/// status and latency.
async fn push(addr: SocketAddr, secret: &str, n: u64) -> (u16, f64) {
    let push = Push {
        repository: "reads-bench".into(),
        branch: format!("b{n}"),
        before: "1111111111111111111111111111111111111111".into(),
        after: format!("ce{:038x}", n + 1),
        path: "src/lib.rs".into(),
        added: false,
        at_ms: 0.0,
    };
    let body = serde_json::to_vec(&github_push(&push)).expect("json");
    let signature = format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), &body));
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("x-github-event".to_owned(), "push".to_owned()),
        ("x-github-delivery".to_owned(), format!("reads-bench-{n}")),
        ("x-github-hook-id".to_owned(), "1".to_owned()),
        ("x-hub-signature-256".to_owned(), signature),
    ];
    let sent = Instant::now();
    let status = match try_request(addr, "POST", "/hooks/github", &headers, body).await {
        Ok((status, _)) => status,
        Err(_) => 0,
    };
    (status, sent.elapsed().as_secs_f64() * 1e3)
}

fn dist(values: &[f64]) -> Value {
    let s = Summary::of(values);
    let r = |x: f64| (x * 10.0).round() / 10.0;
    json!({"n": s.n, "p50": r(s.p50), "p90": r(s.p90), "p99": r(s.p99), "max": r(s.max)})
}

fn dist_text(values: &[f64]) -> String {
    let s = Summary::of(values);
    format!(
        "p50 {:.1} / p90 {:.1} / p99 {:.1} / max {:.1} ms (n={})",
        s.p50, s.p90, s.p99, s.max, s.n
    )
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let changes = number("READS_BENCH_CHANGES", if full { 15_000 } else { 300 });
    let readers = number("READS_BENCH_READERS", if full { 16 } else { 4 });
    let limit = number("READS_BENCH_LIMIT", 10_000);
    let pushes = number("READS_BENCH_PUSHES", if full { 100 } else { 10 });
    let operator = std::env::var("READS_BENCH_OPERATOR").is_ok_and(|v| v == "1");
    let operator_token = format!("op-{:016x}", fastrand::u64(..));
    let dir = tempfile::tempdir().expect("a temp dir");
    let root = dir.path();
    let secret_bytes: Vec<u8> = (0..24).map(|_| fastrand::u8(..)).collect();
    let seed_secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(secret_bytes)
    );
    let github_secret = format!("gh-{:016x}", fastrand::u64(..));
    std::fs::write(
        root.join("switchyard.yaml"),
        "state_dir: state\n\
         receivers:\n  - name: seed\n    provider: standard\n    secrets: [env:SEED_SECRET]\n  \
         - name: github\n    provider: github\n    secrets: [env:GITHUB_SECRET]\n\
         limits: {max_connections: 4096}\n\
         operator_token: env:OPERATOR_TOKEN\n",
    )
    .expect("switchyard.yaml");
    std::fs::create_dir_all(root.join("triggers")).expect("triggers/");
    std::fs::write(
        root.join("triggers/other.yaml"),
        "pipeline: other\nrepository: https://github.com/acme/other.git\nstart: {exec: [\"true\"]}\n",
    )
    .expect("a definition");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let bin = switchyard_bin();
        let serve = ServeCommand::new(&bin, root)
            .env("SWITCHYARD_LOG", "warn")
            .env("SEED_SECRET", &seed_secret)
            .env("GITHUB_SECRET", &github_secret)
            .env("OPERATOR_TOKEN", &operator_token)
            .log_to(&root.join("server.log"))
            .start()
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let addr = serve.addr();
        serve
            .ready(Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));

        // The changes the readers read.
        let seeding = Instant::now();
        let signer = Arc::new(Signer {
            key: Key::from_secret(&seed_secret).expect("a key"),
            receiver: "seed".into(),
            repository: "https://github.com/acme/seeded.git".into(),
            refs: 64,
        });
        let sent = paced(addr, &signer, 0..changes, 4_000.0, 8).await;
        let stored = sent
            .iter()
            .filter(|s| s.outcome == Some(switchyard_lab::load::Outcome::Accepted))
            .count() as u64;
        assert_eq!(stored, changes, "every seeded change is stored");
        let seeded_s = seeding.elapsed().as_secs_f64();

        // The readers, then the pushes and the probes beside them.
        let stop = Arc::new(AtomicBool::new(false));
        let path = format!("/api/changes?limit={limit}");
        let cookie = match operator {
            true => Some(log_in(addr, &operator_token).await),
            false => None,
        };
        let tasks: Vec<_> = (0..readers)
            .map(|_| {
                let (path, cookie, stop) = (path.clone(), cookie.clone(), Arc::clone(&stop));
                tokio::spawn(reader(addr, path, cookie, stop))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let load_before = load_average();
        let probes_stop = Arc::new(AtomicBool::new(false));
        let probed = Arc::new(AtomicU64::new(0));
        let probes = {
            let (stop, probed) = (Arc::clone(&probes_stop), Arc::clone(&probed));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let sent = Instant::now();
                    let ok = matches!(try_request(addr, "GET", "/readyz", &[], Vec::new()).await, Ok((200, _)));
                    latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                    probed.fetch_add(u64::from(ok), Ordering::Relaxed);
                }
                latencies
            })
        };
        let mut push_ms = Vec::new();
        let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for n in 0..pushes {
            tick.tick().await;
            let (status, ms) = push(addr, &github_secret, n).await;
            *statuses.entry(status).or_default() += 1;
            push_ms.push(ms);
        }
        let load_during = load_average();
        probes_stop.store(true, Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        let readyz_ms = probes.await.expect("the probes");
        let mut reads = Reads::default();
        for task in tasks {
            let r = task.await.expect("a reader");
            reads.answered += r.answered;
            reads.bytes += r.bytes;
            reads.errors += r.errors;
            reads.changes.extend(r.changes);
            reads.latencies_ms.extend(r.latencies_ms);
            for (k, v) in r.statuses {
                *reads.statuses.entry(k).or_default() += v;
            }
        }
        serve.stop().await;

        let accepted = statuses.get(&202).copied().unwrap_or(0);
        println!("reads/binary: {}", bin.display());
        println!("reads/seeded: {changes} changes in {seeded_s:.1} s");
        println!(
            "reads/readers: {readers} {} reading {path}: {} answers {:?}, {:.1} MB, changes per answer {}, latency {}",
            if operator { "operators" } else { "anonymous" },
            reads.answered,
            reads.statuses,
            reads.bytes as f64 / 1e6,
            dist_text(&reads.changes).replace(" ms", ""),
            dist_text(&reads.latencies_ms)
        );
        println!(
            "reads/push: {pushes} signed GitHub pushes {statuses:?}: {} (target: p99 < 1000 ms)",
            dist_text(&push_ms)
        );
        println!("reads/readyz: {}", dist_text(&readyz_ms));
        println!("reads/load average: before {load_before}, during {load_during}");
        let report = json!({
            "binary": bin.display().to_string(),
            "changes": changes,
            "readers": readers,
            "limit": limit,
            "operator": operator,
            "reads": {
                "answered": reads.answered,
                "statuses": reads.statuses.iter().map(|(k, v)| (k.to_string(), v)).collect::<std::collections::BTreeMap<_, _>>(),
                "bytes": reads.bytes,
                "changes_per_answer": dist(&reads.changes),
                "latency_ms": dist(&reads.latencies_ms),
            },
            "push_ms": dist(&push_ms),
            "push_statuses": statuses.iter().map(|(k, v)| (k.to_string(), v)).collect::<std::collections::BTreeMap<_, _>>(),
            "readyz_ms": dist(&readyz_ms),
            "load": {"before": load_before, "during": load_during},
        });
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .map_or_else(|| PathBuf::from("target"), PathBuf::from)
            .join(match (full, operator) {
                (true, false) => "reads-bench.json",
                (true, true) => "reads-bench-operator.json",
                (false, _) => "reads-bench-smoke.json",
            });
        let _ = std::fs::write(&out, format!("{report:#}\n"));
        assert_eq!(accepted, pushes, "every push is accepted: {statuses:?}");
        assert!(reads.answered > 0, "the readers were answered");
    });
}
