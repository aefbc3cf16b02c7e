//! What people read: changes with their sightings, decisions and starts (the status page, its
//! API, `changes list|show`), and starts by state (`outbox list`). These reads have connections
//! of their own: they never wait behind a write, and no write waits behind them.

use super::queue::StartRow;
use super::rules::StartState;
use super::{Store, StoreError};
use crate::outcome::Decision;

/// Which changes [`Store::changes`] lists, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeQuery {
    /// Only changes of this repository (its id).
    pub repository: Option<String>,
    /// Only changes this pipeline decided on or started.
    pub pipeline: Option<String>,
    /// Only changes received at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    /// Only changes stored before the change with this `seq` (the next page of a list: the
    /// `seq` of the last change of the page before).
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// One source's first sighting of a change.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Sighting {
    pub source: String,
    pub provider: Option<String>,
    pub delivery_id: Option<String>,
    /// When that source's notice was received (Unix ms).
    pub at_ms: i64,
}

/// A stored change and what became of it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeRecord {
    pub seq: i64,
    pub id: String,
    pub repository: String,
    /// The change event, JSON.
    pub event: String,
    pub received_ms: i64,
    /// Each source's first sighting, the first source first.
    pub sightings: Vec<Sighting>,
    /// Each watching pipeline's decision; `None` while deferred, or for a change stored before
    /// the decision log existed.
    pub decisions: Option<Vec<Decision>>,
    /// Its paths are still being completed: no decisions, no starts yet.
    pub deferred: bool,
    pub traceparent: Option<String>,
    /// Its starts, oldest first.
    pub starts: Vec<StartRow>,
}

impl Store {
    /// Stored changes, newest first, with their sightings, decisions and starts.
    pub async fn changes(&self, query: ChangeQuery) -> Result<Vec<ChangeRecord>, StoreError> {
        self.views.changes(query).await
    }

    /// The change named by `id` or by a unique prefix of at least 4 characters.
    pub async fn change(&self, id: &str) -> Result<ChangeRecord, StoreError> {
        self.views.change(id.to_owned()).await
    }

    /// Starts in `states` (all when empty), oldest first.
    pub async fn starts(&self, states: &[StartState]) -> Result<Vec<StartRow>, StoreError> {
        self.views.starts(states.to_vec()).await
    }
}
