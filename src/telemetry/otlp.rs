//! The OTLP/HTTP (protobuf) export of spans: the SDK's batch processor, on its own thread,
//! posting through switchyard's own HTTP client (hyper and rustls, as every target), driven by
//! a small runtime of its own so that an export never waits for, nor stops with, `serve`'s.
//!
//! Configured the OpenTelemetry way: `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended) or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as it is), `OTEL_EXPORTER_OTLP_HEADERS` (never
//! logged), `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*` for the batches, and `OTEL_SERVICE_NAME`
//! (default `switchyard`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::diag::Hinted;
use crate::transport::http;

/// The most one export may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A variable's value, when it is set and not empty.
fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether the environment names an OTLP endpoint for traces.
pub(super) fn configured() -> bool {
    variable("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        || variable("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
}

/// `OTEL_SERVICE_NAME`, else `switchyard`.
pub(super) fn service_name() -> String {
    variable("OTEL_SERVICE_NAME").unwrap_or_else(|| "switchyard".to_owned())
}

/// The tracer provider exporting in batches to the configured endpoint.
pub(super) fn provider() -> anyhow::Result<SdkTracerProvider> {
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(protocol) = variable(name).filter(|p| p != "http/protobuf") {
            return Err(Hinted::new(
                format!(
                    "{name}={protocol:?}: switchyard exports spans over OTLP/HTTP with protobuf only"
                ),
                "unset it, or set it to http/protobuf",
            )
            .into());
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("switchyard-otlp")
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the OTLP exporter's runtime: {e}"))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(Post {
            client: http::client(),
            runtime,
            failing: AtomicBool::new(false),
        })
        .build()
        .map_err(|e| {
            Hinted::new(
                format!("cannot export spans: {e}"),
                "check OTEL_EXPORTER_OTLP_ENDPOINT (a URL such as http://127.0.0.1:4318)",
            )
        })?;
    let resource = Resource::builder()
        .with_service_name(service_name())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The exporter's HTTP client: each export is one POST on the shared client, run to its end on
/// the exporter's own runtime (the batch processor's thread blocks on it, as it expects).
#[derive(Debug)]
struct Post {
    client: http::Client,
    runtime: tokio::runtime::Runtime,
    /// Whether the last export failed (a failure is logged once, until one succeeds).
    failing: AtomicBool,
}

impl Post {
    fn post(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let exchange = http::send(&self.client, request, TIMEOUT);
        // The batch processor's thread has no runtime; anywhere else, block on a thread of
        // its own, never on a runtime's worker.
        let answer = if tokio::runtime::Handle::try_current().is_err() {
            self.runtime.block_on(exchange)
        } else {
            std::thread::scope(|s| {
                s.spawn(|| self.runtime.block_on(exchange))
                    .join()
                    .unwrap_or_else(|_| Err(crate::target::Failure::retry("the export panicked")))
            })
        };
        let answer = match answer {
            Ok(answer) if answer.0.is_success() => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("exporting spans again");
                }
                answer
            }
            Ok(answer) => {
                self.failed(&format!("the collector answered {}", answer.0));
                answer
            }
            Err(failure) => {
                self.failed(&failure.message);
                return Err(failure.message.into());
            }
        };
        let (status, headers, body) = answer;
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }

    fn failed(&self, why: &str) {
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = why,
                "cannot export spans; trying on with the next batches"
            );
        }
    }
}

impl HttpClient for Post {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move { self.post(request) })
    }
}
