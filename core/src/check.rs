//! `switchyard check`: every problem of `switchyard.yaml` and `triggers/`, in one run.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::Config;
use crate::diag::{Diagnostic, Severity};
use crate::filter::Filter;
use crate::pipeline::Pipelines;

/// What `check` found.
#[derive(Debug)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
    pub pipelines: Pipelines,
    pub config: Option<Config>,
}

impl Report {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count()
    }

    /// The report as the user reads it: each diagnostic, then a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            let _ = writeln!(out, "{d}");
        }
        let (cp, gh, default) = self
            .pipelines
            .list
            .iter()
            .fold((0, 0, 0), |(c, g, n), p| match p.filter {
                Filter::CodePipeline(_) => (c + 1, g, n),
                Filter::GitHub(_) => (c, g + 1, n),
                Filter::Default => (c, g, n + 1),
            });
        let plural = |n: usize, word: &str| {
            if n == 1 {
                format!("{n} {word}")
            } else {
                format!("{n} {word}s")
            }
        };
        let _ = write!(
            out,
            "{}: {} valid ({cp} CodePipeline, {gh} GitHub Actions, {default} without filter)",
            if self.errors() > 0 { "failed" } else { "ok" },
            plural(self.pipelines.list.len(), "pipeline"),
        );
        if !self.diagnostics.is_empty() {
            let _ = write!(
                out,
                "; {}, {}",
                plural(self.errors(), "error"),
                plural(self.warnings(), "warning")
            );
        }
        out.push('\n');
        out
    }
}

/// Validates the configuration and every pipeline definition.
pub fn run(config: Option<&Path>, triggers: &Path) -> Report {
    let (config, mut diagnostics) = Config::load(config);
    let (pipelines, more) = Pipelines::load_dir(triggers);
    diagnostics.extend(more);
    Report {
        diagnostics,
        pipelines,
        config,
    }
}
