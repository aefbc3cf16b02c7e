//! Reads: what the store answers without its writer. Each backend reads on connections of its
//! own (it implements [`Reads`]: SQLite's read-only WAL readers, each on a thread; a small pool
//! of PostgreSQL connections), so a read never waits behind a write and no write waits behind a read. A store
//! holds two pools: one for the parts that keep switchyard going (the dispatcher's queue, the
//! poller's cursors), one for people's views (the status page, its API, `changes`, `outbox`),
//! so many readers of the page slow only each other.

use std::collections::BTreeMap;

use super::StoreError;
use super::inspect::{ChangeQuery, ChangeRecord};
use super::intake::RefMove;
use super::queue::StartRow;
use super::rules::StartState;
use super::sessions::SessionRow;

/// The reads a backend answers.
pub(crate) trait Reads {
    async fn open_starts(&self, window: u32) -> Result<Vec<StartRow>, StoreError>;
    async fn cursors(&self, repository: String) -> Result<BTreeMap<String, String>, StoreError>;
    async fn unreported(&self, m: RefMove) -> Result<Option<String>, StoreError>;
    async fn deferred(&self) -> Result<Vec<String>, StoreError>;
    async fn starts(&self, states: Vec<StartState>) -> Result<Vec<StartRow>, StoreError>;
    async fn changes(&self, query: ChangeQuery) -> Result<Vec<ChangeRecord>, StoreError>;
    async fn change(&self, id: String) -> Result<ChangeRecord, StoreError>;
    async fn session(&self, id_hash: String) -> Result<Option<SessionRow>, StoreError>;
}
