//! The read connections: a small pool per store handle of read-only sessions, connected when
//! first needed, on the caller's runtime. A read never waits behind the
//! writer's batches, and a batch never waits behind a read.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use tokio_postgres::{Client, Statement};

use super::sql::{self, Statements};
use super::{describe, message};
use crate::store::read::Reads;
use crate::store::{
    ChangeQuery, ChangeRecord, RefMove, SessionRow, StartRow, StartState, StoreError,
};

/// A pool of read connections to one database.
#[derive(Clone)]
pub(crate) struct Readers {
    inner: Arc<Pool>,
}

struct Pool {
    url: String,
    idle: Mutex<Vec<ReadConn>>,
    /// One permit per connection the pool may hold.
    slots: Semaphore,
}

/// One read connection and the statement it runs most.
pub(super) struct ReadConn {
    pub(super) client: Client,
    pub(super) open: Statement,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "postgres::Readers({})", describe(&self.inner.url))
    }
}

/// How long a read may take in all, a connection opened for it included.
const READ_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

impl Readers {
    /// At most `n` read connections to the database at `url`.
    pub(crate) fn new(url: &str, n: usize) -> Readers {
        Readers {
            inner: Arc::new(Pool {
                url: url.to_owned(),
                idle: Mutex::new(Vec::new()),
                slots: Semaphore::new(n.max(1)),
            }),
        }
    }

    /// Runs `read` on a connection of the pool (waiting for one when all are busy), within
    /// [`READ_WITHIN`]: a read that gets no answer fails, and its connection is dropped.
    async fn read<T>(
        &self,
        read: impl AsyncFnOnce(&ReadConn) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(READ_WITHIN, self.read_now(read)).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Read(format!(
                "the database did not answer within {} s",
                READ_WITHIN.as_secs()
            ))),
        }
    }

    async fn read_now<T>(
        &self,
        read: impl AsyncFnOnce(&ReadConn) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        let _slot = self
            .inner
            .slots
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let idle = self.inner.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) if !conn.client.is_closed() => conn,
            _ => connect(&self.inner.url).await?,
        };
        let result = read(&conn).await;
        if !conn.client.is_closed()
            && let Ok(mut idle) = self.inner.idle.lock()
        {
            idle.push(conn);
        }
        result.map_err(|e| StoreError::Read(message(&e)))
    }
}

/// A read connection to the database at `url`: a session that can only read.
async fn connect(url: &str) -> Result<ReadConn, StoreError> {
    let client = super::connect(url).await?;
    let fail = |e: tokio_postgres::Error| super::open_error(url, message(&e));
    client
        .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        .await
        .map_err(fail)?;
    let open = client
        .prepare(&Statements::open_sql())
        .await
        .map_err(fail)?;
    Ok(ReadConn { client, open })
}

impl Reads for Readers {
    async fn open_starts(&self, window: u32) -> Result<Vec<StartRow>, StoreError> {
        self.read(async |c| sql::open_starts(&c.client, &c.open, window).await)
            .await
    }

    async fn cursors(&self, repository: String) -> Result<BTreeMap<String, String>, StoreError> {
        self.read(async |c| sql::cursors(&c.client, &repository).await)
            .await
    }

    async fn unreported(&self, m: RefMove) -> Result<Option<String>, StoreError> {
        self.read(async |c| sql::unreported(&c.client, &m).await)
            .await
    }

    async fn deferred(&self) -> Result<Vec<String>, StoreError> {
        self.read(async |c| sql::deferred(&c.client).await).await
    }

    async fn starts(&self, states: Vec<StartState>) -> Result<Vec<StartRow>, StoreError> {
        self.read(async |c| sql::starts(&c.client, &states).await)
            .await
    }

    async fn changes(&self, query: ChangeQuery) -> Result<Vec<ChangeRecord>, StoreError> {
        self.read(async |c| sql::changes(&c.client, &query).await)
            .await
    }

    async fn change(&self, id: String) -> Result<ChangeRecord, StoreError> {
        self.read(async |c| sql::find_change(&c.client, &id).await)
            .await?
    }

    async fn session(&self, id_hash: String) -> Result<Option<SessionRow>, StoreError> {
        self.read(async |c| sql::session(&c.client, &id_hash).await)
            .await
    }
}
