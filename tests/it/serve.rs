//! `serve` end to end on a real port with a temp state dir: signed changes in, starts out.

use std::net::SocketAddr;

use switchyard::store::StartState;
use switchyard_lab::{Arrival, Runner};

use crate::support::{
    TestServer, change, counted, eventually, request, server_project, sha, signed_headers,
};

/// An exec target that records its environment, standard input and event file under `$DIR`.
const RECORDER: &str = r#"repository: https://github.com/acme/api.git
on: push
start:
  exec: ["/bin/sh", "-c", "printf '%s|%s|%s|%s|%s|%s|%s\n' \"$SWITCHYARD_PIPELINE\" \"$SWITCHYARD_START_ID\" \"$SWITCHYARD_REPOSITORY\" \"$SWITCHYARD_REF\" \"$SWITCHYARD_SHA\" \"$SWITCHYARD_BEFORE\" \"$SWITCHYARD_SOURCE\" >> \"$1/log\"; cat > \"$1/stdin-$SWITCHYARD_START_ID\"; cp \"$SWITCHYARD_EVENT\" \"$1/file-$SWITCHYARD_START_ID\"; printf '%s' \"$SWITCHYARD_EVENT\" > \"$1/path-$SWITCHYARD_START_ID\"", "recorder", "$DIR"]
"#;

fn read(path: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_change_runs_the_exec_target_with_env_and_stdin() {
    let s = TestServer::start("", &[("rec.yaml", RECORDER)]).await;
    let (status, answer) = s
        .post_change("d-1", &change("refs/heads/main", &sha(1)))
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "accepted");
    let start_id = answer["starts"][0].as_str().expect("a start id").to_owned();
    let root = s.root().to_path_buf();
    // The shell creates the file before it writes the line: wait for the whole line.
    let line = eventually(10, "the exec target", || {
        read(&root.join("log")).filter(|l| l.ends_with('\n'))
    })
    .await;
    assert_eq!(
        line.trim(),
        format!(
            "rec|{start_id}|github.com/acme/api|refs/heads/main|{}|1111111111111111111111111111111111111111|webhook",
            sha(1)
        )
    );
    // Once the attempt succeeded the script has written every file (a file the shell created
    // may otherwise still be empty).
    let starts = eventually(10, "succeeded", || {
        let rows = s.starts();
        (rows[0].state == StartState::Succeeded).then_some(rows)
    })
    .await;
    let stdin = read(&root.join(format!("stdin-{start_id}"))).expect("stdin recorded");
    let file = read(&root.join(format!("file-{start_id}"))).expect("event file recorded");
    let event: serde_json::Value = serde_json::from_str(&stdin).expect("stdin is the event JSON");
    assert_eq!(event["id"], answer["change"]);
    assert_eq!(event["source"]["delivery_id"], "d-1");
    assert_eq!(stdin, file);
    assert_eq!((starts.len(), starts[0].attempts), (1, 1));
    // The event file is removed after the attempt.
    let path = read(&root.join(format!("path-{start_id}"))).expect("the event file's path");
    assert!(path.ends_with(&format!("{start_id}.json")), "{path}");
    assert!(
        !std::path::Path::new(&path).exists(),
        "{path} is still there"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_metacharacters_in_a_ref_reach_the_target_only_as_data() {
    let trigger = r#"repository: https://github.com/acme/api.git
on: push
mode: parallel
start:
  exec: ["/bin/sh", "-c", "printf '%s\n' \"$SWITCHYARD_REF\" >> \"$1/refs\"", "sh", "$DIR"]
"#;
    let s = TestServer::start("", &[("t.yaml", trigger)]).await;
    let hostile = [
        "refs/heads/$(touch${IFS}pwned)",
        "refs/heads/x;rm${IFS}-rf${IFS}y",
        "refs/heads/`touch${IFS}pwned2`",
        "refs/heads/a|touch${IFS}pwned3&&echo",
    ];
    for (i, r) in hostile.iter().enumerate() {
        let (status, answer) = s
            .post_change(&format!("h-{i}"), &change(r, &sha(100 + i as u64)))
            .await;
        assert_eq!(status, 202, "{r}: {answer}");
    }
    let root = s.root().to_path_buf();
    let text = eventually(10, "all four starts", || {
        read(&root.join("refs")).filter(|t| t.lines().count() == 4)
    })
    .await;
    let mut got: Vec<&str> = text.lines().collect();
    got.sort_unstable();
    let mut want = hostile.to_vec();
    want.sort_unstable();
    assert_eq!(got, want);
    for name in ["pwned", "pwned2", "pwned3"] {
        assert!(
            !root.join(name).exists() && !std::path::Path::new(name).exists(),
            "{name} was created"
        );
    }
    // Git refuses spaces in ref names, so these are refused before anything runs.
    for (i, r) in ["refs/heads/$(touch pwned)", "refs/heads/x;rm -rf y"]
        .iter()
        .enumerate()
    {
        let (status, answer) = s
            .post_change(&format!("s-{i}"), &change(r, &sha(200 + i as u64)))
            .await;
        assert_eq!(status, 400, "{r}");
        assert!(
            answer["error"].as_str().unwrap_or("").contains("ref: "),
            "{answer}"
        );
    }
    s.stop().await;
}

fn http_trigger(addr: SocketAddr) -> String {
    format!(
        "repository: https://github.com/acme/api.git\non: push\nstart:\n  http: {{url: \"http://{addr}/start\", secret: \"file:$DIR/secret\"}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_target_is_retried_on_500_with_the_same_idempotency_key() {
    let (runner, addr) = Runner::scripted(&[500, 503]).await.expect("runner");
    let s = TestServer::start(
        "dispatch: {attempts: 5, backoff: 20ms, backoff_max: 100ms}\n",
        &[("h.yaml", &http_trigger(addr))],
    )
    .await;
    let (status, answer) = s
        .post_change("d-1", &change("refs/heads/main", &sha(7)))
        .await;
    assert_eq!(status, 202, "{answer}");
    let start_id = answer["starts"][0].as_str().expect("start id").to_owned();
    let rows = eventually(10, "success after two failures", || {
        let rows = s.starts();
        (rows[0].state == StartState::Succeeded).then_some(rows)
    })
    .await;
    assert_eq!(rows[0].attempts, 3);
    let seen = runner.arrivals();
    assert_eq!(seen.len(), 3);
    let key = switchyard::signature::Key::from_secret(crate::support::SECRET).expect("key");
    for Arrival {
        headers,
        json: body,
        body: raw,
        ..
    } in &seen
    {
        assert_eq!(headers["webhook-id"], start_id);
        assert_eq!(body["start_id"], start_id.as_str());
        assert_eq!(body["pipeline"], "h");
        assert_eq!(body["event"]["id"], answer["change"]);
        // The runner can verify the signature like any Standard Webhooks receiver.
        let h = switchyard::signature::Headers {
            id: Some(&headers["webhook-id"]),
            timestamp: Some(&headers["webhook-timestamp"]),
            signature: Some(&headers["webhook-signature"]),
        };
        let now = jiff::Timestamp::now().as_second();
        assert_eq!(
            switchyard::signature::verify(std::slice::from_ref(&key), h, raw, now),
            Ok(())
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_target_dead_letters_on_400_and_outbox_retry_reopens() {
    let (runner, addr) = Runner::scripted(&[400]).await.expect("runner");
    let s = TestServer::start(
        "dispatch: {attempts: 5, backoff: 20ms}\n",
        &[("h.yaml", &http_trigger(addr))],
    )
    .await;
    let (status, _) = s
        .post_change("d-1", &change("refs/heads/main", &sha(8)))
        .await;
    assert_eq!(status, 202);
    let rows = eventually(10, "dead-lettered", || {
        let rows = s.starts();
        (rows[0].state == StartState::Dead).then_some(rows)
    })
    .await;
    assert_eq!(rows[0].attempts, 1, "a 400 is not retried");
    assert!(
        rows[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("400 Bad Request: runner says no"),
        "{:?}",
        rows[0].last_error
    );
    assert_eq!(runner.arrivals().len(), 1);
    let tool = switchyard::store::Store::open(
        &s.root().join("state"),
        switchyard::store::Role::Tool,
        Default::default(),
    );
    let text = switchyard::cli::outbox::list(&tool, switchyard::cli::outbox::DEFAULT_STATES, false)
        .await
        .expect("list");
    assert!(
        text.contains("dead") && text.contains(&rows[0].id),
        "{text}"
    );
    switchyard::cli::outbox::retry(&tool, &rows[0].id[..8])
        .await
        .expect("retry by prefix");
    eventually(10, "the retried start succeeds", || {
        (s.starts()[0].state == StartState::Succeeded).then_some(())
    })
    .await;
    assert_eq!(runner.arrivals().len(), 2);
    assert_eq!(
        runner.arrivals()[1].headers["webhook-id"],
        rows[0].id,
        "the same idempotency key after a retry"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_the_store_refuses_for_a_while_is_recorded_once_it_can_be() {
    let (runner, addr) = Runner::start().await.expect("runner");
    let s = TestServer::start("", &[("h.yaml", &http_trigger(addr))]).await;
    // The store refuses to record a success (as a store that is down refuses everything).
    let db = rusqlite::Connection::open(s.root().join("state").join(switchyard::store::DB_FILE))
        .expect("open the store");
    db.busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    db.execute_batch(
        "CREATE TRIGGER refuse BEFORE UPDATE ON starts WHEN NEW.state = 'succeeded'
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
    )
    .expect("create the trigger");
    let (status, _) = s
        .post_change("d-1", &change("refs/heads/main", &sha(11)))
        .await;
    assert_eq!(status, 202);
    runner
        .wait_for(std::time::Duration::from_secs(10), |a| {
            (!a.is_empty()).then_some(())
        })
        .await
        .expect("the start reaches the runner");
    // The dispatcher once tried to record the outcome once, then gave up (and left the start
    // running, with nobody attempting it, until the next restart): three refusals counted, and
    // the start is still running, still in flight here.
    let metrics = counted(s.addr, "switchyard_store_errors_total", &[], 3.0).await;
    assert_eq!(s.starts()[0].state, StartState::Running);
    assert_eq!(
        metrics.sum("switchyard_starts_in_flight", &[]),
        1.0,
        "the attempt is still waiting to record its outcome"
    );
    db.execute_batch("DROP TRIGGER refuse")
        .expect("drop the trigger");
    let rows = eventually(10, "the success recorded", || {
        let rows = s.starts();
        (rows[0].state == StartState::Succeeded).then_some(rows)
    })
    .await;
    assert_eq!(rows[0].attempts, 1);
    assert_eq!(runner.arrivals().len(), 1, "started once");
    s.stop().await;
}

/// An exec target that waits for `$DIR/go` before recording the sha it was started for.
const GATED: &str = r#"repository: https://github.com/acme/api.git
on: push
mode: MODE
start:
  exec: ["/bin/sh", "-c", "while [ ! -f \"$1/go\" ]; do sleep 0.02; done; printf '%s\n' \"$SWITCHYARD_SHA\" >> \"$1/log\"", "gate", "$DIR"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superseded_mode_skips_stale_starts_and_queued_mode_runs_all_in_order() {
    for mode in ["superseded", "queued"] {
        let s = TestServer::start("", &[("g.yaml", &GATED.replace("MODE", mode))]).await;
        for n in 1..=3 {
            let (status, _) = s
                .post_change(&format!("d-{n}"), &change("refs/heads/main", &sha(n)))
                .await;
            assert_eq!(status, 202);
            if n == 1 {
                // Wait until the first start is running, so that the next two queue behind it.
                eventually(10, "first start running", || {
                    (s.starts()[0].state == StartState::Running).then_some(())
                })
                .await;
            }
        }
        std::fs::write(s.root().join("go"), "").expect("open the gate");
        let root = s.root().to_path_buf();
        let want: Vec<String> = if mode == "superseded" {
            vec![sha(1), sha(3)]
        } else {
            vec![sha(1), sha(2), sha(3)]
        };
        let log = eventually(10, "starts", || {
            read(&root.join("log")).filter(|t| t.lines().count() == want.len())
        })
        .await;
        assert_eq!(log.lines().collect::<Vec<_>>(), want, "{mode}");
        let want_states = if mode == "superseded" {
            vec![
                StartState::Succeeded,
                StartState::Superseded,
                StartState::Succeeded,
            ]
        } else {
            vec![StartState::Succeeded; 3]
        };
        // The log line is written before the attempt's outcome is recorded: wait for both.
        let states = eventually(10, "the outcomes recorded", || {
            let states: Vec<StartState> = s.starts().iter().map(|r| r.state).collect();
            (!states.contains(&StartState::Running)).then_some(states)
        })
        .await;
        assert_eq!(states, want_states, "{mode}");
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_pending_starts() {
    let (dir, config, pipelines) = server_project(
        "shutdown_grace: 100ms\n",
        &[("g.yaml", &GATED.replace("MODE", "queued"))],
    );
    let s = TestServer::start_in(dir, config.clone(), pipelines).await;
    let (status, _) = s
        .post_change("d-1", &change("refs/heads/main", &sha(9)))
        .await;
    assert_eq!(status, 202);
    let dir = s.stop().await;
    let rows = switchyard::store::Admin::open(&dir.path().join("state"))
        .expect("admin")
        .starts(&[])
        .expect("rows");
    assert_eq!(
        rows[0].state,
        StartState::Pending,
        "the start was stopped by the grace period, not lost"
    );
    std::fs::write(dir.path().join("go"), "").expect("gate");
    let (pipelines, _) = switchyard::pipeline::Pipelines::load_dir(&dir.path().join("triggers"));
    let s = TestServer::start_in(dir, config, pipelines).await;
    let root = s.root().to_path_buf();
    let log = eventually(10, "the resumed start", || {
        read(&root.join("log")).filter(|l| l.ends_with('\n'))
    })
    .await;
    assert_eq!(log.lines().collect::<Vec<_>>(), [sha(9)]);
    eventually(10, "recorded", || {
        (s.starts()[0].state == StartState::Succeeded).then_some(())
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_documented_answers() {
    let s = TestServer::start(
        "limits: {max_body_bytes: 2048}\n",
        &[("rec.yaml", RECORDER)],
    )
    .await;
    let now = jiff::Timestamp::now().as_second();
    let good = change("refs/heads/main", &sha(1));
    let addr = s.addr;
    let post = |headers: Vec<(String, String)>, body: Vec<u8>| async move {
        request(addr, "POST", "/hooks/hooks", &headers, body).await
    };

    let (status, body) = post(
        signed_headers("m-1", b"{\"schema\": ", now),
        b"{\"schema\": ".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let no_ref = good.replace("\"ref\":\"refs/heads/main\",", "");
    let (status, body) = post(
        signed_headers("m-2", no_ref.as_bytes(), now),
        no_ref.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("missing field `ref`"), "{body}");
    let bad_sha = good.replace(&sha(1), "xyz");
    let (status, body) = post(
        signed_headers("m-3", bad_sha.as_bytes(), now),
        bad_sha.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("after: must be a 40 or 64 character hex object id"),
        "{body}"
    );

    let big = vec![b'x'; 4096];
    let (status, _) = post(signed_headers("m-4", &big, now), big.clone()).await;
    assert_eq!(status, 413);

    let (status, body) = post(vec![], good.clone().into_bytes()).await;
    assert_eq!(
        (status, body.contains("webhook-id header is missing")),
        (401, true),
        "{body}"
    );
    let mut wrong = signed_headers("m-5", good.as_bytes(), now);
    wrong[2].1 = switchyard::signature::sign(
        &switchyard::signature::Key::from_secret("another secret").expect("key"),
        "m-5",
        now,
        good.as_bytes(),
    );
    let (status, body) = post(wrong, good.clone().into_bytes()).await;
    assert_eq!(
        (status, body.contains("no signature matches")),
        (401, true),
        "{body}"
    );
    let other_body = signed_headers("m-6", b"{}", now);
    let (status, _) = post(other_body, good.clone().into_bytes()).await;
    assert_eq!(status, 401, "a signature of another body");
    let (status, body) = post(
        signed_headers("m-7", good.as_bytes(), now - 301),
        good.clone().into_bytes(),
    )
    .await;
    assert_eq!(
        (status, body.contains("more than 5 minutes")),
        (401, true),
        "{body}"
    );
    assert!(s.starts().is_empty(), "nothing refused was stored");

    let (status, first) = post(
        signed_headers("m-8", good.as_bytes(), now),
        good.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = post(
        signed_headers("m-8", good.as_bytes(), now),
        good.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, 202);
    assert!(
        again.contains("\"status\":\"duplicate\"")
            && again.contains("\"duplicate_of\":\"delivery\""),
        "{again}"
    );
    assert_eq!(s.starts().len(), 1, "the replay started nothing");

    assert_eq!(
        request(s.addr, "POST", "/hooks/nope", &[], vec![]).await.0,
        404
    );
    assert_eq!(
        request(s.addr, "GET", "/hooks/hooks", &[], vec![]).await.0,
        405
    );
    assert_eq!(request(s.addr, "GET", "/healthz", &[], vec![]).await.0, 200);
    assert_eq!(request(s.addr, "GET", "/readyz", &[], vec![]).await.0, 200);
    let (status, metrics) = request(s.addr, "GET", "/metrics", &[], vec![]).await;
    assert_eq!(status, 200);
    for line in [
        "switchyard_deliveries_total{receiver=\"hooks\",outcome=\"accepted\"} 1",
        "switchyard_deliveries_total{receiver=\"hooks\",outcome=\"duplicate\"} 1",
        "switchyard_rejected_total{receiver=\"hooks\",reason=\"bad_signature\"} 2",
        "switchyard_rejected_total{receiver=\"hooks\",reason=\"stale\"} 1",
        "switchyard_rejected_total{receiver=\"hooks\",reason=\"malformed\"} 3",
        "switchyard_rejected_total{receiver=\"hooks\",reason=\"too_large\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_store_answers_503_and_recovers() {
    let (dir, mut config, pipelines) = server_project("", &[("rec.yaml", RECORDER)]);
    // The state directory's place is taken by a file: the store cannot open.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "not a directory").expect("file");
    config.state_dir = blocked.clone();
    let s = TestServer::start_in(dir, config, pipelines).await;
    let (status, body) = s
        .post_change("d-1", &change("refs/heads/main", &sha(1)))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        request(s.addr, "GET", "/healthz", &[], vec![]).await.0,
        200,
        "still serving"
    );
    assert_eq!(request(s.addr, "GET", "/readyz", &[], vec![]).await.0, 503);
    std::fs::remove_file(&blocked).expect("unblock");
    let (status, body) = s
        .post_change("d-1", &change("refs/heads/main", &sha(1)))
        .await;
    assert_eq!(
        status, 202,
        "the same delivery, retried by the sender, is accepted: {body}"
    );
    assert_eq!(request(s.addr, "GET", "/readyz", &[], vec![]).await.0, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_hold_the_server() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let s = TestServer::start("limits: {read_timeout: 300ms}\n", &[("rec.yaml", RECORDER)]).await;
    // Headers that never end.
    let mut slow_headers = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    slow_headers
        .write_all(b"POST /hooks/hooks HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // A body that never comes.
    let mut slow_body = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    slow_body
        .write_all(
            b"POST /hooks/hooks HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
        )
        .await
        .expect("write");
    // Meanwhile others are served.
    let (status, _) = s
        .post_change("d-1", &change("refs/heads/main", &sha(1)))
        .await;
    assert_eq!(status, 202);
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        slow_body.read_to_end(&mut buf),
    )
    .await;
    assert!(
        read.is_ok(),
        "the slow body's connection is answered and closed"
    );
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        slow_headers.read_to_end(&mut buf),
    )
    .await;
    assert!(read.is_ok(), "the slow headers' connection is closed");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_bounded_and_an_idle_one_cannot_keep_its_slot() {
    let s = TestServer::start(
        "limits: {max_connections: 1, max_connections_per_peer: 2, read_timeout: 300ms}\n",
        &[("rec.yaml", RECORDER)],
    )
    .await;
    // Takes the only slot and sends nothing.
    let idle = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let began = std::time::Instant::now();
    let (status, _) = s
        .post_change("d-1", &change("refs/heads/main", &sha(1)))
        .await;
    assert_eq!(status, 202);
    // Served only once the idle connection timed out and gave its slot back.
    assert!(
        began.elapsed() >= std::time::Duration::from_millis(250),
        "{:?}",
        began.elapsed()
    );
    drop(idle);
    s.stop().await;
}

#[test]
fn serve_refuses_to_start_on_an_unreachable_database_naming_it_without_credentials() {
    let p = crate::support::Project::new();
    p.file(
        "switchyard.yaml",
        "listen: 127.0.0.1:0\nstate_dir: state\nstore: {postgres: \"file:db-url\"}\n",
    );
    // Nothing listens on port 1.
    p.file("db-url", "postgres://yard:hunter2@127.0.0.1:1/yard\n");
    let run = p.run(&["serve"], &[], "");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("127.0.0.1:1/yard") && run.stderr.contains("hint:"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
}

/// A partition between `serve` and a runner in the middle of an attempt (nothing passes, no
/// RST, no FIN): the attempt fails at its timeout instead of hanging, is tried again, and the
/// start succeeds once the network heals; every request the runner sees carries the one start
/// id (an attempt cut off may arrive late, as a retransmission would, and is a repeat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_between_serve_and_a_runner_ends_in_a_retry_not_a_hang() {
    let (runner, runner_addr) = Runner::start().await.expect("runner");
    let partition = switchyard_lab::Partition::start(runner_addr)
        .await
        .expect("a proxy");
    let trigger = format!(
        "repository: https://github.com/acme/api.git\non: push\nstart:\n  timeout: 1s\n  http: {{url: \"http://{}/start\"}}\n",
        partition.addr()
    );
    let s = TestServer::start(
        "dispatch: {attempts: 20, backoff: 100ms, backoff_max: 200ms}\n",
        &[("t.yaml", &trigger)],
    )
    .await;
    partition.cut();
    let (status, answer) = s
        .post_change("cut-1", &change("refs/heads/main", &sha(1)))
        .await;
    assert_eq!(status, 202, "{answer}");
    // Attempts time out and are tried again while the network is cut.
    let tried = eventually(20, "attempts that timed out", || {
        let starts = s.starts();
        starts
            .first()
            .filter(|row| row.attempts >= 2)
            .map(|row| (row.attempts, row.last_error.clone()))
    })
    .await;
    assert!(
        tried
            .1
            .as_deref()
            .is_some_and(|e| e.contains("no answer within")),
        "{tried:?}"
    );
    assert!(runner.arrivals().is_empty(), "nothing passed the cut");
    partition.heal();
    eventually(20, "the start to succeed after the heal", || {
        s.starts()
            .first()
            .filter(|row| row.state == StartState::Succeeded)
            .map(drop)
    })
    .await;
    let arrivals = runner.arrivals();
    let id = &s.starts()[0].id;
    assert!(!arrivals.is_empty());
    assert!(
        arrivals.iter().all(|a| &a.start_id == id),
        "every request is the one start"
    );
    s.stop().await;
}
