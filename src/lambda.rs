//! `switchyard lambda`: the same decisions as `serve`, as an AWS Lambda function.
//!
//! One handler answers the three ways AWS invokes it: an EventBridge event handed over directly,
//! an SQS batch (the queue an EventBridge rule fills), and a function URL request carrying a
//! webhook. Lambda has no durable local disk, so there is no store and no outbox: each change's
//! starts are attempted within the invocation, with the configured retries as far as the
//! invocation's deadline allows, and a change whose starts did not all succeed is reported as
//! failed so that AWS delivers it again (the SQS record in `batchItemFailures`, the direct event
//! as a function error, the webhook as a 503). A start carries the same start id on every
//! attempt and every redelivery, so a runner can drop a repeat; within one warm instance,
//! starts that already succeeded are not repeated.
//!
//! With `SWITCHYARD_DYNAMODB_TABLE` set, each start id is also claimed in that table before the
//! start is attempted (`aws::claims`, Powertools' idempotency design), so that two instances
//! given the same change never both start it:
//!
//! - a claim won: the start is attempted while the claim's lease lasts; a success marks the
//!   item `COMPLETED`, a failure deletes it, so that the redelivery AWS makes may attempt it;
//! - a `COMPLETED` item: the start happened already (on any instance); it counts as done, and
//!   the change as a duplicate when nothing else started;
//! - an `INPROGRESS` item of another instance whose lease has not lapsed: that instance is
//!   attempting the start now. The change is reported as failed, not as done, because the other
//!   attempt may yet fail: an SQS record comes back after the visibility timeout (longer than
//!   any lease), and finds `COMPLETED` (and succeeds without starting), or no item (and starts).
//!   Answering success here would lose the change whenever the other attempt fails;
//! - any other DynamoDB error: the start is not attempted, and the change is reported as failed
//!   for AWS to deliver again (a claim that cannot be checked could be a duplicate).
//!
//! The warm instance's memory of succeeded start ids stays in front of the table, so a
//! redelivery to the same instance asks DynamoDB nothing. Without the variable, nothing of this
//! happens: delivery is at least once, and the start id is the runner's key to drop a repeat.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use base64::Engine as _;
use hyper::HeaderMap;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::aws::claims::{self, Claim, Claims};
use crate::config::{Config, Provider, Receiver};
use crate::dispatch::{Failure, Policy, Starter};
use crate::event::ChangeEvent;
use crate::http::routes::{self, Route};
use crate::metrics::{Metrics, Name};
use crate::outcome::{DuplicateOf, IntakeOutcome, start_id};
use crate::pipeline::{Pipeline, Pipelines};
use crate::secret::SecretRef;
use crate::sources::eventbridge::envelope::{self, Envelope};
use crate::sources::webhook::{Answer, BodyError, Hooks, Receivers, Sink};
use crate::trace::TraceParent;

/// The environment variables the Lambda runtime client needs; AWS sets them.
const RUNTIME_VARIABLES: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Time kept back from an invocation's deadline to report its outcome.
const MARGIN: Duration = Duration::from_millis(1500);

/// Succeeded start ids a warm instance remembers, so that a redelivery does not repeat them.
const REMEMBERED: usize = 10_000;

/// The DynamoDB table in which start ids are claimed across instances; unset: no claims.
pub const TABLE_VARIABLE: &str = "SWITCHYARD_DYNAMODB_TABLE";

/// How long a claimed start id counts (a duration: `336h`, `24h`); unset: 14 days.
pub const TTL_VARIABLE: &str = "SWITCHYARD_DYNAMODB_TTL";

/// The receivers made from the environment when no `switchyard.yaml` is bundled: each variable
/// that is set makes a receiver named after its provider (`/hooks/github`).
pub const SECRET_VARIABLES: [(&str, Provider); 5] = [
    ("SWITCHYARD_SECRET_GITHUB", Provider::GitHub),
    ("SWITCHYARD_SECRET_GITLAB", Provider::GitLab),
    ("SWITCHYARD_SECRET_BITBUCKET", Provider::Bitbucket),
    ("SWITCHYARD_SECRET_GITEA", Provider::Gitea),
    ("SWITCHYARD_SECRET_STANDARD", Provider::Standard),
];

/// Runs the Lambda runtime client until the Runtime API stops answering.
///
/// The configuration is `--config`, else `SWITCHYARD_CONFIG`, else `switchyard.yaml` in
/// `LAMBDA_TASK_ROOT` (the unpacked package) when there is one, else the environment alone. The
/// definitions are `--triggers` when given, else `SWITCHYARD_TRIGGERS`, else `triggers/` in
/// `LAMBDA_TASK_ROOT`.
pub async fn run(config: Option<&Path>, triggers: Option<&Path>) -> anyhow::Result<()> {
    for name in RUNTIME_VARIABLES {
        if std::env::var_os(name).is_none() {
            anyhow::bail!(
                "`switchyard lambda` runs inside AWS Lambda, and {name} is not set\n\
                 hint: deploy it with deploy/template.yaml (see deploy/README.md); on a machine \
                 of your own, run `switchyard serve`"
            );
        }
    }
    if let Ok(memory) = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        && memory.parse::<i32>().is_err()
    {
        anyhow::bail!("AWS_LAMBDA_FUNCTION_MEMORY_SIZE={memory:?} is not a number of megabytes");
    }
    let handler = Arc::new(Handler::load(config, triggers)?);
    tracing::info!(
        pipelines = handler.pipelines.list.len(),
        receivers = handler.receiver_names.len(),
        "switchyard lambda ready"
    );
    let service = lambda_runtime::service_fn(move |event: LambdaEvent<Value>| {
        let handler = Arc::clone(&handler);
        // Boxed: the handler's future is deep, and the runtime client nests it further.
        Box::pin(async move {
            let deadline = deadline_of(event.context.deadline());
            handler.invoke(event.payload, deadline).await
        })
    });
    Box::pin(lambda_runtime::run(service))
        .await
        .map_err(|e| anyhow::anyhow!("the Lambda runtime client stopped: {e}"))
}

/// The instant by which an invocation must have answered, margin kept back.
fn deadline_of(deadline: SystemTime) -> Instant {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Instant::now() + left.saturating_sub(MARGIN)
}

/// Where a file of the package is: the flag, the variable, `LAMBDA_TASK_ROOT`, in that order.
fn package_path(flag: Option<&Path>, variable: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = flag {
        return Some(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os(variable).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let root = std::env::var_os("LAMBDA_TASK_ROOT").map_or_else(PathBuf::new, PathBuf::from);
    let path = root.join(name);
    path.exists().then_some(path)
}

/// The claims `SWITCHYARD_DYNAMODB_TABLE` asks for, in the region and through the endpoint of
/// the function's other AWS clients; `None` when it is unset or empty.
fn claims_from_env(
    region: Option<String>,
    endpoint_url: Option<String>,
) -> anyhow::Result<Option<Claims>> {
    let Some(table) = std::env::var(TABLE_VARIABLE).ok().filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let ttl = match std::env::var(TTL_VARIABLE).ok().filter(|t| !t.is_empty()) {
        None => claims::DEFAULT_TTL,
        Some(text) => crate::diag::parse_duration(&text)
            .filter(|d| d.as_secs() > 0)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{TTL_VARIABLE}={text:?} is not a duration\nhint: write hours, minutes or \
                     seconds, such as 336h (14 days, the default), 24h or 90m"
                )
            })?,
    };
    Ok(Some(Claims::new(table, ttl, region, endpoint_url)))
}

/// The configuration of a function with no `switchyard.yaml`: receivers from the environment.
fn config_from_env() -> Config {
    let mut config = Config {
        state_dir: std::env::temp_dir().join("switchyard"),
        ..Config::default()
    };
    for (variable, provider) in SECRET_VARIABLES {
        if std::env::var_os(variable).is_some_and(|v| !v.is_empty()) {
            let name = variable
                .trim_start_matches("SWITCHYARD_SECRET_")
                .to_ascii_lowercase();
            config.receivers.push(Receiver {
                name,
                provider,
                secrets: vec![SecretRef::Env(variable.to_owned())],
                allow_sha1: false,
            });
        }
    }
    config
}

/// What answers the invocations. Built once per instance (cold start).
#[derive(Debug)]
pub struct Handler {
    pipelines: Pipelines,
    hooks: Hooks,
    receiver_names: Vec<String>,
    starter: Starter,
    policy: Policy,
    metrics: Metrics,
    started: Mutex<Remembered>,
    claims: Option<Claims>,
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
struct Remembered {
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

impl Handler {
    /// Reads the configuration and the definitions (see [`run`] for where from).
    pub fn load(config: Option<&Path>, triggers: Option<&Path>) -> anyhow::Result<Handler> {
        let config = match package_path(config, "SWITCHYARD_CONFIG", "switchyard.yaml") {
            Some(path) => crate::serve::load_config(Some(&path))?,
            None => config_from_env(),
        };
        let triggers = package_path(triggers, "SWITCHYARD_TRIGGERS", "triggers")
            .unwrap_or_else(|| PathBuf::from("triggers"));
        let pipelines = crate::serve::load_pipelines(&triggers)?;
        Handler::new(config, pipelines)
    }

    /// A handler for this configuration and these pipelines.
    pub fn new(config: Config, pipelines: Pipelines) -> anyhow::Result<Handler> {
        if !config.poll.is_empty() {
            tracing::warn!(
                repositories = config.poll.len(),
                "`poll:` is ignored in Lambda: polling needs a process that outlives an invocation; run `switchyard serve` for it"
            );
        }
        let receivers = Receivers::from_config(&config.receivers)
            .map_err(|e| anyhow::anyhow!("{e}\nhint: set the secret's variable in the function's environment (deploy/template.yaml does it from SSM or Secrets Manager)"))?;
        let region = config.eventbridge.as_ref().map(|e| e.region.clone());
        let endpoint_url = config
            .eventbridge
            .as_ref()
            .and_then(|e| e.endpoint_url.clone());
        let claims = claims_from_env(region.clone(), endpoint_url.clone())?;
        if let Some(claims) = &claims {
            tracing::info!(table = claims.table(), "start ids are claimed in DynamoDB");
        }
        let aws = crate::dispatch::aws::Targets::new(region, endpoint_url);
        Ok(Handler {
            pipelines,
            hooks: Hooks::new(receivers, config.limits.max_body_bytes),
            receiver_names: config.receivers.iter().map(|r| r.name.clone()).collect(),
            starter: Starter::new(aws, std::env::temp_dir().join("switchyard-events")),
            policy: Policy {
                attempts: config.dispatch.attempts,
                backoff: config.dispatch.backoff,
                backoff_max: config.dispatch.backoff_max,
            },
            metrics: Metrics::default(),
            started: Mutex::new(Remembered::default()),
            claims,
        })
    }

    /// Answers one invocation, whatever invoked it. An error makes AWS deliver it again.
    pub async fn invoke(
        self: &Arc<Self>,
        payload: Value,
        deadline: Instant,
    ) -> Result<Value, Diagnostic> {
        match Invocation::of(&payload) {
            Invocation::Sqs => {
                let batch: SqsEvent = serde_json::from_value(payload)
                    .map_err(|e| unreadable("an SQS batch", &e.to_string()))?;
                let answer = self.sqs(batch, deadline).await?;
                serde_json::to_value(answer)
                    .map_err(|e| unreadable("the batch answer", &e.to_string()))
            }
            Invocation::FunctionUrl => {
                let request: LambdaFunctionUrlRequest = serde_json::from_value(payload)
                    .map_err(|e| unreadable("a function URL request", &e.to_string()))?;
                let answer = self.function_url(request, deadline).await;
                serde_json::to_value(answer)
                    .map_err(|e| unreadable("the function URL answer", &e.to_string()))
            }
            Invocation::EventBridge => self.eventbridge(&payload, deadline).await,
            Invocation::Unknown => Err(unreadable(
                "the invocation",
                "it is neither an EventBridge event (detail-type, detail), an SQS batch \
                 (Records from aws:sqs) nor a function URL request (requestContext.http)",
            )),
        }
    }

    /// An EventBridge event handed over directly (a rule targeting the function).
    async fn eventbridge(&self, payload: &Value, deadline: Instant) -> Result<Value, Diagnostic> {
        let body = serde_json::to_vec(payload).unwrap_or_default();
        match self.envelope(&body, deadline).await {
            Ok(answer) => Ok(answer),
            Err(message) => Err(Diagnostic {
                error_type: "switchyard.NotStarted".into(),
                error_message: message,
            }),
        }
    }

    /// An SQS batch: every record at once; the failed ones are answered in
    /// `batchItemFailures`, so that only they come back.
    async fn sqs(
        self: &Arc<Self>,
        batch: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, Diagnostic> {
        let mut records = JoinSet::new();
        for record in batch.records {
            let handler = Arc::clone(self);
            records.spawn(async move {
                let result = handler.record(&record, deadline).await;
                (record.message_id, result)
            });
        }
        let mut answer = SqsBatchResponse::default();
        let mut unnamed = 0;
        while let Some(done) = records.join_next().await {
            let (id, result) = done.map_err(|e| unreadable("a record", &e.to_string()))?;
            if result.is_ok() {
                continue;
            }
            match id.filter(|id| !id.is_empty()) {
                Some(id) => {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id;
                    answer.batch_item_failures.push(failure);
                }
                None => unnamed += 1,
            }
        }
        if unnamed > 0 {
            // A failure that cannot be named fails the whole batch, so that nothing is lost.
            return Err(Diagnostic {
                error_type: "switchyard.NotStarted".into(),
                error_message: format!(
                    "{unnamed} record(s) without a messageId could not be started; the whole batch is retried"
                ),
            });
        }
        answer
            .batch_item_failures
            .sort_by(|a, b| a.item_identifier.cmp(&b.item_identifier));
        Ok(answer)
    }

    /// One SQS record: its body is an EventBridge event as a rule delivers it.
    async fn record(&self, record: &SqsMessage, deadline: Instant) -> Result<Value, String> {
        let message = record.message_id.as_deref().unwrap_or("(no messageId)");
        let body = record.body.as_deref().unwrap_or_default();
        let result = self.envelope(body.as_bytes(), deadline).await;
        if let Err(e) = &result {
            tracing::warn!(
                message,
                "record not started; it comes back after the queue's visibility timeout: {e}"
            );
        }
        result
    }

    /// An EventBridge event: its changes are started, or the reason they were not.
    async fn envelope(&self, body: &[u8], deadline: Instant) -> Result<Value, String> {
        let received = jiff::Timestamp::now();
        let (event_id, changes) = match envelope::parse(body, received) {
            Ok(Envelope::Changes { event_id, changes }) => (event_id, changes),
            Ok(Envelope::Unknown { event_id, reason }) => {
                tracing::info!(event = event_id.as_deref().unwrap_or_default(), %reason, "event ignored");
                return Ok(json!({"status": "ignored", "reason": reason}));
            }
            Err(e) => {
                self.metrics.sqs_message("malformed");
                return Err(format!("the event cannot be read: {e}\nhint: {}", e.hint()));
            }
        };
        let mut answers = Vec::with_capacity(changes.len());
        for change in changes {
            match self.start_change(&change, deadline, None).await {
                Ok(outcome) => answers.push(outcome_json(&outcome)),
                Err(e) => {
                    tracing::warn!(event = %event_id, change_id = %change.id, "{e}");
                    return Err(e);
                }
            }
        }
        Ok(json!({"status": "accepted", "event": event_id, "changes": answers}))
    }

    /// A function URL request (payload format 2.0): the routes of `serve`, with the same
    /// verification and answers on `POST /hooks/NAME`.
    async fn function_url(
        &self,
        request: LambdaFunctionUrlRequest,
        deadline: Instant,
    ) -> LambdaFunctionUrlResponse {
        let method = request
            .request_context
            .http
            .method
            .clone()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let path = request
            .raw_path
            .clone()
            .or_else(|| request.request_context.http.path.clone())
            .unwrap_or_else(|| "/".to_owned());
        match routes::function_url(&method, &path) {
            Route::Health => text(200, "ok\n"),
            // No store to probe: an instance that answers can take a change.
            Route::Ready => text(200, "ready\n"),
            Route::Hook(name) => {
                let name = name.to_owned();
                self.hook(&name, request, deadline).await
            }
            Route::Refused(refusal) => answer(&refusal),
        }
    }

    async fn hook(
        &self,
        name: &str,
        request: LambdaFunctionUrlRequest,
        deadline: Instant,
    ) -> LambdaFunctionUrlResponse {
        let receiver = match self.hooks.open(name, None, &self.metrics) {
            Ok(receiver) => receiver,
            Err(refusal) => return answer(&refusal),
        };
        let body = request.body.unwrap_or_default();
        let body = if request.is_base64_encoded {
            base64::engine::general_purpose::STANDARD
                .decode(body.as_bytes())
                .map_err(|e| BodyError::Unreadable(e.to_string()))
        } else {
            Ok(body.into_bytes())
        };
        let sink = Starting {
            handler: self,
            deadline,
        };
        let (hooks, metrics) = (&self.hooks, &self.metrics);
        answer(
            &hooks
                .deliver(receiver, &request.headers, body, &sink, metrics)
                .await,
        )
    }

    /// Starts every pipeline `change` matches that this instance has not started yet, in the
    /// trace of `traceparent` (the function URL request's), else a new one.
    async fn start_change(
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
            match self
                .start_once(pipeline, &id, change, &event_json, &traceparent, deadline)
                .instrument(span)
                .await
            {
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
    async fn start_once(
        &self,
        pipeline: &Pipeline,
        id: &str,
        change: &ChangeEvent,
        event_json: &str,
        traceparent: &TraceParent,
        deadline: Instant,
    ) -> Result<Started, String> {
        if self.remembered(id) {
            return Ok(Started::Before);
        }
        let Some(claims) = &self.claims else {
            self.attempt(pipeline, id, change, event_json, traceparent, deadline)
                .await
                .map_err(|f| f.message)?;
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
        let result = self
            .attempt(
                pipeline,
                id,
                change,
                event_json,
                traceparent,
                until.min(deadline),
            )
            .await;
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
    async fn attempt(
        &self,
        pipeline: &Pipeline,
        id: &str,
        change: &ChangeEvent,
        event_json: &str,
        traceparent: &TraceParent,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let start = self
                .starter
                .start(pipeline, id, attempt, change, event_json, traceparent);
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
                Ok(started) => {
                    let run = started.run.as_deref().unwrap_or("");
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

/// A webhook's changes, started before the answer.
struct Starting<'a> {
    handler: &'a Handler,
    deadline: Instant,
}

impl Sink for Starting<'_> {
    async fn submit(
        &self,
        event: ChangeEvent,
        _delivery: Option<(String, String)>,
        traceparent: Option<TraceParent>,
    ) -> Result<IntakeOutcome, String> {
        self.handler
            .start_change(&event, self.deadline, traceparent)
            .await
    }
}

/// What invoked the function, told by the payload's shape.
#[derive(Debug, PartialEq, Eq)]
enum Invocation {
    Sqs,
    FunctionUrl,
    EventBridge,
    Unknown,
}

impl Invocation {
    fn of(payload: &Value) -> Invocation {
        if let Some(records) = payload.get("Records").and_then(Value::as_array) {
            let from_sqs = records
                .iter()
                .all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"));
            return if from_sqs {
                Invocation::Sqs
            } else {
                Invocation::Unknown
            };
        }
        if payload.pointer("/requestContext/http").is_some() {
            return Invocation::FunctionUrl;
        }
        if payload.get("detail-type").is_some() && payload.get("detail").is_some() {
            return Invocation::EventBridge;
        }
        Invocation::Unknown
    }
}

fn unreadable(what: &str, why: &str) -> Diagnostic {
    Diagnostic {
        error_type: "switchyard.Unreadable".into(),
        error_message: format!("cannot read {what}: {why}"),
    }
}

fn outcome_json(outcome: &IntakeOutcome) -> Value {
    match outcome {
        IntakeOutcome::Accepted { change_id, starts } => {
            json!({"change": change_id, "status": "accepted", "starts": starts})
        }
        IntakeOutcome::Duplicate { change_id, .. } => {
            json!({"change": change_id, "status": "duplicate", "duplicate_of": "change"})
        }
    }
}

fn response(status: u16, content_type: &'static str, body: String) -> LambdaFunctionUrlResponse {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The event types are non-exhaustive: set the fields of a default.
    let mut response = LambdaFunctionUrlResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(body);
    response
}

fn text(status: u16, body: &str) -> LambdaFunctionUrlResponse {
    response(status, "text/plain", body.to_owned())
}

fn answer(answer: &Answer) -> LambdaFunctionUrlResponse {
    let mut body = serde_json::to_string(&answer.body).unwrap_or_default();
    body.push('\n');
    response(answer.status, "application/json", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_shape_tells_the_invoker() {
        let cases = [
            (
                json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}),
                Invocation::Sqs,
            ),
            (
                json!({"Records": [{"eventSource": "aws:s3"}]}),
                Invocation::Unknown,
            ),
            (
                json!({"version": "2.0", "requestContext": {"http": {"method": "POST"}}}),
                Invocation::FunctionUrl,
            ),
            (
                json!({"detail-type": "CodeCommit Repository State Change", "detail": {}}),
                Invocation::EventBridge,
            ),
            (json!({"detail": {}}), Invocation::Unknown),
            (json!([1, 2]), Invocation::Unknown),
            (json!("text"), Invocation::Unknown),
        ];
        for (payload, want) in cases {
            assert_eq!(Invocation::of(&payload), want, "{payload}");
        }
    }

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

    #[test]
    fn a_deadline_keeps_the_margin_and_never_lies_in_the_past() {
        let now = Instant::now();
        let soon = deadline_of(SystemTime::now() + Duration::from_secs(10));
        let left = soon.duration_since(now);
        assert!(
            left <= Duration::from_secs(10) - MARGIN + Duration::from_millis(50),
            "{left:?}"
        );
        assert!(left >= Duration::from_secs(8), "{left:?}");
        let past = deadline_of(SystemTime::now() - Duration::from_secs(10));
        assert!(past >= now);
    }
}
