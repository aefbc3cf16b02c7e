//! The completer: the changed paths of another source's change, of a polled repository,
//! completed from its mirror within a time bound ([`Poller::complete`]). It takes the changes
//! the intake deferred (their paths incomplete), completes them, and has the intake plan their
//! starts. Changes still waiting in the store (after a crash, or a plan that failed) are
//! picked up at start and every minute.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};

use super::git::Diff;
use super::{PollError, Polled, Poller, remote};
use crate::event::{ChangeEvent, Completion, CompletionOutcome};
use crate::shutdown::Shutdown;

/// How often the store is searched for deferred changes nobody is completing.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Poller {
    /// Completes deferred changes from `queue` (and from the store) until shutdown.
    pub async fn complete_deferred(
        self: Arc<Self>,
        mut queue: mpsc::UnboundedReceiver<ChangeEvent>,
        mut shutdown: Shutdown,
    ) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            let events = tokio::select! {
                _ = shutdown.wait() => return,
                event = queue.recv() => match event {
                    Some(e) => vec![e],
                    None => return,
                },
                _ = sweep.tick() => self.waiting().await,
            };
            for event in events {
                let fresh = busy.lock().is_ok_and(|mut b| b.insert(event.id.clone()));
                if !fresh {
                    continue;
                }
                let poller = Arc::clone(&self);
                let slots = Arc::clone(&slots);
                let busy = Arc::clone(&busy);
                tokio::spawn(async move {
                    let _slot = slots.acquire().await;
                    let id = event.id.clone();
                    let event = poller.complete(event).await;
                    if let Err(e) = poller.intake.plan(event).await {
                        tracing::warn!(change_id = %id, error = %e, "cannot plan the starts of a completed change; retried within a minute");
                    }
                    if let Ok(mut b) = busy.lock() {
                        b.remove(&id);
                    }
                });
            }
        }
    }

    /// The deferred changes in the store.
    async fn waiting(&self) -> Vec<ChangeEvent> {
        match self.store.deferred().await {
            Ok(rows) => rows
                .iter()
                .filter_map(|json| match serde_json::from_str(json) {
                    Ok(event) => Some(event),
                    Err(e) => {
                        tracing::error!(error = %e, "a stored change cannot be read back");
                        None
                    }
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for deferred changes");
                Vec::new()
            }
        }
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
        self.metrics.completion(outcome_word(outcome));
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
}

fn outcome_word(outcome: CompletionOutcome) -> &'static str {
    match outcome {
        CompletionOutcome::Completed => "completed",
        CompletionOutcome::Failed => "failed",
        CompletionOutcome::TimedOut => "timed_out",
    }
}
