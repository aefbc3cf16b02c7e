//! A real moto server (PyPI's `moto[server]`) on a free loopback port, or one already running;
//! the lab's SDK clients, queues (with a dead-letter queue) and the rules that fill them, the
//! DynamoDB table of the Lambda function's claims, CodePipeline pipelines and CodeBuild
//! projects to start, and moto's request recorder (what the AWS targets sent, bodies included:
//! moto keeps neither `sourceRevisions` nor the idempotency tokens).

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
    /// The folder of this server's recording (`MOTO_RECORDER_FILEPATH`): its own, so that
    /// servers started side by side (tests in one process) never share one, and nothing is
    /// written into the working directory.
    _recording: Option<tempfile::TempDir>,
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
        let recording = tempfile::tempdir().context("a folder for moto's recording")?;
        for _ in 0..5 {
            let port = free_port()?;
            let mut child = Killed::spawn(
                Command::new(&server)
                    .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                    .envs(env.iter().copied())
                    .env(
                        "MOTO_RECORDER_FILEPATH",
                        recording.path().join("recording.jsonl"),
                    )
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            )
            .with_context(|| format!("cannot start {}", server.display()))?;
            if await_port(port, child.child(), Duration::from_secs(30))? {
                return Ok(Moto {
                    endpoint: format!("http://127.0.0.1:{port}"),
                    _server: Some(child),
                    _recording: Some(recording),
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
            _recording: None,
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

    pub fn codepipeline(&self) -> aws_sdk_codepipeline::Client {
        aws_sdk_codepipeline::Client::new(&self.sdk())
    }

    pub fn codebuild(&self) -> aws_sdk_codebuild::Client {
        aws_sdk_codebuild::Client::new(&self.sdk())
    }

    /// One request to moto's own API or to a service through its query protocol (no SDK for
    /// it here): (status, body).
    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, String)> {
        let addr = self
            .endpoint
            .trim_start_matches("http://")
            .parse()
            .with_context(|| format!("moto's endpoint {} is not host:port", self.endpoint))?;
        crate::http::try_request(addr, method, path, headers, body).await
    }

    /// One call of an AWS JSON 1.1 API without the SDK (for answers the SDK cannot read:
    /// moto's ListPipelineExecutions gives its times as text where the SDK wants numbers):
    /// `service` is the signing name (`codepipeline`), `target` the `X-Amz-Target`.
    pub async fn json_call(
        &self,
        service: &str,
        target: &str,
        body: &Value,
    ) -> anyhow::Result<Value> {
        let headers = [
            (
                "content-type".to_owned(),
                "application/x-amz-json-1.1".to_owned(),
            ),
            ("x-amz-target".to_owned(), target.to_owned()),
            ("authorization".to_owned(), scope(service)),
        ];
        let (status, text) = self
            .call("POST", "/", &headers, body.to_string().into_bytes())
            .await?;
        if status != 200 {
            bail!("moto: {target}: HTTP {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("moto: {target}: {text}"))
    }

    /// The execution ids of pipeline `name`, newest first.
    pub async fn pipeline_executions(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let out = self
            .json_call(
                "codepipeline",
                "CodePipeline_20150709.ListPipelineExecutions",
                &serde_json::json!({"pipelineName": name}),
            )
            .await?;
        Ok(out["pipelineExecutionSummaries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["pipelineExecutionId"].as_str().map(str::to_owned))
            .collect())
    }

    /// Creates IAM role `name` that `service` (`codepipeline.amazonaws.com`) may assume, as
    /// moto's CreatePipeline checks; its ARN. Through IAM's query API (no SDK for IAM here).
    pub async fn service_role(&self, name: &str, service: &str) -> anyhow::Result<String> {
        let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]});
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("Action", "CreateRole"),
                ("Version", "2010-05-08"),
                ("RoleName", name),
                ("AssumeRolePolicyDocument", &trust.to_string()),
            ])
            .finish();
        let headers = [
            (
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("authorization".to_owned(), scope("iam")),
        ];
        let (status, body) = self.call("POST", "/", &headers, form.into_bytes()).await?;
        if status != 200 {
            bail!("moto: CreateRole {name}: HTTP {status}: {body}");
        }
        Ok(format!("arn:aws:iam::{}:role/{name}", crate::ACCOUNT))
    }

    /// Creates V2 pipeline `name`: stage `Source` with a CodeCommit action `source_action` (of
    /// repository `MyDemoRepo`, branch `main`), then stage `Build` with a CodeBuild action; the
    /// pipeline-level `variables` declared with a default.
    pub async fn pipeline(
        &self,
        name: &str,
        source_action: &str,
        variables: &[&str],
    ) -> anyhow::Result<()> {
        use aws_sdk_codepipeline::types::{
            ActionCategory, ActionDeclaration, ActionOwner, ActionTypeId, ArtifactStore,
            ArtifactStoreType, InputArtifact, OutputArtifact, PipelineDeclaration, PipelineType,
            PipelineVariableDeclaration, StageDeclaration,
        };
        let role = self
            .service_role(&format!("{name}-role"), "codepipeline.amazonaws.com")
            .await?;
        let action = |category: ActionCategory, provider: &str| {
            ActionTypeId::builder()
                .category(category)
                .owner(ActionOwner::Aws)
                .provider(provider)
                .version("1")
                .build()
        };
        let source = ActionDeclaration::builder()
            .name(source_action)
            .action_type_id(action(ActionCategory::Source, "CodeCommit")?)
            .configuration("RepositoryName", "MyDemoRepo")
            .configuration("BranchName", "main")
            .output_artifacts(OutputArtifact::builder().name("code").build()?)
            .build()?;
        let build = ActionDeclaration::builder()
            .name("Build")
            .action_type_id(action(ActionCategory::Build, "CodeBuild")?)
            .configuration("ProjectName", format!("{name}-build"))
            .input_artifacts(InputArtifact::builder().name("code").build()?)
            .build()?;
        let mut declaration = PipelineDeclaration::builder()
            .name(name)
            .role_arn(role)
            .pipeline_type(PipelineType::V2)
            .artifact_store(
                ArtifactStore::builder()
                    .r#type(ArtifactStoreType::S3)
                    .location(format!("{name}-artifacts"))
                    .build()?,
            )
            .stages(
                StageDeclaration::builder()
                    .name("Source")
                    .actions(source)
                    .build()?,
            )
            .stages(
                StageDeclaration::builder()
                    .name("Build")
                    .actions(build)
                    .build()?,
            );
        for variable in variables {
            declaration = declaration.variables(
                PipelineVariableDeclaration::builder()
                    .name(*variable)
                    .default_value("unset")
                    .build()?,
            );
        }
        self.codepipeline()
            .create_pipeline()
            .pipeline(declaration.build()?)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("moto: create pipeline {name}: {}", describe(&e)))?;
        Ok(())
    }

    /// Creates CodeBuild project `name` on the CodeCommit repository `MyDemoRepo`.
    pub async fn build_project(&self, name: &str) -> anyhow::Result<()> {
        use aws_sdk_codebuild::types::{
            ArtifactsType, ComputeType, EnvironmentType, ProjectArtifacts, ProjectEnvironment,
            ProjectSource, SourceType,
        };
        self.codebuild()
            .create_project()
            .name(name)
            .source(
                ProjectSource::builder()
                    .r#type(SourceType::Codecommit)
                    .location(format!(
                        "https://git-codecommit.{REGION}.amazonaws.com/v1/repos/MyDemoRepo"
                    ))
                    .build()?,
            )
            .artifacts(
                ProjectArtifacts::builder()
                    .r#type(ArtifactsType::NoArtifacts)
                    .build()?,
            )
            .environment(
                ProjectEnvironment::builder()
                    .r#type(EnvironmentType::LinuxContainer)
                    .image("aws/codebuild/standard:7.0")
                    .compute_type(ComputeType::BuildGeneral1Small)
                    .build()?,
            )
            .service_role(format!(
                "arn:aws:iam::{}:role/{name}-build-role",
                crate::ACCOUNT
            ))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("moto: create project {name}: {}", describe(&e)))?;
        Ok(())
    }

    /// Starts moto's request recorder: from now on every request is written to this server's
    /// recording (until the server ends; nothing here stops or resets it).
    pub async fn record(&self) -> anyhow::Result<()> {
        let (status, body) = self
            .call(
                "POST",
                "/moto-api/recorder/start-recording",
                &[],
                Vec::new(),
            )
            .await?;
        if status != 200 {
            bail!("moto: start recording: HTTP {status}: {body}");
        }
        Ok(())
    }

    /// The JSON bodies of the recorded requests of `operation` (the `X-Amz-Target` after its
    /// dot: `StartPipelineExecution`, `StartBuild`), oldest first. The recording holds every
    /// test's requests to this server: filter by your own pipeline or project.
    pub async fn recorded(&self, operation: &str) -> anyhow::Result<Vec<Value>> {
        use base64::Engine as _;
        let (status, text) = self
            .call(
                "GET",
                "/moto-api/recorder/download-recording",
                &[],
                Vec::new(),
            )
            .await?;
        if status != 200 {
            bail!("moto: download recording: HTTP {status}: {text}");
        }
        let mut bodies = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let entry: Value = serde_json::from_str(line).context("a recorded request")?;
            let target = entry["headers"]
                .as_object()
                .and_then(|h| {
                    h.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
                })
                .and_then(|(_, v)| v.as_str())
                .unwrap_or_default();
            if target.rsplit('.').next() != Some(operation) {
                continue;
            }
            let body = entry["body"].as_str().unwrap_or_default();
            let bytes = if entry["body_encoded"].as_bool() == Some(true) {
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .context("a recorded body in base64")?
            } else {
                body.as_bytes().to_vec()
            };
            bodies.push(serde_json::from_slice(&bytes).context("a recorded JSON body")?);
        }
        Ok(bodies)
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

/// An `Authorization` header that scopes a request to `service` for moto, which routes by it
/// (the signature is not checked by a moto that does not check credentials).
fn scope(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=0"
    )
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
