//! The dispatcher: carries out stored starts — once each per success, in the order and with
//! the concurrency each pipeline's mode asks for — retrying failures with exponential backoff
//! and jitter, and dead-lettering what runs out of attempts.
//!
//! The store is the queue. New work wakes the dispatcher at once (the store notifies after a
//! commit that created starts); a one-second sweep picks up due retries and what `outbox retry`
//! reopened from another process. Which starts are in flight lives only in memory: after a
//! crash every open start is claimable again, and its retry carries the same start id.
//!
//! A pipeline's slot is given back when its attempt ends, not when the store has recorded
//! the outcome (the record is on its way; it holds the start until it commits), and a claim
//! commits without waiting for the disk: between one start and the next the dispatcher
//! waits for no flush, which under a busy intake would be behind the intake's batches.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::event::ChangeEvent;
use crate::metrics::{Metrics, Name};
use crate::pipeline::{Mode, Pipeline, Pipelines};
use crate::shutdown::Shutdown;
use crate::store::{ClaimRequest, Finish, StartRow, StartState, Store, now_ms};
use crate::target::{Attempt, Failure};
use crate::trace::TraceParent;
use crate::transport::{Transports, aws::Aws};

/// How often the dispatcher looks at a shared store (PostgreSQL) without being woken: the other
/// replicas' new starts wake it (LISTEN/NOTIFY); this is the backstop for a notification lost
/// while its listening connection was down.
const SWEEP: Duration = Duration::from_secs(10);
/// How often it looks at a store of its own (SQLite) without being woken: every write of this
/// process wakes it, a command beside it rings the store's doorbell, and a retry due wakes it
/// at its time; this is only the backstop.
const IDLE_SWEEP: Duration = Duration::from_secs(60);
/// Open starts read per pipeline and pass at most.
const WINDOW: u32 = 64;
/// The longest wait between two tries to record an attempt's outcome in a store that fails.
const FINISH_RETRY: Duration = Duration::from_secs(1);

/// Retry policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub attempts: u32,
    pub backoff: Duration,
    pub backoff_max: Duration,
}

impl Policy {
    /// The delay after the `failures`-th failure: `backoff * 2^(failures-1)`, capped, with
    /// jitter drawing it from its upper half.
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let full = self.backoff.saturating_mul(1 << exp).min(self.backoff_max);
        let half = full / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Everything an attempt needs, shared by all attempts.
#[derive(Debug)]
struct Shared {
    store: Store,
    metrics: Arc<Metrics>,
    /// Each pipeline's name as a metric label, made once.
    labels: HashMap<String, Name>,
    policy: Policy,
    transports: Transports,
}

impl Shared {
    /// The metric label of pipeline `name`.
    fn label(&self, name: &str) -> Name {
        self.labels
            .get(name)
            .cloned()
            .unwrap_or_else(|| Name::from(name))
    }
}

/// The dispatcher's state.
#[derive(Debug)]
pub struct Dispatcher {
    shared: Arc<Shared>,
    pipelines: Arc<Pipelines>,
    new_work: Arc<Notify>,
    /// Start id → its pipeline, and whether it still holds one of the pipeline's slots: for
    /// starts being attempted now or whose outcome is being recorded.
    in_flight: HashMap<String, (String, bool)>,
    /// Slots held, by pipeline.
    running: HashMap<String, u32>,
    tasks: JoinSet<String>,
    /// Told the start id by an attempt that ended and sent its record.
    ended_tx: mpsc::UnboundedSender<String>,
    ended_rx: mpsc::UnboundedReceiver<String>,
}

impl Dispatcher {
    /// A dispatcher over the store.
    pub fn new(
        store: Store,
        pipelines: Arc<Pipelines>,
        policy: Policy,
        state_dir: PathBuf,
        new_work: Arc<Notify>,
        metrics: Arc<Metrics>,
        aws: Aws,
    ) -> Dispatcher {
        let shared = Shared {
            store,
            metrics,
            labels: pipelines
                .list
                .iter()
                .map(|p| (p.name.clone(), Name::from(p.name.as_str())))
                .collect(),
            policy,
            transports: Transports::new(aws, crate::transport::exec::events_dir(&state_dir)),
        };
        let (ended_tx, ended_rx) = mpsc::unbounded_channel();
        Dispatcher {
            shared: Arc::new(shared),
            pipelines,
            new_work,
            in_flight: HashMap::new(),
            running: HashMap::new(),
            tasks: JoinSet::new(),
            ended_tx,
            ended_rx,
        }
    }

    /// Number of starts being attempted now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// One pass: claims every start that may begin now and spawns its attempt. Returns when the
    /// next not-yet-due start becomes due (Unix ms), if any.
    pub async fn dispatch_once(&mut self) -> Option<i64> {
        self.shared.metrics.dispatch_pass();
        let rows = match self.shared.store.open_starts(WINDOW).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "dispatcher cannot read the store");
                self.shared.metrics.store_error();
                return None;
            }
        };
        let now = now_ms();
        let mut next_due: Option<i64> = None;
        // Rows arrive in intake order; group them by pipeline, keeping that order.
        let mut groups: Vec<(String, Vec<StartRow>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for row in rows {
            let i = *index.entry(row.pipeline.clone()).or_insert_with(|| {
                groups.push((row.pipeline.clone(), Vec::new()));
                groups.len() - 1
            });
            groups[i].1.push(row);
        }
        // (the pipeline's index in the definitions, the start)
        let mut chosen: Vec<(usize, StartRow)> = Vec::new();
        for (name, group) in groups {
            let Some(p) = self.pipelines.index_of(&name) else {
                for row in group {
                    if !self.in_flight.contains_key(&row.id) {
                        let error = format!("pipeline {name:?} is no longer defined in triggers/");
                        let _ = self
                            .shared
                            .store
                            .finish(&row.id, Finish::Dead { error })
                            .await;
                    }
                }
                continue;
            };
            let pipeline = &self.pipelines.list[p];
            let limit = pipeline.concurrency as usize;
            let eligible: Vec<StartRow> = match pipeline.mode {
                // In order: only the first `limit` open starts may run, even while one of
                // them waits for a retry.
                Mode::Queued | Mode::Superseded => group.into_iter().take(limit).collect(),
                Mode::Parallel => group,
            };
            let mut running = self.running.get(&name).copied().unwrap_or(0) as usize;
            for row in eligible {
                if self.in_flight.contains_key(&row.id) || row.state == StartState::Running {
                    continue;
                }
                if row.next_attempt_ms > now {
                    next_due =
                        Some(next_due.map_or(row.next_attempt_ms, |d| d.min(row.next_attempt_ms)));
                    continue;
                }
                if running >= limit {
                    break;
                }
                running += 1;
                chosen.push((p, row));
            }
        }
        if chosen.is_empty() {
            return next_due;
        }
        // Mark them running in the store first, so that a newer change cannot supersede a
        // start that is already under way. The events come with the claim: only the starts
        // that begin are read whole.
        // The pipeline's concurrency goes with each claim: on a store several replicas share,
        // the store counts what runs everywhere and claims no more than the limit allows.
        let wanted = chosen
            .iter()
            .map(|(p, row)| ClaimRequest {
                id: row.id.clone(),
                pipeline: row.pipeline.clone(),
                limit: self.pipelines.list[*p].concurrency,
            })
            .collect();
        let claimed = match self.shared.store.claim_within(wanted).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "dispatcher cannot claim starts");
                self.shared.metrics.store_error();
                return next_due;
            }
        };
        let mut events: HashMap<String, (String, Option<String>)> = claimed
            .into_iter()
            .map(|c| (c.id, (c.event, c.traceparent)))
            .collect();
        for (p, row) in chosen {
            if let Some((event, traceparent)) = events.remove(&row.id) {
                self.spawn(p, row, event, traceparent);
            }
        }
        next_due
    }

    /// Begins an attempt of `row` in a span `dispatch` of the change's trace (a change stored
    /// before traces were kept gets a new one).
    fn spawn(&mut self, p: usize, row: StartRow, event: String, traceparent: Option<String>) {
        let name = self.pipelines.list[p].name.clone();
        self.in_flight.insert(row.id.clone(), (name.clone(), true));
        *self.running.entry(name).or_default() += 1;
        self.shared.metrics.in_flight(1);
        let shared = Arc::clone(&self.shared);
        let pipelines = Arc::clone(&self.pipelines);
        let ended = self.ended_tx.clone();
        let traceparent = traceparent
            .as_deref()
            .and_then(TraceParent::parse)
            .unwrap_or_else(|| TraceParent::of_change(&row.change_id));
        let span = tracing::info_span!(
            "dispatch",
            change_id = %row.change_id,
            start_id = %row.id,
            pipeline = %row.pipeline,
        );
        crate::telemetry::set_parent(&span, &traceparent);
        self.tasks.spawn(
            async move {
                let pipeline = &pipelines.list[p];
                let id = row.id.clone();
                attempt(&shared, pipeline, row, event, &traceparent, &ended).await;
                id
            }
            .instrument(span),
        );
    }

    /// True when every pipeline runs as many starts as its concurrency allows.
    fn all_busy(&self) -> bool {
        self.pipelines
            .list
            .iter()
            .all(|p| self.running.get(&p.name).copied().unwrap_or(0) >= p.concurrency)
    }

    /// Gives back the slot of start `id` if it still holds one.
    fn free_slot(&mut self, id: &str) {
        if let Some((pipeline, holds)) = self.in_flight.get_mut(id)
            && std::mem::take(holds)
            && let Some(n) = self.running.get_mut(pipeline.as_str())
        {
            *n = n.saturating_sub(1);
        }
    }

    /// The task of start `id` is over: its outcome is recorded (or it was stopped).
    fn finished(&mut self, id: &str) {
        self.free_slot(id);
        if self.in_flight.remove(id).is_some() {
            self.shared.metrics.in_flight(-1);
        }
    }

    /// Runs until shutdown; then waits up to `grace` for attempts in flight. Attempts still
    /// running after that are stopped and stay open in the store, to resume at the next start.
    pub async fn run(mut self, mut shutdown: Shutdown, grace: Duration) {
        let mut next_due = self.dispatch_once().await;
        let sweep = if self.shared.store.is_shared() {
            SWEEP
        } else {
            IDLE_SWEEP
        };
        loop {
            let wait = next_due
                .map(|due| Duration::from_millis(due.saturating_sub(now_ms()).max(0) as u64))
                .unwrap_or(sweep)
                .min(sweep);
            let only_new_work = tokio::select! {
                _ = shutdown.wait() => break,
                _ = self.new_work.notified() => true,
                Some(id) = self.ended_rx.recv() => {
                    self.free_slot(&id);
                    false
                }
                Some(done) = self.tasks.join_next() => {
                    if let Ok(id) = done {
                        self.finished(&id);
                    }
                    false
                }
                _ = tokio::time::sleep(wait) => false,
            };
            // Take every attempt that ended meanwhile, so that one pass refills all the freed
            // slots instead of one pass per ended attempt.
            let mut ended = false;
            while let Ok(id) = self.ended_rx.try_recv() {
                self.free_slot(&id);
                ended = true;
            }
            while let Some(done) = self.tasks.try_join_next() {
                if let Ok(id) = done {
                    self.finished(&id);
                }
                ended = true;
            }
            // New work cannot start anything while every pipeline runs at its limit: the next
            // ended attempt (or the sweep) brings the dispatcher back.
            if only_new_work && !ended && self.all_busy() {
                continue;
            }
            next_due = self.dispatch_once().await;
        }
        let deadline = Instant::now() + grace;
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline.into(), self.tasks.join_next()).await {
                Ok(Some(Ok(id))) => self.finished(&id),
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(
                        in_flight = self.in_flight.len(),
                        "grace period over: stopping attempts still running; they resume at the next start"
                    );
                    self.tasks.shutdown().await;
                    let ids: Vec<String> = self.in_flight.keys().cloned().collect();
                    if let Err(e) = self.shared.store.release(ids).await {
                        tracing::warn!(error = %e, "cannot reopen the stopped starts; they reopen at the next start");
                    }
                    break;
                }
            }
        }
        // The event files' directory is this dispatcher's own.
        let events_dir = self.shared.transports.events_dir();
        if crate::transport::exec::is_private(events_dir) {
            let _ = std::fs::remove_dir_all(events_dir);
        }
    }
}

/// One attempt of one start, and its record in the store.
async fn attempt(
    shared: &Shared,
    pipeline: &Pipeline,
    row: StartRow,
    event_json: String,
    traceparent: &TraceParent,
    ended: &mpsc::UnboundedSender<String>,
) {
    let event: Option<ChangeEvent> = serde_json::from_str(&event_json).ok();
    if row.attempts == 0
        && let Some(e) = &event
    {
        let waited = (now_ms() - e.received_at.as_millisecond()).max(0) as f64 / 1000.0;
        shared
            .metrics
            .start_latency(&shared.label(&pipeline.name), waited);
    }
    let result = match &event {
        None => Err(Failure::dead("the stored change event cannot be read")),
        Some(event) => {
            let number = row.attempts + 1;
            let (span, traceparent) = crate::telemetry::attempt(number, traceparent);
            let attempt = Attempt {
                pipeline: &pipeline.name,
                start_id: &row.id,
                number,
                event,
                event_json: &event_json,
                traceparent: &traceparent,
                timeout: pipeline.timeout,
            };
            let target = &pipeline.target;
            shared
                .transports
                .attempt(target, &attempt)
                .instrument(span)
                .await
        }
    };
    // A crash here: the target started something, the store does not know it. The start runs
    // again after the restart, with the same start id (the targets' idempotency token).
    crate::crash_point("start-attempted");
    let failures = row.attempts + 1;
    let finish = match result {
        Ok(run) => Finish::Succeeded { run: run.id },
        Err(f) if f.retry && failures < shared.policy.attempts => {
            let delay = f.after.unwrap_or_else(|| shared.policy.delay(failures));
            Finish::Retry {
                at_ms: now_ms() + delay.as_millis() as i64,
                error: f.message,
            }
        }
        Err(f) => Finish::Dead { error: f.message },
    };
    let outcome = match &finish {
        Finish::Succeeded { .. } => "succeeded",
        Finish::Retry { .. } => "retry",
        Finish::Dead { .. } => "dead",
    };
    shared
        .metrics
        .start_attempt(&shared.label(&pipeline.name), outcome);
    match &finish {
        Finish::Succeeded { run } => {
            tracing::info!(pipeline = %pipeline.name, start = %row.id, attempt = failures, run = run.as_deref().unwrap_or(""), "started")
        }
        Finish::Retry { error, at_ms } => {
            tracing::warn!(pipeline = %pipeline.name, start = %row.id, attempt = failures, retry_in_ms = at_ms - now_ms(), %error, "start failed; will retry")
        }
        Finish::Dead { error } => {
            tracing::error!(pipeline = %pipeline.name, start = %row.id, attempt = failures, %error, "start failed; dead-lettered")
        }
    }
    // Record the outcome, however long the store takes to come back: until it is recorded the
    // start stays in flight here (running in the store, its lease renewed), so that it is
    // neither left running with nobody attempting it nor attempted again elsewhere. A stop
    // meanwhile ends the attempt after the grace period: the start then runs again. The slot
    // is free once the record is sent.
    let mut record = shared.store.finish(&row.id, finish.clone());
    let _ = ended.send(row.id.clone());
    let mut failures = 0u32;
    loop {
        match record.await {
            Ok(_) => {
                if failures > 0 {
                    tracing::info!(start = %row.id, failures, "the start's outcome is recorded");
                }
                return;
            }
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(start = %row.id, error = %e, "cannot record the start's outcome; trying again until the store answers");
                }
                shared.metrics.store_error();
                failures += 1;
            }
        }
        tokio::time::sleep(FINISH_RETRY.min(Duration::from_millis(50) * 4u32.pow(failures.min(3))))
            .await;
        record = shared.store.finish(&row.id, finish.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let p = Policy {
            attempts: 8,
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(10),
        };
        for _ in 0..200 {
            let d1 = p.delay(1);
            assert!(
                d1 >= Duration::from_millis(500) && d1 <= Duration::from_secs(1),
                "{d1:?}"
            );
            let d3 = p.delay(3);
            assert!(
                d3 >= Duration::from_secs(2) && d3 <= Duration::from_secs(4),
                "{d3:?}"
            );
            let d9 = p.delay(9);
            assert!(
                d9 >= Duration::from_secs(5) && d9 <= Duration::from_secs(10),
                "{d9:?}"
            );
            assert!(p.delay(u32::MAX) <= Duration::from_secs(10));
        }
    }
}
