//! What the sources ask of the store: store a change (or a poll's changes with their cursor
//! moves) and answer only once it is durable; plan a deferred change's starts; where polling
//! last saw each ref, and what of a move nobody reported yet.

use std::collections::BTreeMap;

use super::write::Write;
use super::{Store, StoreError};
use crate::event::ChangeEvent;
use crate::outcome::{Decision, IntakeOutcome};

/// What a source hands over.
#[derive(Clone, Debug)]
pub struct IntakeRequest {
    pub event: ChangeEvent,
    /// (receiver or source name, delivery id): remembered for the replay window.
    pub delivery: Option<(String, String)>,
    /// The pipelines the filters chose, and whether each supersedes older pending starts.
    pub starts: Vec<PlannedStart>,
    /// The changed paths are still being completed: store the change now, without starts;
    /// [`Store::plan`] adds them later.
    pub defer: bool,
    /// The decision of every pipeline that watches the repository (empty when deferred).
    pub decisions: Vec<Decision>,
    /// The W3C `traceparent` the change arrived with, or was given at intake.
    pub traceparent: Option<String>,
}

/// What one poll of a repository found, stored in one transaction.
#[derive(Clone, Debug)]
pub struct PollBatch {
    pub repository: String,
    /// The changes found, in ref order.
    pub intakes: Vec<IntakeRequest>,
    /// Cursor moves: ref and its new value, `None` for a ref that is gone.
    pub cursors: Vec<(String, Option<String>)>,
}

/// A pipeline the change must start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedStart {
    pub pipeline: String,
    pub supersede: bool,
}

/// One ref's move, as polling saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefMove {
    pub repository: String,
    pub git_ref: String,
    pub from: String,
    pub to: String,
}

/// A change as the backends store it, encoded by the caller so that the writer's one thread
/// (every intake's bottleneck) does not: the event's JSON, and the decision log's (`None`
/// while deferred).
#[derive(Debug)]
pub(crate) struct Encoded {
    pub event: String,
    pub decisions: Option<String>,
}

impl Encoded {
    fn of(request: &IntakeRequest) -> Result<Encoded, StoreError> {
        Ok(Encoded {
            event: serde_json::to_string(&request.event)
                .map_err(|e| StoreError::Write(e.to_string()))?,
            decisions: (!request.defer).then(|| super::rules::encode_decisions(&request.decisions)),
        })
    }
}

fn started(o: &IntakeOutcome) -> bool {
    matches!(o, IntakeOutcome::Accepted { starts, .. } if !starts.is_empty())
}

/// Store a change and its starts.
#[derive(Debug)]
pub(crate) struct Intake {
    pub request: IntakeRequest,
    pub encoded: Encoded,
}

impl Write for Intake {
    type Answer = IntakeOutcome;

    fn woke(answer: &IntakeOutcome) -> bool {
        started(answer)
    }
}

/// Store a poll's changes and move its cursors.
#[derive(Debug)]
pub(crate) struct Poll {
    pub batch: PollBatch,
    pub encoded: Vec<Encoded>,
}

impl Write for Poll {
    type Answer = Vec<IntakeOutcome>;

    fn woke(answer: &Vec<IntakeOutcome>) -> bool {
        answer.iter().any(started)
    }
}

/// A deferred change's completed event (and its JSON), its starts and decisions (as stored).
#[derive(Debug)]
pub(crate) struct Plan {
    pub event: ChangeEvent,
    pub json: String,
    pub starts: Vec<PlannedStart>,
    pub decisions: String,
}

impl Write for Plan {
    /// The new starts' ids; `None` when the change was not waiting.
    type Answer = Option<Vec<String>>;

    fn woke(answer: &Option<Vec<String>>) -> bool {
        answer.as_ref().is_some_and(|ids| !ids.is_empty())
    }
}

/// Whether this replica may poll a repository now (PostgreSQL's lease).
#[derive(Debug)]
pub(crate) struct PollLease {
    pub repository: String,
}

impl Write for PollLease {
    type Answer = bool;

    /// A lost lease is taken again at the next poll.
    fn durable(&self) -> bool {
        false
    }
}

impl Store {
    /// Stores a change and its starts; answers once they are on disk.
    pub async fn intake(&self, request: IntakeRequest) -> Result<IntakeOutcome, StoreError> {
        let encoded = Encoded::of(&request)?;
        self.write(Intake { request, encoded }).await
    }

    /// Stores what a poll found and moves its cursors, in one transaction; answers once on
    /// disk, with one outcome per change.
    pub async fn poll(&self, batch: PollBatch) -> Result<Vec<IntakeOutcome>, StoreError> {
        let encoded = batch
            .intakes
            .iter()
            .map(Encoded::of)
            .collect::<Result<Vec<_>, _>>()?;
        self.write(Poll { batch, encoded }).await
    }

    /// Stores the completed event of a deferred change and creates its starts. `None` when the
    /// change was not waiting (planned already, or unknown).
    pub async fn plan(
        &self,
        event: ChangeEvent,
        starts: Vec<PlannedStart>,
        decisions: Vec<Decision>,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let json = serde_json::to_string(&event).map_err(|e| StoreError::Write(e.to_string()))?;
        self.write(Plan {
            event,
            json,
            starts,
            decisions: super::rules::encode_decisions(&decisions),
        })
        .await
    }

    /// Whether this process may poll `repository` now. On SQLite always (one process); on
    /// PostgreSQL the repository is leased to one live replica at a time, chosen so that the
    /// repositories spread over the replicas, and taken over when its holder stops renewing.
    pub async fn poll_lease(&self, repository: &str) -> Result<bool, StoreError> {
        self.lease(PollLease {
            repository: repository.to_owned(),
        })
        .await
    }

    /// Where polling last saw each ref of a repository.
    pub async fn cursors(&self, repository: &str) -> Result<BTreeMap<String, String>, StoreError> {
        self.reads.cursors(repository.to_owned()).await
    }

    /// Which part of a move polling found (`from` → `to`, `to` the zero id for a deletion)
    /// other reports do not cover yet. The newest stored pushes of the ref are followed back
    /// from `to` while each starts where the next ended: `None` when they reach `from` (every
    /// push in between was reported), else the ref state where they stop, `to` itself when no
    /// stored push ends there. Polling then reports only `from` → that state.
    pub async fn unreported(&self, m: RefMove) -> Result<Option<String>, StoreError> {
        self.reads.unreported(m).await
    }

    /// The events (JSON) of the changes still waiting for their paths, oldest first.
    pub async fn deferred(&self) -> Result<Vec<String>, StoreError> {
        self.reads.deferred().await
    }
}
