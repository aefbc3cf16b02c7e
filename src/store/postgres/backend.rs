//! The writer thread: one connection, the writes waiting at a moment applied in one transaction
//! (after taking their advisory locks in key order; the loop is `store::write`'s), how each kind
//! of write is applied ([`Apply`]); and, for `serve`, a heartbeat every [`HEARTBEAT`] that renews
//! this replica's leases and reopens the starts of replicas whose leases ran out.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{join_all, try_join_all};
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::sql::{self, Statements};
use super::{describe, message};
use crate::outcome::IntakeOutcome;
use crate::store::intake::{Intake, Plan, Poll, PollLease};
use crate::store::operate::{Move, Replay};
use crate::store::queue::{Claim, Record, Release};
use crate::store::sessions::{EndSession, OpenSession};
use crate::store::upkeep::{Probe, PruneChanges, PruneDeliveries};
use crate::store::write::{self, Pending, Write};
use crate::store::{Claimed, Replayed, Role, StartRow, StoreError, now_ms};

/// Writes committed in one transaction at most.
const MAX_BATCH: usize = 1024;
/// How often a `serve` replica renews its leases and looks for expired ones.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a claimed start or a polled repository stays a replica's without a renewal: the
/// time a dead replica's work waits before another takes it over.
pub(super) const LEASE: Duration = Duration::from_secs(5);
/// A batch that takes longer than this is abandoned (and its connection with it): its
/// requests fail instead of hanging on a database that stopped answering. With a connection
/// attempt's own bound ([`super::CONNECT_WITHIN`]), a delivery queued behind a hung batch is
/// answered (503) within about 8 s, before a sender gives up (GitHub waits 10 s).
const BATCH_TIMEOUT: Duration = Duration::from_secs(4);
/// What a batch that timed out answers.
const TIMED_OUT: &str = "the database did not answer in time";
/// How soon a database that refused a connection is asked again.
const REFUSED_RETRY: Duration = Duration::from_millis(100);
/// How soon a database that did not answer at all is asked again; meanwhile requests fail at
/// once.
const SILENT_RETRY: Duration = Duration::from_secs(1);

/// How the last attempt to reach the database failed, and when.
#[derive(Clone, Copy, Debug)]
enum Failed {
    /// It answered with a refusal (down, or a bad login): asked again soon.
    Refused(Instant),
    /// It did not answer in time.
    Silent(Instant),
}

/// Times a batch is run again after PostgreSQL broke a deadlock by rolling it back.
const RETRIES: u32 = 5;

type PgResult<T> = Result<T, tokio_postgres::Error>;

/// A write's statements, as a future that sends them when first polled.
pub(crate) type Step<'a, T> = Pin<Box<dyn Future<Output = PgResult<T>> + Send + 'a>>;

/// What a write sees of the batch it is in.
pub(crate) struct Cx<'a> {
    /// The connection, inside the batch's transaction.
    pub c: &'a Client,
    pub st: &'a Statements,
    /// This replica's name.
    pub me: &'a str,
    /// The live replicas at the last heartbeat.
    pub live: &'a [String],
    /// The lease of a claim, in ms.
    pub lease: i64,
    pub now: i64,
    /// The intakes the batch's writes hand in, stored together by one call.
    pub intakes: sql::Intakes<'a>,
}

/// A write the PostgreSQL writer can apply.
pub(crate) trait Apply: Write + Sync {
    /// The advisory locks it needs (taken for the whole batch, in key order, first).
    fn keys(&self, _keys: &mut Vec<i64>) {}

    /// Whether its writes are one statement, sent at once: then a batch of such writes needs no
    /// round trip inside its transaction.
    fn one_statement(&self) -> bool {
        false
    }

    /// The starts it claims (given back when its batch fails without a trustworthy answer).
    fn claims(&self) -> Vec<String> {
        Vec::new()
    }

    fn apply<'a>(&'a self, cx: &'a Cx<'a>) -> Step<'a, Self::Answer>;
}

/// A write of a batch, whatever its type.
pub(crate) trait Job: write::Job {
    fn keys(&self, keys: &mut Vec<i64>);
    fn one_statement(&self) -> bool;
    fn claims(&self) -> Vec<String>;
    /// Applies the write, keeping its answer for after the commit.
    fn step<'a>(&'a mut self, cx: &'a Cx<'a>) -> Step<'a, ()>;
}

impl<W: Apply> Job for Pending<W> {
    fn keys(&self, keys: &mut Vec<i64>) {
        self.write.keys(keys);
    }

    fn one_statement(&self) -> bool {
        self.write.one_statement()
    }

    fn claims(&self) -> Vec<String> {
        self.write.claims()
    }

    fn step<'a>(&'a mut self, cx: &'a Cx<'a>) -> Step<'a, ()> {
        // Applied now, not when first polled: a write hands in its intakes before the batch's
        // call is made.
        let applied = self.write.apply(cx);
        let done = &mut self.done;
        Box::pin(async move {
            *done = Some(applied.await?);
            Ok(())
        })
    }
}

pub(super) struct Conn {
    pub(super) client: Client,
    st: Statements,
    /// When it connected: a replica judges others' leases only a [`LEASE`] later.
    since: Instant,
}

/// The writer: its own single-threaded runtime, and the state it keeps.
pub(super) struct Writer {
    runtime: Runtime,
    state: State,
}

struct State {
    url: String,
    role: Role,
    new_work: Arc<Notify>,
    conn: Option<Conn>,
    /// This process's name in `starts.owner`, `poll_leases` and `replicas`.
    me: String,
    /// The replicas alive at the last heartbeat (this one included), by id.
    live: Vec<String>,
    /// How and when the last attempt to reach the database failed: the next waits a little.
    failed_at: Option<Failed>,
    /// Starts of claims whose batch failed without an answer the backend can trust (the
    /// connection broke or timed out, perhaps after the commit): the dispatcher was told they
    /// failed and runs none of them, so they are given back before anything else is written.
    unsure: Vec<String>,
    next_beat: Instant,
}

impl Writer {
    /// The writer of the database at `url`, or why it cannot run.
    pub(super) fn new(url: String, role: Role, new_work: Arc<Notify>) -> std::io::Result<Writer> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Writer {
            runtime,
            state: State {
                url,
                role,
                new_work,
                conn: None,
                me: replica_name(),
                live: Vec::new(),
                failed_at: None,
                unsure: Vec::new(),
                next_beat: Instant::now(),
            },
        })
    }
}

impl write::Backend for Writer {
    type Job = dyn Job;

    const MAX_BATCH: usize = MAX_BATCH;

    fn commit(&mut self, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
        self.runtime.block_on(self.state.commit(batch))
    }

    fn failed(&mut self, batch: &[Box<dyn Job>], _err: &StoreError) {
        // Whether or not they committed, the dispatcher will not run these claims: they must not
        // stay this replica's.
        for job in batch {
            self.state.unsure.extend(job.claims());
        }
    }

    fn next_tick(&self) -> Option<Instant> {
        (self.state.role == Role::Serve).then_some(self.state.next_beat)
    }

    fn tick(&mut self) {
        self.runtime.block_on(self.state.heartbeat());
        self.state.next_beat = Instant::now() + HEARTBEAT;
    }

    fn stop(&mut self) {
        self.runtime.block_on(self.state.leave());
    }
}

/// `HOST-PID-RANDOM`: readable in `starts.owner`, unique per process.
fn replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host = host.trim();
    format!(
        "{}-{}-{:04x}",
        if host.is_empty() { "switchyard" } else { host },
        std::process::id(),
        fastrand::u16(..)
    )
}

fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

impl State {
    async fn ensure_open(&mut self) -> Result<(), StoreError> {
        if self.conn.is_some() {
            return Ok(());
        }
        // A database that refused a moment ago is asked again at most ten times a second; one
        // that did not answer at all (down, or a partition), once a second, and meanwhile
        // every request fails at once rather than wait for an answer that will not come.
        match self.failed_at {
            Some(Failed::Refused(at)) if at.elapsed() < REFUSED_RETRY => {
                tokio::time::sleep(REFUSED_RETRY - at.elapsed()).await;
            }
            Some(Failed::Silent(at)) if at.elapsed() < SILENT_RETRY => {
                return Err(StoreError::Write(format!(
                    "the database did not answer {} ms ago; asking again within {} s",
                    at.elapsed().as_millis(),
                    SILENT_RETRY.as_secs()
                )));
            }
            _ => {}
        }
        match connect(&self.url).await {
            Ok(conn) => {
                if self.failed_at.take().is_some() {
                    tracing::info!(database = %describe(&self.url), "the database is back");
                }
                self.conn = Some(conn);
                Ok(())
            }
            Err(e) => {
                let silent = matches!(&e, StoreError::Open { message, .. } if message.contains(super::NO_ANSWER));
                self.failed_at = Some(if silent {
                    Failed::Silent(Instant::now())
                } else {
                    Failed::Refused(Instant::now())
                });
                Err(e)
            }
        }
    }

    /// The database stopped answering on the connection (a batch or the heartbeat timed out):
    /// the connection is dropped, and requests fail at once until the next attempt.
    fn unanswered(&mut self, why: &str) {
        self.drop_connection(why);
        self.failed_at = Some(Failed::Silent(Instant::now()));
    }

    /// Forgets a connection that failed; the next batch connects again.
    fn drop_connection(&mut self, why: &str) {
        if self.conn.take().is_some() {
            tracing::warn!(database = %describe(&self.url), error = why, "the database connection failed; reconnecting");
        }
    }

    /// Applies and commits one batch, running it again (a few times) when the database broke
    /// a deadlock by rolling it back.
    async fn commit(&mut self, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
        self.ensure_open().await?;
        self.give_back_unsure().await?;
        let mut tries = 0;
        loop {
            let result = match self.conn.as_ref() {
                Some(conn) => {
                    let cx = Cx {
                        c: &conn.client,
                        st: &conn.st,
                        me: &self.me,
                        live: &self.live,
                        lease: LEASE.as_millis() as i64,
                        now: now_ms(),
                        intakes: sql::Intakes::default(),
                    };
                    match tokio::time::timeout(BATCH_TIMEOUT, apply(&cx, batch)).await {
                        Ok(result) => result.map_err(|e| (retryable(&e), message(&e))),
                        Err(_) => Err((false, TIMED_OUT.to_owned())),
                    }
                }
                None => Err((false, "the store is closed".to_owned())),
            };
            match result {
                Ok(()) => return Ok(()),
                Err((true, why)) if tries < RETRIES => {
                    tries += 1;
                    tracing::debug!(error = %why, tries, "batch rolled back by the database; running it again");
                }
                Err((_, why)) => {
                    if why == TIMED_OUT {
                        self.unanswered(&why);
                    } else {
                        self.drop_connection(&why);
                    }
                    return Err(StoreError::Write(why));
                }
            }
        }
    }

    /// Gives back the starts of failed claims that are still running as this replica's.
    async fn give_back_unsure(&mut self) -> Result<(), StoreError> {
        if self.unsure.is_empty() {
            return Ok(());
        }
        let Some(conn) = self.conn.as_ref() else {
            return Err(StoreError::Closed);
        };
        let given = conn
            .client
            .execute(
                &sql::reopen("id = ANY($2::text[]) AND owner = $3"),
                &[&now_ms(), &self.unsure, &self.me],
            )
            .await;
        match given {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(starts = n, "claims whose answer was lost are open again");
                    self.new_work.notify_one();
                }
                self.unsure.clear();
                Ok(())
            }
            Err(e) => {
                let why = message(&e);
                self.drop_connection(&why);
                Err(StoreError::Write(why))
            }
        }
    }

    /// Renews this replica's row and leases, reopens the starts of replicas whose leases ran
    /// out, and learns which replicas are alive.
    async fn heartbeat(&mut self) {
        if self.ensure_open().await.is_err() || self.give_back_unsure().await.is_err() {
            return;
        }
        let Some(conn) = self.conn.as_ref() else {
            return;
        };
        let c = &conn.client;
        let lease = LEASE.as_millis() as i64;
        let me = self.me.as_str();
        let now = now_ms();
        let me_only: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&me];
        let me_lease: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&me, &lease];
        let at_now: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&now];
        let lease_only: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&lease];
        // Leases that ran out while this replica could not reach the database (an outage, a
        // start) may belong to replicas that are alive and as cut off as it was: they are
        // judged only once every live replica has had a lease's time to renew its own, so that
        // the starts of a live replica are not taken from it and run twice.
        let judge = conn.since.elapsed() >= LEASE;
        let beat = async {
            let (seen, starts, polls, reaped, live) = futures_util::join!(
                c.execute(
                    "INSERT INTO replicas (id, seen_ms) VALUES ($1, switchyard_now())
                     ON CONFLICT (id) DO UPDATE SET seen_ms = excluded.seen_ms",
                    &me_only,
                ),
                c.execute(
                    "UPDATE starts SET lease_until_ms = switchyard_now() + $2
                     WHERE state = 'running' AND owner = $1",
                    &me_lease,
                ),
                c.execute(
                    "UPDATE poll_leases SET until_ms = switchyard_now() + $2 WHERE owner = $1",
                    &me_lease,
                ),
                async {
                    if !judge {
                        return Ok(0);
                    }
                    c.execute(&sql::reopen("lease_until_ms < switchyard_now()"), &at_now)
                        .await
                },
                c.query(
                    "SELECT id FROM replicas WHERE seen_ms >= switchyard_now() - $1 ORDER BY id",
                    &lease_only,
                ),
            );
            seen?;
            starts?;
            polls?;
            Ok::<_, tokio_postgres::Error>((reaped?, live?))
        };
        match tokio::time::timeout(BATCH_TIMEOUT, beat).await {
            Ok(Ok((reaped, live))) => {
                self.live = live.iter().map(|r| r.get(0)).collect();
                if !self.live.contains(&self.me) {
                    self.live.push(self.me.clone());
                    self.live.sort();
                }
                if reaped > 0 {
                    tracing::warn!(
                        starts = reaped,
                        "starts of a replica that stopped renewing its lease are open again"
                    );
                    self.new_work.notify_one();
                }
            }
            Ok(Err(e)) => {
                let why = message(&e);
                tracing::warn!(error = %why, "cannot renew this replica's leases");
                if c.is_closed() {
                    self.drop_connection(&why);
                }
            }
            Err(_) => self.unanswered("the heartbeat timed out"),
        }
    }

    /// At the end: gives its running starts (attempts that did not finish) and polled
    /// repositories back at once and leaves the replica list, so that the others take over
    /// without waiting for the leases.
    async fn leave(&mut self) {
        if let Some(conn) = &self.conn {
            let _ = conn
                .client
                .execute(&sql::reopen("owner = $2"), &[&now_ms(), &self.me])
                .await;
            let _ = conn
                .client
                .execute("DELETE FROM poll_leases WHERE owner = $1", &[&self.me])
                .await;
            let _ = conn
                .client
                .execute("DELETE FROM replicas WHERE id = $1", &[&self.me])
                .await;
        }
    }
}

/// Whether this replica may poll `repository` now: only the replica rendezvous hashing prefers
/// among the live ones, and only once the lease is free, expired or its own. A replica that is
/// no longer preferred gives the lease up.
async fn poll_lease(
    c: &Client,
    me: &str,
    live: &[String],
    repository: &str,
) -> Result<bool, tokio_postgres::Error> {
    let alone = [me.to_owned()];
    let live = if live.is_empty() { &alone[..] } else { live };
    if sql::preferred(repository, live).map(String::as_str) != Some(me) {
        c.execute(
            "DELETE FROM poll_leases WHERE repository = $1 AND owner = $2",
            &[&repository, &me],
        )
        .await?;
        return Ok(false);
    }
    let lease = LEASE.as_millis() as i64;
    let rows = c
        .query(
            "INSERT INTO poll_leases (repository, owner, until_ms)
             VALUES ($1, $2, switchyard_now() + $3)
             ON CONFLICT (repository) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms
             WHERE poll_leases.owner = excluded.owner OR poll_leases.until_ms < switchyard_now()
             RETURNING owner",
            &[&repository, &me, &lease],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// The writer's connection: migrated, its statements prepared.
pub(super) async fn connect(url: &str) -> Result<Conn, StoreError> {
    let client = super::connect(url).await?;
    let st = Statements::prepare(&client)
        .await
        .map_err(|e| super::open_error(url, message(&e)))?;
    Ok(Conn {
        client,
        st,
        since: Instant::now(),
    })
}

/// Applies a batch's writes in one transaction: the advisory locks first, in key order, then
/// every write's statements, sent together, and one call that stores every intake of the
/// batch (the writes that have some get their outcomes from it).
///
/// When every write is one statement (intakes, plans, finishes, releases, probes: the intake
/// path), BEGIN, the locks, the statements and COMMIT go out together, in one round trip: the
/// locks are held for the database's work and the WAL flush, never across a round trip to this
/// process, which matters when replicas queue on one lock (pushes to one ref). A statement
/// that fails aborts the transaction, COMMIT then rolls it back, and the batch fails with that
/// statement's error: an answer is sent only after a commit that succeeded.
async fn apply<'a>(cx: &'a Cx<'a>, batch: &'a mut [Box<dyn Job>]) -> PgResult<()> {
    let durable = batch.iter().any(|job| job.durable());
    let mut keys = Vec::new();
    for job in batch.iter() {
        job.keys(&mut keys);
    }
    keys.sort_unstable();
    keys.dedup();
    let one_trip = batch.iter().all(|job| job.one_statement());
    let c = cx.c;
    // Claims, releases and leases need no flush: a lost one is reopened by its lease.
    let begin = if durable {
        "BEGIN"
    } else {
        "BEGIN; SET LOCAL synchronous_commit = off"
    };
    // Every write hands in its intakes as its step is made.
    let steps = try_join_all(batch.iter_mut().map(|job| job.step(cx)));
    let intakes = sql::intake_batch(c, cx.st, &cx.intakes, cx.now);
    if one_trip {
        // try_join! polls in order, and each future sends its statement when first polled.
        // It returns at the first error, that of the earliest statement that failed (answers
        // come in order); the futures it drops then include the writes waiting for the
        // intakes' outcomes, which never come after a failed call.
        futures_util::try_join!(
            c.batch_execute(begin),
            sql::lock(c, cx.st, &keys),
            steps,
            intakes,
            c.batch_execute("COMMIT"),
        )?;
        Ok(())
    } else {
        c.batch_execute(begin).await?;
        let applied = async {
            sql::lock(c, cx.st, &keys).await?;
            futures_util::try_join!(steps, intakes)?;
            c.batch_execute("COMMIT").await
        }
        .await;
        if applied.is_err() {
            let _ = c.batch_execute("ROLLBACK").await;
        }
        applied
    }
}

impl Apply for Intake {
    fn keys(&self, keys: &mut Vec<i64>) {
        sql::intake_keys(&self.request, keys);
    }

    fn one_statement(&self) -> bool {
        true
    }

    fn apply<'a>(&'a self, cx: &'a Cx<'a>) -> Step<'a, IntakeOutcome> {
        let outcome = cx.intakes.add(&self.request, &self.encoded);
        Box::pin(async move { Ok(outcome.await) })
    }
}

impl Apply for Poll {
    fn keys(&self, keys: &mut Vec<i64>) {
        for r in &self.batch.intakes {
            sql::intake_keys(r, keys);
        }
        keys.push(sql::cursor_key(&self.batch.repository));
    }

    fn apply<'a>(&'a self, cx: &'a Cx<'a>) -> Step<'a, Vec<IntakeOutcome>> {
        let outcomes = join_all(
            self.batch
                .intakes
                .iter()
                .zip(&self.encoded)
                .map(|(r, e)| cx.intakes.add(r, e)),
        );
        Box::pin(async move {
            // Within the transaction, before or after the intakes alike: no statement of
            // either reads what the other writes.
            sql::move_cursors(
                cx.c,
                cx.st,
                &self.batch.repository,
                &self.batch.cursors,
                cx.now,
            )
            .await?;
            Ok(outcomes.await)
        })
    }
}

impl Apply for Plan {
    fn keys(&self, keys: &mut Vec<i64>) {
        keys.push(sql::change_key(&self.event.id));
        sql::supersede_keys(&self.starts, &self.event.git_ref, keys);
    }

    fn one_statement(&self) -> bool {
        true
    }

    fn apply<'a>(&'a self, cx: &'a Cx<'a>) -> Step<'a, Option<Vec<String>>> {
        Box::pin(sql::plan(cx.c, cx.st, self, cx.now))
    }
}

impl Apply for PollLease {
    fn one_statement(&self) -> bool {
        true
    }

    fn apply<'a>(&'a self, cx: &'a Cx<'a>) -> Step<'a, bool> {
        Box::pin(poll_lease(cx.c, cx.me, cx.live, &self.repository))
    }
}

impl Apply for Claim {
    fn keys(&self, keys: &mut Vec<i64>) {
        keys.extend(
            self.wanted
                .iter()
                .filter(|w| !w.pipeline.is_empty())
                .map(|w| sql::pipeline_key(&w.pipeline)),
        );
    }

    fn claims(&self) -> Vec<String> {
        self.wanted.iter().map(|w| w.id.clone()).collect()
    }

    fn apply<'a>(&'a self, cx: &'a Cx<'a>) -> Step<'a, Vec<Claimed>> {
        Box::pin(sql::claim(
            cx.c,
            cx.st,
            &self.wanted,
            cx.me,
            cx.lease,
            cx.now,
        ))
    }
}

impl Apply for Record {
    fn one_statement(&self) -> bool {
        true
    }

    fn apply<'a>(&'a self, cx: &'a Cx<'a>) -> Step<'a, bool> {
        Box::pin(sql::finish(
            cx.c,
            cx.st,
            &self.id,
            &self.finish,
            cx.now,
            cx.me,
        ))
    }
}

impl Apply for Release {
    fn one_statement(&self) -> bool {
        true
    }

    fn apply<'a>(&'a self, cx: &'a Cx<'a>) -> Step<'a, ()> {
        Box::pin(sql::release(cx.c, cx.st, &self.ids, cx.now))
    }
}

impl Apply for Move {
    fn apply<'a>(&'a self, cx: &'a Cx<'a>) -> Step<'a, Result<StartRow, StoreError>> {
        Box::pin(sql::transition(cx.c, &self.id, self.to, cx.now))
    }
}

impl Apply for Replay {
    fn keys(&self, keys: &mut Vec<i64>) {
        keys.push(sql::change_key(&self.request.change_id));
    }

    fn apply<'a>(&'a self, cx: &'a Cx<'a>) -> Step<'a, Vec<Replayed>> {
        Box::pin(sql::replay(cx.c, &self.request, cx.now))
    }
}

impl Apply for Probe {
    fn one_statement(&self) -> bool {
        true
    }

    fn apply<'a>(&'a self, cx: &'a Cx<'a>) -> Step<'a, ()> {
        Box::pin(sql::probe(cx.c))
    }
}

impl Apply for OpenSession {
    fn apply<'a>(&'a self, cx: &'a Cx<'a>) -> Step<'a, ()> {
        Box::pin(sql::open_session(cx.c, &self.row, self.now_ms))
    }
}

impl Apply for EndSession {
    fn apply<'a>(&'a self, cx: &'a Cx<'a>) -> Step<'a, bool> {
        Box::pin(sql::end_session(cx.c, &self.id_hash))
    }
}

impl Apply for PruneDeliveries {
    fn apply<'a>(&'a self, cx: &'a Cx<'a>) -> Step<'a, usize> {
        Box::pin(sql::prune(cx.c, self.before_ms))
    }
}

impl Apply for PruneChanges {
    fn apply<'a>(&'a self, cx: &'a Cx<'a>) -> Step<'a, usize> {
        Box::pin(sql::prune_changes(cx.c, self.before_ms, cx.now))
    }
}
