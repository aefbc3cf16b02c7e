//! What every target reached through an AWS API shares: the calls (plain data; the `switchyard`
//! crate makes them with the SDK), their answers, and how an error is judged.
//!
//! Retries happen at two levels. Inside one attempt the SDK's standard retry mode repeats
//! throttling, 5xx answers and connection errors; what still fails after that comes back here
//! and is classified ([`Class`]): throttling and transient errors become a retry of the start
//! with the dispatcher's backoff and attempt budget, denied access, missing credentials, an
//! unknown pipeline or project and a refused request are dead at once, with a hint naming what
//! to fix (for access, the IAM action and resource ARN to allow).

use super::Failure;
use crate::diag::Hinted;

/// The `source` of the events switchyard puts.
pub const EVENT_SOURCE: &str = "switchyard";

/// One AWS API call of an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// EventBridge PutEvents of one entry.
    PutEvents {
        bus: String,
        detail_type: String,
        detail: String,
    },
    /// SQS SendMessage; on a FIFO queue with a group and a deduplication id.
    SendMessage {
        queue_url: String,
        body: String,
        fifo: Option<Fifo>,
    },
    /// CodePipeline StartPipelineExecution with the source action's revision set to a commit.
    StartPipelineExecution {
        name: String,
        source_action: String,
        commit: String,
        variables: Vec<(String, String)>,
        client_request_token: String,
    },
    /// CodeBuild StartBuild.
    StartBuild {
        project: String,
        /// `None` leaves the project's default.
        source_version: Option<String>,
        environment: Vec<(String, String)>,
        idempotency_token: String,
    },
}

/// A FIFO queue's message group and deduplication id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fifo {
    pub group_id: String,
    pub deduplication_id: String,
}

/// What a call answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The call succeeded: the id of what it made (event, message, execution, build), and for
    /// PutEvents the entries refused (`code: message; …`), when any was.
    Done {
        id: Option<String>,
        refused: Option<String>,
    },
    Failed(Error),
}

/// Why a call failed, reduced to what judging needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// A person-readable account: the service's code and message when it answered, else what
    /// went wrong on the way.
    pub text: String,
    pub cause: Cause,
    /// The region the client resolved, for the ARNs of hints.
    pub region: Option<String>,
}

/// Where a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The service answered with `code` (when it said one) and HTTP `status`.
    Service { code: Option<String>, status: u16 },
    /// No credentials at all: no provider, or a chain that found none.
    NoCredentials,
    /// The request could not be built from what was given.
    Invalid,
    /// A timeout, a connection or transport error.
    Transport,
}

/// What an error means for the start.
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

impl Cause {
    /// What the failure means.
    pub fn class(&self) -> Class {
        match self {
            Cause::Service { code, status } => by_code(code.as_deref(), *status),
            Cause::NoCredentials => Class::NoCredentials,
            Cause::Invalid => Class::Refused,
            Cause::Transport => Class::Transient,
        }
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

/// A start's call of a resource (a pipeline, a project), for its messages and hints.
#[derive(Debug)]
pub struct Resource<'a> {
    /// `StartPipelineExecution of pipeline "api"`.
    pub what: String,
    /// `pipeline` or `project`.
    pub kind: &'static str,
    pub name: &'a str,
    /// The IAM action it needs.
    pub action: &'static str,
    /// The resource ARN after `:ACCOUNT:`.
    pub resource: String,
    /// The ARN's service.
    pub service: &'static str,
}

impl Resource<'_> {
    /// The resource's ARN in `region` (`REGION` when unknown); the account is not known here.
    pub fn arn(&self, region: Option<&str>) -> String {
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

    /// The run a call made, or the failure its error means, with the hint its class calls for.
    pub fn judge(&self, answer: Answer) -> Result<super::Run, Failure> {
        match answer {
            Answer::Done { id, .. } => Ok(super::Run { id }),
            Answer::Failed(e) => Err(self.failed(&e)),
        }
    }

    /// The failure of the call that ended in `e`.
    pub fn failed(&self, e: &Error) -> Failure {
        let text = format!("{}: {}", self.what, e.text);
        let region = e.region.as_deref();
        let region_name = region.unwrap_or("the SDK's default");
        let dead = |hint: String| Failure::dead(Hinted::new(text.clone(), hint).to_string());
        match e.cause.class() {
            Class::Throttled => Failure::throttled(text, None),
            Class::Transient => Failure::retry(text),
            Class::Denied => dead(format!(
                "allow {} on {} to switchyard's credentials (its role or user)",
                self.action,
                self.arn(region)
            )),
            Class::NoCredentials => dead(format!(
                "give switchyard AWS credentials (environment, profile, container or instance role) allowed {} on {}",
                self.action,
                self.arn(region)
            )),
            Class::NotFound => dead(format!(
                "check the {} name {:?} and the region ({region_name}): the region is the `eventbridge:` section's, else the SDK's (AWS_REGION, profile)",
                self.kind, self.name
            )),
            Class::Refused => Failure::dead(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, code: &str, region: Option<&str>) -> Error {
        Error {
            text: format!("HTTP {status} {code}: the service's words"),
            cause: Cause::Service {
                code: Some(code.to_owned()),
                status,
            },
            region: region.map(str::to_owned),
        }
    }

    fn pipeline(name: &str) -> Resource<'_> {
        super::super::codepipeline::resource(name)
    }

    fn build(project: &str) -> Resource<'_> {
        super::super::codebuild::resource(project)
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
            assert_eq!(
                answered(status, code, None).cause.class(),
                class,
                "{status} {code}"
            );
        }
        assert_eq!(Cause::Transport.class(), Transient);
        assert_eq!(Cause::NoCredentials.class(), NoCredentials);
        assert_eq!(Cause::Invalid.class(), Refused);
    }

    #[test]
    fn dead_failures_carry_a_hint_naming_the_permission_or_the_name() {
        let denied =
            pipeline("api").failed(&answered(400, "AccessDeniedException", Some("eu-west-1")));
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
        let denied = build("web").failed(&answered(400, "AccessDeniedException", None));
        assert!(
            denied
                .message
                .ends_with("hint: allow codebuild:StartBuild on arn:aws:codebuild:REGION:ACCOUNT:project/web to switchyard's credentials (its role or user)"),
            "{}",
            denied.message
        );
        let missing = build("web").failed(&answered(
            400,
            "ResourceNotFoundException",
            Some("cn-north-1"),
        ));
        assert!(!missing.retry);
        assert!(
            missing
                .message
                .contains("\nhint: check the project name \"web\" and the region (cn-north-1)"),
            "{}",
            missing.message
        );
        assert_eq!(
            build("web").arn(Some("cn-north-1")),
            "arn:aws-cn:codebuild:cn-north-1:ACCOUNT:project/web"
        );
        let throttled = pipeline("api").failed(&answered(400, "ThrottlingException", None));
        assert!(throttled.retry && !throttled.message.contains("hint:"));
        let none = pipeline("api").failed(&Error {
            text: "no credentials".into(),
            cause: Cause::NoCredentials,
            region: Some("us-east-1".into()),
        });
        assert!(!none.retry);
        assert!(
            none.message.ends_with("allowed codepipeline:StartPipelineExecution on arn:aws:codepipeline:us-east-1:ACCOUNT:api"),
            "{}",
            none.message
        );
    }
}
