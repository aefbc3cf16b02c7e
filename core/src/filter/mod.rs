//! Trigger filters: which changes start a pipeline, and the rule that decided.
//!
//! Both dialects (CodePipeline V2 `triggers:` and GitHub Actions `on:`) compile into one model
//! of rules over names (branch or tag) and changed paths, sharing two [`PatternSet`]s across
//! every pipeline. An event is prepared once ([`Prepared`]: every glob that matches its ref name
//! and each of its paths); each pipeline is then decided with a few lookups. Deciding can also
//! narrate: the reason quotes the user's own rule (`excluded by push[0].filePaths.excludes[0]
//! "**/*.md" (every changed path matched)`). No I/O happens here.

pub mod codepipeline;
pub mod github;
pub mod set;

use crate::event::{ChangeEvent, ChangeKind, RefKind, ref_kind};
pub use set::PatternSet;

/// The two sets of globs every pipeline's rules point into.
#[derive(Debug, Default)]
pub struct Sets {
    /// Branch and tag patterns.
    pub names: PatternSet,
    /// Changed-path patterns.
    pub paths: PatternSet,
}

/// One pattern as the user wrote it, and where.
#[derive(Clone, Debug)]
pub struct PatRef {
    /// Id in the pattern set.
    pub id: u32,
    /// Where it stands, e.g. `push[0].filePaths.excludes[0]` or `on.push.branches[2]`.
    pub label: String,
    /// The text as written (with a leading `!` for a GitHub negation).
    pub text: String,
    /// A GitHub `!pattern`.
    pub negated: bool,
}

/// A rule over a set of patterns.
#[derive(Clone, Debug)]
pub enum Rule {
    /// CodePipeline: (no includes, or one matches) and no exclude matches. Excludes win.
    IncludeExclude {
        label: String,
        includes: Vec<PatRef>,
        excludes: Vec<PatRef>,
    },
    /// GitHub `branches`/`tags`/`paths`: the last pattern that matches decides.
    Ordered {
        label: String,
        patterns: Vec<PatRef>,
    },
    /// GitHub `*-ignore`: any match excludes.
    Ignore {
        label: String,
        patterns: Vec<PatRef>,
    },
}

/// The compiled filter of one pipeline.
#[derive(Clone, Debug)]
pub enum Filter {
    /// Neither `triggers` nor `on`: every push to the default branch, as CodePipeline does.
    Default,
    CodePipeline(Vec<codepipeline::Trigger>),
    GitHub(github::On),
}

/// Every glob that matches an event's name and paths, computed once per event.
#[derive(Debug)]
pub struct Prepared<'e> {
    pub event: &'e ChangeEvent,
    /// The name branch/tag patterns match: the pushed ref's short name, or a pull request's base.
    pub target: RefKind<'e>,
    name_matches: Vec<u32>,
    path_matches: Vec<Vec<u32>>,
    by_pattern: Vec<Vec<u32>>,
}

impl<'e> Prepared<'e> {
    /// Matches the event's ref name and every changed path against the sets.
    pub fn new(sets: &Sets, event: &'e ChangeEvent) -> Prepared<'e> {
        let target = match (&event.kind, &event.pull_request) {
            (ChangeKind::PullRequest, Some(pr)) => ref_kind(&pr.base_ref),
            _ => event.ref_kind(),
        };
        let name_matches = match target {
            RefKind::Branch(n) | RefKind::Tag(n) => sets.names.matches(n),
            RefKind::Other(_) => Vec::new(),
        };
        let mut by_pattern: Vec<Vec<u32>> = vec![Vec::new(); sets.paths.len()];
        let mut path_matches = Vec::with_capacity(event.changed_paths.len());
        let mut scratch = Vec::new();
        for (i, path) in event.changed_paths.iter().enumerate() {
            sets.paths.matches_into(path, &mut scratch);
            for &id in &scratch {
                by_pattern[id as usize].push(i as u32);
            }
            path_matches.push(scratch.clone());
        }
        Prepared {
            event,
            target,
            name_matches,
            path_matches,
            by_pattern,
        }
    }

    fn name_matched(&self, id: u32) -> bool {
        self.name_matches.binary_search(&id).is_ok()
    }

    fn path_matched(&self, path: u32, id: u32) -> bool {
        self.path_matches[path as usize].binary_search(&id).is_ok()
    }

    fn path(&self, i: u32) -> &str {
        &self.event.changed_paths[i as usize]
    }

    /// True when the changed paths cannot be trusted to be the whole list.
    fn paths_unknown(&self) -> bool {
        !self.event.changed_paths_complete
    }
}

/// Collects the words of a decision, or nothing at all on the fast path.
#[derive(Debug, Default)]
pub struct Why {
    phrases: Option<Vec<String>>,
    /// The alternative did not apply to this kind of change (a tags filter and a branch push).
    inapplicable: bool,
}

impl Why {
    /// A narrator that records.
    pub fn recording() -> Why {
        Why {
            phrases: Some(Vec::new()),
            inapplicable: false,
        }
    }

    /// A narrator that stays silent (no allocation).
    pub fn silent() -> Why {
        Why::default()
    }

    /// Records a phrase; the closure runs only when recording.
    pub fn say(&mut self, phrase: impl FnOnce() -> String) {
        if let Some(v) = &mut self.phrases {
            v.push(phrase());
        }
    }

    /// Records why an alternative does not apply at all; such reasons are shown only when no
    /// alternative applied.
    pub fn not_applicable(&mut self, phrase: impl FnOnce() -> String) {
        self.inapplicable = true;
        self.say(phrase);
    }

    /// Keeps only the last phrase: the failing step of criteria AND'ed together.
    fn keep_last(&mut self) {
        if let Some(v) = &mut self.phrases
            && v.len() > 1
        {
            v.drain(..v.len() - 1);
        }
    }

    fn child(&self) -> Why {
        Why {
            phrases: self.phrases.as_ref().map(|_| Vec::new()),
            inapplicable: false,
        }
    }

    fn absorb(&mut self, other: Why) {
        if let (Some(v), Some(o)) = (&mut self.phrases, other.phrases) {
            v.extend(o);
        }
    }

    /// The recorded phrases joined into one reason.
    pub fn text(&self) -> String {
        self.phrases
            .as_ref()
            .map(|v| v.join("; "))
            .unwrap_or_default()
    }
}

/// Runs alternatives (filters OR'ed together). The reason is the passing one's; when none
/// passes, the failing step of each alternative that applied (or of all, when none applied).
struct AnyOf<'w> {
    why: &'w mut Why,
    failures: Vec<Why>,
    passed: bool,
}

impl<'w> AnyOf<'w> {
    fn new(why: &'w mut Why) -> AnyOf<'w> {
        AnyOf {
            why,
            failures: Vec::new(),
            passed: false,
        }
    }

    fn try_one(&mut self, eval: impl FnOnce(&mut Why) -> bool) {
        if self.passed {
            return;
        }
        let mut child = self.why.child();
        if eval(&mut child) {
            self.passed = true;
            self.why.absorb(child);
        } else {
            // Criteria are AND'ed and stop at the first that fails: the last phrase is the reason.
            child.keep_last();
            self.failures.push(child);
        }
    }

    fn finish(self, none_tried: impl FnOnce() -> String) -> bool {
        if self.passed {
            return true;
        }
        if self.failures.is_empty() {
            self.why.say(none_tried);
        }
        let any_applied = self.failures.iter().any(|f| !f.inapplicable);
        for f in self.failures {
            if !any_applied || !f.inapplicable {
                self.why.absorb(f);
            }
        }
        false
    }
}

impl Rule {
    /// Decides a branch or tag name.
    fn name(&self, prep: &Prepared<'_>, what: &str, name: &str, why: &mut Why) -> bool {
        match self {
            Rule::IncludeExclude {
                label,
                includes,
                excludes,
            } => {
                if let Some(e) = excludes.iter().find(|p| prep.name_matched(p.id)) {
                    why.say(|| format!("{what} {name:?} excluded by {} {:?}", e.label, e.text));
                    return false;
                }
                if includes.is_empty() {
                    why.say(|| format!("{what} {name:?} matched no pattern of {label}.excludes"));
                    return true;
                }
                match includes.iter().find(|p| prep.name_matched(p.id)) {
                    Some(i) => {
                        why.say(|| format!("{what} {name:?} included by {} {:?}", i.label, i.text));
                        true
                    }
                    None => {
                        why.say(|| {
                            format!("{what} {name:?} matched no pattern of {label}.includes")
                        });
                        false
                    }
                }
            }
            Rule::Ordered { label, patterns } => {
                match patterns.iter().rev().find(|p| prep.name_matched(p.id)) {
                    Some(p) if p.negated => {
                        why.say(|| format!("{what} {name:?} excluded by {} {:?}", p.label, p.text));
                        false
                    }
                    Some(p) => {
                        why.say(|| format!("{what} {name:?} matched {} {:?}", p.label, p.text));
                        true
                    }
                    None => {
                        why.say(|| format!("{what} {name:?} matched no pattern of {label}"));
                        false
                    }
                }
            }
            Rule::Ignore { label, patterns } => {
                match patterns.iter().find(|p| prep.name_matched(p.id)) {
                    Some(p) => {
                        why.say(|| format!("{what} {name:?} ignored by {} {:?}", p.label, p.text));
                        false
                    }
                    None => {
                        why.say(|| format!("{what} {name:?} matched no pattern of {label}"));
                        true
                    }
                }
            }
        }
    }

    /// Decides the changed paths: passes when the rule lets at least one path through
    /// (`paths-ignore`: unless every path is ignored).
    fn paths(&self, prep: &Prepared<'_>, why: &mut Why) -> bool {
        let n = prep.event.changed_paths.len() as u32;
        let passed = match self {
            Rule::IncludeExclude {
                label,
                includes,
                excludes,
            } => {
                let excluded_by = |p: u32| excludes.iter().find(|e| prep.path_matched(p, e.id));
                if includes.is_empty() {
                    match (0..n).find(|&p| excluded_by(p).is_none()) {
                        Some(p) => {
                            why.say(|| {
                                format!(
                                    "path {:?} matched no pattern of {label}.excludes",
                                    prep.path(p)
                                )
                            });
                            true
                        }
                        None => {
                            if n > 0 {
                                why.say(|| {
                                    excluded_all(excludes, (0..n).filter_map(excluded_by), true)
                                });
                            }
                            false
                        }
                    }
                } else {
                    let mut included = candidates(prep, includes.iter().filter(|p| !p.negated));
                    included.sort_unstable();
                    included.dedup();
                    match included.iter().copied().find(|&p| excluded_by(p).is_none()) {
                        Some(p) => {
                            let by = includes.iter().find(|i| prep.path_matched(p, i.id));
                            why.say(|| match by {
                                Some(i) => format!(
                                    "path {:?} included by {} {:?}",
                                    prep.path(p),
                                    i.label,
                                    i.text
                                ),
                                None => format!("path {:?} included", prep.path(p)),
                            });
                            true
                        }
                        None if included.is_empty() => {
                            if n > 0 {
                                why.say(|| {
                                    format!(
                                        "no changed path matched {label}.includes ({})",
                                        count_paths(n)
                                    )
                                });
                            }
                            false
                        }
                        None => {
                            let every = included.len() as u32 == n;
                            why.say(|| {
                                excluded_all(
                                    excludes,
                                    included.iter().filter_map(|&p| excluded_by(p)),
                                    every,
                                )
                            });
                            false
                        }
                    }
                }
            }
            Rule::Ordered { label, patterns } => {
                let decider = |p: u32| {
                    patterns
                        .iter()
                        .rev()
                        .find(|pat| prep.path_matched(p, pat.id))
                };
                let mut cands = candidates(prep, patterns.iter().filter(|p| !p.negated));
                cands.sort_unstable();
                cands.dedup();
                let mut negated_by = None;
                let mut found = None;
                for &p in &cands {
                    match decider(p) {
                        Some(pat) if !pat.negated => {
                            found = Some((p, pat));
                            break;
                        }
                        Some(pat) => negated_by = negated_by.or(Some(pat)),
                        None => {}
                    }
                }
                match (found, negated_by) {
                    (Some((p, pat)), _) => {
                        why.say(|| {
                            format!(
                                "path {:?} matched {} {:?}",
                                prep.path(p),
                                pat.label,
                                pat.text
                            )
                        });
                        true
                    }
                    (None, Some(neg)) => {
                        why.say(|| {
                            format!(
                                "every changed path that matched {label} was excluded by a later `!` pattern, e.g. {} {:?}",
                                neg.label, neg.text
                            )
                        });
                        false
                    }
                    (None, None) => {
                        if n > 0 {
                            why.say(|| {
                                format!("no changed path matched {label} ({})", count_paths(n))
                            });
                        }
                        false
                    }
                }
            }
            Rule::Ignore { label, patterns } => {
                let ignored_by = |p: u32| patterns.iter().find(|pat| prep.path_matched(p, pat.id));
                match (0..n).find(|&p| ignored_by(p).is_none()) {
                    Some(p) => {
                        why.say(|| {
                            format!("path {:?} matched no pattern of {label}", prep.path(p))
                        });
                        true
                    }
                    None => {
                        if n > 0 {
                            why.say(|| excluded_all(patterns, (0..n).filter_map(ignored_by), true));
                        }
                        false
                    }
                }
            }
        };
        if passed {
            return true;
        }
        if prep.paths_unknown() {
            why.say(|| {
                "the changed paths are not known in full (changed_paths_complete is false): path filters pass".to_owned()
            });
            return true;
        }
        if n == 0 {
            why.say(|| {
                format!(
                    "the change lists no changed paths, and {} needs one",
                    self.label()
                )
            });
        }
        false
    }

    fn label(&self) -> &str {
        match self {
            Rule::IncludeExclude { label, .. }
            | Rule::Ordered { label, .. }
            | Rule::Ignore { label, .. } => label,
        }
    }
}

/// Paths matched by any of `pats`, from the inverted index.
fn candidates<'a>(prep: &Prepared<'_>, pats: impl Iterator<Item = &'a PatRef>) -> Vec<u32> {
    let mut out = Vec::new();
    for p in pats {
        out.extend_from_slice(&prep.by_pattern[p.id as usize]);
    }
    out
}

fn count_paths(n: u32) -> String {
    if n == 1 {
        "1 changed path".to_owned()
    } else {
        format!("{n} changed paths")
    }
}

/// `excluded by X "p" (every changed path matched)`, naming every exclude that took part.
fn excluded_all<'a>(
    all: &'a [PatRef],
    used: impl Iterator<Item = &'a PatRef>,
    every: bool,
) -> String {
    let mut ids: Vec<u32> = used.map(|p| p.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let named: Vec<String> = all
        .iter()
        .filter(|p| ids.binary_search(&p.id).is_ok())
        .map(|p| format!("{} {:?}", p.label, p.text))
        .collect();
    let whose = if every {
        "every changed path"
    } else {
        "every included path"
    };
    if named.len() == 1 {
        format!("excluded by {} ({whose} matched)", named[0])
    } else {
        format!("excluded by {} ({whose} matched one)", named.join(" and "))
    }
}

/// How a pull request's action reads in messages.
fn action_of(event: &ChangeEvent) -> &str {
    event
        .pull_request
        .as_ref()
        .map(|pr| pr.action.as_str())
        .unwrap_or("")
}

/// Decides one pipeline's filter for a prepared event (repository and deletion already checked).
pub fn decide(filter: &Filter, branch: &str, prep: &Prepared<'_>, why: &mut Why) -> bool {
    let event = prep.event;
    match filter {
        Filter::Default => match (event.kind, event.ref_kind()) {
            (ChangeKind::Push, RefKind::Branch(b)) if b == branch => {
                why.say(|| {
                    format!("push to the default branch {b:?} (no trigger filter: every push to it starts)")
                });
                true
            }
            (ChangeKind::Push, _) => {
                why.say(|| {
                    format!(
                        "{} is not the default branch {branch:?}, and without a trigger filter only pushes to it start",
                        event.git_ref
                    )
                });
                false
            }
            (ChangeKind::PullRequest, _) => {
                why.say(|| {
                    "pull requests start nothing without a trigger filter for them".to_owned()
                });
                false
            }
        },
        Filter::CodePipeline(triggers) => codepipeline::decide(triggers, prep, why),
        Filter::GitHub(on) => github::decide(on, prep, why),
    }
}

#[cfg(test)]
mod tests;
