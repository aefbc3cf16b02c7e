//! Table-driven tests of both dialects: one line per case, each numbered rule of
//! `spec/filters.md` with a case that starts and one that does not.

use std::path::Path;

use proptest::prelude::*;

use crate::event::{ChangeEvent, ChangeKind, PullRequest, SCHEMA, Source, SourceKind, ZERO_SHA};
use crate::glob::{Dialect, escape};
use crate::pipeline::Pipelines;
use crate::repo::RepoId;

const REPO: &str = "https://github.com/acme/api.git";
const A: &str = "1111111111111111111111111111111111111111";
const B: &str = "2222222222222222222222222222222222222222";

/// Builds an event from `push BRANCH paths…`, `tag NAME`, `pr ACTION BASE paths…`, `ref FULL`,
/// with flags `+incomplete`, `+deleted`, `+created`, `+commits=N`.
fn event(spec: &str) -> ChangeEvent {
    let mut words = spec.split_whitespace();
    let verb = words.next().unwrap_or_default();
    let name = words.next().unwrap_or_default();
    let mut rest: Vec<&str> = words.collect();
    let flags: Vec<&str> = rest
        .iter()
        .filter(|w| w.starts_with('+'))
        .copied()
        .collect();
    rest.retain(|w| !w.starts_with('+'));
    let has = |f: &str| flags.contains(&f);
    let commit_count = flags
        .iter()
        .find_map(|f| f.strip_prefix("+commits="))
        .and_then(|n| n.parse().ok())
        .or(Some(1));
    let (kind, git_ref, pull_request, paths) = match verb {
        "push" => (ChangeKind::Push, format!("refs/heads/{name}"), None, rest),
        "tag" => (ChangeKind::Push, format!("refs/tags/{name}"), None, rest),
        "ref" => (ChangeKind::Push, name.to_owned(), None, rest),
        "pr" => {
            let base = rest.remove(0);
            let pr = PullRequest {
                number: 7,
                action: name.to_owned(),
                merged: false,
                base_ref: format!("refs/heads/{base}"),
                base_sha: None,
                head_sha: B.to_owned(),
            };
            (
                ChangeKind::PullRequest,
                "refs/heads/feature".to_owned(),
                Some(pr),
                rest,
            )
        }
        other => panic!("bad verb {other}"),
    };
    let before = if has("+created") { ZERO_SHA } else { A };
    let after = if has("+deleted") { ZERO_SHA } else { B };
    let mut e = ChangeEvent {
        schema: SCHEMA.to_owned(),
        id: String::new(),
        repository: RepoId::parse(REPO, None).unwrap_or_else(|e| panic!("{e}")),
        kind,
        git_ref,
        before: before.to_owned(),
        after: after.to_owned(),
        created: kind == ChangeKind::Push && has("+created"),
        deleted: kind == ChangeKind::Push && has("+deleted"),
        commit_count,
        changed_paths: paths.iter().map(|p| p.to_string()).collect(),
        changed_paths_complete: !has("+incomplete"),
        completion: None,
        pull_request,
        source: Source {
            kind: SourceKind::Manual,
            provider: None,
            delivery_id: None,
        },
        occurred_at: None,
        received_at: jiff::Timestamp::UNIX_EPOCH,
    };
    e.id = e.derive_id();
    e
}

/// Loads one definition whose filter part is `filter` (YAML text) and decides `spec`.
fn decide(filter: &str, spec: &str) -> (bool, String) {
    let text = format!(
        "pipeline: p\nrepository: {REPO}\nbranch: main\n{filter}\nstart: {{exec: [\"true\"]}}\n"
    );
    let files = vec![("triggers/p.yaml".to_owned(), text)];
    let (pipelines, diags) = Pipelines::load_texts(&files, Path::new("/"));
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.severity == crate::diag::Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{filter}\n{}", errors.join("\n"));
    let decisions = pipelines.explain(&event(spec));
    let matching = pipelines.matching(&event(spec));
    assert_eq!(
        decisions[0].start,
        !matching.is_empty(),
        "fast path and explain disagree: {filter} / {spec}"
    );
    (decisions[0].start, decisions[0].reason.clone())
}

fn run_table(cases: &[(&str, &str, &str, bool, &str)]) {
    let mut failures = Vec::new();
    for (rule, filter, spec, want, reason) in cases {
        let (got, why) = decide(filter, spec);
        if got != *want || !why.contains(reason) {
            failures.push(format!("{rule}: {spec:?} with {filter:?}\n  want start={want} reason containing {reason:?}\n  got  start={got} reason {why:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

const CP_BRANCH_MAIN: &str = "triggers:\n- gitConfiguration:\n    sourceActionName: S\n    push:\n    - branches: {includes: [main]}";

#[test]
#[rustfmt::skip]
fn codepipeline_rules() {
    let t = |push: &str| format!("triggers:\n- gitConfiguration:\n    sourceActionName: S\n    push:\n{push}");
    let pr = |f: &str| format!("triggers:\n- gitConfiguration:\n    sourceActionName: S\n    pullRequest:\n{f}");
    let two_filters = t("    - branches: {includes: [main]}\n    - branches: {includes: [dev]}");
    let push_and_pr = "triggers:\n- gitConfiguration:\n    sourceActionName: S\n    push:\n    - branches: {includes: [main]}\n    pullRequest:\n    - branches: {includes: [main]}".to_owned();
    let two_triggers = "triggers:\n- gitConfiguration:\n    sourceActionName: S\n    push:\n    - branches: {includes: [main]}\n- gitConfiguration:\n    sourceActionName: S\n    push:\n    - tags: {includes: [\"v*\"]}".to_owned();
    let with_paths = t("    - branches: {includes: [main]}\n      filePaths: {includes: [\"src/**\"], excludes: [\"**/*.md\"]}");
    let same_both = t("    - branches: {includes: [\"release/*\"], excludes: [\"release/*\"]}");
    let excl_only = t("    - branches: {excludes: [\"wip/**\"]}");
    let tags = t("    - tags: {includes: [\"v*\"], excludes: [\"v*-rc*\"]}");
    let paths_excl_only = t("    - branches: {includes: [\"**\"]}\n      filePaths: {excludes: [\"**/*.md\"]}");
    let pr_open = pr("    - events: [OPEN]\n      branches: {includes: [main]}");
    let pr_all = pr("    - branches: {includes: [main]}");
    let pr_paths = pr("    - branches: {includes: [main]}\n      filePaths: {includes: [\"src/**\"]}");
    let pascal = "triggers:\n- ProviderType: CodeStarSourceConnection\n  GitConfiguration:\n    SourceActionName: S\n    Push:\n    - Branches: {Includes: [main]}\n      FilePaths: {Excludes: [\"docs/**\"]}".to_owned();
    let cases: &[(&str, &str, &str, bool, &str)] = &[
        ("1 push filters OR", &two_filters, "push dev", true, "push[1].branches.includes[0]"),
        ("1 push filters OR", &two_filters, "push other", false, "matched no pattern of push[0].branches.includes"),
        ("1 push OR pullRequest", &push_and_pr, "pr opened main", true, "pullRequest[0]"),
        ("1 push OR pullRequest", &push_and_pr, "pr opened dev", false, "pullRequest[0].branches.includes"),
        ("1 triggers OR", &two_triggers, "tag v1", true, "triggers[1].push[0].tags.includes[0] \"v*\""),
        ("1 triggers OR", &two_triggers, "tag x1", false, "triggers[1].push[0].tags.includes"),
        ("2 branches AND paths", &with_paths, "push main src/a.rs", true, "path \"src/a.rs\" included by push[0].filePaths.includes[0] \"src/**\""),
        ("2 branches AND paths", &with_paths, "push dev src/a.rs", false, "branch \"dev\" matched no pattern of push[0].branches.includes"),
        ("2 branches AND paths", &with_paths, "push main lib/a.rs", false, "no changed path matched push[0].filePaths.includes"),
        ("3 excludes win", &same_both, "push release/1", false, "excluded by push[0].branches.excludes[0] \"release/*\""),
        ("3 no includes: all but excludes", &excl_only, "push feature/x", true, "matched no pattern of push[0].branches.excludes"),
        ("3 no includes: all but excludes", &excl_only, "push wip/x/y", false, "excluded by push[0].branches.excludes[0]"),
        ("3 include and exclude", &tags, "tag v1.2", true, "included by push[0].tags.includes[0]"),
        ("3 include and exclude", &tags, "tag v1.2-rc1", false, "excluded by push[0].tags.excludes[0] \"v*-rc*\""),
        ("5 tags filter: tags only", &tags, "push v1", false, "matches tags only"),
        ("5 branches filter: branches only", CP_BRANCH_MAIN, "tag main", false, "matches branches only"),
        ("5 other refs never", CP_BRANCH_MAIN, "ref refs/notes/main", false, "neither a branch nor a tag"),
        ("6 one path included, not excluded", &with_paths, "push main README.md src/a.rs", true, "src/a.rs"),
        ("6 every included path excluded", &with_paths, "push main src/README.md src/x/y.md", false, "excluded by push[0].filePaths.excludes[0] \"**/*.md\" (every changed path matched)"),
        ("6 paths with excludes only", &paths_excl_only, "push main docs/a.md src/a.rs", true, "path \"src/a.rs\" matched no pattern of push[0].filePaths.excludes"),
        ("6 paths with excludes only", &paths_excl_only, "push main README.md docs/b.md", false, "excluded by push[0].filePaths.excludes[0] \"**/*.md\" (every changed path matched)"),
        ("6 no changed paths", &with_paths, "push main", false, "lists no changed paths"),
        ("6 unknown paths pass", &with_paths, "push main +incomplete", true, "changed_paths_complete is false"),
        ("6 known paths decide first", &with_paths, "push main src/a.rs +incomplete", true, "included by push[0].filePaths.includes[0]"),
        ("7 OPEN = opened", &pr_open, "pr opened main", true, "base branch \"main\" included"),
        ("7 OPEN = reopened", &pr_open, "pr reopened main", true, ""),
        ("7 OPEN is not UPDATED", &pr_open, "pr updated main", false, "pull request action \"updated\" (UPDATED) is not in pullRequest[0].events"),
        ("7 CLOSED = closed", &pr_all, "pr closed main", true, ""),
        ("7 other activity never", &pr_all, "pr labeled main", false, "not one CodePipeline starts on"),
        ("7 omitted events = all three", &pr_all, "pr updated main", true, ""),
        ("PR matches base branch", &pr_all, "pr opened dev", false, "base branch \"dev\" matched no pattern of pullRequest[0].branches.includes"),
        ("PR paths unknown pass", &pr_paths, "pr opened main +incomplete", true, "changed_paths_complete is false"),
        ("PR paths known", &pr_paths, "pr opened main docs/a", false, "no changed path matched pullRequest[0].filePaths.includes"),
        ("push-only has no PR", CP_BRANCH_MAIN, "pr opened main", false, "no trigger has a pullRequest filter"),
        ("PascalCase", &pascal, "push main src/a.rs", true, "Push[0].Branches.Includes[0]"),
        ("PascalCase", &pascal, "push main docs/a.rs", false, "excluded by Push[0].FilePaths.Excludes[0] \"docs/**\""),
        ("9 every path, not the first 100", &with_paths, &format!("push main {} src/z.rs", (0..150).map(|i| format!("d/{i}.md")).collect::<Vec<_>>().join(" ")), true, "src/z.rs"),
        ("deletion starts nothing", CP_BRANCH_MAIN, "push main +deleted", false, "deletion starts nothing"),
        ("creation starts", CP_BRANCH_MAIN, "push main +created", true, ""),
    ];
    run_table(cases);
}

#[test]
#[rustfmt::skip]
fn github_rules() {
    let on = |s: &str| format!("on:\n{s}");
    let branches = on("  push:\n    branches: [main, \"releases/**\"]");
    let tags_only = on("  push:\n    tags: [\"v*\"]");
    let bare = "on: push".to_owned();
    let list_form = "on: [push, pull_request]".to_owned();
    let both_paths = on("  push:\n    branches: [main]\n    paths: [\"src/**\"]");
    let ordered = on("  push:\n    branches: [\"releases/**\", \"!releases/**-alpha\"]");
    let reinclude = on("  push:\n    branches: [\"releases/**\", \"!releases/**-alpha\", \"releases/keep-alpha\"]");
    let b_ignore = on("  push:\n    branches-ignore: [\"wip/**\"]");
    let paths = on("  push:\n    paths: [\"sub/**\", \"!sub/docs/**\"]");
    let p_ignore = on("  push:\n    paths-ignore: [\"docs/**\", \"**/*.md\"]");
    let tags_paths = on("  push:\n    branches: [main]\n    tags: [\"v*\"]\n    paths: [\"src/**\"]");
    let pr_default = on("  pull_request:\n    branches: [main]");
    let pr_types = on("  pull_request:\n    types: [closed, labeled, synchronize]");
    let pr_target = on("  pull_request_target:\n    branches: [main]");
    let pr_paths = on("  pull_request:\n    paths: [\"src/**\"]");
    let cases: &[(&str, &str, &str, bool, &str)] = &[
        ("2 only branch filters: branches match", &branches, "push releases/v1/x", true, "branch \"releases/v1/x\" matched on.push.branches[1] \"releases/**\""),
        ("2 only branch filters: tags never", &branches, "tag main", false, "on.push filters branches only"),
        ("2 only tag filters: tags match", &tags_only, "tag v2", true, "tag \"v2\" matched on.push.tags[0] \"v*\""),
        ("2 only tag filters: branches never", &tags_only, "push v2", false, "on.push filters tags only"),
        ("2 neither: branch matches", &bare, "push any/branch", true, "no branch filter"),
        ("2 neither: tag matches", &bare, "tag x", true, "no tag filter"),
        ("2 list form", &list_form, "pr opened dev", true, ""),
        ("3 branch and paths both pass", &both_paths, "push main src/a.rs", true, "path \"src/a.rs\" matched on.push.paths[0] \"src/**\""),
        ("3 paths fail", &both_paths, "push main lib/a.rs", false, "no changed path matched on.push.paths"),
        ("3 branch fails", &both_paths, "push dev src/a.rs", false, "branch \"dev\" matched no pattern of on.push.branches"),
        ("4 later negation excludes", &ordered, "push releases/beta/3-alpha", false, "excluded by on.push.branches[1] \"!releases/**-alpha\""),
        ("4 positive matches", &ordered, "push releases/beta/3", true, "matched on.push.branches[0]"),
        ("4 last match re-includes", &reinclude, "push releases/keep-alpha", true, "matched on.push.branches[2] \"releases/keep-alpha\""),
        ("5 -ignore excludes", &b_ignore, "push wip/a", false, "ignored by on.push.branches-ignore[0] \"wip/**\""),
        ("5 -ignore lets others run", &b_ignore, "push main", true, "matched no pattern of on.push.branches-ignore"),
        ("6 paths: one path matches", &paths, "push main README sub/a.txt", true, "path \"sub/a.txt\" matched on.push.paths[0]"),
        ("6 paths: negated later", &paths, "push main sub/docs/a.md", false, "excluded by a later `!` pattern, e.g. on.push.paths[1] \"!sub/docs/**\""),
        ("6 paths: none match", &paths, "push main other/a", false, "no changed path matched on.push.paths"),
        ("6 paths-ignore: one path not ignored", &p_ignore, "push main docs/a src/b.rs", true, "path \"src/b.rs\" matched no pattern of on.push.paths-ignore"),
        ("6 paths-ignore: every path ignored", &p_ignore, "push main docs/a README.md", false, "excluded by on.push.paths-ignore[0] \"docs/**\" and on.push.paths-ignore[1] \"**/*.md\" (every changed path matched one)"),
        ("7 paths not evaluated for tags", &tags_paths, "tag v1 docs/x", true, "tag \"v1\" matched"),
        ("7 no paths with a path filter", &both_paths, "push main", false, "lists no changed paths"),
        ("8 over 1000 commits skip paths", &both_paths, "push main docs/x +commits=1001", true, "1001 commits were pushed"),
        ("8 1000 commits still check", &both_paths, "push main docs/x +commits=1000", false, "no changed path matched"),
        ("8 unknown paths pass", &both_paths, "push main +incomplete", true, "changed_paths_complete is false"),
        ("9 default types", &pr_default, "pr updated main", true, "base branch \"main\" matched on.pull_request.branches[0]"),
        ("9 default types exclude closed", &pr_default, "pr closed main", false, "pull request activity \"closed\" is not in on.pull_request.types"),
        ("9 synchronize = updated", &pr_types, "pr updated main", true, ""),
        ("9 listed activity", &pr_types, "pr labeled main", true, ""),
        ("9 unlisted activity", &pr_types, "pr opened main", false, "\"opened\" is not in on.pull_request.types"),
        ("PR branches match base", &pr_default, "pr opened dev", false, "base branch \"dev\" matched no pattern of on.pull_request.branches"),
        ("pull_request_target synonym", &pr_target, "pr opened main", true, "on.pull_request_target.branches[0]"),
        ("PR paths unknown pass", &pr_paths, "pr opened main +incomplete", true, "changed_paths_complete is false"),
        ("no push trigger", &pr_default, "push main", false, "`on` has no push"),
        ("no pull_request trigger", &branches, "pr opened main", false, "`on` has no pull_request"),
        ("deletion starts nothing", &bare, "push main +deleted", false, "deletion starts nothing"),
    ];
    run_table(cases);
}

#[test]
#[rustfmt::skip]
fn default_filter_and_repository() {
    let cases: &[(&str, &str, &str, bool, &str)] = &[
        ("no filter: default branch", "", "push main", true, "push to the default branch \"main\""),
        ("no filter: other branch", "", "push dev", false, "not the default branch"),
        ("no filter: tag", "", "tag main", false, "not the default branch"),
        ("no filter: pull request", "", "pr opened main", false, "pull requests start nothing"),
    ];
    run_table(cases);
    let (start, why) = decide(CP_BRANCH_MAIN, "push main");
    assert!(start, "{why}");
    let text = format!("pipeline: p\nrepository: https://github.com/acme/other\n{CP_BRANCH_MAIN}\nstart: {{exec: [x]}}\n");
    let (pipelines, _) = Pipelines::load_texts(&[("p.yaml".into(), text)], Path::new("/"));
    let d = pipelines.explain(&event("push main"));
    assert_eq!((d[0].start, d[0].reason.as_str()), (false, "the change is to github.com/acme/api, and this pipeline watches github.com/acme/other"));
}

/// Builds a one-pipeline book with the given branch filter in a dialect.
fn branch_book(dialect: Dialect, includes: &[String], excludes: &[String]) -> Pipelines {
    let list = |v: &[String]| {
        let quoted: Vec<String> = v
            .iter()
            .map(|s| serde_json::to_string(s).unwrap_or_default())
            .collect();
        format!("[{}]", quoted.join(", "))
    };
    let filter = match dialect {
        Dialect::CodePipeline => {
            let mut crit = format!("includes: {}", list(includes));
            if !excludes.is_empty() {
                crit.push_str(&format!(", excludes: {}", list(excludes)));
            }
            format!(
                "triggers:\n- gitConfiguration:\n    sourceActionName: S\n    push:\n    - branches: {{{crit}}}"
            )
        }
        Dialect::GitHub => {
            let mut all: Vec<String> = includes.to_vec();
            all.extend(excludes.iter().map(|e| format!("!{e}")));
            format!("on:\n  push:\n    branches: {}", list(&all))
        }
    };
    let text = format!("pipeline: p\nrepository: {REPO}\n{filter}\nstart: {{exec: [x]}}\n");
    Pipelines::load_texts(&[("p.yaml".into(), text)], Path::new("/")).0
}

fn name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-c*?]{1,4}(/[a-c*?]{1,3}){0,2}",
        "[a-c]{1,2}/\\*\\*",
        "\\{a,b\\}[a-c]{0,2}",
        "\\[a-b\\][a-c*]{0,2}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Escaping a literal branch name gives a pattern that starts exactly that branch.
    #[test]
    fn escaped_name_matches_exactly_that_name(name in "[a-zA-Z0-9._*?+!{}\\[\\]-]{1,10}(/[a-zA-Z0-9._*?+-]{1,6}){0,2}", other in "[a-z0-9._/-]{1,12}") {
        prop_assume!(crate::event::check_ref(&format!("refs/heads/{name}")).is_ok());
        prop_assume!(crate::event::check_ref(&format!("refs/heads/{other}")).is_ok());
        for dialect in [Dialect::CodePipeline, Dialect::GitHub] {
            let book = branch_book(dialect, &[escape(&name, dialect)], &[]);
            prop_assert_eq!(book.list.len(), 1);
            prop_assert_eq!(book.matching(&event(&format!("push {name} a"))).len(), 1);
            if other != name {
                prop_assert_eq!(book.matching(&event(&format!("push {other} a"))).len(), 0);
            }
        }
    }

    /// Adding an exclude never makes a CodePipeline filter match more.
    #[test]
    fn an_exclude_never_widens_a_codepipeline_filter(
        includes in proptest::collection::vec(name_strategy(), 1..3),
        excludes in proptest::collection::vec(name_strategy(), 0..3),
        extra in name_strategy(),
        names in proptest::collection::vec("[a-c][a-c-]{0,2}(/[a-c][a-c-]{0,2}){0,2}", 1..6),
    ) {
        let before = branch_book(Dialect::CodePipeline, &includes, &excludes);
        let mut more = excludes.clone();
        more.push(extra);
        let after = branch_book(Dialect::CodePipeline, &includes, &more);
        prop_assume!(before.list.len() == 1 && after.list.len() == 1);
        for name in &names {
            prop_assume!(crate::event::check_ref(&format!("refs/heads/{name}")).is_ok());
            let spec = format!("push {name} {}", names.join(" "));
            let was = !before.matching(&event(&spec)).is_empty();
            let now = !after.matching(&event(&spec)).is_empty();
            prop_assert!(was || !now, "{name}: adding an exclude made it match");
        }
    }
}
