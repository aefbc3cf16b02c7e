//! Logs: the `tracing` subscriber every command logs through (`text` lines, or `json` objects
//! one a line with the ids of the spans they happen in).
//!
//! The spans a change goes through: `receive` (a webhook delivery, with `receiver` and
//! `delivery_id`) → `verify` → `store` (`change_id`) → `dispatch` (`change_id`, `start_id`,
//! `pipeline`) → `attempt` (`attempt`). Their fields are ids, never a payload or a header value.

mod json;

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The variable that chooses the log format when `--log-format` is not given.
pub const FORMAT_VARIABLE: &str = "SWITCHYARD_LOG_FORMAT";

/// The variable of the log filter (`info` unless set: `debug`, `switchyard=debug,warn`, …).
pub const FILTER_VARIABLE: &str = "SWITCHYARD_LOG";

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
    pub fn choose(flag: Option<&str>, variable: Option<&str>) -> Result<LogFormat, String> {
        let (value, from) = match (flag, variable) {
            (Some(v), _) => (v, "--log-format"),
            (None, Some(v)) if !v.is_empty() => (v, FORMAT_VARIABLE),
            _ => return Ok(LogFormat::Text),
        };
        match value {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "{from}: unknown log format {value:?}\nhint: choose text (the default) or json"
            )),
        }
    }
}

/// What [`init`] set up; [`Telemetry::shutdown`] ends it.
#[derive(Debug)]
pub struct Telemetry {}

impl Telemetry {
    /// Ends what needs ending once the work is done (nothing, for logs alone).
    pub fn shutdown(self) {}
}

/// Installs the global subscriber: logs to standard error in `format`, filtered by
/// [`FILTER_VARIABLE`].
pub fn init(format: LogFormat) -> Result<Telemetry, String> {
    let filter = tracing_subscriber::EnvFilter::try_from_env(FILTER_VARIABLE)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
        .with(lines)
        .with(filter)
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))?;
    JSON_LINES.store(format == LogFormat::Json, Ordering::Relaxed);
    Ok(Telemetry {})
}

/// Prints a line a person waits for (`serve`'s address): as it is with text logs, as a log
/// object with JSON logs, so that standard error stays one object a line.
pub fn say(line: &str) {
    if JSON_LINES.load(Ordering::Relaxed) {
        tracing::info!("{line}");
    } else {
        eprintln!("{line}");
    }
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
                    assert_eq!(e.lines().next(), Some(first));
                    assert!(e.contains("choose text (the default) or json"), "{e}");
                }
            }
        }
    }
}
