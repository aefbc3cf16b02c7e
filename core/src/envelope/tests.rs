//! EventBridge envelopes of every producer to change events, snapshot-tested on fixtures.

//! A snapshot of every fixture, each mapping and each error in a table (one line a case), the
//! ids shared with the other sources, and properties: no input panics.

use proptest::prelude::{Just, ProptestConfig, any, prop_assert_eq, prop_oneof, proptest};
use proptest::strategy::Strategy as Gen;
use serde_json::{Value, json};

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/aws");

const REF_CREATED: &str = "codecommit_referenceCreated.derived.json";
const REF_UPDATED: &str = "codecommit_referenceUpdated.derived.json";
const REF_DELETED: &str = "codecommit_referenceDeleted.derived.json";
const PR_CREATED: &str = "codecommit_pullRequestCreated.derived.json";
const PR_UPDATED: &str = "codecommit_pullRequestSourceBranchUpdated.derived.json";
const PR_CLOSED: &str = "codecommit_pullRequestStatusChanged-closed.derived.json";
const PR_MERGED: &str = "codecommit_pullRequestMergeStatusUpdated.derived.json";
const MOTO: &str = "moto_sqs_body_from_eventbridge.derived.json";
const GH_PUSH: &str = "github-quickstart_push.derived.json";
const GH_PR: &str = "github-quickstart_pull_request.derived.json";
const CHANGE: &str = "switchyard-change.derived.json";

/// The repository of every CodeCommit fixture.
const REPO: &str = "git-codecommit.us-east-2.amazonaws.com/v1/repos/MyDemoRepo";
// The (made-up) commits of the fixtures.
const OLD: &str = "3e5983d1c0a1b2c3d4e5f60718293a4b5c6d7e8f";
const MERGE: &str = "7f0103f2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e3";
const SRC: &str = "26a8f2e4d6c8b0a2f4e6d8c0b2a4f6e8d0c2b4a6";
const TAG: &str = "9c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d";
const TAG2: &str = "b4e1c7a9d3f5e2b8c6a0d4f7e1b3c5a9d2f6e8b0";
const PR_SRC1: &str = "2774290a5c3e1f7b9d0e2c4a6f8b1d3e5c7a9f0b";
const PR_SRC2: &str = "64875001b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3";
const PR_DST: &str = "12241970c2e4a6b8d0f2c4e6a8b0d2f4c6e8a0b2";
const ZERO_JSON: &str = "\"0000000000000000000000000000000000000000\"";

/// What a fixture gives.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    Changes(usize),
    Unknown,
    Fails(&'static str),
}
use Outcome::{Changes, Fails};

/// Every fixture and what it gives. The docs' samples and the moto capture carry
/// placeholder ids, refused naming the field.
#[rustfmt::skip]
const CASES: &[(&str, Outcome)] = &[
    ("codecommit_referenceCreated.json", Fails("detail.commitId")),
    ("codecommit_referenceUpdated.json", Fails("detail.commitId")),
    ("moto_sqs_body_from_eventbridge.json", Fails("detail.commitId")),
    (REF_CREATED, Changes(1)),
    (REF_UPDATED, Changes(1)),
    (REF_DELETED, Changes(1)),
    ("codecommit_referenceCreated-tag.derived.json", Changes(1)),
    ("codecommit_referenceUpdated-tag.derived.json", Changes(1)),
    ("codecommit_referenceDeleted-tag.derived.json", Changes(1)),
    (MOTO, Changes(1)),
    (PR_CREATED, Changes(1)),
    (PR_UPDATED, Changes(1)),
    (PR_CLOSED, Changes(1)),
    (PR_MERGED, Changes(1)),
    (GH_PUSH, Changes(1)),
    (GH_PR, Changes(1)),
    ("github-quickstart_ping.derived.json", Outcome::Unknown),
    (CHANGE, Changes(1)),
];

fn received() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap_or_else(|e| panic!("{e}"))
}

fn ts(text: &str) -> Option<Timestamp> {
    Some(text.parse().unwrap_or_else(|e| panic!("{text}: {e}")))
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// An edit of a fixture: the JSON pointer of a member or element, and its new value as JSON
/// (`None` removes it).
type Edit<'a> = (&'a str, Option<&'a str>);

/// A fixture with edits applied.
fn edited(name: &str, edits: &[Edit<'_>]) -> Vec<u8> {
    let mut value = fixture_json(name);
    for &(pointer, new) in edits {
        let (parent, key) = pointer
            .rsplit_once('/')
            .unwrap_or_else(|| panic!("{pointer}"));
        let new: Option<Value> =
            new.map(|n| serde_json::from_str(n).unwrap_or_else(|e| panic!("{n}: {e}")));
        match value.pointer_mut(parent) {
            Some(Value::Object(map)) => match new {
                Some(v) => {
                    map.insert(key.to_owned(), v);
                }
                None => {
                    map.remove(key);
                }
            },
            Some(Value::Array(items)) => {
                let i: usize = key.parse().unwrap_or_else(|e| panic!("{pointer}: {e}"));
                match new {
                    Some(v) => items[i] = v,
                    None => {
                        items.remove(i);
                    }
                }
            }
            _ => panic!("no {parent}"),
        }
    }
    serde_json::to_vec(&value).unwrap_or_else(|e| panic!("{e}"))
}

fn run(body: &[u8]) -> Result<Envelope, EnvelopeError> {
    parse(body, received())
}

/// The one change event of a body that must have one.
fn one(body: &[u8]) -> ChangeEvent {
    match run(body) {
        Ok(Envelope::Changes { mut changes, .. }) if changes.len() == 1 => changes.remove(0),
        other => panic!("expected one change, got {other:?}"),
    }
}

fn snapshot_text(result: &Result<Envelope, EnvelopeError>) -> String {
    match result {
        Ok(Envelope::Changes { event_id, changes }) => format!(
            "changes of event {event_id}:\n{}",
            serde_json::to_string_pretty(changes).unwrap_or_else(|e| panic!("{e}"))
        ),
        Ok(Envelope::Unknown { event_id, reason }) => {
            format!("unknown (event {event_id:?}): {reason}")
        }
        Err(e) => format!("error: {}", e.hinted()),
    }
}

// -----------------------------------------------------------------------------------------
// Fixtures.

#[test]
fn every_fixture_snapshot() {
    for &(name, outcome) in CASES {
        let result = run(&fixture(name));
        match (&result, outcome) {
            (Ok(Envelope::Changes { changes, .. }), Changes(n)) => {
                assert_eq!(changes.len(), n, "{name}")
            }
            (Ok(Envelope::Unknown { .. }), Outcome::Unknown) => {}
            (Err(e), Fails(field)) => assert_eq!(e.field, field, "{name}"),
            _ => panic!("{name}: expected {outcome:?}, got {result:?}"),
        }
        let snapshot = name.trim_end_matches(".json").replace('.', "__");
        insta::assert_snapshot!(snapshot, snapshot_text(&result));
    }
}

#[test]
fn every_fixture_is_a_case() {
    let dir = std::fs::read_dir(FIXTURES).unwrap_or_else(|e| panic!("{FIXTURES}: {e}"));
    for entry in dir {
        let name = entry.unwrap_or_else(|e| panic!("{e}")).file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".json") {
            assert!(
                CASES.iter().any(|c| c.0 == name),
                "{name} has no case in CASES"
            );
        }
    }
}

// -----------------------------------------------------------------------------------------
// CodeCommit.

#[test]
fn codecommit_reference_changes_are_pushes_without_paths() {
    // (fixture, ref, before, after, created, deleted, the event's time)
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, &str, bool, bool, &str)] = &[
        (REF_CREATED, "refs/heads/myBranch", ZERO_SHA, OLD, true, false, "2019-06-12T10:23:43Z"),
        (REF_UPDATED, "refs/heads/myBranch", OLD, MERGE, false, false, "2019-06-12T10:23:43Z"),
        (REF_DELETED, "refs/heads/myBranch", SRC, ZERO_SHA, false, true, "2019-06-12T10:23:43Z"),
        ("codecommit_referenceCreated-tag.derived.json", "refs/tags/v1.0.0", ZERO_SHA, TAG, true, false, "2019-06-12T10:25:10Z"),
        ("codecommit_referenceUpdated-tag.derived.json", "refs/tags/v1.0.0", TAG, TAG2, false, false, "2019-06-12T10:26:02Z"),
        ("codecommit_referenceDeleted-tag.derived.json", "refs/tags/v1.0.0", TAG2, ZERO_SHA, false, true, "2019-06-12T10:27:31Z"),
        // No `account`; `referenceName` says "main" but the full name wins.
        (MOTO, "refs/heads/myBranch", OLD, MERGE, false, false, "2026-11-26T10:31:25Z"),
    ];
    for &(name, git_ref, before, after, created, deleted, time) in cases {
        let body = fixture(name);
        let e = one(&body);
        let got = (
            e.git_ref.as_str(),
            e.before.as_str(),
            e.after.as_str(),
            e.created,
            e.deleted,
        );
        assert_eq!(got, (git_ref, before, after, created, deleted), "{name}");
        assert_eq!(e.kind, ChangeKind::Push, "{name}");
        assert_eq!(e.repository.as_str(), REPO, "{name}");
        assert!(
            e.changed_paths.is_empty() && !e.changed_paths_complete,
            "{name}"
        );
        assert_eq!((e.commit_count, &e.pull_request), (None, &None), "{name}");
        assert_eq!(
            (e.occurred_at, e.received_at),
            (ts(time), received()),
            "{name}"
        );
        let id = fixture_json(name)["id"].as_str().map(str::to_owned);
        let want = Source {
            kind: SourceKind::Eventbridge,
            provider: Some("codecommit".to_owned()),
            delivery_id: id,
        };
        assert_eq!(e.source, want, "{name}");
        assert_eq!(e.id, e.derive_id(), "{name}");
    }
}

#[test]
fn the_repository_region_is_the_arns_else_the_events() {
    // (fixture, edits, the repository id)
    #[rustfmt::skip]
    let cases: &[(&str, &[Edit<'_>], &str)] = &[
        // moto stamps its own region (us-east-1); the ARN names us-east-2.
        (MOTO, &[], REPO),
        (REF_CREATED, &[("/region", Some(r#""eu-west-1""#))], REPO),
        (REF_CREATED, &[("/resources", Some("[]")), ("/region", Some(r#""eu-west-1""#))], "git-codecommit.eu-west-1.amazonaws.com/v1/repos/MyDemoRepo"),
        (REF_CREATED, &[("/resources", None), ("/region", Some(r#""EU-West-1""#))], "git-codecommit.eu-west-1.amazonaws.com/v1/repos/MyDemoRepo"),
        (REF_CREATED, &[("/resources", Some(r#"["arn:aws-cn:codecommit:cn-north-1:123456789012:MyDemoRepo"]"#))], "git-codecommit.cn-north-1.amazonaws.com/v1/repos/MyDemoRepo"),
        (PR_CREATED, &[("/resources", None), ("/region", Some(r#""ap-south-1""#))], "git-codecommit.ap-south-1.amazonaws.com/v1/repos/MyDemoRepo"),
        (PR_CREATED, &[("/detail/repositoryNames", None), ("/detail/repositoryName", Some(r#""MyDemoRepo""#))], REPO),
    ];
    for (i, &(name, edits, repository)) in cases.iter().enumerate() {
        let e = one(&edited(name, edits));
        assert_eq!(e.repository.as_str(), repository, "case {i}: {name}");
    }
}

/// A pull-request case: fixture, edits, number, action, merged, head sha, base sha.
type PullCase<'a> = (
    &'a str,
    &'a [Edit<'a>],
    u64,
    &'a str,
    bool,
    &'a str,
    Option<&'a str>,
);

#[test]
fn codecommit_pull_requests() {
    #[rustfmt::skip]
    let cases: &[PullCase<'_>] = &[
        (PR_CREATED, &[], 1, "opened", false, PR_SRC1, Some(PR_DST)),
        (PR_UPDATED, &[], 1, "updated", false, PR_SRC2, Some(PR_DST)),
        (PR_CLOSED, &[], 1, "closed", false, PR_SRC2, Some(PR_DST)),
        (PR_MERGED, &[], 1, "closed", true, PR_SRC2, Some(PR_DST)),
        (PR_CLOSED, &[("/detail/pullRequestStatus", Some(r#""Open""#))], 1, "reopened", false, PR_SRC2, Some(PR_DST)),
        (PR_CLOSED, &[("/detail/pullRequestStatus", Some(r#""OPEN""#))], 1, "reopened", false, PR_SRC2, Some(PR_DST)),
        (PR_CLOSED, &[("/detail/pullRequestStatus", Some(r#""CLOSED""#))], 1, "closed", false, PR_SRC2, Some(PR_DST)),
        // The status change that comes with a merge.
        (PR_CLOSED, &[("/detail/isMerged", Some(r#""True""#))], 1, "closed", true, PR_SRC2, Some(PR_DST)),
        (PR_MERGED, &[("/detail/isMerged", Some(r#""False""#))], 1, "pullrequestmergestatusupdated", false, PR_SRC2, Some(PR_DST)),
        (PR_CREATED, &[("/detail/event", Some(r#""pullRequestApprovalStateChanged""#))], 1, "pullrequestapprovalstatechanged", false, PR_SRC1, Some(PR_DST)),
        (PR_CREATED, &[("/detail/event", Some(r#""pullRequestApprovalRuleCreated""#))], 1, "pullrequestapprovalrulecreated", false, PR_SRC1, Some(PR_DST)),
        (PR_MERGED, &[("/detail/isMerged", Some("true"))], 1, "closed", true, PR_SRC2, Some(PR_DST)),
        (PR_CREATED, &[("/detail/isMerged", None)], 1, "opened", false, PR_SRC1, Some(PR_DST)),
        (PR_CREATED, &[("/detail/pullRequestId", Some(r#""227""#))], 227, "opened", false, PR_SRC1, Some(PR_DST)),
        (PR_CREATED, &[("/detail/pullRequestId", Some("227"))], 227, "opened", false, PR_SRC1, Some(PR_DST)),
        (PR_CREATED, &[("/detail/destinationCommit", None)], 1, "opened", false, PR_SRC1, None),
        (PR_CREATED, &[("/detail/sourceCommit", Some(r#""2774290A5C3E1F7B9D0E2C4A6F8B1D3E5C7A9F0B""#))], 1, "opened", false, PR_SRC1, Some(PR_DST)),
    ];
    for (i, &(name, edits, number, action, merged, head, base)) in cases.iter().enumerate() {
        let e = one(&edited(name, edits));
        let pr = e
            .pull_request
            .as_ref()
            .unwrap_or_else(|| panic!("case {i}: no pull_request"));
        let got = (
            pr.number,
            pr.action.as_str(),
            pr.merged,
            pr.head_sha.as_str(),
            pr.base_sha.as_deref(),
        );
        assert_eq!(
            got,
            (number, action, merged, head, base),
            "case {i}: {name}"
        );
        assert_eq!(e.kind, ChangeKind::PullRequest, "case {i}");
        assert_eq!(
            (e.git_ref.as_str(), pr.base_ref.as_str()),
            ("refs/heads/test-branch", "refs/heads/master"),
            "case {i}"
        );
        assert_eq!(
            (e.before.as_str(), e.after.as_str()),
            (ZERO_SHA, head),
            "case {i}"
        );
        assert!(!e.created && !e.deleted, "case {i}");
        assert!(
            e.changed_paths.is_empty() && !e.changed_paths_complete,
            "case {i}"
        );
        assert_eq!(e.repository.as_str(), REPO, "case {i}");
        assert_eq!(e.source.provider.as_deref(), Some("codecommit"), "case {i}");
    }
}

#[test]
fn a_merge_reported_twice_is_one_change() {
    let merge_status = one(&fixture(PR_MERGED));
    let status = one(&edited(
        PR_CLOSED,
        &[("/detail/isMerged", Some(r#""True""#))],
    ));
    assert_eq!(merge_status.id, status.id);
    let closed = one(&fixture(PR_CLOSED));
    let opened = one(&fixture(PR_CREATED));
    assert_eq!(closed.id, status.id, "closing is one change, merged or not");
    assert_ne!(opened.id, closed.id);
}

#[test]
fn a_codecommit_push_and_the_same_push_polled_have_one_id() {
    let from_event = one(&fixture(REF_UPDATED));
    let polled = format!(
        r#"{{"schema":"switchyard.change/v1",
        "repository":"https://git-codecommit.us-east-2.amazonaws.com/v1/repos/MyDemoRepo",
        "kind":"push","ref":"refs/heads/myBranch","before":"{OLD}","after":"{MERGE}",
        "changed_paths":["a.txt"],"source":{{"kind":"poll"}}}}"#
    );
    let manual = Source {
        kind: SourceKind::Manual,
        provider: None,
        delivery_id: None,
    };
    let polled = ChangeEvent::from_json(polled.as_bytes(), manual);
    assert_eq!(polled.map(|e| e.id), Ok(from_event.id));
}

// -----------------------------------------------------------------------------------------
// GitHub and switchyard.change/v1.

#[test]
fn github_quickstart_events_are_normalized_as_the_receiver_does() {
    // (envelope fixture, the GitHub payload it wraps, the event name)
    let cases = [
        (GH_PUSH, "push_payload.json", "push"),
        (GH_PR, "pull_request_opened.payload.json", "pull_request"),
    ];
    for (name, payload, event) in cases {
        let path = format!("{FIXTURES}/../github/{payload}");
        let payload = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut headers = HeaderMap::new();
        headers.insert("x-github-event", HeaderValue::from_static(event));
        let webhook = providers::normalize(Provider::GitHub, &headers, &payload, received());
        let Ok(Normalized::Changes(webhook)) = webhook else {
            panic!("{name}: {webhook:?}");
        };
        let Ok(Envelope::Changes { event_id, changes }) = run(&fixture(name)) else {
            panic!("{name}: no changes");
        };
        assert_eq!(changes.len(), webhook.len(), "{name}");
        for (mut ours, theirs) in changes.into_iter().zip(webhook) {
            let want = Source {
                kind: SourceKind::Eventbridge,
                provider: Some("github".to_owned()),
                delivery_id: Some(event_id.clone()),
            };
            assert_eq!(ours.source, want, "{name}");
            assert_eq!(ours.id, ours.derive_id(), "{name}");
            ours.source = theirs.source.clone();
            assert_eq!(ours, theirs, "{name}: the same event as the webhook's");
        }
    }
}

#[test]
fn switchyard_change_events_take_this_queue_as_their_source() {
    let body = edited(
        CHANGE,
        &[(
            "/detail/source",
            Some(r#"{"kind":"webhook","provider":"github","delivery_id":"x"}"#),
        )],
    );
    let e = one(&body);
    let want = Source {
        kind: SourceKind::Eventbridge,
        provider: Some("com.example.git-mirror".to_owned()),
        delivery_id: Some("6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b".to_owned()),
    };
    assert_eq!(e.source, want);
    assert_eq!(e.received_at, received());
    assert_eq!(e.occurred_at, ts("2026-11-26T10:00:00Z"));
    assert_eq!(e.repository.as_str(), "git.example.com/acme/api");
    assert_eq!((e.before.as_str(), e.after.as_str()), (OLD, MERGE));
    assert_eq!(e.changed_paths, ["src/lib.rs", "README.md"]);
    // A producer may give the id, if it is the derived one.
    let with_id = edited(CHANGE, &[("/detail/id", Some(&format!("{:?}", e.id)))]);
    assert_eq!(one(&with_id).id, e.id);
    // Any producer: the source does not matter.
    let other = edited(CHANGE, &[("/source", Some(r#""aws.codecommit""#))]);
    assert_eq!(one(&other).id, e.id);
}

// -----------------------------------------------------------------------------------------
// Unknown events and errors.

#[test]
fn well_formed_events_that_are_no_change_are_unknown() {
    // (fixture, edits, words the reason has)
    #[rustfmt::skip]
    let cases: &[(&str, &[Edit<'_>], &str)] = &[
        (REF_CREATED, &[("/detail/event", Some(r#""unreferencedMergeCommitCreated""#))], "\"unreferencedMergeCommitCreated\" is no ref change"),
        (REF_CREATED, &[("/detail-type", Some(r#""CodeCommit Comment on Commit""#)), ("/detail/event", Some(r#""commentOnCommitCreated""#))], "\"CodeCommit Comment on Commit\" are not changes"),
        (REF_CREATED, &[("/detail-type", Some(r#""CodeCommit Approval Rule Template Change""#))], "are not changes switchyard knows"),
        (REF_CREATED, &[("/detail/referenceType", Some(r#""commit""#))], "\"commit\" is neither a branch nor a tag"),
        // The AWS docs' sample of pullRequestMergeStatusUpdated misspells the detail-type.
        (PR_MERGED, &[("/detail-type", Some(r#""CodeCommit PullRequest State Change""#))], "are not changes switchyard knows"),
        (REF_CREATED, &[("/source", Some(r#""aws.ec2""#))], "\"aws.ec2\" events"),
        (GH_PUSH, &[("/detail-type", Some(r#""star""#))], "github event \"star\" is not a change"),
        (GH_PUSH, &[("/detail-type", Some(r#""ping""#))], "GitHub ping"),
        (GH_PUSH, &[("/detail-type", Some(r#""create""#))], "duplicate the push"),
        (CHANGE, &[("/detail-type", Some(r#""switchyard.change/v2""#))], "\"switchyard.change/v2\" are not changes"),
        // Unknown events need no more than the envelope: no placeholder id is read.
        (REF_CREATED, &[("/detail/event", Some(r#""commentOnCommitCreated""#)), ("/detail/commitId", Some(r#""3e5983DESTINATION""#))], "is no ref change"),
    ];
    for (i, &(name, edits, words)) in cases.iter().enumerate() {
        let id = fixture_json(name)["id"].as_str().map(str::to_owned);
        match run(&edited(name, edits)) {
            Ok(Envelope::Unknown { event_id, reason }) => {
                assert!(reason.contains(words), "case {i}: {reason:?}");
                assert_eq!(event_id, id, "case {i}");
            }
            other => panic!("case {i}: {name}: expected unknown, got {other:?}"),
        }
    }
}

#[test]
fn bad_fields_are_errors_naming_the_json_path() {
    // (fixture, edits, the field the error names)
    #[rustfmt::skip]
    let cases: &[(&str, &[Edit<'_>], &str)] = &[
        (REF_CREATED, &[("/detail/commitId", Some(r#""3e5983DESTINATION""#))], "detail.commitId"),
        (REF_CREATED, &[("/detail/commitId", Some(r#""3e5983d""#))], "detail.commitId"),
        (REF_CREATED, &[("/detail/commitId", None)], "detail.commitId"),
        (REF_CREATED, &[("/detail/commitId", Some(ZERO_JSON))], "detail.commitId"),
        (REF_CREATED, &[("/detail/commitId", Some("7"))], "detail.commitId"),
        (REF_UPDATED, &[("/detail/oldCommitId", Some(r#""3e5983DESTINATION""#))], "detail.oldCommitId"),
        (REF_UPDATED, &[("/detail/oldCommitId", Some(ZERO_JSON))], "detail.oldCommitId"),
        (REF_DELETED, &[("/detail/oldCommitId", None)], "detail.oldCommitId"),
        (REF_CREATED, &[("/detail/referenceFullName", Some(r#""refs/heads/a..b""#))], "detail.referenceFullName"),
        (REF_CREATED, &[("/detail/referenceFullName", Some(r#""refs/heads/$(touch pwned)""#))], "detail.referenceFullName"),
        (REF_CREATED, &[("/detail/referenceFullName", Some(r#""myBranch""#))], "detail.referenceFullName"),
        (REF_CREATED, &[("/detail/referenceFullName", Some(r#""refs/tags/v1""#))], "detail.referenceFullName"),
        (REF_CREATED, &[("/detail/referenceFullName", Some("[]"))], "detail.referenceFullName"),
        (REF_CREATED, &[("/detail/referenceFullName", None), ("/detail/referenceName", Some(r#""a~b""#))], "detail.referenceName"),
        (REF_CREATED, &[("/detail/referenceFullName", None), ("/detail/referenceName", None)], "detail.referenceFullName"),
        (REF_CREATED, &[("/detail/referenceType", None)], "detail.referenceType"),
        (REF_CREATED, &[("/detail/event", Some("1"))], "detail.event"),
        (REF_CREATED, &[("/detail/event", None)], "detail.event"),
        (REF_CREATED, &[("/detail/repositoryName", Some(r#""../etc""#))], "detail.repositoryName"),
        (REF_CREATED, &[("/detail/repositoryName", Some(r#""..""#))], "detail.repositoryName"),
        (REF_CREATED, &[("/detail/repositoryName", None)], "detail.repositoryName"),
        (REF_CREATED, &[("/detail/repositoryName", Some(r#""OtherRepo""#))], "resources[0]"),
        (REF_CREATED, &[("/resources/0", Some(r#""arn:aws:s3:::bucket""#))], "resources[0]"),
        (REF_CREATED, &[("/resources/0", Some(r#""arn:aws:codecommit:us east:1:MyDemoRepo""#))], "resources[0]"),
        (REF_CREATED, &[("/resources/0", Some("3"))], "resources[0]"),
        (REF_CREATED, &[("/resources", Some("{}"))], "resources"),
        (REF_CREATED, &[("/resources", Some("[]")), ("/region", None)], "region"),
        (REF_CREATED, &[("/resources", Some("[]")), ("/region", Some(r#""us east 1""#))], "region"),
        (REF_CREATED, &[("/region", Some("1"))], "region"),
        (REF_CREATED, &[("/time", Some("false"))], "time"),
        (REF_CREATED, &[("/account", Some("123456789012"))], "account"),
        (REF_CREATED, &[("/version", Some("0"))], "version"),
        (REF_CREATED, &[("/id", None)], "id"),
        (REF_CREATED, &[("/id", Some(r#""""#))], "id"),
        (REF_CREATED, &[("/id", Some(r#""a b""#))], "id"),
        (REF_CREATED, &[("/id", Some(r#""a\nb""#))], "id"),
        (REF_CREATED, &[("/id", Some("42"))], "id"),
        (REF_CREATED, &[("/detail-type", None)], "detail-type"),
        (REF_CREATED, &[("/detail-type", Some(r#""""#))], "detail-type"),
        (REF_CREATED, &[("/source", None)], "source"),
        (REF_CREATED, &[("/detail", None)], "detail"),
        (REF_CREATED, &[("/detail", Some(r#""{}""#))], "detail"),
        (PR_CREATED, &[("/detail/pullRequestId", Some(r#""1a""#))], "detail.pullRequestId"),
        (PR_CREATED, &[("/detail/pullRequestId", Some(r#""+1""#))], "detail.pullRequestId"),
        (PR_CREATED, &[("/detail/pullRequestId", Some(r#""""#))], "detail.pullRequestId"),
        (PR_CREATED, &[("/detail/pullRequestId", Some(r#""99999999999999999999""#))], "detail.pullRequestId"),
        (PR_CREATED, &[("/detail/pullRequestId", Some("-1"))], "detail.pullRequestId"),
        (PR_CREATED, &[("/detail/pullRequestId", Some("1.5"))], "detail.pullRequestId"),
        (PR_CREATED, &[("/detail/pullRequestId", None)], "detail.pullRequestId"),
        (PR_CREATED, &[("/detail/sourceCommit", Some(r#""2774290EXAMPLE""#))], "detail.sourceCommit"),
        (PR_CREATED, &[("/detail/sourceCommit", None)], "detail.sourceCommit"),
        (PR_CREATED, &[("/detail/destinationCommit", Some(r#""12241970EXAMPLE""#))], "detail.destinationCommit"),
        (PR_CREATED, &[("/detail/sourceReference", Some(r#""test-branch""#))], "detail.sourceReference"),
        (PR_CREATED, &[("/detail/destinationReference", None)], "detail.destinationReference"),
        (PR_CREATED, &[("/detail/isMerged", Some(r#""maybe""#))], "detail.isMerged"),
        (PR_CREATED, &[("/detail/isMerged", Some("1"))], "detail.isMerged"),
        (PR_CREATED, &[("/detail/event", Some(r#""""#))], "detail.event"),
        (PR_CLOSED, &[("/detail/pullRequestStatus", Some(r#""Merged""#))], "detail.pullRequestStatus"),
        (PR_CLOSED, &[("/detail/pullRequestStatus", None)], "detail.pullRequestStatus"),
        (PR_CREATED, &[("/detail/repositoryNames", Some("[]"))], "detail.repositoryNames"),
        (PR_CREATED, &[("/detail/repositoryNames", Some("[1]"))], "detail.repositoryNames[0]"),
        (PR_CREATED, &[("/detail/repositoryNames", Some(r#""MyDemoRepo""#))], "detail.repositoryNames"),
        (PR_CREATED, &[("/detail/repositoryNames", None)], "detail.repositoryNames"),
        (PR_CREATED, &[("/detail/repositoryNames", Some(r#"["Other"]"#))], "resources[0]"),
        (GH_PUSH, &[("/detail/ref", Some(r#""main""#))], "detail.ref"),
        (GH_PUSH, &[("/detail/repository/clone_url", Some(r#""/etc""#))], "detail.repository.clone_url"),
        (GH_PUSH, &[("/detail-type", Some(r#""push\n""#))], "detail-type"),
        (GH_PR, &[("/detail/pull_request/head/sha", Some("null"))], "detail.pull_request.head.sha"),
        (CHANGE, &[("/detail/schema", Some(r#""switchyard.change/v2""#))], "detail.schema"),
        (CHANGE, &[("/detail/ref", Some(r#""main""#))], "detail.ref"),
        (CHANGE, &[("/detail/before", Some(r#""3e5983DESTINATION""#))], "detail.before"),
        (CHANGE, &[("/detail/id", Some(r#""abc""#))], "detail.id"),
        (CHANGE, &[("/detail/extra", Some("1"))], "detail"),
        (CHANGE, &[("/detail/kind", None)], "detail"),
        (CHANGE, &[("/detail/changed_paths/0", Some(r#""../etc/passwd""#))], "detail.changed_paths[0]"),
    ];
    for (i, &(name, edits, field)) in cases.iter().enumerate() {
        match run(&edited(name, edits)) {
            Err(e) => {
                assert_eq!(e.field, field, "case {i}: {name}: {e}");
                assert!(!e.message.is_empty() && !e.hint().is_empty(), "case {i}");
            }
            Ok(other) => panic!("case {i}: {name}: expected an error, got {other:?}"),
        }
    }
}

#[test]
fn placeholder_ids_of_the_aws_docs_are_refused_with_a_hint() {
    let Err(e) = run(&fixture("codecommit_referenceCreated.json")) else {
        panic!("the docs' sample was accepted");
    };
    assert_eq!(e.field, "detail.commitId");
    assert!(e.message.contains("\"3e5983DESTINATION\""), "{e}");
    assert!(e.hint().contains("placeholders"), "{}", e.hint());
}

#[test]
fn malformed_bodies_are_errors() {
    let whole = fixture(REF_CREATED);
    #[rustfmt::skip]
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "body"),
        (b"not json".to_vec(), "body"),
        (whole[..whole.len() / 2].to_vec(), "body"),
        (b"[1, 2]".to_vec(), "body"),
        (b"\"an event\"".to_vec(), "body"),
        (b"null".to_vec(), "body"),
        (b"\xff\xfe{}".to_vec(), "body"),
        ("[".repeat(10_000).into_bytes(), "body"),
        ("{\"a\":".repeat(10_000).into_bytes(), "body"),
        (b"{}".to_vec(), "id"),
    ];
    for (i, (body, field)) in cases.iter().enumerate() {
        let got = run(body).map_err(|e| e.field);
        assert_eq!(got, Err(field.to_string()), "case {i}");
    }
}

#[test]
fn long_values_are_cut_short_in_errors() {
    let long = format!("\"{}\"", "x".repeat(10_000));
    let body = edited(REF_CREATED, &[("/detail/commitId", Some(&long))]);
    let Err(e) = run(&body) else {
        panic!("accepted");
    };
    assert!(e.message.len() < 200, "{}", e.message.len());
}

// -----------------------------------------------------------------------------------------
// Properties: no input panics.

/// The keys the parser reads, so that random JSON reaches its deeper paths.
#[rustfmt::skip]
const KEYS: &[&str] = &[
    "version", "id", "detail-type", "source", "account", "time", "region", "resources",
    "detail", "event", "repositoryName", "repositoryNames", "referenceType", "referenceName",
    "referenceFullName", "commitId", "oldCommitId", "pullRequestId", "pullRequestStatus",
    "isMerged", "sourceReference", "destinationReference", "sourceCommit",
    "destinationCommit", "schema", "repository", "kind", "ref", "before", "after",
];

fn scalar() -> impl Gen<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        proptest::sample::select(vec![
            CODECOMMIT_SOURCE,
            REPOSITORY_STATE_CHANGE,
            PULL_REQUEST_STATE_CHANGE,
            GITHUB_SOURCE,
            SCHEMA,
            "push",
            "pull_request",
            "ping",
            "referenceCreated",
            "referenceUpdated",
            "referenceDeleted",
            "pullRequestCreated",
            "pullRequestStatusChanged",
            "pullRequestMergeStatusUpdated",
            "branch",
            "tag",
            "True",
            "False",
            "Open",
            "Closed",
            "1",
            "MyDemoRepo",
            "us-east-2",
            "arn:aws:codecommit:us-east-2:123456789012:MyDemoRepo",
            "refs/heads/main",
            OLD,
            MERGE,
            ZERO_SHA,
            "3e5983DESTINATION",
            "2019-06-12T10:23:43Z",
        ])
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Gen<Value = Value> {
    scalar().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..10).prop_map(
                |pairs| {
                    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }
            ),
        ]
    })
}

/// Replaces the node that `path` picks out (each step an index into an object's members or
/// an array's elements, modulo their count) by `new`.
fn replace_at(value: &mut Value, path: &[usize], new: Value) {
    let next = match (path.split_first(), &mut *value) {
        (Some((i, _)), Value::Object(map)) if !map.is_empty() => {
            let n = map.len();
            map.values_mut().nth(i % n)
        }
        (Some((i, _)), Value::Array(items)) if !items.is_empty() => {
            let n = items.len();
            items.get_mut(i % n)
        }
        (_, slot) => {
            *slot = new;
            return;
        }
    };
    if let Some(child) = next {
        replace_at(child, &path[1..], new);
    }
}

/// Whatever comes out as a change is a valid, sealed event with this queue as its source.
fn check(
    result: Result<Envelope, EnvelopeError>,
) -> Result<(), proptest::test_runner::TestCaseError> {
    if let Ok(Envelope::Changes { event_id, changes }) = result {
        for e in changes {
            prop_assert_eq!(e.validate(), Ok(()));
            prop_assert_eq!(&e.id, &e.derive_id());
            prop_assert_eq!(e.source.kind, SourceKind::Eventbridge);
            prop_assert_eq!(e.source.delivery_id.as_deref(), Some(event_id.as_str()));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = run(&body);
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        let body = serde_json::to_vec(&value).unwrap_or_default();
        check(run(&body))?;
    }

    #[test]
    fn envelopes_with_arbitrary_details_never_panic(
        source in proptest::sample::select(vec![CODECOMMIT_SOURCE, GITHUB_SOURCE, "x"]),
        detail_type in proptest::sample::select(vec![
            REPOSITORY_STATE_CHANGE, PULL_REQUEST_STATE_CHANGE, SCHEMA, "push",
            "pull_request", "ping",
        ]),
        region in proptest::option::of(scalar()),
        resources in proptest::option::of(json_value()),
        detail in json_value(),
    ) {
        let mut event = json!({"id": "e-1", "source": source, "detail-type": detail_type, "detail": detail});
        if let Some(region) = region {
            event["region"] = region;
        }
        if let Some(resources) = resources {
            event["resources"] = resources;
        }
        let body = serde_json::to_vec(&event).unwrap_or_default();
        check(run(&body))?;
    }

    #[test]
    fn fixtures_with_a_replaced_node_never_panic(
        case in proptest::sample::select(CASES),
        path in proptest::collection::vec(any::<usize>(), 0..6),
        new in json_value(),
    ) {
        let mut value = fixture_json(case.0);
        replace_at(&mut value, &path, new);
        let body = serde_json::to_vec(&value).unwrap_or_default();
        check(run(&body))?;
    }
}
