//! Polling end to end against real git servers on loopback (`git daemon`, smart HTTP, local
//! paths): the poller with a real store, `serve` with polling on, and `switchyard poll --once`.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use switchyard::event::{ChangeEvent, SourceKind, ZERO_SHA};
use switchyard::intake::Intake;
use switchyard::metrics::Metrics;
use switchyard::outcome::IntakeOutcome;
use switchyard::sources::poll::{PollReport, Poller};
use switchyard::store::{Admin, Role, StartState, Store};

use switchyard_lab::git::many_branches;
use switchyard_lab::{GitDaemon, GitHttp, Sshd, Work, bare, or_skip, request};

use crate::support::{Project, TestServer, counted, eventually, serve, server_project};

/// Starts only for changes under `src/`, on any branch or tag.
fn src_only(repository: &str) -> String {
    format!(
        "repository: {repository}\non:\n  push:\n    branches: ['**']\n    tags: ['**']\n    paths: ['src/**']\nstart:\n  exec: [\"/bin/true\"]\n"
    )
}

/// A poller over one repository with a real store in a temp project.
struct Lab {
    dir: tempfile::TempDir,
    poller: Arc<Poller>,
}

impl Lab {
    fn new(url: &str, triggers: &[(&str, &str)]) -> Lab {
        let extra = format!("poll:\n  - url: {url}\n    interval: 1s\n");
        let (dir, config, pipelines) = server_project(&extra, triggers);
        let store = Store::open(
            &config.state_dir,
            Role::Serve,
            Arc::new(tokio::sync::Notify::new()),
        );
        let metrics = Arc::new(Metrics::default());
        let intake = Intake::new(Arc::new(pipelines), store.clone(), Arc::clone(&metrics));
        let poller = Poller::new(
            &config.poll,
            &config.polling,
            &config.state_dir,
            intake,
            store,
            metrics,
        );
        Lab {
            dir,
            poller: Arc::new(poller),
        }
    }

    async fn poll(&self) -> PollReport {
        self.poller.poll_once(0).await.expect("the poll succeeds")
    }

    /// The events of one poll.
    async fn changes(&self) -> Vec<ChangeEvent> {
        let report = self.poll().await;
        assert!(!report.baseline);
        report.found.into_iter().map(|(e, _)| e).collect()
    }

    fn admin(&self) -> Admin {
        Admin::open(&self.dir.path().join("state")).expect("admin")
    }
}

fn paths(e: &ChangeEvent) -> Vec<&str> {
    e.changed_paths.iter().map(String::as_str).collect()
}

/// (ref, `before` or `after`) of each change.
fn refs_at(found: &[ChangeEvent], before: bool) -> Vec<(&str, &str)> {
    found
        .iter()
        .map(|e| {
            let sha = if before { &e.before } else { &e.after };
            (e.git_ref.as_str(), sha.as_str())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_ref_move_becomes_one_change_with_its_paths() {
    let base = tempfile::tempdir().expect("temp dir");
    let origin = bare(base.path(), "api.git");
    let work = Work::new();
    let first = work.commit(&[("README", Some("hi")), ("src/a.rs", Some("a"))], "first");
    work.push(&origin, &["main"]);
    let Some(daemon) = or_skip(GitDaemon::start(base.path())) else {
        return;
    };
    let url = daemon.url("api.git");
    let lab = Lab::new(&url, &[("src.yaml", &src_only(&url))]);

    let baseline = lab.poll().await;
    assert!(baseline.baseline, "the first poll records the baseline");
    assert!(baseline.found.is_empty());
    assert!(lab.changes().await.is_empty(), "nothing moved");

    // A new commit: its paths and count; it starts the src/ pipeline.
    let second = work.commit(
        &[("src/b.rs", Some("b")), ("docs/x.md", Some("x"))],
        "second",
    );
    work.push(&origin, &["main"]);
    let found = lab.changes().await;
    assert_eq!(found.len(), 1, "{found:?}");
    let e = &found[0];
    assert_eq!(
        (e.git_ref.as_str(), e.before.as_str(), e.after.as_str()),
        ("refs/heads/main", first.as_str(), second.as_str())
    );
    assert_eq!(paths(e), ["docs/x.md", "src/b.rs"]);
    assert!(e.changed_paths_complete);
    assert_eq!(e.commit_count, Some(1));
    assert_eq!(e.source.kind, SourceKind::Poll);
    assert!(!e.created && !e.deleted);
    let starts = lab.admin().starts(&[]).expect("starts");
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].change_id, e.id);

    // A forced push: the paths are the tree difference, not ancestry.
    work.reset_hard(&first);
    let forced = work.commit(&[("docs/y.md", Some("y"))], "rewritten");
    work.push(&origin, &["+main"]);
    let found = lab.changes().await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].before, second);
    assert_eq!(found[0].after, forced);
    assert_eq!(paths(&found[0]), ["docs/x.md", "docs/y.md", "src/b.rs"]);
    assert_eq!(found[0].commit_count, Some(1));

    // A new branch: paths against its merge base with the default branch.
    work.branch("feature", "main");
    let feature = work.commit(&[("src/f.rs", Some("f"))], "feature");
    work.push(&origin, &["feature"]);
    let found = lab.changes().await;
    assert_eq!(found.len(), 1);
    assert!(found[0].created);
    assert_eq!(found[0].before, ZERO_SHA);
    assert_eq!(found[0].after, feature);
    assert_eq!(paths(&found[0]), ["src/f.rs"]);
    assert_eq!(found[0].commit_count, Some(1));

    // Tags, annotated and lightweight, created at once.
    let annotated = work.tag("v1", &feature, Some("release 1"));
    let light = work.tag("nightly", &forced, None);
    work.push(&origin, &["refs/tags/v1", "refs/tags/nightly"]);
    let found = lab.changes().await;
    assert_eq!(
        refs_at(&found, false),
        [
            ("refs/tags/nightly", light.as_str()),
            ("refs/tags/v1", annotated.as_str())
        ]
    );
    assert_ne!(annotated, feature, "an annotated tag is its own object");
    assert!(found.iter().all(|e| e.created));
    // `nightly` is at main's head: nothing beyond the merge base; `v1` is at feature's head.
    assert!(found[0].changed_paths.is_empty());
    assert_eq!(paths(&found[1]), ["src/f.rs"]);

    // Deleted tag and branch: changes without paths, complete.
    work.push(&origin, &[":refs/tags/v1", ":feature"]);
    let found = lab.changes().await;
    assert_eq!(
        refs_at(&found, true),
        [
            ("refs/heads/feature", feature.as_str()),
            ("refs/tags/v1", annotated.as_str())
        ]
    );
    assert!(
        found
            .iter()
            .all(|e| e.deleted && e.changed_paths.is_empty())
    );
    assert!(lab.changes().await.is_empty(), "the cursors moved");

    // The stored starts: the pushes that touched src/ (the second commit, the forced push that
    // removed src/b.rs, the feature branch) and both tags (GitHub's rule: path filters are
    // not evaluated for tags).
    let pipelines_started: Vec<String> = lab
        .admin()
        .starts(&[])
        .expect("starts")
        .into_iter()
        .map(|s| s.git_ref)
        .collect();
    assert_eq!(
        pipelines_started,
        [
            "refs/heads/main",
            "refs/heads/main",
            "refs/heads/feature",
            "refs/tags/nightly",
            "refs/tags/v1"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_moved_ref_among_500_is_one_change() {
    let base = tempfile::tempdir().expect("temp dir");
    let origin = bare(base.path(), "many.git");
    let work = Work::new();
    let head = work.commit(&[("src/a.rs", Some("a"))], "first");
    work.push(&origin, &["main"]);
    many_branches(&origin, 500, &head);
    let Some(daemon) = or_skip(GitDaemon::start(base.path())) else {
        return;
    };
    let url = daemon.url("many.git");
    let lab = Lab::new(&url, &[("src.yaml", &src_only(&url))]);
    let baseline = lab.poll().await;
    assert_eq!(baseline.refs, 501);
    work.branch("bulk/0250", "main");
    let moved = work.commit(&[("src/moved.rs", Some("m"))], "moved");
    work.push(&origin, &["+bulk/0250"]);
    let found = lab.changes().await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].git_ref, "refs/heads/bulk/0250");
    assert_eq!(found[0].after, moved);
    assert_eq!(paths(&found[0]), ["src/moved.rs"]);
}

/// A poller over the state a stopped server left in `root`, configured as it was.
fn poller_over(
    root: &Path,
    extra: &str,
    triggers: &[(&str, &str)],
) -> (Poller, switchyard::config::Config) {
    let (_, mut config, pipelines) = server_project(extra, triggers);
    config.state_dir = root.join("state");
    let store = Store::open(
        &config.state_dir,
        Role::Serve,
        Arc::new(tokio::sync::Notify::new()),
    );
    let metrics = Arc::new(Metrics::default());
    let intake = Intake::new(Arc::new(pipelines), store.clone(), Arc::clone(&metrics));
    let poller = Poller::new(
        &config.poll,
        &config.polling,
        &config.state_dir,
        intake,
        store,
        metrics,
    );
    (poller, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_a_webhook_announced_first_is_not_started_twice() {
    let base = tempfile::tempdir().expect("temp dir");
    let origin = bare(base.path(), "api.git");
    let work = Work::new();
    let first = work.commit(&[("src/a.rs", Some("a"))], "first");
    work.push(&origin, &["main"]);
    let url = format!("file://{}", origin.display());
    let extra = format!("poll:\n  - url: {url}\n    interval: 1h\n");
    let s = TestServer::start(&extra, &[("src.yaml", &src_only(&url))]).await;
    baseline(s.root()).await;
    let second = work.commit(&[("src/b.rs", Some("b"))], "second");
    work.push(&origin, &["main"]);
    let event = serde_json::json!({
        "schema": "switchyard.change/v1",
        "repository": url,
        "kind": "push",
        "ref": "refs/heads/main",
        "before": first,
        "after": second,
        "changed_paths": ["src/b.rs"],
    });
    let (status, answer) = s.post_change("d-1", &event.to_string()).await;
    assert_eq!(status, 202, "{answer}");
    // Now the poll: the same change, seen again, adds a sighting and no start.
    let dir = s.stop().await;
    let (poller, config) = poller_over(dir.path(), &extra, &[("src.yaml", &src_only(&url))]);
    let report = poller.poll_once(0).await.expect("poll");
    assert_eq!(report.found.len(), 1);
    assert!(matches!(report.found[0].1, IntakeOutcome::Duplicate { .. }));
    let admin = Admin::open(&config.state_dir).expect("admin");
    assert_eq!(admin.starts(&[]).expect("starts").len(), 1);
    let change = &report.found[0].0.id;
    let sources: Vec<String> = admin
        .sightings(change)
        .expect("sightings")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(sources, ["webhook", "poll"]);
}

/// A push change as a producer posts it.
fn pushed(repository: &str, before: &str, after: &str, paths: &[&str]) -> String {
    serde_json::json!({
        "schema": "switchyard.change/v1",
        "repository": repository,
        "kind": "push",
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "changed_paths": paths,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_reports_exactly_the_push_whose_webhook_was_lost() {
    let base = tempfile::tempdir().expect("temp dir");
    let origin = bare(base.path(), "api.git");
    let work = Work::new();
    let c0 = work.commit(&[("src/a.rs", Some("a"))], "c0");
    work.push(&origin, &["main"]);
    let url = format!("file://{}", origin.display());
    let extra = format!("poll:\n  - url: {url}\n    interval: 1h\n");
    let triggers = [("src.yaml", src_only(&url))];
    let triggers: Vec<(&str, &str)> = triggers.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let s = TestServer::start(&extra, &triggers).await;
    baseline(s.root()).await;
    // Three pushes; the webhook of the first is lost, the other two arrive.
    let mut tips = vec![c0];
    for (file, n) in [("src/lost.rs", "1"), ("docs/x.md", "2"), ("src/c.rs", "3")] {
        tips.push(work.commit(&[(file, Some(n))], n));
        work.push(&origin, &["main"]);
    }
    for (i, (d, paths)) in [("d-2", ["docs/x.md"]), ("d-3", ["src/c.rs"])]
        .iter()
        .enumerate()
    {
        let body = pushed(&url, &tips[i + 1], &tips[i + 2], paths);
        let (status, answer) = s.post_change(d, &body).await;
        assert_eq!(status, 202, "{answer}");
    }
    let dir = s.stop().await;
    let (poller, config) = poller_over(dir.path(), &extra, &triggers);
    // Polling sees main move c0 → c3 and reports only c0 → c1, the push nobody announced.
    let report = poller.poll_once(0).await.expect("poll");
    assert_eq!(report.found.len(), 1, "{:?}", report.found);
    let (event, outcome) = &report.found[0];
    assert_eq!(
        (event.before.as_str(), event.after.as_str()),
        (tips[0].as_str(), tips[1].as_str())
    );
    assert_eq!(paths(event), ["src/lost.rs"]);
    assert!(
        matches!(outcome, IntakeOutcome::Accepted { starts, .. } if starts.len() == 1),
        "{outcome:?}"
    );
    // c3 started once (its webhook), c1 once (polling); c2 changed only docs.
    let admin = Admin::open(&config.state_dir).expect("admin");
    assert_eq!(admin.starts(&[]).expect("starts").len(), 2);
    // The next poll finds nothing more: the cursor is at c3.
    let again = poller.poll_once(0).await.expect("poll");
    assert!(again.found.is_empty(), "{:?}", again.found);
}

/// When `serve` logged each failed poll, from its log: (the failures in a row, the time).
fn failed_polls(log: &str) -> Vec<(u32, jiff::Timestamp)> {
    log.lines()
        .filter(|l| l.contains("poll failed"))
        .filter_map(|l| {
            let at = l.split_whitespace().next()?.parse().ok()?;
            let failures = l.split("failures=").nth(1)?.split_whitespace().next()?;
            Some((failures.parse().ok()?, at))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_goes_down_is_retried_with_backoff_and_recovers() {
    let base = tempfile::tempdir().expect("temp dir");
    let origin = bare(base.path(), "api.git");
    let work = Work::new();
    work.commit(&[("src/a.rs", Some("a"))], "first");
    work.push(&origin, &["main"]);
    let Some(mut daemon) = or_skip(GitDaemon::start(base.path())) else {
        return;
    };
    let url = daemon.url("api.git");
    let project = Project::new();
    project
        .file(
            "switchyard.yaml",
            &format!(
                "state_dir: state\npoll:\n  - url: {url}\n    interval: 200ms\n    max_interval: 1s\n"
            ),
        )
        .file("triggers/src.yaml", &src_only(&url));
    let s = serve(project.root(), &[]).await;
    let polls = "switchyard_poll_requests_total";
    // Polling works, then the server goes away.
    counted(
        s.addr(),
        polls,
        &[("kind", "ls-remote"), ("outcome", "ok")],
        2.0,
    )
    .await;
    daemon.stop();
    // Four polls fail, as serve counts and logs them (with the time of each). Backing off, the
    // wait after the k-th failure in a row is the 200 ms interval doubled k times up to the
    // 1 s ceiling (±10% jitter): 400 ms, 800 ms, 1 s. Not backing off, they would be 200 ms
    // apart.
    counted(
        s.addr(),
        polls,
        &[("kind", "ls-remote"), ("outcome", "error")],
        4.0,
    )
    .await;
    let failed = eventually(10, "four failed polls in the log", || {
        let failed = failed_polls(&s.err());
        (failed.len() >= 4).then_some(failed)
    })
    .await;
    let counts: Vec<u32> = failed.iter().map(|(n, _)| *n).collect();
    assert_eq!(counts[..4], [1, 2, 3, 4], "{}", s.err());
    for (k, pair) in failed[..4].windows(2).enumerate() {
        let gap = pair[1].1.duration_since(pair[0].1).as_secs_f64();
        let backoff = (0.2 * 2f64.powi(k as i32 + 1)).min(1.0);
        assert!(
            gap >= 0.75 * backoff,
            "failure {} came {gap:.3} s after failure {}: no backoff of {backoff} s\n{}",
            k + 2,
            k + 1,
            s.err()
        );
    }
    let (status, _) = request(s.addr(), "GET", "/healthz", &[], Vec::new()).await;
    assert_eq!(status, 200, "the server is still up");
    // The server returns; a change pushed meanwhile is found and started.
    work.commit(&[("src/b.rs", Some("b"))], "while down");
    work.push(&origin, &["main"]);
    daemon.restart();
    let root = project.root().to_path_buf();
    eventually(10, "the change pushed while the server was down", || {
        let starts = Admin::open(&root.join("state")).ok()?.starts(&[]).ok()?;
        (starts.len() == 1).then_some(())
    })
    .await;
    assert!(s.stop().await, "serve stops cleanly");
}

#[test]
fn poll_once_prints_changes_and_names_a_refused_token() {
    let base = tempfile::tempdir().expect("temp dir");
    let origin = bare(base.path(), "api.git");
    let work = Work::new();
    let first = work.commit(&[("src/a.rs", Some("a"))], "first");
    work.push(&origin, &["main"]);
    let Some(http) = or_skip(GitHttp::start(base.path(), "ci", "s3cret-token")) else {
        return;
    };
    let url = http.url("api.git");
    let project = Project::new();
    project
        .file(
            "switchyard.yaml",
            &format!(
                "state_dir: state\npoll:\n  - url: {url}\n    auth: {{token: env:GIT_TOKEN, username: ci}}\n"
            ),
        )
        .file("triggers/src.yaml", &src_only(&url));
    let run = |token: &str| project.run(&["poll", "--once"], &[("GIT_TOKEN", token)], "");

    let refused = run("wrong-token");
    let stderr = refused.stderr.as_str();
    assert_eq!(refused.code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot sign in to {url}")),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(
        !stderr.contains("wrong-token"),
        "the token leaked: {stderr}"
    );

    let baseline = run("s3cret-token");
    let stderr = baseline.stderr.as_str();
    assert!(baseline.success(), "{stderr}");
    assert!(
        stderr.contains("1 refs recorded as the baseline"),
        "{stderr}"
    );
    assert_eq!(baseline.stdout.as_str().trim(), "[]");

    let second = work.commit(&[("src/b.rs", Some("b"))], "second");
    work.push(&origin, &["main"]);
    let found = run("s3cret-token");
    assert!(found.success());
    let events: Value = serde_json::from_str(&found.stdout).expect("a JSON array");
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{events}");
    assert_eq!(events[0]["before"], first.as_str());
    assert_eq!(events[0]["after"], second.as_str());
    assert_eq!(events[0]["changed_paths"], serde_json::json!(["src/b.rs"]));
    assert_eq!(events[0]["source"]["kind"], "poll");
    // Stored like serve stores it: the start waits in the outbox.
    let starts = Admin::open(&project.root().join("state"))
        .expect("admin")
        .starts(&[StartState::Pending])
        .expect("starts");
    assert_eq!(starts.len(), 1);
}

#[test]
fn a_crash_between_poll_and_store_loses_nothing_and_doubles_nothing() {
    let base = tempfile::tempdir().expect("temp dir");
    let origin = bare(base.path(), "api.git");
    let work = Work::new();
    work.commit(&[("src/a.rs", Some("a"))], "first");
    work.push(&origin, &["main"]);
    let project = Project::new();
    project
        .file(
            "switchyard.yaml",
            &format!("state_dir: state\npoll:\n  - url: {}\n", origin.display()),
        )
        .file(
            "triggers/src.yaml",
            &src_only(&origin.display().to_string()),
        );
    let run = |crash: bool| {
        let crash_at: &[(&str, &str)] = if crash {
            &[("SWITCHYARD_CRASH_AT", "poll-store")]
        } else {
            &[]
        };
        project.run(&["poll", "--once"], crash_at, "")
    };
    assert!(run(false).success(), "the baseline");
    let second = work.commit(&[("src/b.rs", Some("b"))], "second");
    work.push(&origin, &["main"]);
    let crashed = run(true);
    assert!(!crashed.success(), "the process aborted");
    let admin = || Admin::open(&project.root().join("state")).expect("admin");
    assert!(admin().starts(&[]).expect("starts").is_empty());

    let after = run(false);
    assert!(after.success());
    let events: Value = serde_json::from_str(&after.stdout).expect("JSON");
    assert_eq!(
        events[0]["after"],
        second.as_str(),
        "the change is found again"
    );
    assert_eq!(admin().starts(&[]).expect("starts").len(), 1);
    let again = run(false);
    assert_eq!(again.stdout.as_str().trim(), "[]");
    assert_eq!(
        admin().starts(&[]).expect("starts").len(),
        1,
        "started once"
    );
}

/// Waits for the first poll of a server's repository: the mirror exists once its baseline
/// is stored.
async fn baseline(root: &Path) {
    let mirrors = root.join("state/mirrors");
    let _mirror = eventually(10, "the baseline", || {
        std::fs::read_dir(&mirrors).ok().and_then(|mut d| d.next())
    })
    .await;
}

/// A CodeCommit-style event: a push with no paths.
fn pathless(repository: &str, before: &str, after: &str) -> String {
    serde_json::json!({
        "schema": "switchyard.change/v1",
        "repository": repository,
        "kind": "push",
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "changed_paths": [],
        "changed_paths_complete": false,
    })
    .to_string()
}

fn stored_event(root: &Path, change: &str) -> Value {
    let json = Admin::open(&root.join("state"))
        .expect("admin")
        .change(change)
        .expect("read")
        .expect("stored");
    serde_json::from_str(&json).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_without_paths_is_completed_from_the_mirror_before_filtering() {
    let base = tempfile::tempdir().expect("temp dir");
    let origin = bare(base.path(), "api.git");
    let work = Work::new();
    let first = work.commit(&[("src/a.rs", Some("a"))], "first");
    work.push(&origin, &["main"]);
    let url = format!("file://{}", origin.display());
    let extra = format!("poll:\n  - url: {url}\n    interval: 1h\n");
    let s = TestServer::start(&extra, &[("src.yaml", &src_only(&url))]).await;

    // Docs only: completed, and the src/ pipeline does not start.
    let docs = work.commit(&[("docs/x.md", Some("x"))], "docs");
    work.push(&origin, &["main"]);
    let (status, answer) = s.post_change("d-1", &pathless(&url, &first, &docs)).await;
    assert_eq!(status, 202, "{answer}");
    let change = answer["change"].as_str().expect("change id").to_owned();
    let root = s.root().to_path_buf();
    let event = eventually(10, "the completed event", || {
        let e = stored_event(&root, &change);
        e.get("completion").is_some().then_some(e)
    })
    .await;
    assert_eq!(event["completion"]["outcome"], "completed");
    assert_eq!(event["changed_paths"], serde_json::json!(["docs/x.md"]));
    assert_eq!(event["changed_paths_complete"], true);

    // Under src/: completed, and started.
    let code = work.commit(&[("src/b.rs", Some("b"))], "code");
    work.push(&origin, &["main"]);
    let (status, answer) = s.post_change("d-2", &pathless(&url, &docs, &code)).await;
    assert_eq!(status, 202, "{answer}");
    let change = answer["change"].as_str().expect("change id").to_owned();
    let starts = eventually(10, "the start", || {
        let rows = s.starts();
        rows.iter().any(|r| r.change_id == change).then_some(rows)
    })
    .await;
    assert_eq!(starts.len(), 1, "the docs-only change started nothing");
    assert_eq!(
        stored_event(s.root(), &change)["changed_paths"],
        serde_json::json!(["src/b.rs"])
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_cannot_be_completed_is_dispatched_with_paths_unknown() {
    let base = tempfile::tempdir().expect("temp dir");
    let Some(mut daemon) = or_skip(GitDaemon::start(base.path())) else {
        return;
    };
    let url = daemon.url("gone.git");
    daemon.stop();
    let extra =
        format!("poll:\n  - url: {url}\n    interval: 1h\npolling:\n  complete_within: 2s\n");
    let s = TestServer::start(&extra, &[("src.yaml", &src_only(&url))]).await;
    let (status, answer) = s
        .post_change("d-1", &pathless(&url, &"1".repeat(40), &"2".repeat(40)))
        .await;
    assert_eq!(status, 202, "{answer}");
    let change = answer["change"].as_str().expect("change id").to_owned();
    // Path filters pass unknown paths: the src/ pipeline starts.
    eventually(10, "the start", || {
        s.starts()
            .iter()
            .any(|r| r.change_id == change)
            .then_some(())
    })
    .await;
    let event = stored_event(s.root(), &change);
    assert_eq!(event["changed_paths_complete"], false);
    let outcome = event["completion"]["outcome"].as_str().unwrap_or_default();
    assert!(outcome == "failed" || outcome == "timed_out", "{event}");
    assert!(
        event["completion"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("127.0.0.1")),
        "{event}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_no_flags_in_a_clone_starts_the_example_pipeline_on_a_commit() {
    // A clone of this project as far as serve cares: its triggers/, examples/ and .gitignore
    // (which keeps the state directory out of commits), committed.
    let clone = Work::new();
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["triggers", "examples", ".gitignore"] {
        let status = std::process::Command::new("cp")
            .args(["-R"])
            .arg(project.join(dir))
            .arg(clone.path())
            .status()
            .expect("cp");
        assert!(status.success());
    }
    clone.commit(&[("README.md", Some("clone"))], "initial");
    let serve = serve(clone.path(), &[]).await;
    eventually(20, "the baseline of the clone", || {
        serve.err().contains("baseline recorded").then_some(())
    })
    .await;
    let sha = clone.commit(&[("src/lib.rs", Some("fn main() {}"))], "a change");
    let line = eventually(20, "the example pipeline", || {
        serve
            .out()
            .lines()
            .find(|l| l.starts_with("started self-test"))
            .map(str::to_owned)
    })
    .await;
    assert!(
        line.contains(&format!("refs/heads/main {sha}")) && line.contains("source poll"),
        "{line}"
    );
    let log = serve.err();
    assert!(serve.stop().await, "serve stopped cleanly: {log}");
    assert!(
        clone.path().join(".switchyard/webhook-secret").exists(),
        "the built-in receiver's secret was generated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_only_polling_found_counts_as_missed_by_the_webhooks() {
    let base = tempfile::tempdir().expect("temp dir");
    let origin = bare(base.path(), "api.git");
    let work = Work::new();
    let first = work.commit(&[("src/a.rs", Some("a"))], "first");
    work.push(&origin, &["main"]);
    let url = format!("file://{}", origin.display());
    let extra =
        format!("poll:\n  - url: {url}\n    interval: 300ms\npolling:\n  missed_grace: 500ms\n");
    let s = TestServer::start(&extra, &[("src.yaml", &src_only(&url))]).await;
    baseline(s.root()).await;

    // Announced by the webhook: not missed.
    let second = work.commit(&[("src/b.rs", Some("b"))], "announced");
    work.push(&origin, &["main"]);
    let announced = serde_json::json!({
        "schema": "switchyard.change/v1", "repository": url, "kind": "push",
        "ref": "refs/heads/main", "before": first, "after": second,
        "changed_paths": ["src/b.rs"],
    });
    let (status, _) = s.post_change("d-1", &announced.to_string()).await;
    assert_eq!(status, 202);
    // Pushed without a webhook: polling finds it, and counts it missed after the grace.
    work.commit(&[("src/c.rs", Some("c"))], "silent");
    work.push(&origin, &["main"]);
    let missed = [("source", "webhook")];
    let m = counted(s.addr, "switchyard_missed_total", &missed, 1.0).await;
    assert_eq!(m.sum("switchyard_missed_total", &missed), 1.0, "{m}");
    let lag = "switchyard_detection_lag_seconds_count";
    assert!(m.sum(lag, &[("source", "webhook")]) >= 1.0, "{m}");
    assert!(m.sum(lag, &[("source", "poll")]) >= 1.0, "{m}");
    assert_eq!(s.starts().len(), 2, "each change started once");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_from_a_fork_is_completed_against_its_merge_base() {
    let base = tempfile::tempdir().expect("temp dir");
    let origin = bare(base.path(), "api.git");
    let work = Work::new();
    let main = work.commit(&[("src/a.rs", Some("a"))], "first");
    work.push(&origin, &["main"]);
    // The fork's branch exists in the base repository only as the forge's pull ref.
    work.branch("fork-feature", "main");
    let head = work.commit(
        &[("src/pr.rs", Some("pr")), ("docs/pr.md", Some("d"))],
        "pr",
    );
    work.push(&origin, &["fork-feature:refs/pull/7/head"]);
    work.git(&["checkout", "--quiet", "main"]);
    let later = work.commit(&[("src/later.rs", Some("l"))], "main moves on");
    work.push(&origin, &["main"]);
    let url = format!("file://{}", origin.display());
    let extra = format!("poll:\n  - url: {url}\n    interval: 1h\n");
    let s = TestServer::start(&extra, &[("src.yaml", &src_only(&url))]).await;
    let pull = serde_json::json!({
        "schema": "switchyard.change/v1", "repository": url, "kind": "pull_request",
        "ref": "refs/heads/fork-feature", "before": ZERO_SHA, "after": head, "created": false,
        "changed_paths": [], "changed_paths_complete": false,
        "pull_request": {"number": 7, "action": "opened", "merged": false,
            "base_ref": "refs/heads/main", "base_sha": later, "head_sha": head},
    });
    let (status, answer) = s.post_change("pr-7", &pull.to_string()).await;
    assert_eq!(status, 202, "{answer}");
    let change = answer["change"].as_str().expect("change id").to_owned();
    let root = s.root().to_path_buf();
    let event = eventually(10, "the completed event", || {
        let e = stored_event(&root, &change);
        e.get("completion").is_some().then_some(e)
    })
    .await;
    assert_eq!(event["completion"]["outcome"], "completed", "{event}");
    // Against the merge base (`main` before it moved on): the pull request's own files only.
    assert_eq!(
        event["changed_paths"],
        serde_json::json!(["docs/pr.md", "src/pr.rs"])
    );
    assert_ne!(main, later);
    s.stop().await;
}

#[test]
fn ssh_with_a_deploy_key_polls_and_a_refused_key_or_unknown_host_is_named() {
    let base = tempfile::tempdir().expect("temp dir");
    let origin = bare(base.path(), "api.git");
    let work = Work::new();
    work.commit(&[("src/a.rs", Some("a"))], "first");
    work.push(&origin, &["main"]);
    let Some(sshd) = or_skip(Sshd::start()) else {
        return;
    };
    let url = sshd.url(&origin);
    let home = tempfile::tempdir().expect("home");
    std::fs::create_dir(home.path().join(".ssh")).expect(".ssh");
    let project = Project::new();
    let config = |key: &str| {
        format!(
            "state_dir: state\npoll:\n  - url: {url}\n    auth: {{ssh_key: file:{}}}\n",
            sshd.key(key).display()
        )
    };
    project.file("triggers/src.yaml", &src_only(&url));
    let home_dir = home.path().display().to_string();
    let run = || project.run(&["poll", "--once"], &[("HOME", &home_dir)], "");

    // The host is not known yet: refused, and said so.
    project.file("switchyard.yaml", &config("client"));
    let unknown = run();
    let stderr = unknown.stderr.as_str();
    assert_eq!(unknown.code, Some(1), "{stderr}");
    assert!(stderr.contains("ssh host key is not trusted"), "{stderr}");
    assert!(
        stderr.contains("known_hosts"),
        "the hint says where: {stderr}"
    );

    // Known host, the wrong key: an authentication error naming the URL.
    std::fs::write(home.path().join(".ssh/known_hosts"), sshd.known_hosts()).expect("known_hosts");
    project.file("switchyard.yaml", &config("stranger"));
    let refused = run();
    let stderr = refused.stderr.as_str();
    assert_eq!(refused.code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot sign in to {url}")),
        "{stderr}"
    );
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");

    // The deploy key: the baseline, then a change with its paths.
    project.file("switchyard.yaml", &config("client"));
    let baseline = run();
    assert!(baseline.success(), "{}", baseline.stderr.as_str());
    let second = work.commit(&[("src/b.rs", Some("b"))], "second");
    work.push(&origin, &["main"]);
    let found = run();
    assert!(found.success(), "{}", found.stderr.as_str());
    let events: Value = serde_json::from_str(&found.stdout).expect("JSON");
    assert_eq!(events[0]["after"], second.as_str());
    assert_eq!(events[0]["changed_paths"], serde_json::json!(["src/b.rs"]));
}

/// `poll --once` beside a live `serve` opens the store as a tool: a start `serve` is running
/// stays `running` (it is not handed back as if `serve` had crashed), and runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_once_beside_serve_never_touches_its_running_start() {
    let base = tempfile::tempdir().expect("temp dir");
    let origin = bare(base.path(), "api.git");
    let work = Work::new();
    work.commit(&[("src/a.rs", Some("a"))], "first");
    work.push(&origin, &["main"]);
    let url = format!("file://{}", origin.display());
    let project = Project::new();
    let root = project.root();
    // The slow start: records that it began, waits for the test's release, records the end.
    let script = "#!/bin/sh\necho \"start $SWITCHYARD_START_ID\" >> \"$1/runs\"\n\
                  while [ ! -e \"$1/release\" ]; do sleep 0.02; done\n\
                  echo \"done $SWITCHYARD_START_ID\" >> \"$1/runs\"\n";
    project
        .file("secret", crate::support::SECRET)
        .file("slow.sh", script)
        .file(
            "switchyard.yaml",
            &format!(
                "state_dir: state\nreceivers:\n  - name: hooks\n    provider: standard\n    secrets: [file:{}]\npoll:\n  - url: {url}\n    interval: 1h\n",
                root.join("secret").display()
            ),
        )
        .file(
            "triggers/slow.yaml",
            &format!(
                "pipeline: slow\nrepository: https://github.com/acme/api.git\non: push\nstart:\n  exec: [\"/bin/sh\", \"{}\", \"{}\"]\n  timeout: 60s\n",
                root.join("slow.sh").display(),
                root.display()
            ),
        )
        .file("triggers/src.yaml", &src_only(&url));
    let s = serve(root, &[]).await;
    baseline(root).await;

    let body = crate::support::change("refs/heads/main", &crate::support::sha(7));
    let headers = crate::support::signed_headers(
        "d-slow",
        body.as_bytes(),
        jiff::Timestamp::now().as_second(),
    );
    let (status, answer) = request(s.addr(), "POST", "/hooks/hooks", &headers, body.into()).await;
    assert_eq!(status, 202, "{answer}");
    let runs = root.join("runs");
    eventually(20, "the slow start begins", || {
        std::fs::read_to_string(&runs)
            .ok()
            .filter(|t| t.starts_with("start"))
    })
    .await;
    let admin = || Admin::open(&root.join("state")).expect("admin");
    let slow = admin().starts(&[]).expect("starts").remove(0);
    assert_eq!(slow.state, StartState::Running);

    // `poll --once` finds a push and stores it, with a start, in the same store.
    work.commit(&[("src/b.rs", Some("b"))], "second");
    work.push(&origin, &["main"]);
    let once = project.run(&["poll", "--once"], &[], "");
    assert!(once.success(), "{}", once.stderr.as_str());
    let found: Value = serde_json::from_str(&once.stdout).expect("a JSON array");
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(
        admin().start(&slow.id).expect("the slow start").state,
        StartState::Running,
        "poll --once handed serve's running start back"
    );

    std::fs::write(root.join("release"), "").expect("release the start");
    eventually(20, "both starts succeed", || {
        let starts = admin().starts(&[StartState::Succeeded]).ok()?;
        (starts.len() == 2).then_some(())
    })
    .await;
    let text = std::fs::read_to_string(&runs).expect("runs");
    assert_eq!(
        text,
        format!("start {0}\ndone {0}\n", slow.id),
        "the slow start ran once"
    );
    assert!(s.stop().await, "serve stops cleanly");
}
