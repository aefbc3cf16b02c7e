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
//!
//! The handler is split by invocation kind: `eventbridge.rs` (an EventBridge event, direct or
//! in a record), `sqs.rs` (a batch), `url.rs` (a function URL request); `start.rs` starts a
//! change's pipelines (the instance's memory, the claims, retries within the deadline).

mod eventbridge;
mod sqs;
mod start;
mod url;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;

use crate::aws::claims::{self, Claims};
use crate::config::{Config, Provider, Receiver};
use crate::diag::Hinted;
use crate::dispatch::Policy;
use crate::metrics::Metrics;
use crate::pipeline::Pipelines;
use crate::secret::SecretRef;
use crate::sources::webhook::{Hooks, Receivers};
use crate::transport::Transports;

use start::Remembered;

/// The environment variables the Lambda runtime client needs; AWS sets them.
const RUNTIME_VARIABLES: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Time kept back from an invocation's deadline to report its outcome.
const MARGIN: Duration = Duration::from_millis(1500);

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
            return Err(Hinted::new(
                format!("`switchyard lambda` runs inside AWS Lambda, and {name} is not set"),
                "deploy it with deploy/template.yaml (see deploy/README.md); on a machine of \
                 your own, run `switchyard serve`",
            )
            .into());
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
                Hinted::new(
                    format!("{TTL_VARIABLE}={text:?} is not a duration"),
                    "write hours, minutes or seconds, such as 336h (14 days, the default), 24h \
                     or 90m",
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
    transports: Transports,
    policy: Policy,
    metrics: Metrics,
    started: Mutex<Remembered>,
    claims: Option<Claims>,
}

impl Handler {
    /// Reads the configuration and the definitions (see [`run`] for where from).
    pub fn load(config: Option<&Path>, triggers: Option<&Path>) -> anyhow::Result<Handler> {
        let config = match package_path(config, "SWITCHYARD_CONFIG", "switchyard.yaml") {
            Some(path) => crate::load::config(Some(&path))?,
            None => config_from_env(),
        };
        let triggers = package_path(triggers, "SWITCHYARD_TRIGGERS", "triggers")
            .unwrap_or_else(|| PathBuf::from("triggers"));
        let pipelines = crate::load::pipelines(&triggers)?;
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
        let receivers = Receivers::from_config(&config.receivers).map_err(|e| {
            Hinted::new(
                e.to_string(),
                "set the secret's variable in the function's environment \
                 (deploy/template.yaml does it from SSM or Secrets Manager)",
            )
        })?;
        let region = config.eventbridge.as_ref().map(|e| e.region.clone());
        let endpoint_url = config
            .eventbridge
            .as_ref()
            .and_then(|e| e.endpoint_url.clone());
        let claims = claims_from_env(region.clone(), endpoint_url.clone())?;
        if let Some(claims) = &claims {
            tracing::info!(table = claims.table(), "start ids are claimed in DynamoDB");
        }
        Ok(Handler {
            pipelines,
            hooks: Hooks::new(receivers, config.limits.max_body_bytes),
            receiver_names: config.receivers.iter().map(|r| r.name.clone()).collect(),
            transports: start::transports(region, endpoint_url),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
