//! The schema and its migrations, applied in order at open; `PRAGMA user_version` counts them.

use rusqlite::{Connection, TransactionBehavior};

/// Migration N brings the schema from version N to N + 1.
pub const MIGRATIONS: &[&str] = &[
    // 1: changes, sightings, starts, deliveries, cursors.
    "CREATE TABLE changes (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        repository TEXT NOT NULL,
        event TEXT NOT NULL,
        received_ms INTEGER NOT NULL,
        source TEXT NOT NULL,
        provider TEXT,
        delivery_id TEXT
     );
     CREATE TABLE sightings (
        seq INTEGER PRIMARY KEY,
        change_id TEXT NOT NULL,
        source TEXT NOT NULL,
        provider TEXT,
        delivery_id TEXT,
        first_seen_ms INTEGER NOT NULL,
        UNIQUE (change_id, source)
     );
     CREATE TABLE starts (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        change_id TEXT NOT NULL REFERENCES changes (id),
        pipeline TEXT NOT NULL,
        git_ref TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'failed', 'succeeded', 'dead', 'superseded', 'dropped')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        last_error TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        UNIQUE (change_id, pipeline)
     );
     CREATE INDEX starts_open ON starts (pipeline, seq) WHERE state IN ('pending', 'running', 'failed');
     CREATE INDEX starts_ref ON starts (pipeline, git_ref) WHERE state IN ('pending', 'failed');
     CREATE TABLE deliveries (
        seq INTEGER PRIMARY KEY,
        receiver TEXT NOT NULL,
        delivery_id TEXT NOT NULL,
        seen_ms INTEGER NOT NULL,
        UNIQUE (receiver, delivery_id)
     );
     CREATE INDEX deliveries_age ON deliveries (seen_ms);
     CREATE TABLE cursors (
        repository TEXT NOT NULL,
        git_ref TEXT NOT NULL,
        sha TEXT NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (repository, git_ref)
     ) WITHOUT ROWID;",
    // 2: changes whose changed paths are being completed have no starts yet.
    "ALTER TABLE changes ADD COLUMN pending_paths INTEGER NOT NULL DEFAULT 0;
     CREATE INDEX changes_pending ON changes (seq) WHERE pending_paths = 1;",
    // 3: the pushes of one ref, newest first: a report of a ref state already reported (by
    // another source, or coalesced by polling, with another `before`) is the same change.
    // Changes stored before this migration have no ref columns and take no part. The index
    // covers the lookup, so that the event (after which the columns are stored) is not read.
    "ALTER TABLE changes ADD COLUMN push_ref TEXT;
     ALTER TABLE changes ADD COLUMN push_before TEXT;
     ALTER TABLE changes ADD COLUMN push_after TEXT;
     CREATE INDEX changes_by_ref ON changes (repository, push_ref, seq, push_after, push_before, id)
     WHERE push_ref IS NOT NULL;",
    // 4: the run a start made (the runner's id or URL), recorded with its success.
    "ALTER TABLE starts ADD COLUMN run TEXT;",
    // 5: the decision log (each watching pipeline's verdict and reason, JSON, in the change's
    // own row: no more rows per intake), the traceparent a change came with, the marks pruning
    // goes by (the newest change at each prune: no index on the age costs every intake), and
    // replays: a (change, pipeline) may have several starts, one per
    // replay, so its uniqueness moves to (change, pipeline, replay). SQLite cannot drop a
    // table's constraint: the table is rebuilt, its rows and ids kept.
    "ALTER TABLE changes ADD COLUMN decisions TEXT;
     ALTER TABLE changes ADD COLUMN traceparent TEXT;
     CREATE TABLE prune_marks (at_ms INTEGER NOT NULL, seq INTEGER NOT NULL);
     CREATE TABLE starts_v5 (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        change_id TEXT NOT NULL REFERENCES changes (id),
        pipeline TEXT NOT NULL,
        git_ref TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'failed', 'succeeded', 'dead', 'superseded', 'dropped')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        last_error TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        run TEXT,
        replay INTEGER NOT NULL DEFAULT 0,
        UNIQUE (change_id, pipeline, replay)
     );
     INSERT INTO starts_v5 (seq, id, change_id, pipeline, git_ref, state, attempts, next_attempt_ms, last_error, created_ms, updated_ms, run)
     SELECT seq, id, change_id, pipeline, git_ref, state, attempts, next_attempt_ms, last_error, created_ms, updated_ms, run FROM starts;
     DROP TABLE starts;
     ALTER TABLE starts_v5 RENAME TO starts;
     CREATE INDEX starts_open ON starts (pipeline, seq) WHERE state IN ('pending', 'running', 'failed');
     CREATE INDEX starts_ref ON starts (pipeline, git_ref) WHERE state IN ('pending', 'failed');",
    // 6: the status page's operator sessions (a digest of each id; a logout removes its row).
    "CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        token_mac TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
     );",
];

/// Brings the database to the newest schema, refusing one written by a newer switchyard.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    // Read the version and migrate under one write lock, so that two processes opening a new
    // state directory at once do not both run migration 1.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| e.to_string())?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(format!(
            "the database has schema version {version}, newer than this switchyard knows ({known}): upgrade switchyard"
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)
            .map_err(|e| format!("migration {}: {e}", i + 1))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(|e| e.to_string())?;
    }
    tx.commit().map_err(|e| e.to_string())
}
