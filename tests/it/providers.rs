//! Provider webhooks end to end: real fixtures, signed as each provider signs, posted to a real
//! `serve`; each starts the pipeline once, however often it is delivered.

use serde_json::json;
use switchyard::signature::hmac_sha256_hex;

use crate::support::{eventually, request};

const SECRET: &str = "It's a Secret to Everybody";

fn fixture(path: &str) -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One provider's delivery: receiver name, fixture, repository id, headers (without signature).
struct Case {
    provider: &'static str,
    fixture: &'static str,
    repository: &'static str,
    headers: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        provider: "github",
        fixture: "github/push_with-new-branch.payload.json",
        repository: "https://github.com/Codertocat/Hello-World.git",
        headers: &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "d-1"),
            ("X-GitHub-Hook-ID", "42"),
        ],
    },
    Case {
        provider: "gitlab",
        fixture: "gitlab/push-event.json",
        repository: "http://example.com/mike/diaspora.git",
        headers: &[
            ("X-Gitlab-Event", "Push Hook"),
            ("X-Gitlab-Event-UUID", "d-1"),
        ],
    },
    Case {
        provider: "bitbucket",
        fixture: "bitbucket/repo-push.json",
        repository: "https://api.bitbucket.org/bitbucket/bitbucket",
        headers: &[("X-Event-Key", "repo:push"), ("X-Request-UUID", "d-1")],
    },
    Case {
        provider: "gitea",
        fixture: "gitea/push-event.json",
        repository: "http://localhost:3000/example/example.git",
        headers: &[("X-Gitea-Event", "push"), ("X-Gitea-Delivery", "d-1")],
    },
];

/// The headers a provider sends for `body`: its event headers plus its signature.
fn signed(
    provider: &str,
    base: &[(&str, &str)],
    body: &[u8],
    secret: &str,
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = base
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hex = hmac_sha256_hex(secret.as_bytes(), body);
    match provider {
        "github" => headers.push(("X-Hub-Signature-256".into(), format!("sha256={hex}"))),
        "gitlab" => headers.push(("X-Gitlab-Token".into(), secret.into())),
        "bitbucket" => headers.push(("X-Hub-Signature".into(), format!("sha256={hex}"))),
        "gitea" => headers.push(("X-Gitea-Signature".into(), hex)),
        _ => unreachable!(),
    }
    headers.push(("Content-Type".into(), "application/json".into()));
    headers
}

fn with_delivery(headers: &[(String, String)], id: &str) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let is_id = [
                "X-GitHub-Delivery",
                "X-Gitlab-Event-UUID",
                "X-Request-UUID",
                "X-Gitea-Delivery",
            ]
            .contains(&k.as_str());
            (k.clone(), if is_id { id.to_owned() } else { v.clone() })
        })
        .collect()
}

/// A project with one receiver per provider and one recording pipeline per fixture repository.
async fn server() -> crate::support::TestServer {
    let secret_file = |p: &str| format!("    secrets: [\"file:$DIR/{p}.secret\"]\n");
    let mut extra = String::new();
    for c in CASES {
        extra.push_str(&format!(
            "  - name: {0}\n    provider: {0}\n{1}",
            c.provider,
            secret_file(c.provider)
        ));
    }
    let triggers: Vec<(String, String)> = CASES
        .iter()
        .map(|c| {
            (
                format!("{}.yaml", c.provider),
                format!(
                    "repository: {}\non: push\nstart:\n  exec: [\"/bin/sh\", \"-c\", \"printf '%s\\\\n' \\\"$SWITCHYARD_PIPELINE $SWITCHYARD_REF $SWITCHYARD_SHA\\\" >> \\\"$1/log\\\"\", \"sh\", \"$DIR\"]\n",
                    c.repository
                ),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = triggers
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (dir, config, pipelines) = crate::support::server_project(&extra, &refs);
    for c in CASES {
        std::fs::write(dir.path().join(format!("{}.secret", c.provider)), SECRET)
            .expect("secret file");
    }
    crate::support::TestServer::start_in(dir, config, pipelines).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_provider_starts_the_pipeline_once_however_often_it_delivers() {
    let s = server().await;
    for c in CASES {
        let body = fixture(c.fixture);
        let headers = signed(c.provider, c.headers, &body, SECRET);
        let path = format!("/hooks/{}", c.provider);
        let (status, text) = request(s.addr, "POST", &path, &headers, body.clone()).await;
        assert_eq!(status, 202, "{}: {text}", c.provider);
        assert!(
            text.contains("\"status\":\"accepted\""),
            "{}: {text}",
            c.provider
        );
        // The same delivery again (a redelivery), and the same change under a new delivery id.
        let (status, text) = request(s.addr, "POST", &path, &headers, body.clone()).await;
        assert_eq!(status, 202, "{}: {text}", c.provider);
        assert!(
            text.contains("\"duplicate_of\":\"delivery\""),
            "{}: {text}",
            c.provider
        );
        let again = with_delivery(&headers, "d-2");
        let (status, text) = request(s.addr, "POST", &path, &again, body.clone()).await;
        assert_eq!(status, 202, "{}: {text}", c.provider);
        assert!(
            text.contains("\"duplicate_of\":\"change\""),
            "{}: {text}",
            c.provider
        );
    }
    let root = s.root().to_path_buf();
    let log = eventually(10, "four starts", || {
        std::fs::read_to_string(root.join("log"))
            .ok()
            .filter(|t| t.lines().count() >= CASES.len())
    })
    .await;
    let mut pipelines: Vec<&str> = log
        .lines()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    pipelines.sort_unstable();
    assert_eq!(
        pipelines,
        ["bitbucket", "gitea", "github", "gitlab"],
        "{log}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_system_hooks_start_pushes_and_ignore_other_system_events() {
    let s = server().await;
    let post = |fixture_path: &'static str, event: &'static str, uuid: &'static str| {
        let body = fixture(fixture_path);
        let headers = signed(
            "gitlab",
            &[("X-Gitlab-Event", event), ("X-Gitlab-Event-UUID", uuid)],
            &body,
            SECRET,
        );
        async move {
            let (status, text) = request(s.addr, "POST", "/hooks/gitlab", &headers, body).await;
            let answer: serde_json::Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            (status, answer)
        }
    };

    // GitLab's documented system-hook push (no `object_kind`, no file lists) is a change.
    let (status, answer) = post("gitlab/system-hook-push.json", "System Hook", "s-1").await;
    assert_eq!(
        (status, &answer["status"]),
        (202, &json!("accepted")),
        "{answer}"
    );
    // The project hook's report of the same push is the same change.
    let (status, answer) = post("gitlab/push-event.json", "Push Hook", "p-1").await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["duplicate_of"], "change", "{answer}");

    let (status, answer) = post(
        "gitlab/system-hook-project-create.json",
        "System Hook",
        "s-2",
    )
    .await;
    let want = json!({
        "status": "ignored",
        "reason": "gitlab system event \"project_create\" is not a change",
    });
    assert_eq!((status, answer), (202, want));
    let (status, answer) = post(
        "gitlab/system-hook-repository-update.json",
        "System Hook",
        "s-3",
    )
    .await;
    assert_eq!(
        (status, &answer["status"]),
        (202, &json!("ignored")),
        "{answer}"
    );

    let root = s.root().to_path_buf();
    let log = eventually(10, "the push's start", || {
        std::fs::read_to_string(root.join("log"))
            .ok()
            .filter(|t| !t.is_empty())
    })
    .await;
    assert_eq!(
        log,
        "gitlab refs/heads/master da1560886d4f094c3e6c9ef40349f7d38b5d27d7\n"
    );
    assert_eq!(s.starts().len(), 1, "one start for the one change");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deliveries_get_their_documented_answers() {
    let s = server().await;
    let gh = &CASES[0];
    let body = fixture(gh.fixture);
    let post = |headers: Vec<(String, String)>, body: Vec<u8>| async move {
        request(s.addr, "POST", "/hooks/github", &headers, body).await
    };
    let good = signed("github", gh.headers, &body, SECRET);

    let wrong = signed("github", gh.headers, &body, "not the secret");
    assert_eq!(post(wrong, body.clone()).await.0, 401, "wrong secret");
    let unsigned: Vec<(String, String)> = good
        .iter()
        .filter(|(k, _)| k != "X-Hub-Signature-256")
        .cloned()
        .collect();
    let (status, text) = post(unsigned, body.clone()).await;
    assert_eq!(
        (
            status,
            text.contains("X-Hub-Signature-256 header is missing")
        ),
        (401, true),
        "{text}"
    );
    let other = signed("github", gh.headers, b"{}", SECRET);
    assert_eq!(
        post(other, body.clone()).await.0,
        401,
        "signature of another body"
    );
    let sha1_only: Vec<(String, String)> = good
        .iter()
        .map(|(k, v)| {
            if k == "X-Hub-Signature-256" {
                ("X-Hub-Signature".into(), v.replace("sha256=", "sha1="))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    assert_eq!(
        post(sha1_only, body.clone()).await.0,
        401,
        "SHA-1 only when the receiver opts in"
    );

    let ping = fixture("github/ping_payload.json");
    let mut h = signed(
        "github",
        &[("X-GitHub-Event", "ping"), ("X-GitHub-Delivery", "p-1")],
        &ping,
        SECRET,
    );
    let (status, text) = post(h.clone(), ping.clone()).await;
    assert_eq!((status, text.as_str()), (200, "{\"status\":\"ping\"}\n"));
    h[0].1 = "issue_comment".into();
    h[1].1 = "p-2".into();
    let (status, text) = post(h, ping.clone()).await;
    assert_eq!(
        status, 202,
        "a signed delivery that is no change is never refused"
    );
    assert!(text.contains("\"status\":\"ignored\""), "{text}");

    let truncated = body[..body.len() / 2].to_vec();
    let h = signed("github", gh.headers, &truncated, SECRET);
    assert_eq!(post(h, truncated).await.0, 400, "truncated JSON");
    let bomb = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    let h = signed("github", gh.headers, &bomb, SECRET);
    assert_eq!(post(h, bomb).await.0, 400, "deeply nested JSON");
    let not_a_ref = String::from_utf8(body.clone())
        .expect("utf-8")
        .replace("\"refs/heads/master\"", "\"master\"")
        .into_bytes();
    let h = signed("github", gh.headers, &not_a_ref, SECRET);
    let (status, text) = post(h, not_a_ref).await;
    assert_eq!(status, 400, "{text}");
    // A 50 MB body: refused on its Content-Length, before it is read (the server closes the
    // connection, so read the answer from a raw socket rather than through a client that
    // insists on sending the whole body).
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut conn = tokio::net::TcpStream::connect(s.addr)
            .await
            .expect("connect");
        let head = "POST /hooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nContent-Type: application/json\r\nContent-Length: 52428800\r\n\r\n";
        conn.write_all(head.as_bytes()).await.expect("write");
        let _ = conn.write_all(&vec![b' '; 64 << 10]).await;
        let mut answer = vec![0u8; 64];
        let n = conn.read(&mut answer).await.expect("read");
        let text = String::from_utf8_lossy(&answer[..n]);
        assert!(text.starts_with("HTTP/1.1 413"), "50 MB: {text}");
    }

    assert!(s.starts().is_empty(), "nothing refused was stored");
    let (_, metrics) = request(s.addr, "GET", "/metrics", &[], vec![]).await;
    for line in [
        "switchyard_rejected_total{receiver=\"github\",reason=\"bad_signature\"} 2",
        "switchyard_deliveries_total{receiver=\"github\",outcome=\"rejected\"} 8",
        "switchyard_rejected_total{receiver=\"github\",reason=\"missing_signature\"} 2",
        "switchyard_rejected_total{receiver=\"github\",reason=\"malformed\"} 3",
        "switchyard_rejected_total{receiver=\"github\",reason=\"too_large\"} 1",
        "switchyard_deliveries_total{receiver=\"github\",outcome=\"ping\"} 1",
        "switchyard_deliveries_total{receiver=\"github\",outcome=\"ignored\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }
    s.stop().await;
}

#[test]
fn normalize_prints_the_events() {
    let p = crate::support::Project::new();
    let body =
        String::from_utf8(fixture("github/push_with-new-branch.payload.json")).expect("utf-8");
    let run = p.run(
        &[
            "normalize",
            "--provider",
            "github",
            "--header",
            "X-GitHub-Event: push",
            "--header",
            "X-GitHub-Delivery: abc",
            "-",
        ],
        &[],
        &body,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let events: serde_json::Value = serde_json::from_str(&run.stdout).expect("a JSON array");
    assert_eq!(events.as_array().map(Vec::len), Some(1));
    assert_eq!(events[0]["repository"], "github.com/Codertocat/Hello-World");
    assert_eq!(events[0]["ref"], "refs/heads/master");
    assert_eq!(events[0]["created"], true);
    assert_eq!(events[0]["source"]["delivery_id"], "abc");

    let run = p.run(
        &[
            "normalize",
            "--provider",
            "github",
            "--header",
            "X-GitHub-Event: ping",
            "-",
        ],
        &[],
        &body,
    );
    assert_eq!((run.code, run.stdout.trim()), (Some(0), "[]"), "{run:?}");
    let run = p.run(&["normalize", "--provider", "github", "-"], &[], &body);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("X-GitHub-Event"), "{run:?}");
    let run = p.run(&["normalize", "--provider", "svn", "-"], &[], &body);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("unknown provider \"svn\""), "{run:?}");
}
