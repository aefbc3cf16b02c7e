//! The git host and the pusher: `git daemon` over bare repositories, work clones that make
//! real pushes.

use std::collections::HashMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;

use crate::repo::RepoId;

use super::*;

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
