//! The statements of each write and read, inside the writer's transaction or on a reader's
//! connection. The rules they serve are `store::rules`'.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

use super::tips::{self, Tips};
use crate::event::{ChangeEvent, ChangeKind};
use crate::outcome::{DuplicateOf, IntakeOutcome, start_id};
use crate::store::intake::Encoded;
use crate::store::rules::{self, decode_decisions};
use crate::store::{
    ChangeQuery, ChangeRecord, ClaimRequest, Claimed, Finish, IntakeRequest, PlannedStart, RefMove,
    ReplayRequest, Replayed, SessionRow, Sighting, StartRow, StartState, StoreError, Transition,
};

pub(super) fn intake(
    tx: &rusqlite::Transaction<'_>,
    tips: &mut Tips,
    req: &IntakeRequest,
    encoded: &Encoded,
    now: i64,
) -> rusqlite::Result<IntakeOutcome> {
    let json = &encoded.event;
    let event = &req.event;
    let change_id = event.id.clone();
    if let Some((receiver, delivery)) = &req.delivery {
        let fresh = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO deliveries (receiver, delivery_id, seen_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![receiver, delivery, now])?;
        if fresh == 0 {
            return Ok(IntakeOutcome::Duplicate {
                change_id,
                why: DuplicateOf::Delivery,
            });
        }
    }
    let received_ms = event.received_at.as_millisecond();
    let source = event.source.kind.as_str();
    // The ref's newest stored push already ends where this one does: the same ref state,
    // reported again (by another source, or coalesced by polling, with another `before`).
    let push = (event.kind == ChangeKind::Push).then_some(());
    if push.is_some()
        && let Some((existing, after)) =
            tips.newest(tx, event.repository.as_str(), &event.git_ref)?
        && after == event.after
        && existing != change_id
    {
        record_sighting(tx, &existing, source, event, received_ms)?;
        return Ok(IntakeOutcome::Duplicate {
            change_id: existing,
            why: DuplicateOf::Change,
        });
    }
    // The first source's sighting lives in the change's own row (one insert for a new change);
    // other sources' first sightings go to `sightings`.
    let new = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO changes (id, repository, event, received_ms, source, provider, delivery_id, pending_paths, push_ref, push_before, push_after, decisions, traceparent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
            change_id,
            event.repository.as_str(),
            json,
            received_ms,
            source,
            event.source.provider,
            event.source.delivery_id,
            req.defer,
            push.map(|_| &event.git_ref),
            push.map(|_| &event.before),
            push.map(|_| &event.after),
            encoded.decisions,
            req.traceparent,
        ])?;
    if new == 0 {
        record_sighting(tx, &change_id, source, event, received_ms)?;
        return Ok(IntakeOutcome::Duplicate {
            change_id,
            why: DuplicateOf::Change,
        });
    }
    if push.is_some() {
        tips.pushed(
            event.repository.as_str(),
            &event.git_ref,
            &change_id,
            &event.after,
        );
    }
    let starts = if req.defer {
        Vec::new()
    } else {
        insert_starts(tx, event, &req.starts, now)?
    };
    Ok(IntakeOutcome::Accepted { change_id, starts })
}

/// Records that `source` saw change `change_id` too (its first sighting by that source).
pub(super) fn record_sighting(
    tx: &rusqlite::Transaction<'_>,
    change_id: &str,
    source: &str,
    event: &ChangeEvent,
    received_ms: i64,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO sightings (change_id, source, provider, delivery_id, first_seen_ms)
         SELECT ?1, ?2, ?3, ?4, ?5
         WHERE NOT EXISTS (SELECT 1 FROM changes WHERE id = ?1 AND source = ?2)",
    )?
    .execute(params![
        change_id,
        source,
        event.source.provider,
        event.source.delivery_id,
        received_ms
    ])
}

/// Creates the starts of a change, superseding older waiting ones where asked; returns their
/// ids.
pub(super) fn insert_starts(
    tx: &rusqlite::Transaction<'_>,
    event: &ChangeEvent,
    starts: &[PlannedStart],
    now: i64,
) -> rusqlite::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(starts.len());
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO starts (id, change_id, pipeline, git_ref, state, attempts, next_attempt_ms, created_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5, ?5)",
    )?;
    let mut supersede = tx.prepare_cached(
        "UPDATE starts SET state = 'superseded', updated_ms = ?1
         WHERE pipeline = ?2 AND git_ref = ?3 AND state IN ('pending', 'failed') AND id <> ?4",
    )?;
    for planned in starts {
        let id = start_id(&event.id, &planned.pipeline);
        insert.execute(params![id, event.id, planned.pipeline, event.git_ref, now])?;
        if planned.supersede {
            supersede.execute(params![now, planned.pipeline, event.git_ref, id])?;
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Moves (or removes) a repository's cursors.
pub(super) fn move_cursors(
    tx: &rusqlite::Transaction<'_>,
    repository: &str,
    moves: &[(String, Option<String>)],
    now: i64,
) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO cursors (repository, git_ref, sha, updated_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (repository, git_ref) DO UPDATE SET sha = excluded.sha, updated_ms = excluded.updated_ms",
    )?;
    let mut remove =
        tx.prepare_cached("DELETE FROM cursors WHERE repository = ?1 AND git_ref = ?2")?;
    for (git_ref, sha) in moves {
        match sha {
            Some(sha) => upsert.execute(params![repository, git_ref, sha, now])?,
            None => remove.execute(params![repository, git_ref])?,
        };
    }
    Ok(())
}

pub(super) fn cursors(
    conn: &Connection,
    repository: &str,
) -> rusqlite::Result<BTreeMap<String, String>> {
    let mut stmt = conn.prepare_cached("SELECT git_ref, sha FROM cursors WHERE repository = ?1")?;
    let rows = stmt.query_map(params![repository], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

pub(super) fn unreported(conn: &Connection, m: &RefMove) -> rusqlite::Result<Option<String>> {
    let pushes: Vec<(String, String)> =
        tips::latest_pushes(conn, &m.repository, &m.git_ref, rules::CHAIN)?
            .into_iter()
            .map(|(_, before, after)| (before, after))
            .collect();
    Ok(rules::unreported(&m.from, &m.to, &pushes))
}

pub(super) fn deferred(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT event FROM changes WHERE pending_paths = 1 ORDER BY seq")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

pub(super) fn finish_start(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    finish: &Finish,
    now: i64,
) -> rusqlite::Result<bool> {
    let o = finish.outcome(now);
    let n = tx
        .prepare_cached(
            "UPDATE starts SET state = ?1, attempts = attempts + 1, next_attempt_ms = ?2,
                 last_error = COALESCE(?3, last_error), updated_ms = ?4, run = COALESCE(?6, run)
             WHERE id = ?5 AND state IN ('pending', 'running', 'failed')",
        )?
        .execute(params![
            o.state.as_str(),
            o.next_attempt_ms,
            o.error,
            now,
            id,
            o.run
        ])?;
    Ok(n > 0)
}

/// Gives running starts back: open again (`failed` after an attempt, else `pending`).
pub(super) fn release(
    tx: &rusqlite::Transaction<'_>,
    ids: &[String],
    now: i64,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "UPDATE starts SET state = CASE WHEN attempts > 0 THEN 'failed' ELSE 'pending' END,
             updated_ms = ?1 WHERE id = ?2 AND state = 'running'",
    )?;
    for id in ids {
        stmt.execute(params![now, id])?;
    }
    Ok(())
}

/// Writes and removes a row the size of a large change event.
pub(super) fn probe(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO deliveries (receiver, delivery_id, seen_ms)
         VALUES ('', hex(randomblob(4096)), 0)",
        [],
    )?;
    tx.execute("DELETE FROM deliveries WHERE receiver = ''", [])?;
    Ok(())
}

pub(super) const START_COLUMNS: &str = "s.seq, s.id, s.change_id, s.pipeline, s.git_ref, s.state, s.attempts, s.next_attempt_ms, s.last_error, s.created_ms, s.updated_ms, s.run, s.replay";

pub(super) fn row_to_start(row: &rusqlite::Row<'_>) -> rusqlite::Result<StartRow> {
    let state: String = row.get(5)?;
    Ok(StartRow {
        seq: row.get(0)?,
        id: row.get(1)?,
        change_id: row.get(2)?,
        pipeline: row.get(3)?,
        git_ref: row.get(4)?,
        state: StartState::read(&state),
        attempts: row.get(6)?,
        next_attempt_ms: row.get(7)?,
        last_error: row.get(8)?,
        created_ms: row.get(9)?,
        updated_ms: row.get(10)?,
        run: row.get(11)?,
        replay: row.get(12)?,
    })
}

pub(super) fn open_starts(conn: &Connection, window: u32) -> rusqlite::Result<Vec<StartRow>> {
    // Both statements walk the partial index of unfinished starts (pipeline, seq), so a pass
    // costs the pipelines and the window, not the length of the backlog.
    let mut pipelines = conn.prepare_cached(
        "WITH RECURSIVE p(name) AS (
            SELECT MIN(pipeline) FROM starts WHERE state IN ('pending', 'running', 'failed')
            UNION ALL
            SELECT (SELECT MIN(pipeline) FROM starts
                    WHERE state IN ('pending', 'running', 'failed') AND pipeline > p.name)
            FROM p WHERE p.name IS NOT NULL
         ) SELECT name FROM p WHERE name IS NOT NULL",
    )?;
    let names: Vec<String> = pipelines
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut first = conn.prepare_cached(&format!(
        "SELECT {START_COLUMNS} FROM starts s
         WHERE s.pipeline = ?1 AND s.state IN ('pending', 'running', 'failed')
         ORDER BY s.seq LIMIT ?2"
    ))?;
    let mut out = Vec::new();
    for name in names {
        for row in first.query_map(params![name, window], row_to_start)? {
            out.push(row?);
        }
    }
    out.sort_by_key(|row| row.seq);
    Ok(out)
}

/// Marks open starts as running; the ones that were open, each with its change event. The
/// limits are the dispatcher's to keep here: one process per file, and it counts what it runs.
pub(super) fn claim(
    tx: &rusqlite::Transaction<'_>,
    wanted: &[ClaimRequest],
    now: i64,
) -> rusqlite::Result<Vec<Claimed>> {
    let mut claimed = Vec::with_capacity(wanted.len());
    let mut mark = tx.prepare_cached(
        "UPDATE starts SET state = 'running', updated_ms = ?1
         WHERE id = ?2 AND state IN ('pending', 'failed')",
    )?;
    let mut event = tx.prepare_cached(
        "SELECT c.event, c.traceparent FROM starts s JOIN changes c ON c.id = s.change_id WHERE s.id = ?1",
    )?;
    for ClaimRequest { id, .. } in wanted {
        if mark.execute(params![now, id])? > 0 {
            let (event, traceparent) =
                event.query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            claimed.push(Claimed {
                id: id.clone(),
                event,
                traceparent,
            });
        }
    }
    Ok(claimed)
}

/// Starts in the given states (all when empty), oldest first.
pub(super) fn starts(conn: &Connection, states: &[StartState]) -> rusqlite::Result<Vec<StartRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {START_COLUMNS} FROM starts s ORDER BY s.seq"
    ))?;
    let rows = stmt.query_map([], row_to_start)?;
    let mut out = Vec::new();
    for row in rows {
        let row = row?;
        if states.is_empty() || states.contains(&row.state) {
            out.push(row);
        }
    }
    Ok(out)
}

/// One start by id, or by a unique prefix of at least 4 characters.
pub(super) fn start(conn: &Connection, id: &str) -> rusqlite::Result<Result<StartRow, StoreError>> {
    let Some(pattern) = rules::start_pattern(id) else {
        return Ok(Err(StoreError::NoSuchStart(id.to_owned())));
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {START_COLUMNS} FROM starts s WHERE s.id LIKE ?1 LIMIT 2"
    ))?;
    let rows: Vec<StartRow> = stmt
        .query_map(params![pattern], row_to_start)?
        .collect::<Result<_, _>>()?;
    Ok(rules::one_start(id, rows))
}

/// Retries or drops a start, in one statement that checks its state again, so that a start
/// another process finished meanwhile is never overwritten. The outer error is the
/// database's; the inner one the reason this start cannot make the transition.
pub(super) fn transition(
    conn: &Connection,
    id: &str,
    to: Transition,
    now: i64,
) -> rusqlite::Result<Result<StartRow, StoreError>> {
    let row = match start(conn, id)?.and_then(|row| to.check(row)) {
        Ok(row) => row,
        Err(e) => return Ok(Err(e)),
    };
    let from: Vec<&str> = to.from().iter().map(|s| s.as_str()).collect();
    let changed = conn
        .prepare_cached(
            "UPDATE starts SET state = ?1, updated_ms = ?2,
                 attempts = CASE WHEN ?3 THEN 0 ELSE attempts END,
                 next_attempt_ms = CASE WHEN ?3 THEN ?2 ELSE next_attempt_ms END
             WHERE id = ?4 AND state IN (SELECT value FROM json_each(?5))",
        )?
        .execute(params![
            to.to().as_str(),
            now,
            to.resets_attempts(),
            row.id,
            serde_json::to_string(&from).unwrap_or_default(),
        ])?;
    let after = start(conn, &row.id)?;
    // Nothing changed: another process moved the start meanwhile; say where it is now.
    Ok(match after {
        Ok(after) if changed == 0 => Err(to.refused(after)),
        after => after,
    })
}

const CHANGE_COLUMNS: &str = "c.seq, c.id, c.repository, c.event, c.received_ms, c.source, c.provider, c.delivery_id, c.decisions, c.pending_paths, c.traceparent";

/// A change row, before its other sightings and its starts are read.
fn row_to_change(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChangeRecord> {
    let decisions: Option<String> = row.get(8)?;
    Ok(ChangeRecord {
        seq: row.get(0)?,
        id: row.get(1)?,
        repository: row.get(2)?,
        event: row.get(3)?,
        received_ms: row.get(4)?,
        sightings: vec![Sighting {
            source: row.get(5)?,
            provider: row.get(6)?,
            delivery_id: row.get(7)?,
            at_ms: row.get(4)?,
        }],
        decisions: decisions.and_then(|d| decode_decisions(&d)),
        deferred: row.get(9)?,
        traceparent: row.get(10)?,
        starts: Vec::new(),
    })
}

/// Adds a change's later sightings and its starts.
fn complete_change(conn: &Connection, change: &mut ChangeRecord) -> rusqlite::Result<()> {
    let mut sightings = conn.prepare_cached(
        "SELECT source, provider, delivery_id, first_seen_ms FROM sightings
         WHERE change_id = ?1 ORDER BY first_seen_ms, seq",
    )?;
    for row in sightings.query_map(params![change.id], |r| {
        Ok(Sighting {
            source: r.get(0)?,
            provider: r.get(1)?,
            delivery_id: r.get(2)?,
            at_ms: r.get(3)?,
        })
    })? {
        change.sightings.push(row?);
    }
    let mut starts = conn.prepare_cached(&format!(
        "SELECT {START_COLUMNS} FROM starts s WHERE s.change_id = ?1 ORDER BY s.seq"
    ))?;
    for row in starts.query_map(params![change.id], row_to_start)? {
        change.starts.push(row?);
    }
    Ok(())
}

/// Changes, newest first.
pub(super) fn changes(conn: &Connection, q: &ChangeQuery) -> rusqlite::Result<Vec<ChangeRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CHANGE_COLUMNS} FROM changes c
         WHERE (?1 IS NULL OR c.repository = ?1)
           AND (?2 IS NULL OR c.received_ms >= ?2)
           AND (?3 IS NULL
                OR EXISTS (SELECT 1 FROM starts s WHERE s.change_id = c.id AND s.pipeline = ?3)
                OR EXISTS (SELECT 1 FROM json_each(c.decisions)
                           WHERE json_extract(value, '$[0]') = ?3))
           AND (?5 IS NULL OR c.seq < ?5)
         ORDER BY c.seq DESC LIMIT ?4"
    ))?;
    let mut out: Vec<ChangeRecord> = stmt
        .query_map(
            params![q.repository, q.since_ms, q.pipeline, q.limit, q.before_seq],
            row_to_change,
        )?
        .collect::<Result<_, _>>()?;
    for change in &mut out {
        complete_change(conn, change)?;
    }
    Ok(out)
}

/// One change by id or by a unique prefix of at least 4 characters.
pub(super) fn find_change(
    conn: &Connection,
    id: &str,
) -> rusqlite::Result<Result<ChangeRecord, StoreError>> {
    if let Err(e) = rules::change_prefix(id) {
        return Ok(Err(e));
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CHANGE_COLUMNS} FROM changes c WHERE c.id = ?1 OR c.id LIKE ?2
         ORDER BY c.id = ?1 DESC, c.seq DESC LIMIT ?3"
    ))?;
    let rows: Vec<ChangeRecord> = stmt
        .query_map(
            params![id, format!("{id}%"), rules::CANDIDATES as i64 + 1],
            row_to_change,
        )?
        .collect::<Result<_, _>>()?;
    Ok(match rules::one_change(id, rows, |c| c.id.as_str()) {
        Ok(mut change) => {
            complete_change(conn, &mut change)?;
            Ok(change)
        }
        Err(e) => Err(e),
    })
}

/// Adds a start per pipeline unless the change has one of it that is waiting, running or
/// succeeded.
pub(super) fn replay(
    tx: &rusqlite::Transaction<'_>,
    req: &ReplayRequest,
    now: i64,
) -> rusqlite::Result<Vec<Replayed>> {
    let mut existing = tx.prepare_cached(
        "SELECT id, state, replay FROM starts WHERE change_id = ?1 AND pipeline = ?2
         ORDER BY replay DESC",
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO starts (id, change_id, pipeline, git_ref, state, attempts, next_attempt_ms, created_ms, updated_ms, replay)
         VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5, ?5, ?6)",
    )?;
    let mut out = Vec::with_capacity(req.pipelines.len());
    for pipeline in &req.pipelines {
        let rows: Vec<(String, String, u32)> = existing
            .query_map(params![req.change_id, pipeline], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        let replayed = rules::replayed(&req.change_id, pipeline, &rows);
        if let Some(n) = replayed.replay {
            insert.execute(params![
                replayed.start_id,
                req.change_id,
                pipeline,
                req.git_ref,
                now,
                n
            ])?;
        }
        out.push(replayed);
    }
    Ok(out)
}

/// Forgets changes received before `before_ms` whose starts are all finished (and that are
/// not waiting for their paths), with their sightings and starts; how many changes.
///
/// No index on the age (it would cost every intake): each prune marks the newest change
/// (`prune_marks`: the time and its seq), and a prune considers only the changes up to the
/// newest mark made before `before_ms` (they arrived before it), walking the primary key.
/// Changes newer than the marks wait for a later prune: never pruned early.
pub(super) fn prune_changes(
    tx: &rusqlite::Transaction<'_>,
    before_ms: i64,
    now: i64,
) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO prune_marks (at_ms, seq) SELECT ?1, COALESCE(MAX(seq), 0) FROM changes",
        params![now],
    )?;
    let upto: Option<i64> = tx.query_row(
        "SELECT MAX(seq) FROM prune_marks WHERE at_ms <= ?1",
        params![before_ms],
        |r| r.get(0),
    )?;
    let Some(upto) = upto else { return Ok(0) };
    tx.execute(
        "DELETE FROM prune_marks WHERE at_ms <= ?1 AND seq < ?2",
        params![before_ms, upto],
    )?;
    const DOOMED: &str = "SELECT c.id FROM changes c
         WHERE c.seq <= ?2 AND c.received_ms < ?1 AND c.pending_paths = 0
           AND NOT EXISTS (SELECT 1 FROM starts s WHERE s.change_id = c.id
                           AND s.state IN ('pending', 'running', 'failed'))";
    tx.execute(
        &format!("DELETE FROM starts WHERE change_id IN ({DOOMED})"),
        params![before_ms, upto],
    )?;
    tx.execute(
        &format!("DELETE FROM sightings WHERE change_id IN ({DOOMED})"),
        params![before_ms, upto],
    )?;
    tx.execute(
        &format!("DELETE FROM changes WHERE id IN ({DOOMED})"),
        params![before_ms, upto],
    )
}

/// The stored session whose id has this digest.
pub(super) fn session(conn: &Connection, id_hash: &str) -> rusqlite::Result<Option<SessionRow>> {
    let mut stmt =
        conn.prepare_cached("SELECT token_mac, expires_ms FROM sessions WHERE id_hash = ?1")?;
    let mut rows = stmt.query_map(params![id_hash], |r| {
        Ok(SessionRow {
            id_hash: id_hash.to_owned(),
            token_mac: r.get(0)?,
            expires_ms: r.get(1)?,
        })
    })?;
    rows.next().transpose()
}

/// Stores a session, forgetting those that ended before `now_ms`.
pub(super) fn open_session(
    conn: &Connection,
    row: &SessionRow,
    now_ms: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM sessions WHERE expires_ms < ?1",
        params![now_ms],
    )?;
    conn.execute(
        "INSERT OR REPLACE INTO sessions (id_hash, token_mac, expires_ms) VALUES (?1, ?2, ?3)",
        params![row.id_hash, row.token_mac, row.expires_ms],
    )?;
    Ok(())
}

/// Forgets a session; whether there was one.
pub(super) fn end_session(conn: &Connection, id_hash: &str) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM sessions WHERE id_hash = ?1", params![id_hash])? > 0)
}
