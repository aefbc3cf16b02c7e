//! What an operator does (`outbox retry|drop`, `changes replay`, the status page's actions):
//! move one start, checking its state in the same transaction, or replay a change's decisions
//! as new starts.

use super::queue::StartRow;
use super::rules::{StartState, Transition};
use super::write::Write;
use super::{Store, StoreError};

/// A replay: the change, its ref, and the pipelines today's definitions start for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayRequest {
    pub change_id: String,
    pub git_ref: String,
    pub pipelines: Vec<String>,
}

/// What a replay did for one pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    pub pipeline: String,
    /// The new start, or the one that makes this replay a duplicate.
    pub start_id: String,
    /// The replay's number for a new start; `None` for a duplicate.
    pub replay: Option<u32>,
    /// The state of the start (`pending` for a new one).
    pub state: StartState,
}

/// Retry or drop the start an id (or a unique prefix) names.
#[derive(Debug)]
pub(crate) struct Move {
    pub id: String,
    pub to: Transition,
}

impl Write for Move {
    /// The start as it is now, or why it could not be moved.
    type Answer = Result<StartRow, StoreError>;

    fn woke(answer: &Result<StartRow, StoreError>) -> bool {
        answer.is_ok()
    }
}

/// Add a start per pipeline unless the change has a live one.
#[derive(Debug)]
pub(crate) struct Replay {
    pub request: ReplayRequest,
}

impl Write for Replay {
    type Answer = Vec<Replayed>;

    fn woke(answer: &Vec<Replayed>) -> bool {
        answer.iter().any(|r| r.replay.is_some())
    }
}

impl Store {
    /// Retries or drops the start named by `id` (or a unique prefix of at least 4
    /// characters), checking its state in the same transaction, so that a start the server
    /// finished meanwhile is never overwritten. Answers the start as it is now.
    pub async fn transition(&self, id: &str, to: Transition) -> Result<StartRow, StoreError> {
        self.write(Move {
            id: id.to_owned(),
            to,
        })
        .await?
    }

    /// Adds a start of each pipeline for the change, unless it has one of that pipeline that
    /// is waiting, running or succeeded (a duplicate), in one transaction.
    pub async fn replay(&self, request: ReplayRequest) -> Result<Vec<Replayed>, StoreError> {
        self.write(Replay { request }).await
    }
}
