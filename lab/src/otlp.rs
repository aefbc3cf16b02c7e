//! An OTLP/HTTP collector stub on loopback: records the body of every `POST /v1/traces` as
//! sent (protobuf) and the spans it holds, decoded with the OpenTelemetry protocol's own
//! messages, and answers 200 with an empty `ExportTraceServiceResponse`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use prost::Message as _;

use crate::runner::Recorder;

/// One exported span, its ids in lower-case hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedSpan {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// The resource's `service.name`.
    pub service: String,
    /// The span's attributes whose values are strings, integers or booleans, as text.
    pub attributes: Vec<(String, String)>,
}

impl ExportedSpan {
    /// The attribute `key` as text.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What one export request brought.
#[derive(Clone, Debug)]
pub struct Export {
    pub content_type: String,
    /// The body as sent.
    pub body: Bytes,
    /// Its spans; empty when the body could not be decoded.
    pub spans: Vec<ExportedSpan>,
}

/// The collector: every export, in order.
#[derive(Debug, Default)]
pub struct Collector {
    exports: Recorder<Export>,
}

impl Collector {
    /// Serves on a loopback port for as long as the runtime runs; the collector and its
    /// address (`OTEL_EXPORTER_OTLP_ENDPOINT=http://ADDR`).
    pub async fn start() -> anyhow::Result<(Arc<Collector>, SocketAddr)> {
        let collector = Arc::new(Collector::default());
        let shared = Arc::clone(&collector);
        let addr = crate::http::serve(move |request| Arc::clone(&shared).take(request)).await?;
        Ok((collector, addr))
    }

    async fn take(self: Arc<Self>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let answer = |status: StatusCode| {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = status;
            response.headers_mut().insert(
                "content-type",
                "application/x-protobuf".parse().expect("a value"),
            );
            response
        };
        if request.method() != hyper::Method::POST || request.uri().path() != "/v1/traces" {
            return answer(StatusCode::NOT_FOUND);
        }
        let content_type = request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = crate::http::read_body(request.into_body()).await;
        let spans = decode(&body);
        self.exports.push(Export {
            content_type,
            body,
            spans,
        });
        answer(StatusCode::OK)
    }

    /// Every export so far.
    pub fn exports(&self) -> Vec<Export> {
        self.exports.all()
    }

    /// Every span exported so far.
    pub fn spans(&self) -> Vec<ExportedSpan> {
        self.exports().into_iter().flat_map(|e| e.spans).collect()
    }

    /// Waits, woken at each export, until `found` finds something among the spans so far:
    /// what it found; `None` after `within`.
    pub async fn wait_for<T>(
        &self,
        within: Duration,
        mut found: impl FnMut(&[ExportedSpan]) -> Option<T>,
    ) -> Option<T> {
        self.exports
            .wait_for(within, |exports| {
                let spans: Vec<ExportedSpan> =
                    exports.iter().flat_map(|e| e.spans.clone()).collect();
                found(&spans)
            })
            .await
    }
}

fn text(value: Option<&AnyValue>) -> Option<String> {
    match value?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(n) => Some(n.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The spans of an `ExportTraceServiceRequest`.
fn decode(body: &[u8]) -> Vec<ExportedSpan> {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| text(kv.value.as_ref()))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                out.push(ExportedSpan {
                    name: span.name,
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: hex::encode(&span.parent_span_id),
                    service: service.clone(),
                    attributes: span
                        .attributes
                        .iter()
                        .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref())?)))
                        .collect(),
                });
            }
        }
    }
    out
}
