//! The AWS SDK set-up shared by the EventBridge source, the AWS start targets and
//! `switchyard aws setup`: credentials from the standard chain (environment, profile,
//! container and instance roles, web identity), rustls with ring for TLS, an optional endpoint
//! URL (moto, LocalStack).

pub mod setup;

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The SDK configuration for `region` (the chain's region when `None`), talking to
/// `endpoint_url` instead of AWS when given.
pub async fn sdk_config(region: Option<&str>, endpoint_url: Option<&str>) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// A person-readable account of an SDK error (of any service: they share the error type): the
/// service's code and message when it answered, otherwise what went wrong on the way (no
/// credentials, endpoint unreachable, timeout).
pub fn describe<E, R>(error: &aws_sdk_sqs::error::SdkError<E, R>) -> String
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_sqs::error::SdkError;
    match error {
        SdkError::ServiceError(e) => {
            let err = e.err();
            match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_owned(),
                _ => err.to_string(),
            }
        }
        SdkError::DispatchFailure(e) if e.is_io() => {
            "cannot connect to the endpoint (is the URL right, and the service up?)".into()
        }
        SdkError::DispatchFailure(e) if e.is_timeout() => "the request timed out".into(),
        SdkError::TimeoutError(_) => "the request timed out".into(),
        other => {
            // The cause chain carries the useful part (e.g. "no credentials in the chain").
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}
