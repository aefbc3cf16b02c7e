//! `switchyard serve` as a child process in a project directory: its output captured line by
//! line, its address taken from the line it prints once it listens (a waiter is woken by that
//! line, nothing polls), its CPU time and `/metrics`; stopped with SIGTERM, crashed with
//! SIGKILL, and killed with what it started when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::metrics::Metrics;
use crate::process::{Captured, Killed, signal};

/// What `serve` prints once it accepts connections.
const LISTENING: &str = "switchyard listening on http://";
/// How long it may take to listen.
const START_WITHIN: Duration = Duration::from_secs(30);
/// How long it may take to drain and exit after SIGTERM.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// How to start `switchyard serve`: the binary, the project directory it runs in, its
/// environment. It listens on a free loopback port (`SWITCHYARD_LISTEN=127.0.0.1:0`) and logs
/// at `info` unless the environment given says otherwise.
#[derive(Clone, Debug)]
pub struct ServeCommand {
    bin: PathBuf,
    dir: PathBuf,
    env: Vec<(String, String)>,
    log: Option<PathBuf>,
}

impl ServeCommand {
    /// `bin serve` in `dir` (which holds `switchyard.yaml` and `triggers/`, or nothing).
    pub fn new(bin: impl Into<PathBuf>, dir: &Path) -> ServeCommand {
        ServeCommand {
            bin: bin.into(),
            dir: dir.to_path_buf(),
            env: vec![
                ("SWITCHYARD_LISTEN".into(), "127.0.0.1:0".into()),
                ("SWITCHYARD_LOG".into(), "info".into()),
            ],
            log: None,
        }
    }

    /// Sets an environment variable of the child (a later value wins).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> ServeCommand {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Sets several.
    pub fn envs<K: AsRef<str>, V: AsRef<str>>(mut self, env: &[(K, V)]) -> ServeCommand {
        for (k, v) in env {
            self.env
                .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        }
        self
    }

    /// Also writes its standard error, line by line, to `path`.
    pub fn log_to(mut self, path: &Path) -> ServeCommand {
        self.log = Some(path.to_path_buf());
        self
    }

    /// Starts it and waits (on a blocking thread, woken by its output) until it listens.
    pub async fn start(self) -> anyhow::Result<Serve> {
        tokio::task::spawn_blocking(move || self.start_blocking())
            .await
            .context("the thread starting serve failed")?
    }

    /// Starts it and blocks until it listens: for callers outside an async runtime.
    pub fn start_blocking(self) -> anyhow::Result<Serve> {
        let mut command = Command::new(&self.bin);
        command
            .arg("serve")
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = Killed::spawn(&mut command)
            .with_context(|| format!("cannot start {} serve", self.bin.display()))?;
        let stdout = Captured::spawn(child.child().stdout.take().context("stdout")?, None);
        let stderr = Captured::spawn(
            child.child().stderr.take().context("stderr")?,
            self.log.as_deref(),
        );
        let addr = stderr.wait_for(START_WITHIN, |text| {
            text.lines().find_map(|l| {
                // The address ends where the line (or, with JSON logs, the string) does.
                let rest = l.split(LISTENING).nth(1)?;
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || ".:[]".contains(c)))
                    .unwrap_or(rest.len());
                rest[..end].parse::<SocketAddr>().ok()
            })
        });
        let Some(addr) = addr else {
            let status = child.child().try_wait().ok().flatten();
            bail!(
                "switchyard serve in {} {} :\n{}",
                self.dir.display(),
                match status {
                    Some(status) => format!("exited ({status}) before it listened"),
                    None => format!("did not listen within {START_WITHIN:?}"),
                },
                stderr.text()
            );
        };
        Ok(Serve {
            addr,
            pid: child.id(),
            child: Some(child),
            stdout,
            stderr,
        })
    }
}

/// A running `switchyard serve`; killed (with its process group) on drop.
#[derive(Debug)]
pub struct Serve {
    addr: SocketAddr,
    pid: u32,
    child: Option<Killed>,
    stdout: Arc<Captured>,
    stderr: Arc<Captured>,
}

impl Serve {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What it wrote to standard output so far (an `exec` start's output).
    pub fn out(&self) -> String {
        self.stdout.text()
    }

    /// What it wrote to standard error so far (its log).
    pub fn err(&self) -> String {
        self.stderr.text()
    }

    /// Its standard error, to wait on.
    pub fn stderr(&self) -> &Captured {
        &self.stderr
    }

    /// CPU seconds (user + system, every thread) it has used; 0 when unknown.
    pub fn cpu_seconds(&self) -> f64 {
        crate::procfs::cpu_seconds(self.pid).unwrap_or(0.0)
    }

    /// Waits until `GET /readyz` answers 200 (the store takes changes), for at most `within`.
    pub async fn ready(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let answer =
                crate::http::try_request(self.addr, "GET", "/readyz", &[], Vec::new()).await;
            if let Ok((200, _)) = answer {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "switchyard serve was not ready within {within:?} ({answer:?}):\n{}",
                    self.err()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its `/metrics`, read; empty when it does not answer.
    pub async fn metrics(&self) -> Metrics {
        crate::metrics::read(self.addr).await
    }

    /// SIGTERM, then waits for it to drain and exit: whether it exited cleanly (status 0)
    /// within 30 s. What it started is killed after.
    pub async fn stop(self) -> bool {
        self.stop_with("TERM").await
    }

    /// [`Serve::stop`] with another signal (`INT`).
    pub async fn stop_with(mut self, name: &str) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        signal(self.pid, name, false);
        let waited = tokio::task::spawn_blocking(move || {
            let status = child.child().wait();
            (child, status)
        });
        match tokio::time::timeout(STOP_WITHIN, waited).await {
            Ok(Ok((_child, status))) => status.is_ok_and(|s| s.success()),
            _ => {
                signal(self.pid, "KILL", true);
                false
            }
        }
    }

    /// SIGKILL to the process alone, as a crash: nothing drains, and what it started runs
    /// on (until the drop). Its exit status.
    pub fn crash(&mut self) -> Option<ExitStatus> {
        signal(self.pid, "KILL", false);
        self.child.as_mut()?.child().wait().ok()
    }

    /// The child, for what the lab does not cover.
    pub fn child(&mut self) -> Option<&mut Child> {
        self.child.as_mut().map(Killed::child)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // `Killed` kills the process group; after a stop or a crash, what the process left.
        if self.child.is_none() {
            signal(self.pid, "KILL", true);
        }
    }
}
