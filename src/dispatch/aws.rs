//! The AWS targets: `eventbridge` (PutEvents, detail-type as configured, the start as detail),
//! `sqs` (SendMessage; on a FIFO queue the group id is the pipeline and the deduplication
//! id the start id, so SQS itself drops a repeat within its 5-minute window), `codepipeline`
//! (StartPipelineExecution on the change's commit) and `codebuild` (StartBuild). The SDK
//! clients are made at the first AWS start, with credentials from the standard chain.
//!
//! Each target's answer names the run: the event id, the message id, the pipeline execution
//! id, the build id. CodePipeline and CodeBuild get the start id as their idempotency token
//! (`clientRequestToken`, `idempotencyToken`), so a start attempted again (after a crash between
//! the call and the record of its outcome, or after a lost answer) names the same request.
//!
//! Retries happen at two levels. Inside one attempt the SDK's standard retry mode (the
//! behaviour version's default: up to 3 tries, exponential backoff with jitter) repeats
//! throttling, 5xx answers and connection errors; what still fails after that comes back here
//! and is classified ([`classify`]): throttling and transient errors become a retry of the
//! start with the dispatcher's backoff and attempt budget, denied access, missing
//! credentials, an unknown pipeline or project and a refused request are dead at once, with a
//! hint naming what to fix (for access, the IAM action and resource ARN to allow).

use aws_sdk_codebuild::types::{EnvironmentVariable, EnvironmentVariableType};
use aws_sdk_codepipeline::types::{PipelineVariable, SourceRevisionOverride, SourceRevisionType};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use tokio::sync::OnceCell;

use super::{Failure, Started};
use crate::event::ChangeKind;
use crate::target::{CodeBuild, CodePipeline};
use crate::template::{Context, Var};

/// The `source` of the events switchyard puts.
pub const EVENT_SOURCE: &str = "switchyard";

/// Where the AWS targets' clients point: the region and endpoint of the `eventbridge` section
/// when there is one, else the SDK's own chain (`AWS_REGION`, `AWS_ENDPOINT_URL`, profile).
#[derive(Debug, Default)]
pub struct Targets {
    region: Option<String>,
    endpoint_url: Option<String>,
    clients: OnceCell<Clients>,
}

/// One client per service, all made from one SDK configuration.
#[derive(Debug)]
struct Clients {
    events: aws_sdk_eventbridge::Client,
    sqs: aws_sdk_sqs::Client,
    codepipeline: aws_sdk_codepipeline::Client,
    codebuild: aws_sdk_codebuild::Client,
    /// The region the configuration resolved (for the ARNs of hints).
    region: Option<String>,
}

impl Clients {
    fn new(sdk: &aws_config::SdkConfig) -> Clients {
        Clients {
            events: aws_sdk_eventbridge::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            codepipeline: aws_sdk_codepipeline::Client::new(sdk),
            codebuild: aws_sdk_codebuild::Client::new(sdk),
            region: sdk.region().map(|r| r.to_string()),
        }
    }
}

impl Targets {
    /// Targets in `region` through `endpoint_url` (each `None` for the SDK's chain).
    pub fn new(region: Option<String>, endpoint_url: Option<String>) -> Targets {
        Targets {
            region,
            endpoint_url,
            clients: OnceCell::new(),
        }
    }

    /// Targets with clients made from `sdk` now (for tests and tools that hold a config).
    pub fn from_config(sdk: &aws_config::SdkConfig) -> Targets {
        Targets {
            region: None,
            endpoint_url: None,
            clients: OnceCell::new_with(Some(Clients::new(sdk))),
        }
    }

    async fn clients(&self) -> &Clients {
        self.clients
            .get_or_init(|| async {
                let sdk =
                    crate::aws::sdk_config(self.region.as_deref(), self.endpoint_url.as_deref())
                        .await;
                Clients::new(&sdk)
            })
            .await
    }

    /// PutEvents of one start to `bus`. A failed entry or request is retried.
    pub async fn put_event(
        &self,
        bus: &str,
        detail_type: &str,
        detail: &str,
    ) -> Result<Started, Failure> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source(EVENT_SOURCE)
            .detail_type(detail_type)
            .detail(detail)
            .build();
        let out = self
            .clients()
            .await
            .events
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| {
                Failure::retry(format!(
                    "PutEvents to bus {bus:?}: {}",
                    crate::aws::describe(&e)
                ))
            })?;
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .filter_map(|e| {
                    Some(format!(
                        "{}: {}",
                        e.error_code()?,
                        e.error_message().unwrap_or_default()
                    ))
                })
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Failure::retry(format!(
                "PutEvents to bus {bus:?} refused the entry: {why}"
            )));
        }
        // One entry was put: its event id names the run.
        Ok(out
            .entries()
            .first()
            .and_then(|e| e.event_id())
            .map_or_else(Started::unnamed, Started::run))
    }

    /// SendMessage of one start to `queue_url`.
    pub async fn send_message(
        &self,
        queue_url: &str,
        body: &str,
        pipeline: &str,
        start_id: &str,
    ) -> Result<Started, Failure> {
        let mut send = self
            .clients()
            .await
            .sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body);
        if queue_url.ends_with(".fifo") {
            send = send
                .message_group_id(pipeline)
                .message_deduplication_id(start_id);
        }
        let out = send.send().await.map_err(|e| {
            Failure::retry(format!(
                "SendMessage to {queue_url}: {}",
                crate::aws::describe(&e)
            ))
        })?;
        Ok(out.message_id().map_or_else(Started::unnamed, Started::run))
    }
}

impl Targets {
    /// StartPipelineExecution of `target` on the change's commit: the source action's revision
    /// is the commit (`COMMIT_ID`, the head of a pull request), the variables are rendered (one
    /// that renders empty is left out, so the pipeline's default applies), the start id is the
    /// client request token. The run is the execution id.
    pub async fn start_pipeline(
        &self,
        target: &CodePipeline,
        ctx: &Context<'_>,
    ) -> Result<Started, Failure> {
        let call = Call::pipeline(&target.name);
        let refused = |e: aws_sdk_codepipeline::error::BuildError| call.refused(e);
        let revision = SourceRevisionOverride::builder()
            .action_name(&target.source_action)
            .revision_type(SourceRevisionType::CommitId)
            .revision_value(ctx.value(Var::Sha))
            .build()
            .map_err(refused)?;
        let variables = target
            .variables
            .iter()
            .map(|(name, template)| (name, template.render(ctx)))
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| PipelineVariable::builder().name(name).value(value).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(refused)?;
        let clients = self.clients().await;
        let out = clients
            .codepipeline
            .start_pipeline_execution()
            .name(&target.name)
            .source_revisions(revision)
            .set_variables((!variables.is_empty()).then_some(variables))
            .client_request_token(ctx.start_id)
            .send()
            .await
            .map_err(|e| call.failed(&e, clients.region.as_deref()))?;
        Ok(out
            .pipeline_execution_id()
            .map_or_else(Started::unnamed, Started::run))
    }

    /// StartBuild of `target` on [`source_version`], with the environment overrides rendered
    /// (plain text) and the start id as the idempotency token. The run is the build id.
    pub async fn start_build(
        &self,
        target: &CodeBuild,
        ctx: &Context<'_>,
    ) -> Result<Started, Failure> {
        let call = Call::build(&target.project);
        let environment = target
            .environment
            .iter()
            .map(|(name, template)| {
                EnvironmentVariable::builder()
                    .name(name)
                    .value(template.render(ctx))
                    .r#type(EnvironmentVariableType::Plaintext)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| call.refused(e))?;
        let version = source_version(target, ctx);
        let clients = self.clients().await;
        let out = clients
            .codebuild
            .start_build()
            .project_name(&target.project)
            .set_source_version((!version.is_empty()).then_some(version))
            .set_environment_variables_override((!environment.is_empty()).then_some(environment))
            .idempotency_token(ctx.start_id)
            .send()
            .await
            .map_err(|e| call.failed(&e, clients.region.as_deref()))?;
        Ok(out
            .build_value()
            .and_then(|b| b.id().or(b.arn()))
            .map_or_else(Started::unnamed, Started::run))
    }
}

/// The `sourceVersion` of a build: the target's own template when it has one (left to the
/// project's default when it renders empty); else, for a pull request of a repository on
/// github.com, `pr/N` (CodeBuild's name for a GitHub pull request); else the commit.
pub fn source_version(target: &CodeBuild, ctx: &Context<'_>) -> String {
    if let Some(template) = &target.source_version {
        return template.render(ctx);
    }
    let event = ctx.event;
    match &event.pull_request {
        Some(pr)
            if event.kind == ChangeKind::PullRequest
                && event.repository.as_str().starts_with("github.com/") =>
        {
            format!("pr/{}", pr.number)
        }
        _ => ctx.value(Var::Sha).into_owned(),
    }
}

/// What an SDK error means for the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Throttled or over a limit that frees up (concurrent executions, account build limit):
    /// try again later.
    Throttled,
    /// A 5xx answer, a timeout, a connection or transport error, an unknown error code: try
    /// again.
    Transient,
    /// The credentials were refused or lack the permission: dead.
    Denied,
    /// No credentials at all (no provider, or the chain found none): dead.
    NoCredentials,
    /// The pipeline or project does not exist (in this account and region): dead.
    NotFound,
    /// The request itself was refused (validation, invalid input): dead.
    Refused,
}

/// Classifies an SDK error of any service (they share the error type).
pub fn classify<E>(error: &SdkError<E, HttpResponse>) -> Class
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error {
        SdkError::ServiceError(e) => by_code(e.err().code(), e.raw().status().as_u16()),
        SdkError::DispatchFailure(_) if missing_credentials(error) => Class::NoCredentials,
        SdkError::ConstructionFailure(_) if missing_credentials(error) => Class::NoCredentials,
        // The request could not be built from what we gave: another attempt builds it again.
        SdkError::ConstructionFailure(_) => Class::Refused,
        _ => Class::Transient,
    }
}

/// The class of an error the service answered with `code` and HTTP `status`.
fn by_code(code: Option<&str>, status: u16) -> Class {
    match code.unwrap_or_default() {
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "ConcurrentPipelineExecutionsLimitExceededException"
        | "AccountLimitExceededException" => Class::Throttled,
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "InvalidClientTokenId"
        | "InvalidAccessKeyId"
        | "MissingAuthenticationTokenException" => Class::Denied,
        "PipelineNotFoundException" | "ResourceNotFoundException" => Class::NotFound,
        "ValidationException" | "InvalidInputException" | "InvalidStructureException" => {
            Class::Refused
        }
        code if code.starts_with("InvalidParameter") => Class::Refused,
        _ if status == 429 => Class::Throttled,
        // An unknown code (a 5xx, or a 4xx this version does not know, like ConflictException's
        // "the pipeline is busy"): retried within the attempt budget.
        _ => Class::Transient,
    }
}

/// Whether the error's causes say that there are no credentials: no provider at all, or a
/// chain that found none or is misconfigured (not a provider that timed out or failed, which
/// may work next time).
fn missing_credentials(error: &(dyn std::error::Error + 'static)) -> bool {
    use aws_credential_types::provider::error::CredentialsError;
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return matches!(
                c,
                CredentialsError::CredentialsNotLoaded(_)
                    | CredentialsError::InvalidConfiguration(_)
            );
        }
        // The SDK's "no auth scheme" error (private) when no credentials provider is set.
        if e.to_string().contains("no identity resolver") {
            return true;
        }
        cause = e.source();
    }
    false
}

/// One call of a start target, for its messages and hints.
struct Call<'a> {
    /// `StartPipelineExecution of pipeline "api"`.
    what: String,
    /// `pipeline` or `project`.
    kind: &'static str,
    name: &'a str,
    /// The IAM action it needs.
    action: &'static str,
    /// The resource ARN after `:ACCOUNT:`.
    resource: String,
    /// The ARN's service.
    service: &'static str,
}

impl<'a> Call<'a> {
    fn pipeline(name: &'a str) -> Call<'a> {
        Call {
            what: format!("StartPipelineExecution of pipeline {name:?}"),
            kind: "pipeline",
            name,
            action: "codepipeline:StartPipelineExecution",
            resource: name.to_owned(),
            service: "codepipeline",
        }
    }

    fn build(project: &'a str) -> Call<'a> {
        Call {
            what: format!("StartBuild of project {project:?}"),
            kind: "project",
            name: project,
            action: "codebuild:StartBuild",
            resource: format!("project/{project}"),
            service: "codebuild",
        }
    }

    /// The resource's ARN in `region` (`REGION` when unknown); the account is not known here.
    fn arn(&self, region: Option<&str>) -> String {
        let region = region.unwrap_or("REGION");
        let partition = if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        format!(
            "arn:{partition}:{}:{region}:ACCOUNT:{}",
            self.service, self.resource
        )
    }

    /// A request that could not be built (a value the SDK refuses): dead.
    fn refused(&self, e: impl std::fmt::Display) -> Failure {
        Failure::dead(format!("{}: {e}", self.what))
    }

    /// The failure of the call that ended in `e`, with the hint its class calls for.
    fn failed<E>(&self, e: &SdkError<E, HttpResponse>, region: Option<&str>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let text = format!("{}: {}", self.what, crate::aws::describe(e));
        let region_name = region.unwrap_or("the SDK's default");
        match classify(e) {
            Class::Throttled => Failure::throttled(text, None),
            Class::Transient => Failure::retry(text),
            Class::Denied => Failure::dead(format!(
                "{text}\nhint: allow {} on {} to switchyard's credentials (its role or user)",
                self.action,
                self.arn(region)
            )),
            Class::NoCredentials => Failure::dead(format!(
                "{text}\nhint: give switchyard AWS credentials (environment, profile, container or instance role) allowed {} on {}",
                self.action,
                self.arn(region)
            )),
            Class::NotFound => Failure::dead(format!(
                "{text}\nhint: check the {} name {:?} and the region ({region_name}): the region is the `eventbridge:` section's, else the SDK's (AWS_REGION, profile)",
                self.kind, self.name
            )),
            Class::Refused => Failure::dead(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ChangeEvent, Source, SourceKind};
    use aws_sdk_codepipeline::error::ErrorMetadata;
    use aws_sdk_codepipeline::operation::start_pipeline_execution::StartPipelineExecutionError;

    /// The error of a StartPipelineExecution the service answered with `status` and `code`.
    fn answered(status: u16, code: &str) -> SdkError<StartPipelineExecutionError, HttpResponse> {
        let meta = ErrorMetadata::builder()
            .code(code)
            .message("the service's words")
            .build();
        let raw = HttpResponse::new(status.try_into().expect("status"), "{}".into());
        SdkError::service_error(StartPipelineExecutionError::generic(meta), raw)
    }

    #[test]
    fn service_errors_are_classified_by_their_code_then_their_status() {
        use Class::*;
        let cases = [
            (400, "ThrottlingException", Throttled),
            (400, "TooManyRequestsException", Throttled),
            (400, "RequestLimitExceeded", Throttled),
            (
                400,
                "ConcurrentPipelineExecutionsLimitExceededException",
                Throttled,
            ),
            (400, "AccountLimitExceededException", Throttled),
            (429, "SomethingNew", Throttled),
            (500, "InternalFailure", Transient),
            (503, "ServiceUnavailable", Transient),
            (409, "ConflictException", Transient),
            (400, "AccessDeniedException", Denied),
            (400, "UnrecognizedClientException", Denied),
            (403, "InvalidSignatureException", Denied),
            (400, "ExpiredTokenException", Denied),
            (403, "InvalidClientTokenId", Denied),
            (400, "PipelineNotFoundException", NotFound),
            (400, "ResourceNotFoundException", NotFound),
            (400, "ValidationException", Refused),
            (400, "InvalidInputException", Refused),
            (400, "InvalidParameterValueException", Refused),
        ];
        for (status, code, class) in cases {
            assert_eq!(classify(&answered(status, code)), class, "{status} {code}");
        }
    }

    #[test]
    fn timeouts_and_connection_errors_are_transient() {
        use aws_sdk_codepipeline::error::ConnectorError;
        let timeout: SdkError<StartPipelineExecutionError, HttpResponse> =
            SdkError::timeout_error("slow");
        assert_eq!(classify(&timeout), Class::Transient);
        let io: SdkError<StartPipelineExecutionError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("connection reset".into()));
        assert_eq!(classify(&io), Class::Transient);
    }

    #[test]
    fn dead_failures_carry_a_hint_naming_the_permission_or_the_name() {
        let denied = Call::pipeline("api")
            .failed(&answered(400, "AccessDeniedException"), Some("eu-west-1"));
        assert!(!denied.retry);
        let (first, hint) = denied.message.split_once('\n').expect("a hint line");
        assert!(
            first.starts_with(
                "StartPipelineExecution of pipeline \"api\": HTTP 400 AccessDeniedException"
            ),
            "{first}"
        );
        assert_eq!(
            hint,
            "hint: allow codepipeline:StartPipelineExecution on arn:aws:codepipeline:eu-west-1:ACCOUNT:api to switchyard's credentials (its role or user)"
        );
        let denied = Call::build("web").failed(&answered(400, "AccessDeniedException"), None);
        assert!(
            denied
                .message
                .ends_with("hint: allow codebuild:StartBuild on arn:aws:codebuild:REGION:ACCOUNT:project/web to switchyard's credentials (its role or user)"),
            "{}",
            denied.message
        );
        let missing = Call::build("web").failed(
            &answered(400, "ResourceNotFoundException"),
            Some("cn-north-1"),
        );
        assert!(!missing.retry);
        assert!(
            missing
                .message
                .contains("\nhint: check the project name \"web\" and the region (cn-north-1)"),
            "{}",
            missing.message
        );
        assert_eq!(
            Call::build("web").arn(Some("cn-north-1")),
            "arn:aws-cn:codebuild:cn-north-1:ACCOUNT:project/web"
        );
        let throttled = Call::pipeline("api").failed(&answered(400, "ThrottlingException"), None);
        assert!(throttled.retry && !throttled.message.contains("hint:"));
    }

    /// A credentials provider whose chain found nothing.
    #[derive(Debug)]
    struct NoneFound;

    impl aws_credential_types::provider::ProvideCredentials for NoneFound {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            aws_credential_types::provider::future::ProvideCredentials::ready(Err(
                aws_credential_types::provider::error::CredentialsError::not_loaded(
                    "no providers in chain provided credentials",
                ),
            ))
        }
    }

    /// What a real client's StartPipelineExecution fails with when `credentials` (none: no
    /// provider at all) give nothing; the endpoint is a closed port, never reached.
    async fn without_credentials(
        credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    ) -> SdkError<StartPipelineExecutionError, HttpResponse> {
        let mut config = aws_sdk_codepipeline::Config::builder()
            .behavior_version(aws_sdk_codepipeline::config::BehaviorVersion::latest())
            .region(aws_sdk_codepipeline::config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .http_client(crate::aws::http_client());
        config.set_credentials_provider(credentials);
        aws_sdk_codepipeline::Client::from_conf(config.build())
            .start_pipeline_execution()
            .name("api")
            .send()
            .await
            .expect_err("no credentials")
    }

    #[tokio::test]
    async fn missing_credentials_are_told_apart_from_a_connection_error() {
        let none = without_credentials(None).await;
        assert_eq!(classify(&none), Class::NoCredentials, "{none:?}");
        let chain = without_credentials(Some(
            aws_credential_types::provider::SharedCredentialsProvider::new(NoneFound),
        ))
        .await;
        assert_eq!(classify(&chain), Class::NoCredentials, "{chain:?}");
        let failure = Call::pipeline("api").failed(&chain, Some("us-east-1"));
        assert!(!failure.retry);
        assert!(
            failure.message.ends_with("allowed codepipeline:StartPipelineExecution on arn:aws:codepipeline:us-east-1:ACCOUNT:api"),
            "{}",
            failure.message
        );
    }

    fn event(kind: &str, repository: &str) -> ChangeEvent {
        let pull_request = (kind == "pull_request").then(|| {
            serde_json::json!({"number": 42, "action": "opened", "merged": false,
                "base_ref": "refs/heads/main", "base_sha": null,
                "head_sha": "3333333333333333333333333333333333333333"})
        });
        let json = serde_json::json!({
            "schema": "switchyard.change/v1",
            "repository": repository,
            "kind": kind,
            "ref": "refs/heads/feature",
            "before": "1111111111111111111111111111111111111111",
            "after": "2222222222222222222222222222222222222222",
            "changed_paths": [], "changed_paths_complete": false,
            "pull_request": pull_request,
        });
        let source = Source {
            kind: SourceKind::Manual,
            provider: None,
            delivery_id: None,
        };
        ChangeEvent::from_json(json.to_string().as_bytes(), source).expect("a valid event")
    }

    #[test]
    fn a_build_is_of_the_commit_or_of_a_github_pull_request() {
        let default = CodeBuild {
            project: "web".into(),
            source_version: None,
            environment: Vec::new(),
        };
        let custom = CodeBuild {
            source_version: Some(
                crate::template::Template::parse("refs/heads/${branch}^{${sha}}")
                    .expect("template"),
            ),
            ..default.clone()
        };
        let cases = [
            (
                &default,
                "push",
                "github.com/acme/web",
                "2222222222222222222222222222222222222222",
            ),
            (&default, "pull_request", "github.com/acme/web", "pr/42"),
            (
                &default,
                "pull_request",
                "gitlab.com/acme/web",
                "3333333333333333333333333333333333333333",
            ),
            (
                &default,
                "pull_request",
                "codecommit::us-east-1://web",
                "3333333333333333333333333333333333333333",
            ),
            (
                &custom,
                "push",
                "github.com/acme/web",
                "refs/heads/feature^{2222222222222222222222222222222222222222}",
            ),
        ];
        for (target, kind, repository, want) in cases {
            let e = event(kind, repository);
            let ctx = Context {
                event: &e,
                pipeline: "web",
                start_id: "s1",
            };
            assert_eq!(source_version(target, &ctx), want, "{kind} of {repository}");
        }
    }
}
