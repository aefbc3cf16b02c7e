//! `serve` as a child process: killed with SIGKILL in the middle of a burst, and filling up.
//! What was acknowledged is started; what succeeded is not started again.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use switchyard::store::{Admin, StartState};

use crate::support::{SECRET, change, eventually, request, sha, signed_headers};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A project for the binary: a `standard` receiver and one exec pipeline that logs start ids.
fn project(port: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::write(root.join("secret"), SECRET).expect("secret");
    std::fs::write(
        root.join("switchyard.yaml"),
        format!(
            "listen: 127.0.0.1:{port}\nstate_dir: state\nreceivers:\n  - name: hooks\n    provider: standard\n    secrets: [file:{}]\ndispatch: {{backoff: 50ms}}\n",
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

fn spawn(root: &Path, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("serve")
        .current_dir(root)
        .env("SWITCHYARD_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn switchyard serve")
}

async fn wait_ready(addr: std::net::SocketAddr) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Ok(stream) = tokio::net::TcpStream::connect(addr).await {
            drop(stream);
            let (status, _) = request(addr, "GET", "/healthz", &[], vec![]).await;
            if status == 200 {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not come up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// One signed post on a fresh connection; None when the server is gone.
async fn try_post(
    addr: std::net::SocketAddr,
    id: &str,
    body: &str,
) -> Option<(u16, serde_json::Value)> {
    use http_body_util::BodyExt as _;
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    let mut req = hyper::Request::post("/hooks/hooks").header("host", "x");
    for (k, v) in signed_headers(id, body.as_bytes(), jiff::Timestamp::now().as_second()) {
        req = req.header(k, v);
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_owned(),
        )))
        .ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, serde_json::from_slice(&bytes).unwrap_or_default()))
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
    let port = free_port();
    let dir = project(port);
    let root = dir.path().to_path_buf();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut child = spawn(&root, &[]);
    wait_ready(addr).await;

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
    child.kill().expect("SIGKILL");
    let _ = child.wait();
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

    let mut child = spawn(&root, &[]);
    wait_ready(addr).await;
    eventually(60, "every acknowledged start to succeed", || {
        let rows = Admin::open(&root.join("state")).ok()?.starts(&[]).ok()?;
        rows.iter()
            .all(|r| r.state == StartState::Succeeded)
            .then_some(())
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();

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
    let port = free_port();
    let dir = project(port);
    let root = dir.path().to_path_buf();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    // The store may grow to 40 pages of 4 KiB, then fails like a full disk.
    let mut child = spawn(&root, &[("SWITCHYARD_STORE_MAX_PAGES", "40")]);
    wait_ready(addr).await;
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
    let _ = child.kill();
    let _ = child.wait();
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
    for signal in ["-TERM", "-INT"] {
        let port = free_port();
        let dir = project(port);
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let mut child = spawn(dir.path(), &[]);
        wait_ready(addr).await;
        let (status, _) = try_post(addr, "t-1", &change("refs/heads/main", &sha(1)))
            .await
            .expect("up");
        assert_eq!(status, 202);
        let killed = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(killed.success());
        let exit = tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("join")
            .expect("wait");
        assert!(exit.success(), "{signal}: {exit:?}");
        let rows = Admin::open(&dir.path().join("state"))
            .expect("admin")
            .starts(&[])
            .expect("starts");
        assert_eq!(rows.len(), 1, "{signal}");
        assert!(
            rows[0].state != StartState::Running,
            "{signal}: a drained server leaves nothing running"
        );
    }
}
