//! Helpers specific to the tests: a project folder in a temp dir, the real binary run inside it
//! (to its end, or as `serve` through the lab), an in-process server, change events. The real
//! parts themselves (git servers, moto, the serve child, the metrics reader) are the lab's.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use switchyard_lab::{Metrics, Serve, ServeCommand};

/// A throwaway project: `triggers/`, maybe `switchyard.yaml`.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// An empty project with an empty `triggers/`.
    pub fn new() -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("triggers")).expect("triggers dir");
        Project { dir }
    }

    /// A project for `serve`: [`SECRET`] in `secret` and a `switchyard.yaml` of
    /// [`served_config`] with `extra`.
    pub fn served(extra: &str) -> Project {
        let p = Project::new();
        p.file("secret", SECRET);
        p.file("switchyard.yaml", &served_config(p.root(), extra));
        p
    }

    /// The project's root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file relative to the root.
    pub fn file(&self, rel: &str, text: &str) -> &Project {
        let path = self.root().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent dir");
        }
        std::fs::write(path, text).expect("write file");
        self
    }

    /// Runs `switchyard ARGS` in the project root to its end, with `env` set (see
    /// [`switchyard`]) and `stdin` as standard input.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
        run_in(self.root(), args, env, stdin)
    }
}

/// The variables the binary reads that the shell running the tests may have set: removed
/// from every run, so that no test depends on where it runs.
const AMBIENT: &[&str] = &[
    "SWITCHYARD_LOG",
    "SWITCHYARD_LOG_FORMAT",
    "SWITCHYARD_LISTEN",
    "SWITCHYARD_CRASH_AT",
    "AWS_LAMBDA_RUNTIME_API",
];

/// `switchyard ARGS` (this build's binary) in `root`, not yet started: the test's environment
/// less [`AMBIENT`], plus `env`. Every test runs the binary through this.
pub fn switchyard(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    command.args(args).current_dir(root);
    for name in AMBIENT {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command
}

/// Runs `switchyard ARGS` in `root` to its end (see [`switchyard`]), with `stdin` as standard
/// input: for a folder that is not a [`Project`] (a [`TestServer`]'s).
pub fn run_in(root: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
    let mut child = switchyard(root, args, env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn switchyard");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait for switchyard");
    Run::from(output)
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Whether the run exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A push change event as JSON.
pub fn push_event(repo: &str, git_ref: &str, paths: &[&str]) -> String {
    serde_json::json!({
        "schema": "switchyard.change/v1",
        "repository": repo,
        "kind": "push",
        "ref": git_ref,
        "before": "1111111111111111111111111111111111111111",
        "after": "2222222222222222222222222222222222222222",
        "commit_count": 1,
        "changed_paths": paths,
        "changed_paths_complete": true,
        "pull_request": null,
        "source": {"kind": "webhook", "provider": "github", "delivery_id": "d-1"},
        "occurred_at": null,
        "received_at": "2026-11-26T10:00:00.120Z"
    })
    .to_string()
}

/// The Standard Webhooks secret every test receiver uses.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A `serve` running in this process on a free port, with its own state directory.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub dir: tempfile::TempDir,
    server: Option<switchyard::serve::Server>,
}

/// The `switchyard.yaml` of a project served in a test: `extra` (YAML lines) plus a `standard`
/// receiver named `hooks` whose secret ([`SECRET`]) is in `ROOT/secret`. `extra` may add
/// receivers (it follows the receivers list) and refer to the root as `$DIR`.
pub fn served_config(root: &Path, extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nstate_dir: state\nreceivers:\n  - name: hooks\n    provider: standard\n    secrets: [file:{}]\n{extra}",
        root.join("secret").display()
    )
    .replace("$DIR", &root.display().to_string())
}

/// A project folder for a server: `triggers/` with the given files, a secret file, and a
/// configuration made of `extra` (YAML lines) plus a `standard` receiver named `hooks`.
pub fn server_project(
    extra: &str,
    triggers: &[(&str, &str)],
) -> (
    tempfile::TempDir,
    switchyard::config::Config,
    switchyard::pipeline::Pipelines,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::create_dir(root.join("triggers")).expect("triggers");
    for (name, text) in triggers {
        std::fs::write(
            root.join("triggers").join(name),
            text.replace("$DIR", &root.display().to_string()),
        )
        .expect("write trigger");
    }
    std::fs::write(root.join("secret"), SECRET).expect("secret");
    let text = served_config(root, extra);
    let mut d = switchyard::diag::Diagnostics::new("switchyard.yaml");
    let config = switchyard::config::Config::parse(&text, root, &mut d).expect("config");
    assert!(d.items.is_empty(), "{:?}", d.items);
    let (pipelines, diags) = switchyard::pipeline::Pipelines::load_dir(&root.join("triggers"));
    assert!(
        diags
            .iter()
            .all(|d| d.severity != switchyard::diag::Severity::Error),
        "{diags:?}"
    );
    (dir, config, pipelines)
}

impl TestServer {
    /// Starts a server for a project made by [`server_project`].
    pub async fn start(extra: &str, triggers: &[(&str, &str)]) -> TestServer {
        let (dir, config, pipelines) = server_project(extra, triggers);
        TestServer::start_in(dir, config, pipelines).await
    }

    /// Starts a server on an existing project (for restarts).
    pub async fn start_in(
        dir: tempfile::TempDir,
        config: switchyard::config::Config,
        pipelines: switchyard::pipeline::Pipelines,
    ) -> TestServer {
        let server = switchyard::serve::start(config, pipelines)
            .await
            .expect("serve starts");
        TestServer {
            addr: server.addr,
            dir,
            server: Some(server),
        }
    }

    /// Stops the server (drains) and gives back its project folder.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        self.dir
    }

    /// The project's root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Posts a change event signed with [`SECRET`] under delivery id `id`.
    pub async fn post_change(&self, id: &str, body: &str) -> (u16, serde_json::Value) {
        let headers = signed_headers(id, body.as_bytes(), jiff::Timestamp::now().as_second());
        let (status, text) = request(
            self.addr,
            "POST",
            "/hooks/hooks",
            &headers,
            body.as_bytes().to_vec(),
        )
        .await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// The store's view of the starts.
    pub fn starts(&self) -> Vec<switchyard::store::StartRow> {
        switchyard::store::Admin::open(&self.root().join("state"))
            .expect("admin")
            .starts(&[])
            .expect("starts")
    }
}

/// Standard Webhooks headers for `body`, signed with [`SECRET`].
pub fn signed_headers(id: &str, body: &[u8], ts: i64) -> Vec<(String, String)> {
    switchyard_lab::standard_webhook_headers(SECRET, id, ts, body)
}

pub use switchyard_lab::request;

/// Polls `check` every 20 ms until it returns Some, for at most `secs` seconds.
pub async fn eventually<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits until metric `name` of the server at `addr` (the sum of its series with `labels`)
/// reaches `at_least`, for at most 20 s; the metrics then.
pub async fn counted(
    addr: std::net::SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
    at_least: f64,
) -> Metrics {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let metrics = switchyard_lab::metrics::read(addr).await;
        if metrics.sum(name, labels) >= at_least {
            return metrics;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {name}{labels:?} to reach {at_least}:\n{metrics}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits (at most 20 s) until the dispatcher of the server at `addr` (SQLite in `state_dir`) has
/// passed over the store twice since this call and no attempt is in flight (the lab's
/// [`switchyard_lab::metrics::dispatcher_idle`]): what the store holds now has been attempted.
pub async fn dispatcher_idle(addr: std::net::SocketAddr, state_dir: &Path) -> Metrics {
    switchyard_lab::metrics::dispatcher_idle(addr, state_dir, std::time::Duration::from_secs(20))
        .await
        .unwrap_or_else(|| {
            panic!("the dispatcher at {addr} did not pass over the store twice and go idle in 20 s")
        })
}

/// A push change event of `https://github.com/acme/api.git` with the given ref and `after` sha.
pub fn change(git_ref: &str, after: &str) -> String {
    change_in("https://github.com/acme/api.git", git_ref, after)
}

/// A push change event of `repository` with the given ref and `after` sha.
pub fn change_in(repository: &str, git_ref: &str, after: &str) -> String {
    serde_json::json!({
        "schema": "switchyard.change/v1",
        "repository": repository,
        "kind": "push",
        "ref": git_ref,
        "before": "1111111111111111111111111111111111111111",
        "after": after,
        "commit_count": 1,
        "changed_paths": ["src/lib.rs"],
        "changed_paths_complete": true,
        "pull_request": null
    })
    .to_string()
}

/// A 40-hex sha made from a number.
pub fn sha(n: u64) -> String {
    format!("{n:040x}")
}

/// `switchyard serve` (this build's binary) as a child process in `root` with `env`, once it
/// listens.
pub async fn serve(root: &Path, env: &[(&str, String)]) -> Serve {
    ServeCommand::new(env!("CARGO_BIN_EXE_switchyard"), root)
        .envs(env)
        .start()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// One post of `body` signed with [`SECRET`] under delivery id `id` to the `hooks` receiver at
/// `addr`, on a fresh connection: the status and the answer's JSON; `None` when the server
/// cannot be reached or the exchange breaks off (a server that is gone).
pub async fn try_post(
    addr: std::net::SocketAddr,
    id: &str,
    body: &str,
) -> Option<(u16, serde_json::Value)> {
    let headers = signed_headers(id, body.as_bytes(), jiff::Timestamp::now().as_second());
    let (status, text) =
        switchyard_lab::try_request(addr, "POST", "/hooks/hooks", &headers, body.into())
            .await
            .ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or_default()))
}
