//! Several `serve` replicas on one PostgreSQL database, each a real child process with a state
//! directory and a port of its own and the same `switchyard.yaml`: a change heard by two
//! replicas starts once, a pipeline's concurrency holds across replicas, a killed replica's
//! starts and polled repository are taken over within the lease, an outage of the database is
//! answered with 503 and loses nothing, and polled repositories are shared out among the
//! replicas instead of polled by each.
//!
//! The tests run one at a time: they measure takeover and recovery times, and four clusters
//! of replicas on a small machine would measure each other.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_lab::{
    GitDaemon, Postgres, Runner, Serve, Work, bare, or_skip, try_exchange, try_request,
};

use crate::support::{SECRET, change_in, serve, sha, try_post};

/// The variable every replica reads its database URL from.
const URL_VAR: &str = "SWITCHYARD_DATABASE_URL";
const API: &str = "https://github.com/acme/api.git";
const QUEUE: &str = "https://github.com/acme/queue.git";
/// The store's lease (`store/postgres/backend.rs`): how long a replica's claims and polled
/// repositories outlive its last renewal.
const LEASE: Duration = Duration::from_secs(5);

/// One test of this file at a time (see the module's documentation).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A fresh database `replicas_NAME` on the lab's shared PostgreSQL; `None` (the test returns)
/// when PostgreSQL is not installed outside strict mode.
fn database(name: &str) -> Option<String> {
    let server = or_skip(Postgres::shared())?;
    Some(
        server
            .create_database(&format!("replicas_{name}"))
            .expect("a database on the lab's PostgreSQL"),
    )
}

/// The test's own connection to the database.
async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(connection);
    client
}

/// The first column of the first row of `sql`, a number.
async fn count(db: &tokio_postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// The first column of every row of `sql`, as text.
async fn texts(db: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    db.query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Asks `check` every 50 ms until it returns something, for at most `within`.
async fn until<T>(within: Duration, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A pipeline of `repository` with an `http` target at the runner at `addr`.
fn pipeline(repository: &str, mode: &str, concurrency: u32, addr: SocketAddr) -> String {
    format!(
        "repository: {repository}\non: push\nmode: {mode}\nconcurrency: {concurrency}\nstart:\n  http: {{url: \"http://{addr}/start\"}}\n"
    )
}

/// Replicas of `switchyard serve` sharing one database: each runs in a directory of its own
/// (its `state/`) holding the same `switchyard.yaml` and `triggers/`, with the database URL in
/// [`URL_VAR`].
struct Cluster {
    replicas: Vec<Serve>,
    _dirs: Vec<tempfile::TempDir>,
    _secret: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` replicas on the database at `url` and waits until each is ready;
    /// `switchyard.yaml` has a Standard Webhooks receiver `hooks` and `extra` (YAML lines).
    async fn start(url: &str, n: usize, extra: &str, triggers: &[(String, String)]) -> Cluster {
        let urls = vec![url.to_owned(); n];
        Cluster::start_each(&urls, extra, triggers).await
    }

    /// [`Cluster::start`] with one replica per URL (the same database, reached each its way).
    async fn start_each(urls: &[String], extra: &str, triggers: &[(String, String)]) -> Cluster {
        let secret = tempfile::tempdir().expect("temp dir");
        std::fs::write(secret.path().join("secret"), SECRET).expect("secret");
        let config = format!(
            "state_dir: state\nstore: {{postgres: env:{URL_VAR}}}\nreceivers:\n  - name: hooks\n    provider: standard\n    secrets: [file:{}]\ndispatch: {{backoff: 100ms, backoff_max: 1s}}\n{extra}",
            secret.path().join("secret").display()
        );
        let mut dirs = Vec::new();
        let mut replicas = Vec::new();
        for url in urls {
            let dir = tempfile::tempdir().expect("temp dir");
            std::fs::write(dir.path().join("switchyard.yaml"), &config).expect("config");
            std::fs::create_dir(dir.path().join("triggers")).expect("triggers");
            for (name, text) in triggers {
                std::fs::write(dir.path().join("triggers").join(name), text).expect("trigger");
            }
            let serve = serve(
                dir.path(),
                &[
                    (URL_VAR, url.to_owned()),
                    ("SWITCHYARD_LOG", "warn".to_owned()),
                ],
            )
            .await;
            serve
                .ready(Duration::from_secs(30))
                .await
                .unwrap_or_else(|e| panic!("{e:#}"));
            dirs.push(dir);
            replicas.push(serve);
        }
        Cluster {
            replicas,
            _dirs: dirs,
            _secret: secret,
        }
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.replicas.iter().map(Serve::addr).collect()
    }

    /// Which replica a name in `starts.owner`, `poll_leases` or `replicas` is
    /// (`HOST-PID-RANDOM`).
    fn which(&self, name: &str) -> Option<usize> {
        self.replicas
            .iter()
            .position(|r| name.contains(&format!("-{}-", r.pid())))
    }

    /// Each replica's count of metric `name` (series with `labels` summed); 0 for one that
    /// does not answer.
    async fn counts(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        let mut out = Vec::new();
        for r in &self.replicas {
            out.push(r.metrics().await.sum(name, labels));
        }
        out
    }

    /// Each replica's `ls-remote` requests so far.
    async fn ls_remotes(&self) -> Vec<f64> {
        self.counts("switchyard_poll_requests_total", &[("kind", "ls-remote")])
            .await
    }
}

/// How many times each start id reached a runner, from its arrivals.
/// Waits until every stored start succeeded, then checks that every acknowledged change
/// reached the runner and that no start arrived twice but those `may_repeat` names (a killed
/// replica's running starts). Returns the runner's arrivals.
async fn all_started_once(
    db: &tokio_postgres::Client,
    runner: &Runner,
    acked: &HashSet<String>,
    may_repeat: &HashSet<String>,
) -> Vec<switchyard_lab::Arrival> {
    until(
        Duration::from_secs(60),
        "every stored start to succeed",
        async || {
            let open = count(db, "SELECT count(*) FROM starts WHERE state <> 'succeeded'").await;
            (open == 0).then_some(())
        },
    )
    .await;
    let arrivals = runner.arrivals();
    let started = changes_of(&arrivals);
    let lost: Vec<&String> = acked.difference(&started).collect();
    assert!(lost.is_empty(), "acknowledged, never started: {lost:?}");
    let twice: Vec<(String, usize)> = per_start(&arrivals)
        .into_iter()
        .filter(|(id, n)| *n > 1 && !may_repeat.contains(id))
        .collect();
    assert!(twice.is_empty(), "started more than once: {twice:?}");
    arrivals
}

fn per_start(arrivals: &[switchyard_lab::Arrival]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for a in arrivals {
        *counts.entry(a.start_id.clone()).or_default() += 1;
    }
    counts
}

/// The change ids the arrivals name.
fn changes_of(arrivals: &[switchyard_lab::Arrival]) -> HashSet<String> {
    arrivals
        .iter()
        .filter_map(|a| a.json["event"]["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_start_each_change_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(url) = database("three") else {
        return;
    };
    const CHANGES: usize = 3000;
    const QUEUED: usize = 100;
    let (fast, fast_addr) = Runner::start().await.expect("runner");
    // The queued pipeline's runner holds each start 20 ms and counts how many it holds at once.
    let (serial, serial_addr) = Runner::holding(Duration::from_millis(20))
        .await
        .expect("runner");
    let triggers = [
        (
            "parallel.yaml".to_owned(),
            pipeline(API, "parallel", 32, fast_addr),
        ),
        (
            "queued.yaml".to_owned(),
            pipeline(QUEUE, "queued", 1, serial_addr),
        ),
    ];
    let cluster = Cluster::start(&url, 3, "", &triggers).await;
    let addrs = cluster.addrs();

    // Every change is posted to two replicas at once, under two delivery ids.
    let began = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let (next, answers, addrs) = (next.clone(), answers.clone(), addrs.clone());
        clients.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= CHANGES + QUEUED {
                    return;
                }
                let body = if n < CHANGES {
                    change_in(API, &format!("refs/heads/b{}", n % 20), &sha(n as u64 + 1))
                } else {
                    change_in(QUEUE, "refs/heads/main", &sha(n as u64 + 1))
                };
                let (a, b) = (n % 3, (n + 1) % 3);
                let (id_a, id_b) = (format!("{n}-at-{a}"), format!("{n}-at-{b}"));
                let (first, second) = tokio::join!(
                    try_post(addrs[a], &id_a, &body),
                    try_post(addrs[b], &id_b, &body),
                );
                let mut answers = answers.lock().expect("lock");
                answers.push((n, a, first));
                answers.push((n, b, second));
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.expect("a client task");
    }
    let posted = began.elapsed();
    let answers = std::mem::take(&mut *answers.lock().expect("lock"));
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut change_of: HashMap<usize, String> = HashMap::new();
    for (n, replica, answer) in &answers {
        let Some((202, json)) = answer else {
            panic!("change {n} posted to replica {replica}: {answer:?}, not 202");
        };
        let status = json["status"].as_str().unwrap_or("?").to_owned();
        *outcomes.entry(status).or_default() += 1;
        let id = json["change"].as_str().expect("the change id").to_owned();
        let known = change_of.entry(*n).or_insert_with(|| id.clone());
        assert_eq!(*known, id, "two replicas named change {n} differently");
    }
    eprintln!(
        "posted {} deliveries of {} changes in {:.1} s ({:.0}/s): {outcomes:?}",
        answers.len(),
        CHANGES + QUEUED,
        posted.as_secs_f64(),
        answers.len() as f64 / posted.as_secs_f64()
    );
    let total = CHANGES + QUEUED;
    assert_eq!(
        outcomes.get("accepted").copied(),
        Some(total),
        "each change is accepted once: {outcomes:?}"
    );
    assert_eq!(
        outcomes.get("duplicate").copied(),
        Some(total),
        "and a duplicate at the other replica: {outcomes:?}"
    );

    let db = connect(&url).await;
    until(
        Duration::from_secs(120),
        "every start to succeed",
        async || {
            let done = count(&db, "SELECT count(*) FROM starts WHERE state = 'succeeded'").await;
            (done == total as i64).then_some(())
        },
    )
    .await;
    let all_done = began.elapsed();
    assert_eq!(
        count(&db, "SELECT count(*) FROM changes").await,
        total as i64
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM starts").await,
        total as i64
    );

    let arrived = per_start(&fast.arrivals());
    let twice: Vec<_> = arrived.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "started more than once: {twice:?}");
    assert_eq!(arrived.len(), CHANGES, "starts of the parallel pipeline");
    let stored: HashSet<String> = texts(&db, "SELECT id FROM starts WHERE pipeline = 'parallel'")
        .await
        .into_iter()
        .collect();
    let reached: HashSet<String> = arrived.into_keys().collect();
    assert_eq!(
        stored, reached,
        "the stored starts are the ones that arrived"
    );
    let expected: HashSet<String> = change_of.values().cloned().collect();
    let mut named = changes_of(&fast.arrivals());
    named.extend(changes_of(&serial.arrivals()));
    assert_eq!(named, expected, "every acknowledged change started");

    let queued = per_start(&serial.arrivals());
    assert_eq!(queued.len(), QUEUED, "starts of the queued pipeline");
    assert!(queued.values().all(|&n| n == 1), "a queued start repeated");
    assert_eq!(
        serial.most_in_flight(),
        1,
        "the queued pipeline (concurrency 1) ran starts at once across the replicas"
    );
    let per_replica = cluster
        .counts("switchyard_starts_total", &[("outcome", "succeeded")])
        .await;
    eprintln!(
        "all {total} starts succeeded {:.1} s after the first post; starts per replica {per_replica:?}; at most {} queued start(s) in flight",
        all_done.as_secs_f64(),
        serial.most_in_flight()
    );
    assert!(
        per_replica.iter().filter(|&&n| n > 0.0).count() >= 2,
        "the starts were shared: {per_replica:?}"
    );
}

/// The replica named by the one row of `poll_leases`, once every replica is alive and the
/// lease has settled: while every replica's schedule came round the repository twice and the
/// holder's heartbeat renewed its lease, the holder kept the lease and only it asked the git
/// server.
async fn settled_poller(cluster: &Cluster, db: &tokio_postgres::Client) -> usize {
    until(
        Duration::from_secs(30),
        "the polled repository's lease to settle",
        async || {
            let alive = count(
                db,
                "SELECT count(*) FROM replicas WHERE seen_ms >= switchyard_now() - 5000",
            )
            .await;
            let owner = texts(db, "SELECT owner FROM poll_leases").await;
            if alive < cluster.replicas.len() as i64 || owner.len() != 1 {
                return None;
            }
            let i = cluster.which(&owner[0])?;
            let before = cluster.ls_remotes().await;
            looked_and_renewed(cluster, db, &owner[0], 2.0).await;
            let after = cluster.ls_remotes().await;
            let still = texts(db, "SELECT owner FROM poll_leases").await;
            let asked: Vec<bool> = before.iter().zip(&after).map(|(b, a)| a > b).collect();
            let only_it = asked
                .iter()
                .enumerate()
                .all(|(j, &asked)| asked == (j == i));
            (still == owner && only_it).then_some(i)
        },
    )
    .await
}

/// Each replica's looks at its polled repositories so far: every poll its schedule makes,
/// those of repositories another replica holds (which ask no git server) included.
async fn looks(cluster: &Cluster) -> Vec<f64> {
    cluster.counts("switchyard_poll_seconds_count", &[]).await
}

/// Waits until every replica has looked `n` more times at its polled repositories and the
/// heartbeat of replica `holder` (a name in `replicas`) has renewed its leases once more.
async fn looked_and_renewed(cluster: &Cluster, db: &tokio_postgres::Client, holder: &str, n: f64) {
    let seen = format!("SELECT coalesce(max(seen_ms), 0) FROM replicas WHERE id = '{holder}'");
    let renewed = count(db, &seen).await;
    let looked = looks(cluster).await;
    until(
        Duration::from_secs(30),
        &format!("every replica to look {n} more times and {holder} to renew its leases"),
        async || {
            let now = looks(cluster).await;
            let more = now.iter().zip(&looked).all(|(now, was)| now - was >= n);
            (more && count(db, &seen).await > renewed).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_s_work_is_taken_over() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(url) = database("takeover") else {
        return;
    };
    let base = tempfile::tempdir().expect("temp dir");
    let origin = bare(base.path(), "polled.git");
    let work = Work::new();
    work.commit(&[("src/a.rs", Some("a"))], "first");
    work.push(&origin, &["main"]);
    let Some(daemon) = or_skip(GitDaemon::start(base.path())) else {
        return;
    };
    let polled = daemon.url("polled.git");
    // A slow runner: each start is in flight for 1.5 s, so that the replica killed has some
    // claimed and running.
    let (slow, slow_addr) = Runner::holding(Duration::from_millis(1500))
        .await
        .expect("runner");
    let (found, found_addr) = Runner::start().await.expect("runner");
    let triggers = [
        (
            "slow.yaml".to_owned(),
            pipeline(API, "parallel", 64, slow_addr),
        ),
        (
            "polled.yaml".to_owned(),
            pipeline(&polled, "queued", 1, found_addr),
        ),
    ];
    let extra = format!("poll:\n  - url: {polled}\n    interval: 1s\n");
    let mut cluster = Cluster::start(&url, 3, &extra, &triggers).await;
    let addrs = cluster.addrs();
    let db = connect(&url).await;
    let victim = settled_poller(&cluster, &db).await;
    let victim_name = texts(&db, "SELECT owner FROM poll_leases").await[0].clone();

    // A burst to every replica; the replica that polls the repository is killed in it.
    const BURST: usize = 300;
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (next, acked, addrs) = (next.clone(), acked.clone(), addrs.clone());
        clients.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= BURST {
                    return;
                }
                let body = change_in(API, "refs/heads/main", &sha(n as u64 + 1));
                match try_post(addrs[n % 3], &format!("burst-{n}"), &body).await {
                    Some((202, answer)) => acked
                        .lock()
                        .expect("lock")
                        .push(answer["change"].as_str().expect("change id").to_owned()),
                    Some((status, answer)) => panic!("change {n}: {status} {answer}"),
                    // The killed replica.
                    None => {}
                }
            }
        });
    }
    let running_sql =
        format!("SELECT count(*) FROM starts WHERE state = 'running' AND owner = '{victim_name}'");
    until(
        Duration::from_secs(30),
        "the replica to be killed to run starts",
        async || (count(&db, &running_sql).await >= 4).then_some(()),
    )
    .await;
    cluster.replicas[victim].crash().expect("SIGKILL");
    let killed = Instant::now();
    let orphans: HashSet<String> = texts(
        &db,
        &format!("SELECT id FROM starts WHERE state = 'running' AND owner = '{victim_name}'"),
    )
    .await
    .into_iter()
    .collect();
    let after = work.commit(&[("src/b.rs", Some("b"))], "after the kill");
    work.push(&origin, &["main"]);
    let pushed = Instant::now();

    // The push: found by another replica once the killed one's lease has run out.
    let detected = found
        .wait_for(Duration::from_secs(30), |arrivals| {
            arrivals.iter().find(|a| a.sha == after).map(|a| a.at)
        })
        .await
        .unwrap_or_else(|| panic!("the push after the kill was never started"));
    let detection = detected.duration_since(pushed);

    while let Some(done) = clients.join_next().await {
        done.expect("a client task");
    }
    let acked: HashSet<String> = acked.lock().expect("lock").iter().cloned().collect();
    // Every acknowledged change started; only the killed replica's running starts twice.
    let arrivals = all_started_once(&db, &slow, &acked, &orphans).await;
    // Each of the killed replica's starts arrived again after the kill (the last arrival: a
    // request the killed replica sent may reach the runner a moment after the kill).
    let mut takeover = Duration::ZERO;
    for id in &orphans {
        let last = arrivals
            .iter()
            .filter(|a| &a.start_id == id)
            .map(|a| a.at)
            .max()
            .unwrap_or_else(|| panic!("the killed replica's start {id} never arrived"));
        assert!(
            last > killed,
            "the killed replica's start {id} was not taken over"
        );
        takeover = takeover.max(last.duration_since(killed));
    }
    let stored = count(&db, "SELECT count(*) FROM starts WHERE pipeline = 'slow'").await;
    let owner = texts(&db, "SELECT owner FROM poll_leases").await;
    let polls: Vec<u64> = cluster
        .ls_remotes()
        .await
        .iter()
        .map(|&n| n as u64)
        .collect();
    eprintln!(
        "{} of {BURST} changes acknowledged, {stored} stored; {} starts running on the killed replica were taken over within {:.2} s of the kill; the push after the kill started {:.2} s after it (lease {LEASE:?}); ls-remote per replica {polls:?} (replica {victim} killed, the repository now polled by replica {:?})",
        acked.len(),
        orphans.len(),
        takeover.as_secs_f64(),
        detection.as_secs_f64(),
        owner.first().and_then(|o| cluster.which(o)),
    );
    assert!(
        takeover < Duration::from_secs(10),
        "the killed replica's starts were taken over after {takeover:?}"
    );
    assert!(
        detection < Duration::from_secs(10),
        "the push after the kill was found after {detection:?}"
    );
    assert_eq!(owner.len(), 1);
    assert_ne!(
        owner[0], victim_name,
        "the dead replica still holds the lease"
    );
    let polled_starts: Vec<_> = found
        .arrivals()
        .into_iter()
        .filter(|a| a.sha == after)
        .collect();
    assert_eq!(polled_starts.len(), 1, "the push started once");
}

/// One post of a steady load: when it was sent and answered, to which replica, and the
/// answer (`None`: no connection or no answer).
#[derive(Debug)]
struct Post {
    sent: Instant,
    answered: Instant,
    replica: usize,
    answer: Option<(u16, Value)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_answers_503_and_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    // A server of its own: this test stops it.
    let started = tokio::task::spawn_blocking(Postgres::start)
        .await
        .expect("the thread starting PostgreSQL");
    let Some(pg) = or_skip(started) else {
        return;
    };
    let pg = Arc::new(pg);
    let url = pg.create_database("outage").expect("a database");
    let (runner, runner_addr) = Runner::start().await.expect("runner");
    let triggers = [(
        "api.yaml".to_owned(),
        pipeline(API, "parallel", 16, runner_addr),
    )];
    let cluster = Cluster::start(&url, 2, "", &triggers).await;
    let addrs = cluster.addrs();

    // A steady load on both replicas: four clients, each change posted once.
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let posts = Arc::new(Mutex::new(Vec::<Post>::new()));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (next, stop, posts, addrs) = (next.clone(), stop.clone(), posts.clone(), addrs.clone());
        clients.spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let body = change_in(API, "refs/heads/main", &sha(n as u64 + 1));
                let sent = Instant::now();
                let answer = try_post(addrs[n % 2], &format!("steady-{n}"), &body).await;
                let answered = Instant::now();
                posts.lock().expect("lock").push(Post {
                    sent,
                    answered,
                    replica: n % 2,
                    answer,
                });
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }
    let accepted = |posts: &Arc<Mutex<Vec<Post>>>| {
        posts
            .lock()
            .expect("lock")
            .iter()
            .filter(|p| matches!(p.answer, Some((202, _))))
            .count()
    };
    until(
        Duration::from_secs(30),
        "100 changes accepted",
        async || (accepted(&posts) >= 100).then_some(()),
    )
    .await;

    // The outage: ten seconds without the database.
    let stopper = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || stopper.stop())
        .await
        .expect("the thread stopping PostgreSQL")
        .expect("PostgreSQL stops");
    let down = Instant::now();
    let mut readyz = Vec::new();
    while down.elapsed() < Duration::from_secs(10) {
        for &addr in &addrs {
            let answer = try_request(addr, "GET", "/readyz", &[], Vec::new()).await;
            readyz.push(answer.map(|(status, _)| status).ok());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let restarting = Instant::now();
    let starter = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || starter.start_again())
        .await
        .expect("the thread starting PostgreSQL")
        .expect("PostgreSQL starts again");
    let up = Instant::now();
    // Each replica accepts changes again.
    let recovered: Vec<Duration> = until(
        Duration::from_secs(30),
        "both replicas to accept changes again",
        async || {
            let posts = posts.lock().expect("lock");
            let mut back = Vec::new();
            for replica in 0..addrs.len() {
                let first = posts.iter().find(|p| {
                    p.replica == replica && p.sent >= up && matches!(p.answer, Some((202, _)))
                })?;
                back.push(first.answered.duration_since(up));
            }
            Some(back)
        },
    )
    .await;
    // A little more load after the recovery, then the end.
    let more = accepted(&posts) + 50;
    until(
        Duration::from_secs(30),
        "50 more changes accepted",
        async || (accepted(&posts) >= more).then_some(()),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    while let Some(done) = clients.join_next().await {
        done.expect("a client task");
    }
    let posts = std::mem::take(&mut *posts.lock().expect("lock"));

    // During the outage: 503 or no answer, never an acknowledgement. (A post sent in the
    // outage may wait for the database and be acknowledged once it is back.)
    let during: Vec<&Post> = posts
        .iter()
        .filter(|p| p.sent >= down && p.answered < restarting)
        .collect();
    let wrong: Vec<&&Post> = during
        .iter()
        .filter(|p| !matches!(p.answer, None | Some((503, _))))
        .collect();
    assert!(wrong.is_empty(), "answers during the outage: {wrong:?}");
    assert!(
        during.len() >= 20,
        "only {} posts during the outage",
        during.len()
    );
    assert!(
        readyz.iter().all(|s| *s == Some(503)),
        "/readyz during the outage: {readyz:?}"
    );

    // Everything acknowledged, before or after, starts once.
    let acked: HashSet<String> = posts
        .iter()
        .filter_map(|p| match &p.answer {
            Some((202, answer)) => answer["change"].as_str().map(str::to_owned),
            _ => None,
        })
        .collect();
    let db = connect(&url).await;
    let arrivals = all_started_once(&db, &runner, &acked, &HashSet::new()).await;
    let refused = during
        .iter()
        .filter(|p| matches!(p.answer, Some((503, _))))
        .count();
    eprintln!(
        "{} posts, {} acknowledged; during the {:.1} s outage {} posts: {refused} answered 503, {} unanswered; /readyz 503 {} times; accepting again {:.2?} s after PostgreSQL was back (per replica); {} starts, none twice",
        posts.len(),
        acked.len(),
        restarting.duration_since(down).as_secs_f64(),
        during.len(),
        during.len() - refused,
        readyz.len(),
        recovered
            .iter()
            .map(Duration::as_secs_f64)
            .collect::<Vec<_>>(),
        arrivals.len(),
    );
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_polled_repositories_are_shared_not_repeated() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(url) = database("fifty") else {
        return;
    };
    const REPOS: usize = 50;
    let base = tempfile::tempdir().expect("temp dir");
    let work = Work::new();
    work.commit(&[("src/a.rs", Some("a"))], "first");
    let names: Vec<String> = (0..REPOS).map(|i| format!("r{i:02}.git")).collect();
    let origins: Vec<_> = names
        .iter()
        .map(|name| {
            let origin = bare(base.path(), name);
            work.push(&origin, &["main"]);
            origin
        })
        .collect();
    let Some(daemon) = or_skip(GitDaemon::start(base.path())) else {
        return;
    };
    let (runner, runner_addr) = Runner::start().await.expect("runner");
    let triggers: Vec<(String, String)> = names
        .iter()
        .map(|name| {
            let pipeline = pipeline(&daemon.url(name), "queued", 1, runner_addr);
            (name.replace(".git", ".yaml"), pipeline)
        })
        .collect();
    let extra: String = std::iter::once("poll:\n".to_owned())
        .chain(
            names
                .iter()
                .map(|name| format!("  - url: {}\n    interval: 1s\n", daemon.url(name))),
        )
        .collect();
    let cluster = Cluster::start(&url, 3, &extra, &triggers).await;
    let db = connect(&url).await;
    until(
        Duration::from_secs(60),
        "every repository's baseline and every replica alive",
        async || {
            let baselines = count(&db, "SELECT count(*) FROM cursors WHERE git_ref = ''").await;
            let alive = count(
                &db,
                "SELECT count(*) FROM replicas WHERE seen_ms >= switchyard_now() - 5000",
            )
            .await;
            (baselines == REPOS as i64 && alive == 3).then_some(())
        },
    )
    .await;

    // Polling, counted: every replica's schedule comes round each repository three times
    // more. A replica looks at every repository it polls, but only the holder of its lease
    // asks the git server: of each round of looks at a repository (one per replica), one asks.
    const ROUNDS: f64 = 3.0;
    let looked_before = looks(&cluster).await;
    let before = cluster.ls_remotes().await;
    until(
        Duration::from_secs(60),
        "every replica to look at every repository three more times",
        async || {
            let now = looks(&cluster).await;
            let more = now
                .iter()
                .zip(&looked_before)
                .all(|(now, was)| now - was >= ROUNDS * REPOS as f64);
            more.then_some(())
        },
    )
    .await;
    let after = cluster.ls_remotes().await;
    let looked: Vec<f64> = looks(&cluster)
        .await
        .iter()
        .zip(&looked_before)
        .map(|(a, b)| a - b)
        .collect();
    let asked: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let total: f64 = asked.iter().sum();
    let rounds: f64 = looked.iter().sum::<f64>() / cluster.replicas.len() as f64;
    let leases = db
        .query("SELECT repository, owner FROM poll_leases", &[])
        .await
        .expect("poll_leases");
    let mut owned = vec![0usize; 3];
    let mut repositories = HashSet::new();
    for row in &leases {
        let (repository, owner): (String, String) = (row.get(0), row.get(1));
        let i = cluster
            .which(&owner)
            .unwrap_or_else(|| panic!("{repository} is leased to {owner}, no replica"));
        owned[i] += 1;
        repositories.insert(repository);
    }
    eprintln!(
        "{REPOS} repositories polled: looks per replica {looked:?}, ls-remote per replica {asked:?} (total {total}, one poller per repository would make about {rounds:.0}); repositories leased per replica {owned:?}"
    );
    assert_eq!(
        repositories.len(),
        REPOS,
        "every repository has one lease: {owned:?}"
    );
    assert_eq!(leases.len(), REPOS);
    assert!(
        owned.iter().filter(|&&n| n > 0).count() >= 2,
        "the repositories were not spread: {owned:?}"
    );
    assert!(
        total <= 1.5 * rounds,
        "{total} ls-remote in {rounds} rounds of looks: repositories polled by more than one replica"
    );
    assert!(
        total >= 0.5 * rounds,
        "{total} ls-remote in {rounds} rounds of looks: lease holders did not poll"
    );
    for (i, ((&n, &repos), &looks)) in asked.iter().zip(&owned).zip(&looked).enumerate() {
        let share = looks * repos as f64 / REPOS as f64;
        assert!(
            n <= 1.5 * share + 2.0,
            "replica {i} holds {repos} leases, looked {looks} times and asked {n} times"
        );
    }

    // A push to each repository starts its pipeline once.
    let second = work.commit(&[("src/b.rs", Some("b"))], "second");
    for origin in &origins {
        work.push(origin, &["main"]);
    }
    let pushed = Instant::now();
    runner
        .wait_for(Duration::from_secs(30), |a| {
            (a.len() >= REPOS).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("{} of {REPOS} pushes started", runner.arrivals().len()));
    let all_started = pushed.elapsed();
    until(
        Duration::from_secs(30),
        "every start to succeed",
        async || {
            let done = count(&db, "SELECT count(*) FROM starts WHERE state = 'succeeded'").await;
            (done == REPOS as i64).then_some(())
        },
    )
    .await;
    let arrivals = runner.arrivals();
    let twice: Vec<(String, usize)> = per_start(&arrivals)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(twice.is_empty(), "started more than once: {twice:?}");
    assert_eq!(arrivals.len(), REPOS);
    let started: HashSet<&str> = arrivals.iter().map(|a| a.repository.as_str()).collect();
    assert_eq!(started.len(), REPOS, "one start per repository");
    assert!(arrivals.iter().all(|a| a.sha == second));
    assert_eq!(
        count(&db, "SELECT count(*) FROM starts").await,
        REPOS as i64
    );
    eprintln!(
        "all {REPOS} pushes started within {:.2} s of the last push",
        all_started.as_secs_f64()
    );
    drop(cluster);
}

/// The operator's session belongs to the replicas together: a cookie one replica gave works on
/// the others, and a logout on any ends it on all of them (a load balancer may send the next
/// request anywhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_replica_ends_the_session_on_the_others() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(url) = database("sessions") else {
        return;
    };
    let token_dir = tempfile::tempdir().expect("temp dir");
    let token_file = token_dir.path().join("operator");
    std::fs::write(&token_file, "operator-token-of-the-replicas").expect("token");
    let cluster = Cluster::start(
        &url,
        2,
        &format!("operator_token: file:{}\n", token_file.display()),
        &[],
    )
    .await;
    let [a, b] = cluster.addrs()[..] else {
        panic!("two replicas");
    };
    let form = |addr: SocketAddr, cookie: Option<&str>| {
        let mut headers = vec![
            ("origin".to_owned(), format!("http://{addr}")),
            (
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
        ];
        if let Some(c) = cookie {
            headers.push(("cookie".to_owned(), c.to_owned()));
        }
        headers
    };
    let login = try_exchange(
        a,
        "POST",
        "/login",
        &form(a, None),
        b"token=operator-token-of-the-replicas".to_vec(),
    )
    .await
    .expect("login");
    assert_eq!(login.status, 303, "{}", login.body);
    let cookie = login
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let page = |addr: SocketAddr| {
        let cookie = cookie.clone();
        async move {
            try_exchange(
                addr,
                "GET",
                "/",
                &[("cookie".to_owned(), cookie)],
                Vec::new(),
            )
            .await
            .expect("the page")
            .body
        }
    };
    let on_b = page(b).await;
    let at = on_b
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("replica b does not know the session:\n{on_b}"));
    let rest = &on_b[at + "name=\"csrf\" value=\"".len()..];
    let csrf = rest[..rest.find('"').expect("a quote")].to_owned();
    let out = try_exchange(
        b,
        "POST",
        "/logout",
        &form(b, Some(&cookie)),
        format!("csrf={csrf}").into_bytes(),
    )
    .await
    .expect("logout");
    assert_eq!(out.status, 303, "{}", out.body);
    for (name, addr) in [("a", a), ("b", b)] {
        let body = page(addr).await;
        assert!(
            !body.contains("name=\"csrf\"") && body.contains("action=\"/login\""),
            "replica {name} still knows the session:\n{body}"
        );
    }
}

/// A network partition between one replica and PostgreSQL (nothing passes, no RST, no FIN): the
/// cut-off replica answers 503 within a sender's 10 s instead of hanging, the other replica
/// takes its claimed starts over once its lease runs out, and when the network heals it takes
/// deliveries again without taking the other's work. Nothing acknowledged is lost; only starts
/// that were running on the cut-off replica may run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_replica_answers_503_its_work_is_taken_over_and_it_rejoins() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(url) = database("partition") else {
        return;
    };
    let at = url
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(host, _)| host.to_owned())
        .expect("host:port in the URL");
    let upstream: SocketAddr = at.parse().expect("a loopback address");
    let partition = switchyard_lab::Partition::start(upstream)
        .await
        .expect("a proxy");
    let cut_url = url.replacen(&at, &partition.addr().to_string(), 1);
    // Each start is in flight for 1.5 s, so that the replica cut off has some running.
    let (slow, slow_addr) = Runner::holding(Duration::from_millis(1500))
        .await
        .expect("runner");
    let triggers = [(
        "slow.yaml".to_owned(),
        pipeline(API, "parallel", 64, slow_addr),
    )];
    let cluster = Cluster::start_each(&[cut_url, url.clone()], "", &triggers).await;
    let [cut_off, live] = cluster.addrs()[..] else {
        panic!("two replicas");
    };
    let db = connect(&url).await;
    let mut acked = HashSet::new();
    let post = async |addr: SocketAddr, n: u64| {
        let body = change_in(API, "refs/heads/main", &sha(n));
        try_post(addr, &format!("partition-{n}"), &body).await
    };
    // The other replica hears of every start at once (LISTEN/NOTIFY) and, with the shorter
    // way to the database, would claim them all: it is paused (SIGSTOP) while the replica to
    // be cut off takes its changes and starts them.
    let signal = |sig: &str, pid: u32| {
        let sent = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill {sig} {pid}");
    };
    signal("-STOP", cluster.replicas[1].pid());
    for n in 1..=20 {
        match post(cut_off, n).await {
            Some((202, answer)) => {
                acked.insert(answer["change"].as_str().expect("an id").to_owned());
            }
            other => panic!("change {n}: {other:?}"),
        }
    }
    let name = cluster.replicas[0].pid();
    let mine = format!("SELECT id FROM starts WHERE state = 'running' AND owner LIKE '%-{name}-%'");
    until(
        Duration::from_secs(30),
        "the replica to be cut off to run starts",
        async || (!texts(&db, &mine).await.is_empty()).then_some(()),
    )
    .await;
    signal("-CONT", cluster.replicas[1].pid());

    partition.cut();
    let in_flight: HashSet<String> = texts(&db, &mine).await.into_iter().collect();
    // The cut-off replica answers, and says it cannot take the change, before a sender's 10 s.
    let asked = Instant::now();
    let answer = post(cut_off, 100).await;
    let waited = asked.elapsed();
    assert!(
        matches!(answer, Some((503, _))),
        "a delivery to the cut-off replica: {answer:?} after {waited:?}"
    );
    eprintln!("partition: the cut-off replica answered 503 after {waited:?}");
    assert!(waited < Duration::from_secs(9), "answered after {waited:?}");
    let asked = Instant::now();
    let ready = try_request(cut_off, "GET", "/readyz", &[], Vec::new()).await;
    assert!(
        matches!(ready, Ok((503, _))),
        "/readyz of the cut-off replica: {ready:?}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(9),
        "{:?}",
        asked.elapsed()
    );
    // The other goes on, and runs the cut-off replica's claimed starts once its lease is over.
    for n in 21..=30 {
        match post(live, n).await {
            Some((202, answer)) => {
                acked.insert(answer["change"].as_str().expect("an id").to_owned());
            }
            other => panic!("change {n} to the live replica: {other:?}"),
        }
    }
    all_started_once(&db, &slow, &acked, &in_flight).await;

    // Healed: the cut-off replica is ready again and takes deliveries; it took nothing from the
    // live replica meanwhile (every start ran once but those it had in flight).
    partition.heal();
    until(
        Duration::from_secs(30),
        "the healed replica to be ready",
        async || {
            matches!(
                try_request(cut_off, "GET", "/readyz", &[], Vec::new()).await,
                Ok((200, _))
            )
            .then_some(())
        },
    )
    .await;
    match post(cut_off, 31).await {
        Some((202, answer)) => {
            acked.insert(answer["change"].as_str().expect("an id").to_owned());
        }
        other => panic!("a delivery after the heal: {other:?}"),
    }
    all_started_once(&db, &slow, &acked, &in_flight).await;
}
