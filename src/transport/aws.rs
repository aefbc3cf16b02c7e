//! The AWS transport: the calls of the AWS targets (`target::aws::Call`) made with the SDK, and
//! their errors reduced to what judging needs (the service's code and status, or where the call
//! failed). The SDK clients are made at the first call, with credentials from the standard
//! chain; inside one call the SDK's standard retry mode (up to 3 tries, exponential backoff with
//! jitter) repeats throttling, 5xx answers and connection errors.

use aws_sdk_codebuild::types::{EnvironmentVariable, EnvironmentVariableType};
use aws_sdk_codepipeline::types::{PipelineVariable, SourceRevisionOverride, SourceRevisionType};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use tokio::sync::OnceCell;

use crate::target::aws::{Answer, Call, Cause, EVENT_SOURCE, Error};

/// Where the AWS targets' clients point: the region and endpoint of the `eventbridge` section
/// when there is one, else the SDK's own chain (`AWS_REGION`, `AWS_ENDPOINT_URL`, profile).
#[derive(Debug, Default)]
pub struct Aws {
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

impl Aws {
    /// Clients in `region` through `endpoint_url` (each `None` for the SDK's chain).
    pub fn new(region: Option<String>, endpoint_url: Option<String>) -> Aws {
        Aws {
            region,
            endpoint_url,
            clients: OnceCell::new(),
        }
    }

    /// Clients made from `sdk` now (for tests and tools that hold a config).
    pub fn from_config(sdk: &aws_config::SdkConfig) -> Aws {
        Aws {
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

    /// Makes `call`.
    pub async fn call(&self, call: Call) -> Answer {
        let clients = self.clients().await;
        let failed = |e: Error| Answer::Failed(e);
        let region = || clients.region.clone();
        match call {
            Call::PutEvents {
                bus,
                detail_type,
                detail,
            } => {
                let entry = PutEventsRequestEntry::builder()
                    .event_bus_name(bus)
                    .source(EVENT_SOURCE)
                    .detail_type(detail_type)
                    .detail(detail)
                    .build();
                match clients.events.put_events().entries(entry).send().await {
                    Err(e) => failed(error(&e, region())),
                    Ok(out) => {
                        let refused = (out.failed_entry_count() > 0).then(|| {
                            out.entries()
                                .iter()
                                .filter_map(|e| {
                                    Some(format!(
                                        "{}: {}",
                                        e.error_code()?,
                                        e.error_message().unwrap_or_default()
                                    ))
                                })
                                .collect::<Vec<_>>()
                                .join("; ")
                        });
                        // One entry was put: its event id names the run.
                        let id = out
                            .entries()
                            .first()
                            .and_then(|e| e.event_id())
                            .map(str::to_owned);
                        Answer::Done { id, refused }
                    }
                }
            }
            Call::SendMessage {
                queue_url,
                body,
                fifo,
            } => {
                let mut send = clients
                    .sqs
                    .send_message()
                    .queue_url(queue_url)
                    .message_body(body);
                if let Some(fifo) = fifo {
                    send = send
                        .message_group_id(fifo.group_id)
                        .message_deduplication_id(fifo.deduplication_id);
                }
                match send.send().await {
                    Err(e) => failed(error(&e, region())),
                    Ok(out) => Answer::Done {
                        id: out.message_id().map(str::to_owned),
                        refused: None,
                    },
                }
            }
            Call::StartPipelineExecution {
                name,
                source_action,
                commit,
                variables,
                client_request_token,
            } => {
                let invalid = |e: aws_sdk_codepipeline::error::BuildError| {
                    Answer::Failed(Error {
                        text: e.to_string(),
                        cause: Cause::Invalid,
                        region: region(),
                    })
                };
                let revision = match SourceRevisionOverride::builder()
                    .action_name(source_action)
                    .revision_type(SourceRevisionType::CommitId)
                    .revision_value(commit)
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => return invalid(e),
                };
                let variables = match variables
                    .into_iter()
                    .map(|(name, value)| {
                        PipelineVariable::builder().name(name).value(value).build()
                    })
                    .collect::<Result<Vec<_>, _>>()
                {
                    Ok(v) => v,
                    Err(e) => return invalid(e),
                };
                let sent = clients
                    .codepipeline
                    .start_pipeline_execution()
                    .name(name)
                    .source_revisions(revision)
                    .set_variables((!variables.is_empty()).then_some(variables))
                    .client_request_token(client_request_token)
                    .send()
                    .await;
                match sent {
                    Err(e) => failed(error(&e, region())),
                    Ok(out) => Answer::Done {
                        id: out.pipeline_execution_id().map(str::to_owned),
                        refused: None,
                    },
                }
            }
            Call::StartBuild {
                project,
                source_version,
                environment,
                idempotency_token,
            } => {
                let environment = match environment
                    .into_iter()
                    .map(|(name, value)| {
                        EnvironmentVariable::builder()
                            .name(name)
                            .value(value)
                            .r#type(EnvironmentVariableType::Plaintext)
                            .build()
                    })
                    .collect::<Result<Vec<_>, _>>()
                {
                    Ok(env) => env,
                    Err(e) => {
                        return Answer::Failed(Error {
                            text: e.to_string(),
                            cause: Cause::Invalid,
                            region: region(),
                        });
                    }
                };
                let sent = clients
                    .codebuild
                    .start_build()
                    .project_name(project)
                    .set_source_version(source_version)
                    .set_environment_variables_override(
                        (!environment.is_empty()).then_some(environment),
                    )
                    .idempotency_token(idempotency_token)
                    .send()
                    .await;
                match sent {
                    Err(e) => failed(error(&e, region())),
                    Ok(out) => Answer::Done {
                        id: out
                            .build_value()
                            .and_then(|b| b.id().or(b.arn()))
                            .map(str::to_owned),
                        refused: None,
                    },
                }
            }
        }
    }
}

/// An SDK error of any service (they share the error type) as what judging needs.
fn error<E>(e: &SdkError<E, HttpResponse>, region: Option<String>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    Error {
        text: crate::aws::describe(e),
        cause: cause(e),
        region,
    }
}

/// Where a call failed.
fn cause<E>(error: &SdkError<E, HttpResponse>) -> Cause
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error {
        SdkError::ServiceError(e) => Cause::Service {
            code: e.err().code().map(str::to_owned),
            status: e.raw().status().as_u16(),
        },
        SdkError::DispatchFailure(_) if missing_credentials(error) => Cause::NoCredentials,
        SdkError::ConstructionFailure(_) if missing_credentials(error) => Cause::NoCredentials,
        // The request could not be built from what we gave: another attempt builds it again.
        SdkError::ConstructionFailure(_) => Cause::Invalid,
        _ => Cause::Transport,
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

#[cfg(test)]
mod tests {
    use super::*;
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
    fn a_service_error_keeps_its_code_status_and_words() {
        let e = error(
            &answered(400, "AccessDeniedException"),
            Some("eu-west-1".into()),
        );
        assert_eq!(
            e.cause,
            Cause::Service {
                code: Some("AccessDeniedException".into()),
                status: 400
            }
        );
        assert!(
            e.text
                .starts_with("HTTP 400 AccessDeniedException: the service's words"),
            "{}",
            e.text
        );
    }

    #[test]
    fn timeouts_and_connection_errors_are_transport_failures() {
        use aws_sdk_codepipeline::error::ConnectorError;
        let timeout: SdkError<StartPipelineExecutionError, HttpResponse> =
            SdkError::timeout_error("slow");
        assert_eq!(cause(&timeout), Cause::Transport);
        let io: SdkError<StartPipelineExecutionError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("connection reset".into()));
        assert_eq!(cause(&io), Cause::Transport);
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
        assert_eq!(cause(&none), Cause::NoCredentials, "{none:?}");
        let chain = without_credentials(Some(
            aws_credential_types::provider::SharedCredentialsProvider::new(NoneFound),
        ))
        .await;
        assert_eq!(cause(&chain), Cause::NoCredentials, "{chain:?}");
    }
}
