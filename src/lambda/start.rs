//! Starting a change's pipelines within an invocation: each matching pipeline's start, unless
//! it succeeded before (this instance remembers, or the claims table says `COMPLETED`), under
//! this instance's claim when there is a table, retried with the configured policy as far as
//! the deadline allows. The targets are reached in one place, `Handler::start_target`.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use tracing::Instrument as _;

use super::Handler;
use crate::aws::claims::Claim;
use crate::event::ChangeEvent;
use crate::metrics::Name;
use crate::outcome::{DuplicateOf, IntakeOutcome, start_id};
use crate::pipeline::Pipeline;
use crate::target::{Attempt, Failure, Run};
use crate::trace::TraceParent;
use crate::transport::{Transports, exec};

/// Succeeded start ids a warm instance remembers, so that a redelivery does not repeat them.
const REMEMBERED: usize = 10_000;

/// How a function's attempts reach their targets: the AWS calls in `region` through
/// `endpoint_url` (the `eventbridge:` section's), `exec`'s event files in the temp dir.
pub(super) fn transports(region: Option<String>, endpoint_url: Option<String>) -> Transports {
    let aws = crate::transport::aws::Aws::new(region, endpoint_url);
    Transports::new(aws, exec::events_dir(&std::env::temp_dir()))
}

/// How one start of a change ended.
enum Started {
    /// Attempted now, and it succeeded.
    Now,
    /// It had succeeded before (remembered here, or `COMPLETED` in the table).
    Before,
}

/// The start ids this instance started, oldest first, bounded.
#[derive(Debug, Default)]
pub(super) struct Remembered {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Remembered {
    fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    fn insert(&mut self, id: String) {
        if self.ids.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > REMEMBERED
                && let Some(old) = self.order.pop_front()
            {
                self.ids.remove(&old);
            }
        }
    }
}

/// One start of a change, as its attempts see it.
struct One<'a> {
    pipeline: &'a Pipeline,
    /// The start's id (the change's and the pipeline's).
    id: &'a str,
    change: &'a ChangeEvent,
    /// The change as the targets send it.
    event_json: &'a str,
    /// The trace the start's spans belong to.
    traceparent: &'a TraceParent,
}

impl Handler {
    /// Starts every pipeline `change` matches that this instance has not started yet, in the
    /// trace of `traceparent` (the function URL request's), else a new one.
    pub(super) async fn start_change(
        &self,
        change: &ChangeEvent,
        deadline: Instant,
        traceparent: Option<TraceParent>,
    ) -> Result<IntakeOutcome, String> {
        let event_json = serde_json::to_string(change)
            .map_err(|e| format!("change {}: cannot be written as JSON: {e}", change.id))?;
        let traceparent = crate::telemetry::for_change(traceparent)
            .unwrap_or_else(|| TraceParent::of_change(&change.id));
        let matching = self.pipelines.matching(change);
        let mut started = Vec::new();
        let mut failed = Vec::new();
        let mut repeated = 0;
        for pipeline in &matching {
            let id = start_id(&change.id, &pipeline.name);
            let span = tracing::info_span!(
                "dispatch",
                change_id = %change.id,
                start_id = %id,
                pipeline = %pipeline.name,
            );
            crate::telemetry::set_parent(&span, &traceparent);
            let one = One {
                pipeline,
                id: &id,
                change,
                event_json: &event_json,
                traceparent: &traceparent,
            };
            match self.start_once(&one, deadline).instrument(span).await {
                Ok(Started::Now) => started.push(id),
                Ok(Started::Before) => repeated += 1,
                Err(why) => failed.push(format!("{}: {why}", pipeline.name)),
            }
        }
        if !failed.is_empty() {
            return Err(format!(
                "change {}: {} of {} pipeline(s) could not be started ({})",
                change.id,
                failed.len(),
                matching.len(),
                failed.join("; ")
            ));
        }
        if repeated > 0 && started.is_empty() {
            return Ok(IntakeOutcome::Duplicate {
                change_id: change.id.clone(),
                why: DuplicateOf::Change,
            });
        }
        Ok(IntakeOutcome::Accepted {
            change_id: change.id.clone(),
            starts: started,
        })
    }

    /// Start `id` of `pipeline`, unless it succeeded before: remembered here, or (with a table)
    /// `COMPLETED` there. With a table the start is attempted only under this instance's claim,
    /// and only while the claim lasts.
    async fn start_once(&self, one: &One<'_>, deadline: Instant) -> Result<Started, String> {
        let (pipeline, id) = (one.pipeline, one.id);
        if self.remembered(id) {
            return Ok(Started::Before);
        }
        let Some(claims) = &self.claims else {
            self.attempt(one, deadline).await.map_err(|f| f.message)?;
            self.remember(id.to_owned());
            return Ok(Started::Now);
        };
        let (token, until) = match claims.claim(id, deadline).await {
            Ok(Claim::Ours { token, until }) => (token, until),
            Ok(Claim::Done) => {
                tracing::info!(pipeline = %pipeline.name, start = %id, "started before (COMPLETED in DynamoDB); not repeated");
                self.remember(id.to_owned());
                return Ok(Started::Before);
            }
            Ok(Claim::Busy { until_ms }) => {
                tracing::warn!(pipeline = %pipeline.name, start = %id, claim_until_ms = until_ms, "another instance is attempting this start; reported for AWS to deliver again");
                return Err(format!(
                    "start {id} is being attempted by another instance (its claim lasts until \
                     {}); delivered again, it finds the outcome",
                    jiff::Timestamp::from_millisecond(until_ms)
                        .map_or_else(|_| until_ms.to_string(), |t| t.to_string())
                ));
            }
            Err(e) => {
                tracing::error!(pipeline = %pipeline.name, start = %id, error = %e, "start not attempted: its claim could not be made; reported for AWS to deliver again");
                return Err(format!("start {id} not attempted: {e}"));
            }
        };
        let result = self.attempt(one, until.min(deadline)).await;
        match result {
            Ok(()) => {
                self.remember(id.to_owned());
                match claims.complete(id, &token).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(pipeline = %pipeline.name, start = %id, "started, but the claim had lapsed and another instance holds it now");
                    }
                    // Started all the same: the item stays INPROGRESS until its lease lapses,
                    // and then a redelivery of this change (should another of its pipelines
                    // fail) starts it again, with the same start id.
                    Err(e) => {
                        tracing::error!(pipeline = %pipeline.name, start = %id, error = %e, "started, but not marked COMPLETED");
                    }
                }
                Ok(Started::Now)
            }
            Err(f) => {
                match claims.release(id, &token).await {
                    Ok(_) => {}
                    // The claim lapses by itself before the record comes back.
                    Err(e) => {
                        tracing::error!(pipeline = %pipeline.name, start = %id, error = %e, "the failed start's claim was not deleted; it lapses with its lease");
                    }
                }
                Err(f.message)
            }
        }
    }

    /// Attempts one start until it succeeds, fails for good, runs out of attempts, or the next
    /// retry would end past the deadline.
    async fn attempt(&self, one: &One<'_>, deadline: Instant) -> Result<(), Failure> {
        let (pipeline, id) = (one.pipeline, one.id);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let start = self.start_target(one, attempt);
            let result = tokio::time::timeout_at(deadline.into(), start)
                .await
                .unwrap_or_else(|_| Err(Failure::retry("the invocation's time ran out")));
            let outcome = match &result {
                Ok(_) => "succeeded",
                Err(f) if f.retry && attempt < self.policy.attempts => "retry",
                Err(_) => "failed",
            };
            self.metrics
                .start_attempt(&Name::from(pipeline.name.as_str()), outcome);
            let failure = match result {
                Ok(run) => {
                    let run = run.id.as_deref().unwrap_or("");
                    tracing::info!(pipeline = %pipeline.name, start = %id, attempt, run, "started");
                    return Ok(());
                }
                Err(f) => f,
            };
            let delay = failure.after.unwrap_or_else(|| self.policy.delay(attempt));
            if outcome == "failed" || Instant::now() + delay >= deadline {
                tracing::error!(pipeline = %pipeline.name, start = %id, attempt, error = %failure.message, "start failed; the invocation reports it for AWS to deliver again");
                return Err(failure);
            }
            tracing::warn!(pipeline = %pipeline.name, start = %id, attempt, retry_in_ms = delay.as_millis() as u64, error = %failure.message, "start failed; will retry");
            tokio::time::sleep(delay).await;
        }
    }

    /// Attempt number `attempt` of one start on its target, in its own span of the change's
    /// trace: the only call to the targets.
    async fn start_target(&self, one: &One<'_>, attempt: u32) -> Result<Run, Failure> {
        let (span, outgoing) = crate::telemetry::attempt(attempt, one.traceparent);
        let inputs = Attempt {
            pipeline: &one.pipeline.name,
            start_id: one.id,
            number: attempt,
            event: one.change,
            event_json: one.event_json,
            traceparent: &outgoing,
            timeout: one.pipeline.timeout,
        };
        self.transports
            .attempt(&one.pipeline.target, &inputs)
            .instrument(span)
            .await
    }

    fn remembered(&self, id: &str) -> bool {
        self.started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(id)
    }

    fn remember(&self, id: String) {
        self.started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_starts_are_bounded_oldest_first() {
        let mut r = Remembered::default();
        for i in 0..REMEMBERED + 2 {
            r.insert(format!("s{i}"));
        }
        r.insert("s5".into());
        assert!(!r.contains("s0") && !r.contains("s1"));
        assert!(r.contains("s2") && r.contains(&format!("s{}", REMEMBERED + 1)));
        assert_eq!(r.ids.len(), REMEMBERED);
        assert_eq!(r.order.len(), REMEMBERED);
    }
}
