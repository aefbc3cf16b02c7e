//! What the dispatcher asks of the store, which is its queue: the unfinished starts, claiming
//! the ones that begin (within each pipeline's limit, counted over every process), recording
//! how an attempt ended, and giving back attempts a stop cut short.

use super::rules::{Finish, StartState};
use super::write::Write;
use super::{Store, StoreError};

/// One row of `starts`.
#[derive(Clone, Debug, PartialEq)]
pub struct StartRow {
    pub seq: i64,
    pub id: String,
    pub change_id: String,
    pub pipeline: String,
    pub git_ref: String,
    pub state: StartState,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    /// The runner's id or URL of the run a successful attempt made, when it told one.
    pub run: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// 0 for the start planned at intake, N for the Nth replay.
    pub replay: u32,
}

/// A start the dispatcher wants to begin, and the most starts of its pipeline that may run at
/// once (counted over every process sharing the store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRequest {
    pub id: String,
    pub pipeline: String,
    pub limit: u32,
}

/// A start [`Store::claim`] marked running, with its change event (JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    pub id: String,
    pub event: String,
    /// The `traceparent` its change arrived with.
    pub traceparent: Option<String>,
}

/// Mark open starts running.
#[derive(Debug)]
pub(crate) struct Claim {
    pub wanted: Vec<ClaimRequest>,
}

impl Write for Claim {
    type Answer = Vec<Claimed>;

    /// `running` needs no durability: a lost claim is reopened.
    fn durable(&self) -> bool {
        false
    }
}

/// Record how an attempt ended.
#[derive(Debug)]
pub(crate) struct Record {
    pub id: String,
    pub finish: Finish,
}

impl Write for Record {
    /// Whether the start was still open (not dropped or superseded meanwhile).
    type Answer = bool;

    fn woke(changed: &bool) -> bool {
        *changed
    }
}

/// Give running starts back.
#[derive(Debug)]
pub(crate) struct Release {
    pub ids: Vec<String>,
}

impl Write for Release {
    type Answer = ();

    fn durable(&self) -> bool {
        false
    }

    fn woke(_: &()) -> bool {
        true
    }
}

impl Store {
    /// The unfinished starts (pending, failed, running), the first `window` of each pipeline in
    /// intake order. Their events come with [`Store::claim`], for the ones that start.
    pub async fn open_starts(&self, window: u32) -> Result<Vec<StartRow>, StoreError> {
        self.reads.open_starts(window).await
    }

    /// Marks open starts as running; returns the ones that were open (and are now running),
    /// each with its change event.
    pub async fn claim(&self, ids: Vec<String>) -> Result<Vec<Claimed>, StoreError> {
        let wanted = ids
            .into_iter()
            .map(|id| ClaimRequest {
                id,
                pipeline: String::new(),
                limit: u32::MAX,
            })
            .collect();
        self.write(Claim { wanted }).await
    }

    /// Like [`Store::claim`], but never lets a pipeline run more than its request's `limit`
    /// starts at once, across every process sharing the store: the earliest requests of a
    /// pipeline are claimed first.
    pub async fn claim_within(
        &self,
        wanted: Vec<ClaimRequest>,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.write(Claim { wanted }).await
    }

    /// Records how an attempt of a start ended; answers false when the start was no longer
    /// open (dropped or superseded meanwhile). The record is on its way to the writer when this
    /// returns, before its answer is awaited, so that the attempt's slot may be given to
    /// another start while it commits. (A claim does not wait for it: on a shared store, which
    /// counts the starts running everywhere, this one counts until its record commits.)
    pub fn finish(
        &self,
        start_id: &str,
        finish: Finish,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + 'static {
        self.send(Record {
            id: start_id.to_owned(),
            finish,
        })
    }

    /// Gives running starts back (their attempts were stopped): they are open again.
    pub async fn release(&self, ids: Vec<String>) -> Result<(), StoreError> {
        self.write(Release { ids }).await
    }
}
