//! The store: where changes, their starts and polling's cursors live, and the one interface
//! every part of switchyard talks to it through.
//!
//! # The interface
//!
//! [`Store`] is a cheap handle; its methods are everything the intake, the dispatcher, the
//! poller and the operator's commands may ask of a store, split by job: `intake.rs` (the
//! sources), `queue.rs` (the dispatcher), `inspect.rs` (what people read), `operate.rs` (an
//! operator's retry, drop and replay), `upkeep.rs` (probes and pruning). A write is a typed
//! request ([`write::Write`]) sent to the backend's writer thread, which commits the writes
//! waiting at a moment in one transaction (group commit, the loop in `write.rs`) and answers
//! each only after the commit. A read goes to connections of its own (`read.rs`): it never
//! waits behind a write. The rules both backends keep are written once, in `rules.rs`; each
//! backend holds only its statements. There are two, and [`Store::open_at`] chooses by
//! [`Location`]:
//!
//! - `sqlite/`, the embedded default: one writer thread and its transactions, read-only WAL
//!   readers. One process per file.
//! - `postgres/`, for several `serve` replicas sharing one database: the same group commit on
//!   one connection per replica, a small pool of read connections, with the cross-replica
//!   rules enforced by the database (unique constraints, transaction-scoped advisory locks
//!   taken in one global order, claims with `FOR UPDATE SKIP LOCKED` and leases a live replica
//!   renews).
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

mod inspect;
mod intake;
mod operate;
mod postgres;
mod queue;
mod read;
mod rules;
mod sessions;
mod sqlite;
#[cfg(test)]
mod tests;
mod upkeep;
mod write;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::Notify;

use read::Reads as _;
use write::Pending;

pub use crate::config::{DB_FILE, Location};
pub use inspect::{ChangeQuery, ChangeRecord, Sighting};
pub use intake::{IntakeRequest, PlannedStart, PollBatch, RefMove};
pub use operate::{ReplayRequest, Replayed};
pub use postgres::MIGRATIONS as POSTGRES_MIGRATIONS;
pub use queue::{ClaimRequest, Claimed, StartRow};
pub use rules::{Finish, StartState, Transition, encode_decisions};
pub use sessions::SessionRow;
pub use sqlite::{MIGRATIONS, ring as ring_doorbell};
#[cfg(any(test, feature = "admin"))]
pub use {postgres::Admin as PostgresAdmin, sqlite::Admin};

/// Why the store could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
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

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Where the writes of a store go.
#[derive(Clone, Debug)]
enum Writer {
    Sqlite(mpsc::Sender<Box<dyn sqlite::Job>>),
    Postgres(mpsc::Sender<Box<dyn postgres::Job>>),
}

/// A handle to the store. Cheap to clone; the writer stops when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct Store {
    writer: Writer,
    /// The reads that keep switchyard going: the dispatcher's queue, the poller's cursors.
    reads: Readers,
    /// People's reads: the status page, its API, `changes`, `outbox`.
    views: Readers,
}

/// Read connections for the dispatcher and the poller.
const READS: usize = 1;
/// Read connections for people's views.
const VIEWS: usize = 2;

impl Store {
    /// Opens the store in `state_dir` for `role` (the SQLite file [`DB_FILE`] in it).
    /// `new_work` is notified after every commit that created or reopened starts. The backend
    /// opens the database itself; when it cannot, every request fails (and opening is retried
    /// on the next one), so a server can keep answering 503 until the disk is back.
    pub fn open(state_dir: &Path, role: Role, new_work: Arc<Notify>) -> Store {
        Store::open_at(&Location::Sqlite(state_dir.to_path_buf()), role, new_work)
    }

    /// Opens the store at `location` for `role`; see [`Store::open`].
    pub fn open_at(location: &Location, role: Role, new_work: Arc<Notify>) -> Store {
        match location {
            Location::Sqlite(dir) => {
                let (tx, [reads, views]) =
                    sqlite::open(dir.join(DB_FILE), role, new_work, [READS, VIEWS]);
                Store {
                    writer: Writer::Sqlite(tx),
                    reads: Readers::Sqlite(reads),
                    views: Readers::Sqlite(views),
                }
            }
            Location::Postgres(url) => {
                let (tx, [reads, views]) = postgres::open(url, role, new_work, [READS, VIEWS]);
                Store {
                    writer: Writer::Postgres(tx),
                    reads: Readers::Postgres(reads),
                    views: Readers::Postgres(views),
                }
            }
        }
    }

    /// Whether other processes share this store and write to it on their own (PostgreSQL's
    /// replicas); a SQLite store is this process's, with commands beside it ringing its doorbell.
    pub fn is_shared(&self) -> bool {
        matches!(self.writer, Writer::Postgres(_))
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
        Store::open_checked_at(&Location::Sqlite(state_dir.to_path_buf()), role, new_work).await
    }

    /// Sends `write` to the writer; answers once its batch committed.
    async fn write<W>(&self, write: W) -> Result<W::Answer, StoreError>
    where
        W: sqlite::Apply + postgres::Apply,
    {
        self.send(write).await
    }

    /// Sends `write` to the writer now (a write sent later is applied after it) and returns
    /// what answers once its batch committed.
    fn send<W>(
        &self,
        write: W,
    ) -> impl Future<Output = Result<W::Answer, StoreError>> + Send + 'static
    where
        W: sqlite::Apply + postgres::Apply,
    {
        let (pending, rx) = Pending::new(write);
        let sent = match &self.writer {
            Writer::Sqlite(tx) => tx.send(Box::new(pending)).is_ok(),
            Writer::Postgres(tx) => tx.send(Box::new(pending)).is_ok(),
        };
        async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            rx.await.map_err(|_| StoreError::Closed)?
        }
    }

    /// Whether this process holds (or took) a poll lease: always on SQLite (one process per
    /// file), the writer's answer on PostgreSQL.
    async fn lease(&self, lease: intake::PollLease) -> Result<bool, StoreError> {
        match &self.writer {
            Writer::Sqlite(_) => Ok(true),
            Writer::Postgres(tx) => {
                let (pending, rx) = Pending::new(lease);
                tx.send(Box::new(pending)).map_err(|_| StoreError::Closed)?;
                rx.await.map_err(|_| StoreError::Closed)?
            }
        }
    }
}

/// A pool of read connections of either backend.
#[derive(Clone, Debug)]
enum Readers {
    Sqlite(sqlite::Readers),
    Postgres(postgres::Readers),
}

macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        impl Readers {
            $(pub(crate) async fn $name(&self, $($arg: $ty),*) -> Result<$out, StoreError> {
                match self {
                    Readers::Sqlite(r) => r.$name($($arg),*).await,
                    Readers::Postgres(r) => r.$name($($arg),*).await,
                }
            })*
        }
    };
}

forward! {
    open_starts(window: u32) -> Vec<StartRow>;
    cursors(repository: String) -> BTreeMap<String, String>;
    unreported(m: RefMove) -> Option<String>;
    deferred() -> Vec<String>;
    starts(states: Vec<StartState>) -> Vec<StartRow>;
    changes(query: ChangeQuery) -> Vec<ChangeRecord>;
    change(id: String) -> ChangeRecord;
    session(id_hash: String) -> Option<SessionRow>;
}
