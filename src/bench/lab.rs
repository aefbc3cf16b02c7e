//! The laboratory's parts, all real and all on loopback: a `git daemon` serving K bare
//! repositories (pushable), work clones that make real pushes, a moto server with a rule
//! → queue, the runner that pipeline starts reach, and `switchyard serve` as a child process
//! with the sources a scenario turns on.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::repo::RepoId;
use crate::signature::hmac_sha256_hex;

/// The region of the lab's AWS (moto) and CodeCommit identities.
pub const REGION: &str = "us-east-1";
/// The fake account of the CodeCommit ARNs.
const ACCOUNT: &str = "123456789012";
/// The webhook secret of the lab's GitHub receiver.
const SECRET: &str = "switchyard-bench-secret";
/// The branches pushes go to.
pub const BRANCHES: [&str; 2] = ["main", "dev"];
/// Directories pushes write under, so that paths vary.
const DIRS: [&str; 6] = ["src/api", "src/core", "docs", "ci", "web/app", "tools"];

/// Now, Unix milliseconds with a fraction.
pub fn now_ms() -> f64 {
    jiff::Timestamp::now().as_nanosecond() as f64 / 1e6
}

/// A free loopback port.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until something listens on `port`.
fn wait_port(port: u16, what: &str, child: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            bail!("{what} exited ({status}) before it listened on port {port}");
        }
        if Instant::now() > deadline {
            bail!("{what} did not listen on port {port} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A child process (and its process group) killed on drop.
#[derive(Debug)]
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

/// `git` with no user or system configuration, an identity, in `dir`.
fn git(home: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "advice.detachedHead=false",
        ])
        .stdin(Stdio::null());
    cmd
}

/// Runs a git command; its stdout, or an error naming it and what git said.
fn run_git(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .context("cannot run git: install git (Debian: apt-get install git)")?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The git server: `git daemon` over the bare repositories, receive-pack on.
#[derive(Debug)]
pub struct GitHost {
    pub port: u16,
    pub names: Vec<String>,
    _daemon: Killed,
}

impl GitHost {
    /// The polling URL of repository `name`.
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}.git", self.port)
    }
}

/// The identity every source gives repository `name`: the CodeCommit repository of that name.
pub fn identity(name: &str) -> RepoId {
    RepoId::codecommit(REGION, name)
}

/// One branch of one repository, checked out in a work clone, and its tip on the server.
#[derive(Debug)]
struct Branch {
    work: PathBuf,
    tip: String,
    pushes: u64,
}

/// Makes real pushes: a commit touching one file, pushed with `git push`.
#[derive(Debug)]
pub struct Pusher {
    home: PathBuf,
    branches: HashMap<(String, String), Branch>,
}

/// One push that landed.
#[derive(Clone, Debug)]
pub struct Push {
    pub repository: String,
    pub branch: String,
    pub before: String,
    pub after: String,
    pub path: String,
    pub added: bool,
    /// When `git push` returned: the ref had moved on the server.
    pub at_ms: f64,
}

impl Pusher {
    /// Pushes one commit to `branch` of `repository`.
    pub fn push(&mut self, repository: &str, branch: &str) -> anyhow::Result<Push> {
        let key = (repository.to_owned(), branch.to_owned());
        let home = self.home.clone();
        let b = self
            .branches
            .get_mut(&key)
            .with_context(|| format!("no work clone of {repository} {branch}"))?;
        b.pushes += 1;
        let dir = DIRS[fastrand::usize(..DIRS.len())];
        let path = format!("{dir}/f{}.txt", fastrand::usize(..8));
        let file = b.work.join(&path);
        let added = !file.exists();
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut text = std::fs::read_to_string(&file).unwrap_or_default();
        text.push_str(&format!("push {} at {}\n", b.pushes, now_ms()));
        std::fs::write(&file, text)?;
        run_git(git(&home, &b.work).args(["add", "--", &path]))?;
        run_git(git(&home, &b.work).args([
            "commit",
            "-q",
            "-m",
            &format!("bench push {}", b.pushes),
        ]))?;
        let after = run_git(git(&home, &b.work).args(["rev-parse", "HEAD"]))?;
        run_git(git(&home, &b.work).args(["push", "-q", "origin", branch]))?;
        let at_ms = now_ms();
        let before = std::mem::replace(&mut b.tip, after.clone());
        Ok(Push {
            repository: repository.to_owned(),
            branch: branch.to_owned(),
            before,
            after,
            path,
            added,
            at_ms,
        })
    }
}

/// Makes `count` bare repositories behind a `git daemon`, each with `main` and `dev`, and a work
/// clone per branch for the pusher.
pub fn git_host(dir: &Path, count: usize) -> anyhow::Result<(GitHost, Pusher)> {
    let home = dir.join("home");
    let repos = dir.join("repos");
    let work = dir.join("work");
    for d in [&home, &repos, &work] {
        std::fs::create_dir_all(d)?;
    }
    let port = free_port()?;
    let mut daemon = Command::new("git");
    daemon
        .args([
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
        ])
        .arg(format!("--base-path={}", repos.display()))
        .args(["--listen=127.0.0.1", &format!("--port={port}")])
        .arg(&repos)
        .env("HOME", &home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = daemon
        .spawn()
        .context("cannot start `git daemon`: install git (Debian: apt-get install git)")?;
    wait_port(port, "git daemon", &mut child)?;
    let daemon = Killed(child);
    let mut names = Vec::with_capacity(count);
    let mut branches = HashMap::new();
    for i in 0..count {
        let name = format!("r{i}");
        let bare = repos.join(format!("{name}.git"));
        run_git(git(&home, dir).args(["init", "-q", "--bare"]).arg(&bare))?;
        let url = format!("git://127.0.0.1:{port}/{name}.git");
        let seed = work.join(format!("{name}-main"));
        run_git(git(&home, dir).args(["init", "-q"]).arg(&seed))?;
        std::fs::write(seed.join("README.md"), format!("# {name}\n"))?;
        run_git(git(&home, &seed).args(["add", "README.md"]))?;
        run_git(git(&home, &seed).args(["commit", "-q", "-m", "init"]))?;
        run_git(git(&home, &seed).args(["branch", "dev"]))?;
        run_git(git(&home, &seed).args(["remote", "add", "origin", &url]))?;
        run_git(git(&home, &seed).args(["push", "-q", "origin", "main", "dev"]))?;
        let tip = run_git(git(&home, &seed).args(["rev-parse", "HEAD"]))?;
        let dev = work.join(format!("{name}-dev"));
        run_git(
            git(&home, dir)
                .args(["clone", "-q", "-b", "dev", &url])
                .arg(&dev),
        )?;
        for (branch, path) in [("main", seed), ("dev", dev)] {
            branches.insert(
                (name.clone(), branch.to_owned()),
                Branch {
                    work: path,
                    tip: tip.clone(),
                    pushes: 0,
                },
            );
        }
        names.push(name);
    }
    Ok((
        GitHost {
            port,
            names,
            _daemon: daemon,
        },
        Pusher { home, branches },
    ))
}

/// Where moto_server is: `SWITCHYARD_MOTO_SERVER`, the venv `.ci/test` makes, or PATH.
fn moto_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SWITCHYARD_MOTO_SERVER") {
        return Some(PathBuf::from(path));
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let venv = target.join("moto-venv/bin/moto_server");
    if venv.exists() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("moto_server"))
            .find(|p| p.exists())
    })
}

/// moto: the one given, or one started on a free port.
#[derive(Debug)]
pub struct Moto {
    pub endpoint: String,
    _child: Option<Killed>,
}

impl Moto {
    /// Uses `endpoint` when given, else starts moto_server.
    pub fn start(endpoint: Option<&str>) -> anyhow::Result<Moto> {
        if let Some(endpoint) = endpoint {
            return Ok(Moto {
                endpoint: endpoint.trim_end_matches('/').to_owned(),
                _child: None,
            });
        }
        let Some(server) = moto_server() else {
            bail!(
                "moto_server is not installed: the events path runs against a local moto server\n\
                 hint: `python3 -m venv target/moto-venv && target/moto-venv/bin/pip install 'moto[server]==5.2.5'` \
                 (`.ci/test` does it), or pass --moto URL of a running one"
            );
        };
        let port = free_port()?;
        let mut child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", server.display()))?;
        wait_port(port, "moto_server", &mut child)?;
        Ok(Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            _child: Some(Killed(child)),
        })
    }

    /// SDK configuration for the lab's own calls.
    pub fn sdk(&self) -> aws_config::SdkConfig {
        use aws_sdk_sqs::config::{Credentials, Region, SharedCredentialsProvider};
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "testing", "testing", None, None, "bench",
            )))
            .http_client(crate::aws::http_client())
            .build()
    }
}

/// A queue on moto and the rule that fills it; (URL, ARN).
pub async fn queue_with_rule(
    sdk: &aws_config::SdkConfig,
    name: &str,
    pattern: Value,
) -> anyhow::Result<(String, String)> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("moto: create queue {name}: {}", crate::aws::describe(&e)))?
        .queue_url()
        .context("moto returned no queue URL")?
        .to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("moto: queue attributes: {}", crate::aws::describe(&e)))?
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .context("moto returned no queue ARN")?
        .clone();
    events
        .put_rule()
        .name(name)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("moto: put rule: {}", crate::aws::describe(&e)))?;
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("queue")
        .arn(&arn)
        .build()
        .map_err(|e| anyhow::anyhow!("rule target: {e}"))?;
    events
        .put_targets()
        .rule(name)
        .targets(target)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("moto: put targets: {}", crate::aws::describe(&e)))?;
    Ok((url, arn))
}

/// One start request that reached the runner.
#[derive(Clone, Debug)]
pub struct Arrival {
    pub at_ms: f64,
    pub start_id: String,
    pub repository: String,
    pub git_ref: String,
    pub before: String,
    pub sha: String,
    pub source: String,
    pub received_at_ms: Option<f64>,
}

/// The runner the pipelines' `http` starts reach: records every arrival.
#[derive(Debug, Default)]
pub struct Runner {
    pub arrivals: Mutex<Vec<Arrival>>,
}

impl Runner {
    /// Serves on a loopback port until the process ends.
    pub async fn start() -> anyhow::Result<(Arc<Runner>, SocketAddr)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let runner = Arc::new(Runner::default());
        let shared = Arc::clone(&runner);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let runner = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(|request| Arc::clone(&runner).take(request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok((runner, addr))
    }

    async fn take(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let at_ms = now_ms();
        let body = request
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if let Ok(start) = serde_json::from_slice::<Value>(&body) {
            let event = &start["event"];
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            let received_at_ms = event["received_at"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_nanosecond() as f64 / 1e6);
            let arrival = Arrival {
                at_ms,
                start_id: text(&start["start_id"]),
                repository: text(&event["repository"]),
                git_ref: text(&event["ref"]),
                before: text(&event["before"]),
                sha: text(&event["after"]),
                source: text(&event["source"]["kind"]),
                received_at_ms,
            };
            if let Ok(mut arrivals) = self.arrivals.lock() {
                arrivals.push(arrival);
            }
        }
        Ok(Response::new(Full::new(Bytes::from_static(b"{}"))))
    }

    /// Takes every arrival so far.
    pub fn drain(&self) -> Vec<Arrival> {
        self.arrivals
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default()
    }
}

/// The sources one scenario turns on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sources {
    pub webhook: bool,
    pub events: bool,
    pub poll: bool,
}

impl Sources {
    pub fn names(self) -> Vec<String> {
        let mut out = Vec::new();
        for (on, name) in [
            (self.webhook, "webhook"),
            (self.events, "events"),
            (self.poll, "poll"),
        ] {
            if on {
                out.push(name.to_owned());
            }
        }
        out
    }
}

/// `switchyard serve`, the binary running this bench, with one scenario's configuration.
#[derive(Debug)]
pub struct Serve {
    pub addr: SocketAddr,
    pub pid: u32,
    child: Killed,
    pub log: PathBuf,
}

/// What a scenario's `switchyard.yaml` needs to know.
#[derive(Debug)]
pub struct ServeSetup<'a> {
    pub dir: &'a Path,
    pub host: &'a GitHost,
    pub sources: Sources,
    pub interval: Duration,
    pub max_interval: Duration,
    pub queue_url: &'a str,
    pub moto: &'a str,
    pub runner: SocketAddr,
}

impl Serve {
    /// Writes the configuration and the pipelines (one per repository, every push, an `http`
    /// start to the runner) and starts `serve`; returns once it listens.
    pub fn start(setup: &ServeSetup<'_>) -> anyhow::Result<Serve> {
        let dir = setup.dir;
        std::fs::create_dir_all(dir.join("triggers"))?;
        let secret = dir.join("github.secret");
        std::fs::write(&secret, SECRET)?;
        let mut config = format!(
            "state_dir: {}\nreceivers:\n  - name: github\n    provider: github\n    secrets: [\"file:{}\"]\ndispatch: {{attempts: 5, backoff: 100ms, backoff_max: 1s}}\n",
            dir.join("state").display(),
            secret.display()
        );
        if setup.sources.events {
            config.push_str(&format!(
                "eventbridge:\n  queue_url: {}\n  region: {REGION}\n  endpoint_url: {}\n  consumers: 2\n  wait: 20s\n",
                setup.queue_url, setup.moto
            ));
        }
        if setup.sources.poll {
            config.push_str(
                "polling: {concurrency: 8, timeout: 10s, complete_within: 5s, missed_grace: 60s}\npoll:\n",
            );
            for name in &setup.host.names {
                config.push_str(&format!(
                    "  - url: {}\n    repository: codecommit::{REGION}://{name}\n    interval: {}ms\n    max_interval: {}ms\n",
                    setup.host.url(name),
                    setup.interval.as_millis(),
                    setup.max_interval.as_millis()
                ));
            }
        }
        std::fs::write(dir.join("switchyard.yaml"), config)?;
        for name in &setup.host.names {
            std::fs::write(
                dir.join("triggers").join(format!("{name}.yaml")),
                format!(
                    "pipeline: build-{name}\nrepository: codecommit::{REGION}://{name}\nmode: parallel\nconcurrency: 64\non: push\nstart:\n  http:\n    url: http://{}/start\n",
                    setup.runner
                ),
            )?;
        }
        let log = dir.join("serve.log");
        let exe = std::env::current_exe().context("cannot find the switchyard binary")?;
        let mut child = Command::new(exe)
            .arg("serve")
            .current_dir(dir)
            .env("SWITCHYARD_LISTEN", "127.0.0.1:0")
            .env("SWITCHYARD_LOG", "warn,switchyard=info")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .context("cannot start switchyard serve")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        let log_path = log.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(&log_path).ok();
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(addr) = line.strip_prefix("switchyard listening on http://")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.trim().to_owned());
                }
                if let Some(f) = file.as_mut() {
                    let _ = std::io::Write::write_all(f, format!("{line}\n").as_bytes());
                }
            }
        });
        let pid = child.id();
        let child = Killed(child);
        let addr = rx.recv_timeout(Duration::from_secs(30)).map_err(|_| {
            anyhow::anyhow!("switchyard serve did not start; see {}", log.display())
        })?;
        let addr = addr.parse().context("serve printed no address")?;
        Ok(Serve {
            addr,
            pid,
            child,
            log,
        })
    }

    /// CPU seconds (user + system, all threads) the process has used.
    pub fn cpu_s(&self) -> f64 {
        cpu_seconds(self.pid).unwrap_or(0.0)
    }

    /// Stops it (SIGTERM, then the kill on drop).
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// utime + stime of a process from `/proc/PID/stat`, in seconds (USER_HZ is 100 on Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields start after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The sum of every series of metric `name` in a Prometheus text whose line holds `with` (a
/// label such as `kind="fetch"`; empty for every series).
pub fn metric_sum(text: &str, name: &str, with: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(with))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The body of a GitHub push delivery for `push`, as GitHub sends it the moment it lands.
pub fn github_push(push: &Push) -> Value {
    let timestamp = jiff::Timestamp::now().to_string();
    let commit = json!({
        "id": push.after,
        "tree_id": push.after,
        "distinct": true,
        "message": "bench push",
        "timestamp": timestamp,
        "author": {"name": "bench", "email": "bench@localhost", "username": "bench"},
        "committer": {"name": "bench", "email": "bench@localhost", "username": "bench"},
        "added": if push.added { vec![push.path.clone()] } else { Vec::new() },
        "removed": [],
        "modified": if push.added { Vec::new() } else { vec![push.path.clone()] },
    });
    let name = &push.repository;
    json!({
        "ref": format!("refs/heads/{}", push.branch),
        "before": push.before,
        "after": push.after,
        "created": false,
        "deleted": false,
        "forced": false,
        "base_ref": null,
        "compare": format!("https://example.invalid/{name}/compare"),
        "commits": [commit.clone()],
        "head_commit": commit,
        "repository": {
            "name": name,
            "full_name": format!("lab/{name}"),
            "private": true,
            "clone_url": format!("https://git-codecommit.{REGION}.amazonaws.com/v1/repos/{name}"),
            "default_branch": "main",
        },
        "pusher": {"name": "bench", "email": "bench@localhost"},
        "sender": {"login": "bench", "id": 1},
    })
}

/// Signs and posts a GitHub push delivery to `serve`; the HTTP status.
pub async fn send_webhook(
    client: &crate::dispatch::http::Client,
    serve: SocketAddr,
    push: &Push,
) -> anyhow::Result<u16> {
    let body = serde_json::to_vec(&github_push(push))?;
    let signature = format!("sha256={}", hmac_sha256_hex(SECRET.as_bytes(), &body));
    let request = Request::post(format!("http://{serve}/hooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header(
            "x-github-delivery",
            format!("{}-{}", push.repository, push.after),
        )
        .header("x-github-hook-id", "1")
        .header("x-hub-signature-256", signature)
        .body(Full::new(Bytes::from(body)))?;
    let response = client.request(request).await?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    Ok(status)
}

/// The CodeCommit "Repository State Change" detail of `push`.
pub fn codecommit_detail(push: &Push) -> Value {
    json!({
        "event": "referenceUpdated",
        "repositoryName": push.repository,
        "repositoryId": "00000000-0000-0000-0000-000000000000",
        "referenceType": "branch",
        "referenceName": push.branch,
        "referenceFullName": format!("refs/heads/{}", push.branch),
        "commitId": push.after,
        "oldCommitId": push.before,
    })
}

/// Puts the CodeCommit event of `push` on the default bus.
pub async fn send_event(events: &aws_sdk_eventbridge::Client, push: &Push) -> anyhow::Result<()> {
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source("aws.codecommit")
        .detail_type("CodeCommit Repository State Change")
        .resources(format!(
            "arn:aws:codecommit:{REGION}:{ACCOUNT}:{}",
            push.repository
        ))
        .detail(codecommit_detail(push).to_string())
        .build();
    let out = events
        .put_events()
        .entries(entry)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("PutEvents: {}", crate::aws::describe(&e)))?;
    if out.failed_entry_count() > 0 {
        bail!("PutEvents: an entry failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Provider;
    use crate::sources::providers::{self, Normalized};

    fn push() -> Push {
        Push {
            repository: "r3".into(),
            branch: "dev".into(),
            before: "1".repeat(40),
            after: "2".repeat(40),
            path: "src/api/f1.txt".into(),
            added: true,
            at_ms: 0.0,
        }
    }

    #[test]
    fn the_webhook_and_the_event_name_the_polled_identity() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            "x-github-event",
            hyper::header::HeaderValue::from_static("push"),
        );
        let body = serde_json::to_vec(&github_push(&push())).unwrap_or_default();
        let events =
            match providers::normalize(Provider::GitHub, &headers, &body, jiff::Timestamp::now()) {
                Ok(Normalized::Changes(events)) => events,
                other => panic!("{other:?}"),
            };
        assert_eq!(events[0].repository, identity("r3"));
        assert_eq!(events[0].git_ref, "refs/heads/dev");
        assert_eq!(events[0].changed_paths, ["src/api/f1.txt"]);
        assert!(events[0].changed_paths_complete);

        let event = json!({
            "version": "0", "id": "e-1", "detail-type": "CodeCommit Repository State Change",
            "source": "aws.codecommit", "account": ACCOUNT, "time": "2026-11-26T00:00:00Z",
            "region": REGION, "resources": [format!("arn:aws:codecommit:{REGION}:{ACCOUNT}:r3")],
            "detail": codecommit_detail(&push()),
        });
        let parsed = crate::sources::eventbridge::envelope::parse(
            event.to_string().as_bytes(),
            jiff::Timestamp::now(),
        );
        match parsed {
            Ok(crate::sources::eventbridge::envelope::Envelope::Changes { changes, .. }) => {
                assert_eq!(changes[0].repository, identity("r3"));
                assert_eq!(changes[0].id, events[0].id, "one change, whichever source");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn metric_sums_add_every_series_of_a_name_only() {
        let text = "# HELP x\nswitchyard_poll_requests_total{kind=\"ls_remote\",outcome=\"ok\"} 10\nswitchyard_poll_requests_total{kind=\"fetch\",outcome=\"ok\"} 3\nswitchyard_poll_requests_total_other 7\nswitchyard_poll_seconds_count 5\n";
        assert_eq!(metric_sum(text, "switchyard_poll_requests_total", ""), 13.0);
        assert_eq!(
            metric_sum(text, "switchyard_poll_requests_total", "kind=\"fetch\""),
            3.0
        );
        assert_eq!(metric_sum(text, "missing", ""), 0.0);
    }

    #[test]
    fn cpu_time_of_this_process_is_read() {
        let cpu = cpu_seconds(std::process::id());
        assert!(cpu.is_some_and(|c| c >= 0.0), "{cpu:?}");
    }
}
