//! The statements of each write and read (the writer's prepared once per connection), and the
//! lock keys a batch takes. The rules they serve are `store::rules`'.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;
use tokio_postgres::{Client, GenericClient, Row, Statement};

use crate::event::ChangeKind;
use crate::outcome::{DuplicateOf, IntakeOutcome, start_id};
use crate::store::intake::{Encoded, Plan};
use crate::store::rules::{self, decode_decisions};
use crate::store::{
    ChangeQuery, ChangeRecord, ClaimRequest, Claimed, Finish, IntakeRequest, PlannedStart, RefMove,
    ReplayRequest, Replayed, SessionRow, Sighting, StartRow, StartState, StoreError, Transition,
};

const START_COLUMNS: &str = "seq, id, change_id, pipeline, git_ref, state, attempts, next_attempt_ms, last_error, created_ms, updated_ms, run, replay";

/// Reopens running starts (to `pending`, or `failed` after an attempt) and frees them of their
/// replica, where `condition` holds; `$1` is the time. Used for a release, a lost claim, a
/// dead replica's expired leases and a replica that leaves.
pub(super) fn reopen(condition: &str) -> String {
    format!(
        "UPDATE starts SET state = CASE WHEN attempts > 0 THEN 'failed' ELSE 'pending' END,
             owner = NULL, lease_until_ms = NULL, updated_ms = $1
         WHERE state = 'running' AND {condition}"
    )
}

/// Every statement the backend runs often, prepared at connect.
pub(crate) struct Statements {
    lock: Statement,
    intake_batch: Statement,
    plan: Statement,
    finish: Statement,
    claim: Statement,
    release: Statement,
    cursor_set: Statement,
    cursor_remove: Statement,
}

impl Statements {
    pub(super) async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            lock: client
                .prepare("SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k")
                .await?,
            intake_batch: client
                .prepare(
                    "SELECT outcomes, change_ids FROM switchyard_intake_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
                )
                .await?,
            plan: client
                .prepare("SELECT switchyard_plan($1, $2, $3, $4, $5, $6, $7, $8)")
                .await?,
            finish: client
                .prepare(
                    "UPDATE starts SET state = $1, attempts = attempts + 1, next_attempt_ms = $2,
                         last_error = COALESCE($3, last_error), updated_ms = $4,
                         run = COALESCE($6, run), owner = NULL, lease_until_ms = NULL
                     WHERE id = $5 AND state IN ('pending', 'running', 'failed')
                       AND (owner IS NULL OR owner = $7)",
                )
                .await?,
            claim: client
                .prepare(
                    "WITH picked AS (
                        SELECT id FROM starts
                        WHERE id = ANY($1::text[]) AND state IN ('pending', 'failed')
                        ORDER BY seq
                        LIMIT GREATEST(0, $2::int8 - (SELECT count(*) FROM starts
                                                       WHERE pipeline = $3 AND state = 'running'))
                        FOR UPDATE SKIP LOCKED
                     )
                     UPDATE starts s SET state = 'running', owner = $4,
                         lease_until_ms = switchyard_now() + $5::int8, updated_ms = $6
                     FROM picked, changes c WHERE s.id = picked.id AND c.id = s.change_id
                     RETURNING s.id, c.event, c.traceparent",
                )
                .await?,
            release: client.prepare(&reopen("id = ANY($2::text[])")).await?,
            cursor_set: client
                .prepare(
                    "INSERT INTO cursors (repository, git_ref, sha, updated_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (repository, git_ref) DO UPDATE SET sha = excluded.sha, updated_ms = excluded.updated_ms",
                )
                .await?,
            cursor_remove: client
                .prepare("DELETE FROM cursors WHERE repository = $1 AND git_ref = $2")
                .await?,
        })
    }
}

impl Statements {
    /// The open starts: the first `$1` of each pipeline in intake order (what a reader
    /// prepares).
    pub(super) fn open_sql() -> String {
        format!(
            "WITH RECURSIVE p(name) AS (
                SELECT min(pipeline) FROM starts WHERE state IN ('pending', 'running', 'failed')
                UNION ALL
                SELECT (SELECT min(pipeline) FROM starts
                        WHERE state IN ('pending', 'running', 'failed') AND pipeline > p.name)
                FROM p WHERE p.name IS NOT NULL
             )
             SELECT s.* FROM p CROSS JOIN LATERAL (
                SELECT {START_COLUMNS} FROM starts
                WHERE pipeline = p.name AND state IN ('pending', 'running', 'failed')
                ORDER BY seq LIMIT $1
             ) s
             WHERE p.name IS NOT NULL ORDER BY s.seq"
        )
    }
}

/// A lock key: FNV-1a over a kind byte and the parts, so that every replica (and every
/// version) maps the same thing to the same key.
fn key(kind: u8, parts: &[&str]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    eat(kind);
    for part in parts {
        part.bytes().for_each(&mut eat);
        eat(0);
    }
    h as i64
}

/// The locks an intake needs: its change id, its delivery, its ref (the ref-state rule) and
/// each ref whose waiting starts it supersedes.
pub(super) fn intake_keys(req: &IntakeRequest, keys: &mut Vec<i64>) {
    let event = &req.event;
    keys.push(key(b'c', &[&event.id]));
    if let Some((receiver, delivery)) = &req.delivery {
        keys.push(key(b'd', &[receiver, delivery]));
    }
    if event.kind == ChangeKind::Push {
        keys.push(key(b'r', &[event.repository.as_str(), &event.git_ref]));
    }
    supersede_keys(&req.starts, &event.git_ref, keys);
}

pub(super) fn supersede_keys(starts: &[PlannedStart], git_ref: &str, keys: &mut Vec<i64>) {
    for s in starts.iter().filter(|s| s.supersede) {
        keys.push(key(b's', &[&s.pipeline, git_ref]));
    }
}

pub(super) fn change_key(id: &str) -> i64 {
    key(b'c', &[id])
}

pub(super) fn cursor_key(repository: &str) -> i64 {
    key(b'p', &[repository])
}

pub(super) fn pipeline_key(pipeline: &str) -> i64 {
    key(b'q', &[pipeline])
}

/// Rendezvous hashing: the replica that should poll `repository`.
pub(super) fn preferred<'a>(repository: &str, replicas: &'a [String]) -> Option<&'a String> {
    replicas.iter().max_by_key(|r| key(b'l', &[repository, r]))
}

/// Takes the locks, in ascending order.
pub(super) async fn lock(
    c: &impl GenericClient,
    st: &Statements,
    keys: &[i64],
) -> Result<(), tokio_postgres::Error> {
    if !keys.is_empty() {
        c.execute(&st.lock, &[&keys]).await?;
    }
    Ok(())
}

/// A change's planned starts as the functions take them: start ids, pipelines, supersede flags.
fn columns<'a>(
    change_id: &str,
    starts: &'a [PlannedStart],
) -> (Vec<String>, Vec<&'a str>, Vec<bool>) {
    (
        starts
            .iter()
            .map(|s| start_id(change_id, &s.pipeline))
            .collect(),
        starts.iter().map(|s| s.pipeline.as_str()).collect(),
        starts.iter().map(|s| s.supersede).collect(),
    )
}

/// The intakes of a batch's writes: each write hands its intakes in as it is applied, and one
/// call ([`intake_batch`]) stores them all, in the order handed in.
#[derive(Default)]
pub(crate) struct Intakes<'a> {
    handed: Mutex<Vec<Handed<'a>>>,
}

struct Handed<'a> {
    request: &'a IntakeRequest,
    encoded: &'a Encoded,
    reply: oneshot::Sender<IntakeOutcome>,
}

impl<'a> Intakes<'a> {
    /// Hands an intake in; its outcome comes once the batch's call answered. When the call
    /// failed none comes: the batch fails with the call's error, and its futures are dropped.
    pub(crate) fn add(
        &self,
        request: &'a IntakeRequest,
        encoded: &'a Encoded,
    ) -> impl Future<Output = IntakeOutcome> + Send + 'a {
        let (reply, outcome) = oneshot::channel();
        self.handed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Handed {
                request,
                encoded,
                reply,
            });
        async move {
            match outcome.await {
                Ok(outcome) => outcome,
                Err(_) => std::future::pending().await,
            }
        }
    }
}

/// Stores the intakes handed in so far with one call of `switchyard_intake_batch` (none when
/// there are none): the changes as arrays, one element each, and their planned starts
/// flattened, each with the position (from 1) of its change. Each intake's outcome goes back
/// to the write that handed it in.
pub(super) async fn intake_batch(
    c: &impl GenericClient,
    st: &Statements,
    intakes: &Intakes<'_>,
    now: i64,
) -> Result<(), tokio_postgres::Error> {
    let handed = std::mem::take(
        &mut *intakes
            .handed
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    if handed.is_empty() {
        return Ok(());
    }
    let n = handed.len();
    let mut receivers = Vec::with_capacity(n);
    let mut deliveries = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut repositories = Vec::with_capacity(n);
    let mut events = Vec::with_capacity(n);
    let mut received = Vec::with_capacity(n);
    let mut sources = Vec::with_capacity(n);
    let mut providers = Vec::with_capacity(n);
    let mut delivery_ids = Vec::with_capacity(n);
    let mut defer = Vec::with_capacity(n);
    let mut push_refs = Vec::with_capacity(n);
    let mut push_befores = Vec::with_capacity(n);
    let mut push_afters = Vec::with_capacity(n);
    let mut git_refs = Vec::with_capacity(n);
    let mut decisions = Vec::with_capacity(n);
    let mut traceparents = Vec::with_capacity(n);
    let mut start_of: Vec<i32> = Vec::new();
    let mut start_ids: Vec<String> = Vec::new();
    let mut start_pipelines: Vec<&str> = Vec::new();
    let mut start_supersede: Vec<bool> = Vec::new();
    for (i, h) in handed.iter().enumerate() {
        let (req, event) = (h.request, &h.request.event);
        let push = event.kind == ChangeKind::Push;
        let (receiver, delivery) = match &req.delivery {
            Some((r, d)) => (Some(r.as_str()), Some(d.as_str())),
            None => (None, None),
        };
        receivers.push(receiver);
        deliveries.push(delivery);
        ids.push(event.id.as_str());
        repositories.push(event.repository.as_str());
        events.push(h.encoded.event.as_str());
        received.push(event.received_at.as_millisecond());
        sources.push(event.source.kind.as_str());
        providers.push(event.source.provider.as_deref());
        delivery_ids.push(event.source.delivery_id.as_deref());
        defer.push(req.defer);
        push_refs.push(push.then_some(event.git_ref.as_str()));
        push_befores.push(push.then_some(event.before.as_str()));
        push_afters.push(push.then_some(event.after.as_str()));
        git_refs.push(event.git_ref.as_str());
        decisions.push(h.encoded.decisions.as_deref());
        traceparents.push(req.traceparent.as_deref());
        let (sids, pipelines, supersede) = columns(&event.id, &req.starts);
        start_of.extend(std::iter::repeat_n(i as i32 + 1, sids.len()));
        start_ids.extend(sids);
        start_pipelines.extend(pipelines);
        start_supersede.extend(supersede);
    }
    let row = c
        .query_one(
            &st.intake_batch,
            &[
                &receivers,
                &deliveries,
                &ids,
                &repositories,
                &events,
                &received,
                &sources,
                &providers,
                &delivery_ids,
                &defer,
                &push_refs,
                &push_befores,
                &push_afters,
                &git_refs,
                &decisions,
                &traceparents,
                &start_of,
                &start_ids,
                &start_pipelines,
                &start_supersede,
                &now,
            ],
        )
        .await?;
    let outcomes: Vec<&str> = row.get(0);
    let change_ids: Vec<String> = row.get(1);
    let mut starts = start_ids.into_iter();
    for ((h, outcome), change_id) in handed.into_iter().zip(outcomes).zip(change_ids) {
        let mine: Vec<String> = starts.by_ref().take(h.request.starts.len()).collect();
        let outcome = match outcome {
            "delivery" => IntakeOutcome::Duplicate {
                change_id,
                why: DuplicateOf::Delivery,
            },
            "change" => IntakeOutcome::Duplicate {
                change_id,
                why: DuplicateOf::Change,
            },
            _ => IntakeOutcome::Accepted {
                change_id,
                starts: if h.request.defer { Vec::new() } else { mine },
            },
        };
        // A write that stopped waiting (its batch timed out) is not told.
        let _ = h.reply.send(outcome);
    }
    Ok(())
}

pub(super) async fn plan(
    c: &impl GenericClient,
    st: &Statements,
    req: &Plan,
    now: i64,
) -> Result<Option<Vec<String>>, tokio_postgres::Error> {
    let (event, json) = (&req.event, &req.json);
    let (ids, pipelines, supersede) = columns(&event.id, &req.starts);
    let waiting: bool = c
        .query_one(
            &st.plan,
            &[
                &event.id,
                &json,
                &event.git_ref,
                &ids,
                &pipelines,
                &supersede,
                &now,
                &req.decisions,
            ],
        )
        .await?
        .get(0);
    Ok(waiting.then_some(ids))
}

pub(super) async fn move_cursors(
    c: &impl GenericClient,
    st: &Statements,
    repository: &str,
    moves: &[(String, Option<String>)],
    now: i64,
) -> Result<(), tokio_postgres::Error> {
    for (git_ref, sha) in moves {
        match sha {
            Some(sha) => {
                c.execute(&st.cursor_set, &[&repository, git_ref, sha, &now])
                    .await?
            }
            None => {
                c.execute(&st.cursor_remove, &[&repository, git_ref])
                    .await?
            }
        };
    }
    Ok(())
}

/// Records how an attempt of a start ended, unless the start is another replica's now (this
/// one lost its claim, in a partition or a pause, and another took the start over: its
/// outcome is the one recorded).
pub(super) async fn finish(
    c: &impl GenericClient,
    st: &Statements,
    id: &str,
    finish: &Finish,
    now: i64,
    me: &str,
) -> Result<bool, tokio_postgres::Error> {
    let o = finish.outcome(now);
    let n = c
        .execute(
            &st.finish,
            &[
                &o.state.as_str(),
                &o.next_attempt_ms,
                &o.error,
                &now,
                &id,
                &o.run,
                &me,
            ],
        )
        .await?;
    Ok(n > 0)
}

/// Claims, pipeline by pipeline (in the order of their locks), at most each pipeline's limit
/// minus what runs anywhere already.
pub(super) async fn claim(
    c: &impl GenericClient,
    st: &Statements,
    wanted: &[ClaimRequest],
    owner: &str,
    lease_ms: i64,
    now: i64,
) -> Result<Vec<Claimed>, tokio_postgres::Error> {
    let mut groups: BTreeMap<&str, (i64, Vec<&str>)> = BTreeMap::new();
    for w in wanted {
        let group = groups
            .entry(w.pipeline.as_str())
            .or_insert((i64::from(w.limit), Vec::new()));
        group.0 = group.0.min(i64::from(w.limit));
        group.1.push(w.id.as_str());
    }
    let mut claimed = Vec::with_capacity(wanted.len());
    for (pipeline, (limit, ids)) in groups {
        let rows = c
            .query(
                &st.claim,
                &[&ids, &limit, &pipeline, &owner, &lease_ms, &now],
            )
            .await?;
        claimed.extend(rows.into_iter().map(|r| Claimed {
            id: r.get(0),
            event: r.get(1),
            traceparent: r.get(2),
        }));
    }
    // In the order asked for, as the SQLite backend answers.
    claimed.sort_by_key(|c| wanted.iter().position(|w| w.id == c.id));
    Ok(claimed)
}

pub(super) async fn release(
    c: &impl GenericClient,
    st: &Statements,
    ids: &[String],
    now: i64,
) -> Result<(), tokio_postgres::Error> {
    c.execute(&st.release, &[&now, &ids]).await?;
    Ok(())
}

pub(super) fn row_to_start(row: &Row) -> StartRow {
    let state: &str = row.get(5);
    let attempts: i32 = row.get(6);
    StartRow {
        seq: row.get(0),
        id: row.get(1),
        change_id: row.get(2),
        pipeline: row.get(3),
        git_ref: row.get(4),
        state: StartState::read(state),
        attempts: attempts.max(0) as u32,
        next_attempt_ms: row.get(7),
        last_error: row.get(8),
        created_ms: row.get(9),
        updated_ms: row.get(10),
        run: row.get(11),
        replay: row.get::<_, i32>(12).max(0) as u32,
    }
}

pub(super) async fn open_starts(
    c: &Client,
    open: &Statement,
    window: u32,
) -> Result<Vec<StartRow>, tokio_postgres::Error> {
    let rows = c.query(open, &[&i64::from(window)]).await?;
    Ok(rows.iter().map(row_to_start).collect())
}

pub(super) async fn starts(
    c: &Client,
    states: &[StartState],
) -> Result<Vec<StartRow>, tokio_postgres::Error> {
    let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    let rows = c
        .query(
            &format!(
                "SELECT {START_COLUMNS} FROM starts
                 WHERE cardinality($1::text[]) = 0 OR state = ANY($1::text[]) ORDER BY seq"
            ),
            &[&states],
        )
        .await?;
    Ok(rows.iter().map(row_to_start).collect())
}

pub(super) async fn cursors(
    c: &Client,
    repository: &str,
) -> Result<BTreeMap<String, String>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT git_ref, sha FROM cursors WHERE repository = $1",
            &[&repository],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub(super) async fn unreported(
    c: &Client,
    m: &RefMove,
) -> Result<Option<String>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT push_before, push_after FROM changes
             WHERE repository = $1 AND push_ref = $2 ORDER BY seq DESC LIMIT $3",
            &[&m.repository, &m.git_ref, &i64::from(rules::CHAIN)],
        )
        .await?;
    let pushes: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(rules::unreported(&m.from, &m.to, &pushes))
}

pub(super) async fn deferred(c: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT event FROM changes WHERE pending_paths ORDER BY seq",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// One start by id, or by a unique prefix of at least 4 characters.
pub(super) async fn start(
    c: &impl GenericClient,
    id: &str,
) -> Result<Result<StartRow, StoreError>, tokio_postgres::Error> {
    let Some(pattern) = rules::start_pattern(id) else {
        return Ok(Err(StoreError::NoSuchStart(id.to_owned())));
    };
    let rows = c
        .query(
            &format!("SELECT {START_COLUMNS} FROM starts WHERE id LIKE $1 LIMIT 2"),
            &[&pattern],
        )
        .await?;
    Ok(rules::one_start(
        id,
        rows.iter().map(row_to_start).collect(),
    ))
}

/// Retries or drops a start, in one statement that checks its state again, so that a start
/// another replica finished meanwhile is never overwritten.
pub(super) async fn transition(
    c: &impl GenericClient,
    id: &str,
    to: Transition,
    now: i64,
) -> Result<Result<StartRow, StoreError>, tokio_postgres::Error> {
    let row = match start(c, id).await?.and_then(|row| to.check(row)) {
        Ok(row) => row,
        Err(e) => return Ok(Err(e)),
    };
    let from: Vec<&str> = to.from().iter().map(|s| s.as_str()).collect();
    let changed = c
        .execute(
            "UPDATE starts SET state = $1, updated_ms = $2,
                 attempts = CASE WHEN $3 THEN 0 ELSE attempts END,
                 next_attempt_ms = CASE WHEN $3 THEN $2 ELSE next_attempt_ms END
             WHERE id = $4 AND state = ANY($5::text[])",
            &[
                &to.to().as_str(),
                &now,
                &to.resets_attempts(),
                &row.id,
                &from,
            ],
        )
        .await?;
    let after = start(c, &row.id).await?;
    // Nothing changed: another replica moved the start meanwhile; say where it is now.
    Ok(match after {
        Ok(after) if changed == 0 => Err(to.refused(after)),
        after => after,
    })
}

/// Checks that a change could be stored now: writes and removes a row the size of a large
/// change event.
pub(super) async fn probe(c: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    c.batch_execute(
        "INSERT INTO deliveries (receiver, delivery_id, seen_ms)
         VALUES ('', repeat(md5(random()::text), 128), 0);
         DELETE FROM deliveries WHERE receiver = '';",
    )
    .await
}

pub(super) async fn prune(
    c: &impl GenericClient,
    before_ms: i64,
) -> Result<usize, tokio_postgres::Error> {
    let n = c
        .execute("DELETE FROM deliveries WHERE seen_ms < $1", &[&before_ms])
        .await?;
    Ok(n as usize)
}

const CHANGE_COLUMNS: &str = "c.seq, c.id, c.repository, c.event, c.received_ms, c.source, c.provider, c.delivery_id, c.decisions, c.pending_paths, c.traceparent";

/// A change row, before its other sightings and its starts are read.
fn row_to_change(row: &Row) -> ChangeRecord {
    let decisions: Option<&str> = row.get(8);
    ChangeRecord {
        seq: row.get(0),
        id: row.get(1),
        repository: row.get(2),
        event: row.get(3),
        received_ms: row.get(4),
        sightings: vec![Sighting {
            source: row.get(5),
            provider: row.get(6),
            delivery_id: row.get(7),
            at_ms: row.get(4),
        }],
        decisions: decisions.and_then(decode_decisions),
        deferred: row.get(9),
        traceparent: row.get(10),
        starts: Vec::new(),
    }
}

/// Adds the changes' later sightings and their starts (two statements for all of them).
async fn complete_changes(
    c: &Client,
    changes: &mut [ChangeRecord],
) -> Result<(), tokio_postgres::Error> {
    let ids: Vec<String> = changes.iter().map(|c| c.id.clone()).collect();
    let starts_sql = format!(
        "SELECT {START_COLUMNS} FROM starts WHERE change_id = ANY($1::text[]) ORDER BY seq"
    );
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&ids];
    let (sightings, starts) = futures_util::join!(
        c.query(
            "SELECT change_id, source, provider, delivery_id, first_seen_ms FROM sightings
             WHERE change_id = ANY($1::text[]) ORDER BY first_seen_ms, seq",
            &params,
        ),
        c.query(&starts_sql, &params),
    );
    let at: std::collections::HashMap<String, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.clone(), i))
        .collect();
    for row in sightings? {
        let id: &str = row.get(0);
        if let Some(change) = at.get(id).map(|&i| &mut changes[i]) {
            change.sightings.push(Sighting {
                source: row.get(1),
                provider: row.get(2),
                delivery_id: row.get(3),
                at_ms: row.get(4),
            });
        }
    }
    for row in starts? {
        let start = row_to_start(&row);
        if let Some(&i) = at.get(&start.change_id) {
            changes[i].starts.push(start);
        }
    }
    Ok(())
}

pub(super) async fn changes(
    c: &Client,
    q: &ChangeQuery,
) -> Result<Vec<ChangeRecord>, tokio_postgres::Error> {
    let rows = c
        .query(
            &format!(
                "SELECT {CHANGE_COLUMNS} FROM changes c
                 WHERE ($1::text IS NULL OR c.repository = $1)
                   AND ($2::int8 IS NULL OR c.received_ms >= $2)
                   AND ($3::text IS NULL
                        OR EXISTS (SELECT 1 FROM starts s WHERE s.change_id = c.id AND s.pipeline = $3)
                        OR EXISTS (SELECT 1 FROM jsonb_array_elements(c.decisions::jsonb) d
                                   WHERE d->>0 = $3::text))
                   AND ($5::int8 IS NULL OR c.seq < $5)
                 ORDER BY c.seq DESC LIMIT $4"
            ),
            &[
                &q.repository,
                &q.since_ms,
                &q.pipeline,
                &i64::from(q.limit),
                &q.before_seq,
            ],
        )
        .await?;
    let mut out: Vec<ChangeRecord> = rows.iter().map(row_to_change).collect();
    complete_changes(c, &mut out).await?;
    Ok(out)
}

/// One change by id or by a unique prefix of at least 4 characters.
pub(super) async fn find_change(
    c: &Client,
    id: &str,
) -> Result<Result<ChangeRecord, StoreError>, tokio_postgres::Error> {
    if let Err(e) = rules::change_prefix(id) {
        return Ok(Err(e));
    }
    let rows = c
        .query(
            &format!(
                "SELECT {CHANGE_COLUMNS} FROM changes c WHERE c.id = $1 OR c.id LIKE $2
                 ORDER BY c.id = $1 DESC, c.seq DESC LIMIT $3"
            ),
            &[&id, &format!("{id}%"), &(rules::CANDIDATES as i64 + 1)],
        )
        .await?;
    let found = rows.iter().map(row_to_change).collect();
    Ok(match rules::one_change(id, found, |c| c.id.as_str()) {
        Ok(change) => {
            let mut one = [change];
            complete_changes(c, &mut one).await?;
            let [change] = one;
            Ok(change)
        }
        Err(e) => Err(e),
    })
}

/// Adds a start per pipeline unless the change has one of it that is waiting, running or
/// succeeded (the caller holds the change's lock).
pub(super) async fn replay(
    c: &impl GenericClient,
    req: &ReplayRequest,
    now: i64,
) -> Result<Vec<Replayed>, tokio_postgres::Error> {
    let mut out = Vec::with_capacity(req.pipelines.len());
    for pipeline in &req.pipelines {
        let rows: Vec<(String, String, u32)> = c
            .query(
                "SELECT id, state, replay FROM starts WHERE change_id = $1 AND pipeline = $2
                 ORDER BY replay DESC",
                &[&req.change_id, pipeline],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get::<_, i32>(2).max(0) as u32))
            .collect();
        let replayed = rules::replayed(&req.change_id, pipeline, &rows);
        if let Some(n) = replayed.replay {
            c.execute(
                "INSERT INTO starts (id, change_id, pipeline, git_ref, state, attempts, next_attempt_ms, created_ms, updated_ms, replay)
                 VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $5, $6)",
                &[&replayed.start_id, &req.change_id, pipeline, &req.git_ref, &now, &(n as i32)],
            )
            .await?;
        }
        out.push(replayed);
    }
    Ok(out)
}

/// Forgets changes received before `before_ms` whose starts are all finished (and that are
/// not waiting for their paths), with their sightings and starts; how many changes.
///
/// As on SQLite, no index on the age: each prune marks the newest change, and a prune
/// considers only the changes up to the newest mark made before `before_ms`.
pub(super) async fn prune_changes(
    c: &impl GenericClient,
    before_ms: i64,
    now: i64,
) -> Result<usize, tokio_postgres::Error> {
    c.execute(
        "INSERT INTO prune_marks (at_ms, seq) SELECT $1, COALESCE(max(seq), 0) FROM changes",
        &[&now],
    )
    .await?;
    let upto: Option<i64> = c
        .query_one(
            "SELECT max(seq) FROM prune_marks WHERE at_ms <= $1",
            &[&before_ms],
        )
        .await?
        .get(0);
    let Some(upto) = upto else { return Ok(0) };
    c.execute(
        "DELETE FROM prune_marks WHERE at_ms <= $1 AND seq < $2",
        &[&before_ms, &upto],
    )
    .await?;
    let rows = c
        .query(
            "WITH doomed AS (
                SELECT c.id FROM changes c
                WHERE c.seq <= $2 AND c.received_ms < $1 AND NOT c.pending_paths
                  AND NOT EXISTS (SELECT 1 FROM starts s WHERE s.change_id = c.id
                                  AND s.state IN ('pending', 'running', 'failed'))
                FOR UPDATE SKIP LOCKED
             ), gone_starts AS (
                DELETE FROM starts WHERE change_id IN (SELECT id FROM doomed)
             ), gone_sightings AS (
                DELETE FROM sightings WHERE change_id IN (SELECT id FROM doomed)
             )
             SELECT id FROM doomed",
            &[&before_ms, &upto],
        )
        .await?;
    let ids: Vec<&str> = rows.iter().map(|r| r.get(0)).collect();
    let n = c
        .execute("DELETE FROM changes WHERE id = ANY($1::text[])", &[&ids])
        .await?;
    Ok(n as usize)
}

/// The stored session whose id has this digest.
pub(super) async fn session(
    c: &Client,
    id_hash: &str,
) -> Result<Option<SessionRow>, tokio_postgres::Error> {
    let row = c
        .query_opt(
            "SELECT token_mac, expires_ms FROM sessions WHERE id_hash = $1",
            &[&id_hash],
        )
        .await?;
    Ok(row.map(|r| SessionRow {
        id_hash: id_hash.to_owned(),
        token_mac: r.get(0),
        expires_ms: r.get(1),
    }))
}

/// Stores a session, forgetting those that ended before `now_ms`.
pub(super) async fn open_session(
    c: &impl GenericClient,
    row: &SessionRow,
    now_ms: i64,
) -> Result<(), tokio_postgres::Error> {
    c.execute("DELETE FROM sessions WHERE expires_ms < $1", &[&now_ms])
        .await?;
    c.execute(
        "INSERT INTO sessions (id_hash, token_mac, expires_ms) VALUES ($1, $2, $3)
         ON CONFLICT (id_hash) DO UPDATE SET token_mac = EXCLUDED.token_mac, expires_ms = EXCLUDED.expires_ms",
        &[&row.id_hash, &row.token_mac, &row.expires_ms],
    )
    .await?;
    Ok(())
}

/// Forgets a session; whether there was one.
pub(super) async fn end_session(
    c: &impl GenericClient,
    id_hash: &str,
) -> Result<bool, tokio_postgres::Error> {
    Ok(
        c.execute("DELETE FROM sessions WHERE id_hash = $1", &[&id_hash])
            .await?
            > 0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_distinct_by_kind() {
        assert_eq!(key(b'c', &["abc"]), key(b'c', &["abc"]));
        assert_ne!(key(b'c', &["abc"]), key(b'd', &["abc"]));
        // Parts are separated: ("ab", "c") is not ("a", "bc").
        assert_ne!(key(b'r', &["ab", "c"]), key(b'r', &["a", "bc"]));
        // A fixed value: replicas of different builds must agree.
        assert_eq!(key(b'c', &[]), {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            h ^= u64::from(b'c');
            h = h.wrapping_mul(0x0100_0000_01b3);
            h as i64
        });
    }

    #[test]
    fn repositories_spread_over_replicas_and_move_only_from_a_gone_one() {
        let three: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let two: Vec<String> = ["a", "c"].map(String::from).to_vec();
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for i in 0..300 {
            let repo = format!("repo-{i}");
            let owner = preferred(&repo, &three).expect("owner");
            *per.entry(owner.as_str()).or_default() += 1;
            let after = preferred(&repo, &two).expect("owner");
            if owner != "b" {
                assert_eq!(owner, after, "{repo} moved though its replica stayed");
            }
        }
        assert!(per.values().all(|&n| n > 60), "{per:?}");
    }
}
