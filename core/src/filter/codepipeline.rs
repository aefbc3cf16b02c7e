//! The CodePipeline V2 `triggers:` dialect: reading it with AWS's rules and limits, and deciding.
//!
//! Keys are the API's camelCase; CloudFormation's PascalCase spelling is accepted too, and
//! labels in reasons use whichever spelling the file used.

use super::{AnyOf, PatRef, Prepared, Rule, Sets, Why, action_of};
use crate::diag::{Diagnostics, Hint, MapReader, did_you_mean, scalar, scalar_list};
use crate::event::{ChangeKind, RefKind};
use crate::glob::{Dialect, GlobError};
use crate::yaml::{Node, Value};

/// AWS's limits.
const MAX_TRIGGERS: usize = 50;
const MAX_FILTERS: usize = 3;
const MAX_PATTERNS: usize = 8;
const MAX_PATTERN_LEN: usize = 255;

/// One entry of `triggers:`.
#[derive(Clone, Debug)]
pub struct Trigger {
    pub push: Vec<PushFilter>,
    pub pull_request: Vec<PrFilter>,
}

/// One filter of `push:`.
#[derive(Clone, Debug)]
pub struct PushFilter {
    pub label: String,
    pub target: PushTarget,
}

/// What a push filter matches: tags by name, or branches by name and maybe paths.
#[derive(Clone, Debug)]
pub enum PushTarget {
    Tags(Rule),
    Branches(Rule, Option<Rule>),
}

/// One filter of `pullRequest:`.
#[derive(Clone, Debug)]
pub struct PrFilter {
    pub label: String,
    pub events: Vec<PrEvent>,
    pub branches: Rule,
    pub paths: Option<Rule>,
}

/// CodePipeline's pull-request events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrEvent {
    Open,
    Updated,
    Closed,
}

impl PrEvent {
    fn name(self) -> &'static str {
        match self {
            PrEvent::Open => "OPEN",
            PrEvent::Updated => "UPDATED",
            PrEvent::Closed => "CLOSED",
        }
    }

    /// OPEN = opened or reopened; UPDATED = new commits; CLOSED = closed, merged or not.
    fn of_action(action: &str) -> Option<PrEvent> {
        match action {
            "opened" | "reopened" => Some(PrEvent::Open),
            "updated" => Some(PrEvent::Updated),
            "closed" => Some(PrEvent::Closed),
            _ => None,
        }
    }
}

const TRIGGER_KEYS: &[&str] = &[
    "providerType",
    "gitConfiguration",
    "ProviderType",
    "GitConfiguration",
];
const GIT_KEYS: &[&str] = &[
    "sourceActionName",
    "push",
    "pullRequest",
    "SourceActionName",
    "Push",
    "PullRequest",
];
const PUSH_KEYS: &[&str] = &[
    "branches",
    "tags",
    "filePaths",
    "Branches",
    "Tags",
    "FilePaths",
];
const PR_KEYS: &[&str] = &[
    "events",
    "branches",
    "filePaths",
    "Events",
    "Branches",
    "FilePaths",
];
const CRITERIA_KEYS: &[&str] = &["includes", "excludes", "Includes", "Excludes"];

fn key_text<'n>(entry: Option<(&'n Node, &'n Node)>) -> Option<(&'n str, &'n Node, &'n Node)> {
    entry.map(|(k, v)| (k.as_str().unwrap_or_default(), k, v))
}

/// Reads `triggers:` (the value node) into triggers, reporting every problem.
pub fn parse(node: &Node, sets: &mut Sets, d: &mut Diagnostics) -> Vec<Trigger> {
    let Value::Seq(items) = &node.value else {
        d.error(
            node.pos,
            format!("`triggers` must be a list, found {}", node.kind_name()),
            "write `triggers:` followed by `- gitConfiguration: ...` items",
        );
        return Vec::new();
    };
    if items.is_empty() {
        d.error(
            node.pos,
            "`triggers` is empty",
            "add a trigger, or remove `triggers` to start on every push to `branch`",
        );
    }
    if items.len() > MAX_TRIGGERS {
        d.error(
            items[MAX_TRIGGERS].pos,
            format!(
                "{} triggers, more than the {MAX_TRIGGERS} CodePipeline allows",
                items.len()
            ),
            "AWS would refuse this pipeline too: merge triggers into fewer filters",
        );
    }
    let many = items.len() > 1;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let prefix = if many {
            format!("triggers[{i}].")
        } else {
            String::new()
        };
        if let Some(t) = parse_trigger(item, &prefix, sets, d) {
            out.push(t);
        }
    }
    out
}

fn parse_trigger(
    node: &Node,
    prefix: &str,
    sets: &mut Sets,
    d: &mut Diagnostics,
) -> Option<Trigger> {
    let map = MapReader::new(node, "a trigger", d)?;
    map.deny_unknown(TRIGGER_KEYS, "a trigger", d);
    if let Some((key, _, value)) = key_text(map.entry_any(&["providerType", "ProviderType"]))
        && let Some(v) = scalar(value, key, d)
        && v != "CodeStarSourceConnection"
    {
        d.error(
            value.pos,
            format!("providerType {v:?} is not one CodePipeline allows"),
            "the only value is CodeStarSourceConnection; you may leave providerType out",
        );
    }
    let Some((_, _, git)) = key_text(map.entry_any(&["gitConfiguration", "GitConfiguration"]))
    else {
        d.error(
            node.pos,
            "a trigger needs `gitConfiguration`",
            "add `gitConfiguration:` with `push:` or `pullRequest:` filters under it",
        );
        return None;
    };
    let git_map = MapReader::new(git, "gitConfiguration", d)?;
    git_map.deny_unknown(GIT_KEYS, "gitConfiguration", d);
    if git_map
        .entry_any(&["sourceActionName", "SourceActionName"])
        .is_none()
    {
        d.warn(
            git.pos,
            "gitConfiguration has no `sourceActionName`",
            "AWS requires it (the name of the pipeline's source action); switchyard keeps it only for round-trips",
        );
    }
    let push = key_text(git_map.entry_any(&["push", "Push"]));
    let pull = key_text(git_map.entry_any(&["pullRequest", "PullRequest"]));
    if push.is_none() && pull.is_none() {
        d.error(
            git.pos,
            "gitConfiguration has neither `push` nor `pullRequest`",
            "add `push:` with a branches or tags filter, or `pullRequest:`",
        );
    }
    let mut trigger = Trigger {
        push: Vec::new(),
        pull_request: Vec::new(),
    };
    if let Some((key, _, list)) = push {
        for (j, f) in filter_list(list, key, d).iter().enumerate() {
            let label = format!("{prefix}{key}[{j}]");
            if let Some(pf) = parse_push(f, label, sets, d) {
                trigger.push.push(pf);
            }
        }
    }
    if let Some((key, _, list)) = pull {
        for (j, f) in filter_list(list, key, d).iter().enumerate() {
            let label = format!("{prefix}{key}[{j}]");
            if let Some(pf) = parse_pr(f, label, sets, d) {
                trigger.pull_request.push(pf);
            }
        }
    }
    Some(trigger)
}

fn filter_list<'n>(node: &'n Node, key: &str, d: &mut Diagnostics) -> &'n [Node] {
    let Value::Seq(items) = &node.value else {
        d.error(
            node.pos,
            format!(
                "`{key}` must be a list of filters, found {}",
                node.kind_name()
            ),
            format!("write `{key}:` followed by `- branches: ...` items"),
        );
        return &[];
    };
    if items.is_empty() {
        d.error(
            node.pos,
            format!("`{key}` has no filter"),
            "CodePipeline needs 1 to 3 filters here",
        );
    } else if items.len() > MAX_FILTERS {
        d.error(
            items[MAX_FILTERS].pos,
            format!("`{key}` has {} filters, more than the {MAX_FILTERS} CodePipeline allows", items.len()),
            "AWS would refuse this trigger too: combine patterns into fewer filters, or add a trigger",
        );
    }
    items
}

fn parse_push(
    node: &Node,
    label: String,
    sets: &mut Sets,
    d: &mut Diagnostics,
) -> Option<PushFilter> {
    let map = MapReader::new(node, "a push filter", d)?;
    map.deny_unknown(PUSH_KEYS, "a push filter", d);
    let branches = key_text(map.entry_any(&["branches", "Branches"]));
    let tags = key_text(map.entry_any(&["tags", "Tags"]));
    let paths = key_text(map.entry_any(&["filePaths", "FilePaths"]));
    match (branches, tags, paths) {
        (Some(_), Some((_, tkey, _)), _) => {
            d.error(
                tkey.pos,
                "tags and branches cannot share one push filter",
                "move tags into a filter of its own, as CodePipeline requires",
            );
            None
        }
        (None, Some(_), Some((_, pkey, _))) => {
            d.error(
                pkey.pos,
                "filePaths cannot be combined with tags",
                "CodePipeline filters tag pushes by tag name only: remove filePaths from this filter",
            );
            None
        }
        (None, None, Some((_, pkey, _))) => {
            d.error(
                pkey.pos,
                "filePaths needs branches in the same push filter",
                "add `branches: {includes: [\"**\"]}` to filter paths on every branch",
            );
            None
        }
        (None, None, None) => {
            d.error(
                node.pos,
                "a push filter needs `branches` or `tags`",
                "add `branches: {includes: [main]}` or `tags: {includes: [\"v*\"]}`",
            );
            None
        }
        (None, Some((key, _, value)), None) => {
            let rule = criteria(value, &format!("{label}.{key}"), NameOrPath::Name, sets, d)?;
            Some(PushFilter {
                label,
                target: PushTarget::Tags(rule),
            })
        }
        (Some((key, _, value)), None, paths) => {
            let rule = criteria(value, &format!("{label}.{key}"), NameOrPath::Name, sets, d);
            let paths = paths.and_then(|(pk, _, pv)| {
                criteria(pv, &format!("{label}.{pk}"), NameOrPath::Path, sets, d)
            });
            Some(PushFilter {
                label,
                target: PushTarget::Branches(rule?, paths),
            })
        }
    }
}

fn parse_pr(node: &Node, label: String, sets: &mut Sets, d: &mut Diagnostics) -> Option<PrFilter> {
    let map = MapReader::new(node, "a pullRequest filter", d)?;
    let mut known = PR_KEYS.to_vec();
    if let Some((tkey, _)) = map.entry_any(&["tags", "Tags"]) {
        d.error(
            tkey.pos,
            "a pullRequest filter takes no tags",
            "pull requests are matched by their target branch: use `branches`",
        );
        known.extend(["tags", "Tags"]);
    }
    map.deny_unknown(&known, "a pullRequest filter", d);
    let mut events = vec![PrEvent::Open, PrEvent::Updated, PrEvent::Closed];
    if let Some((key, _, value)) = key_text(map.entry_any(&["events", "Events"])) {
        events.clear();
        let items = scalar_list(value, key, d);
        if items.is_empty() && matches!(value.value, Value::Seq(_)) {
            d.error(
                value.pos,
                "`events` is empty",
                "list OPEN, UPDATED or CLOSED, or leave `events` out for all three",
            );
        }
        for item in items {
            let text = item.as_str().unwrap_or_default();
            let event = match text {
                "OPEN" => PrEvent::Open,
                "UPDATED" => PrEvent::Updated,
                "CLOSED" => PrEvent::Closed,
                other => {
                    let hint = match did_you_mean(other, &["OPEN", "UPDATED", "CLOSED"]) {
                        Some(close) => format!("did you mean {close}?"),
                        None => "CodePipeline's pull request events are OPEN, UPDATED and CLOSED"
                            .to_owned(),
                    };
                    d.error(
                        item.pos,
                        format!("unknown pull request event {other:?}"),
                        hint,
                    );
                    continue;
                }
            };
            if events.contains(&event) {
                d.error(
                    item.pos,
                    format!("{text} is listed twice"),
                    "list each event once",
                );
            } else {
                events.push(event);
            }
        }
    }
    let branches = key_text(map.entry_any(&["branches", "Branches"]));
    let paths = key_text(map.entry_any(&["filePaths", "FilePaths"]));
    let Some((bkey, _, bvalue)) = branches else {
        let hint = "add `branches: {includes: [\"**\"]}` to match pull requests into every branch";
        match paths {
            Some((_, pkey, _)) => d.error(
                pkey.pos,
                "filePaths needs branches in the same pullRequest filter",
                hint,
            ),
            None => d.error(node.pos, "a pullRequest filter needs `branches`", hint),
        }
        return None;
    };
    let rule = criteria(
        bvalue,
        &format!("{label}.{bkey}"),
        NameOrPath::Name,
        sets,
        d,
    );
    let paths = paths
        .and_then(|(pk, _, pv)| criteria(pv, &format!("{label}.{pk}"), NameOrPath::Path, sets, d));
    Some(PrFilter {
        label,
        events,
        branches: rule?,
        paths,
    })
}

/// Whether patterns match ref names or changed paths (which set they go into).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameOrPath {
    Name,
    Path,
}

/// Reads an `{includes, excludes}` object.
fn criteria(
    node: &Node,
    label: &str,
    kind: NameOrPath,
    sets: &mut Sets,
    d: &mut Diagnostics,
) -> Option<Rule> {
    let map = MapReader::new(node, label, d)?;
    let unknown = map.deny_unknown(CRITERIA_KEYS, label, d);
    let inc = key_text(map.entry_any(&["includes", "Includes"]));
    let exc = key_text(map.entry_any(&["excludes", "Excludes"]));
    if inc.is_none() && exc.is_none() && unknown > 0 {
        return None;
    }
    if inc.is_none() && exc.is_none() {
        d.error(
            node.pos,
            format!("{label} has neither includes nor excludes"),
            "add `includes: [...]` with 1 to 8 patterns",
        );
        return None;
    }
    let errors_before = d.error_count();
    let includes = read_patterns(inc, label, kind, sets, d);
    let excludes = read_patterns(exc, label, kind, sets, d);
    if d.error_count() > errors_before {
        return None;
    }
    warn_dead_includes(label, &includes, &excludes, kind, sets, d);
    Some(Rule::IncludeExclude {
        label: label.to_owned(),
        includes: includes.into_iter().map(|(p, _)| p).collect(),
        excludes: excludes.into_iter().map(|(p, _)| p).collect(),
    })
}

fn read_patterns<'n>(
    entry: Option<(&str, &'n Node, &'n Node)>,
    label: &str,
    kind: NameOrPath,
    sets: &mut Sets,
    d: &mut Diagnostics,
) -> Vec<(PatRef, &'n Node)> {
    let Some((key, _, value)) = entry else {
        return Vec::new();
    };
    let list_label = format!("{label}.{key}");
    let items = scalar_list(value, &list_label, d);
    if items.is_empty() && matches!(value.value, Value::Seq(_)) {
        d.error(
            value.pos,
            format!("{list_label} is empty"),
            "CodePipeline needs 1 to 8 patterns here; remove the key instead",
        );
    }
    if items.len() > MAX_PATTERNS {
        d.error(
            items[MAX_PATTERNS].pos,
            format!(
                "{list_label} has {} patterns, more than the {MAX_PATTERNS} CodePipeline allows",
                items.len()
            ),
            "AWS would refuse this filter too: use {a,b} alternatives or `**` to cover more with fewer patterns",
        );
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let text = item.as_str().unwrap_or_default();
        let item_label = format!("{list_label}[{i}]");
        if let Some(id) = add_pattern(
            item,
            text,
            &item_label,
            Dialect::CodePipeline,
            kind,
            sets,
            d,
        ) {
            out.push((
                PatRef {
                    id,
                    label: item_label,
                    text: text.to_owned(),
                    negated: false,
                },
                item,
            ));
        }
    }
    out
}

fn warn_dead_includes(
    label: &str,
    includes: &[(PatRef, &Node)],
    excludes: &[(PatRef, &Node)],
    kind: NameOrPath,
    sets: &Sets,
    d: &mut Diagnostics,
) {
    let set = match kind {
        NameOrPath::Name => &sets.names,
        NameOrPath::Path => &sets.paths,
    };
    if let Some((all, node)) = excludes
        .iter()
        .find(|(e, _)| set.glob(e.id).matches_everything())
    {
        d.warn(
            node.pos,
            format!(
                "{label} can never match: {} {:?} excludes everything",
                all.label, all.text
            ),
            "excludes win over includes: narrow this exclude",
        );
        return;
    }
    for (inc, node) in includes {
        if let Some((exc, _)) = excludes.iter().find(|(e, _)| e.id == inc.id) {
            d.warn(
                node.pos,
                format!(
                    "{} {:?} can never match: {} excludes the same pattern",
                    inc.label, inc.text, exc.label
                ),
                "excludes win over includes in CodePipeline: remove one of the two",
            );
        }
    }
}

/// Compiles one pattern into the right set, reporting glob errors at the exact character.
pub(crate) fn add_pattern(
    node: &Node,
    text: &str,
    label: &str,
    dialect: Dialect,
    kind: NameOrPath,
    sets: &mut Sets,
    d: &mut Diagnostics,
) -> Option<u32> {
    let len = text.chars().count();
    if len == 0 {
        d.error(
            node.pos,
            format!("{label} is an empty pattern"),
            "write a pattern, e.g. \"main\" or \"src/**\"",
        );
        return None;
    }
    if dialect == Dialect::CodePipeline && len > MAX_PATTERN_LEN {
        d.error(
            node.pos,
            format!("{label} is {len} characters long, more than the {MAX_PATTERN_LEN} CodePipeline allows"),
            "AWS would refuse this pattern too: shorten it with `*` or `**`",
        );
        return None;
    }
    let (offset, pattern) = match text.strip_prefix('!') {
        Some(rest) if dialect == Dialect::GitHub => (1, rest),
        _ => (0, text),
    };
    let set = match kind {
        NameOrPath::Name => &mut sets.names,
        NameOrPath::Path => &mut sets.paths,
    };
    match set.add(pattern, dialect) {
        Ok(id) => {
            warn_unmatchable(node, text, label, kind, d);
            Some(id)
        }
        Err(err) => {
            glob_error(node, offset, label, &err, d);
            None
        }
    }
}

fn glob_error(node: &Node, offset: usize, label: &str, err: &GlobError, d: &mut Diagnostics) {
    d.error(
        node.pos_at(offset + err.position),
        format!("{} ({label})", err.message()),
        err.hint(),
    );
}

/// Warns about patterns that no ref name or normalized path can ever match.
fn warn_unmatchable(node: &Node, text: &str, label: &str, kind: NameOrPath, d: &mut Diagnostics) {
    let body = text.strip_prefix('!').unwrap_or(text);
    match kind {
        NameOrPath::Name => {
            if let Some(short) = body
                .strip_prefix("refs/heads/")
                .or_else(|| body.strip_prefix("refs/tags/"))
            {
                d.warn(
                    node.pos,
                    format!("{label} {text:?} will not match: patterns match the short name, not the full ref"),
                    format!("write {short:?}"),
                );
            } else if body.contains(' ')
                || body.contains("..")
                || body.contains('~')
                || body.contains('^')
                || body.contains(':')
                || body.starts_with('/')
                || body.ends_with('/')
            {
                d.warn(
                    node.pos,
                    format!("{label} {text:?} can never match: git does not allow such a branch or tag name"),
                    "git ref names have no spaces, `..`, `~`, `^`, `:`, and no leading or trailing `/`",
                );
            }
        }
        NameOrPath::Path => {
            if body.starts_with('/') || body.starts_with("./") || body.ends_with('/') {
                d.warn(
                    node.pos,
                    format!("{label} {text:?} can never match: changed paths are relative to the repository root and name files"),
                    "write paths like \"src/**\" (no leading `/` or `./`, no trailing `/`)",
                );
            }
        }
    }
}

/// Decides CodePipeline triggers: filters OR'ed, criteria inside a filter AND'ed.
pub fn decide(triggers: &[Trigger], prep: &Prepared<'_>, why: &mut Why) -> bool {
    let event = prep.event;
    let mut any = AnyOf::new(why);
    match event.kind {
        ChangeKind::Push => {
            for f in triggers.iter().flat_map(|t| &t.push) {
                any.try_one(|w| f.decide(prep, w));
            }
            any.finish(|| "pushes start nothing: no trigger has a push filter".to_owned())
        }
        ChangeKind::PullRequest => {
            for f in triggers.iter().flat_map(|t| &t.pull_request) {
                any.try_one(|w| f.decide(prep, w));
            }
            any.finish(|| {
                "pull requests start nothing: no trigger has a pullRequest filter".to_owned()
            })
        }
    }
}

impl PushFilter {
    fn decide(&self, prep: &Prepared<'_>, why: &mut Why) -> bool {
        let label = &self.label;
        match (&self.target, prep.target) {
            (PushTarget::Tags(rule), RefKind::Tag(t)) => rule.name(prep, "tag", t, why),
            (PushTarget::Branches(rule, paths), RefKind::Branch(b)) => {
                rule.name(prep, "branch", b, why)
                    && paths.as_ref().is_none_or(|p| p.paths(prep, why))
            }
            (PushTarget::Tags(_), RefKind::Branch(b)) => {
                why.not_applicable(|| {
                    format!("branch {b:?} was pushed, and {label} matches tags only")
                });
                false
            }
            (PushTarget::Branches(..), RefKind::Tag(t)) => {
                why.not_applicable(|| {
                    format!("tag {t:?} was pushed, and {label} matches branches only")
                });
                false
            }
            (_, RefKind::Other(r)) => {
                why.say(|| format!("{r} is neither a branch nor a tag"));
                false
            }
        }
    }
}

impl PrFilter {
    fn decide(&self, prep: &Prepared<'_>, why: &mut Why) -> bool {
        let label = &self.label;
        let action = action_of(prep.event);
        let Some(event) = PrEvent::of_action(action) else {
            why.say(|| format!("pull request action {action:?} is not one CodePipeline starts on (OPEN, UPDATED, CLOSED)"));
            return false;
        };
        if !self.events.contains(&event) {
            why.say(|| {
                format!(
                    "pull request action {action:?} ({}) is not in {label}.events",
                    event.name()
                )
            });
            return false;
        }
        let RefKind::Branch(base) = prep.target else {
            why.say(|| "the pull request's base is not a branch".to_owned());
            return false;
        };
        self.branches.name(prep, "base branch", base, why)
            && self.paths.as_ref().is_none_or(|p| p.paths(prep, why))
    }
}
