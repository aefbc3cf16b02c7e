//! `switchyard changes list|show|replay`: every stored change with its sightings (and each
//! source's lag), the decision log and its starts, as a table, text or JSON (the views of
//! [`crate::changes`]); and a replay with today's definitions.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Subcommand;

use super::{Format, Global, on_store, with_hint};
use crate::changes::{
    ChangeLine, ChangeView, DEFAULT_LIMIT, MAX_LIMIT, ReplayReport, SINCE_HINT, limit_hint, short,
};
use crate::diag::{Hint as _, Hinted};
use crate::event::shown;
use crate::repo::RepoId;
use crate::store::{ChangeQuery, Store, StoreError, now_ms};

/// Every change received: why each pipeline started or not, what the starts did; replay.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// The newest changes: repository, ref, sha, first source, sightings, starts.
    List {
        /// Only changes of this repository (any spelling of its URL).
        #[arg(long, value_name = "R")]
        repository: Option<String>,
        /// Only changes this pipeline decided on or started.
        #[arg(long, value_name = "P")]
        pipeline: Option<String>,
        /// Only changes received within this long (90s, 15m, 2h, 7d).
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// At most this many changes.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMIT)]
        limit: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// One change: its event, every sighting, each pipeline's decision and reason, its starts.
    Show {
        /// The change id (a unique prefix of 4 characters or more is enough).
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Decide a change again with today's definitions and start what they start now, as new
    /// starts (a replay asked twice is a duplicate).
    Replay {
        /// The change id (a unique prefix of 4 characters or more is enough).
        id: String,
        /// Only this pipeline.
        #[arg(long, value_name = "P")]
        pipeline: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    on_store(global, async |store| {
        Ok(match args.action {
            Action::List {
                repository,
                pipeline,
                since,
                limit,
                format,
            } => {
                let query = query(repository, pipeline, since, limit)?;
                list(store, query, matches!(format, Format::Json)).await?
            }
            Action::Show { id, format } => show(store, &id, matches!(format, Format::Json)).await?,
            Action::Replay {
                id,
                pipeline,
                format,
            } => {
                let pipelines = crate::load::pipelines(&global.triggers)?;
                let report = crate::changes::replay(store, &pipelines, &id, pipeline.as_deref())
                    .await
                    .map_err(with_hint)?;
                match format {
                    Format::Text => render_replay(&report),
                    Format::Json => format!("{:#}\n", serde_json::json!(report)),
                }
            }
        })
    })
}

/// The query of `changes list`'s options, each checked.
fn query(
    repository: Option<String>,
    pipeline: Option<String>,
    since: Option<String>,
    limit: u32,
) -> anyhow::Result<ChangeQuery> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Hinted::new(format!("--limit {limit} is out of range"), limit_hint()).into());
    }
    let repository = match repository {
        Some(r) => Some(
            RepoId::parse(&r, std::env::current_dir().ok().as_deref())
                .map_err(|e| Hinted::new(format!("--repository {r:?}: {e}"), e.hint()))?
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    let since_ms = since
        .map(|s| {
            crate::changes::since(&s, now_ms())
                .ok_or_else(|| Hinted::new(format!("--since {s:?} is not a duration"), SINCE_HINT))
        })
        .transpose()?;
    Ok(ChangeQuery {
        repository,
        pipeline,
        since_ms,
        before_seq: None,
        limit,
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
    let repo_width = super::column(lines, |l| &l.repository, 10);
    let ref_width = super::column(lines, |l| &l.git_ref, 3);
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
            shown(&l.repository),
            shown(&l.git_ref),
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
    let _ = writeln!(out, "change {} in {}", v.id, shown(&v.repository));
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
        shown(&v.git_ref),
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
            let width = super::column(decisions, |d| &d.pipeline, 0);
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

/// What `changes replay` prints.
pub fn render_replay(report: &ReplayReport) -> String {
    let mut out = String::new();
    if report.decisions.is_empty() {
        let _ = writeln!(
            out,
            "change {}: no pipeline watches its repository today; nothing to replay",
            report.change
        );
    }
    for d in report.decisions.iter().filter(|d| !d.start) {
        let _ = writeln!(out, "skip       {}  {}", d.pipeline, d.reason);
    }
    for r in &report.replayed {
        match r.replay {
            Some(n) => {
                let _ = writeln!(
                    out,
                    "started    {}  start {} (replay {n} of change {})",
                    r.pipeline,
                    r.start_id,
                    short(&report.change, 12)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::fixtures::{decision, record};

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
}
