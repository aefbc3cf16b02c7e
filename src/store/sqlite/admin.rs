//! A synchronous view of a SQLite store through a connection of its own, for tests and tools
//! that inspect a state directory beside a running server. SQLite's locking keeps it
//! consistent with the writer. switchyard's own commands go through [`crate::store::Store`].

use std::path::Path;

use rusqlite::Connection;

use super::{open_connection, sql};
use crate::store::DB_FILE;
use crate::store::{StartRow, StartState, StoreError, Transition};

/// Read and admin access to the store in a state directory.
#[derive(Debug)]
pub struct Admin {
    conn: Connection,
}

fn read(e: rusqlite::Error) -> StoreError {
    StoreError::Read(e.to_string())
}

impl Admin {
    /// Opens the store in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Admin, StoreError> {
        Ok(Admin {
            conn: open_connection(&state_dir.join(DB_FILE))?,
        })
    }

    /// Starts in the given states (all when empty), oldest first.
    pub fn starts(&self, states: &[StartState]) -> Result<Vec<StartRow>, StoreError> {
        sql::starts(&self.conn, states).map_err(read)
    }

    /// One start by id, or by a unique prefix of at least 4 characters.
    pub fn start(&self, id: &str) -> Result<StartRow, StoreError> {
        sql::start(&self.conn, id).map_err(read)?
    }

    /// Reopens a dead, failed, dropped or superseded start with a fresh set of attempts.
    pub fn retry(&self, id: &str) -> Result<StartRow, StoreError> {
        sql::transition(&self.conn, id, Transition::Retry)
            .map_err(|e| StoreError::Write(e.to_string()))?
    }

    /// Drops an open or dead start: it will not be started. A running start cannot be dropped.
    pub fn drop_start(&self, id: &str) -> Result<StartRow, StoreError> {
        sql::transition(&self.conn, id, Transition::Drop)
            .map_err(|e| StoreError::Write(e.to_string()))?
    }

    /// The stored change event (JSON) of a change id.
    pub fn change(&self, change_id: &str) -> Result<Option<String>, StoreError> {
        sql::change(&self.conn, change_id).map_err(read)
    }

    /// Each source's first sighting of a change: (source, first seen ms).
    pub fn sightings(&self, change_id: &str) -> Result<Vec<(String, i64)>, StoreError> {
        sql::sightings(&self.conn, change_id).map_err(read)
    }

    /// Counts of starts per state.
    pub fn counts(&self) -> Result<Vec<(StartState, i64)>, StoreError> {
        sql::counts(&self.conn).map_err(read)
    }
}
