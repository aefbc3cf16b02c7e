//! The writer thread: applies the writes of a batch in one transaction and commits once (the
//! loop is `store::write`'s), and how it applies each kind of write ([`Apply`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, Transaction, params};
use tokio::sync::Notify;

use super::reader::Opened;
use super::tips::Tips;
use super::{open_connection, sql};
use crate::outcome::IntakeOutcome;
use crate::store::intake::{Intake, Plan, Poll, PollLease};
use crate::store::operate::{Move, Replay};
use crate::store::queue::{Claim, Record, Release};
use crate::store::sessions::{EndSession, OpenSession};
use crate::store::upkeep::{Probe, PruneChanges, PruneDeliveries};
use crate::store::write::{self, Pending, Write};
use crate::store::{Role, StoreError, now_ms};

/// Writes committed in one transaction at most.
const MAX_BATCH: usize = 2048;
/// How often at most the checkpointer copies the write-ahead log into the database file (it
/// does so only after writes: an idle store wakes nothing).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// Pages the log may grow to before the writer checkpoints by itself (a backstop for a
/// checkpointer that cannot keep up).
const WRITER_CHECKPOINT_PAGES: i64 = 20_000;

/// What a write does inside the writer's transaction.
pub(crate) struct Tx<'t, 'c> {
    pub tx: &'t Transaction<'c>,
    /// The newest stored push of each ref, for the ref-state check.
    pub tips: &'t mut Tips,
    pub now: i64,
}

/// A write the SQLite writer can apply.
pub(crate) trait Apply: Write {
    fn apply(&self, tx: &mut Tx<'_, '_>) -> rusqlite::Result<Self::Answer>;
}

/// A write of a batch, whatever its type.
pub(crate) trait Job: write::Job {
    /// Applies the write, keeping its answer for after the commit.
    fn apply(&mut self, tx: &mut Tx<'_, '_>) -> rusqlite::Result<()>;
}

impl<W: Apply> Job for Pending<W> {
    fn apply(&mut self, tx: &mut Tx<'_, '_>) -> rusqlite::Result<()> {
        self.done = Some(self.write.apply(tx)?);
        Ok(())
    }
}

/// The writer's state between batches.
pub(crate) struct Writer {
    path: PathBuf,
    role: Role,
    new_work: Arc<Notify>,
    /// `None` until the file opens, and again after a failed batch (it is reopened then).
    conn: Option<Connection>,
    /// Whether running starts were given back: once, at the first successful open of `serve`.
    recovered: bool,
    /// Told after each committed batch that the log grew; dropped when the writer ends, which
    /// stops the checkpointer.
    checkpointer: Option<mpsc::SyncSender<()>>,
    /// The connection's current `synchronous` setting (`open_connection` sets FULL).
    synchronous_full: bool,
    /// The newest stored push of each ref, for the ref-state check.
    tips: Tips,
    /// Told once the first open was tried (the readers wait for it).
    opened: Arc<Opened>,
}

impl Writer {
    pub(super) fn new(
        path: PathBuf,
        role: Role,
        new_work: Arc<Notify>,
        opened: Arc<Opened>,
    ) -> Writer {
        Writer {
            path,
            role,
            new_work,
            conn: None,
            recovered: false,
            checkpointer: None,
            synchronous_full: true,
            tips: Tips::default(),
            opened,
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
                    self.new_work.notify_one();
                }
                self.recovered = true;
            }
            self.synchronous_full = true;
            if self.checkpointer.is_none() {
                self.checkpointer = spawn_checkpointer(&self.path);
                // `serve` listens for the commands beside it once its state directory exists.
                if self.role == Role::Serve
                    && let Some(dir) = self.path.parent()
                {
                    super::doorbell::listen(dir, &self.new_work);
                }
            }
            self.conn = Some(conn);
        }
        Ok(())
    }
}

impl write::Backend for Writer {
    type Job = dyn Job;

    const MAX_BATCH: usize = MAX_BATCH;

    /// Opens the file at once (creating, migrating, and for `serve` giving interrupted starts
    /// back); a failure is tried again at the first write.
    fn start(&mut self) {
        if let Err(e) = self.ensure_open() {
            tracing::error!(error = %e, "store unavailable");
        }
        self.opened.tell();
    }

    fn commit(&mut self, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
        self.ensure_open()?;
        let Some(conn) = self.conn.as_mut() else {
            return Err(StoreError::Closed);
        };
        let durable = batch.iter().any(|job| job.durable());
        if durable != self.synchronous_full {
            conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })
                .map_err(|e| StoreError::Write(e.to_string()))?;
            self.synchronous_full = durable;
        }
        apply(conn, &mut self.tips, batch).map_err(|e| StoreError::Write(e.to_string()))?;
        // The log grew: the checkpointer copies it (a full channel means it will anyway).
        if let Some(checkpointer) = &self.checkpointer {
            let _ = checkpointer.try_send(());
        }
        Ok(())
    }

    /// A command beside `serve` rings its doorbell: its dispatcher has new work.
    fn woke(&mut self) {
        if self.role != Role::Serve
            && let Some(dir) = self.path.parent()
        {
            super::doorbell::ring(dir);
        }
    }

    fn failed(&mut self, _batch: &[Box<dyn Job>], _err: &StoreError) {
        // Reopen on the next batch: the connection may be in a bad state. What the batch wrote
        // was rolled back, its tips with it.
        self.conn = None;
        self.tips.forget();
    }
}

/// Applies a batch's writes in one transaction. On error nothing is committed.
fn apply(
    conn: &mut Connection,
    tips: &mut Tips,
    batch: &mut [Box<dyn Job>],
) -> rusqlite::Result<()> {
    // Immediate: the batch holds the write lock from its start. A deferred transaction that
    // reads first (the ref-state check) would have to upgrade its read snapshot to a write,
    // which SQLite refuses at once (busy) when the checkpointer moved the log meanwhile.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tips.begin(&tx)?;
    let mut w = Tx {
        tx: &tx,
        tips,
        now: now_ms(),
    };
    for job in batch.iter_mut() {
        job.apply(&mut w)?;
    }
    tx.commit()
}

/// Settings of the writer's connection: a small page cache and checkpoints left to the
/// checkpointer thread.
///
/// The cache is SQLite's default size (2 MB), not a large one: a B-tree balance renumbers pages
/// through the locking page's number (page 262,145 at 4 KB), and at each commit the cache then
/// drops every page past the end of the file by walking its whole hash table. With 64 MB that
/// walk was the largest single item of the writer's profile; with 2 MB the writer spends a
/// third less CPU per change and the intake takes 6–9% more changes a second (the OS's page
/// cache serves what SQLite's no longer holds). docs/performance.md has the figures.
fn tune_writer(conn: Connection) -> Result<Connection, StoreError> {
    let fail = |e: rusqlite::Error| StoreError::Write(e.to_string());
    conn.pragma_update(None, "cache_size", -2_000)
        .map_err(fail)?;
    conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
        .map_err(fail)?;
    Ok(conn)
}

/// Starts the thread that checkpoints the log in the background (passive: it never waits for
/// or blocks the writer), after writes, at most every [`CHECKPOINT_EVERY`]. It stops when the
/// returned sender is dropped.
fn spawn_checkpointer(path: &Path) -> Option<mpsc::SyncSender<()>> {
    let (wrote, written) = mpsc::sync_channel::<()>(1);
    let path = path.to_path_buf();
    let spawned = std::thread::Builder::new().name("switchyard-checkpoint".into()).spawn(move || {
        let Ok(conn) = open_connection(&path) else { return };
        while written.recv().is_ok() {
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::debug!(error = %e, "background checkpoint failed; the writer checkpoints instead");
            }
            std::thread::sleep(CHECKPOINT_EVERY);
        }
    });
    spawned.ok().map(|_| wrote)
}

/// Attempts interrupted by a crash or a stop are open again; how many.
fn recover_running(conn: &Connection) -> Result<usize, StoreError> {
    conn.execute(
        "UPDATE starts SET state = CASE WHEN attempts > 0 THEN 'failed' ELSE 'pending' END WHERE state = 'running'",
        [],
    )
    .map_err(|e| StoreError::Write(e.to_string()))
}

impl Apply for Intake {
    fn apply(&self, w: &mut Tx<'_, '_>) -> rusqlite::Result<IntakeOutcome> {
        sql::intake(w.tx, w.tips, &self.request, &self.encoded, w.now)
    }
}

impl Apply for Poll {
    fn apply(&self, w: &mut Tx<'_, '_>) -> rusqlite::Result<Vec<IntakeOutcome>> {
        let mut outcomes = Vec::with_capacity(self.batch.intakes.len());
        for (request, encoded) in self.batch.intakes.iter().zip(&self.encoded) {
            outcomes.push(sql::intake(w.tx, w.tips, request, encoded, w.now)?);
        }
        sql::move_cursors(w.tx, &self.batch.repository, &self.batch.cursors, w.now)?;
        Ok(outcomes)
    }
}

impl Apply for Plan {
    fn apply(&self, w: &mut Tx<'_, '_>) -> rusqlite::Result<Option<Vec<String>>> {
        let waiting =
            w.tx.prepare_cached(
                "UPDATE changes SET event = ?1, pending_paths = 0, decisions = ?3
                 WHERE id = ?2 AND pending_paths = 1",
            )?
            .execute(params![self.json, self.event.id, self.decisions])?;
        if waiting == 0 {
            return Ok(None);
        }
        Ok(Some(sql::insert_starts(
            w.tx,
            &self.event,
            &self.starts,
            w.now,
        )?))
    }
}

/// One process per file: every repository is this process's to poll. (The store's handle
/// answers this without the writer; a lease that reaches it is granted all the same.)
impl Apply for PollLease {
    fn apply(&self, _: &mut Tx<'_, '_>) -> rusqlite::Result<bool> {
        Ok(true)
    }
}

impl Apply for Claim {
    fn apply(&self, w: &mut Tx<'_, '_>) -> rusqlite::Result<Vec<crate::store::Claimed>> {
        sql::claim(w.tx, &self.wanted, w.now)
    }
}

impl Apply for Record {
    fn apply(&self, w: &mut Tx<'_, '_>) -> rusqlite::Result<bool> {
        sql::finish_start(w.tx, &self.id, &self.finish, w.now)
    }
}

impl Apply for Release {
    fn apply(&self, w: &mut Tx<'_, '_>) -> rusqlite::Result<()> {
        sql::release(w.tx, &self.ids, w.now)
    }
}

impl Apply for Move {
    fn apply(
        &self,
        w: &mut Tx<'_, '_>,
    ) -> rusqlite::Result<Result<crate::store::StartRow, StoreError>> {
        sql::transition(w.tx, &self.id, self.to, w.now)
    }
}

impl Apply for Replay {
    fn apply(&self, w: &mut Tx<'_, '_>) -> rusqlite::Result<Vec<crate::store::Replayed>> {
        sql::replay(w.tx, &self.request, w.now)
    }
}

impl Apply for Probe {
    fn apply(&self, w: &mut Tx<'_, '_>) -> rusqlite::Result<()> {
        sql::probe(w.tx)
    }
}

impl Apply for OpenSession {
    fn apply(&self, w: &mut Tx<'_, '_>) -> rusqlite::Result<()> {
        sql::open_session(w.tx, &self.row, self.now_ms)
    }
}

impl Apply for EndSession {
    fn apply(&self, w: &mut Tx<'_, '_>) -> rusqlite::Result<bool> {
        sql::end_session(w.tx, &self.id_hash)
    }
}

impl Apply for PruneDeliveries {
    fn apply(&self, w: &mut Tx<'_, '_>) -> rusqlite::Result<usize> {
        w.tx.execute(
            "DELETE FROM deliveries WHERE seen_ms < ?1",
            params![self.before_ms],
        )
    }
}

impl Apply for PruneChanges {
    fn apply(&self, w: &mut Tx<'_, '_>) -> rusqlite::Result<usize> {
        let n = sql::prune_changes(w.tx, self.before_ms, w.now)?;
        if n > 0 {
            // A pruned change may have been a ref's newest push.
            w.tips.forget();
        }
        Ok(n)
    }
}
