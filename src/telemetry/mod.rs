//! Logs and traces: the `tracing` subscriber every command logs through (`text` lines, or
//! `json` objects one a line with the ids of the spans they happen in), the OTLP export of
//! `serve`'s spans when `OTEL_EXPORTER_OTLP_ENDPOINT` says where to, and the spans' side of
//! a change's `traceparent` (a span's parent set from it; the `traceparent` of an outgoing
//! request made from the current span).
//!
//! The spans a change goes through: `receive` (a webhook delivery, with `receiver` and
//! `delivery_id`) → `verify` → `store` (`change_id`) → `dispatch` (`change_id`, `start_id`,
//! `pipeline`) → `attempt` (`attempt`). Their fields are ids, never a payload or a header value.
//!
//! Without an OTLP endpoint nothing here touches OpenTelemetry on the intake's path: the
//! helpers return at once, and `traceparent`s are made by [`crate::trace`] alone.

mod json;
mod otlp;

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::diag::Hinted;
use crate::trace::TraceParent;

/// The variable that chooses the log format when `--log-format` is not given.
pub const FORMAT_VARIABLE: &str = "SWITCHYARD_LOG_FORMAT";

/// The variable of the log filter (`info` unless set: `debug`, `switchyard=debug,warn`, …).
pub const FILTER_VARIABLE: &str = "SWITCHYARD_LOG";

/// Whether spans are exported (and so carry OpenTelemetry contexts).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether log lines are JSON (for [`say`]).
static JSON_LINES: AtomicBool = AtomicBool::new(false);

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

impl LogFormat {
    /// The format named `flag` (`--log-format`), else by [`FORMAT_VARIABLE`], else text. An
    /// unknown name is an error naming it, where it came from, and the choices.
    pub fn choose(flag: Option<&str>, variable: Option<&str>) -> Result<LogFormat, Hinted> {
        let (value, from) = match (flag, variable) {
            (Some(v), _) => (v, "--log-format"),
            (None, Some(v)) if !v.is_empty() => (v, FORMAT_VARIABLE),
            _ => return Ok(LogFormat::Text),
        };
        match value {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(Hinted::new(
                format!("{from}: unknown log format {value:?}"),
                "choose text (the default) or json",
            )),
        }
    }
}

/// What [`init`] set up; [`Telemetry::shutdown`] flushes the spans not exported yet.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is left (within the exporter's timeout) and stops exporting. Call it once
    /// the work is done, outside an async runtime.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            EXPORTING.store(false, Ordering::Relaxed);
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "the last spans could not be exported");
            }
        }
    }
}

/// Installs the global subscriber: logs to standard error in `format`, filtered by
/// [`FILTER_VARIABLE`]; with `export` and an OTLP endpoint in the environment
/// (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), spans are exported
/// too, in batches.
pub fn init(format: LogFormat, export: bool) -> anyhow::Result<Telemetry> {
    let filter = tracing_subscriber::EnvFilter::try_from_env(FILTER_VARIABLE)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let provider = if export && otlp::configured() {
        Some(otlp::provider()?)
    } else {
        None
    };
    let spans = provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("switchyard"))
            .with_tracked_inactivity(false)
            .with_threads(false)
    });
    let lines = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json::Lines)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(spans)
        .with(lines)
        .with(filter)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))?;
    JSON_LINES.store(format == LogFormat::Json, Ordering::Relaxed);
    if provider.is_some() {
        EXPORTING.store(true, Ordering::Relaxed);
        tracing::info!(
            service = %otlp::service_name(),
            "exporting spans over OTLP/HTTP"
        );
    }
    Ok(Telemetry { provider })
}

/// Prints a line a person waits for (`serve`'s address) whatever the log filter: as it is with
/// text logs, as an object like the log's with JSON logs, so that standard error stays one
/// object a line.
pub fn say(line: &str) {
    if JSON_LINES.load(Ordering::Relaxed) {
        let object = serde_json::json!({
            "timestamp": jiff::Timestamp::now().to_string(),
            "level": "INFO",
            "message": line,
        });
        eprintln!("{object}");
    } else {
        eprintln!("{line}");
    }
}

/// Makes `parent` the parent of `span`, which must not have been entered yet, so that the
/// exported span belongs to that trace. Nothing when spans are not exported.
pub fn set_parent(span: &tracing::Span, parent: &TraceParent) {
    if !EXPORTING.load(Ordering::Relaxed) || span.is_disabled() {
        return;
    }
    let context = SpanContext::new(
        TraceId::from_bytes(parent.trace_id()),
        SpanId::from_bytes(parent.parent_id()),
        TraceFlags::new(parent.flags()),
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(context));
}

/// The `traceparent` of `span` as exported (its trace, its own span id); `None` when spans
/// are not exported.
pub fn traceparent_of(span: &tracing::Span) -> Option<TraceParent> {
    if !EXPORTING.load(Ordering::Relaxed) || span.is_disabled() {
        return None;
    }
    let context = span.context();
    let otel = context.span();
    let ids = otel.span_context();
    if !ids.is_valid() {
        return None;
    }
    TraceParent::from_parts(
        ids.trace_id().to_bytes(),
        ids.span_id().to_bytes(),
        ids.trace_flags().to_u8(),
    )
}

/// The `traceparent` a change is stored with, which its starts are made children of. When
/// spans are exported, the current span's (`store`, in the trace the delivery came with or in
/// a new one), so that the starts' spans follow it; else the one the delivery came with; else
/// a new trace.
pub fn for_change(received: Option<TraceParent>) -> Option<TraceParent> {
    traceparent_of(&tracing::Span::current()).or(received)
}

/// The `traceparent` of a request made now on behalf of `change`'s trace: the current span as
/// the parent when spans are exported (so the runner's spans nest under the attempt), else a
/// child with a new parent id.
pub fn outgoing(change: &TraceParent) -> TraceParent {
    traceparent_of(&tracing::Span::current())
        .filter(|t| t.trace_id() == change.trace_id())
        .unwrap_or_else(|| change.child())
}

/// The span of attempt `number` of a start of `change`'s trace, and the `traceparent` its
/// requests carry (a new span of that trace).
pub fn attempt(number: u32, change: &TraceParent) -> (tracing::Span, TraceParent) {
    let span = tracing::info_span!("attempt", attempt = number);
    let traceparent = span.in_scope(|| outgoing(change));
    (span, traceparent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_format_is_the_flag_else_the_variable_else_text() {
        // (flag, variable, format or the error's first line)
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Result<LogFormat, &'a str>);
        let cases: [Case<'_>; 7] = [
            (None, None, Ok(LogFormat::Text)),
            (None, Some(""), Ok(LogFormat::Text)),
            (None, Some("json"), Ok(LogFormat::Json)),
            (Some("text"), Some("json"), Ok(LogFormat::Text)),
            (Some("json"), None, Ok(LogFormat::Json)),
            (
                Some("xml"),
                Some("json"),
                Err("--log-format: unknown log format \"xml\""),
            ),
            (
                None,
                Some("JSON"),
                Err("SWITCHYARD_LOG_FORMAT: unknown log format \"JSON\""),
            ),
        ];
        for (flag, variable, want) in cases {
            let got = LogFormat::choose(flag, variable);
            match want {
                Ok(format) => assert_eq!(got, Ok(format), "{flag:?} {variable:?}"),
                Err(first) => {
                    let e = got.expect_err("an error");
                    assert_eq!(e.message, first);
                    assert_eq!(e.hint, "choose text (the default) or json");
                }
            }
        }
    }

    #[test]
    fn without_export_a_change_keeps_its_traceparent_or_gets_a_new_one() {
        let received = TraceParent::root();
        assert_eq!(for_change(Some(received)), Some(received));
        assert_eq!(for_change(None), None, "derived from the change id later");
        let out = outgoing(&received);
        assert_eq!(out.trace_id(), received.trace_id());
        assert_ne!(out.parent_id(), received.parent_id());
    }
}
