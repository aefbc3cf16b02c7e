//! The HTTP intake under load: signed Standard Webhooks deliveries posted to real
//! `switchyard serve` replicas over loopback, each acknowledged only once durably stored.
//!
//! Scenarios, each against fresh servers (the `switchyard` binary cargo built with this
//! benchmark unless `INTAKE_BENCH_BIN` names another, run as child processes, each in a temp dir of its own with `SWITCHYARD_LOG=warn`)
//! and a fresh store:
//!
//! - `ingest`: one server on SQLite; no pipeline matches. A closed loop of 64 keep-alive
//!   connections (one hyper HTTP/1.1 connection per task) posts distinct changes (a new `after`
//!   sha and `webhook-id` each), 2 s of warm-up, then 10 s measured. Reports the acknowledged
//!   rate (202 with `"status":"accepted"` only; also second by second), latency
//!   p50/p90/p99/max and errors. To tell where the time goes it also reports, over the measured
//!   window, the server's CPU (user and system, by thread, and time runnable without a CPU),
//!   its write(2) bytes per change, its own mean time in the store (`/metrics`), this
//!   process's CPU, the machine's busy cores (and how many went to other processes) and the
//!   load average. Then the server is killed (SIGKILL) and the `changes` table must hold at
//!   least as many rows as were acknowledged. Targets: at least 15,000 acknowledged changes/s
//!   with p99 under 25 ms.
//! - `ingest_postgres_1` and `ingest_postgres_3`: the same load and the same figures against
//!   one and three replicas sharing a PostgreSQL store (`store: {postgres: env:NAME}`), the 64
//!   connections spread round-robin over the replicas' addresses. The server is the lab's
//!   PostgreSQL (one for both scenarios, `fsync` on, `track_wal_io_timing` on), a fresh
//!   database for each. Server CPU is summed over the replicas; the PostgreSQL processes'
//!   CPU (the postmaster of the data dir's `postmaster.pid` and its children, by role:
//!   client backends, walwriter, checkpointer, ...) is reported beside it, with what
//!   PostgreSQL counted over the window (`pg_stat_wal`: WAL records, bytes, writes, syncs and
//!   their time; commits; checkpoints) and what the replicas' backends were doing, sampled
//!   every 50 ms from `pg_stat_activity` (running, waiting on an event, idle in a transaction
//!   or idle between batches): together they name what bounds the rate, the WAL flush or
//!   CPU. After SIGKILL of every replica the database's `changes` table must hold at least as
//!   many rows as were acknowledged. Target of `ingest_postgres_3`: at least 8,000
//!   acknowledged changes/s with p99 under 50 ms. When PostgreSQL is not installed both are
//!   skipped under the lab's skip policy (printing why; a failure under
//!   `SWITCHYARD_TEST_STRICT=1`).
//! - `start_latency`: one `http` pipeline in `parallel` mode whose runner is a small hyper
//!   server in this process. After 20 warm-up changes, 2,000 changes are posted at a paced
//!   500/s over 4 connections; for each, store-to-start is the runner's arrival time minus the
//!   client's receipt of the 202 (clamped at 0; how many starts arrived before their 202 is
//!   reported), and send-to-start the arrival minus the send. Every accepted change must reach
//!   the runner. Target: store-to-start p50 under 5 ms.
//!
//! The load generator runs on a tokio runtime with ONE worker thread (`INTAKE_BENCH_THREADS`),
//! so that on a 2-core machine it leaves the other core to the servers; requests are built and
//! signed on the fly (the cost per request is measured and printed). Before the servers start,
//! `fdatasync` latency is probed in the state directory's file system.
//!
//! Run with `cargo bench --bench intake`. It prints each scenario, then the ingest scenarios
//! side by side, and writes the figures to `target/intake-bench.json`. Environment:
//! `INTAKE_BENCH_SECONDS` (measured seconds, default 10), `INTAKE_BENCH_STARTS` (changes of
//! `start_latency`, default 2000), `INTAKE_BENCH_CONNECTIONS` (default 64),
//! `INTAKE_BENCH_THREADS` (generator worker threads, default 1), `INTAKE_BENCH_START_RATE`
//! (changes/s of `start_latency`, default 500), `INTAKE_BENCH_SCENARIOS` (a comma-separated
//! list of the scenarios to run, default all: to profile one), `INTAKE_BENCH_BIN` (another
//! `switchyard` binary to measure, as a saved build of an earlier revision, beside this one in
//! the same conditions), `INTAKE_BENCH_REFS` (the ingest changes push to this many branches of
//! the repository, default 1: every change pushes `main`, so that each replica's intake
//! queues on the ref's lock; more tell that lock's share), `INTAKE_BENCH_DECIDED=1` (the ingest
//! pipeline watches the posted repository and its branch filter excludes every change: each
//! is decided with its reason for the decision log, and nothing starts).
//!
//! Without `--bench` (as under `cargo test --benches`) it runs a smoke version instead: 1 s of
//! each ingest after 0.25 s of warm-up, 100 starts, the same checks (something acknowledged, at
//! least as many durable rows as acknowledgements, every accepted change started exactly once),
//! and writes `target/intake-bench-smoke.json`. The targets are reported, never asserted.
//!
//! The load generator (signed deliveries over keep-alive connections, closed loop or paced:
//! `load`), the CPU sampling of the servers, PostgreSQL and the machine (`cpu`, on `procfs`),
//! the server child, the runner, PostgreSQL, the skip policy, the `/metrics` reader and the
//! percentiles (nearest rank, as in every figure of the lab's) are the lab's (`lab/`); this
//! file keeps the scenarios and their report.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use switchyard::signature::Key;
use switchyard_lab::cpu::{CpuUse, Sample, cpu_use, fs_type, fsync_probe};
use switchyard_lab::load::{Outcome, Signer, Tally, closed_loop, paced, unix_now};
use switchyard_lab::postgres::Options;
use switchyard_lab::procfs::{self, loadavg};
use switchyard_lab::stats::{round, thousands};
use switchyard_lab::{Arrival, Missing, Postgres, Runner, Serve, ServeCommand, Summary, or_skip};

/// The targets of the issue.
const TARGET_RATE: f64 = 15_000.0;
const TARGET_P99_MS: f64 = 25.0;
const TARGET_START_P50_MS: f64 = 5.0;
const TARGET_PG3_RATE: f64 = 8_000.0;
const TARGET_PG3_P99_MS: f64 = 50.0;

/// The PostgreSQL scenarios: name and replicas.
const POSTGRES_SCENARIOS: [(&str, usize); 2] = [("ingest_postgres_1", 1), ("ingest_postgres_3", 3)];

const WATCHED: &str = "https://github.com/acme/api.git";

// ---------------------------------------------------------------------------------------------
// Settings

/// What this run measures, from the arguments and the environment.
#[derive(Debug, Clone)]
struct Settings {
    /// `cargo bench` passes `--bench`; without it this is a smoke run.
    full: bool,
    seconds: f64,
    warmup: f64,
    connections: usize,
    threads: usize,
    starts: usize,
    start_rate: f64,
    start_connections: usize,
    /// The refs the ingest changes push to (`INTAKE_BENCH_REFS`).
    refs: u64,
    /// The ingest pipeline watches the posted repository and excludes every change by its
    /// branch filter (`INTAKE_BENCH_DECIDED=1`): each change is decided and its reason
    /// recorded in the decision log, and nothing starts.
    decided: bool,
    /// The scenarios to run (`INTAKE_BENCH_SCENARIOS`); `None`: all.
    only: Option<Vec<String>>,
}

impl Settings {
    fn from_env() -> Settings {
        let full = std::env::args().any(|a| a == "--bench");
        let num = |name: &str, default: f64| -> f64 {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| *v > 0.0)
                .unwrap_or(default)
        };
        Settings {
            full,
            seconds: num("INTAKE_BENCH_SECONDS", if full { 10.0 } else { 1.0 }),
            warmup: if full { 2.0 } else { 0.25 },
            connections: num("INTAKE_BENCH_CONNECTIONS", 64.0) as usize,
            threads: num("INTAKE_BENCH_THREADS", 1.0) as usize,
            starts: num("INTAKE_BENCH_STARTS", if full { 2000.0 } else { 100.0 }) as usize,
            start_rate: num("INTAKE_BENCH_START_RATE", 500.0),
            start_connections: 4,
            refs: num("INTAKE_BENCH_REFS", 1.0) as u64,
            decided: std::env::var("INTAKE_BENCH_DECIDED").is_ok_and(|v| v == "1"),
            only: std::env::var("INTAKE_BENCH_SCENARIOS")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect()),
        }
    }

    /// Whether scenario `name` runs.
    fn runs(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == name))
    }
}

// ---------------------------------------------------------------------------------------------
// The server under test

/// A `switchyard serve` child process in its own temp dir; killed when dropped.
struct Server {
    serve: Serve,
    dir: tempfile::TempDir,
}

impl Server {
    /// Writes the project (config, one pipeline), starts the server and waits until it is
    /// ready. Its store is SQLite in the temp dir, or the PostgreSQL database at `postgres`.
    async fn start(
        dir: tempfile::TempDir,
        secret: &str,
        pipeline: &str,
        postgres: Option<&str>,
    ) -> Server {
        let mut config = "state_dir: state\n\
             receivers:\n  - name: bench\n    provider: standard\n    secrets: [env:BENCH_SECRET]\n\
             limits: {max_connections: 4096}\n\
             dispatch: {attempts: 3, backoff: 100ms}\n"
            .to_owned();
        if postgres.is_some() {
            config.push_str("store: {postgres: env:BENCH_PG}\n");
        }
        let root = dir.path();
        std::fs::write(root.join("switchyard.yaml"), config).expect("write switchyard.yaml");
        std::fs::create_dir_all(root.join("triggers")).expect("create triggers/");
        std::fs::write(root.join("triggers/p.yaml"), pipeline).expect("write triggers/p.yaml");
        let serve = ServeCommand::new(switchyard_bin(), root)
            .env("SWITCHYARD_LOG", "warn")
            .env("BENCH_SECRET", secret)
            .env("BENCH_PG", postgres.unwrap_or_default())
            .log_to(&root.join("server.log"))
            .start()
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        serve
            .ready(Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        Server { serve, dir }
    }

    fn addr(&self) -> SocketAddr {
        self.serve.addr()
    }

    fn pid(&self) -> u32 {
        self.serve.pid()
    }

    fn db(&self) -> PathBuf {
        self.dir
            .path()
            .join("state")
            .join(switchyard::store::DB_FILE)
    }
}

/// The `switchyard` binary under test: `INTAKE_BENCH_BIN`, else the one cargo built.
fn switchyard_bin() -> PathBuf {
    std::env::var_os("INTAKE_BENCH_BIN")
        .filter(|v| !v.is_empty())
        .map_or_else(|| env!("CARGO_BIN_EXE_switchyard").into(), PathBuf::from)
}

/// A Standard Webhooks secret: `whsec_` and 24 random bytes in base64.
fn new_secret() -> String {
    let bytes: Vec<u8> = (0..24).map(|_| fastrand::u8(..)).collect();
    format!("whsec_{}", B64.encode(bytes))
}

/// Rows of the `changes` table, read after the server is gone.
fn durable_changes(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open the store");
    conn.query_row("SELECT COUNT(*) FROM changes", [], |r| r.get(0))
        .expect("count changes")
}

// ---------------------------------------------------------------------------------------------
// Statistics

/// The nearest-rank summary of `values` as JSON: n, p50, p90, p99, max (null when empty).
fn dist_json(values: &[f64]) -> Value {
    let s = Summary::of(values);
    let at = |x: f64| (s.n > 0).then(|| round(x, 3));
    json!({"n": s.n, "p50": at(s.p50), "p90": at(s.p90), "p99": at(s.p99), "max": at(s.max)})
}

/// The same as text: `p50 / p90 / p99 / max ms`.
fn dist_text(values: &[f64]) -> String {
    let s = Summary::of(values);
    if s.n == 0 {
        return "none".into();
    }
    format!(
        "{:.2} / {:.2} / {:.2} / {:.2} ms",
        s.p50, s.p90, s.p99, s.max
    )
}

// ---------------------------------------------------------------------------------------------
// Scenario 1: ingest

/// The PostgreSQL database of an ingest scenario.
struct PgTarget {
    /// Its URL, for the replicas.
    url: String,
    /// Its name, for `pg_stat_database`.
    db: String,
    /// A database of the same server for this process's statistics connections.
    stats_url: String,
    /// The postmaster's pid (`postmaster.pid` in the data dir).
    postmaster: Option<u32>,
}

/// What PostgreSQL counted: the WAL (`pg_stat_wal`, cluster-wide), commits of the database
/// (`pg_stat_database`) and checkpoints (`pg_stat_bgwriter`).
#[derive(Debug, Clone, Copy, Default)]
struct PgCounters {
    wal_records: i64,
    wal_bytes: i64,
    wal_writes: i64,
    wal_syncs: i64,
    wal_write_ms: f64,
    wal_sync_ms: f64,
    commits: i64,
    checkpoints: i64,
}

impl PgCounters {
    async fn read(c: &tokio_postgres::Client, db: &str) -> PgCounters {
        let row = c
            .query_one(
                "SELECT w.wal_records, w.wal_bytes::int8, w.wal_write, w.wal_sync,
                        w.wal_write_time, w.wal_sync_time,
                        (SELECT xact_commit FROM pg_stat_database WHERE datname = $1),
                        (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter)
                 FROM pg_stat_wal w",
                &[&db],
            )
            .await;
        match row {
            Ok(r) => PgCounters {
                wal_records: r.get(0),
                wal_bytes: r.get(1),
                wal_writes: r.get(2),
                wal_syncs: r.get(3),
                wal_write_ms: r.get(4),
                wal_sync_ms: r.get(5),
                commits: r.get(6),
                checkpoints: r.get(7),
            },
            Err(e) => {
                eprintln!("cannot read PostgreSQL's statistics: {e}");
                PgCounters::default()
            }
        }
    }

    fn since(self, a: PgCounters) -> PgCounters {
        PgCounters {
            wal_records: self.wal_records - a.wal_records,
            wal_bytes: self.wal_bytes - a.wal_bytes,
            wal_writes: self.wal_writes - a.wal_writes,
            wal_syncs: self.wal_syncs - a.wal_syncs,
            wal_write_ms: self.wal_write_ms - a.wal_write_ms,
            wal_sync_ms: self.wal_sync_ms - a.wal_sync_ms,
            commits: self.commits - a.commits,
            checkpoints: self.checkpoints - a.checkpoints,
        }
    }
}

/// A connection of this process's own to PostgreSQL (not counted as a replica's).
async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// What the replicas' backends (`application_name` switchyard) were doing, sampled every
/// 50 ms from `pg_stat_activity` from `from` until `until`: how many samples, and backends
/// seen per state.
async fn sample_activity(
    url: String,
    db: String,
    from: Instant,
    until: Instant,
) -> (u64, BTreeMap<String, u64>) {
    let c = pg_connect(&url).await;
    let mut seen = BTreeMap::new();
    let mut samples = 0;
    let mut tick = tokio::time::interval_at(from.into(), Duration::from_millis(50));
    loop {
        tick.tick().await;
        if Instant::now() >= until {
            break;
        }
        let Ok(rows) = c
            .query(
                "SELECT state, wait_event_type, wait_event FROM pg_stat_activity
                 WHERE application_name = 'switchyard' AND datname = $1",
                &[&db],
            )
            .await
        else {
            break;
        };
        samples += 1;
        for r in rows {
            let state: Option<&str> = r.get(0);
            let wait: (Option<&str>, Option<&str>) = (r.get(1), r.get(2));
            let what = match (state.unwrap_or("unknown"), wait) {
                ("active", (Some(t), Some(e))) => format!("active, waiting on {t}:{e}"),
                ("active", _) => "active, on CPU or runnable".to_owned(),
                ("idle in transaction", _) => "idle in transaction (the replica's turn)".into(),
                ("idle", _) => "idle (between the replica's batches)".into(),
                (other, _) => other.to_owned(),
            };
            *seen.entry(what).or_default() += 1;
        }
    }
    (samples, seen)
}

/// PostgreSQL's figures of an ingest scenario, over the measured window.
struct PgFigures {
    counters: PgCounters,
    activity_samples: u64,
    activity: BTreeMap<String, u64>,
}

/// Figures of an ingest scenario.
struct Ingest {
    replicas: usize,
    rate: f64,
    latencies: Vec<f64>,
    tally: Tally,
    cpu: CpuUse,
    durable: i64,
    store_mean_ms: Option<f64>,
    postgres: Option<PgFigures>,
    load_start: String,
    load_end: String,
    build_us: f64,
}

/// The ingest load against `replicas` fresh servers, on SQLite (one server) or on the
/// PostgreSQL database `pg`.
async fn ingest(settings: &Settings, ticks: f64, replicas: usize, pg: Option<&PgTarget>) -> Ingest {
    let secret = new_secret();
    let watched = if settings.decided {
        format!("{WATCHED}\non:\n  push:\n    branches: ['release/**']")
    } else {
        "https://github.com/acme/other.git\non: push".to_owned()
    };
    let pipeline = &format!(
        "repository: {watched}\n\
         mode: parallel\n\
         concurrency: 64\n\
         start:\n  http: {{url: \"http://127.0.0.1:9/start\"}}\n"
    );
    let mut servers = Vec::with_capacity(replicas);
    for _ in 0..replicas.max(1) {
        let dir = tempfile::Builder::new()
            .prefix("intake-bench-")
            .tempdir()
            .expect("temp dir");
        let url = pg.map(|p| p.url.as_str());
        servers.push(Server::start(dir, &secret, pipeline, url).await);
    }
    let addrs: Vec<SocketAddr> = servers.iter().map(Server::addr).collect();
    let pids: Vec<u32> = servers.iter().map(Server::pid).collect();
    let signer = Arc::new(Signer {
        key: Key::from_secret(&secret).expect("a valid secret"),
        receiver: "bench".into(),
        repository: WATCHED.into(),
        refs: settings.refs,
    });

    // What building and signing one request costs the generator (on top of HTTP).
    let probe = 2000u64;
    let host = addrs[0].to_string();
    let t = Instant::now();
    for n in 0..probe {
        std::hint::black_box(signer.request(u64::MAX / 2 + n, &host));
    }
    let build_us = t.elapsed().as_secs_f64() * 1e6 / probe as f64;

    let stats = match pg {
        Some(p) => Some(pg_connect(&p.stats_url).await),
        None => None,
    };
    let load_start = loadavg();
    let start = Instant::now();
    let window_start = start + Duration::from_secs_f64(settings.warmup);
    let until = window_start + Duration::from_secs_f64(settings.seconds);
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..settings.connections)
        .map(|i| {
            tokio::spawn(closed_loop(
                addrs[i % addrs.len()],
                Arc::clone(&signer),
                Arc::clone(&next),
                window_start,
                until,
            ))
        })
        .collect();
    let activity = pg.map(|p| {
        tokio::spawn(sample_activity(
            p.stats_url.clone(),
            p.db.clone(),
            window_start,
            until,
        ))
    });
    let postmaster = pg.and_then(|p| Some((p.postmaster?, p.db.as_str())));
    tokio::time::sleep_until(window_start.into()).await;
    let before = Sample::take(&pids, postmaster);
    let counted_before = match (&stats, pg) {
        (Some(c), Some(p)) => Some(PgCounters::read(c, &p.db).await),
        _ => None,
    };
    tokio::time::sleep_until(until.into()).await;
    let after = Sample::take(&pids, postmaster);
    let counted = match (&stats, pg, counted_before) {
        (Some(c), Some(p), Some(b)) => Some(PgCounters::read(c, &p.db).await.since(b)),
        _ => None,
    };
    let load_end = loadavg();
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await.expect("a load task"));
    }
    let postgres = match (counted, activity) {
        (Some(counters), Some(activity)) => {
            let (activity_samples, activity) = activity.await.expect("the activity sampler");
            Some(PgFigures {
                counters,
                activity_samples,
                activity,
            })
        }
        _ => None,
    };
    let cpu = cpu_use(&before, &after, ticks);
    let (mut sum, mut count) = (0.0, 0.0);
    for server in &servers {
        let metrics = server.serve.metrics().await;
        sum += metrics.sum("switchyard_intake_seconds_sum", &[]);
        count += metrics.sum("switchyard_intake_seconds_count", &[]);
    }
    let store_mean_ms = (count > 0.0).then(|| round(sum / count * 1e3, 3));
    // Everything acknowledged must survive the servers being killed.
    for server in &mut servers {
        server.serve.crash();
    }
    let durable = match pg {
        None => durable_changes(&servers[0].db()),
        Some(p) => {
            let url = p.url.clone();
            tokio::task::spawn_blocking(move || {
                switchyard::store::PostgresAdmin::open(&url)
                    .and_then(|admin| admin.count("SELECT count(*) FROM changes"))
                    .unwrap_or_else(|e| panic!("count the changes in PostgreSQL: {e}"))
            })
            .await
            .expect("the count")
        }
    };
    drop(servers);
    let mut latencies = std::mem::take(&mut tally.latencies);
    latencies.sort_by(f64::total_cmp);
    Ingest {
        replicas: addrs.len(),
        rate: tally.window_accepted as f64 / settings.seconds,
        latencies,
        tally,
        cpu,
        durable,
        store_mean_ms,
        postgres,
        load_start,
        load_end,
        build_us,
    }
}

// ---------------------------------------------------------------------------------------------
// Scenario 2: start latency

/// When each change's start first arrived at the runner, and how many arrivals were repeats
/// (a change started again) or named no change.
struct Arrivals {
    first: HashMap<String, Instant>,
    repeats: u64,
    unreadable: u64,
}

impl Arrivals {
    fn of(arrivals: &[Arrival]) -> Arrivals {
        let mut first = HashMap::new();
        let (mut repeats, mut unreadable) = (0, 0);
        for a in arrivals {
            if a.sha.is_empty() {
                unreadable += 1;
            } else if first.contains_key(&a.sha) {
                repeats += 1;
            } else {
                first.insert(a.sha.clone(), a.at);
            }
        }
        Arrivals {
            first,
            repeats,
            unreadable,
        }
    }
}

/// Waits (woken at each arrival) until `n` distinct changes started, or `timeout` passed;
/// returns how many did.
async fn await_arrivals(runner: &Runner, n: usize, timeout: Duration) -> usize {
    let distinct = |a: &[Arrival]| Arrivals::of(a).first.len();
    runner
        .wait_for(timeout, |a| (distinct(a) >= n).then_some(()))
        .await;
    distinct(&runner.arrivals())
}

/// Figures of the `start_latency` scenario.
struct StartLatency {
    sent: usize,
    accepted: usize,
    arrived: usize,
    repeats: u64,
    unreadable: u64,
    store_to_start: Vec<f64>,
    send_to_start: Vec<f64>,
    ack: Vec<f64>,
    before_ack: usize,
    missing: usize,
    server_start_mean_ms: Option<f64>,
    wall: f64,
    load_start: String,
}

async fn start_latency(settings: &Settings) -> StartLatency {
    let (arrivals, runner) = Runner::start().await.expect("the runner");
    let secret = new_secret();
    let dir = tempfile::Builder::new()
        .prefix("intake-bench-")
        .tempdir()
        .expect("temp dir");
    let pipeline = format!(
        "repository: {WATCHED}\n\
         on: push\n\
         mode: parallel\n\
         concurrency: 64\n\
         start:\n  http: {{url: \"http://{runner}/start\"}}\n"
    );
    let server = Server::start(dir, &secret, &pipeline, None).await;
    let signer = Arc::new(Signer {
        key: Key::from_secret(&secret).expect("a valid secret"),
        receiver: "bench".into(),
        repository: WATCHED.into(),
        refs: 1,
    });
    let load_start = loadavg();
    let conns = settings.start_connections;
    let rate = settings.start_rate;

    // Warm-up: the dispatcher's first connection to the runner, the server's first requests.
    let warm = 20u64;
    let warmed = paced(server.addr(), &signer, 0..warm, rate, conns).await;
    let warm_accepted = warmed
        .iter()
        .filter(|s| s.outcome == Some(Outcome::Accepted))
        .count();
    await_arrivals(&arrivals, warm_accepted, Duration::from_secs(30)).await;

    let began = Instant::now();
    let n = settings.starts as u64;
    let sent = paced(server.addr(), &signer, warm..warm + n, rate, conns).await;
    let wall = began.elapsed().as_secs_f64();
    let accepted = sent
        .iter()
        .filter(|s| s.outcome == Some(Outcome::Accepted))
        .count();
    let arrived =
        await_arrivals(&arrivals, warm_accepted + accepted, Duration::from_secs(30)).await;
    let metrics = server.serve.metrics().await;
    let server_start_mean_ms = metrics
        .mean("switchyard_start_latency_seconds")
        .map(|s| round(s * 1e3, 3));
    drop(server);

    let Arrivals {
        first,
        repeats,
        unreadable,
    } = Arrivals::of(&arrivals.arrivals());
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (mut store_to_start, mut send_to_start, mut ack) = (Vec::new(), Vec::new(), Vec::new());
    let (mut before_ack, mut missing) = (0, 0);
    for s in sent.iter().filter(|s| s.outcome == Some(Outcome::Accepted)) {
        ack.push(ms(s.acked - s.sent));
        match first.get(&s.after) {
            Some(&at) => {
                if at < s.acked {
                    before_ack += 1;
                }
                store_to_start.push(ms(at.saturating_duration_since(s.acked)));
                send_to_start.push(ms(at.saturating_duration_since(s.sent)));
            }
            None => missing += 1,
        }
    }
    for v in [&mut store_to_start, &mut send_to_start, &mut ack] {
        v.sort_by(f64::total_cmp);
    }
    StartLatency {
        sent: sent.len(),
        accepted,
        arrived: arrived.saturating_sub(warm_accepted),
        repeats,
        unreadable,
        store_to_start,
        send_to_start,
        ack,
        before_ack,
        missing,
        server_start_mean_ms,
        wall,
        load_start,
    }
}

// ---------------------------------------------------------------------------------------------
// Report

/// Where cargo's target directory is: this binary runs from `target/<profile>/deps/`.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .filter(|t| t.is_dir())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// An ingest scenario's result: figures, or why it did not run.
enum Ran {
    Figures(Ingest),
    Skipped(String),
}

/// Starts the lab's PostgreSQL for the `ingest_postgres_*` scenarios: fsync on, WAL I/O
/// timed. `Err(why)` when it is not installed (and not strict: the lab's skip policy, which
/// prints `skipped: …`).
fn start_postgres() -> Result<Postgres, String> {
    let options = Options {
        fsync: true,
        settings: vec![("track_wal_io_timing".into(), "on".into())],
        ..Options::default()
    };
    let started = Postgres::start_with(options);
    let why = started
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<Missing>())
        .map(|m| format!("{} is missing", m.what));
    or_skip(started).ok_or_else(|| why.unwrap_or_else(|| "PostgreSQL did not start".into()))
}

/// The postmaster's pid: the first line of `postmaster.pid` in the data dir.
fn postmaster_pid(pg: &Postgres) -> Option<u32> {
    let text = std::fs::read_to_string(pg.dir().join("data/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// The text of one ingest scenario.
fn ingest_text(
    line: &mut impl FnMut(String),
    ing: &Ingest,
    target: Option<(f64, f64)>,
    full: bool,
) {
    let lat = &ing.latencies;
    let verdict = |ok: bool| match (full, ok) {
        (false, _) => "not judged in a smoke run",
        (true, true) => "met",
        (true, false) => "NOT met",
    };
    let cpu = &ing.cpu;
    let rate_target = target.map_or_else(String::new, |(rate, _)| {
        format!(
            "; target >= {}: {}",
            thousands(rate as u64),
            verdict(ing.rate >= rate)
        )
    });
    line(format!(
        "  acknowledged (202 accepted)     {} /s  ({} in the window{rate_target})",
        thousands(ing.rate.round() as u64),
        thousands(ing.tally.window_accepted),
    ));
    line(format!(
        "  each second of the window       {}",
        ing.tally
            .per_second
            .iter()
            .map(|n| thousands(*n))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let p99_target = target.map_or_else(String::new, |(_, p99)| {
        format!(
            "  (p99 target < {p99} ms: {})",
            verdict(Summary::of(lat).p99 < p99)
        )
    });
    line(format!(
        "  latency p50 / p90 / p99 / max   {}{p99_target}",
        dist_text(lat)
    ));
    line(format!(
        "  errors                          {} in the window, {} in all ({} sent; statuses {:?}, transport {}, duplicates {}){}",
        ing.tally.window_errors,
        ing.tally.errors() + ing.tally.duplicate,
        thousands(ing.tally.sent),
        ing.tally.statuses,
        ing.tally.transport,
        ing.tally.duplicate,
        ing.tally
            .first_error
            .as_deref()
            .map(|e| format!("; first: {e}"))
            .unwrap_or_default()
    ));
    let acked = ing.tally.window_accepted.max(1) as f64;
    line(format!(
        "  server CPU ({} replica(s))       {:.2} cores, user {:.2} + sys {:.2} ({:.1} ms CPU per 1,000 acknowledged)",
        ing.replicas,
        cpu.server.total() / cpu.wall,
        cpu.server.user / cpu.wall,
        cpu.server.sys / cpu.wall,
        cpu.server.total() * 1e6 / acked
    ));
    for (name, (c, n)) in &cpu.server_threads {
        if c.total() > 0.0 {
            line(format!(
                "    thread {:<24} {:.2} cores, user {:.2} + sys {:.2}; runnable without a CPU {:.2} ({n} thread(s))",
                format!("{name:?}"),
                c.total() / cpu.wall,
                c.user / cpu.wall,
                c.sys / cpu.wall,
                c.queued / cpu.wall
            ));
        }
    }
    line(format!(
        "  server writes per change        {:.0} bytes in {:.2} write calls; {:.0} bytes to storage",
        cpu.server_io[0] as f64 / acked,
        cpu.server_io[1] as f64 / acked,
        cpu.server_io[2] as f64 / acked
    ));
    if let Some((c, roles)) = &cpu.postgres {
        line(format!(
            "  PostgreSQL CPU                  {:.2} cores, user {:.2} + sys {:.2} ({:.1} ms CPU per 1,000 acknowledged)",
            c.total() / cpu.wall,
            c.user / cpu.wall,
            c.sys / cpu.wall,
            c.total() * 1e6 / acked
        ));
        for (role, (c, n)) in roles {
            if c.total() > 0.0 {
                line(format!(
                    "    {:<30} {:.2} cores, user {:.2} + sys {:.2}; runnable without a CPU {:.2} ({n} process(es))",
                    role,
                    c.total() / cpu.wall,
                    c.user / cpu.wall,
                    c.sys / cpu.wall,
                    c.queued / cpu.wall
                ));
            }
        }
    }
    if let Some(pg) = &ing.postgres {
        let k = &pg.counters;
        let commits = k.commits.max(1) as f64;
        line(format!(
            "  PostgreSQL counted (window)     {} commits ({:.1} acknowledged per commit); WAL {} records, {:.0} bytes per acknowledged, {} writes, {} syncs ({:.0} /s, {:.2} ms each, {:.2} busy); {} checkpoints",
            thousands(k.commits.max(0) as u64),
            acked / commits,
            thousands(k.wal_records.max(0) as u64),
            k.wal_bytes as f64 / acked,
            thousands(k.wal_writes.max(0) as u64),
            thousands(k.wal_syncs.max(0) as u64),
            k.wal_syncs as f64 / cpu.wall,
            k.wal_sync_ms / k.wal_syncs.max(1) as f64,
            k.wal_sync_ms / 1e3 / cpu.wall,
            k.checkpoints
        ));
        let total: u64 = pg.activity.values().sum();
        line(format!(
            "  replicas' backends ({} samples) {}",
            pg.activity_samples,
            pg.activity
                .iter()
                .map(|(what, n)| format!("{what} {:.0}%", *n as f64 * 100.0 / total.max(1) as f64))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    line(format!(
        "  generator CPU (bench process)   {:.2} cores, user {:.2} + sys {:.2}",
        cpu.generator.total() / cpu.wall,
        cpu.generator.user / cpu.wall,
        cpu.generator.sys / cpu.wall
    ));
    line(format!(
        "  machine                         {:.2} of {:.2} cores busy, {:.2} by other processes (steal {:.2}); load average {} at the start, {} at the end",
        cpu.machine_busy / cpu.wall,
        cpu.machine_capacity / cpu.wall,
        cpu.others() / cpu.wall,
        cpu.machine_steal / cpu.wall,
        ing.load_start,
        ing.load_end
    ));
    line(format!(
        "  in the store (servers' mean)    {} over the whole run",
        ing.store_mean_ms
            .map_or_else(|| "unknown".into(), |m| format!("{m:.2} ms per change"))
    ));
    line(format!(
        "  durable after SIGKILL           {} rows in `changes` >= {} acknowledged: {}",
        thousands(ing.durable.max(0) as u64),
        thousands(ing.tally.accepted),
        if ing.durable >= ing.tally.accepted as i64 {
            "yes"
        } else {
            "NO"
        }
    ));
}

/// The JSON of one ingest scenario.
fn ingest_json(ing: &Ingest, settings: &Settings, target: Option<(f64, f64)>) -> Value {
    let lat = &ing.latencies;
    let mut v = json!({
        "replicas": ing.replicas,
        "warmup_s": settings.warmup,
        "seconds": settings.seconds,
        "loadavg_start": ing.load_start,
        "loadavg_end": ing.load_end,
        "acknowledged_per_s": round(ing.rate, 1),
        "acknowledged_in_window": ing.tally.window_accepted,
        "acknowledged_each_second": ing.tally.per_second,
        "latency_ms": dist_json(lat),
        "errors_in_window": ing.tally.window_errors,
        "sent_total": ing.tally.sent,
        "accepted_total": ing.tally.accepted,
        "duplicates_total": ing.tally.duplicate,
        "error_statuses_total": ing.tally.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "transport_errors_total": ing.tally.transport,
        "first_error": ing.tally.first_error,
        "cpu": ing.cpu.to_json(ing.tally.window_accepted),
        "server_store_mean_ms": ing.store_mean_ms,
        "durable_rows_after_sigkill": ing.durable,
    });
    if let Some((rate, p99)) = target {
        v["targets"] = json!({
            "rate_per_s": rate,
            "p99_ms": p99,
            "rate_met": ing.rate >= rate,
            "p99_met": Summary::of(lat).p99 < p99,
        });
    }
    if let Some(pg) = &ing.postgres {
        let k = &pg.counters;
        v["postgres"] = json!({
            "commits": k.commits,
            "acknowledged_per_commit": round(ing.tally.window_accepted as f64 / k.commits.max(1) as f64, 2),
            "wal_records": k.wal_records,
            "wal_bytes": k.wal_bytes,
            "wal_writes": k.wal_writes,
            "wal_syncs": k.wal_syncs,
            "wal_write_ms": round(k.wal_write_ms, 1),
            "wal_sync_ms": round(k.wal_sync_ms, 1),
            "checkpoints": k.checkpoints,
            "activity_samples": pg.activity_samples,
            "backends_by_state": pg.activity,
        });
    }
    v
}

fn main() {
    let settings = Settings::from_env();
    let ticks = procfs::clock_ticks();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let command = if settings.full {
        "cargo bench --bench intake"
    } else {
        "cargo test --benches (smoke run; `cargo bench --bench intake` measures)"
    };

    // The file system of the state directories, and what one fdatasync costs there.
    let probe_dir = tempfile::Builder::new()
        .prefix("intake-bench-")
        .tempdir()
        .expect("temp dir");
    let fs = fs_type(probe_dir.path());
    let fsync = fsync_probe(probe_dir.path(), if settings.full { 200 } else { 20 });
    drop(probe_dir);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.threads.max(1))
        .enable_all()
        .build()
        .expect("the generator's tokio runtime");
    let sqlite = settings
        .runs("ingest")
        .then(|| runtime.block_on(ingest(&settings, ticks, 1, None)));
    let st = settings
        .runs("start_latency")
        .then(|| runtime.block_on(start_latency(&settings)));
    // One PostgreSQL for both scenarios, a fresh database for each.
    let wanted: Vec<(&str, usize)> = POSTGRES_SCENARIOS
        .into_iter()
        .filter(|(name, _)| settings.runs(name))
        .collect();
    let pg = (!wanted.is_empty()).then(start_postgres);
    let mut postgres_runs: Vec<(&str, Ran)> = Vec::new();
    for (name, replicas) in wanted {
        let ran = match &pg {
            Some(Ok(pg)) => {
                let url = pg.create_database(name).unwrap_or_else(|e| panic!("{e:#}"));
                let target = PgTarget {
                    url,
                    db: name.to_owned(),
                    stats_url: pg.url(),
                    postmaster: postmaster_pid(pg),
                };
                Ran::Figures(runtime.block_on(ingest(&settings, ticks, replicas, Some(&target))))
            }
            Some(Err(why)) => Ran::Skipped(why.clone()),
            None => continue,
        };
        postgres_runs.push((name, ran));
    }
    drop(runtime);
    drop(pg);

    let target_of = |name: &str| match name {
        "ingest" => Some((TARGET_RATE, TARGET_P99_MS)),
        "ingest_postgres_3" => Some((TARGET_PG3_RATE, TARGET_PG3_P99_MS)),
        _ => None,
    };
    let start_ok = st
        .as_ref()
        .is_some_and(|st| Summary::of(&st.store_to_start).p50 < TARGET_START_P50_MS);
    // A smoke run is a debug build for a second: its figures measure nothing.
    let full = settings.full;
    let verdict = |ok: bool| match (full, ok) {
        (false, _) => "not judged in a smoke run",
        (true, true) => "met",
        (true, false) => "NOT met",
    };

    // What building and signing a request cost, measured in the first ingest that ran.
    let build_us = sqlite.as_ref().map(|i| i.build_us).or_else(|| {
        postgres_runs.iter().find_map(|(_, ran)| match ran {
            Ran::Figures(i) => Some(i.build_us),
            Ran::Skipped(_) => None,
        })
    });

    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "switchyard intake benchmark ({})",
        if settings.full { "full" } else { "smoke" }
    ));
    line(format!("  command                         {command}"));
    line(format!(
        "  machine                         {cpus} CPUs; load average {} before the first scenario",
        sqlite
            .as_ref()
            .map_or_else(loadavg, |ing| ing.load_start.clone())
    ));
    line(format!(
        "  store                           {fs}; 4 KiB append + fdatasync p50 {:.2} ms, p99 {:.2} ms",
        Summary::of(&fsync).p50,
        Summary::of(&fsync).p99
    ));
    line(format!(
        "  generator                       {} keep-alive connections, closed loop, {} tokio worker thread(s); pushes to {} ref(s); build+sign {:.1} us/request",
        settings.connections,
        settings.threads,
        settings.refs,
        build_us.unwrap_or(f64::NAN)
    ));
    let mut ingests: Vec<(&str, Option<&Ingest>, Option<&str>)> = Vec::new();
    if let Some(ing) = &sqlite {
        ingests.push(("ingest", Some(ing), None));
    }
    for (name, ran) in &postgres_runs {
        match ran {
            Ran::Figures(ing) => ingests.push((name, Some(ing), None)),
            Ran::Skipped(why) => ingests.push((name, None, Some(why))),
        }
    }
    for (name, ing, skipped) in &ingests {
        line(String::new());
        let what = if *name == "ingest" {
            "one server on SQLite".to_owned()
        } else {
            let n: usize = if name.ends_with('3') { 3 } else { 1 };
            format!("{n} replica(s) on one PostgreSQL (fsync on), connections round-robin")
        };
        line(format!(
            "{name}: {what}; {}; {} s warm-up, {} s measured",
            if settings.decided {
                "one pipeline decides each change (excluded, its reason recorded)"
            } else {
                "no pipeline matches"
            },
            settings.warmup,
            settings.seconds
        ));
        match (ing, skipped) {
            (Some(ing), _) => ingest_text(&mut line, ing, target_of(name), full),
            (None, why) => line(format!("  skipped: {}", why.unwrap_or("not run"))),
        }
    }
    if let Some(st) = &st {
        line(String::new());
        line(format!(
            "start_latency: http target, {} changes at {} /s over {} connections ({:.1} s); load average {} at the start",
            st.sent,
            thousands(settings.start_rate.round() as u64),
            settings.start_connections,
            st.wall,
            st.load_start
        ));
        line(format!(
            "  starts arrived                  {} of {} accepted (repeats {}, unreadable {})",
            st.arrived, st.accepted, st.repeats, st.unreadable
        ));
        line(format!(
            "  store-to-start p50/p90/p99/max  {}  (p50 target < {TARGET_START_P50_MS} ms: {}); {} arrived before their 202",
            dist_text(&st.store_to_start),
            verdict(start_ok),
            st.before_ack
        ));
        line(format!(
            "  send-to-start  p50/p90/p99/max  {}",
            dist_text(&st.send_to_start)
        ));
        line(format!(
            "  202 latency    p50/p90/p99/max  {}",
            dist_text(&st.ack)
        ));
        line(format!(
            "  server's start latency (mean)   {}",
            st.server_start_mean_ms.map_or_else(
                || "unknown".into(),
                |m| format!("{m:.2} ms (received_at to attempt, ms clock)")
            )
        ));
    }
    line(String::new());
    line("side by side (acknowledged durable changes; CPU in cores over the window)".into());
    line(format!(
        "  {:<18} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>9} {:>9}",
        "scenario",
        "rate/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
        "server",
        "postgres",
        "generator"
    ));
    for (name, ing, skipped) in &ingests {
        match ing {
            Some(ing) => {
                let s = Summary::of(&ing.latencies);
                let c = &ing.cpu;
                line(format!(
                    "  {:<18} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>7.2} {:>9} {:>9.2}",
                    name,
                    thousands(ing.rate.round() as u64),
                    s.p50,
                    s.p90,
                    s.p99,
                    s.max,
                    ing.tally.window_errors,
                    c.server.total() / c.wall,
                    c.postgres
                        .as_ref()
                        .map_or_else(|| "-".into(), |(p, _)| format!("{:.2}", p.total() / c.wall)),
                    c.generator.total() / c.wall
                ));
            }
            None => line(format!(
                "  {:<18} skipped: {}",
                name,
                skipped.unwrap_or("not run")
            )),
        }
    }
    print!("{out}");

    let mut report = json!({
        "mode": if settings.full { "full" } else { "smoke" },
        "command": command,
        "unix_time": unix_now(),
        "machine": {
            "cpus": cpus,
            "loadavg_start": sqlite.as_ref().map(|i| i.load_start.clone()),
            "loadavg_end": sqlite.as_ref().map(|i| i.load_end.clone()),
            "state_fs": fs,
            "fdatasync_ms": dist_json(&fsync),
        },
        "generator": {
            "connections": settings.connections,
            "tokio_worker_threads": settings.threads,
            "refs": settings.refs,
            "loop": "closed",
            "build_and_sign_us_per_request": build_us.map(|us| round(us, 2)),
        },
    });
    for (name, ing, skipped) in &ingests {
        report[*name] = match ing {
            Some(ing) => ingest_json(ing, &settings, target_of(name)),
            None => json!({"skipped": skipped}),
        };
    }
    if let Some(st) = &st {
        report["start_latency"] = json!({
            "changes": st.sent,
            "rate_per_s": settings.start_rate,
            "connections": settings.start_connections,
            "wall_s": round(st.wall, 3),
            "loadavg_start": st.load_start,
            "accepted": st.accepted,
            "arrived": st.arrived,
            "missing": st.missing,
            "repeats": st.repeats,
            "unreadable": st.unreadable,
            "arrived_before_ack": st.before_ack,
            "store_to_start_ms": dist_json(&st.store_to_start),
            "send_to_start_ms": dist_json(&st.send_to_start),
            "ack_ms": dist_json(&st.ack),
            "server_start_latency_mean_ms": st.server_start_mean_ms,
            "targets": {"store_to_start_p50_ms": TARGET_START_P50_MS, "met": start_ok},
        });
    }
    let file = target_dir().join(if settings.full {
        "intake-bench.json"
    } else {
        "intake-bench-smoke.json"
    });
    let text = serde_json::to_string_pretty(&report).expect("the report as JSON");
    match std::fs::write(&file, text + "\n") {
        Ok(()) => println!("\nfigures written to {}", file.display()),
        Err(e) => eprintln!("cannot write {}: {e}", file.display()),
    }

    // Correctness, in every mode; the targets are reported above, not asserted.
    for (name, ing, _) in &ingests {
        let Some(ing) = ing else { continue };
        assert!(ing.tally.accepted > 0, "{name}: nothing was acknowledged");
        assert!(
            ing.durable >= ing.tally.accepted as i64,
            "{name}: {} changes acknowledged but only {} stored",
            ing.tally.accepted,
            ing.durable
        );
    }
    if let Some(st) = &st {
        assert!(st.accepted > 0, "start_latency: nothing was acknowledged");
        assert_eq!(
            st.arrived, st.accepted,
            "start_latency: every accepted change must start its pipeline once"
        );
        assert_eq!(st.missing, 0, "start_latency: starts missing at the runner");
    }
}
