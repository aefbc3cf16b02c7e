//! The store: where changes, their starts and polling's cursors live, and the one interface
//! every part of switchyard talks to it through.
//!
//! # The interface
//!
//! [`Store`] is a cheap handle; its methods are everything the intake, the dispatcher, the
//! poller and `outbox` may ask of a store. Each call becomes one [`Command`] with the channel
//! its answer comes back on; a **backend** is whatever answers the commands. There are two, and
//! [`Store::open_at`] chooses by [`Location`]:
//!
//! - `sqlite/`, the embedded default: one thread that takes every command waiting at a moment
//!   and applies them in one SQLite transaction (group commit). One process per file.
//! - `postgres/`, for several `serve` replicas sharing one database: the same group commit on
//!   one connection per replica, with the cross-replica rules enforced by the database (unique
//!   constraints, transaction-scoped advisory locks taken in one global order, claims with
//!   `FOR UPDATE SKIP LOCKED` and leases a live replica renews).
//!
//! # Guarantees every backend keeps
//!
//! - An intake is acknowledged (`accepted` / `duplicate`) only after its transaction committed
//!   durably.
//! - A change id is stored once; a second source adds a sighting and starts nothing. A push
//!   whose repository, ref and `after` equal those of the ref's newest stored push is that
//!   change too (a ref state is one change).
//! - A poll's cursor moves in the same transaction as the changes the poll found: a cursor
//!   never passes a change that is not stored.
//! - A change's starts are planned once: at intake, or by `plan` for a deferred change.
//! - (change id, pipeline) is unique: a change starts a pipeline at most once per success.
//! - Start states move `pending → running → succeeded | failed → running → … → dead`, or from
//!   `pending`/`failed` to `superseded`/`dropped`; a finished state is never reopened except by
//!   `outbox retry`. A running start is never superseded or dropped. `running` is written
//!   without waiting for the disk (it needs no durability): when the store is opened in the
//!   [`Role::Serve`] role, every `running` start goes back to `pending`/`failed` and is
//!   attempted again with the same start id. No other role touches a running start. (On
//!   PostgreSQL a running start belongs to the replica that claimed it for as long as that
//!   replica renews its lease; an expired lease reopens it, whichever replica notices.)
//! - A claim never lets a pipeline run more starts at once than the limit it is given, counted
//!   over every process that shares the store.
//! - A polled repository is leased to one process at a time ([`Store::poll_lease`]).
//! - A change's decisions (each watching pipeline's verdict and reason) are stored in the
//!   transaction that stores the change, or, for a deferred change, the one that plans it.
//! - A replay adds a start only where the change has no start of that pipeline that is
//!   waiting, running or succeeded; its id is derived from the change, the pipeline and the
//!   replay's number, so a replay asked twice is a duplicate.
//! - Pruning removes a change older than the retention only with all its starts finished:
//!   nothing waiting is ever forgotten.

mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::{Notify, oneshot};

use crate::event::ChangeEvent;
use crate::outcome::{Decision, IntakeOutcome};

pub use crate::config::{DB_FILE, Location};
pub use postgres::{Admin as PostgresAdmin, MIGRATIONS as POSTGRES_MIGRATIONS};
pub use sqlite::{Admin, MIGRATIONS};

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
    #[error("no change with id {0:?}")]
    NoSuchChange(String),
    #[error("{prefix:?} names {} changes: {}", candidates.len(), candidates.join(", "))]
    AmbiguousChange {
        prefix: String,
        candidates: Vec<String>,
    },
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
    /// The decision of every pipeline that watches the repository (empty when deferred).
    pub decisions: Vec<Decision>,
    /// The W3C `traceparent` the change arrived with, or was given at intake.
    pub traceparent: Option<String>,
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
    /// The runner's id or URL of the run a successful attempt made, when it told one.
    pub run: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// 0 for the start planned at intake, N for the Nth replay.
    pub replay: u32,
}

/// Which changes [`Store::changes`] lists, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeQuery {
    /// Only changes of this repository (its id).
    pub repository: Option<String>,
    /// Only changes this pipeline decided on or started.
    pub pipeline: Option<String>,
    /// Only changes received at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    pub limit: u32,
}

/// One source's first sighting of a change.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Sighting {
    pub source: String,
    pub provider: Option<String>,
    pub delivery_id: Option<String>,
    /// When that source's notice was received (Unix ms).
    pub at_ms: i64,
}

/// A stored change and what became of it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeRecord {
    pub seq: i64,
    pub id: String,
    pub repository: String,
    /// The change event, JSON.
    pub event: String,
    pub received_ms: i64,
    /// Each source's first sighting, the first source first.
    pub sightings: Vec<Sighting>,
    /// Each watching pipeline's decision; `None` while deferred, or for a change stored before
    /// the decision log existed.
    pub decisions: Option<Vec<Decision>>,
    /// Its paths are still being completed: no decisions, no starts yet.
    pub deferred: bool,
    pub traceparent: Option<String>,
    /// Its starts, oldest first.
    pub starts: Vec<StartRow>,
}

/// A replay: the change, its ref, and the pipelines today's definitions start for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayRequest {
    pub change_id: String,
    pub git_ref: String,
    pub pipelines: Vec<String>,
}

/// What a replay did for one pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    pub pipeline: String,
    /// The new start, or the one that makes this replay a duplicate.
    pub start_id: String,
    /// The replay's number for a new start; `None` for a duplicate.
    pub replay: Option<u32>,
    /// The state of the start (`pending` for a new one).
    pub state: StartState,
}

/// A start the dispatcher wants to begin, and the most starts of its pipeline that may run at
/// once (counted over every process sharing the store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRequest {
    pub id: String,
    pub pipeline: String,
    pub limit: u32,
}

/// A start [`Store::claim`] marked running, with its change event (JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    pub id: String,
    pub event: String,
    /// The `traceparent` its change arrived with.
    pub traceparent: Option<String>,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Started; `run` is the runner's id or URL of what it started, when it tells one.
    Succeeded { run: Option<String> },
    /// Failed; retry at this time (Unix ms).
    Retry { at_ms: i64, error: String },
    /// Failed for good.
    Dead { error: String },
}

impl Finish {
    /// The columns an outcome sets at `now`: state, next attempt, error and run (the last two
    /// only when known; a `None` keeps what is stored).
    pub fn columns(&self, now: i64) -> (&'static str, i64, Option<&str>, Option<&str>) {
        match self {
            Finish::Succeeded { run } => ("succeeded", now, None, run.as_deref()),
            Finish::Retry { at_ms, error } => ("failed", *at_ms, Some(error.as_str()), None),
            Finish::Dead { error } => ("dead", now, Some(error.as_str()), None),
        }
    }
}

/// One ref's move, as polling saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefMove {
    pub repository: String,
    pub git_ref: String,
    pub from: String,
    pub to: String,
}

/// Who opens a store, which decides what opening may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `serve`, the process that dispatches: the first successful open gives the starts a
    /// crash or a stop left `running` back (to `pending`, or `failed` after an attempt), so
    /// that they are attempted again. Reopening after a failed write does not.
    Serve,
    /// A command beside a running server (`poll --once`, `outbox`): never touches a start
    /// another process may be running.
    Tool,
}

/// What `outbox` may do to one start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Reopen a dead, failed, dropped or superseded start with a fresh set of attempts.
    Retry,
    /// Drop an open or dead start: it will not be started. A running one cannot be dropped.
    Drop,
}

impl Transition {
    /// The states a start may be in for this transition.
    pub fn from(self) -> &'static [StartState] {
        match self {
            Transition::Retry => &[
                StartState::Dead,
                StartState::Failed,
                StartState::Dropped,
                StartState::Superseded,
            ],
            Transition::Drop => &[StartState::Pending, StartState::Failed, StartState::Dead],
        }
    }

    /// The past participle an error or a report uses.
    pub fn done(self) -> &'static str {
        match self {
            Transition::Retry => "retried",
            Transition::Drop => "dropped",
        }
    }
}

/// What replaying `pipeline` does, given its starts of the change (id, state, replay; newest
/// replay first): a duplicate of a start that is waiting, running or succeeded, else a new
/// start numbered after the last, made by `insert`.
pub(crate) fn replayed<E>(
    change_id: &str,
    pipeline: &str,
    rows: &[(String, String, u32)],
    insert: impl FnOnce(&str, u32) -> Result<(), E>,
) -> Result<Replayed, E> {
    let live = rows.iter().find_map(|(id, state, _)| {
        let state = StartState::parse(state)?;
        (state.is_unfinished() || state == StartState::Succeeded).then(|| (id.clone(), state))
    });
    if let Some((start_id, state)) = live {
        return Ok(Replayed {
            pipeline: pipeline.to_owned(),
            start_id,
            replay: None,
            state,
        });
    }
    let n = rows.iter().map(|(_, _, n)| *n).max().unwrap_or(0) + 1;
    let id = crate::outcome::replay_start_id(change_id, pipeline, n);
    insert(&id, n)?;
    Ok(Replayed {
        pipeline: pipeline.to_owned(),
        start_id: id,
        replay: Some(n),
        state: StartState::Pending,
    })
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One request to the store's backend, with the channel its answer goes back on. A backend
/// answers every command it takes, with the result or with the reason it failed.
pub(crate) enum Command {
    /// The request, and its event and decisions as stored (encoded by the caller, off the
    /// backend's thread).
    Intake(Box<(IntakeRequest, Encoded)>, Reply<IntakeOutcome>),
    Finish(String, Finish, Reply<bool>),
    Claim(Vec<ClaimRequest>, Reply<Vec<Claimed>>),
    /// Whether this process may poll the repository now (it holds, or took, its lease).
    PollLease(String, Reply<bool>),
    Release(Vec<String>, Reply<()>),
    Probe(Reply<()>),
    /// A poll's changes (with their events and decisions as stored) and its cursor moves.
    Poll(Box<(PollBatch, Vec<Encoded>)>, Reply<Vec<IntakeOutcome>>),
    /// The completed event (and its JSON) of a deferred change, its starts and decisions.
    Plan(Box<PlanRequest>, Reply<Option<Vec<String>>>),
    Cursors(String, Reply<BTreeMap<String, String>>),
    /// Which part of a ref's move polling found is not reported yet.
    Unreported(Box<RefMove>, Reply<Option<String>>),
    Deferred(Reply<Vec<String>>),
    Open {
        window: u32,
        reply: Reply<Vec<StartRow>>,
    },
    Prune {
        deliveries_before_ms: i64,
        reply: Reply<usize>,
    },
    /// Starts in these states (all when empty), oldest first.
    Starts(Vec<StartState>, Reply<Vec<StartRow>>),
    /// `outbox retry` / `outbox drop` of a start named by its id or a unique prefix.
    Transition(String, Transition, Reply<StartRow>),
    /// Changes, newest first.
    Changes(ChangeQuery, Reply<Vec<ChangeRecord>>),
    /// One change by its id or a unique prefix.
    Change(String, Reply<ChangeRecord>),
    Replay(Box<ReplayRequest>, Reply<Vec<Replayed>>),
    /// Forgets changes received before this time whose starts are all finished.
    PruneChanges {
        before_ms: i64,
        reply: Reply<usize>,
    },
}

/// A deferred change's completed event, its JSON, its starts and its decisions (as stored).
#[derive(Debug)]
pub(crate) struct PlanRequest {
    pub event: ChangeEvent,
    pub json: String,
    pub starts: Vec<PlannedStart>,
    pub decisions: String,
}

/// A change as the backends store it, encoded by the caller so that the backend's one thread
/// (every intake's bottleneck) does not: the event's JSON, and the decision log's (`None`
/// while deferred).
#[derive(Debug)]
pub(crate) struct Encoded {
    pub event: String,
    pub decisions: Option<String>,
}

impl Encoded {
    fn of(request: &IntakeRequest) -> Result<Encoded, StoreError> {
        Ok(Encoded {
            event: serde_json::to_string(&request.event)
                .map_err(|e| StoreError::Write(e.to_string()))?,
            decisions: (!request.defer).then(|| encode_decisions(&request.decisions)),
        })
    }
}

/// The decision log as stored: `[[pipeline, start, reason], …]`, JSON without key names (it
/// is in every change's row).
pub fn encode_decisions(decisions: &[Decision]) -> String {
    let rows: Vec<(&str, bool, &str)> = decisions
        .iter()
        .map(|d| (d.pipeline.as_str(), d.start, d.reason.as_str()))
        .collect();
    serde_json::to_string(&rows).unwrap_or_else(|_| "[]".to_owned())
}

/// The decision log from its stored form; `None` when it does not read.
pub(crate) fn decode_decisions(text: &str) -> Option<Vec<Decision>> {
    let rows: Vec<(String, bool, String)> = serde_json::from_str(text).ok()?;
    Some(
        rows.into_iter()
            .map(|(pipeline, start, reason)| Decision {
                pipeline,
                start,
                reason,
            })
            .collect(),
    )
}

impl Command {
    /// Answers the command with `err`. A caller that stopped waiting is not told.
    pub(crate) fn fail(self, err: &StoreError) {
        fn send<T>(reply: Reply<T>, err: &StoreError) {
            let _ = reply.send(Err(err.clone()));
        }
        match self {
            Command::Intake(_, reply) => send(reply, err),
            Command::Finish(_, _, reply) => send(reply, err),
            Command::Claim(_, reply) => send(reply, err),
            Command::PollLease(_, reply) => send(reply, err),
            Command::Release(_, reply) => send(reply, err),
            Command::Probe(reply) => send(reply, err),
            Command::Poll(_, reply) => send(reply, err),
            Command::Plan(_, reply) => send(reply, err),
            Command::Cursors(_, reply) => send(reply, err),
            Command::Unreported(_, reply) => send(reply, err),
            Command::Deferred(reply) => send(reply, err),
            Command::Open { reply, .. } => send(reply, err),
            Command::Prune { reply, .. } => send(reply, err),
            Command::Starts(_, reply) => send(reply, err),
            Command::Transition(_, _, reply) => send(reply, err),
            Command::Changes(_, reply) => send(reply, err),
            Command::Change(_, reply) => send(reply, err),
            Command::Replay(_, reply) => send(reply, err),
            Command::PruneChanges { reply, .. } => send(reply, err),
        }
    }

    /// Whether the command only reads (it is answered after the batch's commit, and a batch of
    /// reads alone needs no transaction). A poll lease is a read on SQLite, where there is
    /// nothing to lease; the PostgreSQL backend writes it in a transaction of its own.
    pub(crate) fn is_read(&self) -> bool {
        matches!(
            self,
            Command::Open { .. }
                | Command::Cursors(..)
                | Command::Unreported(..)
                | Command::Deferred(..)
                | Command::Starts(..)
                | Command::PollLease(..)
                | Command::Changes(..)
                | Command::Change(..)
        )
    }

    /// Whether the command must be on disk before it is answered (a batch of claims,
    /// releases and reads alone commits without waiting for the disk).
    pub(crate) fn needs_durability(&self) -> bool {
        !(self.is_read() || matches!(self, Command::Claim(..) | Command::Release(..)))
    }
}

/// What a write command's part of a committed batch produced; a backend answers the command
/// with it ([`Command::answer`]) once the batch committed.
pub(crate) enum Done {
    Intake(IntakeOutcome),
    Poll(Vec<IntakeOutcome>),
    Plan(Option<Vec<String>>),
    Finish(bool),
    Claim(Vec<Claimed>),
    Released,
    Unit,
    Prune(usize),
    /// A transition's result: the start as it is now, or why it could not be moved.
    Transition(Result<StartRow, StoreError>),
    Replay(Vec<Replayed>),
    /// A read: answered after the commit, by the backend.
    Read,
}

impl Done {
    /// Whether this part created or reopened starts: the dispatcher has new work.
    pub(crate) fn woke(&self) -> bool {
        let started = |o: &IntakeOutcome| matches!(o, IntakeOutcome::Accepted { starts, .. } if !starts.is_empty());
        match self {
            Done::Intake(o) => started(o),
            Done::Poll(os) => os.iter().any(started),
            Done::Plan(Some(ids)) => !ids.is_empty(),
            Done::Finish(changed) => *changed,
            Done::Released => true,
            Done::Transition(r) => r.is_ok(),
            Done::Replay(r) => r.iter().any(|r| r.replay.is_some()),
            _ => false,
        }
    }
}

impl Command {
    /// Answers a write with what its part of the committed batch produced. A read comes back,
    /// for the backend to answer now that the batch committed. A caller that stopped waiting
    /// is not told.
    pub(crate) fn answer(self, done: Done) -> Option<Command> {
        match (self, done) {
            (Command::Intake(_, reply), Done::Intake(o)) => drop(reply.send(Ok(o))),
            (Command::Poll(_, reply), Done::Poll(o)) => drop(reply.send(Ok(o))),
            (Command::Plan(_, reply), Done::Plan(ids)) => drop(reply.send(Ok(ids))),
            (Command::Finish(_, _, reply), Done::Finish(x)) => drop(reply.send(Ok(x))),
            (Command::Claim(_, reply), Done::Claim(x)) => drop(reply.send(Ok(x))),
            (Command::Release(_, reply), Done::Released) => drop(reply.send(Ok(()))),
            (Command::Probe(reply), Done::Unit) => drop(reply.send(Ok(()))),
            (Command::Prune { reply, .. }, Done::Prune(n)) => drop(reply.send(Ok(n))),
            (Command::Transition(_, _, reply), Done::Transition(r)) => drop(reply.send(r)),
            (Command::Replay(_, reply), Done::Replay(r)) => drop(reply.send(Ok(r))),
            (Command::PruneChanges { reply, .. }, Done::Prune(n)) => drop(reply.send(Ok(n))),
            (cmd, Done::Read) if cmd.is_read() => return Some(cmd),
            // A backend produces one Done per command, of the matching kind.
            (cmd, _) => cmd.fail(&StoreError::Write("internal: mismatched answer".into())),
        }
        None
    }
}

impl Transition {
    /// `row` if it may make this transition, else the error that says why not.
    pub(crate) fn check(self, row: StartRow) -> Result<StartRow, StoreError> {
        if self.from().contains(&row.state) {
            Ok(row)
        } else {
            Err(self.refused(row))
        }
    }

    /// The error for a start, as it is now, that this transition did not move.
    pub(crate) fn refused(self, row: StartRow) -> StoreError {
        StoreError::WrongState {
            id: row.id,
            state: row.state.as_str().into(),
            action: self.done(),
        }
    }

    /// The columns a transition sets (`$1`/`?1` is the time).
    pub(crate) fn set_columns(self) -> &'static str {
        match self {
            Transition::Retry => "state = 'pending', attempts = 0, next_attempt_ms = $1",
            Transition::Drop => "state = 'dropped'",
        }
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Intake(..) => "Intake",
            Command::Finish(..) => "Finish",
            Command::Claim(..) => "Claim",
            Command::PollLease(..) => "PollLease",
            Command::Release(..) => "Release",
            Command::Probe(..) => "Probe",
            Command::Poll(..) => "Poll",
            Command::Plan(..) => "Plan",
            Command::Cursors(..) => "Cursors",
            Command::Unreported(..) => "Unreported",
            Command::Deferred(..) => "Deferred",
            Command::Open { .. } => "Open",
            Command::Prune { .. } => "Prune",
            Command::Starts(..) => "Starts",
            Command::Transition(..) => "Transition",
            Command::Changes(..) => "Changes",
            Command::Change(..) => "Change",
            Command::Replay(..) => "Replay",
            Command::PruneChanges { .. } => "PruneChanges",
        })
    }
}

/// A handle to the store. Cheap to clone; the backend stops when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct Store {
    tx: mpsc::Sender<Command>,
}

impl Store {
    /// Opens the store in `state_dir` for `role` (today the SQLite file [`DB_FILE`] in it).
    /// `new_work` is notified after every commit that created or reopened starts. The backend
    /// opens the database itself; when it cannot, every request fails (and opening is retried
    /// on the next one), so a server can keep answering 503 until the disk is back.
    pub fn open(state_dir: &Path, role: Role, new_work: Arc<Notify>) -> Store {
        Store::open_at(&Location::Sqlite(state_dir.to_path_buf()), role, new_work)
    }

    /// Opens the store at `location` for `role`; see [`Store::open`].
    pub fn open_at(location: &Location, role: Role, new_work: Arc<Notify>) -> Store {
        let (tx, rx) = mpsc::channel();
        match location {
            Location::Sqlite(dir) => sqlite::spawn(dir.join(DB_FILE), role, rx, new_work),
            Location::Postgres(url) => postgres::spawn(url.clone(), role, rx, new_work),
        }
        Store { tx }
    }

    /// Opens the store at `location` and checks that it is usable now.
    pub async fn open_checked_at(
        location: &Location,
        role: Role,
        new_work: Arc<Notify>,
    ) -> Result<Store, StoreError> {
        let store = Store::open_at(location, role, new_work);
        store.prune_deliveries(0).await?;
        Ok(store)
    }

    /// Opens the store and checks that it is usable now.
    pub async fn open_checked(
        state_dir: &Path,
        role: Role,
        new_work: Arc<Notify>,
    ) -> Result<Store, StoreError> {
        let store = Store::open(state_dir, role, new_work);
        store.prune_deliveries(0).await?;
        Ok(store)
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Stores a change and its starts; answers once they are on disk.
    pub async fn intake(&self, request: IntakeRequest) -> Result<IntakeOutcome, StoreError> {
        let encoded = Encoded::of(&request)?;
        self.call(|reply| Command::Intake(Box::new((request, encoded)), reply))
            .await
    }

    /// Records how an attempt of a start ended. False when the start was no longer open
    /// (dropped or superseded meanwhile).
    pub async fn finish(&self, start_id: &str, finish: Finish) -> Result<bool, StoreError> {
        let id = start_id.to_owned();
        self.call(|reply| Command::Finish(id, finish, reply)).await
    }

    /// Marks open starts as running; returns the ones that were open (and are now running),
    /// each with its change event.
    pub async fn claim(&self, ids: Vec<String>) -> Result<Vec<Claimed>, StoreError> {
        let wanted = ids
            .into_iter()
            .map(|id| ClaimRequest {
                id,
                pipeline: String::new(),
                limit: u32::MAX,
            })
            .collect();
        self.call(|reply| Command::Claim(wanted, reply)).await
    }

    /// Like [`Store::claim`], but never lets a pipeline run more than its request's `limit`
    /// starts at once, across every process sharing the store: the earliest requests of a
    /// pipeline are claimed first.
    pub async fn claim_within(
        &self,
        wanted: Vec<ClaimRequest>,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.call(|reply| Command::Claim(wanted, reply)).await
    }

    /// Whether this process may poll `repository` now. On SQLite always (one process); on
    /// PostgreSQL the repository is leased to one live replica at a time, chosen so that the
    /// repositories spread over the replicas, and taken over when its holder stops renewing.
    pub async fn poll_lease(&self, repository: &str) -> Result<bool, StoreError> {
        let repository = repository.to_owned();
        self.call(|reply| Command::PollLease(repository, reply))
            .await
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
    /// intake order. Their events come with [`Store::claim`], for the ones that start.
    pub async fn open_starts(&self, window: u32) -> Result<Vec<StartRow>, StoreError> {
        self.call(|reply| Command::Open { window, reply }).await
    }

    /// Stores what a poll found and moves its cursors, in one transaction; answers once on
    /// disk, with one outcome per change.
    pub async fn poll(&self, batch: PollBatch) -> Result<Vec<IntakeOutcome>, StoreError> {
        let encoded = batch
            .intakes
            .iter()
            .map(Encoded::of)
            .collect::<Result<Vec<_>, _>>()?;
        self.call(|reply| Command::Poll(Box::new((batch, encoded)), reply))
            .await
    }

    /// Stores the completed event of a deferred change and creates its starts. `None` when the
    /// change was not waiting (planned already, or unknown).
    pub async fn plan(
        &self,
        event: ChangeEvent,
        starts: Vec<PlannedStart>,
        decisions: Vec<Decision>,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let json = serde_json::to_string(&event).map_err(|e| StoreError::Write(e.to_string()))?;
        let request = PlanRequest {
            event,
            json,
            starts,
            decisions: encode_decisions(&decisions),
        };
        self.call(|reply| Command::Plan(Box::new(request), reply))
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

    /// Starts in `states` (all when empty), oldest first.
    pub async fn starts(&self, states: &[StartState]) -> Result<Vec<StartRow>, StoreError> {
        let states = states.to_vec();
        self.call(|reply| Command::Starts(states, reply)).await
    }

    /// Retries or drops the start named by `id` (or a unique prefix of at least 4
    /// characters), checking its state in the same transaction, so that a start the server
    /// finished meanwhile is never overwritten. Answers the start as it is now.
    pub async fn transition(&self, id: &str, to: Transition) -> Result<StartRow, StoreError> {
        let id = id.to_owned();
        self.call(|reply| Command::Transition(id, to, reply)).await
    }

    /// Stored changes, newest first, with their sightings, decisions and starts.
    pub async fn changes(&self, query: ChangeQuery) -> Result<Vec<ChangeRecord>, StoreError> {
        self.call(|reply| Command::Changes(query, reply)).await
    }

    /// The change named by `id` or by a unique prefix of at least 4 characters.
    pub async fn change(&self, id: &str) -> Result<ChangeRecord, StoreError> {
        let id = id.to_owned();
        self.call(|reply| Command::Change(id, reply)).await
    }

    /// Adds a start of each pipeline for the change, unless it has one of that pipeline that
    /// is waiting, running or succeeded (a duplicate), in one transaction.
    pub async fn replay(&self, request: ReplayRequest) -> Result<Vec<Replayed>, StoreError> {
        self.call(|reply| Command::Replay(Box::new(request), reply))
            .await
    }

    /// Forgets the changes received before `before_ms` whose starts are all finished, with
    /// their decisions, sightings and starts; returns how many changes.
    pub async fn prune_changes(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.call(|reply| Command::PruneChanges { before_ms, reply })
            .await
    }
}
