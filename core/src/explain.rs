//! `switchyard explain`: for one change event, whether each pipeline starts and why.

use std::fmt::Write as _;

use crate::event::ChangeEvent;
use crate::pipeline::{Decision, Pipelines};

/// The JSON shape of `explain --format json`.
#[derive(Debug, serde::Serialize)]
pub struct Explanation {
    pub pipelines: Vec<Decision>,
}

/// Decides every pipeline for `event`, with reasons.
pub fn explain(pipelines: &Pipelines, event: &ChangeEvent) -> Explanation {
    Explanation {
        pipelines: pipelines.explain(event),
    }
}

impl Explanation {
    /// One line per pipeline: `start`/`skip`, its name, and the reason.
    pub fn render_text(&self, event: &ChangeEvent) -> String {
        let mut out = String::new();
        let what = match &event.pull_request {
            Some(pr) => format!(
                "pull request #{} {} into {}",
                pr.number,
                pr.action,
                crate::event::shown(&pr.base_ref)
            ),
            None => format!("push to {}", crate::event::shown(&event.git_ref)),
        };
        let n = event.changed_paths.len();
        let plural = if n == 1 { "path" } else { "paths" };
        let mut paths = if event.changed_paths_complete {
            format!("{n} changed {plural}")
        } else {
            format!("{n} changed {plural} known, list incomplete")
        };
        if let Some(c) = &event.completion {
            let _ = write!(paths, " ({}", c.outcome);
            if let Some(detail) = &c.detail {
                let _ = write!(paths, ": {detail}");
            }
            paths.push(')');
        }
        let _ = writeln!(
            out,
            "change {} in {}: {what}, {paths}",
            event.id,
            crate::event::shown(event.repository.as_str())
        );
        let width = self
            .pipelines
            .iter()
            .map(|d| d.pipeline.len())
            .max()
            .unwrap_or(0);
        for d in &self.pipelines {
            let verdict = if d.start { "start" } else { "skip " };
            let _ = writeln!(out, "{verdict}  {:width$}  {}", d.pipeline, d.reason);
        }
        if self.pipelines.is_empty() {
            out.push_str("no pipelines are defined\n");
        }
        out
    }
}
