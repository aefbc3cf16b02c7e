//! `switchyard explain`: per pipeline, start or not, and the rule that decided.

use crate::support::{Project, push_event};

fn project() -> Project {
    let p = Project::new();
    p.file(
        "triggers/api.yaml",
        "repository: git@github.com:acme/api.git\ntriggers:\n  - gitConfiguration:\n      sourceActionName: Source\n      push:\n        - branches: {includes: [main]}\n          filePaths: {excludes: [\"**/*.md\"]}\nstart: {exec: [\"./run\"]}\n",
    );
    p.file(
        "triggers/web.yaml",
        "repository: https://github.com/acme/api\non:\n  push:\n    paths: [\"web/**\"]\nstart: {exec: [\"./run\"]}\n",
    );
    p
}

#[test]
fn json_format_is_the_contract() {
    let p = project();
    let event = push_event(
        "https://github.com/acme/api.git",
        "refs/heads/main",
        &["README.md", "docs/x.md"],
    );
    let run = p.run(
        &["explain", "--event", "-", "--format", "json"],
        &[],
        &event,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(
        json,
        serde_json::json!({"pipelines": [
            {"pipeline": "api", "start": false,
             "reason": "excluded by push[0].filePaths.excludes[0] \"**/*.md\" (every changed path matched)"},
            {"pipeline": "web", "start": false,
             "reason": "no changed path matched on.push.paths (2 changed paths)"},
        ]})
    );
}

#[test]
fn text_format_from_a_file() {
    let p = project();
    p.file(
        "event.json",
        &push_event(
            "ssh://git@github.com/acme/api",
            "refs/heads/main",
            &["web/app.js"],
        ),
    );
    let run = p.run(&["explain", "--event", "event.json"], &[], "");
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("change ")
            && lines[0].contains("github.com/acme/api: push to refs/heads/main, 1 changed path"),
        "{lines:?}"
    );
    assert_eq!(
        lines[1],
        "start  api  branch \"main\" included by push[0].branches.includes[0] \"main\"; path \"web/app.js\" matched no pattern of push[0].filePaths.excludes"
    );
    assert_eq!(
        lines[2],
        "start  web  branch \"main\" pushed (on.push has no branch filter); path \"web/app.js\" matched on.push.paths[0] \"web/**\""
    );
}

#[test]
fn bad_events_name_the_field() {
    let p = project();
    let event = push_event("https://github.com/acme/api", "main", &[]);
    let run = p.run(&["explain", "--event", "-"], &[], &event);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("- is not a valid change event"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("ref: \"main\" is not a full ref name"),
        "{run:?}"
    );

    let run = p.run(
        &["explain", "--event", "-"],
        &[],
        "{\"schema\": \"switchyard.change/v1\"",
    );
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("EOF while parsing"), "{run:?}");

    let run = p.run(&["explain", "--event", "missing.json"], &[], "");
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("cannot read missing.json"), "{run:?}");
}

#[test]
fn broken_triggers_stop_explain() {
    let p = project();
    p.file("triggers/bad.yaml", "on:\n  push:\n    branchs: [x]\n");
    let event = push_event("https://github.com/acme/api", "refs/heads/main", &[]);
    let run = p.run(&["explain", "--event", "-"], &[], &event);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("triggers/bad.yaml:3:5: unknown key `branchs`"),
        "{run:?}"
    );
}

#[test]
fn an_event_whose_paths_stayed_unknown_says_why_and_passes_path_filters() {
    let p = project();
    let mut event: serde_json::Value = serde_json::from_str(&push_event(
        "https://github.com/acme/api.git",
        "refs/heads/main",
        &[],
    ))
    .expect("json");
    event["changed_paths_complete"] = false.into();
    event["completion"] =
        serde_json::json!({"outcome": "timed_out", "detail": "not done within 10s"});
    let run = p.run(&["explain", "--event", "-"], &[], &event.to_string());
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].ends_with(
            "0 changed paths known, list incomplete (not completed in time: not done within 10s)"
        ),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("start  web ") && lines[2].contains("path filters pass"),
        "{lines:?}"
    );
}
