//! Store tests: the store against an in-memory model under random operation sequences, and unit
//! tests for group commit, wake-ups, schema versions and an unavailable state directory.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Waker};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rusqlite::Connection;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

use super::{Admin, DB_FILE, MIGRATIONS};
use crate::event::{ChangeEvent, Source, SourceKind, ZERO_SHA};
use crate::outcome::{DuplicateOf, IntakeOutcome, start_id};
use crate::store::{
    Finish, IntakeRequest, PlannedStart, Role, StartRow, StartState, Store, StoreError,
};

const REPOS: [&str; 2] = ["https://github.com/acme/api", "https://github.com/acme/web"];
const SHA1: &str = "1111111111111111111111111111111111111111";
const SHA2: &str = "2222222222222222222222222222222222222222";
const SHA3: &str = "3333333333333333333333333333333333333333";
/// (ref, before, after): two pushes on `main` (so `supersede` has something to replace) and
/// the creation of `dev`.
const PUSHES: [(&str, &str, &str); 3] = [
    ("refs/heads/main", SHA1, SHA2),
    ("refs/heads/main", SHA2, SHA3),
    ("refs/heads/dev", ZERO_SHA, SHA1),
];
/// Events of the pool: `REPOS` x `PUSHES`.
const EVENTS: usize = 6;
const KINDS: [SourceKind; 3] = [
    SourceKind::Webhook,
    SourceKind::Eventbridge,
    SourceKind::Poll,
];
const PIPELINES: [&str; 3] = ["a", "b", "c"];
const RECEIVER: &str = "r";
const DELIVERIES: [&str; 4] = ["d0", "d1", "d2", "d3"];
/// `received_at` of the first step; step n arrives n ms later, so sightings have an order.
const BASE_MS: i64 = 1_790_000_000_000;
/// An id no start has (not even as a prefix: starts ids are hex).
const UNKNOWN: &str = "zz-no-such-start";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn manual() -> Source {
    Source {
        kind: SourceKind::Manual,
        provider: None,
        delivery_id: None,
    }
}

/// A push event, built the way producers write it.
fn push_event(
    repo: &str,
    (git_ref, before, after): (&str, &str, &str),
    kind: SourceKind,
    received_ms: i64,
) -> ChangeEvent {
    let json = format!(
        r#"{{"schema":"switchyard.change/v1","repository":"{repo}","kind":"push",
        "ref":"{git_ref}","before":"{before}","after":"{after}","changed_paths":[],
        "pull_request":null,"source":{{"kind":"{kind}","provider":"github","delivery_id":null}}}}"#
    );
    let mut event =
        ChangeEvent::from_json(json.as_bytes(), manual()).expect("the test events are valid");
    event.received_at =
        jiff::Timestamp::from_millisecond(received_ms).expect("a representable timestamp");
    event
}

/// Event `e` of the pool.
fn pool_event(e: usize, kind: SourceKind, received_ms: i64) -> ChangeEvent {
    push_event(REPOS[e / 3], PUSHES[e % 3], kind, received_ms)
}

/// A distinct push per `n`, on `main` of the first repository.
fn numbered_event(n: u64, kind: SourceKind) -> ChangeEvent {
    let after = format!("{:040x}", n + 1);
    push_event(
        REPOS[0],
        ("refs/heads/main", SHA1, after.as_str()),
        kind,
        BASE_MS,
    )
}

fn request(event: ChangeEvent, delivery: Option<&str>, pipelines: &[&str]) -> IntakeRequest {
    IntakeRequest {
        event,
        delivery: delivery.map(|d| (RECEIVER.to_owned(), d.to_owned())),
        starts: pipelines
            .iter()
            .map(|p| PlannedStart {
                pipeline: (*p).to_owned(),
                supersede: false,
            })
            .collect(),
        defer: false,
    }
}

/// Makes every write of a start of pipeline `refused` fail inside the writer's transaction.
fn refuse_pipeline_refused(state_dir: &Path) {
    Connection::open(state_dir.join(DB_FILE))
        .expect("a direct connection")
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON starts WHEN NEW.pipeline = 'refused'
             BEGIN SELECT RAISE(ABORT, 'pipeline refused by the test'); END;",
        )
        .expect("create the trigger");
}

/// Polls a future once without a runtime: whether it is ready now.
fn ready_now<F: Future>(fut: Pin<&mut F>) -> bool {
    fut.poll(&mut Context::from_waker(Waker::noop())).is_ready()
}

/// Whether `notify` holds a permit now (consuming it).
fn notified_now(notify: &Notify) -> bool {
    ready_now(pin!(notify.notified()))
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// What the model knows of a start.
#[derive(Clone, Debug, PartialEq)]
struct ModelStart {
    id: String,
    change_id: String,
    pipeline: String,
    git_ref: String,
    state: StartState,
    attempts: u32,
    last_error: Option<String>,
    /// While failed: the retry time `Finish::Retry` asked for (other times are the clock's).
    retry_at: Option<i64>,
}

/// The store as it should be: starts in intake order, changes as first accepted, the first
/// sighting per (change, source), the delivery ids seen.
#[derive(Debug, Default)]
struct Model {
    starts: Vec<ModelStart>,
    changes: BTreeMap<String, ChangeEvent>,
    sightings: BTreeMap<String, Vec<(String, i64)>>,
    deliveries: BTreeSet<(String, String)>,
}

impl Model {
    fn intake(&mut self, req: &IntakeRequest) -> IntakeOutcome {
        let event = &req.event;
        let change_id = event.id.clone();
        if let Some(delivery) = &req.delivery
            && !self.deliveries.insert(delivery.clone())
        {
            return IntakeOutcome::Duplicate {
                change_id,
                why: DuplicateOf::Delivery,
            };
        }
        let seen = self.sightings.entry(change_id.clone()).or_default();
        let source = event.source.kind.to_string();
        if !seen.iter().any(|(s, _)| *s == source) {
            seen.push((source, event.received_at.as_millisecond()));
        }
        if self.changes.contains_key(&change_id) {
            return IntakeOutcome::Duplicate {
                change_id,
                why: DuplicateOf::Change,
            };
        }
        self.changes.insert(change_id.clone(), event.clone());
        let mut ids = Vec::new();
        for planned in &req.starts {
            let id = start_id(&change_id, &planned.pipeline);
            if planned.supersede {
                for s in &mut self.starts {
                    if s.pipeline == planned.pipeline
                        && s.git_ref == event.git_ref
                        && s.state.is_open()
                    {
                        s.state = StartState::Superseded;
                    }
                }
            }
            self.starts.push(ModelStart {
                id: id.clone(),
                change_id: change_id.clone(),
                pipeline: planned.pipeline.clone(),
                git_ref: event.git_ref.clone(),
                state: StartState::Pending,
                attempts: 0,
                last_error: None,
                retry_at: None,
            });
            ids.push(id);
        }
        IntakeOutcome::Accepted {
            change_id,
            starts: ids,
        }
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut ModelStart> {
        self.starts.iter_mut().find(|s| s.id == id)
    }

    fn finish(&mut self, id: &str, finish: &Finish) -> bool {
        let Some(s) = self.get_mut(id).filter(|s| s.state.is_unfinished()) else {
            return false;
        };
        s.attempts += 1;
        match finish {
            Finish::Succeeded => {
                // The last error is kept (`COALESCE`): it says why earlier attempts failed.
                s.state = StartState::Succeeded;
                s.retry_at = None;
            }
            Finish::Retry { at_ms, error } => {
                s.state = StartState::Failed;
                s.retry_at = Some(*at_ms);
                s.last_error = Some(error.clone());
            }
            Finish::Dead { error } => {
                s.state = StartState::Dead;
                s.retry_at = None;
                s.last_error = Some(error.clone());
            }
        }
        true
    }

    /// `outbox retry`: the start as it is afterwards, or the state that refuses it.
    fn retry(&mut self, id: &str) -> Result<ModelStart, StartState> {
        let s = self.get_mut(id).expect("the model knows the start");
        if !matches!(
            s.state,
            StartState::Dead | StartState::Failed | StartState::Dropped | StartState::Superseded
        ) {
            return Err(s.state);
        }
        s.state = StartState::Pending;
        s.attempts = 0;
        s.retry_at = None;
        Ok(s.clone())
    }

    /// `outbox drop`: the start as it is afterwards, or the state that refuses it.
    fn drop_start(&mut self, id: &str) -> Result<ModelStart, StartState> {
        let s = self.get_mut(id).expect("the model knows the start");
        if !matches!(
            s.state,
            StartState::Pending | StartState::Failed | StartState::Dead
        ) {
            return Err(s.state);
        }
        s.state = StartState::Dropped;
        s.retry_at = None;
        Ok(s.clone())
    }

    /// The open starts, the first `window` of each pipeline, in intake order.
    fn open(&self, window: u32) -> Vec<&ModelStart> {
        let mut taken: BTreeMap<&str, u32> = BTreeMap::new();
        let mut out = Vec::new();
        for s in self.starts.iter().filter(|s| s.state.is_unfinished()) {
            let n = taken.entry(s.pipeline.as_str()).or_default();
            if *n < window {
                *n += 1;
                out.push(s);
            }
        }
        out
    }

    /// The dispatcher claims starts: the open ones become running.
    fn claim(&mut self, ids: &[String]) -> Vec<String> {
        let mut claimed = Vec::new();
        for id in ids {
            if let Some(s) = self.get_mut(id).filter(|s| s.state.is_open()) {
                s.state = StartState::Running;
                claimed.push(id.clone());
            }
        }
        claimed
    }

    /// Running starts given back (a stop, or a restart): open again.
    fn release(&mut self, ids: Option<&[String]>) {
        for s in &mut self.starts {
            let named = ids.is_none_or(|ids| ids.contains(&s.id));
            if named && s.state == StartState::Running {
                s.state = if s.attempts > 0 {
                    StartState::Failed
                } else {
                    StartState::Pending
                };
            }
        }
    }

    fn counts(&self) -> Vec<(StartState, i64)> {
        let mut counts: BTreeMap<StartState, i64> = BTreeMap::new();
        for s in &self.starts {
            *counts.entry(s.state).or_default() += 1;
        }
        counts.into_iter().collect()
    }
}

/// A stored row agrees with the model's start.
fn same_start(row: &StartRow, want: &ModelStart, ctx: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(&row.id, &want.id, "{}: id", ctx);
    prop_assert_eq!(
        &row.change_id,
        &want.change_id,
        "{}: change of {}",
        ctx,
        want.id
    );
    prop_assert_eq!(
        &row.pipeline,
        &want.pipeline,
        "{}: pipeline of {}",
        ctx,
        want.id
    );
    prop_assert_eq!(&row.git_ref, &want.git_ref, "{}: ref of {}", ctx, want.id);
    prop_assert_eq!(row.state, want.state, "{}: state of {}", ctx, want.id);
    prop_assert_eq!(
        row.attempts,
        want.attempts,
        "{}: attempts of {}",
        ctx,
        want.id
    );
    prop_assert_eq!(
        &row.last_error,
        &want.last_error,
        "{}: last error of {}",
        ctx,
        want.id
    );
    if let Some(at) = want.retry_at {
        prop_assert_eq!(
            row.next_attempt_ms,
            at,
            "{}: retry time of {}",
            ctx,
            want.id
        );
    }
    prop_assert!(
        row.created_ms <= row.updated_ms,
        "{}: {} updated before it was created",
        ctx,
        want.id
    );
    Ok(())
}

/// A stored change event (JSON) is the one the model accepted first.
fn same_event(json: &str, want: Option<&ChangeEvent>, ctx: &str) -> Result<(), TestCaseError> {
    let got: ChangeEvent = serde_json::from_str(json)
        .map_err(|e| TestCaseError::fail(format!("{ctx}: stored event does not parse: {e}")))?;
    prop_assert_eq!(Some(&got), want, "{}: stored event", ctx);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// Event `event` of the pool from source `KINDS[kind]`, maybe with a delivery id, planning
    /// these (pipeline, supersede) starts.
    Intake {
        event: usize,
        kind: usize,
        delivery: Option<usize>,
        starts: Vec<(usize, bool)>,
    },
    /// Finish the k-th start the model knows, whatever its state.
    Finish {
        k: usize,
        how: Finish,
    },
    /// Drop the store (and the admin connection) and open them again on the same directory.
    Reopen,
    /// Claim the k-th starts the model knows (as the dispatcher does before attempting them).
    Claim {
        ks: Vec<usize>,
    },
    /// Give the k-th starts back (as a stop after the grace period does).
    Release {
        ks: Vec<usize>,
    },
    Retry {
        k: usize,
    },
    Drop {
        k: usize,
    },
    /// `open_starts(window)`.
    Open {
        window: u32,
    },
    /// Forget every delivery id (`all`) or none.
    Prune {
        all: bool,
    },
    /// Finish, retry, drop and look up an id no start has.
    Unknown,
}

fn finish_strategy() -> impl Strategy<Value = Finish> {
    prop_oneof![
        Just(Finish::Succeeded),
        (0i64..(1 << 42), 0u8..4).prop_map(|(at_ms, n)| Finish::Retry {
            at_ms,
            error: format!("e{n}"),
        }),
        (0u8..4).prop_map(|n| Finish::Dead {
            error: format!("dead{n}"),
        }),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let planned = (
        proptest::sample::subsequence(vec![0usize, 1, 2], 0..=3).prop_shuffle(),
        proptest::collection::vec(any::<bool>(), 3),
    )
        .prop_map(|(pipelines, supersede)| {
            pipelines
                .into_iter()
                .map(|p| (p, supersede[p]))
                .collect::<Vec<_>>()
        });
    prop_oneof![
        6 => (0..EVENTS, 0..KINDS.len(), proptest::option::of(0..DELIVERIES.len()), planned)
            .prop_map(|(event, kind, delivery, starts)| Op::Intake { event, kind, delivery, starts }),
        4 => (0usize..64, finish_strategy()).prop_map(|(k, how)| Op::Finish { k, how }),
        1 => Just(Op::Reopen),
        3 => proptest::collection::vec(0usize..64, 1..4).prop_map(|ks| Op::Claim { ks }),
        1 => proptest::collection::vec(0usize..64, 1..4).prop_map(|ks| Op::Release { ks }),
        2 => (0usize..64).prop_map(|k| Op::Retry { k }),
        2 => (0usize..64).prop_map(|k| Op::Drop { k }),
        2 => (1u32..=4).prop_map(|window| Op::Open { window }),
        1 => any::<bool>().prop_map(|all| Op::Prune { all }),
        1 => Just(Op::Unknown),
    ]
}

/// The store under test and its surroundings.
struct Harness {
    rt: Runtime,
    dir: tempfile::TempDir,
    notify: Arc<Notify>,
    store: Store,
    admin: Admin,
    /// The change id of every event of the pool.
    pool_ids: Vec<String>,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().expect("a temp dir");
        let notify = Arc::new(Notify::new());
        let store = Store::open(dir.path(), Role::Serve, notify.clone());
        let admin = Admin::open(dir.path()).expect("the admin connection opens");
        Harness {
            rt: runtime(),
            dir,
            notify,
            store,
            admin,
            pool_ids: (0..EVENTS)
                .map(|e| pool_event(e, SourceKind::Webhook, BASE_MS).id)
                .collect(),
        }
    }

    /// A restart: nothing is in flight (every call was awaited), so everything acknowledged
    /// must still be there. The new writer opens the file only on its first request, after the
    /// old handle is gone.
    fn reopen(&mut self) {
        let store = std::mem::replace(
            &mut self.store,
            Store::open(self.dir.path(), Role::Serve, self.notify.clone()),
        );
        drop(store);
        // The new store opens the file on its first request, and gives interrupted attempts back.
        self.rt
            .block_on(self.store.open_starts(1))
            .expect("the store reopens");
        self.admin = Admin::open(self.dir.path()).expect("the admin connection reopens");
    }

    /// `open_starts(window)` agrees with the model.
    fn check_open(&self, model: &Model, window: u32, ctx: &str) -> Result<(), TestCaseError> {
        let got = self
            .rt
            .block_on(self.store.open_starts(window))
            .map_err(|e| TestCaseError::fail(format!("{ctx}: open_starts: {e}")))?;
        let want = model.open(window);
        let got_ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
        let want_ids: Vec<&str> = want.iter().map(|s| s.id.as_str()).collect();
        prop_assert_eq!(got_ids, want_ids, "{}: open_starts({})", ctx, window);
        for (row, want) in got.iter().zip(&want) {
            same_start(row, want, ctx)?;
        }
        prop_assert!(
            got.windows(2).all(|w| w[0].seq < w[1].seq),
            "{}: open_starts not in seq order",
            ctx
        );
        Ok(())
    }

    /// Everything the store holds agrees with the model.
    fn check_all(&self, model: &Model, ctx: &str) -> Result<(), TestCaseError> {
        let fail = |what: &str, e: StoreError| TestCaseError::fail(format!("{ctx}: {what}: {e}"));
        let rows = self.admin.starts(&[]).map_err(|e| fail("starts", e))?;
        let got_ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let want_ids: Vec<&str> = model.starts.iter().map(|s| s.id.as_str()).collect();
        prop_assert_eq!(got_ids, want_ids, "{}: every start, in seq order", ctx);
        for (row, want) in rows.iter().zip(&model.starts) {
            same_start(row, want, ctx)?;
        }
        prop_assert!(
            rows.windows(2).all(|w| w[0].seq < w[1].seq),
            "{}: starts not in seq order",
            ctx
        );

        let open = self
            .admin
            .starts(&[StartState::Pending, StartState::Failed])
            .map_err(|e| fail("open starts", e))?;
        let got_ids: Vec<&str> = open.iter().map(|r| r.id.as_str()).collect();
        let want_ids: Vec<&str> = model
            .starts
            .iter()
            .filter(|s| s.state.is_open())
            .map(|s| s.id.as_str())
            .collect();
        prop_assert_eq!(got_ids, want_ids, "{}: starts(pending, failed)", ctx);

        let mut counts = self.admin.counts().map_err(|e| fail("counts", e))?;
        counts.sort();
        prop_assert_eq!(counts, model.counts(), "{}: counts", ctx);

        for id in &self.pool_ids {
            let stored = self.admin.change(id).map_err(|e| fail("change", e))?;
            match (&stored, model.changes.get(id)) {
                (Some(json), want @ Some(_)) => same_event(json, want, ctx)?,
                (None, None) => {}
                (got, want) => {
                    prop_assert!(
                        false,
                        "{}: change {}: stored {:?}, model {:?}",
                        ctx,
                        id,
                        got,
                        want
                    )
                }
            }
            let sightings = self.admin.sightings(id).map_err(|e| fail("sightings", e))?;
            let want = model.sightings.get(id).cloned().unwrap_or_default();
            prop_assert_eq!(sightings, want, "{}: sightings of {}", ctx, id);
        }

        self.check_open(model, 64, ctx)
    }
}

/// Runs `ops` against the store and the model, comparing every answer and, every few steps
/// and at the end, the whole state.
fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new();
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        let ctx = format!("step {step} ({op:?})");
        let pick = |k: &usize, model: &Model| -> Option<String> {
            (!model.starts.is_empty()).then(|| model.starts[k % model.starts.len()].id.clone())
        };
        match op {
            Op::Intake {
                event,
                kind,
                delivery,
                starts,
            } => {
                let req = IntakeRequest {
                    event: pool_event(*event, KINDS[*kind], BASE_MS + step as i64),
                    delivery: delivery.map(|d| (RECEIVER.to_owned(), DELIVERIES[d].to_owned())),
                    starts: starts
                        .iter()
                        .map(|&(p, supersede)| PlannedStart {
                            pipeline: PIPELINES[p].to_owned(),
                            supersede,
                        })
                        .collect(),
                    defer: false,
                };
                let want = model.intake(&req);
                let got = h.rt.block_on(h.store.intake(req));
                match got {
                    Ok(got) => prop_assert_eq!(got, want, "{}", ctx),
                    Err(e) => prop_assert!(false, "{}: intake failed: {}", ctx, e),
                }
            }
            Op::Finish { k, how } => {
                let Some(id) = pick(k, &model) else { continue };
                let want = model.finish(&id, how);
                let got = h.rt.block_on(h.store.finish(&id, how.clone()));
                match got {
                    Ok(got) => prop_assert_eq!(got, want, "{}: finish {}", ctx, id),
                    Err(e) => prop_assert!(false, "{}: finish failed: {}", ctx, e),
                }
            }
            Op::Claim { ks } | Op::Release { ks } => {
                let ids: Vec<String> = ks.iter().filter_map(|k| pick(k, &model)).collect();
                if matches!(op, Op::Claim { .. }) {
                    let want = model.claim(&ids);
                    let got = h.rt.block_on(h.store.claim(ids.clone()));
                    match got {
                        Ok(got) => {
                            let got_ids: Vec<String> = got.iter().map(|c| c.id.clone()).collect();
                            prop_assert_eq!(got_ids, want, "{}: claim {:?}", ctx, ids);
                            // Each claimed start comes with its change's event.
                            for c in &got {
                                let change = model
                                    .starts
                                    .iter()
                                    .find(|s| s.id == c.id)
                                    .map(|s| &s.change_id);
                                same_event(
                                    &c.event,
                                    change.and_then(|id| model.changes.get(id)),
                                    &ctx,
                                )?;
                            }
                        }
                        Err(e) => prop_assert!(false, "{}: claim failed: {}", ctx, e),
                    }
                } else {
                    model.release(Some(&ids));
                    let got = h.rt.block_on(h.store.release(ids.clone()));
                    prop_assert!(got.is_ok(), "{}: release failed: {:?}", ctx, got);
                }
            }
            Op::Reopen => {
                model.release(None);
                h.reopen();
                h.check_all(&model, &ctx)?;
            }
            Op::Retry { k } | Op::Drop { k } => {
                let Some(id) = pick(k, &model) else { continue };
                let retry = matches!(op, Op::Retry { .. });
                let (got, want, action) = if retry {
                    (h.admin.retry(&id), model.retry(&id), "retried")
                } else {
                    (h.admin.drop_start(&id), model.drop_start(&id), "dropped")
                };
                match (got, want) {
                    (Ok(row), Ok(want)) => same_start(&row, &want, &ctx)?,
                    (
                        Err(StoreError::WrongState {
                            id: got_id,
                            state,
                            action: got_action,
                        }),
                        Err(want_state),
                    ) => {
                        prop_assert_eq!(&got_id, &id, "{}", ctx);
                        prop_assert_eq!(state.as_str(), want_state.as_str(), "{}", ctx);
                        prop_assert_eq!(got_action, action, "{}", ctx);
                    }
                    (got, want) => {
                        prop_assert!(false, "{}: {}: store {:?}, model {:?}", ctx, id, got, want)
                    }
                }
            }
            Op::Open { window } => h.check_open(&model, *window, &ctx)?,
            Op::Prune { all } => {
                let before = if *all { i64::MAX } else { 0 };
                let want = if *all {
                    std::mem::take(&mut model.deliveries).len()
                } else {
                    0
                };
                let got = h.rt.block_on(h.store.prune_deliveries(before));
                match got {
                    Ok(got) => prop_assert_eq!(got, want, "{}", ctx),
                    Err(e) => prop_assert!(false, "{}: prune failed: {}", ctx, e),
                }
            }
            Op::Unknown => {
                let finished = h.rt.block_on(h.store.finish(UNKNOWN, Finish::Succeeded));
                prop_assert!(matches!(finished, Ok(false)), "{}: {:?}", ctx, finished);
                for got in [
                    h.admin.start(UNKNOWN),
                    h.admin.retry(UNKNOWN),
                    h.admin.drop_start(UNKNOWN),
                ] {
                    prop_assert!(
                        matches!(&got, Err(StoreError::NoSuchStart(id)) if id == UNKNOWN),
                        "{}: {:?}",
                        ctx,
                        got
                    );
                }
            }
        }
        if step % 8 == 7 {
            h.check_all(&model, &ctx)?;
        }
    }
    h.check_all(&model, "at the end")
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        // Shrunk failures are printed; no regression file is written next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_agrees_with_the_model(ops in proptest::collection::vec(op_strategy(), 1..40)) {
        run(&ops)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Unit tests
// ---------------------------------------------------------------------------------------------

#[test]
fn supersede_replaces_open_starts_of_the_same_pipeline_and_ref_only() {
    let ops = [
        // a@main, b@main, a@dev pending; a@main failed.
        Op::Intake {
            event: 0,
            kind: 0,
            delivery: None,
            starts: vec![(0, false), (1, false)],
        },
        Op::Intake {
            event: 2,
            kind: 0,
            delivery: None,
            starts: vec![(0, false)],
        },
        Op::Finish {
            k: 0,
            how: Finish::Retry {
                at_ms: 5,
                error: "e0".into(),
            },
        },
        // The second push on main supersedes a (the failed one too) but not b, nor a@dev.
        Op::Intake {
            event: 1,
            kind: 1,
            delivery: None,
            starts: vec![(0, true), (1, false)],
        },
    ];
    run(&ops).expect("store and model agree");

    // And the expected states, spelled out, so a model mistake cannot hide a store one.
    let h = Harness::new();
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Intake { event, starts, .. } => {
                let req = IntakeRequest {
                    event: pool_event(*event, SourceKind::Webhook, BASE_MS + step as i64),
                    delivery: None,
                    starts: starts
                        .iter()
                        .map(|&(p, supersede)| PlannedStart {
                            pipeline: PIPELINES[p].to_owned(),
                            supersede,
                        })
                        .collect(),
                    defer: false,
                };
                let want = model.intake(&req);
                assert_eq!(h.rt.block_on(h.store.intake(req)).expect("intake"), want);
            }
            Op::Finish { how, .. } => {
                let first = model.starts[0].id.clone();
                model.finish(&first, how);
                assert!(
                    h.rt.block_on(h.store.finish(&first, how.clone()))
                        .expect("finish")
                );
            }
            _ => unreachable!("only intakes and finishes above"),
        }
    }
    let states: Vec<(String, String, StartState)> = h
        .admin
        .starts(&[])
        .expect("starts")
        .into_iter()
        .map(|r| (r.pipeline, r.git_ref, r.state))
        .collect();
    let main = "refs/heads/main".to_owned();
    let dev = "refs/heads/dev".to_owned();
    assert_eq!(
        states,
        [
            ("a".into(), main.clone(), StartState::Superseded),
            ("b".into(), main.clone(), StartState::Pending),
            ("a".into(), dev, StartState::Pending),
            ("a".into(), main.clone(), StartState::Pending),
            ("b".into(), main, StartState::Pending),
        ]
    );
    // Finishing a superseded start changes nothing.
    let superseded = model.starts[0].id.clone();
    assert!(
        !h.rt
            .block_on(h.store.finish(&superseded, Finish::Succeeded))
            .expect("finish")
    );
    assert_eq!(
        h.admin.start(&superseded).expect("start").state,
        StartState::Superseded
    );
}

#[test]
fn concurrent_intakes_all_land() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let notify = Arc::new(Notify::new());
    let store = Store::open(dir.path(), Role::Serve, notify.clone());
    const N: u64 = 200;
    // Every change twice, from a webhook and from a poll, each with its own delivery id.
    let outcomes = rt.block_on(async {
        let mut tasks = Vec::new();
        for n in 0..N {
            for kind in [SourceKind::Webhook, SourceKind::Poll] {
                let store = store.clone();
                let delivery = format!("{kind}-{n}");
                tasks.push(tokio::spawn(async move {
                    let req = request(numbered_event(n, kind), Some(&delivery), &["a"]);
                    store.intake(req).await
                }));
            }
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.expect("the intake task ran"));
        }
        outcomes
    });
    let mut accepted = BTreeSet::new();
    let mut duplicates = BTreeSet::new();
    for outcome in outcomes {
        match outcome.expect("every intake succeeds") {
            IntakeOutcome::Accepted { change_id, starts } => {
                assert_eq!(starts, [start_id(&change_id, "a")]);
                assert!(accepted.insert(change_id), "accepted twice");
            }
            IntakeOutcome::Duplicate {
                change_id,
                why: DuplicateOf::Change,
            } => assert!(duplicates.insert(change_id), "a duplicate twice"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let ids: BTreeSet<String> = (0..N)
        .map(|n| numbered_event(n, SourceKind::Webhook).id)
        .collect();
    assert_eq!(accepted, ids, "each change accepted exactly once");
    assert_eq!(duplicates, ids, "and reported once as a duplicate");
    assert!(notified_now(&notify), "new starts wake the dispatcher");

    let admin = Admin::open(dir.path()).expect("admin");
    let starts = admin.starts(&[StartState::Pending]).expect("starts");
    assert_eq!(starts.len(), N as usize);
    for id in &ids {
        assert!(admin.change(id).expect("change").is_some(), "{id} stored");
        let sources: BTreeSet<String> = admin
            .sightings(id)
            .expect("sightings")
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(sources, BTreeSet::from(["poll".into(), "webhook".into()]));
    }
}

#[test]
fn queued_requests_are_committed_in_one_transaction() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
    rt.block_on(store.prune_deliveries(0))
        .expect("the writer opens the database");

    // Hold the write lock so that the writer blocks in its first batch while every other
    // request queues up behind it.
    let db = dir.path().join(DB_FILE);
    let blocker = Connection::open(&db).expect("a second connection");
    blocker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("the write lock");
    const N: u64 = 200;
    let mut pending = Vec::new();
    for n in 0..N {
        let req = request(
            numbered_event(n, SourceKind::Webhook),
            Some(&format!("d{n}")),
            &["a"],
        );
        let mut fut = Box::pin(store.intake(req));
        assert!(!ready_now(fut.as_mut()), "answered before the commit");
        pending.push(fut);
    }
    blocker.execute_batch("COMMIT").expect("release the lock");
    let outcomes = rt.block_on(async {
        let mut outcomes = Vec::new();
        for fut in pending {
            outcomes.push(fut.await);
        }
        outcomes
    });
    for outcome in outcomes {
        assert!(
            matches!(outcome, Ok(IntakeOutcome::Accepted { .. })),
            "{outcome:?}"
        );
    }

    // At most two transactions: what the writer had taken when it blocked, and the rest.
    // Requests of one transaction share its clock reading.
    let admin = Admin::open(dir.path()).expect("admin");
    let rows = admin.starts(&[]).expect("starts");
    assert_eq!(rows.len(), N as usize);
    let stamps: BTreeSet<i64> = rows.iter().map(|r| r.created_ms).collect();
    assert!(stamps.len() <= 2, "{} distinct commit times", stamps.len());
    // Each commit appends every page it changed to the write-ahead log; a commit per request
    // would append well over a thousand frames here.
    let wal = std::fs::metadata(dir.path().join(format!("{DB_FILE}-wal")))
        .expect("the write-ahead log")
        .len();
    let page: i64 = blocker
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .expect("page size");
    let frames = wal.saturating_sub(32) / (page as u64 + 24);
    assert!(frames < 400, "{frames} log frames for {N} intakes");
}

#[test]
fn the_dispatcher_is_woken_only_when_there_is_new_work() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let notify = Arc::new(Notify::new());
    let store = Store::open(dir.path(), Role::Serve, notify.clone());
    let intake = |req| rt.block_on(store.intake(req)).expect("intake");

    // A change that starts nothing.
    let out = intake(request(
        pool_event(0, SourceKind::Webhook, BASE_MS),
        None,
        &[],
    ));
    assert!(matches!(out, IntakeOutcome::Accepted { ref starts, .. } if starts.is_empty()));
    assert!(!notified_now(&notify), "no start, no wake-up");

    // A change that starts something.
    let out = intake(request(
        pool_event(1, SourceKind::Webhook, BASE_MS),
        Some("d1"),
        &["a"],
    ));
    let IntakeOutcome::Accepted { starts, .. } = out else {
        panic!("{out:?}")
    };
    assert!(notified_now(&notify), "a new start wakes the dispatcher");
    assert!(!notified_now(&notify), "once");

    // The same change from another source, and the same delivery again: nothing new.
    let out = intake(request(
        pool_event(1, SourceKind::Poll, BASE_MS),
        None,
        &["a"],
    ));
    assert!(matches!(
        out,
        IntakeOutcome::Duplicate {
            why: DuplicateOf::Change,
            ..
        }
    ));
    let out = intake(request(
        pool_event(2, SourceKind::Webhook, BASE_MS),
        Some("d1"),
        &["a"],
    ));
    assert!(matches!(
        out,
        IntakeOutcome::Duplicate {
            why: DuplicateOf::Delivery,
            ..
        }
    ));
    assert!(!notified_now(&notify), "duplicates start nothing");

    // Finishing a start that does not exist, or is not open, changes nothing.
    let finished = rt.block_on(store.finish(UNKNOWN, Finish::Succeeded));
    assert!(matches!(finished, Ok(false)), "{finished:?}");
    let finished = rt.block_on(store.finish(&starts[0], Finish::Succeeded));
    assert!(matches!(finished, Ok(true)), "{finished:?}");
    while notified_now(&notify) {}
    let finished = rt.block_on(store.finish(&starts[0], Finish::Succeeded));
    assert!(matches!(finished, Ok(false)), "{finished:?}");
    assert!(!notified_now(&notify), "nothing changed, no wake-up");
}

fn user_version(db: &Path) -> i64 {
    Connection::open(db)
        .expect("a direct connection")
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version")
}

#[test]
fn a_database_from_a_newer_switchyard_is_refused() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join(DB_FILE);
    {
        let store = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
        let out = rt.block_on(store.intake(request(
            pool_event(0, SourceKind::Webhook, BASE_MS),
            None,
            &["a"],
        )));
        assert!(matches!(out, Ok(IntakeOutcome::Accepted { .. })), "{out:?}");
    }
    assert_eq!(user_version(&db), MIGRATIONS.len() as i64);
    // Opening a current database again migrates nothing and keeps the data.
    let admin = Admin::open(dir.path()).expect("a current database opens");
    assert_eq!(admin.starts(&[]).expect("starts").len(), 1);
    drop(admin);
    assert_eq!(user_version(&db), MIGRATIONS.len() as i64);

    Connection::open(&db)
        .expect("a direct connection")
        .pragma_update(None, "user_version", 99)
        .expect("set user_version");
    match Admin::open(dir.path()) {
        Err(StoreError::Open { message, .. }) => {
            assert!(message.contains("newer"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let store = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
    let out = rt.block_on(store.intake(request(
        pool_event(1, SourceKind::Webhook, BASE_MS),
        None,
        &["a"],
    )));
    assert!(
        matches!(&out, Err(StoreError::Open { message, .. }) if message.contains("newer")),
        "{out:?}"
    );
    drop(store);
    assert_eq!(user_version(&db), 99, "the newer database is left alone");
}

#[test]
fn an_unavailable_state_directory_fails_requests_until_it_can_be_created() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("a temp dir");
    let blocker = tmp.path().join("state");
    std::fs::write(&blocker, b"a file where a directory should be").expect("write the file");
    let state_dir = blocker.join("inner");
    let store = Store::open(&state_dir, Role::Serve, Arc::new(Notify::new()));
    let req = || {
        request(
            pool_event(0, SourceKind::Webhook, BASE_MS),
            Some("d0"),
            &["a"],
        )
    };

    let out = rt.block_on(store.intake(req()));
    let want_path = state_dir.join(DB_FILE).display().to_string();
    assert!(
        matches!(&out, Err(StoreError::Open { path, .. }) if *path == want_path),
        "{out:?}"
    );
    let open = rt.block_on(store.open_starts(8));
    assert!(matches!(open, Err(StoreError::Open { .. })), "{open:?}");

    std::fs::remove_file(&blocker).expect("remove the file");
    // Nothing of the failed request was kept: the same delivery is new.
    let out = rt.block_on(store.intake(req()));
    let Ok(IntakeOutcome::Accepted { starts, .. }) = out else {
        panic!("{out:?}")
    };
    let open = rt.block_on(store.open_starts(8)).expect("open starts");
    assert_eq!(
        open.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        starts
    );
    let admin = Admin::open(&state_dir).expect("admin");
    assert_eq!(admin.starts(&[]).expect("starts").len(), 1);
}

#[test]
fn a_failed_write_is_reported_as_such_and_keeps_nothing() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
    rt.block_on(store.prune_deliveries(0))
        .expect("the writer opens the database");
    // Make one kind of write fail inside the writer's transaction.
    refuse_pipeline_refused(dir.path());
    let event = pool_event(0, SourceKind::Webhook, BASE_MS);
    let change_id = event.id.clone();

    let out = rt.block_on(store.intake(request(event.clone(), Some("d0"), &["a", "refused"])));
    assert!(
        matches!(&out, Err(StoreError::Write(message)) if message.contains("refused by the test")),
        "a failed write must be reported as a write error, got {out:?}"
    );
    let admin = Admin::open(dir.path()).expect("admin");
    assert_eq!(admin.change(&change_id).expect("change"), None);
    assert_eq!(admin.starts(&[]).expect("starts"), []);

    // The writer recovers, and the delivery was not remembered.
    let out = rt.block_on(store.intake(request(event, Some("d0"), &["a"])));
    assert!(matches!(out, Ok(IntakeOutcome::Accepted { .. })), "{out:?}");
    assert_eq!(admin.starts(&[]).expect("starts").len(), 1);
}

#[test]
fn first_opens_at_the_same_time_all_succeed() {
    // A server and an `outbox` command starting together on a fresh state directory.
    const OPENERS: usize = 4;
    let mut failures = Vec::new();
    for _ in 0..20 {
        let dir = tempfile::tempdir().expect("a temp dir");
        let barrier = Arc::new(std::sync::Barrier::new(OPENERS));
        let openers: Vec<_> = (0..OPENERS)
            .map(|_| {
                let state_dir = dir.path().to_owned();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    Admin::open(&state_dir).map(drop)
                })
            })
            .collect();
        for opener in openers {
            if let Err(e) = opener.join().expect("the opener thread ran") {
                failures.push(e.to_string());
            }
        }
        let admin = Admin::open(dir.path()).expect("the database opens afterwards");
        assert_eq!(admin.starts(&[]).expect("starts"), []);
    }
    assert!(
        failures.is_empty(),
        "{} of {} opens failed, e.g. {:?}",
        failures.len(),
        20 * OPENERS,
        failures.first()
    );
}

#[test]
fn a_poll_stores_its_changes_and_moves_its_cursors_together() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let notify = Arc::new(Notify::new());
    let store = Store::open(dir.path(), Role::Serve, notify.clone());
    let repo = "github.com/acme/api";
    let baseline = crate::store::PollBatch {
        repository: repo.into(),
        intakes: Vec::new(),
        cursors: vec![
            ("refs/heads/main".into(), Some(SHA1.into())),
            ("refs/heads/old".into(), Some(SHA3.into())),
        ],
    };
    assert!(
        rt.block_on(store.poll(baseline))
            .expect("baseline")
            .is_empty()
    );
    assert!(!notified_now(&notify), "a baseline starts nothing");
    let moved = crate::store::PollBatch {
        repository: repo.into(),
        intakes: vec![request(numbered_event(1, SourceKind::Poll), None, &["a"])],
        cursors: vec![
            ("refs/heads/main".into(), Some(SHA2.into())),
            ("refs/heads/old".into(), None),
        ],
    };
    let outcomes = rt.block_on(store.poll(moved.clone())).expect("poll");
    assert!(matches!(&outcomes[..], [IntakeOutcome::Accepted { starts, .. }] if starts.len() == 1));
    assert!(notified_now(&notify), "new starts wake the dispatcher");
    let cursors = rt.block_on(store.cursors(repo)).expect("cursors");
    assert_eq!(
        cursors.into_iter().collect::<Vec<_>>(),
        [("refs/heads/main".to_owned(), SHA2.to_owned())]
    );
    assert!(
        rt.block_on(store.cursors("other"))
            .expect("cursors")
            .is_empty()
    );
    // The same poll again (a restart before the cursor was known to move): a duplicate.
    let again = rt.block_on(store.poll(moved)).expect("poll");
    assert!(matches!(
        &again[..],
        [IntakeOutcome::Duplicate {
            why: DuplicateOf::Change,
            ..
        }]
    ));
    let admin = Admin::open(dir.path()).expect("admin");
    assert_eq!(admin.starts(&[]).expect("starts").len(), 1);
}

#[test]
fn a_deferred_change_waits_without_starts_until_it_is_planned_once() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let notify = Arc::new(Notify::new());
    let store = Store::open(dir.path(), Role::Serve, notify.clone());
    let event = numbered_event(1, SourceKind::Eventbridge);
    let mut req = request(event.clone(), Some("d0"), &[]);
    req.defer = true;
    let out = rt.block_on(store.intake(req)).expect("intake");
    assert!(matches!(out, IntakeOutcome::Accepted { ref starts, .. } if starts.is_empty()));
    assert!(!notified_now(&notify));
    let waiting = rt.block_on(store.deferred()).expect("deferred");
    assert_eq!(waiting.len(), 1);
    let stored: ChangeEvent = serde_json::from_str(&waiting[0]).expect("event");
    assert_eq!(stored.id, event.id);

    let mut completed = event.clone();
    completed.changed_paths = vec!["src/lib.rs".into()];
    let planned = vec![PlannedStart {
        pipeline: "a".into(),
        supersede: false,
    }];
    let ids = rt
        .block_on(store.plan(completed.clone(), planned.clone()))
        .expect("plan");
    assert_eq!(ids, Some(vec![start_id(&event.id, "a")]));
    assert!(notified_now(&notify));
    assert_eq!(
        rt.block_on(store.plan(completed, planned)).expect("plan"),
        None,
        "planned once"
    );
    assert!(rt.block_on(store.deferred()).expect("deferred").is_empty());
    let admin = Admin::open(dir.path()).expect("admin");
    let json = admin.change(&event.id).expect("read").expect("stored");
    assert!(
        json.contains("src/lib.rs"),
        "the completed event replaced the first: {json}"
    );
    assert_eq!(admin.starts(&[]).expect("starts").len(), 1);
}

#[test]
fn a_ref_state_reported_again_with_another_before_is_the_same_change() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
    let repo = REPOS[0];
    let main =
        |before, after, kind, ms| push_event(repo, ("refs/heads/main", before, after), kind, ms);
    // Two webhooks: SHA1 → SHA2 → SHA3.
    for (before, after) in [(SHA1, SHA2), (SHA2, SHA3)] {
        let outcome = rt
            .block_on(store.intake(request(
                main(before, after, SourceKind::Webhook, BASE_MS),
                None,
                &["a"],
            )))
            .expect("intake");
        assert!(
            matches!(outcome, IntakeOutcome::Accepted { .. }),
            "{outcome:?}"
        );
    }
    // Polling saw SHA1 → SHA3 at once (coalesced): the ref state SHA3 is reported already.
    let coalesced = main(SHA1, SHA3, SourceKind::Poll, BASE_MS + 5);
    let newest = main(SHA2, SHA3, SourceKind::Webhook, BASE_MS).id;
    let outcome = rt
        .block_on(store.intake(request(coalesced, None, &["a"])))
        .expect("intake");
    assert_eq!(
        outcome,
        IntakeOutcome::Duplicate {
            change_id: newest.clone(),
            why: DuplicateOf::Change
        }
    );
    let admin = Admin::open(dir.path()).expect("admin");
    let sources: Vec<String> = admin
        .sightings(&newest)
        .expect("sightings")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(sources, ["webhook", "poll"]);
    assert_eq!(admin.starts(&[]).expect("starts").len(), 2);
    // The ref moved back to SHA2 (a forced push): a new state, started.
    let back = main(SHA3, SHA2, SourceKind::Webhook, BASE_MS + 9);
    let outcome = rt
        .block_on(store.intake(request(back, None, &["a"])))
        .expect("intake");
    assert!(
        matches!(outcome, IntakeOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    // Another ref, or another repository, at the same commit is its own change.
    let dev = push_event(
        repo,
        ("refs/heads/dev", SHA3, SHA2),
        SourceKind::Webhook,
        BASE_MS,
    );
    let other = push_event(
        REPOS[1],
        ("refs/heads/main", SHA1, SHA2),
        SourceKind::Webhook,
        BASE_MS,
    );
    for event in [dev, other] {
        let outcome = rt
            .block_on(store.intake(request(event, None, &["a"])))
            .expect("intake");
        assert!(
            matches!(outcome, IntakeOutcome::Accepted { .. }),
            "{outcome:?}"
        );
    }
}

#[test]
fn unreported_follows_the_stored_pushes_of_a_ref_back_to_the_gap() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
    let repo = REPOS[0];
    const SHA4: &str = "4444444444444444444444444444444444444444";
    const SHA5: &str = "5555555555555555555555555555555555555555";
    // Reported: SHA2 → SHA3 → SHA4 (the push SHA1 → SHA2 was not).
    for (before, after) in [(SHA2, SHA3), (SHA3, SHA4)] {
        let event = push_event(
            repo,
            ("refs/heads/main", before, after),
            SourceKind::Webhook,
            BASE_MS,
        );
        rt.block_on(store.intake(request(event, None, &["a"])))
            .expect("intake");
    }
    let ask = |from: &str, to: &str| {
        rt.block_on(
            store.unreported(crate::store::RefMove {
                repository: crate::repo::RepoId::parse(repo, None)
                    .expect("valid")
                    .as_str()
                    .to_owned(),
                git_ref: "refs/heads/main".into(),
                from: from.into(),
                to: to.into(),
            }),
        )
        .expect("unreported")
    };
    // Polling saw SHA1 → SHA4: only SHA1 → SHA2 is unreported.
    assert_eq!(ask(SHA1, SHA4), Some(SHA2.to_owned()));
    // SHA2 → SHA4 and SHA3 → SHA4 are reported whole.
    assert_eq!(ask(SHA2, SHA4), None);
    assert_eq!(ask(SHA3, SHA4), None);
    // The ref is elsewhere than the newest report: all of it is unreported.
    assert_eq!(ask(SHA4, SHA5), Some(SHA5.to_owned()));
    assert_eq!(ask(SHA1, SHA3), Some(SHA3.to_owned()));
}

#[test]
fn only_serve_gives_running_starts_back_and_only_at_its_first_open() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let serve = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
    let running = |what: &str| -> Vec<String> {
        Admin::open(dir.path())
            .expect("admin")
            .starts(&[StartState::Running])
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    let first = pool_event(0, SourceKind::Webhook, BASE_MS);
    let Ok(IntakeOutcome::Accepted { starts, .. }) =
        rt.block_on(serve.intake(request(first, None, &["a"])))
    else {
        panic!("the change is accepted");
    };
    let claimed = rt.block_on(serve.claim(starts.clone())).expect("claim");
    assert_eq!(
        claimed.into_iter().map(|c| c.id).collect::<Vec<_>>(),
        starts
    );

    // A tool beside the server (`poll --once`, `outbox`) writes, and the start stays running.
    let tool = Store::open(dir.path(), Role::Tool, Arc::new(Notify::new()));
    rt.block_on(tool.prune_deliveries(0))
        .expect("the tool's store opens");
    let second = pool_event(1, SourceKind::Poll, BASE_MS + 1);
    rt.block_on(tool.intake(request(second, None, &["b"])))
        .expect("the tool stores a change");
    assert_eq!(running("after a tool's writes"), starts);

    // The server's own writer reopens after a failed write: its attempt is still under way.
    refuse_pipeline_refused(dir.path());
    let third = pool_event(2, SourceKind::Webhook, BASE_MS + 2);
    assert!(
        rt.block_on(serve.intake(request(third.clone(), None, &["refused"])))
            .is_err()
    );
    rt.block_on(serve.intake(request(third, None, &["a"])))
        .expect("the writer reopens");
    assert_eq!(running("after the writer reopened"), starts);

    // A new `serve` (after a crash): the interrupted attempt is open again.
    drop(serve);
    let restarted = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
    rt.block_on(restarted.prune_deliveries(0))
        .expect("the restarted store opens");
    assert_eq!(running("after a restart"), Vec::<String>::new());
    let states = Admin::open(dir.path())
        .expect("admin")
        .start(&starts[0])
        .expect("the start")
        .state;
    assert_eq!(states, StartState::Pending);
}

#[test]
fn the_writer_s_remembered_tips_never_hide_another_process_s_push() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let serve = Store::open(dir.path(), Role::Serve, Arc::new(Notify::new()));
    let main = "refs/heads/main";
    let (s1, s1a, s2) = (SHA1, SHA2, SHA3);
    let zero = "0000000000000000000000000000000000000001";
    // serve stores a webhook's push and remembers it as the ref's newest.
    let first = push_event(REPOS[0], (main, zero, s1), SourceKind::Webhook, BASE_MS);
    let out = rt.block_on(serve.intake(request(first, Some("d1"), &["a"])));
    assert!(matches!(out, Ok(IntakeOutcome::Accepted { .. })), "{out:?}");

    // `poll --once` (another writer) stores polling's coalesced move s1 → s2: two pushes,
    // s1 → s1a and s1a → s2, whose webhooks had not arrived.
    let tool = Store::open(dir.path(), Role::Tool, Arc::new(Notify::new()));
    let polled = push_event(REPOS[0], (main, s1, s2), SourceKind::Poll, BASE_MS + 1);
    let Ok(IntakeOutcome::Accepted {
        change_id: polled_id,
        ..
    }) = rt.block_on(tool.intake(request(polled, None, &["a"])))
    else {
        panic!("the poll's change is accepted");
    };
    drop(tool);

    // The late webhook of the second push reaches the ref state polling stored: it is that
    // change, though serve's writer last saw s1 as the ref's newest.
    let late = push_event(REPOS[0], (main, s1a, s2), SourceKind::Webhook, BASE_MS + 2);
    let out = rt.block_on(serve.intake(request(late, Some("d2"), &["a"])));
    assert_eq!(
        out.expect("stored"),
        IntakeOutcome::Duplicate {
            change_id: polled_id,
            why: DuplicateOf::Change
        }
    );
    // And what serve itself stores next is remembered and checked as before.
    let next = push_event(REPOS[0], (main, s2, SHA1), SourceKind::Webhook, BASE_MS + 3);
    let Ok(IntakeOutcome::Accepted {
        change_id: next_id, ..
    }) = rt.block_on(serve.intake(request(next, Some("d3"), &["a"])))
    else {
        panic!("a new push is accepted");
    };
    let again = push_event(REPOS[0], (main, zero, SHA1), SourceKind::Poll, BASE_MS + 4);
    let out = rt.block_on(serve.intake(request(again, None, &["a"])));
    assert_eq!(
        out.expect("stored"),
        IntakeOutcome::Duplicate {
            change_id: next_id,
            why: DuplicateOf::Change
        }
    );
    let starts = Admin::open(dir.path())
        .expect("admin")
        .starts(&[])
        .expect("starts");
    assert_eq!(starts.len(), 3, "one start per change: {starts:?}");
}
