//! The bench's git host and pusher: K bare repositories behind a `git daemon`, each with `main`
//! and `dev`, and a work clone per branch that makes real pushes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use switchyard::repo::RepoId;

use super::{GitDaemon, try_git};
use crate::{REGION, now_ms};

/// The branches pushes go to.
pub const BRANCHES: [&str; 2] = ["main", "dev"];
/// Directories pushes write under, so that paths vary.
const DIRS: [&str; 6] = ["src/api", "src/core", "docs", "ci", "web/app", "tools"];

/// The git server: `git daemon` over the bare repositories `r0.git` … `rK-1.git`.
#[derive(Debug)]
pub struct GitHost {
    pub names: Vec<String>,
    daemon: GitDaemon,
}

impl GitHost {
    /// Makes `count` bare repositories under `dir` behind a `git daemon`, each with `main`
    /// and `dev`, and a work clone per branch for the pusher.
    pub fn start(dir: &Path, count: usize) -> anyhow::Result<(GitHost, Pusher)> {
        let repos = dir.join("repos");
        let work = dir.join("work");
        for d in [&repos, &work] {
            std::fs::create_dir_all(d)?;
        }
        let daemon = GitDaemon::start(&repos)?;
        let git = |at: &Path, args: &[&str]| try_git(at, args, "");
        let mut names = Vec::with_capacity(count);
        let mut branches = HashMap::new();
        for i in 0..count {
            let name = format!("r{i}");
            let url = daemon.url(&format!("{name}.git"));
            git(&repos, &["init", "-q", "--bare", &format!("{name}.git")])?;
            let seed = work.join(format!("{name}-main"));
            git(dir, &["init", "-q", &seed.display().to_string()])?;
            std::fs::write(seed.join("README.md"), format!("# {name}\n"))?;
            git(&seed, &["add", "README.md"])?;
            git(&seed, &["commit", "-q", "-m", "init"])?;
            git(&seed, &["branch", "dev"])?;
            git(&seed, &["remote", "add", "origin", &url])?;
            git(&seed, &["push", "-q", "origin", "main", "dev"])?;
            let tip = git(&seed, &["rev-parse", "HEAD"])?;
            let dev = work.join(format!("{name}-dev"));
            git(
                dir,
                &["clone", "-q", "-b", "dev", &url, &dev.display().to_string()],
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
        Ok((GitHost { names, daemon }, Pusher { branches }))
    }

    /// The polling URL of repository `name`.
    pub fn url(&self, name: &str) -> String {
        self.daemon.url(&format!("{name}.git"))
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
        let b = self
            .branches
            .get_mut(&(repository.to_owned(), branch.to_owned()))
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
        let git = |args: &[&str]| try_git(&b.work, args, "");
        git(&["add", "--", &path])?;
        git(&["commit", "-q", "-m", &format!("bench push {}", b.pushes)])?;
        let after = git(&["rev-parse", "HEAD"])?;
        git(&["push", "-q", "origin", branch])?;
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
