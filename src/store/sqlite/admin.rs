//! A synchronous view of a SQLite store through a connection of its own, for tests that
//! inspect a state directory beside a running server (the `admin` feature, which only test and
//! bench builds turn on). SQLite's locking keeps it consistent with the writer. switchyard's own
//! commands go through [`crate::store::Store`].

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::{open_connection, sql};
use crate::store::{DB_FILE, StartRow, StartState, StoreError, Transition, now_ms};

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
        sql::transition(&self.conn, id, Transition::Retry, now_ms())
            .map_err(|e| StoreError::Write(e.to_string()))?
    }

    /// Drops an open or dead start: it will not be started. A running start cannot be dropped.
    pub fn drop_start(&self, id: &str) -> Result<StartRow, StoreError> {
        sql::transition(&self.conn, id, Transition::Drop, now_ms())
            .map_err(|e| StoreError::Write(e.to_string()))?
    }

    /// The stored change event (JSON) of a change id.
    pub fn change(&self, change_id: &str) -> Result<Option<String>, StoreError> {
        change(&self.conn, change_id).map_err(read)
    }

    /// Each source's first sighting of a change: (source, first seen ms).
    pub fn sightings(&self, change_id: &str) -> Result<Vec<(String, i64)>, StoreError> {
        sightings(&self.conn, change_id).map_err(read)
    }

    /// Counts of starts per state.
    pub fn counts(&self) -> Result<Vec<(StartState, i64)>, StoreError> {
        counts(&self.conn).map_err(read)
    }
}

/// The stored change event (JSON) of a change id.
fn change(conn: &Connection, change_id: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT event FROM changes WHERE id = ?1",
        params![change_id],
        |r| r.get(0),
    )
    .optional()
}

/// Each source's first sighting of a change: (source, first seen ms).
fn sightings(conn: &Connection, change_id: &str) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT source, received_ms FROM changes WHERE id = ?1
         UNION ALL
         SELECT source, first_seen_ms FROM sightings WHERE change_id = ?1
         ORDER BY 2",
    )?;
    let rows = stmt.query_map(params![change_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Counts of starts per state.
fn counts(conn: &Connection) -> rusqlite::Result<Vec<(StartState, i64)>> {
    let mut stmt = conn.prepare_cached("SELECT state, COUNT(*) FROM starts GROUP BY state")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (state, n) = row?;
        if let Some(state) = StartState::parse(&state) {
            out.push((state, n));
        }
    }
    Ok(out)
}
