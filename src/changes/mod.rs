//! The stored changes as people read them: the views of a change (`ChangeLine` for a list,
//! `ChangeView` for one change, with its sightings, decision log and starts), the one-line
//! summary of why nothing started, the `since`/`limit` rules of a query; and the replay of a
//! change with today's definitions ([`replay`]). `switchyard changes` prints these views
//! (`crate::cli::changes`), and the status page and `/api/changes` serve them.

mod replay;

use serde::Serialize;

use crate::outcome::Decision;
use crate::store::{ChangeRecord, StartRow};

pub use replay::{ReplayError, ReplayLine, ReplayReport, replay};

/// How many changes `changes list` shows unless `--limit` says otherwise.
pub const DEFAULT_LIMIT: u32 = 20;
/// The most `--limit` may ask for.
pub const MAX_LIMIT: u32 = 10_000;

pub use crate::event::format_ms as when;

/// The first characters of an id or a sha, as a table shows them.
pub fn short(id: &str, n: usize) -> &str {
    id.get(..n).unwrap_or(id)
}

/// One line of `changes list` (and an item of `/api/changes`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChangeLine {
    pub id: String,
    pub repository: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: String,
    pub kind: String,
    pub received_at: String,
    /// The source that reported it first.
    pub first_source: String,
    /// How many sources reported it.
    pub sightings: usize,
    /// Each source that reported it, with its lag behind the first (ms).
    pub lags: Vec<SourceLag>,
    pub starts: Vec<StartLine>,
}

/// A source's lag behind the first source of a change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceLag {
    pub source: String,
    pub lag_ms: i64,
}

/// A start as a list shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StartLine {
    pub id: String,
    pub pipeline: String,
    pub state: String,
    pub replay: u32,
    pub run: Option<String>,
}

/// Everything `changes show` says of one change (and `/api/changes/ID`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChangeView {
    pub id: String,
    pub repository: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: String,
    pub kind: String,
    pub received_at: String,
    pub traceparent: Option<String>,
    /// The change event as stored (`change` in JSON, as PRODUCT.md names it).
    #[serde(rename = "change")]
    pub event: serde_json::Value,
    pub sightings: Vec<SightingView>,
    /// Each watching pipeline's decision at intake; `null` while the paths are completed, or
    /// for a change stored before the decision log.
    pub decisions: Option<Vec<Decision>>,
    pub starts: Vec<StartView>,
    /// Why nothing started, when nothing did.
    pub summary: Option<String>,
}

/// One source's first sighting, with its lag behind the first source.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SightingView {
    pub source: String,
    pub provider: Option<String>,
    pub delivery_id: Option<String>,
    pub at: String,
    pub lag_ms: i64,
}

/// A start with everything its attempts left.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StartView {
    pub id: String,
    pub pipeline: String,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub run: Option<String>,
    pub replay: u32,
    pub created_at: String,
    pub updated_at: String,
    /// When it is tried next, while it waits.
    pub next_attempt_at: Option<String>,
}

/// The stored event as JSON (`null` when it does not parse, which a store never holds).
fn event_of(record: &ChangeRecord) -> serde_json::Value {
    serde_json::from_str(&record.event).unwrap_or(serde_json::Value::Null)
}

/// (ref, after, kind) of a stored event; empty where it lacks them.
fn fields(event: &serde_json::Value) -> (String, String, String) {
    let text = |key: &str| {
        event
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    let kind = match (text("kind").as_str(), event.pointer("/pull_request/number")) {
        ("pull_request", Some(n)) => format!("pull request #{n}"),
        ("pull_request", None) => "pull request".to_owned(),
        _ => "push".to_owned(),
    };
    (text("ref"), text("after"), kind)
}

impl StartLine {
    fn of(row: &StartRow) -> StartLine {
        StartLine {
            id: row.id.clone(),
            pipeline: row.pipeline.clone(),
            state: row.state.as_str().to_owned(),
            replay: row.replay,
            run: row.run.clone(),
        }
    }
}

impl StartView {
    fn of(row: &StartRow) -> StartView {
        StartView {
            id: row.id.clone(),
            pipeline: row.pipeline.clone(),
            state: row.state.as_str().to_owned(),
            attempts: row.attempts,
            last_error: row.last_error.clone(),
            run: row.run.clone(),
            replay: row.replay,
            created_at: when(row.created_ms),
            updated_at: when(row.updated_ms),
            next_attempt_at: row.state.is_open().then(|| when(row.next_attempt_ms)),
        }
    }
}

impl ChangeLine {
    pub fn of(record: &ChangeRecord) -> ChangeLine {
        let (git_ref, sha, kind) = fields(&event_of(record));
        ChangeLine {
            id: record.id.clone(),
            repository: record.repository.clone(),
            git_ref,
            sha,
            kind,
            received_at: when(record.received_ms),
            first_source: record
                .sightings
                .first()
                .map(|s| s.source.clone())
                .unwrap_or_default(),
            sightings: record.sightings.len(),
            lags: record
                .sightings
                .iter()
                .map(|s| SourceLag {
                    source: s.source.clone(),
                    lag_ms: s.at_ms - record.received_ms,
                })
                .collect(),
            starts: record.starts.iter().map(StartLine::of).collect(),
        }
    }
}

impl ChangeView {
    pub fn of(record: &ChangeRecord) -> ChangeView {
        let event = event_of(record);
        let (git_ref, sha, kind) = fields(&event);
        let first = record.received_ms;
        ChangeView {
            id: record.id.clone(),
            repository: record.repository.clone(),
            git_ref,
            sha,
            kind,
            received_at: when(record.received_ms),
            traceparent: Some(
                record.traceparent.clone().unwrap_or_else(|| {
                    crate::trace::TraceParent::of_change(&record.id).to_string()
                }),
            ),
            event,
            sightings: record
                .sightings
                .iter()
                .map(|s| SightingView {
                    source: s.source.clone(),
                    provider: s.provider.clone(),
                    delivery_id: s.delivery_id.clone(),
                    at: when(s.at_ms),
                    lag_ms: s.at_ms - first,
                })
                .collect(),
            decisions: record.decisions.clone(),
            starts: record.starts.iter().map(StartView::of).collect(),
            summary: summary(record),
        }
    }
}

/// One line saying why a change started nothing; `None` when it started something.
pub fn summary(record: &ChangeRecord) -> Option<String> {
    if !record.starts.is_empty() {
        return None;
    }
    Some(match &record.decisions {
        None if record.deferred => {
            "nothing started yet: its changed paths are being completed; it is decided once they are known".to_owned()
        }
        None => "nothing started; the change was stored before switchyard kept a decision log"
            .to_owned(),
        Some(d) if d.is_empty() => format!(
            "nothing started: no pipeline watches {}",
            record.repository
        ),
        Some(d) => {
            let skipped: Vec<String> = d
                .iter()
                .filter(|d| !d.start)
                .map(|d| format!("{}: {}", d.pipeline, d.reason))
                .collect();
            if skipped.is_empty() {
                "nothing started, though a pipeline matched: it was planned and then removed"
                    .to_owned()
            } else {
                format!("nothing started: {}", skipped.join("; "))
            }
        }
    })
}

/// How a refused `since` is told to fix it.
pub const SINCE_HINT: &str = "write a duration such as 90s, 15m, 2h or 7d";

/// How a refused `limit` is told to fix it.
pub fn limit_hint() -> String {
    format!("ask for 1 to {MAX_LIMIT} changes")
}

/// The start (Unix ms) of a `since` window (`90s`, `15m`, `2h`, `7d`) that ends at `now_ms`;
/// `None` when `text` is not a duration. The caller names its option in the error.
pub fn since(text: &str, now_ms: i64) -> Option<i64> {
    let window = crate::diag::parse_duration(text.trim())?;
    Some(now_ms.saturating_sub(i64::try_from(window.as_millis()).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Sighting, StartState};

    fn record(starts: Vec<StartRow>, decisions: Option<Vec<Decision>>) -> ChangeRecord {
        ChangeRecord {
            seq: 1,
            id: "0123456789abcdef0123456789abcdef".into(),
            repository: "https://github.com/acme/api".into(),
            event: r#"{"ref":"refs/heads/main","after":"1111111111111111111111111111111111111111","before":"2222222222222222222222222222222222222222","changed_paths":["docs/a.md"]}"#.into(),
            received_ms: 1_790_000_000_000,
            sightings: vec![
                Sighting { source: "webhook".into(), provider: Some("github".into()), delivery_id: Some("d-1".into()), at_ms: 1_790_000_000_000 },
                Sighting { source: "poll".into(), provider: None, delivery_id: None, at_ms: 1_790_000_002_500 },
            ],
            decisions,
            deferred: false,
            traceparent: None,
            starts,
        }
    }

    fn decision(pipeline: &str, start: bool, reason: &str) -> Decision {
        Decision {
            pipeline: pipeline.into(),
            start,
            reason: reason.into(),
        }
    }

    #[test]
    fn a_change_that_started_nothing_says_why_in_one_line() {
        let r = record(
            Vec::new(),
            Some(vec![decision(
                "docs-check",
                false,
                "excluded by on.push.paths-ignore[0] \"docs/**\" (every changed path matched)",
            )]),
        );
        assert_eq!(
            summary(&r).as_deref(),
            Some(
                "nothing started: docs-check: excluded by on.push.paths-ignore[0] \"docs/**\" (every changed path matched)"
            )
        );
        let none_watch = record(Vec::new(), Some(Vec::new()));
        assert_eq!(
            summary(&none_watch).as_deref(),
            Some("nothing started: no pipeline watches https://github.com/acme/api")
        );
        let old = record(Vec::new(), None);
        assert!(summary(&old).is_some_and(|s| s.contains("before switchyard kept")));
        let started = record(
            vec![StartRow {
                seq: 1,
                id: "s".into(),
                change_id: "c".into(),
                pipeline: "deploy".into(),
                git_ref: "refs/heads/main".into(),
                state: StartState::Succeeded,
                attempts: 1,
                next_attempt_ms: 0,
                last_error: None,
                run: None,
                created_ms: 0,
                updated_ms: 0,
                replay: 0,
            }],
            Some(vec![decision("deploy", true, "matched")]),
        );
        assert_eq!(summary(&started), None);
    }

    #[test]
    fn since_takes_the_usual_units_and_refuses_the_rest() {
        let now = 1_000_000_000;
        assert_eq!(since("90s", now), Some(now - 90_000));
        assert_eq!(since("2h", now), Some(now - 7_200_000));
        assert_eq!(since(" 7d ", now), Some(now - 604_800_000));
        assert_eq!(since("soon", now), None);
        assert_eq!(since("3 fortnights", now), None);
        assert_eq!(since("99999999999999999d", now), None);
    }
}
