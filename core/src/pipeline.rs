//! Pipeline definitions (`triggers/NAME.yaml`): reading and validating them, and deciding which
//! pipelines a change starts.
//!
//! Reading is raw YAML → validated [`Pipeline`]s in one pass that collects every problem of
//! every file (`check` shows them all). The compiled globs of all pipelines live in one
//! [`Sets`], so an event is matched against every pattern once, whatever the number of
//! pipelines.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::diag::{Diagnostic, Diagnostics, Hint, MapReader, Severity, scalar};
use crate::event::{ChangeEvent, ChangeKind, check_ref};
use crate::filter::{self, Filter, Prepared, Sets, Why};
use crate::repo::RepoId;
use crate::secret;
use crate::target;
use crate::yaml::{self, Pos};

/// One validated pipeline definition.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub name: String,
    /// The file it came from, as shown to the user.
    pub file: String,
    pub repository: RepoId,
    /// The default branch (CodePipeline's BranchName).
    pub branch: String,
    pub filter: Filter,
    pub mode: Mode,
    /// Starts of this pipeline that may run at once.
    pub concurrency: u32,
    pub target: Target,
    /// How long one attempt may take before it counts as failed.
    pub timeout: Duration,
}

/// How starts of one pipeline relate to each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every matching change starts, in order.
    Queued,
    /// Only the newest pending change per ref starts; older ones are marked superseded.
    Superseded,
    /// Starts do not wait for earlier ones.
    Parallel,
}

pub use crate::target::Target;

pub use crate::outcome::Decision;

/// Every pipeline of a `triggers/` directory, with their shared pattern sets.
#[derive(Debug, Default)]
pub struct Pipelines {
    pub list: Vec<Pipeline>,
    pub sets: Sets,
}

const KEYS: &[&str] = &[
    "pipeline",
    "repository",
    "branch",
    "triggers",
    "on",
    "mode",
    "concurrency",
    "start",
];
pub use crate::target::DEFAULT_TIMEOUT;
/// Parallel pipelines run this many starts at once unless `concurrency` says otherwise.
pub const DEFAULT_PARALLEL: u32 = 16;

impl Pipelines {
    /// Reads every `*.yaml` / `*.yml` file of `dir`. Relative local repository paths are taken
    /// from `dir`'s parent (the project root). Returns the valid pipelines and every diagnostic;
    /// a file with errors contributes no pipeline.
    pub fn load_dir(dir: &Path) -> (Pipelines, Vec<Diagnostic>) {
        let shown = dir.display().to_string();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                let diag = Diagnostic {
                    file: shown,
                    pos: Pos::default(),
                    severity: Severity::Error,
                    message: format!("cannot read the triggers directory: {e}"),
                    hint: "create it with one YAML file per pipeline, or pass --triggers DIR"
                        .to_owned(),
                };
                return (Pipelines::default(), vec![diag]);
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        paths.sort();
        let base = std::path::absolute(dir)
            .ok()
            .and_then(|d| d.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let mut diags = Vec::new();
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let shown = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(text) => files.push((shown, text)),
                Err(e) => diags.push(Diagnostic {
                    file: shown,
                    pos: Pos::default(),
                    severity: Severity::Error,
                    message: format!("cannot read: {e}"),
                    hint: "pipeline definitions are UTF-8 YAML files".to_owned(),
                }),
            }
        }
        let (pipelines, more) = Pipelines::load_texts(&files, &base);
        diags.extend(more);
        (pipelines, diags)
    }

    /// Reads definitions given as (file name as shown, text).
    pub fn load_texts(files: &[(String, String)], base: &Path) -> (Pipelines, Vec<Diagnostic>) {
        let mut pipelines = Pipelines::default();
        let mut diags = Vec::new();
        let mut seen: Vec<(String, String, Pos)> = Vec::new();
        for (file, text) in files {
            let mut d = Diagnostics::new(file.clone());
            let stem = Path::new(file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some((p, name_pos)) =
                read_definition(text, &stem, base, &mut pipelines.sets, &mut d)
            {
                if let Some((_, first_file, first_pos)) = seen.iter().find(|(n, ..)| *n == p.name) {
                    d.error(
                        name_pos,
                        format!(
                            "duplicate pipeline name {:?} (first defined at {first_file}:{}:{})",
                            p.name, first_pos.line, first_pos.col
                        ),
                        "pipeline names must be unique: rename one, or set `pipeline:` explicitly",
                    );
                } else if d.error_count() == 0 {
                    seen.push((p.name.clone(), file.clone(), name_pos));
                    pipelines.list.push(p);
                }
            }
            diags.extend(d.items);
        }
        pipelines.list.sort_by(|a, b| a.name.cmp(&b.name));
        (pipelines, diags)
    }

    /// The pipeline with this name.
    pub fn get(&self, name: &str) -> Option<&Pipeline> {
        self.index_of(name).map(|i| &self.list[i])
    }

    /// The place of the pipeline named `name` in [`Pipelines::list`].
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.list
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()
    }

    /// Decides every pipeline for `event`: the pipelines it starts, in name order.
    pub fn matching(&self, event: &ChangeEvent) -> Vec<&Pipeline> {
        let prep = Prepared::new(&self.sets, event);
        let mut why = Why::silent();
        self.list
            .iter()
            .filter(|p| decide(p, &prep, &mut why))
            .collect()
    }

    /// The decision log of `event`: every pipeline that watches its repository, decided and
    /// narrated, in name order. The others cannot start it and are only told apart by the
    /// repository; they are not recorded (a change is decided by every pipeline, narrated by
    /// few).
    pub fn decisions(&self, event: &ChangeEvent) -> Vec<(&Pipeline, Decision)> {
        let prep = Prepared::new(&self.sets, event);
        self.list
            .iter()
            .filter(|p| p.repository == event.repository)
            .map(|p| {
                let mut why = Why::recording();
                let start = decide(p, &prep, &mut why);
                let decision = Decision {
                    pipeline: p.name.clone(),
                    start,
                    reason: why.text(),
                };
                (p, decision)
            })
            .collect()
    }

    /// Decides every pipeline for `event` and says why.
    pub fn explain(&self, event: &ChangeEvent) -> Vec<Decision> {
        let prep = Prepared::new(&self.sets, event);
        self.list
            .iter()
            .map(|p| {
                let mut why = Why::recording();
                let start = decide(p, &prep, &mut why);
                Decision {
                    pipeline: p.name.clone(),
                    start,
                    reason: why.text(),
                }
            })
            .collect()
    }
}

fn decide(p: &Pipeline, prep: &Prepared<'_>, why: &mut Why) -> bool {
    let event = prep.event;
    if event.repository != p.repository {
        why.say(|| {
            format!(
                "the change is to {}, and this pipeline watches {}",
                event.repository, p.repository
            )
        });
        return false;
    }
    if event.kind == ChangeKind::Push && event.deleted {
        why.say(|| {
            format!(
                "{} was deleted, and a deletion starts nothing",
                event.git_ref
            )
        });
        return false;
    }
    filter::decide(&p.filter, &p.branch, prep, why)
}

/// Reads one definition; returns it with the position that names it (for duplicates).
fn read_definition(
    text: &str,
    stem: &str,
    base: &Path,
    sets: &mut Sets,
    d: &mut Diagnostics,
) -> Option<(Pipeline, Pos)> {
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => {
            d.error(e.pos, e.message, e.hint);
            return None;
        }
    };
    if root.is_null() {
        d.error(
            Pos { line: 1, col: 1 },
            "the file is empty",
            "write a pipeline definition: `repository`, `triggers` or `on`, and `start`",
        );
        return None;
    }
    let map = MapReader::new(&root, "a pipeline definition", d)?;
    map.deny_unknown(KEYS, "a pipeline definition", d);
    secret::scan_for_secrets(&root, d);

    let (name, name_pos) = match map.get("pipeline") {
        Some(node) => (
            scalar(node, "pipeline", d).unwrap_or(stem).to_owned(),
            node.pos,
        ),
        None => (stem.to_owned(), Pos { line: 1, col: 1 }),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !name_ok {
        d.error(
            name_pos,
            format!("pipeline name {name:?} is not valid"),
            "use 1 to 100 letters, digits, `.`, `_`, `-` or `@`",
        );
    }

    let repository = match map.get("repository") {
        Some(node) => {
            scalar(node, "repository", d).and_then(|s| match RepoId::parse(s, Some(base)) {
                Ok(id) => Some(id),
                Err(e) => {
                    d.error(node.pos, format!("repository: {e}"), e.hint());
                    None
                }
            })
        }
        None => {
            d.error(
                root.pos,
                "a pipeline definition needs `repository`",
                "add the clone URL whose changes start it, e.g. `repository: https://github.com/acme/api.git` (or `.` for this clone)",
            );
            None
        }
    };

    let branch = match map.get("branch") {
        Some(node) => scalar(node, "branch", d).map(|b| {
            if let Err(why) = check_ref(&format!("refs/heads/{b}")) {
                d.error(
                    node.pos,
                    format!("branch {b:?} is not a valid branch name: {why}"),
                    "write the short branch name, e.g. `main`",
                );
            }
            b.to_owned()
        }),
        None => Some("main".to_owned()),
    };

    let filter = match (map.entry("triggers"), map.entry("on")) {
        (Some(_), Some((on_key, _))) => {
            d.error(
                on_key.pos,
                "both dialects in one file: `triggers` (CodePipeline) and `on` (GitHub Actions)",
                "keep one of the two; a pipeline is filtered in exactly one dialect",
            );
            None
        }
        (Some((_, node)), None) => Some(Filter::CodePipeline(filter::codepipeline::parse(
            node, sets, d,
        ))),
        (None, Some((_, node))) => Some(Filter::GitHub(filter::github::parse(node, sets, d))),
        (None, None) => Some(Filter::Default),
    };

    let mode = match map.get("mode") {
        Some(node) => match scalar(node, "mode", d) {
            Some("queued") => Some(Mode::Queued),
            Some("superseded") => Some(Mode::Superseded),
            Some("parallel") => Some(Mode::Parallel),
            Some(other) => {
                let hint =
                    match crate::diag::did_you_mean(other, &["queued", "superseded", "parallel"]) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None => "mode is queued, superseded or parallel".to_owned(),
                    };
                d.error(node.pos, format!("unknown mode {other:?}"), hint);
                None
            }
            None => None,
        },
        None => Some(Mode::Queued),
    };

    let concurrency = match map.get("concurrency") {
        Some(node) => scalar(node, "concurrency", d).and_then(|t| match t.parse::<u32>() {
            Ok(n) if (1..=256).contains(&n) => Some(n),
            _ => {
                d.error(
                    node.pos,
                    format!("concurrency {t:?} is not a number from 1 to 256"),
                    "how many starts of this pipeline may run at once, e.g. 1",
                );
                None
            }
        }),
        None => Some(if mode == Some(Mode::Parallel) {
            DEFAULT_PARALLEL
        } else {
            1
        }),
    };

    let start = match map.get("start") {
        Some(node) => target::read_start(node, d),
        None => {
            d.error(
                root.pos,
                "a pipeline definition needs `start`",
                "add how to start it, e.g. `start: {exec: [\"./ci/run-pipeline\", \"NAME\"]}`",
            );
            None
        }
    };

    let (target, timeout) = start?;
    let pipeline = Pipeline {
        name,
        file: d.file().to_owned(),
        repository: repository?,
        branch: branch?,
        filter: filter?,
        mode: mode?,
        concurrency: concurrency?,
        target,
        timeout,
    };
    Some((pipeline, name_pos))
}
