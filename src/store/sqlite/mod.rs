//! The SQLite backend, the embedded default: one file in the state directory, written by one
//! thread that commits the commands waiting at a moment together (group commit).
//!
//! # On-disk format
//!
//! `STATE_DIR/switchyard.db`, SQLite in WAL mode with `synchronous=FULL`: a commit returns only
//! once the write-ahead log is on disk. `PRAGMA user_version` holds the schema version;
//! [`MIGRATIONS`] brings an older file up to date inside one transaction at open. Tables:
//!
//! - `changes(seq, id, repository, event, received_ms, source, provider, delivery_id,
//!   pending_paths)`: each change event as first accepted (JSON), with the first source's
//!   sighting. `pending_paths = 1` while its changed paths are being completed from a mirror:
//!   such a change has no starts yet; `plan` stores the completed event and its starts.
//! - `sightings(seq, change_id, source, provider, delivery_id, first_seen_ms)`: when each
//!   *other* source first reported a change — with the change's own row, the comparison of
//!   sources.
//! - `starts(seq, id, change_id, pipeline, git_ref, state, attempts, next_attempt_ms,
//!   last_error, created_ms, updated_ms)`: one row per (change, pipeline); `seq` is intake order,
//!   `id` the start id (the idempotency key a runner sees on every attempt).
//! - `deliveries(seq, receiver, delivery_id, seen_ms)`: delivery ids seen, the replay window.
//! - `cursors(repository, git_ref, sha, updated_ms)`: where polling last saw each ref.
//!
//! Rows are appended in arrival order (integer primary keys) and looked up through narrow
//! unique indexes, so a new change writes its event once at the end of `changes` instead of at
//! a random place; checkpoints run on their own thread, off the commit path.
//!
//! Files: `writer.rs` the writer thread (batches, transactions, the checkpointer, opening by
//! role) and how it applies each write; `reader.rs` the read-only readers, each on a thread;
//! `sql.rs` the statements; `tips.rs` the newest push of each ref as the writer remembers it;
//! `admin.rs` a synchronous view for tests (the `admin` feature); `schema.rs` the schema and its
//! migrations.

#[cfg(any(test, feature = "admin"))]
mod admin;
mod doorbell;
mod reader;
mod schema;
mod sql;
#[cfg(test)]
mod tests;
mod tips;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Notify;

use super::{Role, StoreError};

#[cfg(any(test, feature = "admin"))]
pub use admin::Admin;
pub use doorbell::ring;
pub(crate) use reader::Readers;
pub use schema::MIGRATIONS;
pub(crate) use writer::{Apply, Job};

/// Starts the writer thread for the database at `path` (it answers the writes of the returned
/// sender until every sender is gone) and `pools` pools of readers of the given sizes. The
/// writer opens the file as soon as it runs, and readers wait for that first open (at most a
/// few seconds): at `serve`'s open it gives interrupted starts back, which no read may miss.
pub(super) fn open(
    path: PathBuf,
    role: Role,
    new_work: Arc<Notify>,
    pools: [usize; 2],
) -> (mpsc::Sender<Box<dyn Job>>, [Readers; 2]) {
    let opened = Arc::new(reader::Opened::default());
    let (tx, rx) = mpsc::channel();
    let writer = writer::Writer::new(
        path.clone(),
        role,
        Arc::clone(&new_work),
        Arc::clone(&opened),
    );
    super::write::spawn(writer, rx, new_work);
    let readers = pools.map(|n| Readers::spawn(&path, n, Arc::clone(&opened)));
    (tx, readers)
}

/// Opens (creating and migrating if needed) the database at `path`.
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let fail = |e: &dyn std::fmt::Display| StoreError::Open {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    }
    let mut conn = Connection::open(path).map_err(|e| fail(&e))?;
    // Room for every statement the store prepares (rusqlite keeps 16 by default): an evicted
    // statement is prepared again, which costs more than running it.
    conn.set_prepared_statement_cache_capacity(64);
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| fail(&e))?;
    // Switching to WAL needs a moment without other connections; retry while another
    // process opens the same file.
    let mut tries = 0;
    while let Err(e) = conn.pragma_update(None, "journal_mode", "WAL") {
        tries += 1;
        if tries > 50 {
            return Err(fail(&e));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| fail(&e))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| fail(&e))?;
    if let Ok(pages) = std::env::var("SWITCHYARD_STORE_MAX_PAGES")
        && let Ok(pages) = pages.parse::<i64>()
    {
        // Fault injection for tests: a store that fills up like a full disk.
        conn.pragma_update(None, "max_page_count", pages)
            .map_err(|e| fail(&e))?;
    }
    schema::migrate(&mut conn).map_err(|e| fail(&e))?;
    Ok(conn)
}
