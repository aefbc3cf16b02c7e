//! `switchyard changes list|show|replay` against a real `serve` and its store: a change that
//! starts one pipeline and is excluded from another shows both decisions with their reasons;
//! after the filter is fixed, a replay starts the missed pipeline once, and the same replay
//! asked again is a duplicate.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use switchyard_lab::Runner;

use crate::support::{
    Run, TestServer, change, dispatcher_idle, eventually, run_in, served_config, sha,
};

/// `deploy` starts on pushes to main touching `src/**`.
fn deploy(addr: SocketAddr) -> String {
    format!(
        "repository: https://github.com/acme/api.git\non:\n  push:\n    branches: [main]\n    paths: ['src/**']\nstart:\n  http: {{url: \"http://{addr}/start\", secret: \"file:$DIR/secret\"}}\n"
    )
}

/// `docs` starts on pushes touching `paths`.
fn docs(addr: SocketAddr, paths: &str) -> String {
    format!(
        "repository: https://github.com/acme/api.git\non:\n  push:\n    paths: [{paths}]\nstart:\n  http: {{url: \"http://{addr}/start\", secret: \"file:$DIR/secret\"}}\n"
    )
}

/// `switchyard ARGS` in `root`, to its end.
fn run(root: &Path, args: &[&str]) -> Run {
    run_in(root, args, &[], "")
}

/// `switchyard ARGS --format json`, which must succeed.
fn json(root: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--format", "json"]);
    let r = run(root, &args);
    assert_eq!(r.code, Some(0), "{args:?}: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", r.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_shown_and_a_replay_starts_the_missed_pipeline_once() {
    let (runner, addr) = Runner::start().await.expect("runner");
    let s = TestServer::start(
        "",
        &[
            ("deploy.yaml", &deploy(addr)),
            ("docs.yaml", &docs(addr, "'docs/**'")),
        ],
    )
    .await;
    let root = s.root().to_path_buf();
    std::fs::write(root.join("switchyard.yaml"), served_config(&root, "")).expect("config");
    let (status, answer) = s
        .post_change("d-1", &change("refs/heads/main", &sha(1)))
        .await;
    assert_eq!(status, 202, "{answer}");
    let change_id = answer["change"].as_str().expect("change id").to_owned();

    // The list shows the change with its start, once the start succeeded.
    let listed = eventually(10, "the start listed as succeeded", || {
        let list = json(&root, &["changes", "list"]);
        let first = list["changes"][0].clone();
        (first["starts"][0]["state"] == "succeeded").then_some(first)
    })
    .await;
    assert_eq!(listed["id"], change_id.as_str());
    assert_eq!(listed["repository"], "github.com/acme/api");
    assert_eq!(listed["ref"], "refs/heads/main");
    assert_eq!(listed["sha"], sha(1).as_str());
    assert_eq!(listed["first_source"], "webhook");
    assert_eq!(listed["sightings"], 1);
    assert_eq!(listed["starts"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["starts"][0]["pipeline"], "deploy");

    // Show, by a prefix: both decisions, with the reasons `explain` gives.
    let shown = json(&root, &["changes", "show", &change_id[..8]]);
    assert_eq!(shown["id"], change_id.as_str());
    assert_eq!(shown["change"]["id"], change_id.as_str());
    assert_eq!(shown["change"]["after"], sha(1).as_str());
    let decisions = shown["decisions"].as_array().expect("decisions");
    assert_eq!(decisions.len(), 2, "{shown:#}");
    assert_eq!(decisions[0]["pipeline"], "deploy");
    assert_eq!(decisions[0]["start"], true);
    assert_eq!(decisions[1]["pipeline"], "docs");
    assert_eq!(decisions[1]["start"], false);
    let reason = decisions[1]["reason"].as_str().unwrap_or("");
    assert_eq!(
        reason, "no changed path matched on.push.paths (1 changed path)",
        "{shown:#}"
    );
    // The same words `explain` prints for the stored event.
    std::fs::write(root.join("event.json"), shown["change"].to_string()).expect("event file");
    let explained = json(&root, &["explain", "--event", "event.json"]);
    assert_eq!(
        &explained["pipelines"], &shown["decisions"],
        "the decision log says what explain says"
    );
    assert_eq!(shown["sightings"][0]["source"], "webhook");
    assert_eq!(shown["sightings"][0]["delivery_id"], "d-1");
    assert_eq!(shown["starts"][0]["attempts"], 1);
    assert_eq!(shown["summary"], Value::Null);
    let text = run(&root, &["changes", "show", &change_id]);
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    assert!(text.stdout.contains("skip   docs    "), "{}", text.stdout);
    assert!(text.stdout.contains("start  deploy  "), "{}", text.stdout);

    // Replayed with today's definitions as they are: docs is still excluded, deploy's start
    // succeeded already.
    let again = json(&root, &["changes", "replay", &change_id]);
    assert_eq!(again["replayed"][0]["pipeline"], "deploy");
    assert_eq!(again["replayed"][0]["duplicate"], true);
    assert_eq!(again["replayed"].as_array().map(Vec::len), Some(1));

    // The filter fixed, a replay of docs starts it, once.
    std::fs::write(
        root.join("triggers/docs.yaml"),
        docs(addr, "'docs/**', 'src/**'"),
    )
    .expect("fix docs");
    let replay = json(
        &root,
        &["changes", "replay", &change_id, "--pipeline", "docs"],
    );
    let line = &replay["replayed"][0];
    assert_eq!(line["pipeline"], "docs", "{replay:#}");
    assert_eq!(line["duplicate"], false);
    assert_eq!(line["replay"], 1);
    let docs_start = line["start_id"].as_str().expect("start id").to_owned();
    runner
        .wait_for(Duration::from_secs(10), |a| {
            a.iter().any(|a| a.start_id == docs_start).then_some(())
        })
        .await
        .expect("the replayed start reaches the runner");
    let twice = json(
        &root,
        &["changes", "replay", &change_id, "--pipeline", "docs"],
    );
    assert_eq!(twice["replayed"][0]["duplicate"], true, "{twice:#}");
    assert_eq!(twice["replayed"][0]["start_id"], docs_start.as_str());
    // Whatever the store held after that replay, the dispatcher has since passed over and
    // finished attempting.
    dispatcher_idle(s.addr, &s.root().join("state")).await;
    let arrivals = runner.arrivals();
    assert_eq!(
        arrivals.iter().filter(|a| a.start_id == docs_start).count(),
        1,
        "the replay started docs once"
    );
    assert_eq!(arrivals.len(), 2, "deploy once, docs once");
    let text = run(
        &root,
        &["changes", "replay", &change_id, "--pipeline", "docs"],
    );
    assert!(
        text.stdout
            .contains(&format!("duplicate  docs  start {docs_start} is")),
        "{}",
        text.stdout
    );

    // The change now shows the replayed start with its number; `--pipeline` filters.
    let shown = eventually(10, "the replayed start succeeded", || {
        let shown = json(&root, &["changes", "show", &change_id]);
        (shown["starts"][1]["state"] == "succeeded").then_some(shown)
    })
    .await;
    assert_eq!(shown["starts"][1]["pipeline"], "docs");
    assert_eq!(shown["starts"][1]["replay"], 1);
    let docs_changes = json(&root, &["changes", "list", "--pipeline", "docs"]);
    assert_eq!(docs_changes["changes"].as_array().map(Vec::len), Some(1));
    let other_repo = json(
        &root,
        &[
            "changes",
            "list",
            "--repository",
            "git@github.com:acme/web.git",
        ],
    );
    assert_eq!(other_repo["changes"].as_array().map(Vec::len), Some(0));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_started_nothing_says_why_and_bad_requests_name_their_input() {
    let (_runner, addr) = Runner::start().await.expect("runner");
    let s = TestServer::start("", &[("docs.yaml", &docs(addr, "'docs/**'"))]).await;
    let root = s.root().to_path_buf();
    std::fs::write(root.join("switchyard.yaml"), served_config(&root, "")).expect("config");
    let (status, answer) = s
        .post_change("d-1", &change("refs/heads/main", &sha(2)))
        .await;
    assert_eq!(status, 202, "{answer}");
    let change_id = answer["change"].as_str().expect("change id").to_owned();
    let shown = run(&root, &["changes", "show", &change_id]);
    assert_eq!(shown.code, Some(0), "{}", shown.stderr);
    let last = shown.stdout.lines().last().unwrap_or("");
    assert!(
        last == "nothing started: docs: no changed path matched on.push.paths (1 changed path)",
        "{}",
        shown.stdout
    );
    // A change of a repository nobody watches.
    let (_, other) = s
        .post_change(
            "d-2",
            &crate::support::change_in(
                "https://github.com/acme/web.git",
                "refs/heads/main",
                &sha(3),
            ),
        )
        .await;
    let other_id = other["change"].as_str().expect("change id");
    let shown = json(&root, &["changes", "show", other_id]);
    assert_eq!(
        shown["summary"],
        "nothing started: no pipeline watches github.com/acme/web"
    );
    assert_eq!(shown["decisions"], serde_json::json!([]));
    // Newest first; --since keeps both, --limit one.
    let list = json(&root, &["changes", "list", "--since", "1h", "--limit", "1"]);
    assert_eq!(list["changes"][0]["id"], other_id);
    assert_eq!(list["changes"].as_array().map(Vec::len), Some(1));

    for (args, says) in [
        (
            vec!["changes", "show", "ffffffff0000"],
            "no change with id \"ffffffff0000\"",
        ),
        (vec!["changes", "show", "<b>"], "no change with id"),
        (
            vec!["changes", "replay", &change_id, "--pipeline", "doc"],
            "no pipeline named \"doc\"\nhint: did you mean \"docs\"?",
        ),
        (
            vec!["changes", "list", "--since", "soon"],
            "hint: write a duration such as 90s",
        ),
        (
            vec!["changes", "list", "--limit", "0"],
            "hint: ask for 1 to",
        ),
    ] {
        let r = run(&root, &args);
        assert_eq!(r.code, Some(1), "{args:?}: {}", r.stdout);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
    s.stop().await;
}
