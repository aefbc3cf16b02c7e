//! JSON log lines: one object a line with the time, the level, the message and the event's
//! fields, the fields of every span it happens in (`change_id`, `delivery_id`, `start_id`, …;
//! an inner span's value before an outer one's, the event's own before both) and the spans'
//! names, outermost first.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format of `--log-format json` (span fields stored by [`JsonFields`]).
#[derive(Debug)]
pub(super) struct Lines;

impl<S> FormatEvent<S, JsonFields> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut object = Map::new();
        event.record(&mut Fields(&mut object));
        object.insert(
            "timestamp".into(),
            Value::String(jiff::Timestamp::now().to_string()),
        );
        object.insert(
            "level".into(),
            Value::String(event.metadata().level().as_str().to_owned()),
        );
        let mut names = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            // Innermost first: the first value of a name wins.
            for span in scope {
                names.push(Value::String(span.name().to_owned()));
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<JsonFields>>() else {
                    continue;
                };
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&fields.fields) {
                    for (name, value) in fields {
                        object.entry(name).or_insert(value);
                    }
                }
            }
        }
        if !names.is_empty() {
            names.reverse();
            object.insert("spans".into(), Value::Array(names));
        }
        let line = serde_json::to_string(&Value::Object(object)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// Records an event's fields as JSON values.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_owned(), value);
    }
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.put(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
}
