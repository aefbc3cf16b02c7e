//! The AWS SDK set-up shared by the EventBridge source, the AWS start targets, the Lambda
//! function's claims and `switchyard aws setup`: credentials from the standard chain
//! (environment, profile, container and instance roles, web identity), rustls with ring for
//! TLS, an optional endpoint URL (moto, LocalStack). `setup.rs` is `switchyard aws setup` (the
//! queue, its dead-letter queue, the rules); `claims.rs` the start ids Lambda claims in a
//! DynamoDB table (Powertools' item layout and conditions).

pub mod claims;
pub mod setup;

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The SDK configuration for `region` (the chain's region when `None`), talking to
/// `endpoint_url` instead of AWS when given.
pub async fn sdk_config(region: Option<&str>, endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The SDK's HTTP client: hyper with rustls on ring (no aws-lc to build).
pub fn http_client() -> aws_sdk_sqs::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// A person-readable account of an SDK error (of any service: they share the error type): the
/// service's code and message when it answered, otherwise what went wrong on the way (no
/// credentials, endpoint unreachable, timeout).
pub fn describe<E>(
    error: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> String
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_sqs::error::SdkError;
    match error {
        SdkError::ServiceError(e) => {
            let err = e.err();
            let raw = e.raw();
            let body = raw.body().bytes().map(String::from_utf8_lossy);
            // A code the SDK could not read (an XML answer, say) may still be in the body.
            let code = err.code().map(str::to_owned).or_else(|| {
                body.as_deref()
                    .and_then(|b| between(b, "<Code>", "</Code>"))
            });
            let message = err.message().map(str::to_owned).or_else(|| {
                body.as_deref()
                    .and_then(|b| between(b, "<Message>", "</Message>"))
            });
            let status = raw.status().as_u16();
            let mut text = match (code.as_deref(), message) {
                (Some(code), Some(message)) => format!("HTTP {status} {code}: {message}"),
                (Some(code), None) => format!("HTTP {status} {code}"),
                (None, _) => format!("HTTP {status}: {err}"),
            };
            if matches!(
                code.as_deref(),
                Some(
                    "InvalidClientTokenId"
                        | "UnrecognizedClientException"
                        | "SignatureDoesNotMatch"
                        | "InvalidAccessKeyId"
                        | "ExpiredToken"
                        | "AccessDenied"
                        | "AccessDeniedException"
                )
            ) {
                text.push_str(
                    " (check the AWS credentials: environment, profile or role, and their permissions)",
                );
            }
            text
        }
        SdkError::DispatchFailure(e) if e.is_io() => {
            "cannot connect to the endpoint (is the URL right, and the service up?)".into()
        }
        SdkError::DispatchFailure(e) if e.is_timeout() => "the request timed out".into(),
        SdkError::TimeoutError(_) => "the request timed out".into(),
        other => {
            // The cause chain carries the useful part (e.g. "no credentials in the chain").
            crate::diag::with_causes(other)
        }
    }
}

/// The text between the first `open` and the following `close`.
fn between(text: &str, open: &str, close: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(text[start..end].trim().to_owned())
}
