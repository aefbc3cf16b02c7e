//! The status page's operator sessions, kept where every replica sees them: a login adds one, a
//! logout removes it, so logging out ends the session everywhere at once, and a session outlives
//! a restart. The store keeps a digest of each session's id (the cookie's value), never the id,
//! and a MAC that ties the session to the operator token it was opened with.

use super::write::Write;
use super::{Store, StoreError};

/// A stored session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    /// The SHA-256 of the session's id, hex.
    pub id_hash: String,
    /// The MAC of the id under the operator token it was opened with, hex.
    pub token_mac: String,
    /// When it ends (ms since the epoch).
    pub expires_ms: i64,
}

/// Store a new session, forgetting those that ended.
#[derive(Debug)]
pub(crate) struct OpenSession {
    pub row: SessionRow,
    pub now_ms: i64,
}

impl Write for OpenSession {
    type Answer = ();
}

/// Forget a session (a logout); answers whether there was one.
#[derive(Debug)]
pub(crate) struct EndSession {
    pub id_hash: String,
}

impl Write for EndSession {
    type Answer = bool;
}

impl Store {
    /// Stores a new operator session, and forgets the sessions that ended before `now_ms`.
    pub async fn open_session(&self, row: SessionRow, now_ms: i64) -> Result<(), StoreError> {
        self.write(OpenSession { row, now_ms }).await
    }

    /// Forgets the session whose id has this digest; whether there was one.
    pub async fn end_session(&self, id_hash: String) -> Result<bool, StoreError> {
        self.write(EndSession { id_hash }).await
    }

    /// The session whose id has this digest, when one is stored.
    pub async fn session(&self, id_hash: String) -> Result<Option<SessionRow>, StoreError> {
        self.views.session(id_hash).await
    }
}
