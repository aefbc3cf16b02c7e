//! `serve` as a child process: killed with SIGKILL in the middle of a burst, and filling up.
//! What was acknowledged is started; what succeeded is not started again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use switchyard::store::{Admin, StartState};
use switchyard_lab::Serve;

use crate::support::{SECRET, change, eventually, request, serve, sha, try_post};

/// A project for the binary: a `standard` receiver and one exec pipeline that logs start ids.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::write(root.join("secret"), SECRET).expect("secret");
    std::fs::write(
        root.join("switchyard.yaml"),
        format!(
            "state_dir: state\nreceivers:\n  - name: hooks\n    provider: standard\n    secrets: [file:{}]\ndispatch: {{backoff: 50ms}}\n",
            root.join("secret").display()
        ),
    )
    .expect("config");
    std::fs::create_dir(root.join("triggers")).expect("triggers");
    std::fs::write(
        root.join("triggers/log.yaml"),
        format!(
            "repository: https://github.com/acme/api.git\non: push\nmode: parallel\nconcurrency: 32\nstart:\n  exec: [\"/bin/sh\", \"-c\", \"printf '%s\\\\n' \\\"$SWITCHYARD_START_ID\\\" >> \\\"$1/log\\\"\", \"sh\", \"{}\"]\n",
            root.display()
        ),
    )
    .expect("trigger");
    dir
}

/// `serve` in `root`, logging warnings only.
async fn spawn(root: &Path, env: &[(&str, String)]) -> Serve {
    let mut env = env.to_vec();
    env.push(("SWITCHYARD_LOG", "warn".into()));
    serve(root, &env).await
}

fn log_counts(root: &Path) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in std::fs::read_to_string(root.join("log"))
        .unwrap_or_default()
        .lines()
    {
        *counts.entry(line.to_owned()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_a_burst_loses_no_acknowledged_change_and_repeats_no_success() {
    let dir = project();
    let root = dir.path().to_path_buf();
    let mut served = spawn(&root, &[]).await;
    let addr = served.addr();

    const POSTS: usize = 400;
    const KILL_AFTER: usize = 150;
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(tokio::sync::Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (acked, count, next, killed) =
            (acked.clone(), count.clone(), next.clone(), killed.clone());
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= POSTS {
                    return;
                }
                match try_post(
                    addr,
                    &format!("burst-{n}"),
                    &change("refs/heads/main", &sha(n as u64 + 1)),
                )
                .await
                {
                    Some((202, answer)) => {
                        let id = answer["starts"][0].as_str().expect("start id").to_owned();
                        acked.lock().expect("lock").push(id);
                        if count.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                            killed.notify_one();
                        }
                    }
                    Some((status, answer)) => panic!("unexpected answer {status}: {answer}"),
                    None => {}
                }
            }
        });
    }
    killed.notified().await;
    served.crash().expect("SIGKILL");
    while tasks.join_next().await.is_some() {}
    let acked: Vec<String> = acked.lock().expect("lock").clone();
    assert!(acked.len() >= KILL_AFTER, "{} acknowledged", acked.len());

    // What the store recorded as succeeded before the kill must not run again.
    let before = Admin::open(&root.join("state"))
        .expect("admin")
        .starts(&[])
        .expect("starts");
    let succeeded: Vec<String> = before
        .iter()
        .filter(|r| r.state == StartState::Succeeded)
        .map(|r| r.id.clone())
        .collect();
    let known: std::collections::HashSet<&str> = before.iter().map(|r| r.id.as_str()).collect();
    for id in &acked {
        assert!(
            known.contains(id.as_str()),
            "acknowledged start {id} is not in the store"
        );
    }

    let restarted = spawn(&root, &[]).await;
    eventually(60, "every acknowledged start to succeed", || {
        let rows = Admin::open(&root.join("state")).ok()?.starts(&[]).ok()?;
        rows.iter()
            .all(|r| r.state == StartState::Succeeded)
            .then_some(())
    })
    .await;
    drop(restarted);
    drop(served);

    let counts = log_counts(&root);
    for id in &acked {
        assert!(
            counts.get(id).copied().unwrap_or(0) >= 1,
            "acknowledged start {id} never ran"
        );
    }
    for id in &succeeded {
        assert_eq!(
            counts.get(id).copied().unwrap_or(0),
            1,
            "start {id} succeeded before the kill and ran again"
        );
    }
    let repeated = counts.values().filter(|&&n| n > 1).count();
    eprintln!(
        "acknowledged {}, succeeded before the kill {}, in the store {}, run twice (in flight at the kill) {repeated}",
        acked.len(),
        succeeded.len(),
        before.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_answers_503_and_keeps_what_it_acknowledged() {
    let dir = project();
    let root = dir.path().to_path_buf();
    // The store may grow to 40 pages of 4 KiB, then fails like a full disk.
    let mut served = spawn(&root, &[("SWITCHYARD_STORE_MAX_PAGES", "40".into())]).await;
    let addr = served.addr();
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for n in 0..2000u64 {
        let body = change("refs/heads/main", &sha(n + 1));
        let (status, answer) = try_post(addr, &format!("full-{n}"), &body)
            .await
            .expect("server is up");
        match status {
            202 => accepted.push(answer["change"].as_str().expect("change").to_owned()),
            503 => {
                refused.push(n);
                if refused.len() == 5 {
                    break;
                }
            }
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    assert_eq!(
        refused.len(),
        5,
        "the store never filled up ({} accepted)",
        accepted.len()
    );
    assert!(!accepted.is_empty());
    assert_eq!(
        request(addr, "GET", "/healthz", &[], vec![]).await.0,
        200,
        "still serving"
    );
    assert_eq!(
        request(addr, "GET", "/readyz", &[], vec![]).await.0,
        503,
        "not ready to store"
    );
    served.crash();
    let admin = Admin::open(&root.join("state")).expect("admin");
    for id in &accepted {
        assert!(
            admin.change(id).expect("read").is_some(),
            "acknowledged change {id} missing"
        );
    }
    let refused_id = {
        // The change id of the first refused post, derived as the server would.
        let body = change("refs/heads/main", &sha(refused[0] + 1));
        let source = switchyard::event::Source {
            kind: switchyard::event::SourceKind::Webhook,
            provider: None,
            delivery_id: None,
        };
        switchyard::event::ChangeEvent::from_json(body.as_bytes(), source)
            .expect("event")
            .id
    };
    assert!(
        admin.change(&refused_id).expect("read").is_none(),
        "a refused change was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_drain_and_exit_cleanly() {
    for signal in ["TERM", "INT"] {
        let dir = project();
        let served = spawn(dir.path(), &[]).await;
        let (status, _) = try_post(served.addr(), "t-1", &change("refs/heads/main", &sha(1)))
            .await
            .expect("up");
        assert_eq!(status, 202);
        let log = served.err();
        assert!(served.stop_with(signal).await, "SIG{signal}: {log}");
        let rows = Admin::open(&dir.path().join("state"))
            .expect("admin")
            .starts(&[])
            .expect("starts");
        assert_eq!(rows.len(), 1, "SIG{signal}");
        assert!(
            rows[0].state != StartState::Running,
            "SIG{signal}: a drained server leaves nothing running"
        );
    }
}
