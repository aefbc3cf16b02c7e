//! `switchyard changes list|show|replay`: every stored change, what each pipeline decided
//! about it and why (the decision log), what its starts did; and a change planned again with
//! today's definitions. The JSON shapes here are also `/api/changes` of `serve`.
//!
//! Works on the store beside a running `serve`, opened as a [`Role::Tool`]: a replay writes
//! new pending starts, which `serve`'s dispatcher picks up within a second.
//!
//! [`Role::Tool`]: crate::store::Role::Tool

use std::fmt::Write as _;

use serde::Serialize;

use crate::diag::did_you_mean;
use crate::event::ChangeEvent;
use crate::outcome::Decision;
use crate::pipeline::Pipelines;
use crate::store::{
    ChangeQuery, ChangeRecord, ReplayRequest, Replayed, StartRow, Store, StoreError,
};

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

/// `changes list`: a table, or `{"changes": [...]}`.
pub async fn list(store: &Store, query: ChangeQuery, json: bool) -> Result<String, StoreError> {
    let records = store.changes(query).await?;
    let lines: Vec<ChangeLine> = records.iter().map(ChangeLine::of).collect();
    if json {
        let value = serde_json::json!({ "changes": lines });
        return Ok(format!("{value:#}\n"));
    }
    Ok(render_list(&lines))
}

/// The table of `changes list`.
pub fn render_list(lines: &[ChangeLine]) -> String {
    let mut out = String::new();
    if lines.is_empty() {
        out.push_str("no changes\n");
        return out;
    }
    let repo_width = lines
        .iter()
        .map(|l| l.repository.len())
        .max()
        .unwrap_or(10)
        .max(10);
    let ref_width = lines
        .iter()
        .map(|l| l.git_ref.len())
        .max()
        .unwrap_or(3)
        .max(3);
    let _ = writeln!(
        out,
        "{:<12}  {:<24}  {:<repo_width$}  {:<ref_width$}  {:<7}  {:<11}  {:>5}  STARTS",
        "CHANGE", "RECEIVED", "REPOSITORY", "REF", "SHA", "FIRST", "SEEN"
    );
    for l in lines {
        let starts = if l.starts.is_empty() {
            "-".to_owned()
        } else {
            l.starts
                .iter()
                .map(|s| format!("{}:{}", s.pipeline, s.state))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "{:<12}  {:<24}  {:<repo_width$}  {:<ref_width$}  {:<7}  {:<11}  {:>5}  {starts}",
            short(&l.id, 12),
            l.received_at,
            l.repository,
            l.git_ref,
            short(&l.sha, 7),
            l.first_source,
            l.sightings,
        );
    }
    out
}

/// `changes show ID`: the change, its sightings, decisions and starts, as text or JSON.
pub async fn show(store: &Store, id: &str, json: bool) -> Result<String, StoreError> {
    let view = ChangeView::of(&store.change(id).await?);
    if json {
        return Ok(format!("{:#}\n", serde_json::json!(view)));
    }
    Ok(render_show(&view))
}

/// The text of `changes show`.
pub fn render_show(v: &ChangeView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "change {} in {}", v.id, v.repository);
    let before = v.event.get("before").and_then(|b| b.as_str()).unwrap_or("");
    let paths = v
        .event
        .get("changed_paths")
        .and_then(|p| p.as_array())
        .map_or(0, Vec::len);
    let _ = writeln!(
        out,
        "  {} {} {} -> {}, {paths} changed path{}",
        v.kind,
        v.git_ref,
        short(before, 7),
        short(&v.sha, 7),
        if paths == 1 { "" } else { "s" }
    );
    for (i, s) in v.sightings.iter().enumerate() {
        let provider = s
            .provider
            .as_deref()
            .map(|p| format!(" {p}"))
            .unwrap_or_default();
        let delivery = s
            .delivery_id
            .as_deref()
            .map(|d| format!(", delivery {d}"))
            .unwrap_or_default();
        let lag = if i == 0 {
            "first".to_owned()
        } else {
            format!("{:.3} s later", s.lag_ms as f64 / 1000.0)
        };
        let _ = writeln!(
            out,
            "  seen by {}{provider} at {} ({lag}{delivery})",
            s.source, s.at
        );
    }
    if let Some(t) = &v.traceparent {
        let _ = writeln!(out, "  traceparent {t}");
    }
    match &v.decisions {
        Some(decisions) if !decisions.is_empty() => {
            out.push_str("decisions:\n");
            let width = decisions
                .iter()
                .map(|d| d.pipeline.len())
                .max()
                .unwrap_or(0);
            for d in decisions {
                let verdict = if d.start { "start" } else { "skip " };
                let _ = writeln!(out, "  {verdict}  {:width$}  {}", d.pipeline, d.reason);
            }
        }
        _ => {}
    }
    if !v.starts.is_empty() {
        out.push_str("starts:\n");
        for s in &v.starts {
            let replay = if s.replay > 0 {
                format!(" (replay {})", s.replay)
            } else {
                String::new()
            };
            let plural = if s.attempts == 1 { "" } else { "s" };
            let _ = writeln!(
                out,
                "  {}  {}{replay}  {}, {} attempt{plural}, updated {}",
                short(&s.id, 12),
                s.pipeline,
                s.state,
                s.attempts,
                s.updated_at
            );
            if let Some(next) = &s.next_attempt_at {
                let _ = writeln!(out, "    next attempt {next}");
            }
            if let Some(run) = &s.run {
                let _ = writeln!(out, "    run: {run}");
            }
            if let Some(e) = &s.last_error {
                let first = e.lines().next().unwrap_or("");
                let _ = writeln!(out, "    last error: {first}");
            }
        }
    }
    if let Some(summary) = &v.summary {
        let _ = writeln!(out, "{summary}");
    }
    out
}

/// Why a replay cannot be asked as it was.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no pipeline named {name:?}\nhint: {hint}")]
    NoSuchPipeline { name: String, hint: String },
    #[error(
        "pipeline {pipeline:?} watches {watches}, and change {change} is to {repository}\nhint: replay it with a pipeline of {repository}, or without --pipeline"
    )]
    OtherRepository {
        pipeline: String,
        watches: String,
        change: String,
        repository: String,
    },
    #[error(
        "change {0} is still waiting for its changed paths\nhint: it is decided and started once they are known; replay it after that"
    )]
    Deferred(String),
    #[error("the stored event of change {0} does not parse: {1}")]
    BadEvent(String, String),
}

/// What `changes replay` did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplayReport {
    pub change: String,
    /// Today's decisions of the pipelines replayed.
    pub decisions: Vec<Decision>,
    pub replayed: Vec<ReplayLine>,
}

/// One pipeline's replay: a new start, or the start that makes it a duplicate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplayLine {
    pub pipeline: String,
    pub start_id: String,
    pub duplicate: bool,
    pub replay: Option<u32>,
    pub state: String,
}

impl ReplayLine {
    fn of(r: &Replayed) -> ReplayLine {
        ReplayLine {
            pipeline: r.pipeline.clone(),
            start_id: r.start_id.clone(),
            duplicate: r.replay.is_none(),
            replay: r.replay,
            state: r.state.as_str().to_owned(),
        }
    }
}

/// Plans change `id` (or a unique prefix) again with today's definitions, for every pipeline
/// that watches its repository or only `pipeline`: each that starts it gets a new start
/// (numbered replay of the change and pipeline), unless it has one waiting, running or
/// succeeded already (a duplicate).
pub async fn replay(
    store: &Store,
    pipelines: &Pipelines,
    id: &str,
    pipeline: Option<&str>,
) -> Result<ReplayReport, ReplayError> {
    let record = store.change(id).await?;
    if record.deferred {
        return Err(ReplayError::Deferred(record.id));
    }
    let event: ChangeEvent = serde_json::from_str(&record.event)
        .map_err(|e| ReplayError::BadEvent(record.id.clone(), e.to_string()))?;
    if let Some(name) = pipeline {
        let Some(p) = pipelines.get(name) else {
            let names: Vec<&str> = pipelines.list.iter().map(|p| p.name.as_str()).collect();
            let hint = match did_you_mean(name, &names) {
                Some(near) => format!("did you mean {near:?}?"),
                None => format!("the pipelines are: {}", names.join(", ")),
            };
            return Err(ReplayError::NoSuchPipeline {
                name: name.to_owned(),
                hint,
            });
        };
        if p.repository != event.repository {
            return Err(ReplayError::OtherRepository {
                pipeline: name.to_owned(),
                watches: p.repository.to_string(),
                change: record.id,
                repository: event.repository.to_string(),
            });
        }
    }
    let decisions: Vec<Decision> = pipelines
        .decisions(&event)
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| pipeline.is_none_or(|name| d.pipeline == name))
        .collect();
    let starting: Vec<String> = decisions
        .iter()
        .filter(|d| d.start)
        .map(|d| d.pipeline.clone())
        .collect();
    let replayed = if starting.is_empty() {
        Vec::new()
    } else {
        store
            .replay(ReplayRequest {
                change_id: record.id.clone(),
                git_ref: event.git_ref.clone(),
                pipelines: starting,
            })
            .await?
    };
    for r in &replayed {
        match r.replay {
            Some(n) => {
                tracing::info!(change_id = %record.id, pipeline = %r.pipeline, start_id = %r.start_id, replay = n, "change replayed: a new start")
            }
            None => {
                tracing::info!(change_id = %record.id, pipeline = %r.pipeline, start_id = %r.start_id, "change replay is a duplicate")
            }
        }
    }
    Ok(ReplayReport {
        change: record.id,
        decisions,
        replayed: replayed.iter().map(ReplayLine::of).collect(),
    })
}

impl ReplayReport {
    /// What `changes replay` prints.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        if self.decisions.is_empty() {
            let _ = writeln!(
                out,
                "change {}: no pipeline watches its repository today; nothing to replay",
                self.change
            );
        }
        for d in self.decisions.iter().filter(|d| !d.start) {
            let _ = writeln!(out, "skip       {}  {}", d.pipeline, d.reason);
        }
        for r in &self.replayed {
            match r.replay {
                Some(n) => {
                    let _ = writeln!(
                        out,
                        "started    {}  start {} (replay {n} of change {})",
                        r.pipeline,
                        r.start_id,
                        short(&self.change, 12)
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "duplicate  {}  start {} is {} already; nothing new started",
                        r.pipeline, r.start_id, r.state
                    );
                }
            }
        }
        out
    }
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
    fn show_lists_sightings_with_their_lag_and_each_decision() {
        let r = record(
            Vec::new(),
            Some(vec![decision(
                "deploy",
                false,
                "excluded by push[0].filePaths.excludes[0] \"docs/**\"",
            )]),
        );
        let text = render_show(&ChangeView::of(&r));
        assert!(text.contains("seen by webhook github at"), "{text}");
        assert!(text.contains("(2.500 s later)"), "{text}");
        assert!(
            text.contains("skip   deploy  excluded by push[0].filePaths.excludes[0]"),
            "{text}"
        );
        assert!(
            text.contains("push refs/heads/main 2222222 -> 1111111, 1 changed path"),
            "{text}"
        );
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
