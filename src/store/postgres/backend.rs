//! The backend thread: one connection, the commands waiting at a moment applied in one
//! transaction (after taking their advisory locks in key order), reads answered after the
//! commit; and, for `serve`, a heartbeat every [`HEARTBEAT`] that renews this replica's leases
//! and reopens the starts of replicas whose leases ran out.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::Notify;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient};

use super::sql::{self, Statements};
use super::{describe, message, parse, schema, tls};
use crate::store::{Command, Done, Role, StoreError, now_ms};

/// Commands committed in one transaction at most.
const MAX_BATCH: usize = 1024;
/// How often a `serve` replica renews its leases and looks for expired ones.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a claimed start or a polled repository stays a replica's without a renewal: the
/// time a dead replica's work waits before another takes it over.
pub(super) const LEASE: Duration = Duration::from_secs(5);
/// A batch that takes longer than this is abandoned (and its connection with it): its
/// requests fail instead of hanging on a database that stopped answering.
const BATCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Times a batch is run again after PostgreSQL broke a deadlock by rolling it back.
const RETRIES: u32 = 5;

pub(super) struct Conn {
    pub(super) client: Client,
    st: Statements,
    /// When it connected: a replica judges others' leases only a [`LEASE`] later.
    since: Instant,
}

struct Backend {
    url: String,
    new_work: Arc<Notify>,
    conn: Option<Conn>,
    /// This process's name in `starts.owner`, `poll_leases` and `replicas`.
    me: String,
    /// The replicas alive at the last heartbeat (this one included), by id.
    live: Vec<String>,
    /// When the last connection attempt failed: the next waits a little.
    failed_at: Option<Instant>,
    /// Starts of claims whose batch failed without an answer the backend can trust (the
    /// connection broke or timed out, perhaps after the commit): the dispatcher was told they
    /// failed and runs none of them, so they are given back before anything else is written.
    unsure: Vec<String>,
}

type Step<'a> = Pin<Box<dyn Future<Output = Result<Done, tokio_postgres::Error>> + Send + 'a>>;

/// Answers the commands of `rx` until every sender is gone.
pub(super) fn run(url: String, role: Role, rx: mpsc::Receiver<Command>, new_work: Arc<Notify>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the store's runtime");
            return;
        }
    };
    let mut backend = Backend {
        url,
        new_work,
        conn: None,
        me: replica_name(),
        live: Vec::new(),
        failed_at: None,
        unsure: Vec::new(),
    };
    let mut batch: Vec<Command> = Vec::with_capacity(64);
    let mut next_beat = Instant::now();
    loop {
        let wait = if role == Role::Serve {
            next_beat.saturating_duration_since(Instant::now())
        } else {
            Duration::from_secs(3600)
        };
        match rx.recv_timeout(wait) {
            Ok(first) => {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(cmd) => batch.push(cmd),
                        Err(_) => break,
                    }
                }
                runtime.block_on(backend.handle(&mut batch));
                batch.clear();
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if role == Role::Serve && Instant::now() >= next_beat {
            runtime.block_on(backend.heartbeat());
            next_beat = Instant::now() + HEARTBEAT;
        }
    }
    runtime.block_on(backend.leave());
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

impl Backend {
    async fn ensure_open(&mut self) -> Result<(), StoreError> {
        if self.conn.is_some() {
            return Ok(());
        }
        // A database that refused a moment ago is asked again at most ten times a second.
        if let Some(at) = self.failed_at
            && at.elapsed() < Duration::from_millis(100)
        {
            tokio::time::sleep(Duration::from_millis(100) - at.elapsed()).await;
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
                self.failed_at = Some(Instant::now());
                Err(e)
            }
        }
    }

    /// Forgets a connection that failed; the next batch connects again.
    fn drop_connection(&mut self, why: &str) {
        if self.conn.take().is_some() {
            tracing::warn!(database = %describe(&self.url), error = why, "the database connection failed; reconnecting");
        }
    }

    async fn handle(&mut self, batch: &mut Vec<Command>) {
        if let Err(e) = self.ensure_open().await {
            tracing::error!(error = %e, "store unavailable");
            self.forget_claims(batch);
            batch.drain(..).for_each(|cmd| cmd.fail(&e));
            return;
        }
        if let Err(e) = self.give_back_unsure().await {
            self.forget_claims(batch);
            batch.drain(..).for_each(|cmd| cmd.fail(&e));
            return;
        }
        let mut tries = 0;
        let result = loop {
            let result = match self.conn.as_mut() {
                Some(conn) => {
                    match tokio::time::timeout(BATCH_TIMEOUT, apply(conn, &self.me, batch)).await {
                        Ok(result) => result.map_err(|e| (retryable(&e), message(&e))),
                        Err(_) => Err((false, "the database did not answer in time".to_owned())),
                    }
                }
                None => Err((false, "the store is closed".to_owned())),
            };
            match result {
                Err((true, why)) if tries < RETRIES => {
                    tries += 1;
                    tracing::debug!(error = %why, tries, "batch rolled back by the database; running it again");
                }
                other => break other,
            }
        };
        match result {
            Ok((done, woke)) => {
                if woke {
                    self.new_work.notify_one();
                }
                self.reply_all(batch, done).await;
            }
            Err((_, why)) => {
                tracing::error!(error = %why, batch = batch.len(), "store write failed; nothing in this batch was acknowledged");
                let err = StoreError::Write(why.clone());
                self.forget_claims(batch);
                batch.drain(..).for_each(|cmd| cmd.fail(&err));
                self.drop_connection(&why);
            }
        }
    }

    /// The claims of a batch that is about to fail: whether or not they committed, the
    /// dispatcher will not run them, so they must not stay this replica's.
    fn forget_claims(&mut self, batch: &[Command]) {
        for cmd in batch {
            if let Command::Claim(wanted, _) = cmd {
                self.unsure.extend(wanted.iter().map(|w| w.id.clone()));
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

    /// Answers every command of a committed batch; reads run now, after the commit.
    async fn reply_all(&mut self, batch: &mut Vec<Command>, done: Vec<Done>) {
        let read = |e: tokio_postgres::Error| StoreError::Read(message(&e));
        let mut broken = None;
        for (cmd, d) in batch.drain(..).zip(done) {
            let Some(conn) = self.conn.as_ref() else {
                cmd.fail(&StoreError::Closed);
                continue;
            };
            let c = &conn.client;
            let mut note = |r: Result<(), &tokio_postgres::Error>| {
                if let Err(e) = r
                    && c.is_closed()
                {
                    broken = Some(message(e));
                }
            };
            match cmd.answer(d) {
                Some(Command::Cursors(repository, reply)) => {
                    let r = sql::cursors(c, &repository).await;
                    note(r.as_ref().map(|_| ()));
                    drop(reply.send(r.map_err(read)));
                }
                Some(Command::Unreported(m, reply)) => {
                    let r = sql::unreported(c, &m).await;
                    note(r.as_ref().map(|_| ()));
                    drop(reply.send(r.map_err(read)));
                }
                Some(Command::Deferred(reply)) => {
                    let r = sql::deferred(c).await;
                    note(r.as_ref().map(|_| ()));
                    drop(reply.send(r.map_err(read)));
                }
                Some(Command::Open { window, reply }) => {
                    let r = sql::open_starts(c, &conn.st, window).await;
                    note(r.as_ref().map(|_| ()));
                    drop(reply.send(r.map_err(read)));
                }
                Some(Command::Starts(states, reply)) => {
                    let r = sql::starts(c, &states).await;
                    note(r.as_ref().map(|_| ()));
                    drop(reply.send(r.map_err(read)));
                }
                Some(Command::Changes(query, reply)) => {
                    let r = sql::changes(c, &query).await;
                    note(r.as_ref().map(|_| ()));
                    drop(reply.send(r.map_err(read)));
                }
                Some(Command::Change(id, reply)) => {
                    let r = sql::find_change(c, &id).await;
                    note(r.as_ref().map(|_| ()));
                    drop(reply.send(r.map_err(read).and_then(|r| r)));
                }
                Some(Command::PollLease(repository, reply)) => {
                    let r = poll_lease(c, &self.me, &self.live, &repository).await;
                    note(r.as_ref().map(|_| ()));
                    drop(reply.send(r.map_err(read)));
                }
                Some(other) => other.fail(&StoreError::Read("internal: not a read".into())),
                None => {}
            }
        }
        if let Some(why) = broken {
            self.drop_connection(&why);
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
            Err(_) => self.drop_connection("the heartbeat timed out"),
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

pub(super) async fn connect(url: &str) -> Result<Conn, StoreError> {
    let fail = |message: String| StoreError::Open {
        path: describe(url),
        message,
    };
    let (mut config, root_cert) = parse(url).map_err(fail)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config.application_name("switchyard");
    let tls = tls(root_cert.as_deref()).map_err(fail)?;
    let (client, connection) = config
        .connect(tls)
        .await
        .map_err(|e| fail(format!("cannot connect: {}", message(&e))))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "database connection ended");
        }
    });
    schema::migrate(&client).await.map_err(fail)?;
    let st = Statements::prepare(&client)
        .await
        .map_err(|e| fail(message(&e)))?;
    Ok(Conn {
        client,
        st,
        since: Instant::now(),
    })
}

/// Applies a batch's writes in one transaction: the advisory locks first, in key order, then
/// every command's statements, sent together. Returns what each produced and whether new work
/// was created.
///
/// When every command is one statement (intakes, plans, finishes, releases, probes: the
/// intake path), BEGIN, the locks, the statements and COMMIT go out together, in one round
/// trip: the locks are held for the database's work and the WAL flush, never across a round
/// trip to this process, which matters when replicas queue on one lock (pushes to one ref).
/// A statement that fails aborts the transaction, COMMIT then rolls it back, and the batch
/// fails with that statement's error: an answer is still sent only after a commit that
/// succeeded.
async fn apply(
    conn: &mut Conn,
    me: &str,
    batch: &[Command],
) -> Result<(Vec<Done>, bool), tokio_postgres::Error> {
    if batch.iter().all(Command::is_read) {
        return Ok((batch.iter().map(|_| Done::Read).collect(), false));
    }
    let now = now_ms();
    let durable = batch.iter().any(Command::needs_durability);
    let mut keys = Vec::new();
    for cmd in batch {
        match cmd {
            Command::Intake(req, _) => sql::intake_keys(&req.0, &mut keys),
            Command::Poll(req, _) => {
                for r in &req.0.intakes {
                    sql::intake_keys(r, &mut keys);
                }
                keys.push(sql::cursor_key(&req.0.repository));
            }
            Command::Plan(req, _) => {
                keys.push(sql::change_key(&req.event.id));
                sql::supersede_keys(&req.starts, &req.event.git_ref, &mut keys);
            }
            Command::Replay(req, _) => keys.push(sql::change_key(&req.change_id)),
            Command::Claim(wanted, _) => keys.extend(
                wanted
                    .iter()
                    .filter(|w| !w.pipeline.is_empty())
                    .map(|w| sql::pipeline_key(&w.pipeline)),
            ),
            _ => {}
        }
    }
    keys.sort_unstable();
    keys.dedup();
    let lease = LEASE.as_millis() as i64;
    let Conn { client, st, .. } = conn;
    let done = if batch.iter().all(one_statement) {
        let c = &*client;
        // Claims and releases need no flush: a lost one is reopened by its lease.
        let begin = if durable {
            "BEGIN"
        } else {
            "BEGIN; SET LOCAL synchronous_commit = off"
        };
        // join! polls in order, and each future sends its statement when first polled.
        let (begun, locked, done, committed) = futures_util::join!(
            c.batch_execute(begin),
            sql::lock(c, st, &keys),
            join_all(steps(c, st, me, batch, lease, now)),
            c.batch_execute("COMMIT"),
        );
        begun?;
        locked?;
        let done = done.into_iter().collect::<Result<Vec<_>, _>>()?;
        committed?;
        done
    } else {
        let tx = client.transaction().await?;
        if !durable {
            // Claims and releases need no flush: a lost one is reopened by its lease.
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .await?;
        }
        sql::lock(&tx, st, &keys).await?;
        let done = join_all(steps(&tx, st, me, batch, lease, now))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        done
    };
    let woke = done.iter().any(Done::woke);
    Ok((done, woke))
}

/// Whether a command's writes are one statement, sent at once (or it writes nothing): then a
/// batch of such commands needs no round trip inside its transaction.
fn one_statement(cmd: &Command) -> bool {
    cmd.is_read()
        || matches!(
            cmd,
            Command::Intake(..)
                | Command::Plan(..)
                | Command::Finish(..)
                | Command::Release(..)
                | Command::Probe(..)
        )
}

/// Each command's statements, as futures that send them when first polled.
fn steps<'a, C>(
    c: &'a C,
    st: &'a Statements,
    me: &'a str,
    batch: &'a [Command],
    lease: i64,
    now: i64,
) -> Vec<Step<'a>>
where
    C: GenericClient + Sync,
{
    batch
        .iter()
        .map(|cmd| -> Step<'a> {
            match cmd {
                Command::Intake(req, _) => Box::pin(async move {
                    Ok(Done::Intake(sql::intake(c, st, &req.0, &req.1, now).await?))
                }),
                Command::Poll(req, _) => Box::pin(async move {
                    let (batch, json) = &**req;
                    let outcomes = join_all(
                        batch
                            .intakes
                            .iter()
                            .zip(json)
                            .map(|(r, j)| sql::intake(c, st, r, j, now)),
                    )
                    .await
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()?;
                    sql::move_cursors(c, st, &batch.repository, &batch.cursors, now).await?;
                    Ok(Done::Poll(outcomes))
                }),
                Command::Plan(req, _) => {
                    Box::pin(async move { Ok(Done::Plan(sql::plan(c, st, req, now).await?)) })
                }
                Command::Replay(req, _) => {
                    Box::pin(async move { Ok(Done::Replay(sql::replay(c, req, now).await?)) })
                }
                Command::PruneChanges { before_ms, .. } => Box::pin(async move {
                    Ok(Done::Prune(sql::prune_changes(c, *before_ms, now).await?))
                }),
                Command::Finish(id, finish, _) => {
                    Box::pin(
                        async move { Ok(Done::Finish(sql::finish(c, st, id, finish, now).await?)) },
                    )
                }
                Command::Claim(wanted, _) => Box::pin(async move {
                    Ok(Done::Claim(
                        sql::claim(c, st, wanted, me, lease, now).await?,
                    ))
                }),
                Command::Release(ids, _) => Box::pin(async move {
                    sql::release(c, st, ids, now).await?;
                    Ok(Done::Released)
                }),
                Command::Probe(_) => Box::pin(async move {
                    sql::probe(c).await?;
                    Ok(Done::Unit)
                }),
                Command::Prune {
                    deliveries_before_ms,
                    ..
                } => {
                    Box::pin(
                        async move { Ok(Done::Prune(sql::prune(c, *deliveries_before_ms).await?)) },
                    )
                }
                Command::Transition(id, to, _) => Box::pin(async move {
                    Ok(Done::Transition(sql::transition(c, id, *to, now).await?))
                }),
                _ => Box::pin(async { Ok(Done::Read) }),
            }
        })
        .collect()
}
