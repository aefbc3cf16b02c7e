//! Polling: asks each configured git server for its refs on an interval (the ref advertisement
//! only, what `git ls-remote` reads), compares them with the cursors in the store, fetches what
//! moved into a bare mirror, and turns every moved ref into a change event with its changed
//! paths. The same mirrors complete the paths of other sources' events ([`Poller::complete`]).
//!
//! A poll's changes and its cursor moves are stored in one transaction: a cursor never passes
//! a change that is not on disk, so a crash between the advertisement and the store loses
//! nothing (the next poll sees the same moves, and the same change ids dedupe them).
//!
//! The first poll of a repository records its refs as the baseline and starts nothing.

mod complete;
pub mod git;
pub mod health;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use sha2::{Digest as _, Sha256};
use tokio::sync::{Mutex, Semaphore};

use crate::config::{Auth, PollRepo, Polling};
use crate::diag::Hint;
use crate::event::{
    ChangeEvent, ChangeKind, Completion, CompletionOutcome, SCHEMA, Source, SourceKind, ZERO_SHA,
    is_zero,
};
use crate::intake::Intake;
use crate::outcome::IntakeOutcome;
use crate::repo::RepoId;
use crate::shutdown::Shutdown;
use crate::store::{RefMove, StoreError};

use git::{Credentials, Diff, GitError, Mirror, Remote};

/// The folder of the mirrors inside the state directory.
pub const MIRRORS_DIR: &str = "mirrors";
/// The cursor that marks a repository as polled once (its baseline is recorded).
const BASELINE: &str = "";
/// The most a poll's wait is jittered by, either way.
const JITTER_MAX: Duration = Duration::from_millis(100);

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
    intake: Intake,
    settings: Polling,
    health: Arc<health::PollHealth>,
}

impl Poller {
    /// A poller for `repos`, with mirrors under `state_dir/mirrors`. Sets libgit2's network
    /// timeouts (process-wide) to `settings.timeout`.
    pub fn new(repos: &[PollRepo], settings: &Polling, state_dir: &Path, intake: Intake) -> Poller {
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
            intake,
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

    /// Polls every repository once, `settings.concurrency` at a time; results in
    /// configuration order.
    pub async fn poll_all_once(self: &Arc<Self>) -> Vec<Result<PollReport, PollError>> {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut tasks = Vec::with_capacity(self.repos.len());
        for index in 0..self.repos.len() {
            let poller = Arc::clone(self);
            let slots = Arc::clone(&slots);
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire().await;
                poller.poll_once(index).await
            }));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for (task, repo) in tasks.into_iter().zip(&self.repos) {
            out.push(task.await.unwrap_or_else(|e| {
                Err(PollError::Worker {
                    repository: repo.spec.repository.to_string(),
                    message: e.to_string(),
                })
            }));
        }
        out
    }

    /// One poll of repository `index`: reads the advertisement; on the first poll records the
    /// baseline; otherwise fetches the moved refs, computes their changes, and stores them
    /// with the cursor moves. Returns once stored.
    pub async fn poll_once(&self, index: usize) -> Result<PollReport, PollError> {
        let repo = &self.repos[index];
        let began = Instant::now();
        let result = self.poll_repo(repo).await;
        let metrics = self.intake.metrics();
        metrics.poll_seconds(began.elapsed().as_secs_f64());
        let now = crate::store::now_ms();
        match &result {
            Ok(report) => self.health.record(
                index,
                now,
                health::Polled::Ok {
                    elsewhere: report.elsewhere,
                },
            ),
            Err(e) => self.health.record(
                index,
                now,
                health::Polled::Failed {
                    error: &e.to_string(),
                    hint: &e.hint(),
                },
            ),
        }
        result
    }

    async fn poll_repo(&self, repo: &Arc<Polled>) -> Result<PollReport, PollError> {
        let mut state = repo.state.lock().await;
        let id = &repo.spec.repository;
        let store_error = |source| PollError::Store {
            repository: id.to_string(),
            source,
        };
        // Several replicas on one store: only the one holding the repository's lease polls it.
        // The others forget its cursors, so that they start from the stored ones (where the
        // holder stopped) when the lease comes to them.
        if !self
            .intake
            .store()
            .poll_lease(id.as_str())
            .await
            .map_err(store_error)?
        {
            state.cursors = None;
            return Ok(PollReport {
                repository: id.clone(),
                refs: 0,
                baseline: false,
                elsewhere: true,
                found: Vec::new(),
            });
        }
        let cursors = match &mut state.cursors {
            Some(c) => c,
            none => none.insert(self.intake_store_cursors(id).await.map_err(store_error)?),
        };
        // The cursors in memory change only once the store has the new ones.
        let remote = remote(&repo.spec)?;
        let advertised = {
            let remote = remote.clone();
            let result = blocking(id, move || git::ls_remote(&remote)).await;
            self.count_request("ls-remote", result.is_ok());
            result?
        };
        if let Ok(mut d) = repo.default_branch.lock() {
            d.clone_from(&advertised.default_branch);
        }
        let mut report = PollReport {
            repository: id.clone(),
            refs: advertised.refs.len(),
            baseline: false,
            elsewhere: false,
            found: Vec::new(),
        };
        if !cursors.contains_key(BASELINE) {
            // First poll: remember where every ref is, start nothing.
            let mut moves: Vec<(String, Option<String>)> = advertised
                .refs
                .iter()
                .map(|(r, sha)| (r.clone(), Some(sha.clone())))
                .collect();
            moves.push((BASELINE.to_owned(), Some(String::new())));
            self.intake
                .submit_poll(id, Vec::new(), moves)
                .await
                .map_err(store_error)?;
            cursors.clone_from(&advertised.refs);
            cursors.insert(BASELINE.to_owned(), String::new());
            report.baseline = true;
            // Fill the mirror now, so that the first change (even a forced push) has its
            // `before` at hand. A failure here only makes later paths incomplete.
            self.fill_mirror(repo, &remote, &advertised.refs).await;
            return Ok(report);
        }
        let moves = moved(cursors, &advertised.refs);
        if moves.is_empty() {
            return Ok(report);
        }
        if !repo.mirror_path.exists() {
            // Taken over from another replica (mirrors are each replica's own): fill the
            // mirror with every advertised ref first, so that each move's `before` is at hand.
            self.fill_mirror(repo, &remote, &advertised.refs).await;
        }
        let unreported = self.unreported(id, &moves).await.map_err(store_error)?;
        let events = self
            .changes(
                repo,
                &remote,
                &moves,
                &unreported,
                advertised.default_branch.clone(),
            )
            .await;
        let cursor_moves = moves
            .iter()
            .map(|m| (m.git_ref.clone(), m.after.clone()))
            .collect();
        crate::crash_point("poll-store");
        let outcomes = self
            .intake
            .submit_poll(id, events.clone(), cursor_moves)
            .await
            .map_err(store_error)?;
        for m in &moves {
            match &m.after {
                Some(sha) => cursors.insert(m.git_ref.clone(), sha.clone()),
                None => cursors.remove(&m.git_ref),
            };
        }
        report.found = events.into_iter().zip(outcomes).collect();
        Ok(report)
    }

    /// Fetches every advertised ref into the mirror. A failure only makes the paths of the
    /// changes that need it incomplete, so it is logged, not returned.
    async fn fill_mirror(
        &self,
        repo: &Arc<Polled>,
        remote: &Remote,
        advertised: &BTreeMap<String, String>,
    ) {
        let refs: Vec<String> = advertised.keys().cloned().collect();
        let remote = remote.clone();
        let fetched = self
            .with_mirror(repo, move |m| m.fetch(&remote, &refs))
            .await;
        self.count_request("fetch", fetched.is_ok());
        if let Err(e) = fetched {
            tracing::warn!(repository = %repo.spec.repository, error = %e, "cannot fill the mirror; paths of the next changes may be incomplete");
        }
    }

    async fn intake_store_cursors(
        &self,
        id: &RepoId,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        self.intake.store().cursors(id.as_str()).await
    }

    /// The intake the poller stores into.
    pub fn intake(&self) -> &Intake {
        &self.intake
    }

    /// Fetches the moved refs into the mirror and builds one change event per move (with its
    /// paths unknown when the mirror cannot give them).
    /// Each move, or, when other sources reported its later part but not its beginning (a lost
    /// webhook before a delivered one), only the part they did not report (see
    /// [`crate::store::Store::unreported`]): that is the change nobody announced.
    async fn unreported(&self, id: &RepoId, moves: &[Move]) -> Result<Vec<Move>, StoreError> {
        let mut out = Vec::with_capacity(moves.len());
        for m in moves {
            // A created ref has one report, whoever makes it: its id says so already.
            let Some(from) = &m.before else {
                out.push(m.clone());
                continue;
            };
            let to = m.after.clone().unwrap_or_else(|| ZERO_SHA.to_owned());
            let rest = self
                .intake
                .store()
                .unreported(RefMove {
                    repository: id.as_str().to_owned(),
                    git_ref: m.git_ref.clone(),
                    from: from.clone(),
                    to: to.clone(),
                })
                .await?;
            match rest {
                // Reported whole, or not at all: the move itself (the intake recognises a ref
                // state reported already, and records that polling saw it too).
                None => out.push(m.clone()),
                Some(end) if end == to => out.push(m.clone()),
                Some(end) => {
                    tracing::info!(repository = %id, git_ref = %m.git_ref, from = %from, to = %end, "part of a move was never reported; polling reports it");
                    out.push(Move {
                        git_ref: m.git_ref.clone(),
                        before: m.before.clone(),
                        after: (!is_zero(&end)).then_some(end),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Fetches every moved ref into the mirror (and drops the deleted ones), and makes the
    /// change events of `report`, with their paths from the mirror.
    async fn changes(
        &self,
        repo: &Arc<Polled>,
        remote: &Remote,
        moves: &[Move],
        report: &[Move],
        default_branch: Option<String>,
    ) -> Vec<ChangeEvent> {
        let mut wanted: Vec<String> = moves
            .iter()
            .filter(|m| m.after.is_some())
            .map(|m| m.git_ref.clone())
            .collect();
        if let Some(d) = &default_branch
            && report.iter().any(|m| m.before.is_none())
            && !wanted.contains(d)
        {
            wanted.push(d.clone());
        }
        let remote = remote.clone();
        let deleted: Vec<String> = moves
            .iter()
            .filter(|m| m.after.is_none())
            .map(|m| m.git_ref.clone())
            .collect();
        let moves_owned = report.to_vec();
        let moves = report;
        let computed = self
            .with_mirror(repo, move |mirror| {
                let fetched = mirror.fetch(&remote, &wanted);
                for git_ref in &deleted {
                    mirror.delete_ref(git_ref)?;
                }
                let base = default_branch.as_deref().and_then(|d| mirror.resolve(d));
                let diffs = moves_owned
                    .iter()
                    .map(|m| {
                        let base = base.as_deref().filter(|_| m.before.is_none());
                        mirror.diff(m.before.as_deref(), m.after.as_deref(), base)
                    })
                    .collect::<Result<Vec<Diff>, GitError>>()?;
                Ok((fetched, diffs))
            })
            .await;
        // Without the mirror the moves are still changes: their paths are unknown (and pass
        // path filters), so nothing is lost to a broken mirror.
        let diffs = match computed {
            Ok((fetched, diffs)) => {
                self.count_request("fetch", fetched.is_ok());
                if let Err(e) = fetched {
                    tracing::warn!(repository = %repo.spec.repository, error = %e, "fetch failed; the changes found carry no paths");
                }
                diffs
            }
            Err(e) => {
                tracing::warn!(repository = %repo.spec.repository, error = %e, "the mirror cannot give the changed paths; they are unknown");
                let unknown = Diff {
                    paths: Vec::new(),
                    complete: false,
                    commit_count: None,
                };
                vec![unknown; moves.len()]
            }
        };
        let received_at = Timestamp::now();
        let mut events = Vec::with_capacity(moves.len());
        for (m, diff) in moves.iter().zip(diffs) {
            let event = ChangeEvent {
                schema: SCHEMA.to_owned(),
                id: String::new(),
                repository: repo.spec.repository.clone(),
                kind: ChangeKind::Push,
                git_ref: m.git_ref.clone(),
                before: m.before.clone().unwrap_or_else(|| ZERO_SHA.to_owned()),
                after: m.after.clone().unwrap_or_else(|| ZERO_SHA.to_owned()),
                created: m.before.is_none(),
                deleted: m.after.is_none(),
                commit_count: diff.commit_count,
                changed_paths: diff.paths,
                changed_paths_complete: diff.complete,
                completion: None,
                pull_request: None,
                source: Source {
                    kind: SourceKind::Poll,
                    provider: None,
                    delivery_id: None,
                },
                occurred_at: None,
                received_at,
            };
            match event.seal() {
                Ok(e) => events.push(e),
                // A ref name git accepts but the schema does not: skip it, loudly.
                Err(e) => {
                    tracing::warn!(repository = %repo.spec.repository, git_ref = %m.git_ref, error = %e, "a moved ref cannot be described as a change; skipped")
                }
            }
        }
        events
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
        self.intake.metrics().poll_request(kind, ok);
    }

    /// Whether changes of `repository` can be completed from a mirror.
    pub fn covers(&self, repository: &RepoId) -> bool {
        self.repos.iter().any(|r| &r.spec.repository == repository)
    }

    /// Completes the changed paths of another source's event from the mirror, within
    /// `polling.complete_within`. The event comes back with `completion` set: completed (the
    /// paths are now the full list), failed or timed out (the paths stay unknown, and path
    /// filters pass them).
    pub async fn complete(&self, mut event: ChangeEvent) -> ChangeEvent {
        let Some(repo) = self
            .repos
            .iter()
            .find(|r| r.spec.repository == event.repository)
        else {
            return event;
        };
        let bound = self.settings.complete_within;
        let result = tokio::time::timeout(bound, self.paths_of(repo, &event)).await;
        let (outcome, detail) = match result {
            Ok(Ok(diff)) if diff.complete => {
                event.changed_paths = diff.paths;
                event.changed_paths_complete = true;
                event.commit_count = event.commit_count.or(diff.commit_count);
                (CompletionOutcome::Completed, None)
            }
            Ok(Ok(_)) => (
                CompletionOutcome::Failed,
                Some("the mirror lacks the commits (or the change is too large to list)".into()),
            ),
            Ok(Err(e)) => (CompletionOutcome::Failed, Some(e.to_string())),
            Err(_) => (
                CompletionOutcome::TimedOut,
                Some(format!("not done within {bound:?}")),
            ),
        };
        self.intake.metrics().completion(outcome_word(outcome));
        if outcome != CompletionOutcome::Completed {
            tracing::warn!(repository = %event.repository, change_id = %event.id, ?outcome, detail = detail.as_deref().unwrap_or(""), "changed paths stay unknown; path filters pass");
        }
        event.completion = Some(Completion { outcome, detail });
        event
    }

    /// The paths of `event` from the mirror, after fetching its refs.
    async fn paths_of(&self, repo: &Arc<Polled>, event: &ChangeEvent) -> Result<Diff, PollError> {
        let remote = remote(&repo.spec)?;
        let default_branch = repo.default_branch.lock().ok().and_then(|d| d.clone());
        let mut refs = vec![event.git_ref.clone()];
        let (before, base_ref, base_sha) = match &event.pull_request {
            Some(pr) => {
                // The head of a pull request from a fork is only under the forge's own refs
                // (GitHub and Gitea `refs/pull/N/head`, GitLab `refs/merge-requests/N/head`);
                // a ref the server lacks fetches nothing.
                refs.push(format!("refs/pull/{}/head", pr.number));
                refs.push(format!("refs/merge-requests/{}/head", pr.number));
                refs.push(pr.base_ref.clone());
                (None, Some(pr.base_ref.clone()), pr.base_sha.clone())
            }
            None if event.created => (None, default_branch.clone(), None),
            None => (Some(event.before.clone()), None, None),
        };
        if let Some(d) = &base_ref
            && !refs.contains(d)
        {
            refs.push(d.clone());
        }
        let after = event.after.clone();
        let (fetched, diff) = self
            .with_mirror(repo, move |mirror| {
                // Fetch only when the commits are not here yet (a ref gone by now fetches
                // nothing; the diff then says the paths are incomplete).
                let fetched =
                    if mirror.has(&after) && before.as_deref().is_none_or(|b| mirror.has(b)) {
                        Ok(())
                    } else {
                        mirror.fetch(&remote, &refs)
                    };
                let base = base_sha
                    .filter(|s| mirror.has(s))
                    .or_else(|| base_ref.as_deref().and_then(|r| mirror.resolve(r)));
                let diff = mirror.diff(before.as_deref(), Some(&after), base.as_deref())?;
                Ok((fetched, diff))
            })
            .await?;
        if let Err(e) = fetched {
            self.count_request("fetch", false);
            if !diff.complete {
                return Err(e.into());
            }
        }
        Ok(diff)
    }

    /// Polls every repository on its schedule until shutdown.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..self.repos.len() {
            tasks.spawn(Arc::clone(&self).schedule(index, Arc::clone(&slots), shutdown.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }

    /// The loop of one repository: wait, poll, work out the next wait.
    async fn schedule(
        self: Arc<Self>,
        index: usize,
        slots: Arc<Semaphore>,
        mut shutdown: Shutdown,
    ) {
        let repo = Arc::clone(&self.repos[index]);
        // Spread the first polls over up to a second, so that many repositories do not all
        // connect at the same instant.
        let spread = repo.spec.interval.min(Duration::from_secs(1)).as_millis() as u64;
        let mut wait = Duration::from_millis(fastrand::u64(0..=spread));
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let began = Instant::now();
            let result = tokio::select! {
                _ = shutdown.wait() => return,
                result = async {
                    let _slot = slots.acquire().await;
                    self.poll_once(index).await
                } => result,
            };
            // The next poll is due a wait after this one began, so that a slow poll (or one
            // that waited for a slot) does not stretch the gap between two polls.
            wait = self
                .next_wait(&repo, result)
                .await
                .saturating_sub(began.elapsed());
        }
    }

    /// Logs a poll's result and decides when to poll next: the interval (stretched toward
    /// `max_interval` while push sources deliver, back to `interval` when polling found a
    /// change first); after errors, exponential backoff up to `max_interval`. Either with a
    /// little jitter (±10%, at most ±100 ms), so that repositories polled together drift apart
    /// without ever waiting much longer than their interval.
    async fn next_wait(
        &self,
        repo: &Arc<Polled>,
        result: Result<PollReport, PollError>,
    ) -> Duration {
        let spec = &repo.spec;
        let mut state = repo.state.lock().await;
        let base = match result {
            Err(e) => {
                state.failures += 1;
                tracing::warn!(repository = %spec.repository, failures = state.failures, error = %e, hint = e.hint(), "poll failed");
                let factor = 2u32.saturating_pow(state.failures.min(16));
                spec.interval.saturating_mul(factor).min(spec.max_interval)
            }
            Ok(report) => {
                if state.failures > 0 {
                    tracing::info!(repository = %spec.repository, after = state.failures, "polling recovered");
                }
                state.failures = 0;
                let first = self.found_first(&report);
                let pushing = !self
                    .intake
                    .activity()
                    .push_sources(spec.repository.as_str(), spec.max_interval * 2)
                    .is_empty();
                state.interval = if pushing && !first {
                    (state.interval * 2).min(spec.max_interval)
                } else {
                    spec.interval
                };
                if report.baseline {
                    tracing::info!(repository = %spec.repository, refs = report.refs, "polling: baseline recorded");
                }
                state.interval
            }
        };
        let spread = base.mul_f64(0.1).min(JITTER_MAX);
        let jitter = spread.mul_f64(fastrand::f64() * 2.0);
        (base + jitter).saturating_sub(spread)
    }

    /// Whether this poll stored a change no other source had reported; for each, a check
    /// after `missed_grace` counts it as missed by every push source that delivers for the
    /// repository and still has not announced it.
    fn found_first(&self, report: &PollReport) -> bool {
        let mut first = false;
        for (event, outcome) in &report.found {
            let IntakeOutcome::Accepted { change_id, .. } = outcome else {
                continue;
            };
            first = true;
            tracing::info!(repository = %event.repository, git_ref = %event.git_ref, change_id = %change_id, "polling found a change first");
            let activity = Arc::clone(self.intake.activity());
            let metrics = Arc::clone(self.intake.metrics());
            let grace = self.settings.missed_grace;
            let repository = event.repository.as_str().to_owned();
            let change_id = change_id.clone();
            tokio::spawn(async move {
                let expected = activity.push_sources(&repository, Duration::from_secs(24 * 3600));
                tokio::time::sleep(grace).await;
                for source in expected {
                    if !activity.saw(&change_id, source) {
                        tracing::warn!(%repository, change_id = %change_id, %source, "missed: polling found a change this source never announced");
                        metrics.missed(source.as_str());
                    }
                }
            });
        }
        first
    }
}

/// `switchyard poll --once`: one pass over the configured repositories, stored like `serve`
/// stores it (cursors move, starts are queued for `serve` to dispatch). Fails only when the
/// store cannot be opened; each repository's result is in the list.
pub async fn once(
    config: &crate::config::Config,
    pipelines: crate::pipeline::Pipelines,
) -> Result<Vec<Result<PollReport, PollError>>, StoreError> {
    let location = config
        .store_location()
        .map_err(|message| StoreError::Open {
            path: "store.postgres".into(),
            message,
        })?;
    let store = crate::store::Store::open_checked_at(
        &location,
        crate::store::Role::Tool,
        Arc::new(tokio::sync::Notify::new()),
    )
    .await?;
    let intake = Intake::new(
        Arc::new(pipelines),
        store,
        Arc::new(crate::metrics::Metrics::default()),
    );
    let poller = Arc::new(Poller::new(
        &config.poll,
        &config.polling,
        &config.state_dir,
        intake,
    ));
    Ok(poller.poll_all_once().await)
}

/// A ref that moved between the cursors and the advertisement.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Move {
    git_ref: String,
    before: Option<String>,
    after: Option<String>,
}

/// The refs that differ between the cursors and the advertisement, in ref order.
fn moved(cursors: &BTreeMap<String, String>, advertised: &BTreeMap<String, String>) -> Vec<Move> {
    let mut out = Vec::new();
    for (name, sha) in advertised {
        match cursors.get(name) {
            Some(old) if old == sha => {}
            old => out.push(Move {
                git_ref: name.clone(),
                before: old.cloned(),
                after: Some(sha.clone()),
            }),
        }
    }
    for (name, sha) in cursors {
        if name != BASELINE && !advertised.contains_key(name) {
            out.push(Move {
                git_ref: name.clone(),
                before: Some(sha.clone()),
                after: None,
            });
        }
    }
    out.sort_by(|a, b| a.git_ref.cmp(&b.git_ref));
    out
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

fn outcome_word(outcome: CompletionOutcome) -> &'static str {
    match outcome {
        CompletionOutcome::Completed => "completed",
        CompletionOutcome::Failed => "failed",
        CompletionOutcome::TimedOut => "timed_out",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn moves_are_created_updated_and_deleted_refs() {
        let cursors = map(&[
            ("", ""),
            ("refs/heads/main", "a"),
            ("refs/heads/gone", "b"),
            ("refs/tags/v1", "c"),
        ]);
        let advertised = map(&[
            ("refs/heads/main", "a2"),
            ("refs/heads/new", "d"),
            ("refs/tags/v1", "c"),
        ]);
        let moves = moved(&cursors, &advertised);
        let want = [
            ("refs/heads/gone", Some("b"), None),
            ("refs/heads/main", Some("a"), Some("a2")),
            ("refs/heads/new", None, Some("d")),
        ];
        assert_eq!(moves.len(), want.len());
        for (m, (r, b, a)) in moves.iter().zip(want) {
            assert_eq!(m.git_ref, r);
            assert_eq!(m.before.as_deref(), b);
            assert_eq!(m.after.as_deref(), a);
        }
    }

    /// A poller over one repository nobody serves, for the schedule.
    fn scheduled(dir: &Path) -> Poller {
        let id = RepoId::parse("https://git.example/acme/api.git", None).expect("valid");
        let spec = PollRepo {
            url: "https://git.example/acme/api.git".into(),
            repository: id,
            interval: Duration::from_secs(10),
            max_interval: Duration::from_secs(60),
            auth: None,
        };
        let store = crate::store::Store::open(dir, crate::store::Role::Serve, Arc::default());
        let intake = Intake::new(
            Arc::new(crate::pipeline::Pipelines::default()),
            store,
            Arc::default(),
        );
        Poller::new(&[spec], &Polling::default(), dir, intake)
    }

    fn report(poller: &Poller, new_change: bool) -> PollReport {
        let found = new_change
            .then(|| {
                let json = r#"{"schema":"switchyard.change/v1","repository":"git.example/acme/api","kind":"push","ref":"refs/heads/main","before":"1111111111111111111111111111111111111111","after":"2222222222222222222222222222222222222222"}"#;
                let source = Source {
                    kind: SourceKind::Poll,
                    provider: None,
                    delivery_id: None,
                };
                let event = ChangeEvent::from_json(json.as_bytes(), source).expect("valid");
                let outcome = IntakeOutcome::Accepted {
                    change_id: event.id.clone(),
                    starts: Vec::new(),
                };
                (event, outcome)
            })
            .into_iter()
            .collect();
        PollReport {
            repository: poller.repos[0].spec.repository.clone(),
            refs: 1,
            baseline: false,
            elsewhere: false,
            found,
        }
    }

    /// The wait without its jitter (at most ±10%), in whole seconds.
    fn secs(wait: Duration, base_secs: u64) -> bool {
        let base = base_secs as f64;
        (base * 0.89..=base * 1.11).contains(&wait.as_secs_f64())
    }

    #[tokio::test]
    async fn the_interval_stretches_while_push_sources_deliver_and_snaps_back_on_a_miss() {
        let dir = tempfile::tempdir().expect("temp dir");
        let poller = scheduled(dir.path());
        let repo = Arc::clone(&poller.repos[0]);
        let quiet = poller.next_wait(&repo, Ok(report(&poller, false))).await;
        assert!(secs(quiet, 10), "{quiet:?}: no push source, the interval");
        poller
            .intake
            .activity()
            .record("git.example/acme/api", "c1", SourceKind::Webhook);
        let mut waits = Vec::new();
        for _ in 0..4 {
            waits.push(poller.next_wait(&repo, Ok(report(&poller, false))).await);
        }
        for (wait, want) in waits.iter().zip([20, 40, 60, 60]) {
            assert!(secs(*wait, want), "{waits:?}");
        }
        // Polling found a change first: push sources are not to be trusted, back to 10 s.
        let found = poller.next_wait(&repo, Ok(report(&poller, true))).await;
        assert!(secs(found, 10), "{found:?}");
    }

    #[tokio::test]
    async fn errors_back_off_exponentially_up_to_the_ceiling() {
        let dir = tempfile::tempdir().expect("temp dir");
        let poller = scheduled(dir.path());
        let repo = Arc::clone(&poller.repos[0]);
        let mut waits = Vec::new();
        for _ in 0..4 {
            let error = PollError::Worker {
                repository: "r".into(),
                message: "down".into(),
            };
            waits.push(poller.next_wait(&repo, Err(error)).await);
        }
        for (wait, want) in waits.iter().zip([20, 40, 60, 60]) {
            assert!(secs(*wait, want), "{waits:?}");
        }
        let back = poller.next_wait(&repo, Ok(report(&poller, false))).await;
        assert!(secs(back, 10), "recovered: the interval again, {back:?}");
    }

    #[test]
    fn mirror_names_are_readable_and_distinct() {
        let a = RepoId::parse("https://github.com/acme/api.git", None).expect("valid");
        let b = RepoId::parse("https://gitlab.com/acme/api.git", None).expect("valid");
        assert!(mirror_name(&a).starts_with("api-"));
        assert_ne!(mirror_name(&a), mirror_name(&b));
    }
}
