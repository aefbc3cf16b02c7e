//! The newest stored push of each ref, remembered by the writer, so that the ref-state check
//! (a push reaching a ref state already stored is that change) reads the database only for a
//! ref it has not seen since the last commit of another process.
//!
//! What the writer remembers is what it committed itself. Another connection (`poll --once`,
//! `outbox`, a test's) may commit too; SQLite counts that in `PRAGMA data_version`, which
//! changes for a connection exactly when another connection committed. [`Tips::begin`] reads it
//! inside each write transaction, which holds the write lock, and forgets everything when it
//! moved, so a remembered tip is never older than the database. A failed batch forgets too:
//! its pushes were rolled back.

use rustc_hash::FxHashMap;

use rusqlite::{Connection, params};

/// Refs remembered at most; past that, everything is forgotten and learnt again.
const CAPACITY: usize = 100_000;

/// The newest push of a ref: its change id and `after`.
pub(super) type Tip = (String, String);

/// Repository → ref → its newest stored push (`None`: no push of it is stored).
#[derive(Debug, Default)]
pub(crate) struct Tips {
    refs: FxHashMap<String, FxHashMap<String, Option<Tip>>>,
    len: usize,
    /// `data_version` when the writer last looked; `None` before the first look.
    version: Option<i64>,
}

impl Tips {
    /// At the start of a write transaction: forgets everything if another connection has
    /// committed since the last look.
    pub(super) fn begin(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let version: i64 = conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        if self.version != Some(version) {
            self.forget();
            self.version = Some(version);
        }
        Ok(())
    }

    /// Forgets every tip (a failed batch, another process's commit, a reopened connection).
    pub(super) fn forget(&mut self) {
        self.refs.clear();
        self.len = 0;
        self.version = None;
    }

    /// The newest stored push of `git_ref` in `repository`: remembered, or read and remembered.
    pub(super) fn newest(
        &mut self,
        conn: &Connection,
        repository: &str,
        git_ref: &str,
    ) -> rusqlite::Result<Option<Tip>> {
        if let Some(tip) = self.refs.get(repository).and_then(|r| r.get(git_ref)) {
            return Ok(tip.clone());
        }
        let tip = latest_pushes(conn, repository, git_ref, 1)?
            .pop()
            .map(|(id, _before, after)| (id, after));
        self.remember(repository, git_ref, tip.clone());
        Ok(tip)
    }

    /// A push of `git_ref` was stored: it is the ref's newest.
    pub(super) fn pushed(&mut self, repository: &str, git_ref: &str, change_id: &str, after: &str) {
        self.remember(
            repository,
            git_ref,
            Some((change_id.to_owned(), after.to_owned())),
        );
    }

    fn remember(&mut self, repository: &str, git_ref: &str, tip: Option<Tip>) {
        if self.len >= CAPACITY {
            self.refs.clear();
            self.len = 0;
        }
        let refs = match self.refs.get_mut(repository) {
            Some(refs) => refs,
            None => self.refs.entry(repository.to_owned()).or_default(),
        };
        match refs.get_mut(git_ref) {
            Some(slot) => *slot = tip,
            None => {
                refs.insert(git_ref.to_owned(), tip);
                self.len += 1;
            }
        }
    }
}

/// The newest stored pushes of a ref: (change id, before, after), newest first.
pub(super) fn latest_pushes(
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
