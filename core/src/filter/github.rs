//! The GitHub Actions `on:` dialect: `push` and `pull_request` filters, read and decided as
//! GitHub's workflow syntax documents them.

use super::codepipeline::{NameOrPath, add_pattern};
use super::{PatRef, Prepared, Rule, Sets, Why, action_of};
use crate::diag::{Diagnostics, MapReader, did_you_mean, scalar_list};
use crate::event::{ChangeKind, RefKind};
use crate::glob::Dialect;
use crate::yaml::{Node, Value};

/// The `on:` of a definition: the two events switchyard can start on.
#[derive(Clone, Debug, Default)]
pub struct On {
    pub push: Option<Push>,
    pub pull_request: Option<PullRequest>,
}

/// `on.push`.
#[derive(Clone, Debug, Default)]
pub struct Push {
    pub branches: Option<Rule>,
    pub tags: Option<Rule>,
    pub paths: Option<Rule>,
}

/// `on.pull_request` (or `pull_request_target`).
#[derive(Clone, Debug)]
pub struct PullRequest {
    pub label: String,
    /// Normalized action names (`synchronize` is `updated`).
    pub types: Vec<String>,
    pub branches: Option<Rule>,
    pub paths: Option<Rule>,
}

/// GitHub events that exist but never fire in switchyard.
const OTHER_EVENTS: &[&str] = &[
    "branch_protection_rule",
    "check_run",
    "check_suite",
    "create",
    "delete",
    "deployment",
    "deployment_status",
    "discussion",
    "discussion_comment",
    "fork",
    "gollum",
    "issue_comment",
    "issues",
    "label",
    "merge_group",
    "milestone",
    "page_build",
    "public",
    "pull_request_review",
    "pull_request_review_comment",
    "registry_package",
    "release",
    "repository_dispatch",
    "schedule",
    "status",
    "watch",
    "workflow_call",
    "workflow_dispatch",
    "workflow_run",
];
const EVENTS: &[&str] = &["push", "pull_request", "pull_request_target"];
const PUSH_KEYS: &[&str] = &[
    "branches",
    "branches-ignore",
    "tags",
    "tags-ignore",
    "paths",
    "paths-ignore",
];
const PR_KEYS: &[&str] = &[
    "types",
    "branches",
    "branches-ignore",
    "paths",
    "paths-ignore",
];
const PR_TYPES: &[&str] = &[
    "assigned",
    "unassigned",
    "labeled",
    "unlabeled",
    "opened",
    "edited",
    "closed",
    "reopened",
    "synchronize",
    "converted_to_draft",
    "ready_for_review",
    "locked",
    "unlocked",
    "review_requested",
    "review_request_removed",
    "auto_merge_enabled",
    "auto_merge_disabled",
    "milestoned",
    "demilestoned",
    "enqueued",
    "dequeued",
];

/// Reads `on:` (the value node), reporting every problem.
pub fn parse(node: &Node, sets: &mut Sets, d: &mut Diagnostics) -> On {
    let mut on = On::default();
    let mut event = |name_node: &Node, value: Option<&Node>, on: &mut On, d: &mut Diagnostics| {
        let Some(name) = name_node.as_str() else {
            return;
        };
        match name {
            "push" => {
                if on.push.is_some() {
                    d.error(
                        name_node.pos,
                        "`push` is listed twice",
                        "list each event once",
                    );
                }
                on.push = Some(parse_push(value, sets, d));
            }
            "pull_request" | "pull_request_target" => {
                if on.pull_request.is_some() {
                    d.error(
                        name_node.pos,
                        "`pull_request` and `pull_request_target` are the same trigger here",
                        "keep one of them",
                    );
                }
                on.pull_request = parse_pr(name, value, sets, d);
            }
            other if OTHER_EVENTS.contains(&other) => d.warn(
                name_node.pos,
                format!("`on.{other}` never fires in switchyard"),
                "switchyard starts pipelines on push and pull_request only; remove it",
            ),
            other => {
                let mut all = EVENTS.to_vec();
                all.extend_from_slice(OTHER_EVENTS);
                let hint = match did_you_mean(other, &all) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => "switchyard starts on `push` and `pull_request`".to_owned(),
                };
                d.error(
                    name_node.pos,
                    format!("unknown event `{other}` in `on`"),
                    hint,
                );
            }
        }
    };
    match &node.value {
        Value::Scalar(..) if !node.is_null() => event(node, None, &mut on, d),
        Value::Seq(items) => {
            for item in items {
                event(item, None, &mut on, d);
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                event(k, Some(v), &mut on, d);
            }
        }
        _ => d.error(
            node.pos,
            format!("`on` must name events, found {}", node.kind_name()),
            "write `on: push`, `on: [push, pull_request]` or `on:` with `push:` filters under it",
        ),
    }
    if on.push.is_none() && on.pull_request.is_none() && d.error_count() == 0 {
        d.warn(
            node.pos,
            "`on` names no event switchyard starts on",
            "add `push` or `pull_request`",
        );
    }
    on
}

/// The value of an event key as a mapping, or `None` for `push:` with nothing after it.
fn event_map<'n>(
    value: Option<&'n Node>,
    what: &str,
    d: &mut Diagnostics,
) -> Option<MapReader<'n>> {
    let value = value?;
    if value.is_null() {
        return None;
    }
    MapReader::new(value, what, d)
}

/// Reads one of a pair of mutually exclusive keys (`branches` / `branches-ignore`).
fn pair(
    map: &MapReader<'_>,
    base: &str,
    event: &str,
    kind: NameOrPath,
    sets: &mut Sets,
    d: &mut Diagnostics,
) -> Option<Rule> {
    let ignore = format!("{base}-ignore");
    let plain = map.entry(base);
    let ign = map.entry(&ignore);
    if let (Some(_), Some((ikey, _))) = (plain, ign) {
        d.error(
            ikey.pos,
            format!("`{base}` and `{ignore}` cannot both be used for one event"),
            format!(
                "keep `{base}` and write the ignored ones as `!pattern` entries after the others"
            ),
        );
        return None;
    }
    if let Some((_, value)) = plain {
        return list_rule(value, &format!("on.{event}.{base}"), false, kind, sets, d);
    }
    if let Some((_, value)) = ign {
        return list_rule(value, &format!("on.{event}.{ignore}"), true, kind, sets, d);
    }
    None
}

fn list_rule(
    node: &Node,
    label: &str,
    ignore: bool,
    kind: NameOrPath,
    sets: &mut Sets,
    d: &mut Diagnostics,
) -> Option<Rule> {
    let items = scalar_list(node, label, d);
    let errors_before = d.error_count();
    if items.is_empty() && matches!(node.value, Value::Seq(_)) {
        let what = if ignore {
            "ignores nothing"
        } else {
            "matches nothing"
        };
        d.warn(
            node.pos,
            format!("{label} is empty: it {what}"),
            "list patterns, or remove the key",
        );
    }
    let mut patterns = Vec::with_capacity(items.len());
    let mut nodes = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let text = item.as_str().unwrap_or_default();
        let item_label = format!("{label}[{i}]");
        let negated = !ignore && text.starts_with('!');
        if ignore && text.starts_with('!') {
            d.warn(
                item.pos,
                format!("{item_label} {text:?} starts with `!`, which negates only in branches, tags and paths"),
                "here it matches names that start with `!`: use the list without -ignore for ordered negation",
            );
        }
        if let Some(id) = add_pattern(item, text, &item_label, Dialect::GitHub, kind, sets, d) {
            patterns.push(PatRef {
                id,
                label: item_label,
                text: text.to_owned(),
                negated,
            });
            nodes.push(item);
        }
    }
    if d.error_count() > errors_before {
        return None;
    }
    let set = match kind {
        NameOrPath::Name => &sets.names,
        NameOrPath::Path => &sets.paths,
    };
    if ignore {
        if let Some((p, n)) = patterns
            .iter()
            .zip(&nodes)
            .find(|(p, _)| set.glob(p.id).matches_everything())
        {
            let what = if kind == NameOrPath::Path {
                "every changed path is ignored"
            } else {
                "every name is ignored"
            };
            d.warn(
                n.pos,
                format!(
                    "{label} can never match: {} {:?} ignores everything ({what})",
                    p.label, p.text
                ),
                "narrow the pattern",
            );
        }
        return Some(Rule::Ignore {
            label: label.to_owned(),
            patterns,
        });
    }
    if !patterns.is_empty() && patterns.iter().all(|p| p.negated) {
        d.error(
            node.pos,
            format!("{label} has only `!` patterns"),
            format!("GitHub requires a positive pattern before the negations: start with \"**\", or use {label}-ignore"),
        );
        return None;
    }
    // A positive pattern is dead when a later negation excludes at least all it matches.
    let dead = |i: usize| {
        patterns[i + 1..].iter().any(|later| {
            later.negated && (later.id == patterns[i].id || set.glob(later.id).matches_everything())
        })
    };
    let positives: Vec<usize> = (0..patterns.len())
        .filter(|&i| !patterns[i].negated)
        .collect();
    if !positives.is_empty() && positives.iter().all(|&i| dead(i)) {
        d.warn(
            node.pos,
            format!("{label} can never match: every pattern is negated by a later `!` pattern"),
            "the last matching pattern decides: put the negations before the patterns they carve out of",
        );
    }
    Some(Rule::Ordered {
        label: label.to_owned(),
        patterns,
    })
}

fn parse_push(value: Option<&Node>, sets: &mut Sets, d: &mut Diagnostics) -> Push {
    let Some(map) = event_map(value, "on.push", d) else {
        return Push::default();
    };
    map.deny_unknown(PUSH_KEYS, "on.push", d);
    let push = Push {
        branches: pair(&map, "branches", "push", NameOrPath::Name, sets, d),
        tags: pair(&map, "tags", "push", NameOrPath::Name, sets, d),
        paths: pair(&map, "paths", "push", NameOrPath::Path, sets, d),
    };
    let has = |k: &str| map.entry(k).is_some() || map.entry(&format!("{k}-ignore")).is_some();
    if has("tags") && !has("branches") && has("paths") {
        let pos = map
            .entry("paths")
            .or(map.entry("paths-ignore"))
            .map(|(k, _)| k.pos)
            .unwrap_or(map.node().pos);
        d.warn(
            pos,
            "on.push paths are never evaluated here: with only tag filters, only tag pushes match, and GitHub skips path filters for tags",
            "add branch filters, or remove the path filter",
        );
    }
    push
}

fn parse_pr(
    name: &str,
    value: Option<&Node>,
    sets: &mut Sets,
    d: &mut Diagnostics,
) -> Option<PullRequest> {
    let label = format!("on.{name}");
    let mut pr = PullRequest {
        label: label.clone(),
        types: vec!["opened".into(), "updated".into(), "reopened".into()],
        branches: None,
        paths: None,
    };
    let Some(map) = event_map(value, &label, d) else {
        return Some(pr);
    };
    let mut known = PR_KEYS.to_vec();
    for key in ["tags", "tags-ignore"] {
        if let Some((k, _)) = map.entry(key) {
            d.error(
                k.pos,
                format!("{label} takes no `{key}`"),
                "pull requests are matched by their base branch: use `branches`",
            );
            known.push(key);
        }
    }
    map.deny_unknown(&known, &label, d);
    if let Some((_, value)) = map.entry("types") {
        pr.types.clear();
        let items = scalar_list(value, &format!("{label}.types"), d);
        if items.is_empty() {
            d.warn(
                value.pos,
                format!("{label}.types is empty: no pull request activity matches"),
                "list activity types, or remove `types` for opened, synchronize and reopened",
            );
        }
        for item in items {
            let t = item.as_str().unwrap_or_default();
            if !PR_TYPES.contains(&t) {
                let hint = match did_you_mean(t, PR_TYPES) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => "GitHub's activity types include opened, synchronize, reopened, closed, labeled".to_owned(),
                };
                d.warn(
                    item.pos,
                    format!("{t:?} is not a GitHub pull request activity type"),
                    hint,
                );
            }
            let normalized = if t == "synchronize" { "updated" } else { t };
            pr.types.push(normalized.to_owned());
        }
    }
    pr.branches = pair(&map, "branches", name, NameOrPath::Name, sets, d);
    pr.paths = pair(&map, "paths", name, NameOrPath::Path, sets, d);
    Some(pr)
}

/// Decides an `on:` filter.
pub fn decide(on: &On, prep: &Prepared<'_>, why: &mut Why) -> bool {
    let mut steps = why.child();
    let start = decide_steps(on, prep, &mut steps);
    if !start {
        // Filters are AND'ed and stop at the first that fails: that one is the reason.
        steps.keep_last();
    }
    why.absorb(steps);
    start
}

fn decide_steps(on: &On, prep: &Prepared<'_>, why: &mut Why) -> bool {
    match prep.event.kind {
        ChangeKind::Push => match &on.push {
            Some(push) => push.decide(prep, why),
            None => {
                why.say(|| "pushes start nothing: `on` has no push".to_owned());
                false
            }
        },
        ChangeKind::PullRequest => match &on.pull_request {
            Some(pr) => pr.decide(prep, why),
            None => {
                why.say(|| "pull requests start nothing: `on` has no pull_request".to_owned());
                false
            }
        },
    }
}

/// GitHub runs without checking paths when more than this many commits were pushed.
const MAX_COMMITS_FOR_PATHS: u64 = 1000;

fn paths_pass(paths: Option<&Rule>, prep: &Prepared<'_>, why: &mut Why) -> bool {
    let Some(rule) = paths else { return true };
    if let Some(n) = prep.event.commit_count
        && n > MAX_COMMITS_FOR_PATHS
    {
        why.say(|| format!("{n} commits were pushed (over {MAX_COMMITS_FOR_PATHS}): GitHub runs without checking paths"));
        return true;
    }
    rule.paths(prep, why)
}

impl Push {
    fn decide(&self, prep: &Prepared<'_>, why: &mut Why) -> bool {
        match prep.target {
            RefKind::Branch(b) => {
                let name_ok = match (&self.branches, &self.tags) {
                    (Some(rule), _) => rule.name(prep, "branch", b, why),
                    (None, Some(_)) => {
                        why.say(|| {
                            format!("branch {b:?} was pushed, and on.push filters tags only")
                        });
                        false
                    }
                    (None, None) => {
                        why.say(|| format!("branch {b:?} pushed (on.push has no branch filter)"));
                        true
                    }
                };
                name_ok && paths_pass(self.paths.as_ref(), prep, why)
            }
            RefKind::Tag(t) => match (&self.tags, &self.branches) {
                (Some(rule), _) => rule.name(prep, "tag", t, why),
                (None, Some(_)) => {
                    why.say(|| format!("tag {t:?} was pushed, and on.push filters branches only"));
                    false
                }
                (None, None) => {
                    why.say(|| format!("tag {t:?} pushed (on.push has no tag filter; paths are not checked for tags)"));
                    true
                }
            },
            RefKind::Other(r) => {
                why.say(|| format!("{r} is neither a branch nor a tag"));
                false
            }
        }
    }
}

impl PullRequest {
    fn decide(&self, prep: &Prepared<'_>, why: &mut Why) -> bool {
        let label = &self.label;
        let action = action_of(prep.event);
        if !self.types.iter().any(|t| t == action) {
            let shown = if action == "updated" {
                "synchronize"
            } else {
                action
            };
            why.say(|| format!("pull request activity {shown:?} is not in {label}.types"));
            return false;
        }
        let RefKind::Branch(base) = prep.target else {
            why.say(|| "the pull request's base is not a branch".to_owned());
            return false;
        };
        let name_ok = match &self.branches {
            Some(rule) => rule.name(prep, "base branch", base, why),
            None => {
                why.say(|| {
                    format!("pull request {action} into {base:?} ({label} has no branch filter)")
                });
                true
            }
        };
        name_ok && paths_pass(self.paths.as_ref(), prep, why)
    }
}
