//! The readers: read-only connections of their own, each on a thread, taking read jobs from one
//! queue. WAL lets them read while the writer writes: a read sees every transaction committed
//! before it began, never waits for the writer, and the writer never waits for it.

use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

use super::{open_connection, sql};
use crate::store::read::Reads;
use crate::store::{
    ChangeQuery, ChangeRecord, RefMove, SessionRow, StartRow, StartState, StoreError,
};

/// Whether the writer has tried its first open: readers open their connections only after it,
/// so that `serve`'s recovery of interrupted starts comes before any read.
#[derive(Debug, Default)]
pub(crate) struct Opened {
    done: Mutex<bool>,
    told: Condvar,
}

/// The longest a reader waits for the writer's first open.
const OPEN_WAIT: Duration = Duration::from_secs(5);

impl Opened {
    /// The writer tried its first open.
    pub(crate) fn tell(&self) {
        if let Ok(mut done) = self.done.lock() {
            *done = true;
        }
        self.told.notify_all();
    }

    /// Waits (at most [`OPEN_WAIT`]) until the writer tried its first open.
    fn wait(&self) {
        if let Ok(done) = self.done.lock() {
            let _ = self.told.wait_timeout_while(done, OPEN_WAIT, |done| !*done);
        }
    }
}

/// A read on a reader's connection (or the reason it has none).
type ReadJob = Box<dyn FnOnce(Result<&Connection, &StoreError>) + Send>;

/// A pool of readers of one database file.
#[derive(Clone, Debug)]
pub(crate) struct Readers {
    tx: mpsc::Sender<ReadJob>,
}

impl Readers {
    /// `n` reader threads of the database at `path`; they stop when the last handle is gone.
    pub(crate) fn spawn(path: &Path, n: usize, opened: Arc<Opened>) -> Readers {
        let (tx, rx) = mpsc::channel::<ReadJob>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..n.max(1) {
            let (rx, path, opened) = (Arc::clone(&rx), path.to_path_buf(), Arc::clone(&opened));
            let spawned = std::thread::Builder::new()
                .name(format!("switchyard-read-{i}"))
                .spawn(move || {
                    opened.wait();
                    serve_reads(&path, &rx)
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a store reader");
            }
        }
        Readers { tx }
    }

    /// Runs `read` on a reader's connection; its error is a read error.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let answer = match conn {
                Ok(conn) => read(conn).map_err(|e| StoreError::Read(e.to_string())),
                Err(e) => Err(e.clone()),
            };
            let _ = reply.send(answer);
        });
        self.tx.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// One reader: takes jobs until every handle is gone, opening its connection when it first
/// needs it (and again after it failed).
fn serve_reads(path: &Path, rx: &Mutex<mpsc::Receiver<ReadJob>>) {
    let mut conn: Option<Connection> = None;
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        if conn.is_none() {
            match open_reader(path) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    job(Err(&e));
                    continue;
                }
            }
        }
        if let Some(c) = &conn {
            job(Ok(c));
        }
    }
}

/// A read-only connection to the database at `path`. Opening creates and migrates the file
/// like the writer's (whichever comes first; SQLite's locks order them), then the connection
/// can only read (`query_only`).
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = open_connection(path)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    Ok(conn)
}

impl Reads for Readers {
    async fn open_starts(&self, window: u32) -> Result<Vec<StartRow>, StoreError> {
        self.read(move |c| sql::open_starts(c, window)).await
    }

    async fn cursors(&self, repository: String) -> Result<BTreeMap<String, String>, StoreError> {
        self.read(move |c| sql::cursors(c, &repository)).await
    }

    async fn unreported(&self, m: RefMove) -> Result<Option<String>, StoreError> {
        self.read(move |c| sql::unreported(c, &m)).await
    }

    async fn deferred(&self) -> Result<Vec<String>, StoreError> {
        self.read(sql::deferred).await
    }

    async fn starts(&self, states: Vec<StartState>) -> Result<Vec<StartRow>, StoreError> {
        self.read(move |c| sql::starts(c, &states)).await
    }

    async fn changes(&self, query: ChangeQuery) -> Result<Vec<ChangeRecord>, StoreError> {
        self.read(move |c| sql::changes(c, &query)).await
    }

    async fn change(&self, id: String) -> Result<ChangeRecord, StoreError> {
        self.read(move |c| sql::find_change(c, &id)).await?
    }

    async fn session(&self, id_hash: String) -> Result<Option<SessionRow>, StoreError> {
        self.read(move |c| sql::session(c, &id_hash)).await
    }
}
