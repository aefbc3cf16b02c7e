//! The status page and its JSON on a real `serve` child: the decision log of a change as the
//! commands show it, the answers to unknown and ambiguous ids and bad queries, payload values
//! shown as text, the actions only for an operator with the token, and the page in a real
//! headless Chromium (no console errors, JavaScript off, screenshots for the README).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard::event::{ChangeEvent, Source, SourceKind};
use switchyard_lab::{Answer, Browser, Runner, Serve, Work, bare, or_skip, try_exchange};

use crate::support::{Project, change, serve, sha, try_post};

const API: &str = "https://github.com/acme/api.git";
/// The operator token the tests' servers read from their environment.
const TOKEN: &str = "operator-token-for-the-status-tests-41f7";
const TOKEN_ENV: &str = "SWITCHYARD_TEST_OPERATOR_TOKEN";
/// A ref git accepts that holds a script element.
const SCRIPT_REF: &str = "refs/heads/x<script>window.pwned=1</script>";

/// A project watching `API` with two pipelines on the runner at `runner`: `deploy` starts on
/// every push, `docs` only when `docs/**` changed. With `operator`, `operator_token` names
/// [`TOKEN_ENV`]; `extra` adds configuration lines.
fn project(runner: SocketAddr, operator: bool, extra: &str) -> Project {
    let mut config = "dispatch: {attempts: 3, backoff: 20ms}\n".to_owned();
    if operator {
        config.push_str(&format!("operator_token: env:{TOKEN_ENV}\n"));
    }
    config.push_str(extra);
    let p = Project::served(&config);
    p.file(
        "triggers/deploy.yaml",
        &format!(
            "repository: {API}\non: push\nstart:\n  http: {{url: \"http://{runner}/deploy\"}}\n"
        ),
    );
    p.file(
        "triggers/docs.yaml",
        &format!(
            "repository: {API}\non:\n  push:\n    paths: [\"docs/**\"]\nstart:\n  http: {{url: \"http://{runner}/docs\"}}\n"
        ),
    );
    p
}

async fn start(p: &Project) -> Serve {
    serve(p.root(), &[(TOKEN_ENV, TOKEN.to_owned())]).await
}

/// A push event of `API` to `git_ref` at `after` touching `paths`.
fn push(git_ref: &str, after: &str, paths: &[&str]) -> String {
    let mut event: Value = serde_json::from_str(&change(git_ref, after)).expect("an event");
    event["changed_paths"] = paths.into();
    event.to_string()
}

/// The id switchyard derives for `body`.
fn id_of(body: &str) -> String {
    let source = Source {
        kind: SourceKind::Webhook,
        provider: None,
        delivery_id: None,
    };
    ChangeEvent::from_json(body.as_bytes(), source)
        .expect("a valid event")
        .id
}

/// Posts `body` under delivery `delivery`; the change's id.
async fn post(addr: SocketAddr, delivery: &str, body: &str) -> String {
    let (status, answer) = try_post(addr, delivery, body).await.expect("posted");
    assert_eq!(status, 202, "{answer}");
    let id = answer["change"].as_str().expect("a change id").to_owned();
    assert_eq!(id, id_of(body));
    id
}

/// The JSON of an answer's body.
fn json(answer: &Answer) -> Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: not JSON: {}", answer.body))
}

/// One request on a fresh connection, with `headers` (`Host: ADDR` unless they name one); the
/// whole answer.
async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: String,
) -> Answer {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    try_exchange(addr, method, path, &headers, body.into_bytes())
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e:#}"))
}

async fn get(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Answer {
    let headers: Vec<(&str, String)> = cookie
        .map(|c| ("cookie", c.to_owned()))
        .into_iter()
        .collect();
    exchange(addr, "GET", path, &headers, String::new()).await
}

/// Posts a form as a browser on the page's own origin would (unless `origin` says otherwise).
async fn post_form(
    addr: SocketAddr,
    path: &str,
    fields: &[(&str, &str)],
    cookie: Option<&str>,
    origin: Option<&str>,
) -> Answer {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut headers = vec![
        (
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
        (
            "origin",
            origin.map_or_else(|| format!("http://{addr}"), str::to_owned),
        ),
    ];
    if let Some(c) = cookie {
        headers.push(("cookie", c.to_owned()));
    }
    exchange(addr, "POST", path, &headers, body).await
}

/// Asks `check` every 50 ms until it gives something, for at most 20 s.
async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The change's JSON once its first start is in `state`.
async fn start_state(addr: SocketAddr, id: &str, state: &str) -> Value {
    until(&format!("the start of {id} to be {state}"), async || {
        let view = json(&get(addr, &format!("/api/changes/{id}"), None).await);
        (view["starts"][0]["state"] == state).then_some(view)
    })
    .await
}

/// The decisions of a change view by pipeline: (start, reason).
fn decisions(view: &Value) -> BTreeMap<String, (bool, String)> {
    view["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .map(|d| {
            (
                d["pipeline"].as_str().expect("pipeline").to_owned(),
                (
                    d["start"].as_bool().expect("start"),
                    d["reason"].as_str().expect("reason").to_owned(),
                ),
            )
        })
        .collect()
}

/// Two change events of `API` whose ids share their first 4 hex characters: pushes to main
/// tried one after another (the ids computed as the server derives them) until two collide.
fn colliding_pair() -> (String, String, String) {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for n in 1_000..3_000 {
        let body = push("refs/heads/main", &sha(n), &["src/lib.rs"]);
        let prefix = id_of(&body)[..4].to_owned();
        if let Some(first) = seen.insert(prefix.clone(), body.clone()) {
            return (prefix, first, body);
        }
    }
    panic!("no two of 2,000 change ids share 4 hex characters");
}

/// The first value of `name="csrf"` in a page.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in the page:\n{page}"));
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("a closing quote")].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_shows_the_decision_log_as_the_commands_do_and_names_bad_ids() {
    let (_runner, runner_addr) = Runner::scripted(&[400]).await.expect("runner");
    let p = project(runner_addr, false, "");
    let server = start(&p).await;
    let addr = server.addr();
    let id = post(
        addr,
        "d-1",
        &push("refs/heads/main", &sha(1), &["src/lib.rs"]),
    )
    .await;
    let view = start_state(addr, &id, "dead").await;

    // Both decisions, each with its reason; the one start dead-lettered by the runner's 400.
    let d = decisions(&view);
    assert!(d["deploy"].0, "{view:#}");
    assert!(!d["docs"].0, "{view:#}");
    assert_eq!(
        d["docs"].1,
        "no changed path matched on.push.paths (1 changed path)"
    );
    let starts = view["starts"].as_array().expect("starts");
    assert_eq!(starts.len(), 1, "{view:#}");
    assert_eq!(starts[0]["pipeline"], "deploy");
    assert!(
        starts[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("400")),
        "{view:#}"
    );

    // The same JSON as the commands print, for one change and for the list.
    let shown = p.run(&["changes", "show", &id, "--format", "json"], &[], "");
    assert_eq!(shown.code, Some(0), "{}", shown.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&shown.stdout).expect("JSON"),
        view
    );
    let listed = p.run(&["changes", "list", "--format", "json"], &[], "");
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    let list = get(addr, "/api/changes", None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.header("content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&listed.stdout).expect("JSON"),
        json(&list)
    );
    assert_eq!(json(&list)["changes"][0]["id"], id.as_str());
    assert_eq!(json(&list)["changes"][0]["first_source"], "webhook");
    // A prefix works as well as the whole id.
    let by_prefix = get(addr, &format!("/api/changes/{}", &id[..8]), None).await;
    assert_eq!((by_prefix.status, json(&by_prefix)), (200, view.clone()));

    // An unknown id: 404, as JSON for the API and as a page for people.
    let unknown = "ffffffffffffffffffffffffffffffff";
    let missing = get(addr, &format!("/api/changes/{unknown}"), None).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(
        json(&missing)["error"]
            .as_str()
            .is_some_and(|e| e.contains(unknown)),
        "{}",
        missing.body
    );
    let page = get(addr, &format!("/changes/{unknown}"), None).await;
    assert_eq!(page.status, 404);
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    assert!(page.body.contains("no such change"), "{}", page.body);
    let short = get(addr, "/api/changes/ab", None).await;
    assert_eq!(short.status, 400, "{}", short.body);
    assert!(
        json(&short)["hint"]
            .as_str()
            .is_some_and(|h| h.contains("at least 4"))
    );

    // An ambiguous prefix: 400 naming both changes.
    let (prefix, first, second) = colliding_pair();
    let a = post(addr, "d-2", &first).await;
    let b = post(addr, "d-3", &second).await;
    let ambiguous = get(addr, &format!("/api/changes/{prefix}"), None).await;
    assert_eq!(ambiguous.status, 400, "{}", ambiguous.body);
    let candidates = json(&ambiguous)["candidates"].clone();
    for id in [&a, &b] {
        assert!(
            candidates
                .as_array()
                .is_some_and(|c| c.contains(&Value::from(id.as_str()))),
            "{prefix}: {}",
            ambiguous.body
        );
    }
    let page = get(addr, &format!("/changes/{prefix}"), None).await;
    assert_eq!(page.status, 400);
    for id in [&a, &b] {
        assert!(
            page.body.contains(&format!("href=\"/changes/{id}\"")),
            "{}",
            page.body
        );
    }

    // Bad query values: 400 naming the parameter, with a hint.
    let cases = [
        (
            "limit=lots",
            "limit=\"lots\" is not a number",
            "ask for 1 to 10000 changes",
        ),
        (
            "limt=5",
            "unknown parameter \"limt\"",
            "did you mean \"limit\"?",
        ),
        (
            "since=soon",
            "since=\"soon\" is not a duration",
            "write a duration",
        ),
    ];
    for (query, error, hint) in cases {
        let bad = get(addr, &format!("/api/changes?{query}"), None).await;
        assert_eq!(bad.status, 400, "{query}: {}", bad.body);
        let json = json(&bad);
        assert!(
            json["error"].as_str().is_some_and(|e| e.contains(error)),
            "{query}: {json}"
        );
        assert!(
            json["hint"].as_str().is_some_and(|h| h.contains(hint)),
            "{query}: {json}"
        );
    }
    let filtered = get(addr, "/api/changes?pipeline=deploy&limit=1&since=1h", None).await;
    assert_eq!(filtered.status, 200, "{}", filtered.body);
    assert_eq!(json(&filtered)["changes"].as_array().map(Vec::len), Some(1));
    // A full page links the next one (the same filter, a cursor); the last page links none.
    let mut seen = Vec::new();
    let mut next = Some("/api/changes?limit=1".to_owned());
    while let Some(path) = next.take() {
        let page = get(addr, &path, None).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        for change in json(&page)["changes"].as_array().expect("changes") {
            seen.push(change["id"].as_str().expect("id").to_owned());
        }
        next = page.header("link").map(|link| {
            let (url, rel) = link.split_once("; ").expect("a Link header");
            assert_eq!(rel, "rel=\"next\"");
            url.trim_matches(['<', '>']).to_owned()
        });
        assert!(seen.len() <= 20, "the pages never end: {seen:?}");
    }
    let whole: Vec<String> = json(&get(addr, "/api/changes", None).await)["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect();
    assert!(whole.len() >= 3, "{whole:?}");
    assert_eq!(seen, whole, "one change a page, newest first, each once");
    // A limit above what a visitor without the operator's session may ask (500) is lowered, not refused.
    let capped = get(addr, "/api/changes?limit=10000", None).await;
    assert_eq!(capped.status, 200, "{}", capped.body);
    assert_eq!(capped.header("link"), None);

    // Without operator_token the page is read-only: no buttons, and the actions are refused.
    let page = get(addr, &format!("/changes/{id}"), None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("read-only"), "{}", page.body);
    assert!(!page.body.contains("retry</button>"), "{}", page.body);
    let start_id = view["starts"][0]["id"].as_str().expect("a start id");
    let refused = post_form(addr, &format!("/starts/{start_id}/retry"), &[], None, None).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let refused = post_form(addr, "/login", &[("token", TOKEN)], None, None).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(
        json(&get(addr, &format!("/api/changes/{id}"), None).await)["starts"][0]["state"],
        "dead"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_values_are_shown_as_text() {
    let (_runner, runner_addr) = Runner::start().await.expect("runner");
    let p = project(runner_addr, false, "");
    let server = start(&p).await;
    let addr = server.addr();
    // The ref passes git's rules (`<`, `>`, `(`, `)` and `=` are allowed in a ref name); the
    // path and the delivery id carry markup too.
    let body = push(
        SCRIPT_REF,
        &sha(7),
        &["src/<img src=x onerror=alert(2)>.rs"],
    );
    let id = post(addr, "<script>alert(3)</script>", &body).await;
    start_state(addr, &id, "succeeded").await;
    for path in ["/".to_owned(), format!("/changes/{id}")] {
        let page = get(addr, &path, None).await;
        assert_eq!(page.status, 200, "{path}");
        let csp = page.header("content-security-policy").unwrap_or("");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(!page.body.contains("<script"), "{path}: {}", page.body);
        assert!(!page.body.contains("<img"), "{path}: {}", page.body);
        assert!(
            page.body
                .contains("refs/heads/x&lt;script&gt;window.pwned=1&lt;/script&gt;"),
            "{path}: {}",
            page.body
        );
    }
    let page = get(addr, &format!("/changes/{id}"), None).await.body;
    assert!(
        page.contains("src/&lt;img src=x onerror=alert(2)&gt;.rs"),
        "{page}"
    );
    assert!(
        page.contains("&lt;script&gt;alert(3)&lt;/script&gt;"),
        "{page}"
    );
    // The JSON carries the values as they came.
    let view = json(&get(addr, &format!("/api/changes/{id}"), None).await);
    assert_eq!(view["ref"], SCRIPT_REF);
    assert_eq!(
        view["sightings"][0]["delivery_id"],
        "<script>alert(3)</script>"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_operator_with_the_token_retries_drops_and_replays() {
    let (_runner, runner_addr) = Runner::scripted(&[400]).await.expect("runner");
    let missing = "poll:\n  - url: $DIR/missing.git\n    interval: 1s\n";
    let p = project(runner_addr, true, missing);
    let server = start(&p).await;
    let addr = server.addr();
    let id = post(
        addr,
        "d-1",
        &push("refs/heads/main", &sha(1), &["src/lib.rs"]),
    )
    .await;
    let view = start_state(addr, &id, "dead").await;
    let start_id = view["starts"][0]["id"]
        .as_str()
        .expect("a start id")
        .to_owned();
    let retry = format!("/starts/{start_id}/retry");
    let mut pages = Vec::new();

    // Logged out: a login form, no buttons; an action is a 401 with the login form.
    let page = get(addr, &format!("/changes/{id}"), None).await;
    assert!(page.body.contains("action=\"/login\""), "{}", page.body);
    assert!(!page.body.contains("retry</button>"), "{}", page.body);
    pages.push(page.body);
    let refused = post_form(addr, &retry, &[("csrf", "x")], None, None).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(
        refused.body.contains("action=\"/login\""),
        "{}",
        refused.body
    );
    pages.push(refused.body);

    // A wrong token: 401 and no session.
    let wrong = post_form(addr, "/login", &[("token", "not-the-token")], None, None).await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!(wrong.header("set-cookie"), None);
    pages.push(wrong.body);

    // The token: a session cookie that is not the token, back to the page asked for.
    let next = format!("/changes/{id}");
    let login = post_form(
        addr,
        "/login",
        &[("token", TOKEN), ("next", &next)],
        None,
        None,
    )
    .await;
    assert_eq!(login.status, 303, "{}", login.body);
    assert_eq!(login.header("location"), Some(next.as_str()));
    let set = login
        .header("set-cookie")
        .expect("a session cookie")
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(TOKEN), "{set}");
    let cookie = set.split(';').next().expect("name=value").to_owned();

    let page = get(addr, &next, Some(&cookie)).await;
    assert!(page.body.contains("retry</button>"), "{}", page.body);
    assert!(page.body.contains("drop</button>"), "{}", page.body);
    assert!(page.body.contains("replay</button>"), "{}", page.body);
    let csrf = csrf_of(&page.body);
    pages.push(page.body);

    // The cookie alone, a wrong CSRF token, or a form from another site: refused.
    for (fields, origin) in [
        (vec![("change", id.as_str())], None),
        (vec![("csrf", "0000"), ("change", id.as_str())], None),
        (
            vec![("csrf", csrf.as_str()), ("change", id.as_str())],
            Some("http://evil.example"),
        ),
    ] {
        let refused = post_form(addr, &retry, &fields, Some(&cookie), origin).await;
        assert_eq!(
            refused.status, 403,
            "{fields:?} {origin:?}: {}",
            refused.body
        );
    }
    assert_eq!(
        json(&get(addr, &format!("/api/changes/{id}"), None).await)["starts"][0]["state"],
        "dead"
    );

    // Cookie and CSRF token: retried, back to the change's page; the runner now says yes.
    let fields = [("csrf", csrf.as_str()), ("change", id.as_str())];
    let retried = post_form(addr, &retry, &fields, Some(&cookie), None).await;
    assert_eq!(retried.status, 303, "{}", retried.body);
    assert_eq!(
        retried.header("location"),
        Some(format!("/changes/{id}?done=retried").as_str())
    );
    start_state(addr, &id, "succeeded").await;
    let page = get(addr, &format!("/changes/{id}?done=retried"), Some(&cookie)).await;
    assert!(page.body.contains("Start retried"), "{}", page.body);
    pages.push(page.body);

    // Replay: `docs` still does not start it; `deploy` has a succeeded start (a duplicate).
    let replay = format!("/changes/{}/replay", &id[..8]);
    let fields = [("csrf", csrf.as_str()), ("pipeline", "")];
    let replayed = post_form(addr, &replay, &fields, Some(&cookie), None).await;
    assert_eq!(replayed.status, 303, "{}", replayed.body);
    assert_eq!(
        replayed.header("location"),
        Some(format!("/changes/{id}?replayed=0&duplicates=1").as_str())
    );
    let fields = [("csrf", csrf.as_str()), ("pipeline", "nope")];
    let unknown = post_form(addr, &replay, &fields, Some(&cookie), None).await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    assert!(
        unknown.body.contains("no pipeline named"),
        "{}",
        unknown.body
    );

    // A failed poll is on the overview with its error and hint.
    let overview = until("the failed poll on the overview", async || {
        let page = get(addr, "/", Some(&cookie)).await.body;
        page.contains("in a row").then_some(page)
    })
    .await;
    assert!(overview.contains("missing.git"), "{overview}");
    assert!(overview.contains("hint: "), "{overview}");
    assert!(
        overview.contains("<td>webhook</td><td>0</td>"),
        "{overview}"
    );
    pages.push(overview);

    // Logged out again: the cookie is cleared, and the session is over: the old cookie and
    // CSRF token, replayed, are worth nothing.
    let out = post_form(addr, "/logout", &[("csrf", &csrf)], Some(&cookie), None).await;
    assert_eq!(out.status, 303);
    assert!(
        out.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0"))
    );
    let page = get(addr, &next, Some(&cookie)).await;
    assert!(page.body.contains("action=\"/login\""), "{}", page.body);
    assert!(!page.body.contains("retry</button>"), "{}", page.body);
    let replayed = post_form(
        addr,
        &retry,
        &[("csrf", csrf.as_str()), ("change", id.as_str())],
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(replayed.status, 401, "{}", replayed.body);

    // The token never shows: in no page, no log line.
    for page in &pages {
        assert!(!page.contains(TOKEN), "{page}");
    }
    let logs = format!("{}{}", server.out(), server.err());
    assert!(!logs.contains(TOKEN), "{logs}");
    assert!(logs.contains("a wrong operator token"), "{logs}");
    server.stop().await;
}

/// A sha that looks like one (for the screenshots).
fn commit(n: u64) -> String {
    switchyard::signature::hmac_sha256_hex(b"status", &n.to_be_bytes())[..40].to_owned()
}

/// Where the screenshots for the README go: `target/` of the crate.
fn screenshot(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&dir).expect("target/");
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_a_real_browser() {
    let Some(browser) = or_skip(Browser::launch().await) else {
        return;
    };
    browser
        .call(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({"width": 1360, "height": 860, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await
        .expect("a viewport");
    let (_runner, runner_addr) = Runner::scripted(&[400]).await.expect("runner");
    // Two polled repositories: one that answers, one that does not exist.
    let work = Work::new();
    work.commit(&[("README.md", Some("hello\n"))], "first");
    let repos = tempfile::tempdir().expect("temp dir");
    let origin = bare(repos.path(), "tools.git");
    work.push(&origin, &["HEAD:refs/heads/main"]);
    let polls = format!(
        "poll:\n  - url: {}\n    interval: 5s\n  - url: $DIR/missing.git\n    interval: 5s\n",
        origin.display()
    );
    let p = project(runner_addr, true, &polls);
    let server = start(&p).await;
    let addr = server.addr();
    let base = format!("http://{addr}");
    let id = post(addr, "d-1", &push(SCRIPT_REF, &commit(1), &["src/lib.rs"])).await;
    start_state(addr, &id, "dead").await;
    let docs = post(
        addr,
        "d-2",
        &push(
            "refs/heads/main",
            &commit(2),
            &["docs/guide.md", "src/lib.rs"],
        ),
    )
    .await;
    start_state(addr, &docs, "succeeded").await;
    until("both polls reported", async || {
        let page = get(addr, "/", None).await.body;
        (page.contains("in a row") && page.contains(">ok<")).then_some(())
    })
    .await;

    // The overview lists the change; the ref with a script element is text, and ran nothing.
    browser
        .goto(&format!("{base}/"))
        .await
        .expect("the overview");
    let changes = browser
        .text("table.changes")
        .await
        .expect("text")
        .unwrap_or_default();
    assert!(changes.contains(&id[..12]), "{changes}");
    assert!(changes.contains(SCRIPT_REF), "{changes}");
    assert_eq!(
        browser.eval("typeof window.pwned").await.expect("eval"),
        "undefined"
    );
    assert_eq!(
        browser.eval("document.scripts.length").await.expect("eval"),
        0
    );
    assert_eq!(
        browser
            .eval("document.querySelectorAll('button[value=retry]').length")
            .await
            .expect("eval"),
        0,
        "no retry button without the operator's session"
    );

    // The change's page shows the decision log.
    browser
        .goto(&format!("{base}/changes/{id}"))
        .await
        .expect("the change");
    let log = browser
        .text("table.decisions")
        .await
        .expect("text")
        .unwrap_or_default();
    assert!(log.contains("deploy") && log.contains("start"), "{log}");
    assert!(
        log.contains("docs\tskip\tno changed path matched on.push.paths"),
        "{log}"
    );
    assert!(
        browser
            .text("dl.event")
            .await
            .expect("text")
            .unwrap_or_default()
            .contains(SCRIPT_REF)
    );

    assert_eq!(browser.console_errors(), Vec::<String>::new());

    // A wrong token: the 401 page (which the browser logs as a failed load, the one error
    // expected below).
    let fill = |token: &str| {
        format!(
            "document.querySelector('input[name=token]').value = {}",
            serde_json::json!(token)
        )
    };
    browser.eval(&fill("not-the-token")).await.expect("fill");
    browser
        .click_and_wait("form.login button")
        .await
        .expect("log in");
    let h1 = browser.text("h1").await.expect("text").unwrap_or_default();
    assert_eq!(h1, "401 wrong operator token");

    // The token: back on the change's page, now with the buttons.
    browser.eval(&fill(TOKEN)).await.expect("fill");
    browser
        .click_and_wait("form.login button")
        .await
        .expect("log in");
    let url = browser.eval("location.pathname").await.expect("eval");
    assert_eq!(url, format!("/changes/{id}").as_str());
    let buttons = browser
        .eval("document.querySelectorAll('table.starts button[value=retry]').length")
        .await
        .expect("eval");
    assert_eq!(buttons, 1);
    browser
        .screenshot(&screenshot("status-change.png"))
        .await
        .expect("a screenshot of the change");
    browser
        .goto(&format!("{base}/"))
        .await
        .expect("the overview");
    browser
        .screenshot(&screenshot("status-page.png"))
        .await
        .expect("a screenshot of the overview");

    // With JavaScript off the page and its forms work the same: retry the dead start.
    browser.set_javascript(false).await.expect("JavaScript off");
    browser
        .goto(&format!("{base}/changes/{id}"))
        .await
        .expect("the change");
    let log = browser
        .text("table.decisions")
        .await
        .expect("text")
        .unwrap_or_default();
    assert!(log.contains("on.push.paths"), "{log}");
    browser
        .click_and_wait("table.starts button[value=retry]")
        .await
        .expect("retry");
    let notice = browser
        .text("p.notice")
        .await
        .expect("text")
        .unwrap_or_default();
    assert!(notice.contains("Start retried"), "{notice}");
    let view = start_state(addr, &id, "succeeded").await;
    assert_eq!(
        view["starts"][0]["attempts"], 1,
        "a fresh set of attempts: {view:#}"
    );
    let errors = browser.console_errors();
    assert!(
        errors.len() == 1 && errors[0].contains("status of 401") && errors[0].ends_with("/login)"),
        "only the wrong token's 401: {errors:?}"
    );
    assert!(!browser.html().await.expect("html").contains(TOKEN));
    server.stop().await;
}

/// The page answers only for the names it knows: a name an attacker points at 127.0.0.1 is not
/// one (DNS rebinding), whatever is asked of it. A name a proxy forwards (`status.hosts`) reads
/// only with the operator's session; under a loopback name the page stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_answers_only_for_its_names_and_a_forwarded_name_needs_the_session() {
    let (_runner, runner_addr) = Runner::scripted(&[200]).await.expect("runner");
    let p = project(runner_addr, true, "status: {hosts: [ci.example.com]}\n");
    let server = start(&p).await;
    let addr = server.addr();
    let id = post(
        addr,
        "d-1",
        &push("refs/heads/main", &sha(1), &["src/secret-plans.md"]),
    )
    .await;
    let reads = [
        "/".to_owned(),
        "/api/changes".to_owned(),
        format!("/api/changes/{id}"),
        format!("/changes/{id}"),
    ];
    let as_host = |host: &str| vec![("host", host.to_owned())];
    let shows_nothing =
        |a: &Answer| !a.body.contains("secret-plans") && !a.body.contains("refs/heads/main");
    for path in &reads {
        let a = exchange(
            addr,
            "GET",
            path,
            &as_host("evil.example:8080"),
            String::new(),
        )
        .await;
        assert_eq!(a.status, 421, "{path}: {}", a.body);
        assert!(shows_nothing(&a), "{path}: {}", a.body);
    }
    let form = |host: &str| {
        vec![
            ("host", host.to_owned()),
            ("origin", format!("http://{host}")),
            (
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
        ]
    };
    let login = format!("token={TOKEN}");
    let refused = exchange(
        addr,
        "POST",
        "/login",
        &form("evil.example:8080"),
        login.clone(),
    )
    .await;
    assert_eq!(refused.status, 421, "{}", refused.body);
    assert_eq!(refused.header("set-cookie"), None);

    // Through the proxy's name: nothing without the session; a login form on the pages.
    for path in &reads {
        let a = exchange(addr, "GET", path, &as_host("ci.example.com"), String::new()).await;
        assert_eq!(a.status, 401, "{path}: {}", a.body);
        assert!(shows_nothing(&a), "{path}: {}", a.body);
    }
    let page = exchange(
        addr,
        "GET",
        &reads[3],
        &as_host("ci.example.com"),
        String::new(),
    )
    .await;
    assert!(page.body.contains("action=\"/login\""), "{}", page.body);
    let logged = exchange(addr, "POST", "/login", &form("ci.example.com"), login).await;
    assert_eq!(logged.status, 303, "{}", logged.body);
    let set = logged.header("set-cookie").expect("a session cookie");
    let cookie = set.split(';').next().expect("name=value").to_owned();
    for path in &reads {
        let mut headers = as_host("ci.example.com");
        headers.push(("cookie", cookie.clone()));
        let a = exchange(addr, "GET", path, &headers, String::new()).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
    }
    let list = exchange(
        addr,
        "GET",
        "/api/changes",
        &{
            let mut headers = as_host("ci.example.com");
            headers.push(("cookie", cookie.clone()));
            headers
        },
        String::new(),
    )
    .await;
    assert!(list.body.contains(&id), "{}", list.body);

    // Under a loopback name, on this loopback listener, the page is open as before.
    let open = get(addr, "/api/changes", None).await;
    assert_eq!(open.status, 200, "{}", open.body);
    assert!(open.body.contains(&id), "{}", open.body);
    // Webhooks answer whatever the Host: senders name the public host.
    let hook = exchange(
        addr,
        "GET",
        "/healthz",
        &as_host("evil.example:8080"),
        String::new(),
    )
    .await;
    assert_eq!(hook.status, 200, "{}", hook.body);
}

/// A guesser at `/login` gets a few tries, then waits (429 with `Retry-After`), its tokens not
/// even compared, the right one included; the log hears a summary, not a line per try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_at_login_make_the_address_wait_and_are_logged_in_summary() {
    let (_runner, runner_addr) = Runner::scripted(&[200]).await.expect("runner");
    let p = project(runner_addr, true, "");
    let server = start(&p).await;
    let addr = server.addr();
    let mut statuses = Vec::new();
    for n in 0..200 {
        let guess = format!("guess-{n}");
        let a = post_form(addr, "/login", &[("token", &guess)], None, None).await;
        statuses.push(a.status);
        if a.status == 429 {
            let after: u64 = a
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("a Retry-After: {a:?}"));
            assert!((1..=300).contains(&after), "{after}");
        }
    }
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        (5..=7).contains(&wrong),
        "only the free tries were judged: {statuses:?}"
    );
    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert_eq!(
        statuses.len() - wrong,
        statuses.iter().filter(|s| **s == 429).count()
    );
    // While it waits, even the right token is not compared.
    let right = post_form(addr, "/login", &[("token", TOKEN)], None, None).await;
    assert_eq!(right.status, 429, "{}", right.body);
    assert_eq!(right.header("set-cookie"), None);
    let lines = server
        .err()
        .lines()
        .filter(|l| l.contains("wrong operator token"))
        .count();
    assert!(
        (2..=4).contains(&lines),
        "{lines} log lines:\n{}",
        server.err()
    );
    // After the wait, the right token logs in.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let right = until("the wait to end", async || {
        let a = post_form(addr, "/login", &[("token", TOKEN)], None, None).await;
        (a.status != 429).then_some(a)
    })
    .await;
    assert_eq!(right.status, 303, "{}", right.body);
}

/// A ref or path that holds invisible or text-reordering characters (a right-to-left override
/// (U+202E) makes `refs/heads/release\u{202E}gnp.exe` read as `…exe.png`) is shown with them escaped, on the page
/// and in the commands' text; the JSON keeps the value as it came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invisible_and_reordering_characters_are_shown_escaped() {
    let (_runner, runner_addr) = Runner::start().await.expect("runner");
    let p = project(runner_addr, false, "");
    let server = start(&p).await;
    let addr = server.addr();
    let git_ref = "refs/heads/release\u{202E}gnp.exe";
    let body = push(git_ref, &sha(9), &["docs/a\u{200B}b.md"]);
    let id = post(addr, "d-bidi", &body).await;
    for path in ["/".to_owned(), format!("/changes/{id}")] {
        let page = get(addr, &path, None).await.body;
        assert!(
            !page.contains('\u{202E}'),
            "{path}: raw override in the page"
        );
        assert!(page.contains("release\\u{202E}gnp.exe"), "{path}: {page}");
    }
    let page = get(addr, &format!("/changes/{id}"), None).await.body;
    assert!(page.contains("docs/a\\u{200B}b.md"), "{page}");
    let view = json(&get(addr, &format!("/api/changes/{id}"), None).await);
    assert_eq!(view["ref"], git_ref);
    let list = p.run(&["changes", "list"], &[], "");
    assert!(list.success(), "{}", list.stderr);
    assert!(!list.stdout.contains('\u{202E}'), "{}", list.stdout);
    assert!(
        list.stdout.contains("release\\u{202E}gnp.exe"),
        "{}",
        list.stdout
    );
    let show = p.run(&["changes", "show", &id], &[], "");
    assert!(
        show.stdout.contains("release\\u{202E}gnp.exe"),
        "{}",
        show.stdout
    );
    assert!(!show.stdout.contains('\u{202E}'), "{}", show.stdout);
    server.stop().await;
}
