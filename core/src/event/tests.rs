//! The change event: reading, validation, derived ids, ref and path rules.

use super::*;

const A: &str = "1111111111111111111111111111111111111111";
const B: &str = "2222222222222222222222222222222222222222";

fn manual() -> Source {
    Source {
        kind: SourceKind::Manual,
        provider: None,
        delivery_id: None,
    }
}

fn push_json(repo: &str, source: &str) -> String {
    format!(
        r#"{{"schema":"switchyard.change/v1","repository":"{repo}","kind":"push",
        "ref":"refs/heads/main","before":"{A}","after":"{B}","commit_count":1,
        "changed_paths":["./src//lib.rs","/README.md"],"changed_paths_complete":true,
        "pull_request":null,"source":{source},"occurred_at":null,
        "received_at":"2026-11-26T10:00:00.120Z"}}"#
    )
}

#[test]
fn same_push_from_every_source_has_one_id() {
    let sources = [
        (
            r#"{"kind":"webhook","provider":"github","delivery_id":"d1"}"#,
            "https://github.com/Acme/api.git",
        ),
        (
            r#"{"kind":"eventbridge","provider":"github.com","delivery_id":"e1"}"#,
            "git@github.com:Acme/api.git",
        ),
        (
            r#"{"kind":"poll","provider":null,"delivery_id":null}"#,
            "ssh://git@github.com/Acme/api",
        ),
    ];
    let ids: Vec<String> = sources
        .iter()
        .map(|(src, repo)| {
            ChangeEvent::from_json(push_json(repo, src).as_bytes(), manual())
                .map(|e| e.id)
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    assert_eq!(ids[0].len(), 32);
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
}

#[test]
fn codecommit_event_and_clone_url_share_the_id() {
    let url = "https://git-codecommit.us-east-1.amazonaws.com/v1/repos/api";
    let e1 = ChangeEvent::from_json(push_json(url, "null").as_bytes(), manual());
    let mut e2 = e1.clone().unwrap_or_else(|e| panic!("{e}"));
    e2.repository = RepoId::codecommit("us-east-1", "api");
    assert_eq!(e1.map(|e| e.id), Ok(e2.derive_id()));
}

#[test]
fn id_depends_on_every_push_field() {
    let base = ChangeEvent::from_json(push_json("https://h/o/r", "null").as_bytes(), manual())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut other = base.clone();
    other.git_ref = "refs/heads/dev".into();
    assert_ne!(base.derive_id(), other.derive_id());
    let mut other = base.clone();
    other.before = B.into();
    assert_ne!(base.derive_id(), other.derive_id());
    let mut other = base.clone();
    other.after = A.into();
    assert_ne!(base.derive_id(), other.derive_id());
    let mut other = base.clone();
    other.repository = RepoId::codecommit("eu-west-1", "r");
    assert_ne!(base.derive_id(), other.derive_id());
    // ... and on nothing a source adds.
    let mut other = base.clone();
    other.changed_paths.clear();
    other.commit_count = None;
    other.source.kind = SourceKind::Poll;
    assert_eq!(base.derive_id(), other.derive_id());
}

#[test]
fn round_trips_through_json() {
    let event = ChangeEvent::from_json(
        push_json(
            "https://github.com/acme/api",
            r#"{"kind":"webhook","provider":"github"}"#,
        )
        .as_bytes(),
        manual(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(event.changed_paths, ["src/lib.rs", "README.md"]);
    let json = serde_json::to_string(&event).unwrap_or_default();
    assert!(
        json.contains(r#""received_at":"2026-11-26T10:00:00.120Z""#),
        "{json}"
    );
    assert!(json.contains(r#""ref":"refs/heads/main""#), "{json}");
    let back: ChangeEvent = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, event);
    let again = ChangeEvent::from_json(json.as_bytes(), manual());
    assert_eq!(again, Ok(event));
}

#[test]
fn bad_fields_are_named() {
    let good = push_json("https://github.com/acme/api", "null");
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str)] = &[
        ("\"refs/heads/main\"", "\"main\"", "ref"),
        ("\"refs/heads/main\"", "\"refs/heads/$(touch pwned)\"", "ref"),
        ("\"refs/heads/main\"", "\"refs/heads/a..b\"", "ref"),
        (A, "xyz", "before"),
        ("switchyard.change/v1", "switchyard.change/v2", "schema"),
        ("./src//lib.rs", "../etc/passwd", "changed_paths[0]"),
        ("\"commit_count\":1", "\"commit_count\":-1", "event"),
        ("\"kind\":\"push\"", "\"kind\":\"pull_request\"", "pull_request"),
        ("\"commit_count\":1", "\"commit_count\":1,\"extra\":1", "event"),
        ("\"pull_request\":null", "\"pull_request\":null,\"id\":\"abc\"", "id"),
    ];
    for (from, to, field) in cases {
        let json = good.replacen(from, to, 1);
        let err = ChangeEvent::from_json(json.as_bytes(), manual());
        assert_eq!(err.map_err(|e| e.field), Err(field.to_string()), "{to}");
    }
}

#[test]
fn paths_are_normalized_or_rejected() {
    #[rustfmt::skip]
    let cases: &[(&str, Result<&str, ()>)] = &[
        ("src/a.rs", Ok("src/a.rs")),
        ("/src/a.rs", Ok("src/a.rs")),
        ("./src/a.rs", Ok("src/a.rs")),
        ("src//a.rs", Ok("src/a.rs")),
        ("src/./a.rs", Ok("src/a.rs")),
        ("src/../a.rs", Err(())),
        ("..", Err(())),
        ("", Err(())),
        ("a\0b", Err(())),
    ];
    for (input, want) in cases {
        let got = normalize_path(input).map_err(|_| ());
        assert_eq!(got.as_deref(), want.as_deref(), "{input:?}");
    }
}

#[test]
fn created_and_deleted_follow_the_zero_sha() {
    let json = push_json("https://h/o/r", "null").replacen(A, ZERO_SHA, 1);
    let event = ChangeEvent::from_json(json.as_bytes(), manual());
    assert_eq!(event.map(|e| (e.created, e.deleted)), Ok((true, false)));
    let json = json.replacen(
        "\"changed_paths\"",
        "\"created\":false,\"changed_paths\"",
        1,
    );
    let err = ChangeEvent::from_json(json.as_bytes(), manual());
    assert_eq!(err.map_err(|e| e.field), Err("created".to_owned()));
}

#[test]
fn invisible_and_reordering_characters_are_shown_escaped() {
    use super::shown;
    use std::borrow::Cow;
    // A ref that would read as `refs/heads/main.txt` reversed, and friends.
    assert_eq!(
        shown("refs/heads/\u{202E}txt.niam"),
        "refs/heads/\\u{202E}txt.niam"
    );
    assert_eq!(
        shown("a\u{200B}b\u{2066}c\u{FEFF}d\u{7}e\nf"),
        "a\\u{200B}b\\u{2066}c\\u{FEFF}d\\u{0007}e\\u{000A}f"
    );
    assert_eq!(shown("src/\u{E0041}x"), "src/\\u{E0041}x");
    // Everything else is as written: accents (composed or not), other scripts, emoji.
    for plain in [
        "refs/heads/main",
        "docs/café.md",
        "docs/cafe\u{301}.md",
        "src/日本語/中文.rs",
        "🚀/x",
    ] {
        assert!(matches!(shown(plain), Cow::Borrowed(_)), "{plain}");
    }
}
