//! The writer thread: takes every command waiting at a moment, applies the writes in one
//! transaction, commits once, then answers them all (group commit). Reads are answered after
//! the commit, so they see it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, params};
use tokio::sync::Notify;

use super::tips::Tips;
use super::{open_connection, sql};
use crate::store::{Command, Done, Role, StoreError, now_ms};

/// Commands committed in one transaction at most.
const MAX_BATCH: usize = 2048;
/// How often the checkpointer copies the write-ahead log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// Pages the log may grow to before the writer checkpoints by itself (a backstop for a
/// checkpointer that cannot keep up).
const WRITER_CHECKPOINT_PAGES: i64 = 20_000;

/// The writer's state between batches.
struct Writer {
    path: PathBuf,
    role: Role,
    new_work: Arc<Notify>,
    /// `None` until the file opens, and again after a failed batch (it is reopened then).
    conn: Option<Connection>,
    /// Whether running starts were given back: once, at the first successful open of `serve`.
    recovered: bool,
    /// Dropped when the writer ends, which stops the checkpointer.
    checkpointer: Option<mpsc::Sender<()>>,
    /// The connection's current `synchronous` setting (`open_connection` sets FULL).
    synchronous_full: bool,
    /// The newest stored push of each ref, for the ref-state check.
    tips: Tips,
}

/// Answers the commands of `rx` until every sender is gone.
pub(super) fn run(path: PathBuf, role: Role, rx: mpsc::Receiver<Command>, new_work: Arc<Notify>) {
    let mut writer = Writer {
        path,
        role,
        new_work,
        conn: None,
        recovered: false,
        checkpointer: None,
        synchronous_full: true,
        tips: Tips::default(),
    };
    let mut batch: Vec<Command> = Vec::with_capacity(64);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        writer.handle(&mut batch);
        batch.clear();
    }
}

impl Writer {
    /// Applies and answers one batch.
    fn handle(&mut self, batch: &mut Vec<Command>) {
        if let Err(e) = self.ensure_open() {
            tracing::error!(error = %e, "store unavailable");
            batch.drain(..).for_each(|cmd| cmd.fail(&e));
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match apply(conn, &mut self.tips, batch, &mut self.synchronous_full) {
            Ok(done) => {
                if done.iter().any(Done::woke) {
                    self.new_work.notify_one();
                }
                reply_all(conn, batch, done);
            }
            Err(e) => {
                tracing::error!(error = %e, batch = batch.len(), "store write failed; nothing in this batch was acknowledged");
                let err = StoreError::Write(e.to_string());
                batch.drain(..).for_each(|cmd| cmd.fail(&err));
                // Reopen on the next batch: the connection may be in a bad state. What the
                // batch wrote was rolled back, its tips with it.
                self.conn = None;
                self.tips.forget();
            }
        }
    }

    /// Opens the connection when it is not open (recovering, at `serve`'s first open).
    fn ensure_open(&mut self) -> Result<(), StoreError> {
        if self.conn.is_none() {
            let conn = open_connection(&self.path).and_then(tune_writer)?;
            if self.role == Role::Serve && !self.recovered {
                let n = recover_running(&conn)?;
                if n > 0 {
                    tracing::info!(
                        starts = n,
                        "starts interrupted by a stop or crash are open again"
                    );
                }
                self.recovered = true;
            }
            self.synchronous_full = true;
            if self.checkpointer.is_none() {
                self.checkpointer = spawn_checkpointer(&self.path);
            }
            self.conn = Some(conn);
        }
        Ok(())
    }
}

/// Settings of the writer's connection: a large page cache (random index lookups stay in
/// memory) and checkpoints left to the checkpointer thread.
fn tune_writer(conn: Connection) -> Result<Connection, StoreError> {
    let fail = |e: rusqlite::Error| StoreError::Write(e.to_string());
    conn.pragma_update(None, "cache_size", -65_536)
        .map_err(fail)?;
    conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
        .map_err(fail)?;
    Ok(conn)
}

/// Starts the thread that checkpoints the log in the background (passive: it never waits for
/// or blocks the writer). It stops when the returned sender is dropped.
fn spawn_checkpointer(path: &Path) -> Option<mpsc::Sender<()>> {
    let (stop, stopped) = mpsc::channel::<()>();
    let path = path.to_path_buf();
    let spawned = std::thread::Builder::new().name("switchyard-checkpoint".into()).spawn(move || {
        let Ok(conn) = open_connection(&path) else { return };
        while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::debug!(error = %e, "background checkpoint failed; the writer checkpoints instead");
            }
        }
    });
    spawned.ok().map(|_| stop)
}

/// Attempts interrupted by a crash or a stop are open again; how many.
fn recover_running(conn: &Connection) -> Result<usize, StoreError> {
    conn.execute(
        "UPDATE starts SET state = CASE WHEN attempts > 0 THEN 'failed' ELSE 'pending' END WHERE state = 'running'",
        [],
    )
    .map_err(|e| StoreError::Write(e.to_string()))
}

/// Applies a batch's writes in one transaction. On error nothing is committed and every
/// command of the batch is still there to be told so.
fn apply(
    conn: &mut Connection,
    tips: &mut Tips,
    batch: &[Command],
    synchronous_full: &mut bool,
) -> rusqlite::Result<Vec<Done>> {
    if batch.iter().all(Command::is_read) {
        return Ok(batch.iter().map(|_| Done::Read).collect());
    }
    let now = now_ms();
    let durable = batch.iter().any(Command::needs_durability);
    if durable != *synchronous_full {
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })?;
        *synchronous_full = durable;
    }
    // Immediate: the batch holds the write lock from its start. A deferred transaction that
    // reads first (the ref-state check) would have to upgrade its read snapshot to a write,
    // which SQLite refuses at once (busy) when the checkpointer moved the log meanwhile.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tips.begin(&tx)?;
    let mut done = Vec::with_capacity(batch.len());
    for cmd in batch {
        done.push(match cmd {
            Command::Intake(req, _) => {
                Done::Intake(sql::intake(&tx, tips, &req.0, &req.1, now)?)
            }
            Command::Poll(req, _) => {
                let (batch, json) = &**req;
                let mut outcomes = Vec::with_capacity(batch.intakes.len());
                for (request, json) in batch.intakes.iter().zip(json) {
                    outcomes.push(sql::intake(&tx, tips, request, json, now)?);
                }
                sql::move_cursors(&tx, &batch.repository, &batch.cursors, now)?;
                Done::Poll(outcomes)
            }
            Command::Plan(req, _) => {
                let waiting = tx
                    .prepare_cached(
                        "UPDATE changes SET event = ?1, pending_paths = 0, decisions = ?3
                         WHERE id = ?2 AND pending_paths = 1",
                    )?
                    .execute(params![req.json, req.event.id, req.decisions])?;
                if waiting == 0 {
                    Done::Plan(None)
                } else {
                    Done::Plan(Some(sql::insert_starts(&tx, &req.event, &req.starts, now)?))
                }
            }
            Command::Finish(id, finish, _) => Done::Finish(sql::finish_start(&tx, id, finish, now)?),
            Command::Claim(wanted, _) => Done::Claim(sql::claim(&tx, wanted, now)?),
            Command::Release(ids, _) => {
                let mut stmt = tx.prepare_cached(
                    "UPDATE starts SET state = CASE WHEN attempts > 0 THEN 'failed' ELSE 'pending' END,
                         updated_ms = ?1 WHERE id = ?2 AND state = 'running'",
                )?;
                for id in ids {
                    stmt.execute(params![now, id])?;
                }
                Done::Released
            }
            Command::Probe(_) => {
                tx.execute(
                    "INSERT INTO deliveries (receiver, delivery_id, seen_ms)
                     VALUES ('', hex(randomblob(4096)), 0)",
                    [],
                )?;
                tx.execute("DELETE FROM deliveries WHERE receiver = ''", [])?;
                Done::Unit
            }
            Command::Prune { deliveries_before_ms, .. } => Done::Prune(tx.execute(
                "DELETE FROM deliveries WHERE seen_ms < ?1",
                params![deliveries_before_ms],
            )?),
            Command::Transition(id, to, _) => Done::Transition(sql::transition(&tx, id, *to)?),
            Command::Replay(req, _) => Done::Replay(sql::replay(&tx, req, now)?),
            Command::PruneChanges { before_ms, .. } => {
                let n = sql::prune_changes(&tx, *before_ms, now)?;
                if n > 0 {
                    // A pruned change may have been a ref's newest push.
                    tips.forget();
                }
                Done::Prune(n)
            }
            Command::Open { .. }
            | Command::Cursors(..)
            | Command::Unreported(..)
            | Command::Deferred(..)
            | Command::Starts(..)
            | Command::PollLease(..)
            | Command::Changes(..)
            | Command::Change(..) => Done::Read,
        });
    }
    tx.commit()?;
    Ok(done)
}

/// Answers every command of a committed batch; reads run now, after the commit.
fn reply_all(conn: &Connection, batch: &mut Vec<Command>, done: Vec<Done>) {
    let read = |e: rusqlite::Error| StoreError::Read(e.to_string());
    for (cmd, d) in batch.drain(..).zip(done) {
        // A caller that stopped waiting dropped its receiver: nobody to tell.
        match cmd.answer(d) {
            Some(Command::Cursors(repository, reply)) => {
                drop(reply.send(sql::cursors(conn, &repository).map_err(read)))
            }
            Some(Command::Unreported(m, reply)) => {
                drop(reply.send(sql::unreported(conn, &m).map_err(read)))
            }
            Some(Command::Deferred(reply)) => drop(reply.send(sql::deferred(conn).map_err(read))),
            // One process per file: every repository is this process's to poll.
            Some(Command::PollLease(_, reply)) => drop(reply.send(Ok(true))),
            Some(Command::Open { window, reply }) => {
                drop(reply.send(sql::open_starts(conn, window).map_err(read)))
            }
            Some(Command::Starts(states, reply)) => {
                drop(reply.send(sql::starts(conn, &states).map_err(read)))
            }
            Some(Command::Changes(query, reply)) => {
                drop(reply.send(sql::changes(conn, &query).map_err(read)))
            }
            Some(Command::Change(id, reply)) => {
                drop(reply.send(sql::find_change(conn, &id).map_err(read).and_then(|r| r)))
            }
            Some(other) => other.fail(&StoreError::Read("internal: not a read".into())),
            None => {}
        }
    }
}
