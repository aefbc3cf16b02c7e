//! Provider normalization tests: a snapshot of every fixture, the key fields of each important
//! shape asserted directly, bad input named by field, and properties: no input panics.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use jiff::Timestamp;
use proptest::prelude::{Just, ProptestConfig, any, prop_assert_eq, prop_oneof, proptest};
use proptest::strategy::Strategy as Gen;
use serde_json::{Value, json};

use super::{NormalizeError, Normalized, header, normalize, parse_headers};
use crate::config::Provider::{self, Bitbucket, GitHub, GitLab, Gitea};
use crate::event::{ChangeEvent, ChangeKind, PullRequest, ZERO_SHA};

/// The zero object id as a JSON string.
const ZERO_JSON: &str = "\"0000000000000000000000000000000000000000\"";

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");

/// Every fixture with the event type its provider sends it with. The snapshot test covers each;
/// `every_fixture_is_a_case` checks that none is left out.
#[rustfmt::skip]
const CASES: &[(Provider, &str, &str)] = &[
    (GitHub, "github/ping_payload.json", "ping"),
    (GitHub, "github/pull_request_opened.payload.json", "pull_request"),
    (GitHub, "github/pull_request_synchronize.payload.json", "pull_request"),
    (GitHub, "github/push_payload.json", "push"),
    (GitHub, "github/push_with-new-branch.payload.json", "push"),
    (GitHub, "github/push_fast-forward.derived.json", "push"),
    (GitHub, "github/push_forced.derived.json", "push"),
    (GitHub, "github/push_branch-deleted.derived.json", "push"),
    (GitHub, "github/push_annotated-tag-created.derived.json", "push"),
    (GitHub, "github/push_lightweight-tag-created.derived.json", "push"),
    (GitHub, "github/pull_request_closed-merged.derived.json", "pull_request"),
    (GitHub, "github/pull_request_closed-unmerged.derived.json", "pull_request"),
    (GitHub, "github/pull_request_labeled.derived.json", "pull_request"),
    (GitLab, "gitlab/push-event.json", "Push Hook"),
    (GitLab, "gitlab/merge-request-event.json", "Merge Request Hook"),
    (GitLab, "gitlab/push-event-all-listed.derived.json", "Push Hook"),
    (GitLab, "gitlab/push-branch-created.derived.json", "Push Hook"),
    (GitLab, "gitlab/push-branch-deleted.derived.json", "Push Hook"),
    (GitLab, "gitlab/tag-push-event.derived.json", "Tag Push Hook"),
    (GitLab, "gitlab/merge-request-merge.derived.json", "Merge Request Hook"),
    (GitLab, "gitlab/merge-request-close.derived.json", "Merge Request Hook"),
    (GitLab, "gitlab/merge-request-update-commits.derived.json", "Merge Request Hook"),
    (GitLab, "gitlab/merge-request-reopen.derived.json", "Merge Request Hook"),
    (GitLab, "gitlab/system-hook-push.json", "System Hook"),
    (GitLab, "gitlab/system-hook-tag-push.json", "System Hook"),
    (GitLab, "gitlab/system-hook-merge-request.json", "System Hook"),
    (GitLab, "gitlab/system-hook-repository-update.json", "System Hook"),
    (GitLab, "gitlab/system-hook-project-create.json", "System Hook"),
    (GitLab, "gitlab/system-hook-user-add-to-team.json", "System Hook"),
    (GitLab, "gitlab/system-hook-member-approval.json", "System Hook"),
    (Bitbucket, "bitbucket/repo-push.json", "repo:push"),
    (Bitbucket, "bitbucket/pull-request-created.json", "pullrequest:created"),
    (Bitbucket, "bitbucket/repo-push-several-changes.derived.json", "repo:push"),
    (Bitbucket, "bitbucket/pull-request-updated.derived.json", "pullrequest:updated"),
    (Bitbucket, "bitbucket/pull-request-fulfilled.derived.json", "pullrequest:fulfilled"),
    (Bitbucket, "bitbucket/pull-request-rejected.derived.json", "pullrequest:rejected"),
    (Gitea, "gitea/push-event.json", "push"),
    (Gitea, "gitea/push-fast-forward.derived.json", "push"),
    (Gitea, "gitea/push-no-total.derived.json", "push"),
    (Gitea, "gitea/push-same-as-github.derived.json", "push"),
    (Gitea, "gitea/pull-request-opened.derived.json", "pull_request"),
    (Gitea, "gitea/pull-request-synchronized.derived.json", "pull_request"),
    (Gitea, "gitea/pull-request-closed-merged.derived.json", "pull_request"),
];

const PROVIDERS: [Provider; 4] = [GitHub, GitLab, Bitbucket, Gitea];

fn received() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap_or_else(|e| panic!("{e}"))
}

fn ts(text: &str) -> Option<Timestamp> {
    Some(text.parse().unwrap_or_else(|e| panic!("{text}: {e}")))
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture_json(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The header that names the event type.
fn event_header(provider: Provider) -> &'static str {
    match provider {
        GitHub => "X-GitHub-Event",
        GitLab => "X-Gitlab-Event",
        Bitbucket => "X-Event-Key",
        Gitea => "X-Gitea-Event",
        Provider::Standard => "webhook-id",
    }
}

/// The headers a provider sends with a delivery: the event type and a delivery id.
fn headers_for(provider: Provider, event: Option<&str>) -> HeaderMap {
    let mut pairs: Vec<(&str, &str)> = match provider {
        GitHub => vec![
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("X-GitHub-Hook-ID", "109948940"),
        ],
        GitLab => vec![(
            "X-Gitlab-Event-UUID",
            "13792a34-cac6-4fda-95a8-c58e00a3954e",
        )],
        Bitbucket => vec![("X-Request-UUID", "afe9ba4a-cd26-47c9-9e1b-0e2c04d6b3a6")],
        Gitea => vec![("X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473")],
        Provider::Standard => vec![],
    };
    if let Some(event) = event {
        pairs.push((event_header(provider), event));
    }
    headers(&pairs)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let value = HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{e}"));
        map.insert(name, value);
    }
    map
}

fn run(provider: Provider, body: &[u8], event: &str) -> Result<Normalized, NormalizeError> {
    normalize(
        provider,
        &headers_for(provider, Some(event)),
        body,
        received(),
    )
}

/// The change events of a delivery that must have some.
fn changes(provider: Provider, body: &[u8], event: &str) -> Vec<ChangeEvent> {
    match run(provider, body, event) {
        Ok(Normalized::Changes(events)) => events,
        other => panic!("expected change events, got {other:?}"),
    }
}

/// The one change event of a fixture.
fn one(provider: Provider, path: &str, event: &str) -> ChangeEvent {
    let mut events = changes(provider, &fixture(path), event);
    assert_eq!(events.len(), 1, "{path}");
    events.remove(0)
}

/// A fixture with edits applied to its JSON.
fn edited(path: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value = fixture_json(path);
    edit(&mut value);
    serde_json::to_vec(&value).unwrap_or_else(|e| panic!("{e}"))
}

/// Sets the value at a JSON pointer, which must exist.
fn set(value: &mut Value, pointer: &str, new: Value) {
    match value.pointer_mut(pointer) {
        Some(slot) => *slot = new,
        None => panic!("no {pointer}"),
    }
}

/// The fields of a push that every test looks at, in one comparable tuple.
type PushKey<'a> = (
    &'a str,
    &'a str,
    &'a str,
    bool,
    bool,
    Option<u64>,
    Vec<&'a str>,
    bool,
);

fn push_key(e: &ChangeEvent) -> PushKey<'_> {
    assert_eq!(e.kind, ChangeKind::Push);
    assert_eq!(e.pull_request, None);
    let paths = e.changed_paths.iter().map(String::as_str).collect();
    (
        e.git_ref.as_str(),
        e.before.as_str(),
        e.after.as_str(),
        e.created,
        e.deleted,
        e.commit_count,
        paths,
        e.changed_paths_complete,
    )
}

fn pr(e: &ChangeEvent) -> &PullRequest {
    assert_eq!(e.kind, ChangeKind::PullRequest);
    assert!(!e.created && !e.deleted);
    assert!(e.changed_paths.is_empty() && !e.changed_paths_complete);
    e.pull_request
        .as_ref()
        .unwrap_or_else(|| panic!("no pull_request"))
}

fn snapshot_text(result: &Result<Normalized, NormalizeError>) -> String {
    match result {
        Ok(Normalized::Changes(events)) => {
            serde_json::to_string_pretty(events).unwrap_or_else(|e| panic!("{e}"))
        }
        Ok(Normalized::Ping) => "ping".to_owned(),
        Ok(Normalized::Ignored(reason)) => format!("ignored: {reason}"),
        Err(e) => format!("error: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots.

#[test]
fn header_lines_parse_or_name_the_bad_line() {
    let ok = parse_headers(&[
        "X-GitHub-Event: push".into(),
        "x-hub-signature-256:sha256=ab".into(),
    ])
    .expect("two headers");
    assert_eq!(header(&ok, "x-github-event"), Some("push"));
    assert_eq!(header(&ok, "X-Hub-Signature-256"), Some("sha256=ab"));
    for (line, want) in [
        ("no colon", "is not `Name: value`"),
        ("bad name: v", "bad header name"),
        ("X: bad\u{7f}value", "bad header value"),
    ] {
        let err = parse_headers(&[line.into()]).expect_err(line);
        assert!(
            err.contains(want) && err.contains(&format!("{line:?}")),
            "{err}"
        );
    }
}

#[test]
fn every_fixture_snapshot() {
    for &(provider, path, event) in CASES {
        let result = run(provider, &fixture(path), event);
        assert!(result.is_ok(), "{path}: {result:?}");
        let name = path.trim_end_matches(".json").replace(['/', '.'], "__");
        insta::assert_snapshot!(name, snapshot_text(&result));
    }
}

#[test]
fn every_fixture_is_a_case() {
    for provider in ["github", "gitlab", "bitbucket", "gitea"] {
        let dir = std::fs::read_dir(format!("{FIXTURES}/{provider}"))
            .unwrap_or_else(|e| panic!("{provider}: {e}"));
        for entry in dir {
            let name = entry.unwrap_or_else(|e| panic!("{e}")).file_name();
            let path = format!("{provider}/{}", name.to_string_lossy());
            assert!(
                CASES.iter().any(|c| c.1 == path),
                "{path} has no case in CASES"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GitHub.

const GH_ROOT: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
const GH_BASE: &str = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e";
const GH_HEAD: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

#[test]
fn github_fast_forward_push_has_the_union_of_paths_and_is_complete() {
    let e = one(GitHub, "github/push_fast-forward.derived.json", "push");
    assert_eq!(
        push_key(&e),
        (
            "refs/heads/master",
            GH_ROOT,
            GH_HEAD,
            false,
            false,
            Some(2),
            vec![
                "docs/guide.md",
                ".github/workflows/ci.yml",
                "README.md",
                "old/notes.txt"
            ],
            true,
        )
    );
    assert_eq!(e.repository.as_str(), "github.com/Codertocat/Hello-World");
    assert_eq!(e.occurred_at, ts("2019-05-15T15:20:31Z"));
    assert_eq!(e.received_at, received());
    assert_eq!(e.source.provider.as_deref(), Some("github"));
    assert_eq!(
        e.source.delivery_id.as_deref(),
        Some("109948940:72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    assert_eq!(e.id, e.derive_id());
}

#[test]
fn github_pushes() {
    #[rustfmt::skip]
    let cases: &[(&str, PushKey<'_>)] = &[
        // A new branch: its files are relative to a base the payload does not give.
        ("github/push_with-new-branch.payload.json",
         ("refs/heads/master", ZERO_SHA, GH_ROOT, true, false, Some(1), vec!["README.md"], false)),
        // A deleted tag: nothing changed in it; the empty list is whole.
        ("github/push_payload.json",
         ("refs/tags/simple-tag", GH_ROOT, ZERO_SHA, false, true, Some(0), vec![], true)),
        ("github/push_branch-deleted.derived.json",
         ("refs/heads/changes", GH_HEAD, ZERO_SHA, false, true, Some(0), vec![], true)),
        // Forced: the files of the dropped commits are not listed.
        ("github/push_forced.derived.json",
         ("refs/heads/master", GH_HEAD, "8d2a0c2bc35b7a3e4dd6b1d5be4bd2ab31b3e0c4", false, false,
          Some(1), vec!["README.md"], false)),
        // An annotated tag: `after` is the tag object, as given.
        ("github/push_annotated-tag-created.derived.json",
         ("refs/tags/v1.0.0", ZERO_SHA, "4b9c2e7f1a3d5e6f708192a3b4c5d6e7f8091a2b", true, false,
          Some(0), vec![], false)),
        ("github/push_lightweight-tag-created.derived.json",
         ("refs/tags/v1.0.1", ZERO_SHA, GH_HEAD, true, false, Some(0), vec![], false)),
    ];
    for (path, want) in cases {
        let e = one(GitHub, path, "push");
        assert_eq!(&push_key(&e), want, "{path}");
    }
    let deleted = one(GitHub, "github/push_payload.json", "push");
    assert_eq!(deleted.occurred_at, None, "a deletion has no head commit");
}

#[test]
fn github_push_at_the_commit_cap_has_no_count_and_is_incomplete() {
    let body = edited("github/push_fast-forward.derived.json", |v| {
        let commit = v["commits"][1].clone();
        set(v, "/commits", Value::Array(vec![commit; 2048]));
    });
    let e = &changes(GitHub, &body, "push")[0];
    assert_eq!((e.commit_count, e.changed_paths_complete), (None, false));
    let body = edited("github/push_fast-forward.derived.json", |v| {
        let commit = v["commits"][1].clone();
        set(v, "/commits", Value::Array(vec![commit; 2047]));
    });
    let e = &changes(GitHub, &body, "push")[0];
    assert_eq!(
        (e.commit_count, e.changed_paths_complete),
        (Some(2047), true)
    );
}

#[test]
fn github_pull_requests() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, bool, &str)] = &[
        ("github/pull_request_opened.payload.json", "opened", false, ZERO_SHA),
        ("github/pull_request_synchronize.payload.json", "updated", false, GH_BASE),
        ("github/pull_request_closed-merged.derived.json", "closed", true, ZERO_SHA),
        ("github/pull_request_closed-unmerged.derived.json", "closed", false, ZERO_SHA),
        ("github/pull_request_labeled.derived.json", "labeled", false, ZERO_SHA),
    ];
    let mut ids = Vec::new();
    for &(path, action, merged, before) in cases {
        let e = one(GitHub, path, "pull_request");
        let want = PullRequest {
            number: 2,
            action: action.to_owned(),
            merged,
            base_ref: "refs/heads/master".to_owned(),
            base_sha: Some(GH_BASE.to_owned()),
            head_sha: GH_HEAD.to_owned(),
        };
        assert_eq!(pr(&e), &want, "{path}");
        assert_eq!(e.git_ref, "refs/heads/changes", "{path}");
        assert_eq!(
            (e.before.as_str(), e.after.as_str()),
            (before, GH_HEAD),
            "{path}"
        );
        assert_eq!(e.commit_count, Some(1), "{path}");
        assert_eq!(e.repository.as_str(), "github.com/Codertocat/Hello-World");
        ids.push(e.id);
    }
    let closed = one(
        GitHub,
        "github/pull_request_closed-merged.derived.json",
        "pull_request",
    );
    assert_eq!(closed.occurred_at, ts("2019-05-15T15:25:01Z"));
    // The id is (repository, number, action, head): `merged` is not part of it, so a merged and
    // an unmerged close of one head share an id.
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), cases.len() - 1);
}

#[test]
fn github_other_actions_pass_through_lowercased() {
    let body = edited("github/pull_request_opened.payload.json", |v| {
        set(v, "/action", json!("Ready_For_Review"));
    });
    let e = &changes(GitHub, &body, "pull_request")[0];
    assert_eq!(pr(e).action, "ready_for_review");
}

#[test]
fn github_events_that_are_no_change() {
    let body = fixture("github/ping_payload.json");
    assert_eq!(run(GitHub, &body, "ping"), Ok(Normalized::Ping));
    #[rustfmt::skip]
    let cases = [
        ("issue_comment", r#"github event "issue_comment" is not a change"#),
        ("star", r#"github event "star" is not a change"#),
        ("create", r#"github "create" events duplicate the push event"#),
        ("delete", r#"github "delete" events duplicate the push event"#),
    ];
    for (event, reason) in cases {
        assert_eq!(
            run(GitHub, &body, event),
            Ok(Normalized::Ignored(reason.to_owned()))
        );
    }
    // A ping is still a delivery: its body must be JSON.
    assert_eq!(
        run(GitHub, b"{\"zen\":", "ping").map_err(|e| e.field),
        Err("body".into())
    );
}

// ---------------------------------------------------------------------------------------------
// GitLab.

const GL_BEFORE: &str = "95790bf891e76fee5e1747ab589903a6a1f80f22";
const GL_AFTER: &str = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7";

#[test]
fn gitlab_pushes() {
    let paths = vec!["CHANGELOG", "app/controller/application.rb"];
    #[rustfmt::skip]
    let cases: &[(&str, &str, PushKey<'_>)] = &[
        // 4 commits pushed, 2 listed: the union of the listed files is not the whole change.
        ("gitlab/push-event.json", "Push Hook",
         ("refs/heads/master", GL_BEFORE, GL_AFTER, false, false, Some(4), paths.clone(), false)),
        ("gitlab/push-event-all-listed.derived.json", "Push Hook",
         ("refs/heads/master", GL_BEFORE, GL_AFTER, false, false, Some(2), paths.clone(), true)),
        ("gitlab/push-branch-created.derived.json", "Push Hook",
         ("refs/heads/feature", ZERO_SHA, GL_AFTER, true, false, Some(4), paths.clone(), false)),
        ("gitlab/push-branch-deleted.derived.json", "Push Hook",
         ("refs/heads/feature", GL_AFTER, ZERO_SHA, false, true, Some(0), vec![], true)),
        ("gitlab/tag-push-event.derived.json", "Tag Push Hook",
         ("refs/tags/v1.0.0", ZERO_SHA, "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7", true, false,
          Some(0), vec![], false)),
    ];
    for (path, event, want) in cases {
        let e = one(GitLab, path, event);
        assert_eq!(&push_key(&e), want, "{path}");
    }
    let e = one(GitLab, "gitlab/push-event.json", "Push Hook");
    assert_eq!(e.repository.as_str(), "example.com/mike/diaspora");
    // The head commit is the listed one whose id is `after`.
    assert_eq!(e.occurred_at, ts("2012-01-03T21:36:29Z"));
    assert_eq!(
        e.source.delivery_id.as_deref(),
        Some("13792a34-cac6-4fda-95a8-c58e00a3954e")
    );
}

#[test]
fn gitlab_merge_request_actions() {
    let path = "gitlab/merge-request-event.json";
    #[rustfmt::skip]
    let cases: &[(&str, Option<&str>, &str, &str, bool)] = &[
        // (action, oldrev, state) -> (action, merged)
        ("open", None, "opened", "opened", false),
        ("reopen", None, "opened", "reopened", false),
        ("update", Some(GL_BEFORE), "opened", "updated", false),
        ("update", None, "opened", "edited", false),
        ("merge", None, "merged", "closed", true),
        ("close", None, "closed", "closed", false),
        ("approved", None, "opened", "approved", false),
        ("Unapproval", None, "opened", "unapproval", false),
    ];
    for &(action, oldrev, state, want_action, want_merged) in cases {
        let body = edited(path, |v| {
            set(v, "/object_attributes/action", json!(action));
            set(v, "/object_attributes/state", json!(state));
            if let Some(rev) = oldrev {
                v["object_attributes"]["oldrev"] = json!(rev);
            }
        });
        let e = &changes(GitLab, &body, "Merge Request Hook")[0];
        let want = PullRequest {
            number: 1,
            action: want_action.to_owned(),
            merged: want_merged,
            base_ref: "refs/heads/master".to_owned(),
            base_sha: None,
            head_sha: GL_AFTER.to_owned(),
        };
        assert_eq!(pr(e), &want, "{action} {oldrev:?}");
        assert_eq!(e.git_ref, "refs/heads/ms-viewport");
        assert_eq!(e.before, oldrev.unwrap_or(ZERO_SHA), "{action}");
        assert_eq!(e.after, GL_AFTER);
        assert_eq!(e.repository.as_str(), "example.com/gitlabhq/gitlab-test");
    }
    let e = one(GitLab, path, "Merge Request Hook");
    assert_eq!(e.occurred_at, ts("2013-12-03T17:23:34Z"));
    // GitLab's older time format.
    let e = one(
        GitLab,
        "gitlab/merge-request-update-commits.derived.json",
        "Merge Request Hook",
    );
    assert_eq!(e.occurred_at, ts("2013-12-03T17:30:00Z"));
    assert_eq!(pr(&e).action, "updated");
}

#[test]
fn gitlab_header_and_object_kind_must_agree() {
    let push = fixture("gitlab/push-event.json");
    let err = run(GitLab, &push, "Tag Push Hook").map_err(|e| e.field);
    assert_eq!(err, Err("object_kind".to_owned()));
    let err = run(
        GitLab,
        &fixture("gitlab/merge-request-event.json"),
        "Push Hook",
    );
    assert_eq!(err.map_err(|e| e.field), Err("object_kind".to_owned()));
    let ignored = run(GitLab, &push, "Note Hook");
    let reason = r#"gitlab event "Note Hook" is not a change"#;
    assert_eq!(ignored, Ok(Normalized::Ignored(reason.to_owned())));
}

/// An edit of a fixture's JSON, for a table of cases.
type Edit = fn(&mut Value);

/// GitLab's documented system-hook push: the same push as `gitlab/push-event.json`, one commit
/// listed without its files.
const GL_SYSTEM_PUSH: &str = "gitlab/system-hook-push.json";

#[test]
fn gitlab_system_hooks_push_tag_push_and_merge_request() {
    let e = one(GitLab, GL_SYSTEM_PUSH, "System Hook");
    // The listed commit has no file lists: its (empty) union is not the whole change.
    let want = (
        "refs/heads/master",
        GL_BEFORE,
        GL_AFTER,
        false,
        false,
        Some(1),
        vec![],
        false,
    );
    assert_eq!(push_key(&e), want);
    assert_eq!(e.repository.as_str(), "example.com/mike/diaspora");
    assert_eq!(e.source.provider.as_deref(), Some("gitlab"));
    assert_eq!(
        e.source.delivery_id.as_deref(),
        Some("13792a34-cac6-4fda-95a8-c58e00a3954e")
    );
    // The listed commit is not `after`: when the head was made is unknown.
    assert_eq!(e.occurred_at, None);

    let e = one(GitLab, "gitlab/system-hook-tag-push.json", "System Hook");
    let tag = "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7";
    let want = (
        "refs/tags/v1.0.0",
        ZERO_SHA,
        tag,
        true,
        false,
        Some(0),
        vec![],
        false,
    );
    assert_eq!(push_key(&e), want);
    assert_eq!(e.repository.as_str(), "example.com/jsmith/example");

    let e = one(
        GitLab,
        "gitlab/system-hook-merge-request.json",
        "System Hook",
    );
    let want = PullRequest {
        number: 1,
        action: "opened".to_owned(),
        merged: false,
        base_ref: "refs/heads/master".to_owned(),
        base_sha: None,
        head_sha: GL_AFTER.to_owned(),
    };
    assert_eq!(pr(&e), &want);
    assert_eq!(e.git_ref, "refs/heads/ms-viewport");
    assert_eq!(e.repository.as_str(), "example.com/gitlabhq/gitlab-test");
    assert_eq!(e.occurred_at, ts("2013-12-03T17:23:34Z"));
}

#[test]
fn gitlab_system_hook_and_project_hook_of_one_payload_give_one_change() {
    // (fixture, the event type a project hook sends it with, its object_kind)
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str)] = &[
        ("gitlab/push-event.json", "Push Hook", "push"),
        ("gitlab/push-event-all-listed.derived.json", "Push Hook", "push"),
        ("gitlab/push-branch-created.derived.json", "Push Hook", "push"),
        ("gitlab/push-branch-deleted.derived.json", "Push Hook", "push"),
        ("gitlab/tag-push-event.derived.json", "Tag Push Hook", "tag_push"),
        ("gitlab/merge-request-event.json", "Merge Request Hook", "merge_request"),
        ("gitlab/merge-request-merge.derived.json", "Merge Request Hook", "merge_request"),
        ("gitlab/merge-request-update-commits.derived.json", "Merge Request Hook", "merge_request"),
        (GL_SYSTEM_PUSH, "Push Hook", "push"),
        ("gitlab/system-hook-tag-push.json", "Tag Push Hook", "tag_push"),
        ("gitlab/system-hook-merge-request.json", "Merge Request Hook", "merge_request"),
    ];
    for &(path, event, kind) in cases {
        // GitLab's own payloads name the event in `object_kind` (and pushes again in
        // `event_name`); the documented system-hook pushes leave `object_kind` out.
        let body = edited(path, |v| v["object_kind"] = json!(kind));
        let project = changes(GitLab, &body, event);
        let system = changes(GitLab, &body, "System Hook");
        let as_documented = changes(GitLab, &fixture(path), "System Hook");
        assert_eq!(project[0].id, system[0].id, "{path}");
        assert_eq!(project, system, "{path}");
        assert_eq!(project, as_documented, "{path}");
    }
    // GitLab documents the same push, and the same merge request opening, for both kinds of
    // hook: one change each, whichever hook reports it.
    let pairs = [
        ("gitlab/push-event.json", "Push Hook", GL_SYSTEM_PUSH),
        (
            "gitlab/merge-request-event.json",
            "Merge Request Hook",
            "gitlab/system-hook-merge-request.json",
        ),
    ];
    for (project, event, system) in pairs {
        let project = one(GitLab, project, event);
        let system = one(GitLab, system, "System Hook");
        assert_eq!(project.id, system.id, "{event}");
    }
}

#[test]
fn gitlab_system_events_that_are_no_change_are_ignored_with_their_name() {
    let no_change = |event: &str| format!("gitlab system event {event:?} is not a change");
    let update = "gitlab system event \"repository_update\" duplicates the push and tag_push \
                  events of the same push (enable those on the system hook)";
    let cases: Vec<(Vec<u8>, String)> = vec![
        (
            fixture("gitlab/system-hook-project-create.json"),
            no_change("project_create"),
        ),
        (
            fixture("gitlab/system-hook-user-add-to-team.json"),
            no_change("user_add_to_team"),
        ),
        (
            fixture("gitlab/system-hook-member-approval.json"),
            no_change("gitlab_subscription_member_approval"),
        ),
        (
            fixture("gitlab/system-hook-repository-update.json"),
            update.to_owned(),
        ),
        (
            br#"{"event_name": "group_create", "group_id": 78}"#.to_vec(),
            no_change("group_create"),
        ),
        (
            br#"{"event_name": "key_create", "id": 4}"#.to_vec(),
            no_change("key_create"),
        ),
        // Two names, neither a change: no change, whichever is meant.
        (
            br#"{"event_name": "user_create", "object_kind": "user"}"#.to_vec(),
            no_change("user_create"),
        ),
    ];
    for (body, reason) in cases {
        assert_eq!(
            run(GitLab, &body, "System Hook"),
            Ok(Normalized::Ignored(reason)),
        );
    }
}

#[test]
fn gitlab_system_hooks_need_what_a_change_needs_and_nothing_more() {
    // Fields a project hook always sends may be missing from a system hook's push.
    let body = edited(GL_SYSTEM_PUSH, |v| {
        for key in [
            "repository",
            "commits",
            "total_commits_count",
            "checkout_sha",
        ] {
            v.as_object_mut().map(|o| o.remove(key));
        }
    });
    let e = &changes(GitLab, &body, "System Hook")[0];
    let want = (
        "refs/heads/master",
        GL_BEFORE,
        GL_AFTER,
        false,
        false,
        None,
        vec![],
        false,
    );
    assert_eq!(push_key(e), want);
    assert_eq!(e.repository.as_str(), "example.com/mike/diaspora");
    let body = edited(GL_SYSTEM_PUSH, |v| {
        v.as_object_mut().map(|o| o.remove("project"));
    });
    let e = &changes(GitLab, &body, "System Hook")[0];
    assert_eq!(e.repository.as_str(), "example.com/mike/diaspora");

    // What a change cannot be read without is still an error naming the field.
    #[rustfmt::skip]
    let cases: &[(&str, Edit, &str)] = &[
        (GL_SYSTEM_PUSH, |v| { v.as_object_mut().map(|o| o.remove("event_name")); }, "event_name"),
        (GL_SYSTEM_PUSH, |v| v["event_name"] = json!(7), "event_name"),
        (GL_SYSTEM_PUSH, |v| v["event_name"] = json!(""), "event_name"),
        (GL_SYSTEM_PUSH, |v| v["object_kind"] = json!("tag_push"), "object_kind"),
        (GL_SYSTEM_PUSH, |v| v["object_kind"] = json!(["push"]), "object_kind"),
        // A change named by one and denied by the other is no change to guess at.
        (GL_SYSTEM_PUSH, |v| {
            v["event_name"] = json!("project_create");
            v["object_kind"] = json!("push");
        }, "object_kind"),
        (GL_SYSTEM_PUSH, |v| v["ref"] = json!("master"), "ref"),
        (GL_SYSTEM_PUSH, |v| { v.as_object_mut().map(|o| o.remove("before")); }, "before"),
        (GL_SYSTEM_PUSH, |v| v["after"] = json!("da15608"), "after"),
        (GL_SYSTEM_PUSH, |v| v["commits"] = json!("none"), "commits"),
        (GL_SYSTEM_PUSH, |v| v["commits"][0]["added"] = json!(["../x"]), "commits[0].added[0]"),
        (GL_SYSTEM_PUSH, |v| v["total_commits_count"] = json!(-1), "total_commits_count"),
        (GL_SYSTEM_PUSH, |v| {
            v.as_object_mut().map(|o| { o.remove("project"); o.remove("repository") });
        }, "project.git_http_url"),
        ("gitlab/system-hook-merge-request.json", |v| v["object_attributes"]["iid"] = json!(null),
         "object_attributes.iid"),
        ("gitlab/system-hook-merge-request.json", |v| v["object_attributes"]["source_branch"] = json!("a b"),
         "object_attributes.source_branch"),
        // Neither name: no telling what the event is.
        ("gitlab/system-hook-merge-request.json", |v| v["object_kind"] = json!(null), "event_name"),
    ];
    for (i, &(path, edit, field)) in cases.iter().enumerate() {
        let body = edited(path, edit);
        let got = run(GitLab, &body, "System Hook").map_err(|e| e.field);
        assert_eq!(got, Err(field.to_owned()), "case {i}: {path}");
    }
}

// ---------------------------------------------------------------------------------------------
// Bitbucket.

const BB_OLD: &str = "1e65c05c1d5171631d92438a13901ca7dae9618c";
const BB_NEW: &str = "709d658dc5b6d6afcd46049c2f332ee3f515a67d";

#[test]
fn bitbucket_push() {
    let e = one(Bitbucket, "bitbucket/repo-push.json", "repo:push");
    let want = (
        "refs/heads/name-of-branch",
        BB_OLD,
        BB_NEW,
        false,
        false,
        Some(1),
        vec![],
        false,
    );
    assert_eq!(push_key(&e), want);
    // The sample's `links.html.href` is an API host, not the bitbucket.org web address.
    assert_eq!(
        e.repository.as_str(),
        "api.bitbucket.org/bitbucket/bitbucket"
    );
    assert_eq!(e.occurred_at, ts("2015-06-09T03:34:49Z"));
    assert_eq!(
        e.source.delivery_id.as_deref(),
        Some("afe9ba4a-cd26-47c9-9e1b-0e2c04d6b3a6")
    );
}

#[test]
fn bitbucket_push_with_several_changes_is_one_event_each() {
    let body = fixture("bitbucket/repo-push-several-changes.derived.json");
    let events = changes(Bitbucket, &body, "repo:push");
    let keys: Vec<_> = events.iter().map(push_key).collect();
    #[rustfmt::skip]
    let want = vec![
        ("refs/heads/name-of-branch", BB_OLD, BB_NEW, false, false, Some(1), vec![], false),
        ("refs/tags/v1.0.0", ZERO_SHA, BB_NEW, true, false, Some(0), vec![], false),
        ("refs/heads/old-feature", BB_OLD, ZERO_SHA, false, true, Some(0), vec![], true),
        // Forced and truncated: how many commits is unknown.
        ("refs/heads/rewritten", BB_OLD, "5e1c309dae7f45e0f39b1bf3ac3cd9db12e7d689", false, false,
         None, vec![], false),
    ];
    assert_eq!(keys, want);
    for e in &events {
        assert_eq!(e.repository.as_str(), "bitbucket.org/team_name/repo_name");
    }
    let mut ids: Vec<_> = events.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4);
}

#[test]
fn bitbucket_ping_and_empty_push() {
    let body = fixture("bitbucket/repo-push.json");
    assert_eq!(
        run(Bitbucket, &body, "diagnostics:ping"),
        Ok(Normalized::Ping)
    );
    let empty = edited("bitbucket/repo-push.json", |v| {
        set(v, "/push/changes", json!([]))
    });
    assert_eq!(
        run(Bitbucket, &empty, "repo:push"),
        Ok(Normalized::Changes(vec![]))
    );
}

#[test]
fn bitbucket_pull_request_actions() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, bool, &str)] = &[
        ("bitbucket/pull-request-created.json", "pullrequest:created", "opened", false, "d3022fc0ca3d"),
        ("bitbucket/pull-request-updated.derived.json", "pullrequest:updated", "updated", false, "9f3ba1c2d4e5"),
        ("bitbucket/pull-request-fulfilled.derived.json", "pullrequest:fulfilled", "closed", true, "d3022fc0ca3d"),
        ("bitbucket/pull-request-rejected.derived.json", "pullrequest:rejected", "closed", false, "d3022fc0ca3d"),
    ];
    for &(path, key, action, merged, head) in cases {
        let e = one(Bitbucket, path, key);
        let want = PullRequest {
            number: 1,
            action: action.to_owned(),
            merged,
            base_ref: "refs/heads/master".to_owned(),
            base_sha: Some("ce5965ddd289".to_owned()),
            head_sha: head.to_owned(),
        };
        assert_eq!(pr(&e), &want, "{path}");
        assert_eq!(e.git_ref, "refs/heads/branch2");
        // Abbreviated heads are no object id for `after`.
        assert_eq!((e.before.as_str(), e.after.as_str()), (ZERO_SHA, ZERO_SHA));
    }
    let e = one(
        Bitbucket,
        "bitbucket/pull-request-created.json",
        "pullrequest:created",
    );
    assert_eq!(e.occurred_at, ts("2015-04-06T15:23:38.205705Z"));
    let body = fixture("bitbucket/pull-request-created.json");
    let reason = r#"bitbucket event "pullrequest:approved" is not a change"#;
    let ignored = run(Bitbucket, &body, "pullrequest:approved");
    assert_eq!(ignored, Ok(Normalized::Ignored(reason.to_owned())));
}

// ---------------------------------------------------------------------------------------------
// Gitea.

const GT_ROOT: &str = "67b56589a45103f891bdee7c0546e5d40bc02001";
const GT_HEAD: &str = "48e773f892a831faa47c0a160d1b7f0cd369ae2a";

#[test]
fn gitea_pushes() {
    #[rustfmt::skip]
    let cases: &[(&str, PushKey<'_>)] = &[
        ("gitea/push-event.json",
         ("refs/heads/master", ZERO_SHA, GT_ROOT, true, false, Some(1), vec!["example"], false)),
        ("gitea/push-fast-forward.derived.json",
         ("refs/heads/master", GT_ROOT, GT_HEAD, false, false, Some(2),
          vec!["src/main.go", "example"], true)),
        // No `total_commits`: the list may have been cut at the server's feed limit.
        ("gitea/push-no-total.derived.json",
         ("refs/heads/master", GT_ROOT, GT_HEAD, false, false, Some(2),
          vec!["src/main.go", "example"], false)),
    ];
    for (path, want) in cases {
        let e = one(Gitea, path, "push");
        assert_eq!(&push_key(&e), want, "{path}");
        assert_eq!(e.repository.as_str(), "localhost/example/example");
    }
    let e = one(Gitea, "gitea/push-event.json", "push");
    assert_eq!(e.occurred_at, ts("2022-03-09T07:23:39Z"));
    assert_eq!(
        e.source.delivery_id.as_deref(),
        Some("f6266f16-1bf3-46a5-9ea4-602e06ead473")
    );
}

#[test]
fn gitea_pull_requests() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, bool, &str)] = &[
        ("gitea/pull-request-opened.derived.json", "opened", false, GT_HEAD),
        ("gitea/pull-request-synchronized.derived.json", "updated", false,
         "b1946ac92492d2347c6235b4d2611184a1e2b5c3"),
        ("gitea/pull-request-closed-merged.derived.json", "closed", true,
         "b1946ac92492d2347c6235b4d2611184a1e2b5c3"),
    ];
    for &(path, action, merged, head) in cases {
        let e = one(Gitea, path, "pull_request");
        let want = PullRequest {
            number: 2,
            action: action.to_owned(),
            merged,
            base_ref: "refs/heads/master".to_owned(),
            base_sha: Some(GT_ROOT.to_owned()),
            head_sha: head.to_owned(),
        };
        assert_eq!(pr(&e), &want, "{path}");
        assert_eq!(e.git_ref, "refs/heads/feature");
        assert_eq!((e.before.as_str(), e.after.as_str()), (ZERO_SHA, head));
        assert_eq!(e.repository.as_str(), "localhost/example/example");
    }
}

#[test]
fn gitea_event_headers() {
    let body = fixture("gitea/push-event.json");
    // Forgejo names its headers after itself.
    let forgejo = headers(&[("X-Forgejo-Event", "push")]);
    let got = normalize(Gitea, &forgejo, &body, received());
    assert!(
        matches!(got, Ok(Normalized::Changes(ref e)) if e.len() == 1),
        "{got:?}"
    );
    #[rustfmt::skip]
    let cases = [
        ("create", r#"gitea "create" events duplicate the push event"#),
        ("delete", r#"gitea "delete" events duplicate the push event"#),
        ("issues", r#"gitea event "issues" is not a change"#),
    ];
    for (event, reason) in cases {
        assert_eq!(
            run(Gitea, &body, event),
            Ok(Normalized::Ignored(reason.to_owned()))
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Across providers.

#[test]
fn the_same_push_from_two_providers_has_one_id() {
    let github = one(GitHub, "github/push_fast-forward.derived.json", "push");
    let gitea = one(Gitea, "gitea/push-same-as-github.derived.json", "push");
    assert_eq!(github.id, gitea.id);
    assert_eq!(
        (
            &github.repository,
            &github.git_ref,
            &github.before,
            &github.after
        ),
        (
            &gitea.repository,
            &gitea.git_ref,
            &gitea.before,
            &gitea.after
        )
    );
    assert_ne!(github.source, gitea.source);
    // ... and a different push has another.
    let other = one(Gitea, "gitea/push-fast-forward.derived.json", "push");
    assert_ne!(github.id, other.id);
}

#[test]
fn timestamps_in_every_provider_format() {
    let cases = [
        ("2019-05-15T15:20:31Z", "2019-05-15T15:20:31Z"),
        ("2011-12-12T14:27:31+02:00", "2011-12-12T12:27:31Z"),
        (
            "2015-04-06T15:23:38.179678+00:00",
            "2015-04-06T15:23:38.179678Z",
        ),
        ("2013-12-03 17:23:34 UTC", "2013-12-03T17:23:34Z"),
    ];
    for (given, want) in cases {
        let body = edited("github/push_fast-forward.derived.json", |v| {
            set(v, "/head_commit/timestamp", json!(given));
        });
        assert_eq!(
            changes(GitHub, &body, "push")[0].occurred_at,
            ts(want),
            "{given}"
        );
    }
    // An unreadable time is unknown, not an error.
    for given in [json!("yesterday"), json!(12), json!({"a": 1})] {
        let body = edited("github/push_fast-forward.derived.json", |v| {
            set(v, "/head_commit/timestamp", given.clone());
        });
        assert_eq!(
            changes(GitHub, &body, "push")[0].occurred_at,
            None,
            "{given}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input.

#[test]
fn malformed_bodies_and_missing_headers_are_errors() {
    let whole = fixture("github/push_fast-forward.derived.json");
    let truncated = whole[..whole.len() / 2].to_vec();
    let bomb = "[".repeat(10_000).into_bytes();
    let object_bomb = "{\"a\":".repeat(10_000).into_bytes();
    #[rustfmt::skip]
    let cases: Vec<(Provider, Option<&str>, Vec<u8>, &str)> = vec![
        (GitHub, Some("push"), truncated, "body"),
        (GitHub, Some("push"), bomb.clone(), "body"),
        (GitLab, Some("Push Hook"), bomb.clone(), "body"),
        (GitLab, Some("System Hook"), bomb, "body"),
        (Bitbucket, Some("repo:push"), object_bomb.clone(), "body"),
        (Gitea, Some("push"), object_bomb, "body"),
        (GitHub, Some("push"), Vec::new(), "body"),
        (GitHub, Some("push"), b"[1, 2]".to_vec(), "body"),
        (GitHub, Some("push"), b"\xff\xfe".to_vec(), "body"),
        (GitHub, None, whole, "X-GitHub-Event"),
        (GitLab, None, fixture("gitlab/push-event.json"), "X-Gitlab-Event"),
        (Bitbucket, None, fixture("bitbucket/repo-push.json"), "X-Event-Key"),
        (Gitea, None, fixture("gitea/push-event.json"), "X-Gitea-Event"),
    ];
    for (i, (provider, event, body, field)) in cases.into_iter().enumerate() {
        let got = normalize(provider, &headers_for(provider, event), &body, received());
        assert_eq!(
            got.map_err(|e| e.field),
            Err(field.to_owned()),
            "case {i}: {provider:?}"
        );
    }
}

#[test]
fn a_repeated_key_that_is_read_is_refused_and_one_that_is_not_is_ignored() {
    // A JSON object that names a member twice has no one meaning (RFC 8259 §4): which `ref` a
    // push moved must not depend on which of two a parser happens to keep.
    let whole = String::from_utf8(fixture("github/push_fast-forward.derived.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let twice = whole.replacen('{', r#"{"ref": "refs/heads/other", "#, 1);
    let got = normalize(
        GitHub,
        &headers_for(GitHub, Some("push")),
        twice.as_bytes(),
        received(),
    );
    let err = got
        .err()
        .unwrap_or_else(|| panic!("a repeated `ref` was accepted"));
    assert_eq!(err.field, "body");
    assert!(err.message.contains("duplicate field `ref`"), "{err}");
    // A member no normalizer reads may repeat, and may nest deeper than serde_json's limit for
    // the values it builds: it is skipped, not built.
    let unread = whole.replacen('{', r#"{"sender_extra": 1, "sender_extra": 2, "#, 1);
    assert_eq!(changes(GitHub, unread.as_bytes(), "push").len(), 1);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let nested = whole.replacen('{', &format!(r#"{{"sender_extra": {deep}, "#), 1);
    let got = normalize(
        GitHub,
        &headers_for(GitHub, Some("push")),
        nested.as_bytes(),
        received(),
    );
    assert!(
        matches!(&got, Ok(Normalized::Changes(_))) || matches!(&got, Err(e) if e.field == "body"),
        "{got:?}"
    );
}

#[test]
fn bad_fields_are_errors_naming_the_json_path() {
    const GH_PUSH: &str = "github/push_fast-forward.derived.json";
    const GH_PR: &str = "github/pull_request_synchronize.payload.json";
    const GL_MR: &str = "gitlab/merge-request-event.json";
    const BB_PUSH: &str = "bitbucket/repo-push-several-changes.derived.json";
    const BB_PR: &str = "bitbucket/pull-request-created.json";
    // (provider, event, fixture, JSON pointer, new value as JSON, the field the error names)
    #[rustfmt::skip]
    let cases: &[(Provider, &str, &str, &str, &str, &str)] = &[
        (GitHub, "push", GH_PUSH, "/ref", r#""main""#, "ref"),
        (GitHub, "push", GH_PUSH, "/ref", r#""refs/heads/a..b""#, "ref"),
        (GitHub, "push", GH_PUSH, "/ref", "7", "ref"),
        (GitHub, "push", GH_PUSH, "/ref", "null", "ref"),
        (GitHub, "push", GH_PUSH, "/commits/0/added/0", r#""../etc/passwd""#, "commits[0].added[0]"),
        (GitHub, "push", GH_PUSH, "/commits/1/removed/0", r#""a/../../b""#, "commits[1].removed[0]"),
        (GitHub, "push", GH_PUSH, "/commits/0/modified", r#"{"a": 1}"#, "commits[0].modified"),
        (GitHub, "push", GH_PUSH, "/after", r#""xyz""#, "after"),
        (GitHub, "push", GH_PUSH, "/after", r#""ec26c3e57ca3a959ca5aad62de7213c562f8c82g""#, "after"),
        (GitHub, "push", GH_PUSH, "/commits", r#""x""#, "commits"),
        (GitHub, "push", GH_PUSH, "/forced", r#""no""#, "forced"),
        (GitHub, "push", GH_PUSH, "/repository", r#""x""#, "repository"),
        (GitHub, "push", GH_PUSH, "/repository/clone_url", r#""/etc""#, "repository.clone_url"),
        (GitHub, "push", GH_PUSH, "/repository/clone_url", r#""ftp://h/x""#, "repository.clone_url"),
        // Created and deleted at once.
        (GitHub, "push", "github/push_payload.json", "/before", ZERO_JSON, "after"),
        (GitHub, "pull_request", GH_PR, "/pull_request/head/sha", "null", "pull_request.head.sha"),
        (GitHub, "pull_request", GH_PR, "/pull_request/head/ref", r#""a b""#, "pull_request.head.ref"),
        (GitHub, "pull_request", GH_PR, "/pull_request/base/sha", "[]", "pull_request.base.sha"),
        (GitHub, "pull_request", GH_PR, "/pull_request", r#""x""#, "pull_request"),
        (GitHub, "pull_request", GH_PR, "/number", "-2", "number"),
        (GitHub, "pull_request", GH_PR, "/number", "2.5", "number"),
        (GitHub, "pull_request", GH_PR, "/action", r#""""#, "action"),
        (GitHub, "pull_request", GH_PR, "/before", r#""f95f852""#, "before"),
        (GitLab, "Push Hook", "gitlab/push-event.json", "/ref", r#""main""#, "ref"),
        (GitLab, "Push Hook", "gitlab/push-event.json", "/total_commits_count", r#""4""#, "total_commits_count"),
        (GitLab, "Push Hook", "gitlab/push-event.json", "/object_kind", "null", "object_kind"),
        (GitLab, "Merge Request Hook", GL_MR, "/object_attributes/iid", r#""1""#, "object_attributes.iid"),
        (GitLab, "Merge Request Hook", GL_MR, "/object_attributes/last_commit/id", r#""not-hex""#, "object_attributes.last_commit.id"),
        (GitLab, "Merge Request Hook", GL_MR, "/object_attributes/action", "null", "object_attributes.action"),
        (Bitbucket, "repo:push", BB_PUSH, "/push/changes/1/new/target/hash", r#""xyz""#, "push.changes[1].new.target.hash"),
        (Bitbucket, "repo:push", BB_PUSH, "/push/changes/2/old/target", "null", "push.changes[2].old.target.hash"),
        (Bitbucket, "repo:push", BB_PUSH, "/push/changes/0/new/type", r#""bookmark""#, "push.changes[0].new.type"),
        (Bitbucket, "repo:push", BB_PUSH, "/push/changes/3/new/name", r#""x~1""#, "push.changes[3].new.name"),
        (Bitbucket, "repo:push", BB_PUSH, "/push/changes/3/truncated", "1", "push.changes[3].truncated"),
        (Bitbucket, "repo:push", BB_PUSH, "/push/changes", "{}", "push.changes"),
        (Bitbucket, "pullrequest:created", BB_PR, "/pullrequest/source/commit/hash", r#""abc""#, "pullrequest.source.commit.hash"),
        (Bitbucket, "pullrequest:created", BB_PR, "/pullrequest/id", "null", "pullrequest.id"),
        (Gitea, "push", "gitea/push-event.json", "/before", r#""""#, "before"),
        (Gitea, "push", "gitea/push-event.json", "/commits/0/added/0", r#""a\u0000b""#, "commits[0].added[0]"),
        (Gitea, "pull_request", "gitea/pull-request-opened.derived.json", "/pull_request/base/ref", r#""""#, "pull_request.base.ref"),
    ];
    for &(provider, event, path, pointer, new, field) in cases {
        let new: Value = serde_json::from_str(new).unwrap_or_else(|e| panic!("{new}: {e}"));
        let body = edited(path, |v| set(v, pointer, new));
        let got = run(provider, &body, event).map_err(|e| e.field);
        assert_eq!(got, Err(field.to_owned()), "{path} {pointer}");
    }
}

#[test]
fn standard_deliveries_are_not_provider_payloads() {
    let got = normalize(Provider::Standard, &HeaderMap::new(), b"{}", received());
    assert_eq!(got.map_err(|e| e.field), Err("provider".to_owned()));
}

// ---------------------------------------------------------------------------------------------
// Properties: no input panics.

/// Every event type any provider knows, and then some.
#[rustfmt::skip]
const EVENT_TYPES: &[&str] = &[
    "push", "pull_request", "ping", "create", "delete", "issue_comment", "Push Hook",
    "Tag Push Hook", "Merge Request Hook", "Note Hook", "System Hook", "repo:push",
    "pullrequest:created", "pullrequest:updated", "pullrequest:fulfilled", "pullrequest:rejected", "diagnostics:ping", "",
];

/// The keys the normalizers read, so that random JSON reaches their deeper paths.
#[rustfmt::skip]
const KEYS: &[&str] = &[
    "ref", "before", "after", "commits", "added", "modified", "removed", "forced", "repository",
    "clone_url", "head_commit", "timestamp", "pull_request", "number", "action", "head", "base",
    "sha", "merged", "object_kind", "project", "git_http_url", "object_attributes", "iid",
    "oldrev", "last_commit", "id", "source_branch", "target_branch", "total_commits_count",
    "total_commits", "push", "changes", "new", "old", "type", "name", "target", "hash", "links",
    "html", "href", "truncated", "pullrequest", "source", "destination", "branch", "commit",
];

fn scalar() -> impl Gen<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::from)),
        proptest::sample::select(vec![
            ZERO_SHA,
            GH_HEAD,
            "d3022fc0ca3d",
            "refs/heads/main",
            "refs/tags/v1",
            "main",
            "branch",
            "tag",
            "push",
            "merge_request",
            "tag_push",
            "open",
            "update",
            "merge",
            "https://github.com/a/b.git",
            "../x",
            "/",
            "2019-05-15T15:20:31Z",
        ])
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Gen<Value = Value> {
    scalar().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..8).prop_map(
                |pairs| {
                    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }
            ),
        ]
    })
}

fn event_type() -> impl Gen<Value = String> {
    prop_oneof![
        proptest::sample::select(EVENT_TYPES).prop_map(str::to_owned),
        "[ -~]{0,24}",
    ]
}

/// Calls every provider with the same event type in each provider's header; any answer is fine.
fn normalize_all(event: &str, body: &[u8]) {
    let Ok(value) = HeaderValue::from_str(event) else {
        return;
    };
    let mut map = HeaderMap::new();
    for provider in PROVIDERS {
        map.insert(event_header(provider), value.clone());
    }
    for provider in PROVIDERS {
        let _ = normalize(provider, &map, body, received());
    }
}

/// Replaces the node that `path` picks out (each step an index into an object's members or an
/// array's elements, modulo their count) by `new`.
fn replace_at(value: &mut Value, path: &[usize], new: Value) {
    let next = match (path.split_first(), &mut *value) {
        (None, slot) => {
            *slot = new;
            return;
        }
        (Some((i, _)), Value::Object(map)) if !map.is_empty() => {
            let n = map.len();
            map.values_mut().nth(i % n)
        }
        (Some((i, _)), Value::Array(items)) if !items.is_empty() => {
            let n = items.len();
            items.get_mut(i % n)
        }
        (Some(_), slot) => {
            *slot = new;
            return;
        }
    };
    if let Some(child) = next {
        replace_at(child, &path[1..], new);
    }
}

/// A byte-level mutation of a body.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
}

fn mutation() -> impl Gen<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
    ]
}

fn apply(body: &mut Vec<u8>, m: &Mutation) {
    let n = body.len().max(1);
    match *m {
        Mutation::Flip(i, b) => {
            if let Some(byte) = body.get_mut(i % n) {
                *byte ^= b;
            }
        }
        Mutation::Truncate(i) => body.truncate(i % n),
        Mutation::Insert(i, b) => body.insert(i % (body.len() + 1), b),
        Mutation::Remove(i) => {
            if !body.is_empty() {
                body.remove(i % n);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(
        event in event_type(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        normalize_all(&event, &body);
    }

    #[test]
    fn arbitrary_json_never_panics(event in event_type(), value in json_value()) {
        let body = serde_json::to_vec(&value).unwrap_or_default();
        normalize_all(&event, &body);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        case in proptest::sample::select(CASES),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let (provider, path, event) = case;
        let mut body = fixture(path);
        for m in &mutations {
            apply(&mut body, m);
        }
        let _ = run(provider, &body, event);
    }

    #[test]
    fn fixtures_with_a_replaced_node_never_panic(
        case in proptest::sample::select(CASES),
        path in proptest::collection::vec(any::<usize>(), 0..8),
        new in json_value(),
    ) {
        let (provider, file, event) = case;
        let mut value = fixture_json(file);
        replace_at(&mut value, &path, new);
        let body = serde_json::to_vec(&value).unwrap_or_default();
        // Whatever comes out as a change is a valid, sealed event.
        if let Ok(Normalized::Changes(events)) = run(provider, &body, event) {
            for e in events {
                prop_assert_eq!(e.validate(), Ok(()));
                prop_assert_eq!(&e.id, &e.derive_id());
            }
        }
    }
}
