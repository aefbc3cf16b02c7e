//! `switchyard outbox` from the command line, on a store beside the project.

use std::sync::Arc;

use switchyard::event::{ChangeEvent, Source, SourceKind};
use switchyard::outcome::IntakeOutcome;
use switchyard::store::{Finish, IntakeRequest, Location, PlannedStart, Role, Store};

use crate::support::{Project, change, sha};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_retry_and_drop() {
    let p = Project::new();
    p.file("switchyard.yaml", "state_dir: state\n");
    list_retry_and_drop_at(&p, Location::Sqlite(p.root().join("state"))).await;
}

/// The same commands on a PostgreSQL store (`store: {postgres: file:db-url}`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_retry_and_drop_on_postgres() {
    let Some(server) = switchyard_lab::or_skip(switchyard_lab::Postgres::shared()) else {
        return;
    };
    let url = server
        .create_database(&format!("outbox_{}", std::process::id()))
        .expect("a database");
    let p = Project::new();
    p.file(
        "switchyard.yaml",
        "state_dir: state\nstore: {postgres: \"file:db-url\"}\n",
    );
    p.file("db-url", &url);
    list_retry_and_drop_at(&p, Location::Postgres(url)).await;
}

async fn list_retry_and_drop_at(p: &Project, location: Location) {
    let store = Store::open_at(&location, Role::Serve, Arc::new(tokio::sync::Notify::new()));
    let source = Source {
        kind: SourceKind::Webhook,
        provider: None,
        delivery_id: None,
    };
    let mut ids = Vec::new();
    for n in 1..=2 {
        let event = ChangeEvent::from_json(
            change("refs/heads/main", &sha(n)).as_bytes(),
            source.clone(),
        )
        .expect("event");
        let starts = vec![PlannedStart {
            pipeline: "build".into(),
            supersede: false,
        }];
        match store
            .intake(IntakeRequest {
                event,
                delivery: None,
                starts,
                defer: false,
                decisions: Vec::new(),
                traceparent: None,
            })
            .await
            .expect("intake")
        {
            IntakeOutcome::Accepted { starts, .. } => ids.push(starts[0].clone()),
            other => panic!("{other:?}"),
        }
    }
    store.claim(vec![ids[0].clone()]).await.expect("claim");
    store
        .finish(
            &ids[0],
            Finish::Dead {
                error: "runner said 400".into(),
            },
        )
        .await
        .expect("finish");

    let run = p.run(&["outbox", "list"], &[], "");
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("START"), "{lines:?}");
    assert!(
        lines[1].starts_with(&ids[0]) && lines[1].contains("dead"),
        "{lines:?}"
    );
    assert!(lines[2].contains("runner said 400"), "{lines:?}");
    assert!(
        lines[3].starts_with(&ids[1]) && lines[3].contains("pending"),
        "{lines:?}"
    );

    let run = p.run(&["outbox", "retry", &ids[0][..10]], &[], "");
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.starts_with(&format!("retrying {}", ids[0]))
            && run.stdout.contains("now pending"),
        "{run:?}"
    );

    let run = p.run(&["outbox", "drop", &ids[1]], &[], "");
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("now dropped"), "{run:?}");

    let run = p.run(&["outbox", "list", "--all", "--format", "json"], &[], "");
    let states: Vec<(String, String)> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .map(|v| {
            (
                v["start_id"].as_str().unwrap_or("").to_owned(),
                v["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (ids[0].clone(), "pending".into()),
            (ids[1].clone(), "dropped".into())
        ]
    );

    let run = p.run(&["outbox", "drop", &ids[1]], &[], "");
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("is dropped, which cannot be dropped"),
        "{run:?}"
    );
    let run = p.run(&["outbox", "retry", "ffff"], &[], "");
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("no start with id \"ffff\""), "{run:?}");
}
