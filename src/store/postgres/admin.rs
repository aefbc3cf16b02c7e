//! A synchronous view of a PostgreSQL store through a connection of its own, for tests (the
//! `admin` feature) that inspect the database beside running replicas (the counterpart of the SQLite
//! backend's `Admin`). switchyard's own commands go through [`crate::store::Store`].

use tokio::runtime::Runtime;
use tokio_postgres::Client;

use super::{backend, message, sql};
use crate::store::{StartRow, StartState, StoreError, Transition, now_ms};

/// Read and admin access to a PostgreSQL store.
pub struct Admin {
    runtime: Runtime,
    client: Client,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("postgres::Admin")
    }
}

fn read(e: tokio_postgres::Error) -> StoreError {
    StoreError::Read(message(&e))
}

impl Admin {
    /// Connects to the database at `url` (migrating it to the newest schema if needed).
    pub fn open(url: &str) -> Result<Admin, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Read(e.to_string()))?;
        let client = runtime.block_on(backend::connect(url))?.client;
        Ok(Admin { runtime, client })
    }

    /// Starts in the given states (all when empty), oldest first.
    pub fn starts(&self, states: &[StartState]) -> Result<Vec<StartRow>, StoreError> {
        self.runtime
            .block_on(sql::starts(&self.client, states))
            .map_err(read)
    }

    /// One start by id, or by a unique prefix of at least 4 characters.
    pub fn start(&self, id: &str) -> Result<StartRow, StoreError> {
        self.runtime
            .block_on(sql::start(&self.client, id))
            .map_err(read)?
    }

    /// Reopens a dead, failed, dropped or superseded start with a fresh set of attempts.
    pub fn retry(&self, id: &str) -> Result<StartRow, StoreError> {
        self.transition(id, Transition::Retry)
    }

    /// Drops an open or dead start.
    pub fn drop_start(&self, id: &str) -> Result<StartRow, StoreError> {
        self.transition(id, Transition::Drop)
    }

    fn transition(&self, id: &str, to: Transition) -> Result<StartRow, StoreError> {
        self.runtime
            .block_on(sql::transition(&self.client, id, to, now_ms()))
            .map_err(|e| StoreError::Write(message(&e)))?
    }

    /// The stored change event (JSON) of a change id.
    pub fn change(&self, change_id: &str) -> Result<Option<String>, StoreError> {
        let rows = self
            .runtime
            .block_on(
                self.client
                    .query("SELECT event FROM changes WHERE id = $1", &[&change_id]),
            )
            .map_err(read)?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    /// Each source's first sighting of a change: (source, first seen ms).
    pub fn sightings(&self, change_id: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self
            .runtime
            .block_on(self.client.query(
                "SELECT source, received_ms FROM changes WHERE id = $1
                 UNION ALL
                 SELECT source, first_seen_ms FROM sightings WHERE change_id = $1
                 ORDER BY 2",
                &[&change_id],
            ))
            .map_err(read)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Counts of starts per state.
    pub fn counts(&self) -> Result<Vec<(StartState, i64)>, StoreError> {
        let rows = self
            .runtime
            .block_on(
                self.client
                    .query("SELECT state, count(*) FROM starts GROUP BY state", &[]),
            )
            .map_err(read)?;
        Ok(rows
            .iter()
            .filter_map(|r| StartState::parse(r.get(0)).map(|s| (s, r.get(1))))
            .collect())
    }

    /// Runs SQL statements (tests: to empty the database, or to look at it).
    pub fn execute(&self, sql: &str) -> Result<(), StoreError> {
        self.runtime
            .block_on(self.client.batch_execute(sql))
            .map_err(|e| StoreError::Write(message(&e)))
    }

    /// The first column of the first row of `sql`, as a number (tests: counts).
    pub fn count(&self, sql: &str) -> Result<i64, StoreError> {
        let row = self
            .runtime
            .block_on(self.client.query_one(sql, &[]))
            .map_err(read)?;
        Ok(row.get(0))
    }
}
