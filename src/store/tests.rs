//! The store against an in-memory model under random operation sequences, on both backends:
//! SQLite in a temp dir, and PostgreSQL in a fresh database of the lab's server for each case.
//! The backends' own unit tests (`sqlite/tests.rs`, `postgres/tests.rs`) use the model, the
//! harness and the events defined here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

use crate::event::{ChangeEvent, Source, SourceKind, ZERO_SHA};
use crate::outcome::{Decision, DuplicateOf, IntakeOutcome, replay_start_id, start_id};
use crate::store::{
    Admin, Finish, IntakeRequest, Location, PlannedStart, PollBatch, PostgresAdmin, ReplayRequest,
    Replayed, Role, SessionRow, StartRow, StartState, Store, StoreError, Transition,
};

pub(crate) const REPOS: [&str; 2] = ["https://github.com/acme/api", "https://github.com/acme/web"];
pub(crate) const SHA1: &str = "1111111111111111111111111111111111111111";
pub(crate) const SHA2: &str = "2222222222222222222222222222222222222222";
pub(crate) const SHA3: &str = "3333333333333333333333333333333333333333";
/// (ref, before, after): two pushes on `main` (so `supersede` has something to replace) and
/// the creation of `dev`.
pub(crate) const PUSHES: [(&str, &str, &str); 3] = [
    ("refs/heads/main", SHA1, SHA2),
    ("refs/heads/main", SHA2, SHA3),
    ("refs/heads/dev", ZERO_SHA, SHA1),
];
/// Events of the pool: `REPOS` x `PUSHES`.
pub(crate) const EVENTS: usize = 6;
pub(crate) const KINDS: [SourceKind; 3] = [
    SourceKind::Webhook,
    SourceKind::Eventbridge,
    SourceKind::Poll,
];
pub(crate) const PIPELINES: [&str; 3] = ["a", "b", "c"];
pub(crate) const RECEIVER: &str = "r";
pub(crate) const DELIVERIES: [&str; 4] = ["d0", "d1", "d2", "d3"];
/// `received_at` of the first step; step n arrives 8n ms later (the intakes of a batch a ms
/// apart), so sightings have an order.
pub(crate) const BASE_MS: i64 = 1_790_000_000_000;
/// An id no start has (not even as a prefix: starts ids are hex).
pub(crate) const UNKNOWN: &str = "zz-no-such-start";

pub(crate) fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

pub(crate) fn manual() -> Source {
    Source {
        kind: SourceKind::Manual,
        provider: None,
        delivery_id: None,
    }
}

/// A push event, built the way producers write it.
pub(crate) fn push_event(
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
pub(crate) fn pool_event(e: usize, kind: SourceKind, received_ms: i64) -> ChangeEvent {
    push_event(REPOS[e / 3], PUSHES[e % 3], kind, received_ms)
}

/// A distinct push per `n`, on `main` of the first repository.
pub(crate) fn numbered_event(n: u64, kind: SourceKind) -> ChangeEvent {
    let after = format!("{:040x}", n + 1);
    push_event(
        REPOS[0],
        ("refs/heads/main", SHA1, after.as_str()),
        kind,
        BASE_MS,
    )
}

pub(crate) fn request(
    event: ChangeEvent,
    delivery: Option<&str>,
    pipelines: &[&str],
) -> IntakeRequest {
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
        decisions: decisions_of(pipelines.iter().copied()),
        traceparent: None,
    }
}

/// The decision log of a change that starts `started`: every pipeline of [`PIPELINES`]
/// decided, the others with a reason of their own.
pub(crate) fn decisions_of<'a>(started: impl IntoIterator<Item = &'a str>) -> Vec<Decision> {
    let started: Vec<&str> = started.into_iter().collect();
    PIPELINES
        .iter()
        .map(|p| {
            let start = started.contains(p);
            Decision {
                pipeline: (*p).to_owned(),
                start,
                reason: if start {
                    format!("push[0].branches.includes[0] \"<{p}>\" matched")
                } else {
                    format!("excluded by on.push.paths-ignore[0] \"docs/**\" (for {p})")
                },
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// What the model knows of a start.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ModelStart {
    pub(crate) id: String,
    pub(crate) change_id: String,
    pub(crate) pipeline: String,
    pub(crate) git_ref: String,
    pub(crate) state: StartState,
    pub(crate) attempts: u32,
    pub(crate) last_error: Option<String>,
    pub(crate) run: Option<String>,
    /// While failed: the retry time `Finish::Retry` asked for (other times are the clock's).
    pub(crate) retry_at: Option<i64>,
    pub(crate) replay: u32,
}

/// The store as it should be: starts in intake order, changes as first accepted, the first
/// sighting per (change, source), the delivery ids seen.
#[derive(Debug, Default)]
pub(crate) struct Model {
    pub(crate) starts: Vec<ModelStart>,
    pub(crate) changes: BTreeMap<String, ChangeEvent>,
    pub(crate) sightings: BTreeMap<String, Vec<(String, i64)>>,
    pub(crate) deliveries: BTreeSet<(String, String)>,
    pub(crate) decisions: BTreeMap<String, Vec<Decision>>,
}

impl Model {
    pub(crate) fn intake(&mut self, req: &IntakeRequest) -> IntakeOutcome {
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
        self.decisions
            .insert(change_id.clone(), req.decisions.clone());
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
                run: None,
                retry_at: None,
                replay: 0,
            });
            ids.push(id);
        }
        IntakeOutcome::Accepted {
            change_id,
            starts: ids,
        }
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut ModelStart> {
        self.starts.iter_mut().find(|s| s.id == id)
    }

    pub(crate) fn finish(&mut self, id: &str, finish: &Finish) -> bool {
        let Some(s) = self.get_mut(id).filter(|s| s.state.is_unfinished()) else {
            return false;
        };
        s.attempts += 1;
        match finish {
            Finish::Succeeded { run } => {
                // The last error is kept (`COALESCE`): it says why earlier attempts failed.
                s.state = StartState::Succeeded;
                s.retry_at = None;
                if run.is_some() {
                    s.run = run.clone();
                }
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
    pub(crate) fn retry(&mut self, id: &str) -> Result<ModelStart, StartState> {
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
    pub(crate) fn drop_start(&mut self, id: &str) -> Result<ModelStart, StartState> {
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
    pub(crate) fn open(&self, window: u32) -> Vec<&ModelStart> {
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
    pub(crate) fn claim(&mut self, ids: &[String]) -> Vec<String> {
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
    pub(crate) fn release(&mut self, ids: Option<&[String]>) {
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

    /// A replay of `pipeline` for a stored change: a duplicate of its newest start that is
    /// waiting, running or succeeded, else a new start numbered after the last.
    pub(crate) fn replay(&mut self, change_id: &str, pipeline: &str) -> Replayed {
        let mut mine: Vec<&ModelStart> = self
            .starts
            .iter()
            .filter(|s| s.change_id == change_id && s.pipeline == pipeline)
            .collect();
        mine.sort_by_key(|s| std::cmp::Reverse(s.replay));
        if let Some(live) = mine
            .iter()
            .find(|s| s.state.is_unfinished() || s.state == StartState::Succeeded)
        {
            return Replayed {
                pipeline: pipeline.to_owned(),
                start_id: live.id.clone(),
                replay: None,
                state: live.state,
            };
        }
        let n = mine.first().map_or(0, |s| s.replay) + 1;
        let id = replay_start_id(change_id, pipeline, n);
        let git_ref = self.changes[change_id].git_ref.clone();
        self.starts.push(ModelStart {
            id: id.clone(),
            change_id: change_id.to_owned(),
            pipeline: pipeline.to_owned(),
            git_ref,
            state: StartState::Pending,
            attempts: 0,
            last_error: None,
            run: None,
            retry_at: None,
            replay: n,
        });
        Replayed {
            pipeline: pipeline.to_owned(),
            start_id: id,
            replay: Some(n),
            state: StartState::Pending,
        }
    }

    /// Pruning every change whose starts are all finished; how many.
    pub(crate) fn prune_changes(&mut self) -> usize {
        let doomed: Vec<String> = self
            .changes
            .keys()
            .filter(|id| {
                !self
                    .starts
                    .iter()
                    .any(|s| &s.change_id == *id && s.state.is_unfinished())
            })
            .cloned()
            .collect();
        for id in &doomed {
            self.changes.remove(id);
            self.sightings.remove(id);
            self.decisions.remove(id);
        }
        self.starts.retain(|s| !doomed.contains(&s.change_id));
        doomed.len()
    }

    pub(crate) fn counts(&self) -> Vec<(StartState, i64)> {
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
    prop_assert_eq!(&row.run, &want.run, "{}: run of {}", ctx, want.id);
    prop_assert_eq!(row.replay, want.replay, "{}: replay of {}", ctx, want.id);
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
pub(crate) enum Op {
    /// Event `event` of the pool from source `KINDS[kind]`, maybe with a delivery id, planning
    /// these (pipeline, supersede) starts.
    Intake {
        event: usize,
        kind: usize,
        delivery: Option<usize>,
        starts: Vec<(usize, bool)>,
    },
    /// Intakes of the pool in one transaction (as a poll stores what it found), the one after
    /// the other: a delivery id or a change twice, a start superseding one of the same batch.
    Batch {
        intakes: Vec<PoolIntake>,
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
    /// Replay event `event` of the pool for these pipelines.
    Replay {
        event: usize,
        pipelines: Vec<usize>,
    },
    /// Forget every change whose starts are all finished (`all`), or none.
    PruneChanges {
        all: bool,
    },
    /// Finish, retry, drop and look up an id no start has.
    Unknown,
}

fn finish_strategy() -> impl Strategy<Value = Finish> {
    prop_oneof![
        Just(Finish::Succeeded { run: None }),
        (0u8..4).prop_map(|n| Finish::Succeeded {
            run: Some(format!("https://ci.example/runs/{n}")),
        }),
        (0i64..(1 << 42), 0u8..4).prop_map(|(at_ms, n)| Finish::Retry {
            at_ms,
            error: format!("e{n}"),
        }),
        (0u8..4).prop_map(|n| Finish::Dead {
            error: format!("dead{n}"),
        }),
    ]
}

/// An intake of the pool: event, source kind, delivery id, planned (pipeline, supersede) starts.
pub(crate) type PoolIntake = (usize, usize, Option<usize>, Vec<(usize, bool)>);

fn intake_strategy() -> impl Strategy<Value = PoolIntake> {
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
    (
        0..EVENTS,
        0..KINDS.len(),
        proptest::option::of(0..DELIVERIES.len()),
        planned,
    )
}

/// The request of an intake of the pool, received at `received_ms`.
pub(crate) fn pool_request(
    &(event, kind, delivery, ref starts): &PoolIntake,
    received_ms: i64,
) -> IntakeRequest {
    IntakeRequest {
        event: pool_event(event, KINDS[kind], received_ms),
        delivery: delivery.map(|d| (RECEIVER.to_owned(), DELIVERIES[d].to_owned())),
        starts: starts
            .iter()
            .map(|&(p, supersede)| PlannedStart {
                pipeline: PIPELINES[p].to_owned(),
                supersede,
            })
            .collect(),
        defer: false,
        decisions: decisions_of(starts.iter().map(|&(p, _)| PIPELINES[p])),
        traceparent: None,
    }
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => intake_strategy()
            .prop_map(|(event, kind, delivery, starts)| Op::Intake { event, kind, delivery, starts }),
        2 => proptest::collection::vec(intake_strategy(), 2..6)
            .prop_map(|intakes| Op::Batch { intakes }),
        4 => (0usize..64, finish_strategy()).prop_map(|(k, how)| Op::Finish { k, how }),
        1 => Just(Op::Reopen),
        3 => proptest::collection::vec(0usize..64, 1..4).prop_map(|ks| Op::Claim { ks }),
        1 => proptest::collection::vec(0usize..64, 1..4).prop_map(|ks| Op::Release { ks }),
        2 => (0usize..64).prop_map(|k| Op::Retry { k }),
        2 => (0usize..64).prop_map(|k| Op::Drop { k }),
        2 => (1u32..=4).prop_map(|window| Op::Open { window }),
        1 => any::<bool>().prop_map(|all| Op::Prune { all }),
        2 => (0..EVENTS, proptest::sample::subsequence(vec![0usize, 1, 2], 1..=3))
            .prop_map(|(event, pipelines)| Op::Replay { event, pipelines }),
        1 => any::<bool>().prop_map(|all| Op::PruneChanges { all }),
        1 => Just(Op::Unknown),
    ]
}

/// Which backend a harness runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// A synchronous view of the store under test, on either backend.
#[derive(Debug)]
pub(crate) enum View {
    Sqlite(Admin),
    Postgres(PostgresAdmin),
}

impl View {
    fn open(location: &Location) -> View {
        match location {
            Location::Sqlite(dir) => View::Sqlite(Admin::open(dir).expect("the admin view opens")),
            Location::Postgres(url) => {
                View::Postgres(PostgresAdmin::open(url).expect("the admin view opens"))
            }
        }
    }

    pub(crate) fn starts(&self, states: &[StartState]) -> Result<Vec<StartRow>, StoreError> {
        match self {
            View::Sqlite(a) => a.starts(states),
            View::Postgres(a) => a.starts(states),
        }
    }

    pub(crate) fn start(&self, id: &str) -> Result<StartRow, StoreError> {
        match self {
            View::Sqlite(a) => a.start(id),
            View::Postgres(a) => a.start(id),
        }
    }

    pub(crate) fn retry(&self, id: &str) -> Result<StartRow, StoreError> {
        match self {
            View::Sqlite(a) => a.retry(id),
            View::Postgres(a) => a.retry(id),
        }
    }

    pub(crate) fn drop_start(&self, id: &str) -> Result<StartRow, StoreError> {
        match self {
            View::Sqlite(a) => a.drop_start(id),
            View::Postgres(a) => a.drop_start(id),
        }
    }

    pub(crate) fn change(&self, id: &str) -> Result<Option<String>, StoreError> {
        match self {
            View::Sqlite(a) => a.change(id),
            View::Postgres(a) => a.change(id),
        }
    }

    pub(crate) fn sightings(&self, id: &str) -> Result<Vec<(String, i64)>, StoreError> {
        match self {
            View::Sqlite(a) => a.sightings(id),
            View::Postgres(a) => a.sightings(id),
        }
    }

    pub(crate) fn counts(&self) -> Result<Vec<(StartState, i64)>, StoreError> {
        match self {
            View::Sqlite(a) => a.counts(),
            View::Postgres(a) => a.counts(),
        }
    }
}

/// A fresh, empty PostgreSQL database on the lab's server (one server per test process);
/// `None` (after printing why) when PostgreSQL is not installed outside strict mode.
pub(crate) fn fresh_database() -> Option<String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let server = switchyard_lab::or_skip(switchyard_lab::Postgres::shared())?;
    let name = format!(
        "store_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    Some(
        server
            .create_database(&name)
            .expect("a database on the lab's server"),
    )
}

/// The store under test and its surroundings.
pub(crate) struct Harness {
    pub(crate) rt: Runtime,
    /// The SQLite store's directory (kept for the harness's life).
    _dir: Option<tempfile::TempDir>,
    pub(crate) location: Location,
    notify: Arc<Notify>,
    pub(crate) store: Store,
    pub(crate) admin: View,
    /// The change id of every event of the pool.
    pool_ids: Vec<String>,
}

impl Harness {
    /// A harness on SQLite in a temp dir.
    pub(crate) fn new() -> Harness {
        let dir = tempfile::tempdir().expect("a temp dir");
        let location = Location::Sqlite(dir.path().to_path_buf());
        Harness::at(location, Some(dir))
    }

    /// A harness on `backend`; `None` when PostgreSQL is missing outside strict mode.
    pub(crate) fn on(backend: Backend) -> Option<Harness> {
        match backend {
            Backend::Sqlite => Some(Harness::new()),
            Backend::Postgres => Some(Harness::at(Location::Postgres(fresh_database()?), None)),
        }
    }

    fn at(location: Location, dir: Option<tempfile::TempDir>) -> Harness {
        let notify = Arc::new(Notify::new());
        let rt = runtime();
        let store = Store::open_at(&location, Role::Serve, notify.clone());
        // The first request opens (and creates) the store, before the admin view looks.
        rt.block_on(store.open_starts(1)).expect("the store opens");
        let admin = View::open(&location);
        Harness {
            rt,
            _dir: dir,
            location,
            notify,
            store,
            admin,
            pool_ids: (0..EVENTS)
                .map(|e| pool_event(e, SourceKind::Webhook, BASE_MS).id)
                .collect(),
        }
    }

    /// A restart: nothing is in flight (every call was awaited), so everything acknowledged
    /// must still be there. The new backend opens the store only on its first request, after
    /// the old handle is gone. SQLite gives interrupted attempts back at `serve`'s first open;
    /// PostgreSQL when the replica that claimed them leaves (or its lease runs out).
    fn reopen(&mut self) {
        let store = std::mem::replace(
            &mut self.store,
            Store::open_at(&self.location, Role::Serve, self.notify.clone()),
        );
        drop(store);
        if let Location::Postgres(_) = self.location {
            // The old backend's thread gives its claims back as it ends.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !self
                .admin
                .starts(&[StartState::Running])
                .expect("running starts")
                .is_empty()
            {
                assert!(
                    Instant::now() < deadline,
                    "the closed store did not give its running starts back"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.rt
            .block_on(self.store.open_starts(1))
            .expect("the store reopens");
        self.admin = View::open(&self.location);
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

    /// What `changes show` reads of one change agrees with the model: its sightings, its
    /// decisions and its starts; an unknown change is `NoSuchChange`.
    fn check_change(
        &self,
        model: &Model,
        id: &str,
        sightings: &[(String, i64)],
        ctx: &str,
    ) -> Result<(), TestCaseError> {
        let got = self.rt.block_on(self.store.change(id));
        let Some(event) = model.changes.get(id) else {
            prop_assert!(
                matches!(&got, Err(StoreError::NoSuchChange(x)) if x == id),
                "{}: unknown change {}: {:?}",
                ctx,
                id,
                got
            );
            return Ok(());
        };
        let record = got.map_err(|e| TestCaseError::fail(format!("{ctx}: change {id}: {e}")))?;
        same_event(&record.event, Some(event), ctx)?;
        let got_sightings: Vec<(String, i64)> = record
            .sightings
            .iter()
            .map(|s| (s.source.clone(), s.at_ms))
            .collect();
        prop_assert_eq!(
            got_sightings,
            sightings,
            "{}: sightings shown of {}",
            ctx,
            id
        );
        prop_assert_eq!(
            record.decisions.as_ref(),
            model.decisions.get(id),
            "{}: decisions of {}",
            ctx,
            id
        );
        let want: Vec<&ModelStart> = model.starts.iter().filter(|s| s.change_id == id).collect();
        prop_assert_eq!(record.starts.len(), want.len(), "{}: starts of {}", ctx, id);
        for (row, want) in record.starts.iter().zip(want) {
            same_start(row, want, ctx)?;
        }
        // A prefix finds it too (the pool's ids differ in their first 8 characters).
        let by_prefix = self
            .rt
            .block_on(self.store.change(&id[..8]))
            .map(|r| r.id)
            .ok();
        prop_assert_eq!(by_prefix.as_deref(), Some(id), "{}: by prefix", ctx);
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
            prop_assert_eq!(&sightings, &want, "{}: sightings of {}", ctx, id);
            self.check_change(model, id, &want, ctx)?;
        }

        self.check_open(model, 64, ctx)
    }
}

/// Runs `ops` against the store and the model, comparing every answer and, every few steps
/// and at the end, the whole state.
pub(crate) fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    run_on(Backend::Sqlite, ops)
}

/// [`run`] on `backend` (nothing, when PostgreSQL is missing outside strict mode).
pub(crate) fn run_on(backend: Backend, ops: &[Op]) -> Result<(), TestCaseError> {
    let Some(mut h) = Harness::on(backend) else {
        return Ok(());
    };
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
                let req = pool_request(
                    &(*event, *kind, *delivery, starts.clone()),
                    BASE_MS + 8 * step as i64,
                );
                let want = model.intake(&req);
                let got = h.rt.block_on(h.store.intake(req));
                match got {
                    Ok(got) => prop_assert_eq!(got, want, "{}", ctx),
                    Err(e) => prop_assert!(false, "{}: intake failed: {}", ctx, e),
                }
            }
            Op::Batch { intakes } => {
                let requests: Vec<IntakeRequest> = intakes
                    .iter()
                    .enumerate()
                    // A ms apart, so that their sightings have an order.
                    .map(|(j, i)| pool_request(i, BASE_MS + 8 * step as i64 + j as i64))
                    .collect();
                let want: Vec<IntakeOutcome> = requests.iter().map(|r| model.intake(r)).collect();
                let got = h.rt.block_on(h.store.poll(PollBatch {
                    repository: REPOS[0].to_owned(),
                    intakes: requests,
                    cursors: Vec::new(),
                }));
                match got {
                    Ok(got) => prop_assert_eq!(got, want, "{}", ctx),
                    Err(e) => prop_assert!(false, "{}: batch failed: {}", ctx, e),
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
            Op::Replay { event, pipelines } => {
                let change_id = pool_event(*event, KINDS[0], BASE_MS).id;
                let pipelines: Vec<String> =
                    pipelines.iter().map(|&p| PIPELINES[p].to_owned()).collect();
                let Some(git_ref) = model.changes.get(&change_id).map(|e| e.git_ref.clone()) else {
                    continue;
                };
                let want: Vec<Replayed> = pipelines
                    .iter()
                    .map(|p| model.replay(&change_id, p))
                    .collect();
                let got = h.rt.block_on(h.store.replay(ReplayRequest {
                    change_id,
                    git_ref,
                    pipelines,
                }));
                match got {
                    Ok(got) => prop_assert_eq!(got, want, "{}", ctx),
                    Err(e) => prop_assert!(false, "{}: replay failed: {}", ctx, e),
                }
            }
            Op::PruneChanges { all } => {
                let (before, want) = if *all {
                    (i64::MAX, model.prune_changes())
                } else {
                    (0, 0)
                };
                let got = h.rt.block_on(h.store.prune_changes(before));
                match got {
                    Ok(got) => prop_assert_eq!(got, want, "{}", ctx),
                    Err(e) => prop_assert!(false, "{}: prune of changes failed: {}", ctx, e),
                }
            }
            Op::Unknown => {
                let finished =
                    h.rt.block_on(h.store.finish(UNKNOWN, Finish::Succeeded { run: None }));
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

/// `changes` on `backend`: newest first, by repository, by pipeline (decided or started), by
/// age, and a limit.
fn changes_are_filtered_on(backend: Backend) {
    use crate::store::ChangeQuery;
    let Some(h) = Harness::on(backend) else {
        return;
    };
    // Event 0 starts `a`; event 1 only decides on `b`; event 3 (the other repository) nothing.
    let requests = [
        IntakeRequest {
            decisions: vec![Decision {
                pipeline: "a".into(),
                start: true,
                reason: "matched".into(),
            }],
            ..request(pool_event(0, KINDS[0], BASE_MS), None, &["a"])
        },
        IntakeRequest {
            decisions: vec![Decision {
                pipeline: "b".into(),
                start: false,
                reason: "excluded".into(),
            }],
            ..request(pool_event(1, KINDS[0], BASE_MS + 1), None, &[])
        },
        IntakeRequest {
            decisions: Vec::new(),
            ..request(pool_event(3, KINDS[0], BASE_MS + 2), None, &[])
        },
    ];
    let ids: Vec<String> = requests.iter().map(|r| r.event.id.clone()).collect();
    for r in requests {
        h.rt.block_on(h.store.intake(r)).expect("intake");
    }
    // The changes listed, as indices into `ids`.
    let list = |q: ChangeQuery| -> Vec<usize> {
        h.rt.block_on(h.store.changes(ChangeQuery { limit: 10, ..q }))
            .expect("changes")
            .into_iter()
            .filter_map(|c| ids.iter().position(|id| *id == c.id))
            .collect()
    };
    let ctx = format!("{backend:?}");
    assert_eq!(list(ChangeQuery::default()), [2, 1, 0], "{ctx}");
    let first_repo = pool_event(0, KINDS[0], BASE_MS)
        .repository
        .as_str()
        .to_owned();
    assert_eq!(
        list(ChangeQuery {
            repository: Some(first_repo),
            ..ChangeQuery::default()
        }),
        [1, 0],
        "{ctx}"
    );
    for (pipeline, want) in [("a", vec![0]), ("b", vec![1]), ("c", vec![])] {
        assert_eq!(
            list(ChangeQuery {
                pipeline: Some(pipeline.into()),
                ..ChangeQuery::default()
            }),
            want,
            "{ctx}: pipeline {pipeline}"
        );
    }
    assert_eq!(
        list(ChangeQuery {
            pipeline: Some("excluded".into()),
            ..ChangeQuery::default()
        }),
        Vec::<usize>::new(),
        "{ctx}: a reason is not a pipeline"
    );
    assert_eq!(
        list(ChangeQuery {
            since_ms: Some(BASE_MS + 1),
            ..ChangeQuery::default()
        }),
        [2, 1],
        "{ctx}"
    );
    let one =
        h.rt.block_on(h.store.changes(ChangeQuery {
            limit: 1,
            ..ChangeQuery::default()
        }))
        .expect("changes");
    assert_eq!(one.len(), 1, "{ctx}");
    assert_eq!(one[0].decisions.as_deref(), Some(&[][..]), "{ctx}");
}

/// Pruning goes by marks, not by an index on the age: a change is pruned only once a prune
/// made at least the retention ago had seen it, however old its own `received_at`.
fn pruning_waits_for_a_mark_on(backend: Backend) {
    let Some(h) = Harness::on(backend) else {
        return;
    };
    let old = request(pool_event(0, KINDS[0], BASE_MS), None, &[]);
    let id = old.event.id.clone();
    h.rt.block_on(h.store.intake(old)).expect("intake");
    let now = crate::store::now_ms();
    // The first prune marks the change now: it cannot count for a retention that began before.
    let pruned = h.rt.block_on(h.store.prune_changes(now - 60_000));
    assert_eq!(
        pruned.expect("prune"),
        0,
        "{backend:?}: no mark old enough yet"
    );
    assert!(h.rt.block_on(h.store.change(&id)).is_ok(), "{backend:?}");
    // A retention ending after that mark covers it.
    let pruned = h.rt.block_on(h.store.prune_changes(now + 60_000));
    assert_eq!(pruned.expect("prune"), 1, "{backend:?}");
    assert!(
        matches!(
            h.rt.block_on(h.store.change(&id)),
            Err(StoreError::NoSuchChange(_))
        ),
        "{backend:?}"
    );
}

/// The intakes of one transaction are decided the one after the other, each seeing what the
/// ones before it stored: a delivery id, a change id or a ref state met earlier in the batch
/// is a duplicate, and a start supersedes the waiting start an earlier change of the batch made.
fn one_batch_decides_in_order_on(backend: Backend) {
    let Some(h) = Harness::on(backend) else {
        return;
    };
    let (repo, main) = (REPOS[0], "refs/heads/main");
    let push = |before: &str, after: &str, kind: SourceKind, ms: i64| {
        push_event(repo, (main, before, after), kind, BASE_MS + ms)
    };
    let superseding = |event: ChangeEvent, delivery: &str| {
        let mut req = request(event, Some(delivery), &["a"]);
        req.starts[0].supersede = true;
        req
    };
    let first = push(SHA1, SHA2, SourceKind::Webhook, 0);
    // The same ref state reported with another `before` (another id): the first change.
    let same_state = push(SHA3, SHA2, SourceKind::Poll, 1);
    assert_ne!(same_state.id, first.id);
    let next = push(SHA2, SHA3, SourceKind::Webhook, 3);
    let batch = PollBatch {
        repository: repo.to_owned(),
        intakes: vec![
            superseding(first.clone(), "d0"),
            request(same_state, Some("d1"), &["a"]),
            request(
                push(SHA1, SHA2, SourceKind::Eventbridge, 2),
                Some("d2"),
                &["a"],
            ),
            // The first one's delivery id.
            superseding(next.clone(), "d0"),
            superseding(next.clone(), "d3"),
        ],
        cursors: Vec::new(),
    };
    let got = h.rt.block_on(h.store.poll(batch)).expect("the batch");
    let duplicate = |change: &ChangeEvent, why| IntakeOutcome::Duplicate {
        change_id: change.id.clone(),
        why,
    };
    let accepted = |change: &ChangeEvent| IntakeOutcome::Accepted {
        change_id: change.id.clone(),
        starts: vec![start_id(&change.id, "a")],
    };
    assert_eq!(
        got,
        vec![
            accepted(&first),
            duplicate(&first, DuplicateOf::Change),
            duplicate(&first, DuplicateOf::Change),
            duplicate(&next, DuplicateOf::Delivery),
            accepted(&next),
        ],
        "{backend:?}"
    );
    let states: Vec<(String, StartState)> = h
        .admin
        .starts(&[])
        .expect("starts")
        .into_iter()
        .map(|s| (s.change_id, s.state))
        .collect();
    assert_eq!(
        states,
        [
            (first.id.clone(), StartState::Superseded),
            (next.id.clone(), StartState::Pending)
        ],
        "{backend:?}"
    );
    let sightings = h.admin.sightings(&first.id).expect("sightings");
    let sources: Vec<&str> = sightings.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(sources, ["webhook", "poll", "eventbridge"], "{backend:?}");

    // Changes that none of the batch decides (PostgreSQL stores such a batch a table at a
    // time): a delivery id twice, and a stored change that is no longer its ref's newest.
    let later = push(SHA3, &"4".repeat(40), SourceKind::Webhook, 4);
    let dev = push_event(repo, PUSHES[2], SourceKind::Webhook, BASE_MS + 5);
    let batch = PollBatch {
        repository: repo.to_owned(),
        intakes: vec![
            request(later.clone(), Some("d9"), &[]),
            request(dev.clone(), Some("d9"), &[]),
            request(push(SHA1, SHA2, SourceKind::Poll, 6), Some("d10"), &[]),
        ],
        cursors: Vec::new(),
    };
    let got =
        h.rt.block_on(h.store.poll(batch))
            .expect("the second batch");
    assert_eq!(
        got,
        vec![
            IntakeOutcome::Accepted {
                change_id: later.id.clone(),
                starts: Vec::new()
            },
            duplicate(&dev, DuplicateOf::Delivery),
            duplicate(&first, DuplicateOf::Change),
        ],
        "{backend:?}"
    );
}

#[test]
fn sqlite_decides_one_batch_in_order() {
    one_batch_decides_in_order_on(Backend::Sqlite);
}

#[test]
fn postgres_decides_one_batch_in_order() {
    one_batch_decides_in_order_on(Backend::Postgres);
}

/// A start is named by its id or a prefix of it in the id's own alphabet: `LIKE`'s wildcards
/// name none, however many starts there are.
fn wildcards_name_no_start_on(backend: Backend) {
    let Some(h) = Harness::on(backend) else {
        return;
    };
    let req = request(pool_event(0, KINDS[0], BASE_MS), None, &["a"]);
    let id = start_id(&req.event.id, "a");
    h.rt.block_on(h.store.intake(req)).expect("intake");
    for wild in ["____", "%%%%", "%", "____%", "\\%%%"] {
        let got = h.rt.block_on(h.store.transition(wild, Transition::Drop));
        assert!(
            matches!(&got, Err(StoreError::NoSuchStart(named)) if named == wild),
            "{backend:?} {wild:?}: {got:?}"
        );
    }
    let open = h.rt.block_on(h.store.starts(&[StartState::Pending]));
    assert_eq!(open.expect("starts").len(), 1, "{backend:?}: still open");
    let dropped =
        h.rt.block_on(h.store.transition(&id[..6], Transition::Drop));
    assert_eq!(dropped.expect("by its prefix").id, id, "{backend:?}");
}

#[test]
fn sqlite_wildcards_name_no_start() {
    wildcards_name_no_start_on(Backend::Sqlite);
}

#[test]
fn postgres_wildcards_name_no_start() {
    wildcards_name_no_start_on(Backend::Postgres);
}

/// Operator sessions: stored under a digest, read back, ended by a logout, forgotten once they
/// end when the next one opens.
fn sessions_are_kept_and_ended_on(backend: Backend) {
    let Some(h) = Harness::on(backend) else {
        return;
    };
    let row = |n: u8, expires_ms: i64| SessionRow {
        id_hash: format!("{n:02x}").repeat(32),
        token_mac: format!("mac{n}"),
        expires_ms,
    };
    let (a, b) = (row(1, 5_000), row(2, 9_000));
    h.rt.block_on(h.store.open_session(a.clone(), 1_000))
        .expect("open a");
    h.rt.block_on(h.store.open_session(b.clone(), 1_000))
        .expect("open b");
    let read = |id: &str| h.rt.block_on(h.store.session(id.to_owned())).expect("read");
    assert_eq!(read(&a.id_hash), Some(a.clone()), "{backend:?}");
    assert_eq!(read(&b.id_hash), Some(b.clone()), "{backend:?}");
    assert_eq!(read(&"00".repeat(32)), None, "{backend:?}");
    let ended = h.rt.block_on(h.store.end_session(b.id_hash.clone()));
    assert!(ended.expect("end"), "{backend:?}");
    assert_eq!(read(&b.id_hash), None, "{backend:?}: logged out");
    let again = h.rt.block_on(h.store.end_session(b.id_hash.clone()));
    assert!(!again.expect("end"), "{backend:?}");
    // A session opened after `a` ended forgets it.
    let c = row(3, 20_000);
    h.rt.block_on(h.store.open_session(c.clone(), 6_000))
        .expect("open c");
    assert_eq!(read(&a.id_hash), None, "{backend:?}: ended and forgotten");
    assert_eq!(read(&c.id_hash), Some(c), "{backend:?}");
}

#[test]
fn sqlite_keeps_and_ends_sessions() {
    sessions_are_kept_and_ended_on(Backend::Sqlite);
}

#[test]
fn postgres_keeps_and_ends_sessions() {
    sessions_are_kept_and_ended_on(Backend::Postgres);
}

#[test]
fn sqlite_prunes_by_its_marks() {
    pruning_waits_for_a_mark_on(Backend::Sqlite);
}

#[test]
fn postgres_prunes_by_its_marks() {
    pruning_waits_for_a_mark_on(Backend::Postgres);
}

#[test]
fn sqlite_lists_changes_newest_first_and_filtered() {
    changes_are_filtered_on(Backend::Sqlite);
}

#[test]
fn postgres_lists_changes_newest_first_and_filtered() {
    changes_are_filtered_on(Backend::Postgres);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        // Shrunk failures are printed; no regression file is written next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn sqlite_store_agrees_with_the_model(ops in proptest::collection::vec(op_strategy(), 1..40)) {
        run_on(Backend::Sqlite, &ops)?;
    }

    #[test]
    fn postgres_store_agrees_with_the_model(ops in proptest::collection::vec(op_strategy(), 1..40)) {
        run_on(Backend::Postgres, &ops)?;
    }
}
