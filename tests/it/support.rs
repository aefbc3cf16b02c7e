//! Helpers: a project folder in a temp dir, and the real binary run inside it.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

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

    /// Runs `switchyard ARGS` in the project root, with `stdin` as standard input.
    pub fn run(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(args)
            .current_dir(self.root())
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
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
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
    let text = format!(
        "listen: 127.0.0.1:0\nstate_dir: state\nreceivers:\n  - name: hooks\n    provider: standard\n    secrets: [file:{}]\n{extra}",
        root.join("secret").display()
    );
    // `extra` may add receivers (it follows the receivers list) and refer to `$DIR`.
    let text = text.replace("$DIR", &root.display().to_string());
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

/// Standard Webhooks headers for `body`.
pub fn signed_headers(id: &str, body: &[u8], ts: i64) -> Vec<(String, String)> {
    let key = switchyard::signature::Key::from_secret(SECRET).expect("key");
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        (
            "webhook-signature".into(),
            switchyard::signature::sign(&key, id, ts, body),
        ),
        ("content-type".into(), "application/json".into()),
    ]
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
pub async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, String) {
    use http_body_util::BodyExt as _;
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

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

/// A push change event with the given ref and `after` sha.
pub fn change(git_ref: &str, after: &str) -> String {
    serde_json::json!({
        "schema": "switchyard.change/v1",
        "repository": "https://github.com/acme/api.git",
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

/// Collects a child's output lines on a thread, into text readable while it runs.
pub fn collect(
    out: impl std::io::Read + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<String>> {
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = std::sync::Arc::clone(&text);
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(mut t) = sink.lock() {
                t.push_str(&line);
                t.push('\n');
            }
        }
    });
    text
}

/// `switchyard serve` as a child process in `root`; SIGTERM and reaped on drop.
pub struct Served {
    child: std::process::Child,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
    pub stdout: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    /// Starts `switchyard serve` in `root` with `env`, and waits until it listens.
    pub fn start(root: &Path, env: &[(&str, String)]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("serve")
            .current_dir(root)
            .env("SWITCHYARD_LISTEN", "127.0.0.1:0")
            .env("SWITCHYARD_LOG", "info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchyard serve");
        let stderr = collect(child.stderr.take().expect("stderr"));
        let stdout = collect(child.stdout.take().expect("stdout"));
        let served = Served {
            child,
            stderr,
            stdout,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !served.err().contains("switchyard listening on") {
            assert!(
                std::time::Instant::now() < deadline,
                "serve did not start: {}",
                served.err()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        served
    }

    pub fn err(&self) -> String {
        self.stderr.lock().map(|t| t.clone()).unwrap_or_default()
    }

    pub fn out(&self) -> String {
        self.stdout.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// SIGTERM, then waits; whether it exited cleanly.
    pub fn stop(mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one series (name with its labels) in a `/metrics` text, 0 when absent.
pub fn series(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
