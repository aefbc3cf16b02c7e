//! A real moto server (PyPI's `moto[server]`) on a free loopback port, or one already running;
//! the lab's SDK clients, queues (with a dead-letter queue) and the rules that fill them, and
//! the DynamoDB table of the Lambda function's claims.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use switchyard::aws::describe;

use crate::REGION;
use crate::process::{Killed, await_port, free_port};
use crate::skip::Missing;

/// How to get moto_server, for the error that says it is missing.
const INSTALL: &str = "python3 -m venv target/moto-venv && target/moto-venv/bin/pip install 'moto[server]==5.2.5' (.ci/test does it), or set SWITCHYARD_MOTO_SERVER";

/// Where moto_server is: `SWITCHYARD_MOTO_SERVER`, the venv `.ci/test` makes in
/// `$CARGO_TARGET_DIR` or in the workspace's `target/`, or PATH.
pub fn moto_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SWITCHYARD_MOTO_SERVER") {
        return Some(PathBuf::from(path));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let venvs = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain([workspace]);
    for target in venvs {
        let venv = target.join("moto-venv/bin/moto_server");
        if venv.exists() {
            return Some(venv);
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("moto_server"))
            .find(|p| p.exists())
    })
}

/// moto: started here (killed on drop), or one already running.
#[derive(Debug)]
pub struct Moto {
    pub endpoint: String,
    _server: Option<Killed>,
}

impl Moto {
    /// Starts moto_server on a free port. A [`Missing`] error when it is not installed.
    pub fn start() -> anyhow::Result<Moto> {
        Moto::start_with(&[])
    }

    /// Starts moto that checks credentials (IAM authentication on from the first request):
    /// unknown access keys are refused.
    pub fn start_checking_credentials() -> anyhow::Result<Moto> {
        Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")])
    }

    fn start_with(env: &[(&str, &str)]) -> anyhow::Result<Moto> {
        let server = moto_server().ok_or_else(|| Missing::new("moto_server", INSTALL))?;
        for _ in 0..5 {
            let port = free_port()?;
            let mut child = Killed::spawn(
                Command::new(&server)
                    .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                    .envs(env.iter().copied())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            )
            .with_context(|| format!("cannot start {}", server.display()))?;
            if await_port(port, child.child(), Duration::from_secs(30))? {
                return Ok(Moto {
                    endpoint: format!("http://127.0.0.1:{port}"),
                    _server: Some(child),
                });
            }
        }
        bail!(
            "{} did not start on any of five free ports",
            server.display()
        )
    }

    /// A moto server already running at `endpoint`.
    pub fn at(endpoint: &str) -> Moto {
        Moto {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            _server: None,
        }
    }

    /// SDK configuration for the lab's own calls: moto's endpoint, fixed test credentials.
    pub fn sdk(&self) -> aws_config::SdkConfig {
        use aws_sdk_sqs::config::{Credentials, Region, SharedCredentialsProvider};
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "testing", "testing", None, None, "lab",
            )))
            .http_client(switchyard::aws::http_client())
            .build()
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk())
    }

    pub fn events(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.sdk())
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk())
    }

    /// Creates table `name` as `deploy/template.yaml` makes the claims table: the string
    /// partition key `id`, on demand, the TTL on `expiration`.
    pub async fn claims_table(&self, name: &str) -> anyhow::Result<()> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
            TimeToLiveSpecification,
        };
        use switchyard::aws::claims::{EXPIRY, KEY};
        let dynamodb = self.dynamodb();
        let failed = |step: &str| {
            let step = step.to_owned();
            move |e: String| anyhow::anyhow!("moto: {step} of table {name}: {e}")
        };
        dynamodb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(KEY)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| failed("attribute")(e.to_string()))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(KEY)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| failed("key")(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| failed("create")(describe(&e)))?;
        dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(EXPIRY)
                    .enabled(true)
                    .build()
                    .map_err(|e| failed("TTL")(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| failed("TTL")(describe(&e)))?;
        Ok(())
    }

    /// The environment a child `switchyard` needs to reach moto.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// Creates queue `name` with these attributes; (URL, ARN).
    pub async fn create_queue(
        &self,
        name: &str,
        attributes: &[(QueueAttributeName, String)],
    ) -> anyhow::Result<(String, String)> {
        let mut create = self.sqs().create_queue().queue_name(name);
        for (k, v) in attributes {
            create = create.attributes(k.clone(), v);
        }
        let url = create
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("moto: create queue {name}: {}", describe(&e)))?
            .queue_url()
            .context("moto returned no queue URL")?
            .to_owned();
        let arn = self.arn(&url).await?;
        Ok((url, arn))
    }

    /// Creates queue `name` and its dead-letter queue `name-dlq` (after `max_receives`
    /// receives), with this visibility timeout; (queue URL, queue ARN, DLQ URL).
    pub async fn queue(
        &self,
        name: &str,
        visibility_secs: u32,
        max_receives: u32,
    ) -> (String, String, String) {
        let made = async {
            let (dlq_url, dlq_arn) = self.create_queue(&format!("{name}-dlq"), &[]).await?;
            let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives.to_string()});
            let attributes = [
                (
                    QueueAttributeName::VisibilityTimeout,
                    visibility_secs.to_string(),
                ),
                (QueueAttributeName::RedrivePolicy, redrive.to_string()),
            ];
            let (url, arn) = self.create_queue(name, &attributes).await?;
            anyhow::Ok((url, arn, dlq_url))
        };
        made.await.unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// The ARN of a queue.
    pub async fn arn(&self, url: &str) -> anyhow::Result<String> {
        self.sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("moto: queue attributes: {}", describe(&e)))?
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .context("moto returned no queue ARN")
    }

    /// Rule `name` on the default bus, sending the events that match `pattern` to the queue
    /// of `queue_arn`.
    pub async fn rule(&self, name: &str, pattern: &Value, queue_arn: &str) -> anyhow::Result<()> {
        let events = self.events();
        events
            .put_rule()
            .name(name)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("moto: put rule {name}: {}", describe(&e)))?;
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id("queue")
            .arn(queue_arn)
            .build()
            .map_err(|e| anyhow::anyhow!("rule target: {e}"))?;
        events
            .put_targets()
            .rule(name)
            .targets(target)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("moto: put targets of {name}: {}", describe(&e)))?;
        Ok(())
    }

    /// A rule on the default bus sending every event of `source` to the queue.
    pub async fn rule_to_queue(&self, source: &str, queue_arn: &str) {
        let name = format!("to-{}", queue_arn.rsplit(':').next().unwrap_or("q"));
        let pattern = serde_json::json!({"source": [source]});
        self.rule(&name, &pattern, queue_arn)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// moto alone: puts an event of `source` with `detail`, then long-polls `queue_url` (which
    /// a rule fills with such events) until its message arrives, and deletes it. The
    /// milliseconds from the PutEvents call to the receipt; an error after `within`.
    pub async fn delivery_ms(
        &self,
        source: &str,
        detail: String,
        queue_url: &str,
        within: Duration,
    ) -> anyhow::Result<f64> {
        let (events, sqs) = (self.events(), self.sqs());
        let began = std::time::Instant::now();
        put_events(&events, &[(source, "probe", None, detail)]).await?;
        loop {
            let out = sqs
                .receive_message()
                .queue_url(queue_url)
                .wait_time_seconds(5)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("moto ReceiveMessage: {}", describe(&e)))?;
            if let Some(m) = out.messages().first() {
                let ms = began.elapsed().as_secs_f64() * 1000.0;
                sqs.delete_message()
                    .queue_url(queue_url)
                    .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("moto DeleteMessage: {}", describe(&e)))?;
                return Ok(ms);
            }
            if began.elapsed() > within {
                bail!("moto did not deliver an event to {queue_url} within {within:?}");
            }
        }
    }

    /// How many messages a queue holds (visible and in flight).
    pub async fn depth(&self, url: &str) -> u64 {
        use QueueAttributeName as A;
        let out = self
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes");
        let get = |k: &A| {
            out.attributes()
                .and_then(|a| a.get(k))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        get(&A::ApproximateNumberOfMessages) + get(&A::ApproximateNumberOfMessagesNotVisible)
    }
}

/// One event for [`put_events`]: source, detail type, the resource it is about, detail (JSON).
pub type Entry<'a> = (&'a str, &'a str, Option<&'a str>, String);

/// Puts events on the default bus in one PutEvents; their event ids. An error when an entry
/// failed.
pub async fn put_events(
    events: &aws_sdk_eventbridge::Client,
    entries: &[Entry<'_>],
) -> anyhow::Result<Vec<String>> {
    let entries = entries
        .iter()
        .map(|(source, detail_type, resource, detail)| {
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .source(*source)
                .detail_type(*detail_type)
                .set_resources(resource.map(|r| vec![r.to_owned()]))
                .detail(detail)
                .build()
        })
        .collect();
    let out = events
        .put_events()
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("PutEvents: {}", describe(&e)))?;
    if out.failed_entry_count() > 0 {
        bail!("PutEvents: {} entries failed", out.failed_entry_count());
    }
    Ok(out
        .entries()
        .iter()
        .filter_map(|e| e.event_id().map(str::to_owned))
        .collect())
}
