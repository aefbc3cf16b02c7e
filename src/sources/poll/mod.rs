//! Polling: asks each configured git server for its refs on an interval (the ref advertisement
//! only, what `git ls-remote` reads), compares them with the cursors in the store, fetches what
//! moved into a bare mirror, and turns every moved ref into a change event with its changed
//! paths. The same mirrors complete the paths of other sources' events.
//!
//! A poll's changes and its cursor moves are stored in one transaction: a cursor never passes
//! a change that is not on disk, so a crash between the advertisement and the store loses
//! nothing (the next poll sees the same moves, and the same change ids dedupe them).
//!
//! The first poll of a repository records its refs as the baseline and starts nothing.
//!
//! One job a file, each an `impl Poller`: `pass.rs` one poll of a repository
//! ([`Poller::poll_once`], the step tests drive), `moves.rs` the refs that moved and their
//! change events, `schedule.rs` when each repository is polled next, `complete.rs` the paths of
//! other sources' changes completed from the mirrors; this file the poller, its repositories
//! and their mirrors.

mod complete;
pub mod git;
pub mod health;
mod moves;
mod pass;
mod schedule;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;

use crate::activity::Activity;
use crate::config::{Auth, PollRepo, Polling};
use crate::diag::Hint;
use crate::event::ChangeEvent;
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::outcome::IntakeOutcome;
use crate::repo::RepoId;
use crate::store::{Store, StoreError};

use git::{Credentials, GitError, Mirror, Remote};

/// The folder of the mirrors inside the state directory.
pub const MIRRORS_DIR: &str = "mirrors";

/// Why one poll failed.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{url}: cannot read the credentials: {message}")]
    Credentials { url: String, message: String },
    #[error("{repository}: cannot store what the poll found: {source}")]
    Store {
        repository: String,
        source: StoreError,
    },
    #[error("{repository}: a git worker thread failed: {message}")]
    Worker { repository: String, message: String },
}

impl Hint for PollError {
    /// How to fix it.
    fn hint(&self) -> String {
        match self {
            PollError::Git(e) => e.hint(),
            PollError::Credentials { .. } => {
                "set the environment variable or create the file that `auth` names".to_owned()
            }
            PollError::Store { .. } => {
                "check that the state directory is writable and not full".to_owned()
            }
            PollError::Worker { .. } => "this is a bug; the poll is retried".to_owned(),
        }
    }
}

/// What one poll of one repository did.
#[derive(Debug)]
pub struct PollReport {
    pub repository: RepoId,
    /// Refs advertised (branches and tags).
    pub refs: usize,
    /// True for the first poll: the refs were recorded as the baseline; nothing was started.
    pub baseline: bool,
    /// True when another replica holds the repository's lease: this one did not poll it.
    pub elsewhere: bool,
    /// The changes found, each with what the store made of it.
    pub found: Vec<(ChangeEvent, IntakeOutcome)>,
}

/// One polled repository.
#[derive(Debug)]
struct Polled {
    spec: PollRepo,
    mirror_path: PathBuf,
    /// The mirror, opened on first use; held by whoever fetches into it or reads it.
    mirror: Arc<std::sync::Mutex<Option<Mirror>>>,
    /// One poll at a time per repository.
    state: Mutex<RepoState>,
    /// The server's default branch, from the last advertisement.
    default_branch: std::sync::Mutex<Option<String>>,
}

#[derive(Debug, Default)]
struct RepoState {
    /// The stored cursors, loaded at the first poll (and again after another replica polled
    /// the repository).
    cursors: Option<BTreeMap<String, String>>,
    /// Failed polls in a row.
    failures: u32,
    /// The interval in use now (stretched while push sources deliver).
    interval: Duration,
}

/// The poller of every configured repository.
#[derive(Debug)]
pub struct Poller {
    repos: Vec<Arc<Polled>>,
    /// Where the changes found go (decided, then stored with the cursor moves).
    intake: Intake,
    /// The cursors, leases and deferred changes.
    store: Store,
    metrics: Arc<Metrics>,
    /// Which sources reported which change: the intake's record, read for the schedule.
    activity: Arc<Activity>,
    settings: Polling,
    health: Arc<health::PollHealth>,
}

impl Poller {
    /// A poller for `repos`, with mirrors under `state_dir/mirrors`, storing through `intake`
    /// into `store` (the intake's) and counting into `metrics`. Sets libgit2's network
    /// timeouts (process-wide) to `settings.timeout`.
    pub fn new(
        repos: &[PollRepo],
        settings: &Polling,
        state_dir: &Path,
        intake: Intake,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> Poller {
        git::set_timeouts(settings.timeout, settings.timeout);
        let repos: Vec<Arc<Polled>> = repos
            .iter()
            .map(|spec| {
                Arc::new(Polled {
                    mirror_path: state_dir
                        .join(MIRRORS_DIR)
                        .join(mirror_name(&spec.repository)),
                    spec: spec.clone(),
                    mirror: Arc::default(),
                    state: Mutex::new(RepoState {
                        interval: spec.interval,
                        ..RepoState::default()
                    }),
                    default_branch: std::sync::Mutex::default(),
                })
            })
            .collect();
        let health = health::PollHealth::new(
            repos
                .iter()
                .map(|r| (r.spec.repository.to_string(), r.spec.interval)),
        );
        Poller {
            repos,
            activity: Arc::clone(intake.activity()),
            intake,
            store,
            metrics,
            settings: settings.clone(),
            health: Arc::new(health),
        }
    }

    /// Each repository's last poll and its outcome, as the status page shows them.
    pub fn health(&self) -> Arc<health::PollHealth> {
        Arc::clone(&self.health)
    }

    /// The repositories polled, in configuration order.
    pub fn repositories(&self) -> impl Iterator<Item = &RepoId> {
        self.repos.iter().map(|r| &r.spec.repository)
    }

    /// Whether changes of `repository` can be completed from a mirror.
    pub fn covers(&self, repository: &RepoId) -> bool {
        self.repos.iter().any(|r| &r.spec.repository == repository)
    }

    /// Runs `f` with the repository's mirror (opened on first use) on a blocking thread.
    async fn with_mirror<T: Send + 'static>(
        &self,
        repo: &Arc<Polled>,
        f: impl FnOnce(&Mirror) -> Result<T, GitError> + Send + 'static,
    ) -> Result<T, PollError> {
        let mirror = Arc::clone(&repo.mirror);
        let path = repo.mirror_path.clone();
        blocking(&repo.spec.repository, move || {
            let mut guard = mirror.lock().map_err(|_| GitError::Mirror {
                path: path.display().to_string(),
                message: "a thread panicked while holding the mirror".into(),
            })?;
            if guard.is_none() {
                *guard = Some(Mirror::open(&path)?);
            }
            match guard.as_ref() {
                Some(m) => f(m),
                None => Err(GitError::Mirror {
                    path: path.display().to_string(),
                    message: "not open".into(),
                }),
            }
        })
        .await
    }

    fn count_request(&self, kind: &'static str, ok: bool) {
        self.metrics.poll_request(kind, ok);
    }
}

/// The remote of a polled repository, with its credentials read now (so a rotated secret is
/// picked up at the next poll).
fn remote(spec: &PollRepo) -> Result<Remote, PollError> {
    let fail = |e: crate::secret::ResolveError| PollError::Credentials {
        url: spec.url.clone(),
        message: e.to_string(),
    };
    let credentials = match &spec.auth {
        None => None,
        Some(Auth::Token { username, token }) => Some(Credentials::Token {
            username: username.clone(),
            token: token.resolve().map_err(fail)?,
        }),
        Some(Auth::SshKey(key)) => Some(Credentials::SshKey {
            username: None,
            private_key: key.resolve().map_err(fail)?,
            passphrase: None,
        }),
    };
    Ok(Remote {
        url: spec.url.clone(),
        credentials,
    })
}

/// Runs blocking git work on the blocking pool.
async fn blocking<T: Send + 'static>(
    repository: &RepoId,
    f: impl FnOnce() -> Result<T, GitError> + Send + 'static,
) -> Result<T, PollError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(PollError::from),
        Err(e) => Err(PollError::Worker {
            repository: repository.to_string(),
            message: e.to_string(),
        }),
    }
}

/// The mirror's folder name: readable, and unique per repository.
fn mirror_name(id: &RepoId) -> String {
    let readable: String = id
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or("repo")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    let digest = Sha256::digest(id.as_str().as_bytes());
    let hash = crate::signature::to_hex(&digest[..8]);
    format!("{readable}-{hash}.git")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_names_are_readable_and_distinct() {
        let a = RepoId::parse("https://github.com/acme/api.git", None).expect("valid");
        let b = RepoId::parse("https://gitlab.com/acme/api.git", None).expect("valid");
        assert!(mirror_name(&a).starts_with("api-"));
        assert_ne!(mirror_name(&a), mirror_name(&b));
    }
}
