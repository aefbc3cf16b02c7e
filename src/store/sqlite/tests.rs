//! SQLite backend tests: group commit, wake-ups, schema versions, an unavailable state
//! directory, and what the model test (`store/tests.rs`) cannot see.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Waker};

use rusqlite::Connection;
use tokio::sync::Notify;

use super::{Admin, MIGRATIONS};
use crate::event::{ChangeEvent, SourceKind};
use crate::outcome::{DuplicateOf, IntakeOutcome, start_id};
use crate::store::DB_FILE;
use crate::store::tests::*;
use crate::store::{Finish, PlannedStart, Role, StartState, Store, StoreError};

// ---------------------------------------------------------------------------------------------
// Unit tests
// ---------------------------------------------------------------------------------------------

#[test]
fn supersede_replaces_open_starts_of_the_same_pipeline_and_ref_only() {
    let ops = [
        // a@main, b@main, a@dev pending; a@main failed.
        Op::Intake {
            event: 0,
            kind: 0,
            delivery: None,
            starts: vec![(0, false), (1, false)],
        },
        Op::Intake {
            event: 2,
            kind: 0,
            delivery: None,
            starts: vec![(0, false)],
        },
        Op::Finish {
            k: 0,
            how: Finish::Retry {
                at_ms: 5,
                error: "e0".into(),
            },
        },
        // The second push on main supersedes a (the failed one too) but not b, nor a@dev.
        Op::Intake {
            event: 1,
            kind: 1,
            delivery: None,
            starts: vec![(0, true), (1, false)],
        },
    ];
    run(&ops).expect("store and model agree");

    // And the expected states, spelled out, so a model mistake cannot hide a store one.
    let h = Harness::new();
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Intake { event, starts, .. } => {
                // Each from the webhook (KINDS[0]), without a delivery id.
                let req = pool_request(&(*event, 0, None, starts.clone()), BASE_MS + step as i64);
                let want = model.intake(&req);
                assert_eq!(h.rt.block_on(h.store.intake(req)).expect("intake"), want);
            }
            Op::Finish { how, .. } => {
                let first = model.starts[0].id.clone();
                model.finish(&first, how);
                assert!(
                    h.rt.block_on(h.store.finish(&first, how.clone()))
                        .expect("finish")
                );
            }
            _ => unreachable!("only intakes and finishes above"),
        }
    }
    let states: Vec<(String, String, StartState)> = h
        .admin
        .starts(&[])
        .expect("starts")
        .into_iter()
        .map(|r| (r.pipeline, r.git_ref, r.state))
        .collect();
    let main = "refs/heads/main".to_owned();
    let dev = "refs/heads/dev".to_owned();
    assert_eq!(
        states,
        [
            ("a".into(), main.clone(), StartState::Superseded),
            ("b".into(), main.clone(), StartState::Pending),
            ("a".into(), dev, StartState::Pending),
            ("a".into(), main.clone(), StartState::Pending),
            ("b".into(), main, StartState::Pending),
        ]
    );
    // Finishing a superseded start changes nothing.
    let superseded = model.starts[0].id.clone();
    assert!(
        !h.rt
            .block_on(h.store.finish(&superseded, Finish::Succeeded { run: None }))
            .expect("finish")
    );
    assert_eq!(
        h.admin.start(&superseded).expect("start").state,
        StartState::Superseded
    );
}

#[test]
fn concurrent_intakes_all_land() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let notify = Arc::new(Notify::new());
    let store = Store::open(dir.path(), Role::Serve, notify.clone());
    const N: u64 = 200;
    // Every change twice, from a webhook and from a poll, each with its own delivery id.
    let outcomes = rt.block_on(async {
        let mut tasks = Vec::new();
        for n in 0..N {
            for kind in [SourceKind::Webhook, SourceKind::Poll] {
                let store = store.clone();
                let delivery = format!("{kind}-{n}");
                tasks.push(tokio::spawn(async move {
                    let req = request(numbered_event(n, kind), Some(&delivery), &["a"]);
                    store.intake(req).await
                }));
            }
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.expect("the intake task ran"));
        }
        outcomes
    });
    let mut accepted = BTreeSet::new();
    let mut duplicates = BTreeSet::new();
    for outcome in outcomes {
        match outcome.expect("every intake succeeds") {
            IntakeOutcome::Accepted { change_id, starts } => {
                assert_eq!(starts, [start_id(&change_id, "a")]);
                assert!(accepted.insert(change_id), "accepted twice");
            }
            IntakeOutcome::Duplicate {
                change_id,
                why: DuplicateOf::Change,
            } => assert!(duplicates.insert(change_id), "a duplicate twice"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let ids: BTreeSet<String> = (0..N)
        .map(|n| numbered_event(n, SourceKind::Webhook).id)
        .collect();
    assert_eq!(accepted, ids, "each change accepted exactly once");
    assert_eq!(duplicates, ids, "and reported once as a duplicate");
    assert!(notified_now(&notify), "new starts wake the dispatcher");

    let admin = Admin::open(dir.path()).expect("admin");
    let starts = admin.starts(&[StartState::Pending]).expect("starts");
    assert_eq!(starts.len(), N as usize);
    for id in &ids {
        assert!(admin.change(id).expect("change").is_some(), "{id} stored");
        let sources: BTreeSet<String> = admin
            .sightings(id)
            .expect("sightings")
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(sources, BTreeSet::from(["poll".into(), "webhook".into()]));
    }
}

#[test]
fn queued_requests_are_committed_in_one_transaction() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
    rt.block_on(store.prune_deliveries(0))
        .expect("the writer opens the database");

    // Hold the write lock so that the writer blocks in its first batch while every other
    // request queues up behind it.
    let db = dir.path().join(DB_FILE);
    let blocker = Connection::open(&db).expect("a second connection");
    blocker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("the write lock");
    const N: u64 = 200;
    let mut pending = Vec::new();
    for n in 0..N {
        let req = request(
            numbered_event(n, SourceKind::Webhook),
            Some(&format!("d{n}")),
            &["a"],
        );
        let mut fut = Box::pin(store.intake(req));
        assert!(!ready_now(fut.as_mut()), "answered before the commit");
        pending.push(fut);
    }
    blocker.execute_batch("COMMIT").expect("release the lock");
    let outcomes = rt.block_on(async {
        let mut outcomes = Vec::new();
        for fut in pending {
            outcomes.push(fut.await);
        }
        outcomes
    });
    for outcome in outcomes {
        assert!(
            matches!(outcome, Ok(IntakeOutcome::Accepted { .. })),
            "{outcome:?}"
        );
    }

    // At most two transactions: what the writer had taken when it blocked, and the rest.
    // Requests of one transaction share its clock reading.
    let admin = Admin::open(dir.path()).expect("admin");
    let rows = admin.starts(&[]).expect("starts");
    assert_eq!(rows.len(), N as usize);
    let stamps: BTreeSet<i64> = rows.iter().map(|r| r.created_ms).collect();
    assert!(stamps.len() <= 2, "{} distinct commit times", stamps.len());
    // Each commit appends every page it changed to the write-ahead log; a commit per request
    // would append well over a thousand frames here.
    let wal = std::fs::metadata(dir.path().join(format!("{DB_FILE}-wal")))
        .expect("the write-ahead log")
        .len();
    let page: i64 = blocker
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .expect("page size");
    let frames = wal.saturating_sub(32) / (page as u64 + 24);
    assert!(frames < 400, "{frames} log frames for {N} intakes");
}

#[test]
fn the_dispatcher_is_woken_only_when_there_is_new_work() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let notify = Arc::new(Notify::new());
    let store = Store::open(dir.path(), Role::Serve, notify.clone());
    let intake = |req| rt.block_on(store.intake(req)).expect("intake");

    // A change that starts nothing.
    let out = intake(request(
        pool_event(0, SourceKind::Webhook, BASE_MS),
        None,
        &[],
    ));
    assert!(matches!(out, IntakeOutcome::Accepted { ref starts, .. } if starts.is_empty()));
    assert!(!notified_now(&notify), "no start, no wake-up");

    // A change that starts something.
    let out = intake(request(
        pool_event(1, SourceKind::Webhook, BASE_MS),
        Some("d1"),
        &["a"],
    ));
    let IntakeOutcome::Accepted { starts, .. } = out else {
        panic!("{out:?}")
    };
    assert!(notified_now(&notify), "a new start wakes the dispatcher");
    assert!(!notified_now(&notify), "once");

    // The same change from another source, and the same delivery again: nothing new.
    let out = intake(request(
        pool_event(1, SourceKind::Poll, BASE_MS),
        None,
        &["a"],
    ));
    assert!(matches!(
        out,
        IntakeOutcome::Duplicate {
            why: DuplicateOf::Change,
            ..
        }
    ));
    let out = intake(request(
        pool_event(2, SourceKind::Webhook, BASE_MS),
        Some("d1"),
        &["a"],
    ));
    assert!(matches!(
        out,
        IntakeOutcome::Duplicate {
            why: DuplicateOf::Delivery,
            ..
        }
    ));
    assert!(!notified_now(&notify), "duplicates start nothing");

    // Finishing a start that does not exist, or is not open, changes nothing.
    let finished = rt.block_on(store.finish(UNKNOWN, Finish::Succeeded { run: None }));
    assert!(matches!(finished, Ok(false)), "{finished:?}");
    let finished = rt.block_on(store.finish(&starts[0], Finish::Succeeded { run: None }));
    assert!(matches!(finished, Ok(true)), "{finished:?}");
    while notified_now(&notify) {}
    let finished = rt.block_on(store.finish(&starts[0], Finish::Succeeded { run: None }));
    assert!(matches!(finished, Ok(false)), "{finished:?}");
    assert!(!notified_now(&notify), "nothing changed, no wake-up");
}

fn user_version(db: &Path) -> i64 {
    Connection::open(db)
        .expect("a direct connection")
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version")
}

#[test]
fn a_database_from_a_newer_switchyard_is_refused() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join(DB_FILE);
    {
        let store = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
        let out = rt.block_on(store.intake(request(
            pool_event(0, SourceKind::Webhook, BASE_MS),
            None,
            &["a"],
        )));
        assert!(matches!(out, Ok(IntakeOutcome::Accepted { .. })), "{out:?}");
    }
    assert_eq!(user_version(&db), MIGRATIONS.len() as i64);
    // Opening a current database again migrates nothing and keeps the data.
    let admin = Admin::open(dir.path()).expect("a current database opens");
    assert_eq!(admin.starts(&[]).expect("starts").len(), 1);
    drop(admin);
    assert_eq!(user_version(&db), MIGRATIONS.len() as i64);

    Connection::open(&db)
        .expect("a direct connection")
        .pragma_update(None, "user_version", 99)
        .expect("set user_version");
    match Admin::open(dir.path()) {
        Err(StoreError::Open { message, .. }) => {
            assert!(message.contains("newer"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let store = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
    let out = rt.block_on(store.intake(request(
        pool_event(1, SourceKind::Webhook, BASE_MS),
        None,
        &["a"],
    )));
    assert!(
        matches!(&out, Err(StoreError::Open { message, .. }) if message.contains("newer")),
        "{out:?}"
    );
    drop(store);
    assert_eq!(user_version(&db), 99, "the newer database is left alone");
}

#[test]
fn an_unavailable_state_directory_fails_requests_until_it_can_be_created() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("a temp dir");
    let blocker = tmp.path().join("state");
    std::fs::write(&blocker, b"a file where a directory should be").expect("write the file");
    let state_dir = blocker.join("inner");
    let store = Store::open(&state_dir, Role::Serve, Arc::new(Notify::new()));
    let req = || {
        request(
            pool_event(0, SourceKind::Webhook, BASE_MS),
            Some("d0"),
            &["a"],
        )
    };

    let out = rt.block_on(store.intake(req()));
    let want_path = state_dir.join(DB_FILE).display().to_string();
    assert!(
        matches!(&out, Err(StoreError::Open { path, .. }) if *path == want_path),
        "{out:?}"
    );
    let open = rt.block_on(store.open_starts(8));
    assert!(matches!(open, Err(StoreError::Open { .. })), "{open:?}");

    std::fs::remove_file(&blocker).expect("remove the file");
    // Nothing of the failed request was kept: the same delivery is new.
    let out = rt.block_on(store.intake(req()));
    let Ok(IntakeOutcome::Accepted { starts, .. }) = out else {
        panic!("{out:?}")
    };
    let open = rt.block_on(store.open_starts(8)).expect("open starts");
    assert_eq!(
        open.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        starts
    );
    let admin = Admin::open(&state_dir).expect("admin");
    assert_eq!(admin.starts(&[]).expect("starts").len(), 1);
}

#[test]
fn a_failed_write_is_reported_as_such_and_keeps_nothing() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
    rt.block_on(store.prune_deliveries(0))
        .expect("the writer opens the database");
    // Make one kind of write fail inside the writer's transaction.
    refuse_pipeline_refused(dir.path());
    let event = pool_event(0, SourceKind::Webhook, BASE_MS);
    let change_id = event.id.clone();

    let out = rt.block_on(store.intake(request(event.clone(), Some("d0"), &["a", "refused"])));
    assert!(
        matches!(&out, Err(StoreError::Write(message)) if message.contains("refused by the test")),
        "a failed write must be reported as a write error, got {out:?}"
    );
    let admin = Admin::open(dir.path()).expect("admin");
    assert_eq!(admin.change(&change_id).expect("change"), None);
    assert_eq!(admin.starts(&[]).expect("starts"), []);

    // The writer recovers, and the delivery was not remembered.
    let out = rt.block_on(store.intake(request(event, Some("d0"), &["a"])));
    assert!(matches!(out, Ok(IntakeOutcome::Accepted { .. })), "{out:?}");
    assert_eq!(admin.starts(&[]).expect("starts").len(), 1);
}

#[test]
fn first_opens_at_the_same_time_all_succeed() {
    // A server and an `outbox` command starting together on a fresh state directory.
    const OPENERS: usize = 4;
    let mut failures = Vec::new();
    for _ in 0..20 {
        let dir = tempfile::tempdir().expect("a temp dir");
        let barrier = Arc::new(std::sync::Barrier::new(OPENERS));
        let openers: Vec<_> = (0..OPENERS)
            .map(|_| {
                let state_dir = dir.path().to_owned();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    Admin::open(&state_dir).map(drop)
                })
            })
            .collect();
        for opener in openers {
            if let Err(e) = opener.join().expect("the opener thread ran") {
                failures.push(e.to_string());
            }
        }
        let admin = Admin::open(dir.path()).expect("the database opens afterwards");
        assert_eq!(admin.starts(&[]).expect("starts"), []);
    }
    assert!(
        failures.is_empty(),
        "{} of {} opens failed, e.g. {:?}",
        failures.len(),
        20 * OPENERS,
        failures.first()
    );
}

#[test]
fn a_poll_stores_its_changes_and_moves_its_cursors_together() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let notify = Arc::new(Notify::new());
    let store = Store::open(dir.path(), Role::Serve, notify.clone());
    let repo = "github.com/acme/api";
    let baseline = crate::store::PollBatch {
        repository: repo.into(),
        intakes: Vec::new(),
        cursors: vec![
            ("refs/heads/main".into(), Some(SHA1.into())),
            ("refs/heads/old".into(), Some(SHA3.into())),
        ],
    };
    assert!(
        rt.block_on(store.poll(baseline))
            .expect("baseline")
            .is_empty()
    );
    assert!(!notified_now(&notify), "a baseline starts nothing");
    let moved = crate::store::PollBatch {
        repository: repo.into(),
        intakes: vec![request(numbered_event(1, SourceKind::Poll), None, &["a"])],
        cursors: vec![
            ("refs/heads/main".into(), Some(SHA2.into())),
            ("refs/heads/old".into(), None),
        ],
    };
    let outcomes = rt.block_on(store.poll(moved.clone())).expect("poll");
    assert!(matches!(&outcomes[..], [IntakeOutcome::Accepted { starts, .. }] if starts.len() == 1));
    assert!(notified_now(&notify), "new starts wake the dispatcher");
    let cursors = rt.block_on(store.cursors(repo)).expect("cursors");
    assert_eq!(
        cursors.into_iter().collect::<Vec<_>>(),
        [("refs/heads/main".to_owned(), SHA2.to_owned())]
    );
    assert!(
        rt.block_on(store.cursors("other"))
            .expect("cursors")
            .is_empty()
    );
    // The same poll again (a restart before the cursor was known to move): a duplicate.
    let again = rt.block_on(store.poll(moved)).expect("poll");
    assert!(matches!(
        &again[..],
        [IntakeOutcome::Duplicate {
            why: DuplicateOf::Change,
            ..
        }]
    ));
    let admin = Admin::open(dir.path()).expect("admin");
    assert_eq!(admin.starts(&[]).expect("starts").len(), 1);
}

#[test]
fn a_deferred_change_waits_without_starts_until_it_is_planned_once() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let notify = Arc::new(Notify::new());
    let store = Store::open(dir.path(), Role::Serve, notify.clone());
    let event = numbered_event(1, SourceKind::Eventbridge);
    let mut req = request(event.clone(), Some("d0"), &[]);
    req.defer = true;
    let out = rt.block_on(store.intake(req)).expect("intake");
    assert!(matches!(out, IntakeOutcome::Accepted { ref starts, .. } if starts.is_empty()));
    assert!(!notified_now(&notify));
    let waiting = rt.block_on(store.deferred()).expect("deferred");
    assert_eq!(waiting.len(), 1);
    let stored: ChangeEvent = serde_json::from_str(&waiting[0]).expect("event");
    assert_eq!(stored.id, event.id);

    let mut completed = event.clone();
    completed.changed_paths = vec!["src/lib.rs".into()];
    let planned = vec![PlannedStart {
        pipeline: "a".into(),
        supersede: false,
    }];
    let ids = rt
        .block_on(store.plan(completed.clone(), planned.clone(), Vec::new()))
        .expect("plan");
    assert_eq!(ids, Some(vec![start_id(&event.id, "a")]));
    assert!(notified_now(&notify));
    assert_eq!(
        rt.block_on(store.plan(completed, planned, Vec::new()))
            .expect("plan"),
        None,
        "planned once"
    );
    assert!(rt.block_on(store.deferred()).expect("deferred").is_empty());
    let admin = Admin::open(dir.path()).expect("admin");
    let json = admin.change(&event.id).expect("read").expect("stored");
    assert!(
        json.contains("src/lib.rs"),
        "the completed event replaced the first: {json}"
    );
    assert_eq!(admin.starts(&[]).expect("starts").len(), 1);
}

#[test]
fn a_ref_state_reported_again_with_another_before_is_the_same_change() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
    let repo = REPOS[0];
    let main =
        |before, after, kind, ms| push_event(repo, ("refs/heads/main", before, after), kind, ms);
    // Two webhooks: SHA1 → SHA2 → SHA3.
    for (before, after) in [(SHA1, SHA2), (SHA2, SHA3)] {
        let outcome = rt
            .block_on(store.intake(request(
                main(before, after, SourceKind::Webhook, BASE_MS),
                None,
                &["a"],
            )))
            .expect("intake");
        assert!(
            matches!(outcome, IntakeOutcome::Accepted { .. }),
            "{outcome:?}"
        );
    }
    // Polling saw SHA1 → SHA3 at once (coalesced): the ref state SHA3 is reported already.
    let coalesced = main(SHA1, SHA3, SourceKind::Poll, BASE_MS + 5);
    let newest = main(SHA2, SHA3, SourceKind::Webhook, BASE_MS).id;
    let outcome = rt
        .block_on(store.intake(request(coalesced, None, &["a"])))
        .expect("intake");
    assert_eq!(
        outcome,
        IntakeOutcome::Duplicate {
            change_id: newest.clone(),
            why: DuplicateOf::Change
        }
    );
    let admin = Admin::open(dir.path()).expect("admin");
    let sources: Vec<String> = admin
        .sightings(&newest)
        .expect("sightings")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(sources, ["webhook", "poll"]);
    assert_eq!(admin.starts(&[]).expect("starts").len(), 2);
    // The ref moved back to SHA2 (a forced push): a new state, started.
    let back = main(SHA3, SHA2, SourceKind::Webhook, BASE_MS + 9);
    let outcome = rt
        .block_on(store.intake(request(back, None, &["a"])))
        .expect("intake");
    assert!(
        matches!(outcome, IntakeOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    // Another ref, or another repository, at the same commit is its own change.
    let dev = push_event(
        repo,
        ("refs/heads/dev", SHA3, SHA2),
        SourceKind::Webhook,
        BASE_MS,
    );
    let other = push_event(
        REPOS[1],
        ("refs/heads/main", SHA1, SHA2),
        SourceKind::Webhook,
        BASE_MS,
    );
    for event in [dev, other] {
        let outcome = rt
            .block_on(store.intake(request(event, None, &["a"])))
            .expect("intake");
        assert!(
            matches!(outcome, IntakeOutcome::Accepted { .. }),
            "{outcome:?}"
        );
    }
}

#[test]
fn unreported_follows_the_stored_pushes_of_a_ref_back_to_the_gap() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
    let repo = REPOS[0];
    const SHA4: &str = "4444444444444444444444444444444444444444";
    const SHA5: &str = "5555555555555555555555555555555555555555";
    // Reported: SHA2 → SHA3 → SHA4 (the push SHA1 → SHA2 was not).
    for (before, after) in [(SHA2, SHA3), (SHA3, SHA4)] {
        let event = push_event(
            repo,
            ("refs/heads/main", before, after),
            SourceKind::Webhook,
            BASE_MS,
        );
        rt.block_on(store.intake(request(event, None, &["a"])))
            .expect("intake");
    }
    let ask = |from: &str, to: &str| {
        rt.block_on(
            store.unreported(crate::store::RefMove {
                repository: crate::repo::RepoId::parse(repo, None)
                    .expect("valid")
                    .as_str()
                    .to_owned(),
                git_ref: "refs/heads/main".into(),
                from: from.into(),
                to: to.into(),
            }),
        )
        .expect("unreported")
    };
    // Polling saw SHA1 → SHA4: only SHA1 → SHA2 is unreported.
    assert_eq!(ask(SHA1, SHA4), Some(SHA2.to_owned()));
    // SHA2 → SHA4 and SHA3 → SHA4 are reported whole.
    assert_eq!(ask(SHA2, SHA4), None);
    assert_eq!(ask(SHA3, SHA4), None);
    // The ref is elsewhere than the newest report: all of it is unreported.
    assert_eq!(ask(SHA4, SHA5), Some(SHA5.to_owned()));
    assert_eq!(ask(SHA1, SHA3), Some(SHA3.to_owned()));
}

#[test]
fn only_serve_gives_running_starts_back_and_only_at_its_first_open() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let serve = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
    let running = |what: &str| -> Vec<String> {
        Admin::open(dir.path())
            .expect("admin")
            .starts(&[StartState::Running])
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    let first = pool_event(0, SourceKind::Webhook, BASE_MS);
    let Ok(IntakeOutcome::Accepted { starts, .. }) =
        rt.block_on(serve.intake(request(first, None, &["a"])))
    else {
        panic!("the change is accepted");
    };
    let claimed = rt.block_on(serve.claim(starts.clone())).expect("claim");
    assert_eq!(
        claimed.into_iter().map(|c| c.id).collect::<Vec<_>>(),
        starts
    );

    // A tool beside the server (`poll --once`, `outbox`) writes, and the start stays running.
    let tool = Store::open(dir.path(), Role::Tool, Arc::new(Notify::new()));
    rt.block_on(tool.prune_deliveries(0))
        .expect("the tool's store opens");
    let second = pool_event(1, SourceKind::Poll, BASE_MS + 1);
    rt.block_on(tool.intake(request(second, None, &["b"])))
        .expect("the tool stores a change");
    assert_eq!(running("after a tool's writes"), starts);

    // The server's own writer reopens after a failed write: its attempt is still under way.
    refuse_pipeline_refused(dir.path());
    let third = pool_event(2, SourceKind::Webhook, BASE_MS + 2);
    assert!(
        rt.block_on(serve.intake(request(third.clone(), None, &["refused"])))
            .is_err()
    );
    rt.block_on(serve.intake(request(third, None, &["a"])))
        .expect("the writer reopens");
    assert_eq!(running("after the writer reopened"), starts);

    // A new `serve` (after a crash): the interrupted attempt is open again.
    drop(serve);
    let restarted = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
    rt.block_on(restarted.prune_deliveries(0))
        .expect("the restarted store opens");
    assert_eq!(running("after a restart"), Vec::<String>::new());
    let states = Admin::open(dir.path())
        .expect("admin")
        .start(&starts[0])
        .expect("the start")
        .state;
    assert_eq!(states, StartState::Pending);
}

#[test]
fn the_writer_s_remembered_tips_never_hide_another_process_s_push() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let serve = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
    let main = "refs/heads/main";
    let (s1, s1a, s2) = (SHA1, SHA2, SHA3);
    let zero = "0000000000000000000000000000000000000001";
    // serve stores a webhook's push and remembers it as the ref's newest.
    let first = push_event(REPOS[0], (main, zero, s1), SourceKind::Webhook, BASE_MS);
    let out = rt.block_on(serve.intake(request(first, Some("d1"), &["a"])));
    assert!(matches!(out, Ok(IntakeOutcome::Accepted { .. })), "{out:?}");

    // `poll --once` (another writer) stores polling's coalesced move s1 → s2: two pushes,
    // s1 → s1a and s1a → s2, whose webhooks had not arrived.
    let tool = Store::open(dir.path(), Role::Tool, Arc::new(Notify::new()));
    let polled = push_event(REPOS[0], (main, s1, s2), SourceKind::Poll, BASE_MS + 1);
    let Ok(IntakeOutcome::Accepted {
        change_id: polled_id,
        ..
    }) = rt.block_on(tool.intake(request(polled, None, &["a"])))
    else {
        panic!("the poll's change is accepted");
    };
    drop(tool);

    // The late webhook of the second push reaches the ref state polling stored: it is that
    // change, though serve's writer last saw s1 as the ref's newest.
    let late = push_event(REPOS[0], (main, s1a, s2), SourceKind::Webhook, BASE_MS + 2);
    let out = rt.block_on(serve.intake(request(late, Some("d2"), &["a"])));
    assert_eq!(
        out.expect("stored"),
        IntakeOutcome::Duplicate {
            change_id: polled_id,
            why: DuplicateOf::Change
        }
    );
    // And what serve itself stores next is remembered and checked as before.
    let next = push_event(REPOS[0], (main, s2, SHA1), SourceKind::Webhook, BASE_MS + 3);
    let Ok(IntakeOutcome::Accepted {
        change_id: next_id, ..
    }) = rt.block_on(serve.intake(request(next, Some("d3"), &["a"])))
    else {
        panic!("a new push is accepted");
    };
    let again = push_event(REPOS[0], (main, zero, SHA1), SourceKind::Poll, BASE_MS + 4);
    let out = rt.block_on(serve.intake(request(again, None, &["a"])));
    assert_eq!(
        out.expect("stored"),
        IntakeOutcome::Duplicate {
            change_id: next_id,
            why: DuplicateOf::Change
        }
    );
    let starts = Admin::open(dir.path())
        .expect("admin")
        .starts(&[])
        .expect("starts");
    assert_eq!(starts.len(), 3, "one start per change: {starts:?}");
}

/// Makes every write of a start of pipeline `refused` fail inside the writer's transaction.
fn refuse_pipeline_refused(state_dir: &Path) {
    Connection::open(state_dir.join(DB_FILE))
        .expect("a direct connection")
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON starts WHEN NEW.pipeline = 'refused'
             BEGIN SELECT RAISE(ABORT, 'pipeline refused by the test'); END;",
        )
        .expect("create the trigger");
}

/// Polls a future once without a runtime: whether it is ready now.
fn ready_now<F: Future>(fut: Pin<&mut F>) -> bool {
    fut.poll(&mut Context::from_waker(Waker::noop())).is_ready()
}

/// Whether `notify` holds a permit now (consuming it).
fn notified_now(notify: &Notify) -> bool {
    ready_now(pin!(notify.notified()))
}
