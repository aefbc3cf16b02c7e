//! One poll of one repository, the step `serve`'s schedule, `poll --once` and the tests
//! drive: the advertisement read, the baseline on the first poll, else the moved refs (less
//! what other sources reported already) stored as changes with their cursor moves in one
//! transaction; and the outcome written to the repository's health.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::git::{self, Remote};
use super::moves::{BASELINE, Move, moved};
use super::{PollError, PollReport, Polled, Poller, blocking, health, remote};
use crate::diag::Hint as _;
use crate::event::{ZERO_SHA, is_zero};
use crate::repo::RepoId;
use crate::store::{RefMove, StoreError};

impl Poller {
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
        self.metrics.poll_seconds(began.elapsed().as_secs_f64());
        let now = crate::store::now_ms();
        match &result {
            Ok(report) => self.health.record(
                index,
                now,
                health::Polled::Ok {
                    elsewhere: report.elsewhere,
                },
            ),
            Err(e) => self
                .health
                .record(index, now, health::Polled::Failed(&e.hinted())),
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
            .store
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
            none => none.insert(self.store.cursors(id.as_str()).await.map_err(store_error)?),
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
                .store
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
}
