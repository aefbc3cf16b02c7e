//! Intake: the one door every source uses. Decides the pipelines a change starts, hands the
//! change and its starts to the store, and answers only once they are on disk.
//!
//! A change whose changed paths are incomplete, of a repository switchyard mirrors, is stored
//! at once without starts and handed to the completer; its starts are decided once the paths
//! are known (or the time bound for them passed), by [`Intake::plan`].
//!
//! Every change has a W3C `traceparent`: the one its delivery came with (or the current span's,
//! when spans are exported), stored with it; else the one its id names
//! ([`TraceParent::of_change`]: the trace id is the change id), which needs no storing, so that
//! its starts always carry one.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::activity::Activity;
use crate::event::{ChangeEvent, ChangeKind, SourceKind, is_zero};
use crate::metrics::Metrics;
use crate::outcome::{Decision, DuplicateOf, IntakeOutcome};
use crate::pipeline::{Mode, Pipelines};
use crate::repo::RepoId;
use crate::store::{IntakeRequest, PlannedStart, PollBatch, Store, StoreError};
use crate::trace::TraceParent;

/// Shared by every source.
#[derive(Clone, Debug)]
pub struct Intake {
    pipelines: Arc<Pipelines>,
    store: Store,
    metrics: Arc<Metrics>,
    activity: Arc<Activity>,
    completion: Option<Completion>,
}

/// Where changes with incomplete paths go to be completed.
#[derive(Clone, Debug)]
struct Completion {
    repositories: Arc<HashSet<RepoId>>,
    queue: mpsc::UnboundedSender<ChangeEvent>,
}

impl Intake {
    /// An intake over these pipelines and this store.
    pub fn new(pipelines: Arc<Pipelines>, store: Store, metrics: Arc<Metrics>) -> Intake {
        Intake {
            pipelines,
            store,
            metrics,
            activity: Arc::new(Activity::default()),
            completion: None,
        }
    }

    /// Changes of these repositories whose paths are incomplete are deferred and sent to
    /// `queue` once stored; the receiver completes them and calls [`Intake::plan`].
    pub fn complete_with(
        mut self,
        repositories: impl IntoIterator<Item = RepoId>,
        queue: mpsc::UnboundedSender<ChangeEvent>,
    ) -> Intake {
        self.completion = Some(Completion {
            repositories: Arc::new(repositories.into_iter().collect()),
            queue,
        });
        self
    }

    /// Recent sightings per source.
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// The metrics the intake counts into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Whether the changed paths of `event` will be completed before its starts are decided.
    pub fn defers(&self, event: &ChangeEvent) -> bool {
        let Some(completion) = &self.completion else {
            return false;
        };
        !event.changed_paths_complete
            && event.completion.is_none()
            && !is_zero(&event.after)
            && (event.kind == ChangeKind::PullRequest || !event.deleted)
            && completion.repositories.contains(&event.repository)
    }

    /// The starts `event` makes and the decisions that say why (the decision log).
    fn planned(&self, event: &ChangeEvent) -> (Vec<PlannedStart>, Vec<Decision>) {
        let decided = self.pipelines.decisions(event);
        let starts = decided
            .iter()
            .filter(|(_, d)| d.start)
            .map(|(p, _)| PlannedStart {
                pipeline: p.name.clone(),
                supersede: p.mode == Mode::Superseded,
            })
            .collect();
        (starts, decided.into_iter().map(|(_, d)| d).collect())
    }

    fn request(
        &self,
        event: ChangeEvent,
        delivery: Option<(String, String)>,
        traceparent: Option<TraceParent>,
    ) -> IntakeRequest {
        let defer = self.defers(&event);
        let (starts, decisions) = if defer {
            (Vec::new(), Vec::new())
        } else {
            self.planned(&event)
        };
        IntakeRequest {
            event,
            delivery,
            starts,
            defer,
            decisions,
            traceparent: crate::telemetry::for_change(traceparent).map(|t| t.to_string()),
        }
    }

    /// Stores `event` (and its delivery id, for the replay window) with one start per matching
    /// pipeline. Returns once durable; an error means nothing was acknowledged.
    pub async fn submit(
        &self,
        event: ChangeEvent,
        delivery: Option<(String, String)>,
    ) -> Result<IntakeOutcome, StoreError> {
        self.submit_traced(event, delivery, None).await
    }

    /// [`Intake::submit`] with the W3C `traceparent` the notice came with, which goes with the
    /// change to its starts (without one, the change gets a new trace).
    pub async fn submit_traced(
        &self,
        event: ChangeEvent,
        delivery: Option<(String, String)>,
        traceparent: Option<TraceParent>,
    ) -> Result<IntakeOutcome, StoreError> {
        let span = tracing::info_span!("store", change_id = %event.id);
        self.store_one(event, delivery, traceparent)
            .instrument(span)
            .await
    }

    async fn store_one(
        &self,
        event: ChangeEvent,
        delivery: Option<(String, String)>,
        traceparent: Option<TraceParent>,
    ) -> Result<IntakeOutcome, StoreError> {
        let request = self.request(event, delivery, traceparent);
        let deferred = request.defer.then(|| request.event.clone());
        let source = request.event.source.kind.as_str();
        let (repository, kind) = (
            request.event.repository.as_str().to_owned(),
            request.event.source.kind,
        );
        let began = Instant::now();
        let result = self.store.intake(request).await;
        self.count(source, result.as_ref().ok(), began);
        if let Ok(outcome) = &result {
            self.sighted(&repository, kind, outcome);
            if let (IntakeOutcome::Accepted { .. }, Some(event)) = (outcome, deferred) {
                self.send_to_completion(event).await;
            }
        }
        result
    }

    /// Stores what one poll found and moves its cursors in the same transaction.
    pub async fn submit_poll(
        &self,
        repository: &RepoId,
        events: Vec<ChangeEvent>,
        cursors: Vec<(String, Option<String>)>,
    ) -> Result<Vec<IntakeOutcome>, StoreError> {
        let span = tracing::info_span!("store", repository = %repository, changes = events.len());
        self.store_poll(repository, events, cursors)
            .instrument(span)
            .await
    }

    async fn store_poll(
        &self,
        repository: &RepoId,
        events: Vec<ChangeEvent>,
        cursors: Vec<(String, Option<String>)>,
    ) -> Result<Vec<IntakeOutcome>, StoreError> {
        let intakes: Vec<IntakeRequest> = events
            .into_iter()
            .map(|e| self.request(e, None, None))
            .collect();
        let began = Instant::now();
        let result = self
            .store
            .poll(PollBatch {
                repository: repository.as_str().to_owned(),
                intakes,
                cursors,
            })
            .await;
        match &result {
            Ok(outcomes) => {
                for outcome in outcomes {
                    self.count("poll", Some(outcome), began);
                    self.sighted(repository.as_str(), SourceKind::Poll, outcome);
                }
            }
            Err(_) => self.count("poll", None, began),
        }
        result
    }

    /// Decides and stores the starts of a deferred change, now that its paths are known (or
    /// known to be unknown). Returns the start ids, or `None` when it was planned already.
    pub async fn plan(&self, event: ChangeEvent) -> Result<Option<Vec<String>>, StoreError> {
        let (starts, decisions) = self.planned(&event);
        self.store.plan(event, starts, decisions).await
    }

    async fn send_to_completion(&self, event: ChangeEvent) {
        let Some(completion) = &self.completion else {
            return;
        };
        if let Err(mpsc::error::SendError(event)) = completion.queue.send(event) {
            // The completer has stopped (shutting down): decide with the paths unknown. Were
            // this to fail, the change waits in the store for the next start.
            if let Err(e) = self.plan(event).await {
                tracing::warn!(error = %e, "cannot plan a deferred change now; it is planned at the next start");
            }
        }
    }

    fn sighted(&self, repository: &str, source: SourceKind, outcome: &IntakeOutcome) {
        let change_id = match outcome {
            IntakeOutcome::Accepted { change_id, .. } => change_id,
            IntakeOutcome::Duplicate {
                change_id,
                why: DuplicateOf::Change,
            } => change_id,
            IntakeOutcome::Duplicate {
                why: DuplicateOf::Delivery,
                ..
            } => return,
        };
        if let Some(lag) = self.activity.record(repository, change_id, source) {
            self.metrics
                .detection_lag(source.as_str(), lag.as_secs_f64());
        }
    }

    /// Counts one intake; `None` when the store failed.
    fn count(&self, source: &'static str, outcome: Option<&IntakeOutcome>, began: Instant) {
        let stored = outcome.is_some();
        let outcome = match outcome {
            Some(IntakeOutcome::Accepted { .. }) => "accepted",
            Some(IntakeOutcome::Duplicate { .. }) => "duplicate",
            None => "error",
        };
        self.metrics.intake(source, outcome);
        if stored {
            self.metrics
                .intake_seconds(source, began.elapsed().as_secs_f64());
        } else {
            self.metrics.store_error();
        }
    }
}
