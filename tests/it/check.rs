//! `switchyard check`: the texts users read for each kind of mistake (snapshots), and exit codes.

use crate::support::Project;

const HEAD: &str = "repository: https://github.com/acme/api.git\nstart: {exec: [\"./run\"]}\n";

/// Each case: a name and the files of one project. The snapshot is the whole `check` output.
#[rustfmt::skip]
const CASES: &[(&str, &[(&str, &str)])] = &[
    ("typo_github", &[("triggers/a.yaml", "on:\n  push:\n    branchs: [main]\n")]),
    ("typo_codepipeline", &[("triggers/a.yaml", "triggers:\n  - gitConfiguration:\n      sourceActionName: Source\n      push:\n        - branches: {include: [main]}\n")]),
    ("typo_top_level", &[("triggers/a.yaml", "on: push\nrepo: x\n")]),
    ("both_dialects", &[("triggers/a.yaml", "triggers:\n  - gitConfiguration:\n      sourceActionName: S\n      push: [{branches: {includes: [main]}}]\non: push\n")]),
    ("branches_and_branches_ignore", &[("triggers/a.yaml", "on:\n  push:\n    branches: [main]\n    branches-ignore: [dev]\n")]),
    ("tags_with_branches", &[("triggers/a.yaml", "triggers:\n  - gitConfiguration:\n      sourceActionName: S\n      push:\n        - branches: {includes: [main]}\n          tags: {includes: [\"v*\"]}\n")]),
    ("file_paths_without_branches", &[("triggers/a.yaml", "triggers:\n  - gitConfiguration:\n      sourceActionName: S\n      push:\n        - filePaths: {includes: [\"src/**\"]}\n")]),
    ("over_limit_patterns", &[("triggers/a.yaml", "triggers:\n  - gitConfiguration:\n      sourceActionName: S\n      push:\n        - branches: {includes: [a, b, c, d, e, f, g, h, i]}\n")]),
    ("over_limit_filters", &[("triggers/a.yaml", "triggers:\n  - gitConfiguration:\n      sourceActionName: S\n      push:\n        - tags: {includes: [a]}\n        - tags: {includes: [b]}\n        - tags: {includes: [c]}\n        - tags: {includes: [d]}\n")]),
    ("nested_braces", &[("triggers/a.yaml", "triggers:\n  - gitConfiguration:\n      sourceActionName: S\n      push:\n        - branches: {includes: [main]}\n          filePaths: {includes: [\"src/{a,{b,c}}/**\"]}\n")]),
    ("unclosed_bracket", &[("triggers/a.yaml", "on:\n  push:\n    paths: [\"src/[ab/**\"]\n")]),
    ("github_quantifier_at_start", &[("triggers/a.yaml", "on:\n  push:\n    tags: [\"+v1\"]\n")]),
    ("only_negations", &[("triggers/a.yaml", "on:\n  push:\n    branches: [\"!main\", \"!dev\"]\n")]),
    ("duplicate_names", &[("triggers/a.yaml", "pipeline: build\non: push\n"), ("triggers/b.yaml", "pipeline: build\non: push\n")]),
    ("secret_in_clear", &[("triggers/a.yaml", "pipeline: a\nrepository: https://github.com/acme/api.git\non: push\nstart:\n  http: {url: \"http://127.0.0.1:9000/start\", secret: hunter2}\n"), ("triggers/b.yaml", "pipeline: b\nrepository: https://github.com/acme/api.git\non: push\nstart:\n  exec: [\"./deploy\", \"--token\", \"ghp_16C7e42F292c6912E7710c838347Ae178B4a\"]\n")]),
    ("never_matches", &[("triggers/a.yaml", "triggers:\n  - gitConfiguration:\n      sourceActionName: S\n      push:\n        - branches: {includes: [\"release/*\"], excludes: [\"release/*\"]}\n        - branches: {includes: [main], excludes: [\"**\"]}\n"), ("triggers/b.yaml", "on:\n  push:\n    branches: [main, \"!main\"]\n    paths-ignore: [\"**\"]\n")]),
    ("full_ref_in_pattern", &[("triggers/a.yaml", "on:\n  push:\n    branches: [refs/heads/main]\n    paths: [\"/src/**\"]\n")]),
    ("bad_mode_and_start", &[("triggers/a.yaml", "pipeline: a\nrepository: https://github.com/acme/api.git\nmode: queue\nstart:\n  exec: \"./run && rm -rf /\"\n"), ("triggers/b.yaml", "pipeline: b\nrepository: https://github.com/acme/api.git\nstart:\n  exec: [x]\n  http: {url: \"http://x/\"}\n")]),
    ("pull_request_events", &[("triggers/a.yaml", "triggers:\n  - gitConfiguration:\n      sourceActionName: S\n      pullRequest:\n        - events: [OPEN, MERGED]\n          branches: {includes: [main]}\n          tags: {includes: [v1]}\n")]),
    ("yaml_syntax", &[("triggers/a.yaml", "on:\n  push:\n    branches: [main\n")]),
    ("bad_repository", &[("triggers/a.yaml", "pipeline: a\nrepository: ftp://example.com/x\non: push\nstart: {exec: [x]}\n")]),
    ("config_errors", &[("switchyard.yaml", "listen: localhost\nreceivers:\n  - name: gh\n    provider: githib\n    secrets: [\"s3cret\"]\npoll:\n  - url: https://github.com/acme/api.git\n    interval: 30\ndispatch: {attempts: 0}\nstate_dri: x\n")]),
    ("store_errors", &[("switchyard.yaml", "store:\n  postgres: \"postgres://yard:hunter2@db.example/yard\"\n  sqlite: x\n")]),
    ("store_not_a_postgres_url", &[("switchyard.yaml", "store: {postgres: \"file:db-url\"}\n"), ("db-url", "mysql://db.example/yard\n")]),
    ("store_without_postgres", &[("switchyard.yaml", "store: {}\n")]),
    ("runner_templates", &[("triggers/a.yaml", "pipeline: a\nrepository: https://github.com/acme/api.git\nstart:\n  github_actions:\n    repository: acme/api\n    workflow: deploy.yml\n    token: env:GITHUB_TOKEN\n    inputs: {sha: \"${shaa}\", pr: \"${pull_request.number}\"}\n"), ("triggers/b.yaml", "pipeline: b\nrepository: https://github.com/acme/api.git\nstart:\n  buildkite:\n    organization: acme\n    pipeline: api\n    token: env:BUILDKITE_API_TOKEN\n    message: \"deploy ${sha\"\n    env: {\"BAD NAME\": x}\n"), ("triggers/c.yaml", "pipeline: c\nrepository: https://github.com/acme/api.git\nstart:\n  codepipeline: {name: deploy, source_action: Source, variables: {\"bad/name\": \"${sha}\"}}\n")]),
    ("runner_credentials", &[("triggers/a.yaml", "pipeline: a\nrepository: https://github.com/acme/api.git\nstart:\n  gitlab: {url: \"https://gitlab.com\", project: acme/api}\n"), ("triggers/b.yaml", "pipeline: b\nrepository: https://github.com/acme/api.git\nstart:\n  jenkins: {url: \"https://ci.example.com\", job: folder/api, user: bot, token: hunter2hunter2}\n"), ("triggers/c.yaml", "pipeline: c\nrepository: https://github.com/acme/api.git\nstart:\n  github_actions: {repository: acme/api, workflow: deploy.yml, event_type: deploy, token: env:GITHUB_TOKEN}\n"), ("triggers/d.yaml", "pipeline: d\nrepository: https://github.com/acme/api.git\nstart:\n  codebuild: {project: api, environment: {CODEBUILD_X: y}, sourceVersion: x}\n")]),
    ("github_unknown_event_and_type", &[("triggers/a.yaml", "on:\n  pushh:\n  workflow_dispatch:\n  pull_request:\n    types: [synchronise]\n")]),
];

fn with_head(path: &str, text: &str) -> String {
    let has_own = text.contains("repository:") || !path.starts_with("triggers/");
    if has_own {
        text.to_owned()
    } else {
        format!("{HEAD}{text}")
    }
}

#[test]
fn error_texts() {
    for (name, files) in CASES {
        let project = Project::new();
        for (path, text) in *files {
            project.file(path, &with_head(path, text));
        }
        let run = project.run(&["check"], &[], "");
        assert_eq!(
            run.code,
            Some(if run.stdout.contains("failed:") { 1 } else { 0 }),
            "{name}: {run:?}"
        );
        insta::assert_snapshot!(*name, run.stdout);
    }
}

#[test]
fn every_case_reports_its_mistake() {
    // Not a snapshot: the behaviour each case exists for, so that a careless snapshot
    // update cannot hide a regression.
    #[rustfmt::skip]
    let expect: &[(&str, &str)] = &[
        ("typo_github", "triggers/a.yaml:5:5: unknown key `branchs` in on.push\nhint: did you mean `branches`?"),
        ("typo_codepipeline", "did you mean `includes`?"),
        ("both_dialects", "both dialects in one file"),
        ("branches_and_branches_ignore", "`branches` and `branches-ignore` cannot both be used"),
        ("tags_with_branches", "tags and branches cannot share one push filter\nhint: move tags into a filter of its own, as CodePipeline requires"),
        ("file_paths_without_branches", "filePaths needs branches"),
        ("over_limit_patterns", "more than the 8 CodePipeline allows\nhint: AWS would refuse this filter too"),
        ("over_limit_filters", "more than the 3 CodePipeline allows"),
        ("nested_braces", "triggers/a.yaml:8:42: nested \"{\""),
        ("unclosed_bracket", "triggers/a.yaml:5:18: unclosed \"[\""),
        ("only_negations", "has only `!` patterns"),
        ("duplicate_names", "duplicate pipeline name \"build\" (first defined at triggers/a.yaml:3:11)"),
        ("secret_in_clear", "start.http.secret: a secret written in clear"),
        ("secret_in_clear", "looks like a GitHub token written in clear"),
        ("never_matches", "warning: push[0].branches.includes[0] \"release/*\" can never match"),
        ("never_matches", "warning: on.push.branches can never match"),
        ("full_ref_in_pattern", "patterns match the short name"),
        ("bad_mode_and_start", "never a shell string"),
        ("pull_request_events", "unknown pull request event \"MERGED\""),
        ("config_errors", "unknown provider \"githib\"\nhint: did you mean `github`?"),
        ("config_errors", "did you mean `state_dir`?"),
        ("store_errors", "looks like a URL with a password written in clear"),
        ("store_errors", "unknown key `sqlite` in store"),
        ("store_not_a_postgres_url", "store.postgres: file:"),
        ("store_not_a_postgres_url", "does not hold a PostgreSQL URL"),
        ("store_without_postgres", "store needs `postgres`"),
        ("runner_templates", "unknown template name `${shaa}`\nhint: did you mean `${sha}`?"),
        ("runner_templates", "`${` is not closed"),
        ("runner_templates", "start.codepipeline.variables name \"bad/name\" is not valid"),
        ("runner_credentials", "start.gitlab needs `token`, the credential it starts with\nhint: add `token: env:GITLAB_TRIGGER_TOKEN`"),
        ("runner_credentials", "start.jenkins.token: a secret written in clear"),
        ("runner_credentials", "mixes a workflow_dispatch"),
        ("runner_credentials", "CodeBuild keeps names starting with CODEBUILD_"),
        ("runner_credentials", "did you mean `source_version`?"),
    ];
    for (name, needle) in expect {
        let files = CASES
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| *f)
            .unwrap_or_default();
        let project = Project::new();
        for (path, text) in files {
            project.file(path, &with_head(path, text));
        }
        let run = project.run(&["check"], &[], "");
        assert!(
            run.stdout.contains(needle),
            "{name}: expected {needle:?} in\n{}",
            run.stdout
        );
    }
}

#[test]
fn the_shipped_examples_pass() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let report = switchyard::check::run(None, &root.join("triggers"));
    assert_eq!(report.errors(), 0, "{}", report.render());
    assert_eq!(report.warnings(), 0, "{}", report.render());
    assert!(report.pipelines.list.len() >= 2);
    // Each example project of examples/ (a folder with switchyard.yaml and triggers/) checks
    // clean too.
    let mut projects = 0;
    for entry in std::fs::read_dir(root.join("examples")).expect("examples/") {
        let dir = entry.expect("an entry").path();
        if !dir.join("switchyard.yaml").is_file() {
            continue;
        }
        let report =
            switchyard::check::run(Some(&dir.join("switchyard.yaml")), &dir.join("triggers"));
        let shown = dir.display();
        assert_eq!(
            report.errors() + report.warnings(),
            0,
            "{shown}: {}",
            report.render()
        );
        assert!(!report.pipelines.list.is_empty(), "{shown}");
        projects += 1;
    }
    assert!(projects >= 1, "no example project under examples/");
}

#[test]
fn exit_codes() {
    let ok = Project::new();
    ok.file("triggers/a.yaml", &format!("{HEAD}on: push\n"));
    let run = ok.run(&["check"], &[], "");
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.starts_with("ok: 1 pipeline valid"), "{run:?}");

    let warn_only = Project::new();
    warn_only.file(
        "triggers/a.yaml",
        &format!("{HEAD}on:\n  push:\n    branches: []\n"),
    );
    assert_eq!(warn_only.run(&["check"], &[], "").code, Some(0));

    let missing_config = ok.run(&["check", "--config", "nope.yaml"], &[], "");
    assert_eq!(missing_config.code, Some(1), "{missing_config:?}");
    assert!(
        missing_config
            .stdout
            .contains("nope.yaml: cannot read the configuration"),
        "{missing_config:?}"
    );

    let no_triggers = ok.run(&["check", "--triggers", "absent"], &[], "");
    assert_eq!(no_triggers.code, Some(1));
    assert!(
        no_triggers
            .stdout
            .contains("absent: cannot read the triggers directory"),
        "{no_triggers:?}"
    );
}
