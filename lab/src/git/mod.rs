//! Real git on loopback: the git command without user or system configuration, bare
//! repositories, work clones that commit and push, and `git daemon` serving git://.
//!
//! `http.rs` serves smart HTTP (`git http-backend` behind Basic auth), `sshd.rs` OpenSSH's
//! sshd, `host.rs` the bench's K repositories and the pusher that makes real pushes to them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::process::{Killed, await_port, free_port};
use crate::skip::Missing;

mod host;
mod http;
mod sshd;

pub use host::{BRANCHES, GitHost, Push, Pusher, identity};
pub use http::GitHttp;
pub use sshd::Sshd;

/// How long a git server may take to start accepting connections.
const START_WITHIN: Duration = Duration::from_secs(10);

/// `git` run in `dir` without user or system configuration, with a fixed identity and `main`
/// as the first branch.
pub fn git_command(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "advice.detachedHead=false",
        ]);
    command
}

/// Runs `git ARGS` in `dir` with `stdin` as its input: its trimmed output, or an error with
/// what git said.
pub fn try_git(dir: &Path, args: &[&str], stdin: &str) -> anyhow::Result<String> {
    let mut child = git_command(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow::Error::new(Missing::new(
                "git",
                "install git (Debian: apt-get install git)",
            ))
            .context(format!("cannot run git: {e}"))
        })?;
    child
        .stdin
        .take()
        .context("git's stdin")?
        .write_all(stdin.as_bytes())
        .context("write to git")?;
    let output = child.wait_with_output().context("wait for git")?;
    if !output.status.success() {
        bail!(
            "git {args:?} in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Runs `git ARGS` in `dir`: its trimmed output; panics with what git said.
pub fn git(dir: &Path, args: &[&str]) -> String {
    try_git(dir, args, "").unwrap_or_else(|e| panic!("{e:#}"))
}

/// An empty bare repository `BASE/NAME`, HEAD at `main`.
pub fn bare(base: &Path, name: &str) -> PathBuf {
    git(base, &["init", "--quiet", "--bare", name]);
    base.join(name)
}

/// Creates `count` branches `refs/heads/bulk/NNNN` in `repo`, all at `sha`, in one command.
pub fn many_branches(repo: &Path, count: usize, sha: &str) {
    let commands: String = (0..count)
        .map(|i| format!("create refs/heads/bulk/{i:04} {sha}\n"))
        .collect();
    try_git(repo, &["update-ref", "--stdin"], &commands).unwrap_or_else(|e| panic!("{e:#}"));
}

/// A working repository in a temp dir, on branch `main`.
#[derive(Debug)]
pub struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    /// An empty repository.
    pub fn new() -> Work {
        let dir = tempfile::tempdir().expect("temp dir");
        git(dir.path(), &["init", "--quiet"]);
        Work { dir }
    }

    /// The working tree.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `git ARGS` here; its trimmed output.
    pub fn git(&self, args: &[&str]) -> String {
        git(self.dir.path(), args)
    }

    /// Writes (`Some(text)`) or deletes (`None`) files, commits everything; the new commit.
    pub fn commit(&self, changes: &[(&str, Option<&str>)], message: &str) -> String {
        for (path, text) in changes {
            let path = self.dir.path().join(path);
            match text {
                Some(text) => {
                    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                    std::fs::write(path, text).expect("write file");
                }
                None => std::fs::remove_file(path).expect("remove file"),
            }
        }
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Starts branch `name` at `at` (a commit or ref) and checks it out.
    pub fn branch(&self, name: &str, at: &str) {
        self.git(&["checkout", "--quiet", "-b", name, at]);
    }

    /// Starts branch `name` with no history and no files, and checks it out.
    pub fn orphan(&self, name: &str) {
        self.git(&["checkout", "--quiet", "--orphan", name]);
        self.git(&["rm", "-r", "--quiet", "--force", "--ignore-unmatch", "."]);
    }

    /// Tags `at`: annotated with `message` when given, else lightweight. The tag's sha (the
    /// tag object's when annotated).
    pub fn tag(&self, name: &str, at: &str, message: Option<&str>) -> String {
        match message {
            Some(message) => self.git(&["tag", "-a", name, "-m", message, at]),
            None => self.git(&["tag", name, at]),
        };
        self.git(&["rev-parse", &format!("refs/tags/{name}")])
    }

    /// Pushes refspecs (`main`, `+main` to force, `:refs/tags/v1` to delete) to `to`.
    pub fn push(&self, to: &Path, refspecs: &[&str]) {
        let to = to.display().to_string();
        let mut args = vec!["push", "--quiet", to.as_str()];
        args.extend_from_slice(refspecs);
        self.git(&args);
    }

    /// Moves the checked-out branch back to `to`, as before a forced push.
    pub fn reset_hard(&self, to: &str) {
        self.git(&["reset", "--quiet", "--hard", to]);
    }
}

impl Default for Work {
    fn default() -> Work {
        Work::new()
    }
}

/// Whether git's own program `name` (`git-daemon`, `git-http-backend`) is installed.
fn git_program(name: &str, install: &str) -> Result<(), Missing> {
    let exec_path = Command::new("git")
        .arg("--exec-path")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match exec_path {
        Some(dir) if dir.join(name).exists() => Ok(()),
        Some(dir) => Err(Missing::new(dir.join(name).display().to_string(), install)),
        None => Err(Missing::new(
            "git",
            "install git (Debian: apt-get install git)",
        )),
    }
}

/// `git daemon` serving every repository under a base directory over git://, pushes
/// included; its process group is killed on drop.
#[derive(Debug)]
pub struct GitDaemon {
    base: PathBuf,
    port: u16,
    daemon: Option<Killed>,
}

impl GitDaemon {
    /// Starts a daemon on a free loopback port and waits until it accepts connections. A
    /// [`Missing`] error when git's daemon is not installed.
    pub fn start(base: &Path) -> anyhow::Result<GitDaemon> {
        git_program(
            "git-daemon",
            "install git's daemon (Debian: apt-get install git; Fedora: dnf install git-daemon)",
        )?;
        for _ in 0..5 {
            let port = free_port()?;
            if let Some(daemon) = spawn_daemon(base, port)? {
                return Ok(GitDaemon {
                    base: base.to_path_buf(),
                    port,
                    daemon: Some(daemon),
                });
            }
            // Someone took the port in between: try another.
        }
        bail!("git daemon did not start on any of five free ports")
    }

    /// Starts the stopped daemon again on the same port (a server coming back).
    pub fn restart(&mut self) {
        assert!(self.daemon.is_none(), "the daemon is running");
        let deadline = Instant::now() + START_WITHIN;
        while self.daemon.is_none() {
            self.daemon = spawn_daemon(&self.base, self.port).expect("git daemon");
            assert!(
                Instant::now() < deadline,
                "git daemon did not restart on port {}",
                self.port
            );
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The git:// URL of repository `name` under the base directory.
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }

    /// Kills the daemon and the children it forked; returns once connections are refused.
    pub fn stop(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            drop(daemon);
            // A child it forked may hold the listening socket a moment longer.
            let deadline = Instant::now() + START_WITHIN;
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                assert!(
                    Instant::now() < deadline,
                    "git daemon still accepts connections"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Runs `git daemon` for `base` on `port`; `None` when it did not come up there.
fn spawn_daemon(base: &Path, port: u16) -> anyhow::Result<Option<Killed>> {
    let mut daemon = Killed::spawn(
        git_command(base)
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--max-connections=64",
                "--enable=receive-pack",
            ])
            .arg(format!("--base-path={}", base.display()))
            .args(["--listen=127.0.0.1", &format!("--port={port}")])
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .context("cannot start git daemon")?;
    let up = await_port(port, daemon.child(), START_WITHIN)?;
    Ok(up.then_some(daemon))
}
