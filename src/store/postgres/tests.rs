//! PostgreSQL backend tests that need two processes' worth of stores on one database: two
//! `Store` handles opened on the same URL are two replicas (two connections, two owners), so
//! these check what the database must decide between replicas. Each test has a fresh database
//! of the lab's server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::backend::{HEARTBEAT, LEASE};
use super::{parse, tls};
use crate::event::SourceKind;
use crate::outcome::IntakeOutcome;
use crate::store::tests::{fresh_database, numbered_event, push_event, request, runtime};
use crate::store::{
    ClaimRequest, Finish, Location, PostgresAdmin, Role, StartState, Store, StoreError,
};

fn replica(url: &str) -> Store {
    Store::open_at(
        &Location::Postgres(url.to_owned()),
        Role::Serve,
        Arc::new(Notify::new()),
    )
}

#[test]
fn a_database_from_a_newer_switchyard_is_refused_and_migrations_run_once() {
    let Some(url) = fresh_database() else { return };
    let rt = runtime();
    // Four processes opening a new database at once: one migrates, the others wait for it.
    let stores: Vec<Store> = (0..4).map(|_| replica(&url)).collect();
    rt.block_on(async {
        let opened = futures_util::future::join_all(stores.iter().map(|s| s.probe())).await;
        assert!(opened.iter().all(Result::is_ok), "{opened:?}");
    });
    let admin = PostgresAdmin::open(&url).expect("admin");
    assert_eq!(
        admin
            .count("SELECT version::int8 FROM switchyard_schema")
            .expect("version"),
        super::MIGRATIONS.len() as i64
    );
    admin
        .execute("UPDATE switchyard_schema SET version = 99")
        .expect("pretend a newer switchyard migrated");
    let err = rt
        .block_on(Store::open_checked_at(
            &Location::Postgres(url.clone()),
            Role::Serve,
            Arc::default(),
        ))
        .expect_err("a newer schema is refused");
    let text = err.to_string();
    assert!(
        matches!(err, StoreError::Open { .. }) && text.contains("newer than this switchyard"),
        "{text}"
    );
    assert!(!text.contains("switchyard@"), "no user in {text}");
}

/// A replica not yet upgraded calls the intake function without decisions or traceparent: it
/// still stores the change and its start, through the one intake of this schema.
#[test]
fn the_intake_of_a_replica_not_yet_upgraded_still_stores() {
    let Some(url) = fresh_database() else { return };
    let rt = runtime();
    rt.block_on(replica(&url).probe()).expect("migrated");
    let admin = PostgresAdmin::open(&url).expect("admin");
    admin
        .execute(
            "SELECT * FROM switchyard_intake(NULL, NULL, 'c-old', 'github.com/acme/api', '{}',
                 1, 'webhook', NULL, NULL, false, 'refs/heads/main', 'a', 'b', 'refs/heads/main',
                 ARRAY['s-old'], ARRAY['build'], ARRAY[false], 1)",
        )
        .expect("the old signature answers");
    assert_eq!(
        admin
            .count("SELECT count(*) FROM changes WHERE id = 'c-old' AND decisions IS NULL")
            .expect("count"),
        1
    );
    assert_eq!(
        admin
            .count("SELECT count(*) FROM starts WHERE id = 's-old' AND state = 'pending'")
            .expect("count"),
        1
    );
}

#[test]
fn an_unreachable_database_fails_requests_naming_it_without_credentials() {
    let rt = runtime();
    let url = "postgres://yard:hunter2@127.0.0.1:1/yard";
    let err = rt
        .block_on(Store::open_checked_at(
            &Location::Postgres(url.into()),
            Role::Serve,
            Arc::default(),
        ))
        .expect_err("nothing listens on port 1");
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:1/yard"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn the_same_change_from_two_replicas_is_one_change_with_one_start() {
    let Some(url) = fresh_database() else { return };
    let rt = runtime();
    let (a, b) = (replica(&url), replica(&url));
    rt.block_on(async {
        for n in 0..200 {
            // The same push, with different delivery ids, to both replicas at once.
            let event = numbered_event(n, SourceKind::Webhook);
            let mut other = numbered_event(n, SourceKind::Poll);
            other.received_at = event.received_at;
            let ra = request(event, Some(&format!("a{n}")), &["p"]);
            let rb = request(other, Some(&format!("b{n}")), &["p"]);
            let (oa, ob) = tokio::join!(a.intake(ra), b.intake(rb));
            let (oa, ob) = (oa.expect("a"), ob.expect("b"));
            let accepted = [&oa, &ob]
                .iter()
                .filter(|o| matches!(o, IntakeOutcome::Accepted { .. }))
                .count();
            assert_eq!(accepted, 1, "change {n}: {oa:?} / {ob:?}");
        }
    });
    let admin = PostgresAdmin::open(&url).expect("admin");
    assert_eq!(admin.count("SELECT count(*) FROM changes").expect("n"), 200);
    assert_eq!(admin.count("SELECT count(*) FROM starts").expect("n"), 200);
    assert_eq!(
        admin.count("SELECT count(*) FROM sightings").expect("n"),
        200
    );
}

#[test]
fn a_ref_state_one_replica_stored_is_that_change_on_another() {
    let Some(url) = fresh_database() else { return };
    let rt = runtime();
    let (a, b) = (replica(&url), replica(&url));
    let repo = "https://github.com/acme/api";
    let (one, two, three) = ("1".repeat(40), "2".repeat(40), "3".repeat(40));
    // A webhook on replica a: main moved 1 -> 3.
    let webhook = push_event(
        repo,
        ("refs/heads/main", &one, &three),
        SourceKind::Webhook,
        1,
    );
    let IntakeOutcome::Accepted { change_id, .. } = rt
        .block_on(a.intake(request(webhook, None, &["p"])))
        .expect("a")
    else {
        panic!("accepted")
    };
    // Polling on replica b saw main at 3 coming from 2 (another `before`, another id): the
    // same ref state, so the same change, and no second start.
    let polled = push_event(repo, ("refs/heads/main", &two, &three), SourceKind::Poll, 2);
    assert_ne!(polled.id, change_id);
    let outcome = rt
        .block_on(b.intake(request(polled, None, &["p"])))
        .expect("b");
    assert_eq!(
        outcome,
        IntakeOutcome::Duplicate {
            change_id,
            why: crate::outcome::DuplicateOf::Change
        }
    );
    let admin = PostgresAdmin::open(&url).expect("admin");
    assert_eq!(admin.count("SELECT count(*) FROM starts").expect("n"), 1);
}

#[test]
fn superseding_keeps_one_waiting_start_per_ref_across_replicas() {
    let Some(url) = fresh_database() else { return };
    let rt = runtime();
    let (a, b) = (replica(&url), replica(&url));
    // One pipeline watching two repositories: their pushes to `main` take different ref locks,
    // so only the lock of (pipeline, ref) orders the superseding.
    let superseding = |n: u64| {
        let repo = ["https://github.com/acme/api", "https://github.com/acme/web"][n as usize % 2];
        let after = format!("{:040x}", n + 1);
        let event = push_event(
            repo,
            ("refs/heads/main", &"1".repeat(40), &after),
            SourceKind::Webhook,
            1,
        );
        let mut req = request(event, None, &["s"]);
        req.starts[0].supersede = true;
        req
    };
    rt.block_on(async {
        // Pushes of `main` stored by both replicas at once, each superseding the waiting ones.
        for n in 0..100 {
            let (x, y) = tokio::join!(
                a.intake(superseding(2 * n)),
                b.intake(superseding(2 * n + 1))
            );
            x.expect("a");
            y.expect("b");
        }
    });
    let admin = PostgresAdmin::open(&url).expect("admin");
    assert_eq!(
        admin
            .count("SELECT count(*) FROM starts WHERE state = 'pending'")
            .expect("n"),
        1,
        "one waiting start of the ref, the newest"
    );
    assert_eq!(
        admin
            .count("SELECT count(*) FROM starts WHERE state = 'superseded'")
            .expect("n"),
        199
    );
}

#[test]
fn a_pipeline_s_limit_holds_across_replicas() {
    let Some(url) = fresh_database() else { return };
    let rt = runtime();
    let (a, b) = (replica(&url), replica(&url));
    let ids: Vec<String> = rt.block_on(async {
        let mut ids = Vec::new();
        for n in 0..10 {
            let event = numbered_event(n, SourceKind::Webhook);
            match a
                .intake(request(event, None, &["q"]))
                .await
                .expect("intake")
            {
                IntakeOutcome::Accepted { starts, .. } => ids.extend(starts),
                other => panic!("{other:?}"),
            }
        }
        ids
    });
    let want = |ids: &[String], limit| -> Vec<ClaimRequest> {
        ids.iter()
            .map(|id| ClaimRequest {
                id: id.clone(),
                pipeline: "q".into(),
                limit,
            })
            .collect()
    };
    rt.block_on(async {
        // Both replicas ask for every start at once, with a limit of 3: 3 run, in all.
        let (ca, cb) = tokio::join!(a.claim_within(want(&ids, 3)), b.claim_within(want(&ids, 3)));
        let (ca, cb) = (ca.expect("a"), cb.expect("b"));
        assert_eq!(ca.len() + cb.len(), 3, "{ca:?} {cb:?}");
        // Nothing more while they run.
        assert!(a.claim_within(want(&ids, 3)).await.expect("a").is_empty());
        // One finishes: one more may start, the earliest still waiting. Only the replica that
        // claimed a start records how it ended.
        let (done, owner, other) = match ca.first() {
            Some(c) => (c.id.clone(), &a, &b),
            None => (cb[0].id.clone(), &b, &a),
        };
        assert!(
            !other
                .finish(&done, Finish::Succeeded { run: None })
                .await
                .expect("finish"),
            "another replica's start"
        );
        assert!(
            owner
                .finish(&done, Finish::Succeeded { run: None })
                .await
                .expect("finish")
        );
        let next = b.claim_within(want(&ids, 3)).await.expect("b");
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].id, ids[3]);
    });
}

#[test]
fn a_dead_replica_s_claims_are_reopened_after_its_lease_and_a_repository_has_one_poller() {
    let Some(url) = fresh_database() else { return };
    let rt = runtime();
    let (a, b) = (replica(&url), replica(&url));
    let admin = PostgresAdmin::open(&url).expect("admin");
    let event = numbered_event(1, SourceKind::Webhook);
    let IntakeOutcome::Accepted { starts, .. } = rt
        .block_on(a.intake(request(event, None, &["p"])))
        .expect("intake")
    else {
        panic!("accepted")
    };
    assert_eq!(
        rt.block_on(a.claim(starts.clone())).expect("claim").len(),
        1
    );
    // One replica holds a repository: the other may not poll it at the same time.
    let repo = "git.example/acme/api";
    let (la, lb) = rt.block_on(async { tokio::join!(a.poll_lease(repo), b.poll_lease(repo)) });
    let (la, lb) = (la.expect("a"), lb.expect("b"));
    assert!(!(la && lb), "both replicas hold {repo}");
    // The claim's replica dies: its leases stop being renewed. (A handle dropped here would
    // give its claims back as it leaves, which a SIGKILL never does: instead the rows are made
    // to look like a dead replica's, whose last renewal is LEASE ago.)
    admin
        .execute(&format!(
            "UPDATE starts SET owner = 'dead', lease_until_ms = switchyard_now() - 1;
             UPDATE poll_leases SET owner = 'dead', until_ms = switchyard_now() - {}",
            LEASE.as_millis()
        ))
        .expect("age the leases");
    let began = Instant::now();
    while !admin
        .starts(&[StartState::Pending])
        .expect("starts")
        .iter()
        .any(|s| starts.contains(&s.id))
    {
        // A replica judges others' leases once it has been connected for a lease itself (see
        // `a_replica_that_just_connected_leaves_the_others_a_lease_to_renew_before_taking_over`):
        // these two have just connected.
        assert!(
            began.elapsed() < LEASE + Duration::from_secs(2),
            "no heartbeat reopened the dead replica's start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Reopened by a heartbeat.
    assert_eq!(rt.block_on(b.claim(starts)).expect("claim").len(), 1);
    // The repository's lease is free again: exactly one of the live replicas takes it.
    let (la, lb) = rt.block_on(async { tokio::join!(a.poll_lease(repo), b.poll_lease(repo)) });
    assert!(la.expect("a") ^ lb.expect("b"), "one replica polls {repo}");
}

#[test]
fn a_replica_that_just_connected_leaves_the_others_a_lease_to_renew_before_taking_over() {
    let Some(url) = fresh_database() else {
        return;
    };
    let rt = runtime();
    let location = Location::Postgres(url.clone());
    // A start claimed by another process that does not renew (a tool has no heartbeat), its
    // lease run out: what a live replica's start looks like to the others right after an
    // outage of the database, before that replica has reconnected and renewed it.
    let other = Store::open_at(&location, Role::Tool, Arc::new(Notify::new()));
    let outcome = rt
        .block_on(other.intake(request(
            numbered_event(1, SourceKind::Webhook),
            None,
            &["a"],
        )))
        .expect("intake");
    let IntakeOutcome::Accepted { starts, .. } = outcome else {
        panic!("{outcome:?}");
    };
    let claimed = rt.block_on(other.claim(starts.clone())).expect("claim");
    assert_eq!(claimed.len(), 1);
    let admin = PostgresAdmin::open(&url).expect("admin");
    admin
        .execute("UPDATE starts SET lease_until_ms = 0")
        .expect("the lease runs out");
    let state = || admin.start(&starts[0]).expect("the start").state;

    // A replica that connects now (as every replica does once the database is back) leaves it
    // running through its first heartbeats, though the lease has run out...
    let connecting = Instant::now();
    let serve = Store::open_at(&location, Role::Serve, Arc::new(Notify::new()));
    rt.block_on(serve.open_starts(1))
        .expect("the replica connects");
    let connected = Instant::now();
    // Two heartbeats, counted: each renews the replica's row in `replicas` before it judges
    // others' leases, so the third renewal seen means that two have judged (the tool has no
    // heartbeat: the row is the replica's).
    let renewed = || {
        admin
            .count("SELECT coalesce(max(seen_ms), 0) FROM replicas")
            .expect("replicas")
    };
    let mut renewals: Vec<i64> = Vec::new();
    while renewals.len() < 3 {
        assert!(
            connected.elapsed() < HEARTBEAT * 4,
            "the replica renewed only at {renewals:?}"
        );
        let now = renewed();
        if now > renewals.last().copied().unwrap_or(0) {
            renewals.push(now);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        state(),
        StartState::Running,
        "taken before its owner could renew"
    );

    // ...and takes it over once it has been connected a lease's time: its owner never renewed.
    while state() == StartState::Running {
        assert!(
            connected.elapsed() < LEASE + HEARTBEAT * 3,
            "a start whose owner never renewed was not taken over"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(state(), StartState::Pending);
    assert!(connecting.elapsed() >= LEASE, "{:?}", connecting.elapsed());
    drop((serve, other));
}

#[test]
fn the_configuration_check_and_the_driver_agree_on_which_urls_are_usable() {
    // `switchyard check` reads store.postgres without the driver (the core crate has none);
    // the store parses it with the driver when it connects. Both must refuse the same strings.
    for url in [
        "postgres://u:secret@db.example:6543/yard",
        "postgresql://u@db/yard?sslmode=verify-full&sslrootcert=/etc/ca.pem",
        "postgres://u@[::1]:5433/yard?connect_timeout=5&application_name=x",
        "host=db user=u dbname=yard",
        "host=db port=6543 sslmode=require",
        "mysql://db/yard",
        "postgres://db/yard?sslmode=bogus",
        "postgres://db/yard?colour=blue",
        "postgres://db:port/yard",
        "postgres:///yard",
        "host=db colour=blue",
        "nonsense",
    ] {
        assert_eq!(
            crate::config::postgres::parse(url).is_ok(),
            parse(url).is_ok(),
            "{url}"
        );
    }
}

#[test]
fn verify_modes_and_root_certificates_are_read_by_switchyard() {
    let (config, root) =
        parse("postgres://u@db/yard?sslmode=verify-full&sslrootcert=/etc/ca.pem").expect("url");
    assert_eq!(
        config.get_ssl_mode(),
        tokio_postgres::config::SslMode::Require
    );
    assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
    let err = tls(Some("/nonexistent/ca.pem"))
        .err()
        .expect("missing file");
    assert!(err.contains("sslrootcert /nonexistent/ca.pem"), "{err}");
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (Debian's openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tls_verifies_the_server_against_the_certificate_the_url_names() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let Some(server) = switchyard_lab::or_skip(switchyard_lab::Postgres::start()) else {
        return;
    };
    // A CA and a server certificate for 127.0.0.1 signed by it.
    let certs = tempfile::tempdir().expect("a temp dir");
    let dir = certs.path();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=switchyard test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext",
            "-out",
            "server.pem",
        ],
    );
    // The server reads them as its own user.
    let owner = std::fs::metadata(server.dir()).expect("the server's dir");
    for name in ["server.pem", "server.key"] {
        let to = server.dir().join(name);
        std::fs::copy(dir.join(name), &to).expect("copy");
        std::os::unix::fs::chown(&to, Some(owner.uid()), Some(owner.gid())).expect("chown");
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let pem = server.dir().join("server.pem");
    let key = server.dir().join("server.key");
    // One statement per call: ALTER SYSTEM refuses a transaction block.
    for sql in [
        format!("ALTER SYSTEM SET ssl_cert_file = '{}'", pem.display()),
        format!("ALTER SYSTEM SET ssl_key_file = '{}'", key.display()),
        "ALTER SYSTEM SET ssl = on".to_owned(),
        "SELECT pg_reload_conf()".to_owned(),
    ] {
        server.psql("postgres", &sql).expect("turn TLS on");
    }
    let verified = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        server.url(),
        dir.join("ca.pem").display()
    );
    // The reload reaches new connections within moments.
    let began = Instant::now();
    let admin = loop {
        match PostgresAdmin::open(&verified) {
            Ok(admin) => break admin,
            Err(e) if began.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("no TLS connection: {e}"),
        }
    };
    assert_eq!(
        admin
            .count("SELECT count(*) FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl")
            .expect("pg_stat_ssl"),
        1,
        "the connection is encrypted"
    );
    // The store itself over TLS.
    runtime()
        .block_on(Store::open_checked_at(
            &Location::Postgres(verified),
            Role::Tool,
            Arc::default(),
        ))
        .expect("the store opens over TLS");
    // A certificate no trusted root signed is refused (the Mozilla roots by default).
    let unverified = format!("{}?sslmode=require", server.url());
    let err = PostgresAdmin::open(&unverified).expect_err("an unknown issuer is refused");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

/// A start one replica makes wakes the other replicas' dispatchers at once (LISTEN/NOTIFY),
/// not at their next sweep.
#[test]
fn a_start_made_by_one_replica_wakes_the_others() {
    let Some(url) = fresh_database() else { return };
    let rt = runtime();
    let location = Location::Postgres(url.clone());
    let woken = Arc::new(Notify::new());
    let a = replica(&url);
    rt.block_on(a.probe()).expect("a is up");
    let b = Store::open_at(&location, Role::Serve, Arc::clone(&woken));
    rt.block_on(async {
        // b's listener wakes it once when it starts listening (for what it may have missed).
        tokio::time::timeout(Duration::from_secs(10), woken.notified())
            .await
            .expect("b listens");
        let heard = woken.notified();
        let made = a
            .intake(request(
                numbered_event(1, SourceKind::Webhook),
                None,
                &["a"],
            ))
            .await
            .expect("an intake with a start");
        assert!(matches!(made, IntakeOutcome::Accepted { .. }), "{made:?}");
        let asked = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), heard)
            .await
            .expect("b hears of the start made by a");
        assert!(asked.elapsed() < HEARTBEAT * 2, "{:?}", asked.elapsed());
    });
    drop(b);
}
