//! When each repository is polled: one loop per repository, a wait, a poll, the next wait
//! worked out from the result (the interval, stretched while push sources deliver; backoff
//! after errors; a little jitter), and the `missed` count of push sources that never announced
//! a change polling found first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::{PollError, PollReport, Polled, Poller};
use crate::diag::Hint as _;
use crate::outcome::IntakeOutcome;
use crate::shutdown::Shutdown;

/// The most a poll's wait is jittered by, either way.
const JITTER_MAX: Duration = Duration::from_millis(100);

impl Poller {
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
                    .activity
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
            let activity = Arc::clone(&self.activity);
            let metrics = Arc::clone(&self.metrics);
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{PollRepo, Polling};
    use crate::event::{ChangeEvent, Source, SourceKind};
    use crate::intake::Intake;
    use crate::repo::RepoId;

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
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let intake = Intake::new(
            Arc::new(crate::pipeline::Pipelines::default()),
            store.clone(),
            Arc::clone(&metrics),
        );
        Poller::new(&[spec], &Polling::default(), dir, intake, store, metrics)
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
            .activity
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
}
