//! `switchyard outbox`: the starts waiting, failing or dead-lettered, and retrying or dropping
//! one. Works on the store beside a running `serve` (which picks changes up within a second),
//! opened as a [`Role::Tool`](crate::store::Role::Tool): it never touches a running start.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Subcommand;

use super::{Format, Global, on_store};
use crate::event::{format_ms as when, shown};
use crate::store::{StartRow, StartState, Store, StoreError, Transition};

/// The starts waiting, failing or dead-lettered; retry or drop one.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// List pending, failed and dead-lettered starts (all starts with --all).
    List {
        /// Show starts in every state, succeeded and superseded ones included.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Reopen a dead-lettered or failed start with a fresh set of attempts.
    Retry {
        /// The start id (a unique prefix is enough).
        start_id: String,
    },
    /// Drop a start so that it never runs.
    Drop {
        /// The start id (a unique prefix is enough).
        start_id: String,
    },
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let action = args.action.unwrap_or(Action::List {
        all: false,
        format: Format::Text,
    });
    on_store(global, async |store| {
        Ok(match action {
            Action::List { all, format } => {
                let states = if all { &[][..] } else { DEFAULT_STATES };
                list(store, states, matches!(format, Format::Json)).await?
            }
            Action::Retry { start_id } => retry(store, &start_id).await?,
            Action::Drop { start_id } => drop_start(store, &start_id).await?,
        })
    })
}

/// What `outbox list` shows by default: everything not yet started successfully nor given up.
pub const DEFAULT_STATES: &[StartState] =
    &[StartState::Pending, StartState::Failed, StartState::Dead];

/// The starts in `states` (all when empty) as a table, or as JSON lines, each with the run its
/// runner made when it told one.
pub async fn list(store: &Store, states: &[StartState], json: bool) -> Result<String, StoreError> {
    let rows = store.starts(states).await?;
    let mut out = String::new();
    if json {
        for r in &rows {
            let line = serde_json::json!({
                "start_id": r.id, "pipeline": r.pipeline, "change": r.change_id, "ref": r.git_ref,
                "state": r.state.as_str(), "attempts": r.attempts,
                "next_attempt": when(r.next_attempt_ms), "updated": when(r.updated_ms),
                "last_error": r.last_error, "run": r.run,
            });
            let _ = writeln!(out, "{line}");
        }
        return Ok(out);
    }
    if rows.is_empty() {
        out.push_str("no starts\n");
        return Ok(out);
    }
    let width = super::column(&rows, |r: &StartRow| &r.pipeline, 8);
    let _ = writeln!(
        out,
        "{:<32}  {:<width$}  {:<10}  {:>8}  {:<24}  REF / LAST ERROR",
        "START", "PIPELINE", "STATE", "ATTEMPTS", "NEXT ATTEMPT"
    );
    for r in &rows {
        let next = if r.state.is_open() {
            when(r.next_attempt_ms)
        } else {
            "-".to_owned()
        };
        let _ = writeln!(
            out,
            "{:<32}  {:<width$}  {:<10}  {:>8}  {:<24}  {}",
            r.id,
            r.pipeline,
            r.state.as_str(),
            r.attempts,
            next,
            shown(&r.git_ref)
        );
        // Under the row: the run it made, and why attempts failed (a hint on a line of its own).
        let run = r.run.as_ref().map(|run| format!("run: {run}"));
        let error = r
            .last_error
            .iter()
            .flat_map(|e| e.lines().map(str::to_owned));
        for line in run.into_iter().chain(error) {
            let _ = writeln!(
                out,
                "{:<32}  {:<width$}  {:<10}  {:>8}  {:<24}  {line}",
                "", "", "", "", ""
            );
        }
    }
    Ok(out)
}

fn describe(action: &str, r: &StartRow) -> String {
    format!(
        "{action} {} ({} for {} of change {}): now {}\n",
        r.id,
        r.pipeline,
        shown(&r.git_ref),
        r.change_id,
        r.state.as_str()
    )
}

/// Reopens a dead or failed start with a fresh set of attempts.
pub async fn retry(store: &Store, id: &str) -> Result<String, StoreError> {
    let row = store.transition(id, Transition::Retry).await?;
    Ok(describe("retrying", &row))
}

/// Drops a start so it never runs.
pub async fn drop_start(store: &Store, id: &str) -> Result<String, StoreError> {
    let row = store.transition(id, Transition::Drop).await?;
    Ok(describe("dropped", &row))
}
