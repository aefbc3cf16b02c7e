//! The laboratory's parts, all real and all on loopback: a `git daemon` serving K bare
//! repositories (pushable), work clones that make real pushes, a moto server with a rule
//! → queue, the runner that pipeline starts reach, and `switchyard serve` as a child process
//! with the sources a scenario turns on.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

mod announce;
mod git;
mod moto;
mod runner;
mod serve;
#[cfg(test)]
mod tests;

pub use announce::{codecommit_detail, github_push, send_event, send_webhook};
pub use git::{GitHost, Push, Pusher, git_host, identity};
pub use moto::{Moto, queue_with_rule};
pub use runner::{Arrival, Runner};
pub use serve::{Serve, ServeSetup, Sources, metric_sum};

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
