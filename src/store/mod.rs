//! The embedded store: one SQLite file in the state directory, written by one thread that
//! commits concurrent requests together (group commit).
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
//!   such a change has no starts yet; [`Store::plan`] stores the completed event and its starts.
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
//! # Invariants
//!
//! - An intake is acknowledged (`accepted` / `duplicate`) only after its transaction committed.
//! - A change id is stored once; a second source adds a sighting and starts nothing.
//! - A poll's cursor moves in the same transaction as the changes the poll found: a cursor
//!   never passes a change that is not stored.
//! - A change's starts are planned once: at intake, or by `plan` for a deferred change.
//! - (change id, pipeline) is unique: a change starts a pipeline at most once per success.
//! - Start states move `pending → running → succeeded | failed → running → … → dead`, or from
//!   `pending`/`failed` to `superseded`/`dropped`; a finished state is never reopened except by
//!   `outbox retry`. A running start is never superseded or dropped. `running` is written
//!   without waiting for the disk (it needs no durability): when the store is opened for
//!   `serve`, every `running` start goes back to `pending`/`failed` and is attempted again with
//!   the same start id.

mod schema;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, oneshot};

use crate::event::{ChangeEvent, ChangeKind};

pub use schema::MIGRATIONS;

/// The database file inside the state directory.
pub const DB_FILE: &str = "switchyard.db";

/// Requests committed in one transaction at most.
const MAX_BATCH: usize = 2048;

/// Why the store could not do what was asked.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {path} cannot be opened: {message}")]
    Open { path: String, message: String },
    #[error("the store could not write: {0}")]
    Write(String),
    #[error("the store could not read: {0}")]
    Read(String),
    #[error("the store is closed")]
    Closed,
    #[error("no start with id {0:?}")]
    NoSuchStart(String),
    #[error("start {id:?} is {state}, which cannot be {action}")]
    WrongState {
        id: String,
        state: String,
        action: &'static str,
    },
}

/// What a source hands over.
#[derive(Clone, Debug)]
pub struct IntakeRequest {
    pub event: ChangeEvent,
    /// (receiver or source name, delivery id): remembered for the replay window.
    pub delivery: Option<(String, String)>,
    /// The pipelines the filters chose, and whether each supersedes older pending starts.
    pub starts: Vec<PlannedStart>,
    /// The changed paths are still being completed: store the change now, without starts;
    /// [`Store::plan`] adds them later.
    pub defer: bool,
}

/// What one poll of a repository found, stored in one transaction.
#[derive(Clone, Debug)]
pub struct PollBatch {
    pub repository: String,
    /// The changes found, in ref order.
    pub intakes: Vec<IntakeRequest>,
    /// Cursor moves: ref and its new value, `None` for a ref that is gone.
    pub cursors: Vec<(String, Option<String>)>,
}

/// A pipeline the change must start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedStart {
    pub pipeline: String,
    pub supersede: bool,
}

/// The answer to an intake, given once the change is on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntakeOutcome {
    /// A new change; these start ids were created.
    Accepted {
        change_id: String,
        starts: Vec<String>,
    },
    /// Seen before: as this delivery id, or as this change from any source.
    Duplicate { change_id: String, why: DuplicateOf },
}

/// What an intake duplicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DuplicateOf {
    Delivery,
    Change,
}

/// The state of a start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StartState {
    /// Not tried yet.
    Pending,
    /// Being attempted now.
    Running,
    /// Failed, waiting for a retry at `next_attempt_ms`.
    Failed,
    Succeeded,
    /// Out of attempts, or refused for good; `outbox retry` reopens it.
    Dead,
    /// A newer change of the same pipeline and ref replaced it before it started.
    Superseded,
    /// Dropped by `outbox drop`.
    Dropped,
}

impl StartState {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            StartState::Pending => "pending",
            StartState::Running => "running",
            StartState::Failed => "failed",
            StartState::Succeeded => "succeeded",
            StartState::Dead => "dead",
            StartState::Superseded => "superseded",
            StartState::Dropped => "dropped",
        }
    }

    /// Parses the stored word.
    pub fn parse(s: &str) -> Option<StartState> {
        Some(match s {
            "pending" => StartState::Pending,
            "running" => StartState::Running,
            "failed" => StartState::Failed,
            "succeeded" => StartState::Succeeded,
            "dead" => StartState::Dead,
            "superseded" => StartState::Superseded,
            "dropped" => StartState::Dropped,
            _ => return None,
        })
    }

    /// Pending or failed: the dispatcher may still start it.
    pub fn is_open(self) -> bool {
        matches!(self, StartState::Pending | StartState::Failed)
    }

    /// Pending, failed or running: not finished.
    pub fn is_unfinished(self) -> bool {
        self.is_open() || self == StartState::Running
    }
}

/// One row of `starts`, with its change event when asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct StartRow {
    pub seq: i64,
    pub id: String,
    pub change_id: String,
    pub pipeline: String,
    pub git_ref: String,
    pub state: StartState,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    Succeeded,
    /// Failed; retry at this time (Unix ms).
    Retry {
        at_ms: i64,
        error: String,
    },
    /// Failed for good.
    Dead {
        error: String,
    },
}

/// One ref's move, as polling saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefMove {
    pub repository: String,
    pub git_ref: String,
    pub from: String,
    pub to: String,
}

/// How many stored pushes of a ref [`Store::unreported`] follows back at most.
const CHAIN: u32 = 256;

/// The start id of (change, pipeline): stable across attempts and restarts.
pub fn start_id(change_id: &str, pipeline: &str) -> String {
    let mut h = Sha256::new();
    h.update(change_id.as_bytes());
    h.update([0u8]);
    h.update(pipeline.as_bytes());
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

enum Command {
    /// The request and its event as JSON (serialised by the caller, off the writer thread).
    Intake(
        Box<(IntakeRequest, String)>,
        oneshot::Sender<Result<IntakeOutcome, StoreError>>,
    ),
    Finish(String, Finish, oneshot::Sender<Result<bool, StoreError>>),
    Claim(
        Vec<String>,
        oneshot::Sender<Result<Vec<String>, StoreError>>,
    ),
    Release(Vec<String>, oneshot::Sender<Result<(), StoreError>>),
    Probe(oneshot::Sender<Result<(), StoreError>>),
    /// A poll's changes (with their events as JSON) and its cursor moves.
    Poll(
        Box<(PollBatch, Vec<String>)>,
        oneshot::Sender<Result<Vec<IntakeOutcome>, StoreError>>,
    ),
    /// The completed event (and its JSON) of a deferred change, and its starts.
    Plan(
        Box<(ChangeEvent, String, Vec<PlannedStart>)>,
        oneshot::Sender<Result<Option<Vec<String>>, StoreError>>,
    ),
    Cursors(
        String,
        oneshot::Sender<Result<BTreeMap<String, String>, StoreError>>,
    ),
    /// Which part of a ref's move polling found is not reported yet.
    Unreported(
        Box<RefMove>,
        oneshot::Sender<Result<Option<String>, StoreError>>,
    ),
    Deferred(oneshot::Sender<Result<Vec<String>, StoreError>>),
    Open {
        window: u32,
        reply: oneshot::Sender<Result<Vec<(StartRow, String)>, StoreError>>,
    },
    Prune {
        deliveries_before_ms: i64,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
}

/// A handle to the store's writer thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    tx: mpsc::Sender<Command>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Intake(..) => "Intake",
            Command::Finish(..) => "Finish",
            Command::Claim(..) => "Claim",
            Command::Release(..) => "Release",
            Command::Probe(..) => "Probe",
            Command::Poll(..) => "Poll",
            Command::Plan(..) => "Plan",
            Command::Cursors(..) => "Cursors",
            Command::Unreported(..) => "Unreported",
            Command::Deferred(..) => "Deferred",
            Command::Open { .. } => "Open",
            Command::Prune { .. } => "Prune",
        })
    }
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

impl Store {
    /// Starts the writer thread for the database in `state_dir`. `new_work` is notified after
    /// every commit that created or reopened starts. The file is opened on the writer thread;
    /// when it cannot be opened, every request fails (and opening is retried on the next one),
    /// so a server can keep answering 503 until the disk is back.
    pub fn open(state_dir: &Path, new_work: Arc<Notify>) -> Store {
        let path = state_dir.join(DB_FILE);
        let (tx, rx) = mpsc::channel();
        let thread_path = path.clone();
        let spawned = std::thread::Builder::new()
            .name("switchyard-store".into())
            .spawn(move || writer(thread_path, rx, new_work));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the store thread");
        }
        Store {
            tx,
            path: Arc::new(path),
        }
    }

    /// Opens the store and checks that it is usable now.
    pub async fn open_checked(
        state_dir: &Path,
        new_work: Arc<Notify>,
    ) -> Result<Store, StoreError> {
        let store = Store::open(state_dir, new_work);
        store.prune_deliveries(0).await?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Stores a change and its starts; answers once they are on disk.
    pub async fn intake(&self, request: IntakeRequest) -> Result<IntakeOutcome, StoreError> {
        let json =
            serde_json::to_string(&request.event).map_err(|e| StoreError::Write(e.to_string()))?;
        self.call(|reply| Command::Intake(Box::new((request, json)), reply))
            .await
    }

    /// Records how an attempt of a start ended. False when the start was no longer open
    /// (dropped or superseded meanwhile).
    pub async fn finish(&self, start_id: &str, finish: Finish) -> Result<bool, StoreError> {
        let id = start_id.to_owned();
        self.call(|reply| Command::Finish(id, finish, reply)).await
    }

    /// Marks open starts as running; returns the ids that were open (and are now running).
    pub async fn claim(&self, ids: Vec<String>) -> Result<Vec<String>, StoreError> {
        self.call(|reply| Command::Claim(ids, reply)).await
    }

    /// Checks that a change could be stored now: writes and removes a row the size of a large
    /// change event, durably. Fails when the disk (or the store's page limit) is full.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.call(Command::Probe).await
    }

    /// Gives running starts back (their attempts were stopped): they are open again.
    pub async fn release(&self, ids: Vec<String>) -> Result<(), StoreError> {
        self.call(|reply| Command::Release(ids, reply)).await
    }

    /// The unfinished starts (pending, failed, running), the first `window` of each pipeline in
    /// intake order, with their change events (JSON).
    pub async fn open_starts(&self, window: u32) -> Result<Vec<(StartRow, String)>, StoreError> {
        self.call(|reply| Command::Open { window, reply }).await
    }

    /// Stores what a poll found and moves its cursors, in one transaction; answers once on
    /// disk, with one outcome per change.
    pub async fn poll(&self, batch: PollBatch) -> Result<Vec<IntakeOutcome>, StoreError> {
        let json = batch
            .intakes
            .iter()
            .map(|r| serde_json::to_string(&r.event))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Write(e.to_string()))?;
        self.call(|reply| Command::Poll(Box::new((batch, json)), reply))
            .await
    }

    /// Stores the completed event of a deferred change and creates its starts. `None` when the
    /// change was not waiting (planned already, or unknown).
    pub async fn plan(
        &self,
        event: ChangeEvent,
        starts: Vec<PlannedStart>,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let json = serde_json::to_string(&event).map_err(|e| StoreError::Write(e.to_string()))?;
        self.call(|reply| Command::Plan(Box::new((event, json, starts)), reply))
            .await
    }

    /// Where polling last saw each ref of a repository.
    pub async fn cursors(&self, repository: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let repository = repository.to_owned();
        self.call(|reply| Command::Cursors(repository, reply)).await
    }

    /// Which part of a move polling found (`from` → `to`, `to` the zero id for a deletion)
    /// other reports do not cover yet. The newest stored pushes of the ref are followed back
    /// from `to` while each starts where the next ended: `None` when they reach `from` (every
    /// push in between was reported), else the ref state where they stop, `to` itself when no
    /// stored push ends there. Polling then reports only `from` → that state.
    pub async fn unreported(&self, m: RefMove) -> Result<Option<String>, StoreError> {
        self.call(|reply| Command::Unreported(Box::new(m), reply))
            .await
    }

    /// The events (JSON) of the changes still waiting for their paths, oldest first.
    pub async fn deferred(&self) -> Result<Vec<String>, StoreError> {
        self.call(Command::Deferred).await
    }

    /// Forgets delivery ids seen before `before_ms`; returns how many.
    pub async fn prune_deliveries(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.call(|reply| Command::Prune {
            deliveries_before_ms: before_ms,
            reply,
        })
        .await
    }
}

/// The writer thread: takes every queued command, applies the writes in one transaction,
/// commits once, then answers all of them.
fn writer(path: PathBuf, rx: mpsc::Receiver<Command>, new_work: Arc<Notify>) {
    let mut conn: Option<Connection> = None;
    // Dropped when the writer ends, which stops the checkpointer.
    let mut checkpointer: Option<mpsc::Sender<()>> = None;
    // The connection's current `synchronous` setting (`open_connection` sets FULL).
    let mut synchronous_full = true;
    let mut batch: Vec<Command> = Vec::with_capacity(64);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        if conn.is_none() {
            match open_connection(&path)
                .and_then(recover_running)
                .and_then(tune_writer)
            {
                Ok(c) => {
                    conn = Some(c);
                    synchronous_full = true;
                    if checkpointer.is_none() {
                        checkpointer = spawn_checkpointer(&path);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "store unavailable");
                    fail_all(&mut batch, &e);
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let mut woke = false;
        match apply(c, &batch, &mut woke, &mut synchronous_full) {
            Ok(done) => {
                if woke {
                    new_work.notify_one();
                }
                reply_all(c, &mut batch, done);
            }
            Err(e) => {
                tracing::error!(error = %e, batch = batch.len(), "store write failed; nothing in this batch was acknowledged");
                let err = StoreError::Write(e.to_string());
                fail_all(&mut batch, &err);
                // Reopen on the next batch: the connection may be in a bad state.
                conn = None;
            }
        }
        batch.clear();
    }
}

fn fail_all(batch: &mut Vec<Command>, err: &StoreError) {
    for cmd in batch.drain(..) {
        match cmd {
            Command::Intake(_, reply) => drop(reply.send(Err(err.clone()))),
            Command::Finish(_, _, reply) => drop(reply.send(Err(err.clone()))),
            Command::Claim(_, reply) => drop(reply.send(Err(err.clone()))),
            Command::Release(_, reply) => drop(reply.send(Err(err.clone()))),
            Command::Probe(reply) => drop(reply.send(Err(err.clone()))),
            Command::Poll(_, reply) => drop(reply.send(Err(err.clone()))),
            Command::Plan(_, reply) => drop(reply.send(Err(err.clone()))),
            Command::Cursors(_, reply) => drop(reply.send(Err(err.clone()))),
            Command::Unreported(_, reply) => drop(reply.send(Err(err.clone()))),
            Command::Deferred(reply) => drop(reply.send(Err(err.clone()))),
            Command::Open { reply, .. } => drop(reply.send(Err(err.clone()))),
            Command::Prune { reply, .. } => drop(reply.send(Err(err.clone()))),
        }
    }
}

/// How often the checkpointer copies the write-ahead log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// Pages the log may grow to before the writer checkpoints by itself (a backstop for a
/// checkpointer that cannot keep up).
const WRITER_CHECKPOINT_PAGES: i64 = 20_000;

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

/// Attempts interrupted by a crash or a stop are open again.
fn recover_running(conn: Connection) -> Result<Connection, StoreError> {
    conn.execute(
        "UPDATE starts SET state = CASE WHEN attempts > 0 THEN 'failed' ELSE 'pending' END WHERE state = 'running'",
        [],
    )
    .map_err(|e| StoreError::Write(e.to_string()))?;
    Ok(conn)
}

/// What a command's part of a batch produced, sent once the batch committed.
enum Done {
    Intake(IntakeOutcome),
    Poll(Vec<IntakeOutcome>),
    Plan(Option<Vec<String>>),
    Finish(bool),
    Claim(Vec<String>),
    Unit,
    Prune(usize),
    Read,
}

/// Applies a batch's writes in one transaction. On error nothing is committed and every
/// command of the batch is still there to be told so.
fn apply(
    conn: &mut Connection,
    batch: &[Command],
    woke: &mut bool,
    synchronous_full: &mut bool,
) -> rusqlite::Result<Vec<Done>> {
    let now = now_ms();
    // Only intakes, finishes and probes need the disk before they are answered; a batch of
    // claims, releases and reads alone commits without waiting for it.
    let durable = batch.iter().any(|c| {
        !matches!(
            c,
            Command::Claim(..)
                | Command::Release(..)
                | Command::Open { .. }
                | Command::Cursors(..)
                | Command::Unreported(..)
                | Command::Deferred(..)
        )
    });
    if durable != *synchronous_full {
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })?;
        *synchronous_full = durable;
    }
    // Immediate: the batch holds the write lock from its start. A deferred transaction that
    // reads first (the ref-state check) would have to upgrade its read snapshot to a write,
    // which SQLite refuses at once (busy) when the checkpointer moved the log meanwhile.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut done = Vec::with_capacity(batch.len());
    for cmd in batch {
        done.push(match cmd {
            Command::Intake(req, _) => {
                let outcome = intake(&tx, &req.0, &req.1, now)?;
                if matches!(&outcome, IntakeOutcome::Accepted { starts, .. } if !starts.is_empty()) {
                    *woke = true;
                }
                Done::Intake(outcome)
            }
            Command::Poll(req, _) => {
                let (batch, json) = &**req;
                let mut outcomes = Vec::with_capacity(batch.intakes.len());
                for (request, json) in batch.intakes.iter().zip(json) {
                    let outcome = intake(&tx, request, json, now)?;
                    if matches!(&outcome, IntakeOutcome::Accepted { starts, .. } if !starts.is_empty()) {
                        *woke = true;
                    }
                    outcomes.push(outcome);
                }
                move_cursors(&tx, &batch.repository, &batch.cursors, now)?;
                Done::Poll(outcomes)
            }
            Command::Plan(req, _) => {
                let (event, json, starts) = &**req;
                let waiting = tx
                    .prepare_cached(
                        "UPDATE changes SET event = ?1, pending_paths = 0 WHERE id = ?2 AND pending_paths = 1",
                    )?
                    .execute(params![json, event.id])?;
                if waiting == 0 {
                    Done::Plan(None)
                } else {
                    let ids = insert_starts(&tx, event, starts, now)?;
                    *woke |= !ids.is_empty();
                    Done::Plan(Some(ids))
                }
            }
            Command::Finish(id, finish, _) => {
                let changed = finish_start(&tx, id, finish, now)?;
                *woke |= changed;
                Done::Finish(changed)
            }
            Command::Claim(ids, _) => {
                let mut claimed = Vec::with_capacity(ids.len());
                let mut stmt = tx.prepare_cached(
                    "UPDATE starts SET state = 'running', updated_ms = ?1
                     WHERE id = ?2 AND state IN ('pending', 'failed')",
                )?;
                for id in ids {
                    if stmt.execute(params![now, id])? > 0 {
                        claimed.push(id.clone());
                    }
                }
                Done::Claim(claimed)
            }
            Command::Release(ids, _) => {
                let mut stmt = tx.prepare_cached(
                    "UPDATE starts SET state = CASE WHEN attempts > 0 THEN 'failed' ELSE 'pending' END,
                         updated_ms = ?1 WHERE id = ?2 AND state = 'running'",
                )?;
                for id in ids {
                    stmt.execute(params![now, id])?;
                }
                *woke = true;
                Done::Unit
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
            Command::Open { .. }
            | Command::Cursors(..)
            | Command::Unreported(..)
            | Command::Deferred(..) => Done::Read,
        });
    }
    tx.commit()?;
    Ok(done)
}

/// Answers every command of a committed batch; reads run now, after the commit.
fn reply_all(conn: &Connection, batch: &mut Vec<Command>, done: Vec<Done>) {
    for (cmd, d) in batch.drain(..).zip(done) {
        match (cmd, d) {
            (Command::Intake(_, reply), Done::Intake(o)) => drop(reply.send(Ok(o))),
            (Command::Poll(_, reply), Done::Poll(o)) => drop(reply.send(Ok(o))),
            (Command::Plan(_, reply), Done::Plan(ids)) => drop(reply.send(Ok(ids))),
            (Command::Cursors(repository, reply), _) => drop(
                reply.send(cursors(conn, &repository).map_err(|e| StoreError::Read(e.to_string()))),
            ),
            (Command::Unreported(m, reply), _) => {
                drop(reply.send(unreported(conn, &m).map_err(|e| StoreError::Read(e.to_string()))))
            }
            (Command::Deferred(reply), _) => {
                drop(reply.send(deferred(conn).map_err(|e| StoreError::Read(e.to_string()))))
            }
            (Command::Finish(_, _, reply), Done::Finish(changed)) => drop(reply.send(Ok(changed))),
            (Command::Claim(_, reply), Done::Claim(ids)) => drop(reply.send(Ok(ids))),
            (Command::Release(_, reply), _) => drop(reply.send(Ok(()))),
            (Command::Probe(reply), _) => drop(reply.send(Ok(()))),
            (Command::Prune { reply, .. }, Done::Prune(n)) => drop(reply.send(Ok(n))),
            (Command::Open { window, reply }, _) => drop(
                reply.send(open_starts(conn, window).map_err(|e| StoreError::Read(e.to_string()))),
            ),
            // `apply` produces one Done per command, of the matching kind.
            (cmd, _) => fail_all(
                &mut vec![cmd],
                &StoreError::Write("internal: mismatched answer".into()),
            ),
        }
    }
}

fn intake(
    tx: &rusqlite::Transaction<'_>,
    req: &IntakeRequest,
    json: &str,
    now: i64,
) -> rusqlite::Result<IntakeOutcome> {
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
    let source = event.source.kind.to_string();
    // The ref's newest stored push already ends where this one does: the same ref state,
    // reported again (by another source, or coalesced by polling, with another `before`).
    let push = (event.kind == ChangeKind::Push).then_some(());
    if push.is_some()
        && let Some((existing, _, after)) =
            latest_pushes(tx, event.repository.as_str(), &event.git_ref, 1)?.pop()
        && after == event.after
        && existing != change_id
    {
        record_sighting(tx, &existing, &source, event, received_ms)?;
        return Ok(IntakeOutcome::Duplicate {
            change_id: existing,
            why: DuplicateOf::Change,
        });
    }
    // The first source's sighting lives in the change's own row (one insert for a new change);
    // other sources' first sightings go to `sightings`.
    let new = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO changes (id, repository, event, received_ms, source, provider, delivery_id, pending_paths, push_ref, push_before, push_after)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
        ])?;
    if new == 0 {
        record_sighting(tx, &change_id, &source, event, received_ms)?;
        return Ok(IntakeOutcome::Duplicate {
            change_id,
            why: DuplicateOf::Change,
        });
    }
    let starts = if req.defer {
        Vec::new()
    } else {
        insert_starts(tx, event, &req.starts, now)?
    };
    Ok(IntakeOutcome::Accepted { change_id, starts })
}

/// Records that `source` saw change `change_id` too (its first sighting by that source).
fn record_sighting(
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
fn insert_starts(
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
fn move_cursors(
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

fn cursors(conn: &Connection, repository: &str) -> rusqlite::Result<BTreeMap<String, String>> {
    let mut stmt = conn.prepare_cached("SELECT git_ref, sha FROM cursors WHERE repository = ?1")?;
    let rows = stmt.query_map(params![repository], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// The newest stored pushes of a ref: (change id, before, after), newest first.
fn latest_pushes(
    conn: &Connection,
    repository: &str,
    git_ref: &str,
    limit: u32,
) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, push_before, push_after FROM changes
         WHERE repository = ?1 AND push_ref = ?2
         ORDER BY seq DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![repository, git_ref, limit], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    rows.collect()
}

fn unreported(conn: &Connection, m: &RefMove) -> rusqlite::Result<Option<String>> {
    let mut expected = m.to.as_str();
    let pushes = latest_pushes(conn, &m.repository, &m.git_ref, CHAIN)?;
    for (_, before, after) in &pushes {
        if after != expected {
            break;
        }
        expected = before;
        if expected == m.from {
            return Ok(None);
        }
    }
    Ok(Some(expected.to_owned()))
}

fn deferred(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT event FROM changes WHERE pending_paths = 1 ORDER BY seq")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

fn finish_start(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    finish: &Finish,
    now: i64,
) -> rusqlite::Result<bool> {
    let (state, next, error) = match finish {
        Finish::Succeeded => ("succeeded", now, None),
        Finish::Retry { at_ms, error } => ("failed", *at_ms, Some(error.as_str())),
        Finish::Dead { error } => ("dead", now, Some(error.as_str())),
    };
    let n = tx.execute(
        "UPDATE starts SET state = ?1, attempts = attempts + 1, next_attempt_ms = ?2,
             last_error = COALESCE(?3, last_error), updated_ms = ?4
         WHERE id = ?5 AND state IN ('pending', 'running', 'failed')",
        params![state, next, error, now, id],
    )?;
    Ok(n > 0)
}

const START_COLUMNS: &str = "s.seq, s.id, s.change_id, s.pipeline, s.git_ref, s.state, s.attempts, s.next_attempt_ms, s.last_error, s.created_ms, s.updated_ms";

fn row_to_start(row: &rusqlite::Row<'_>) -> rusqlite::Result<StartRow> {
    let state: String = row.get(5)?;
    Ok(StartRow {
        seq: row.get(0)?,
        id: row.get(1)?,
        change_id: row.get(2)?,
        pipeline: row.get(3)?,
        git_ref: row.get(4)?,
        state: StartState::parse(&state).unwrap_or(StartState::Dead),
        attempts: row.get(6)?,
        next_attempt_ms: row.get(7)?,
        last_error: row.get(8)?,
        created_ms: row.get(9)?,
        updated_ms: row.get(10)?,
    })
}

fn open_starts(conn: &Connection, window: u32) -> rusqlite::Result<Vec<(StartRow, String)>> {
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
        "SELECT {START_COLUMNS}, c.event FROM starts s JOIN changes c ON c.id = s.change_id
         WHERE s.pipeline = ?1 AND s.state IN ('pending', 'running', 'failed')
         ORDER BY s.seq LIMIT ?2"
    ))?;
    let mut out = Vec::new();
    for name in names {
        let rows = first.query_map(params![name, window], |row| {
            Ok((row_to_start(row)?, row.get::<_, String>(11)?))
        })?;
        for row in rows {
            out.push(row?);
        }
    }
    out.sort_by_key(|(row, _)| row.seq);
    Ok(out)
}

/// Read and admin access for commands that run beside a server (`outbox`), through their own
/// connection. SQLite's locking keeps them consistent with a running writer.
#[derive(Debug)]
pub struct Admin {
    conn: Connection,
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
        let read = |e: rusqlite::Error| StoreError::Read(e.to_string());
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {START_COLUMNS} FROM starts s ORDER BY s.seq"
            ))
            .map_err(read)?;
        let rows = stmt.query_map([], row_to_start).map_err(read)?;
        let mut out = Vec::new();
        for row in rows {
            let row = row.map_err(read)?;
            if states.is_empty() || states.contains(&row.state) {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// One start by id, or by a unique prefix of at least 4 characters.
    pub fn start(&self, id: &str) -> Result<StartRow, StoreError> {
        if id.len() < 4 {
            return Err(StoreError::NoSuchStart(id.to_owned()));
        }
        let read = |e: rusqlite::Error| StoreError::Read(e.to_string());
        let pattern = format!("{}%", id.replace(['%', '_'], ""));
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {START_COLUMNS} FROM starts s WHERE s.id LIKE ?1 LIMIT 2"
            ))
            .map_err(read)?;
        let rows: Vec<StartRow> = stmt
            .query_map(params![pattern], row_to_start)
            .map_err(read)?
            .collect::<Result<_, _>>()
            .map_err(read)?;
        match rows.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(StoreError::NoSuchStart(id.to_owned())),
        }
    }

    /// Reopens a dead, failed, dropped or superseded start with a fresh set of attempts.
    pub fn retry(&self, id: &str) -> Result<StartRow, StoreError> {
        const FROM: &[StartState] = &[
            StartState::Dead,
            StartState::Failed,
            StartState::Dropped,
            StartState::Superseded,
        ];
        self.transition(
            id,
            FROM,
            "state = 'pending', attempts = 0, next_attempt_ms = ?1",
            "retried",
        )
    }

    /// Drops an open or dead start: it will not be started. A running start cannot be dropped.
    pub fn drop_start(&self, id: &str) -> Result<StartRow, StoreError> {
        const FROM: &[StartState] = &[StartState::Pending, StartState::Failed, StartState::Dead];
        self.transition(id, FROM, "state = 'dropped'", "dropped")
    }

    /// Moves a start from one of `from` with `set`, in one statement that checks the state
    /// again, so a start that the server finished meanwhile is never overwritten.
    fn transition(
        &self,
        id: &str,
        from: &[StartState],
        set: &str,
        action: &'static str,
    ) -> Result<StartRow, StoreError> {
        let row = self.start(id)?;
        let wrong = |row: StartRow| StoreError::WrongState {
            id: row.id,
            state: row.state.as_str().into(),
            action,
        };
        if !from.contains(&row.state) {
            return Err(wrong(row));
        }
        let states: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
        let sql = format!(
            "UPDATE starts SET {set}, updated_ms = ?1 WHERE id = ?2 AND state IN ({})",
            states.join(", ")
        );
        let changed = self
            .conn
            .execute(&sql, params![now_ms(), row.id])
            .map_err(|e| StoreError::Write(e.to_string()))?;
        let after = self.start(&row.id)?;
        if changed == 0 {
            return Err(wrong(after));
        }
        Ok(after)
    }

    /// The stored change event (JSON) of a change id.
    pub fn change(&self, change_id: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT event FROM changes WHERE id = ?1",
                params![change_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| StoreError::Read(e.to_string()))
    }

    /// Each source's first sighting of a change: (source, first seen ms).
    pub fn sightings(&self, change_id: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let read = |e: rusqlite::Error| StoreError::Read(e.to_string());
        let mut stmt = self
            .conn
            .prepare(
                "SELECT source, received_ms FROM changes WHERE id = ?1
                 UNION ALL
                 SELECT source, first_seen_ms FROM sightings WHERE change_id = ?1
                 ORDER BY 2",
            )
            .map_err(read)?;
        let rows = stmt
            .query_map(params![change_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(read)?;
        rows.collect::<Result<_, _>>().map_err(read)
    }

    /// Counts of starts per state.
    pub fn counts(&self) -> Result<Vec<(StartState, i64)>, StoreError> {
        let read = |e: rusqlite::Error| StoreError::Read(e.to_string());
        let mut stmt = self
            .conn
            .prepare("SELECT state, COUNT(*) FROM starts GROUP BY state")
            .map_err(read)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(read)?;
        let mut out = Vec::new();
        for row in rows {
            let (state, n) = row.map_err(read)?;
            if let Some(state) = StartState::parse(&state) {
                out.push((state, n));
            }
        }
        Ok(out)
    }
}
