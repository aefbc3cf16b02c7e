//! The HTTP runner targets (`github_actions`, `gitlab`, `buildkite`, `jenkins`) through the real
//! `switchyard serve`, against the lab's runner APIs: each start sends its runner's documented
//! request once and the run it made is listed by `outbox list`; refusals are dead-lettered at
//! once with their hint; throttling is waited out as the runner asks and server errors are
//! retried; and no credential is ever shown, not even one a runner echoes back.
//!
//! Each test runs one `serve` with a pipeline per case, all started by one push.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use switchyard::store::{Admin, StartState};
use switchyard_lab::runner_apis::{
    BUILDKITE_TOKEN, GITHUB_TOKEN, GITLAB_TOKEN, JENKINS_TOKEN, JENKINS_USER,
};
use switchyard_lab::{Api, Call, Reply, RunnerApis, Serve};

use crate::support::{Project, change, eventually, serve, sha, try_post};

/// A token no runner accepts, in `serve`'s environment as `WRONG_TOKEN`.
const WRONG_TOKEN: &str = "wrong0token0of0no0runner0123456789";

/// The repository every pipeline listens to (`support::change`'s).
const REPOSITORY: &str = "https://github.com/acme/api.git";

/// Each runner endpoint: a short name, and how its resources are named (`{}` is a name).
const RUNNERS: [(&str, Api, &str); 5] = [
    ("workflow", Api::GithubWorkflow, "acme/{}/deploy.yml"),
    ("dispatch", Api::GithubRepository, "acme/{}"),
    ("gitlab", Api::Gitlab, "acme/{}"),
    ("buildkite", Api::Buildkite, "acme/{}"),
    ("jenkins", Api::Jenkins, "folder/{}"),
];

/// Every credential `serve` is given, in each form it travels in: none may be shown.
fn secrets() -> Vec<String> {
    let basic = |token: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!("{JENKINS_USER}:{token}"))
    };
    let mut all: Vec<String> = [
        GITHUB_TOKEN,
        GITLAB_TOKEN,
        BUILDKITE_TOKEN,
        JENKINS_TOKEN,
        WRONG_TOKEN,
    ]
    .map(str::to_owned)
    .into();
    all.push(basic(JENKINS_TOKEN));
    all.push(basic(WRONG_TOKEN));
    all
}

/// One pipeline: its name, the endpoint and resource its start calls (named as
/// [`Api`] says), and the environment variable its token is read from.
struct Case {
    name: String,
    api: Api,
    resource: String,
    token: &'static str,
    /// Whether its start passes values made of templates (inputs, variables, parameters…).
    values: bool,
}

impl Case {
    /// A pipeline with the runner's right token.
    fn new(name: &str, api: Api, resource: &str) -> Case {
        let token = match api {
            Api::GithubWorkflow | Api::GithubRepository => "GITHUB_TOKEN",
            Api::Gitlab => "GITLAB_TOKEN",
            Api::Buildkite => "BUILDKITE_TOKEN",
            Api::Jenkins => "JENKINS_TOKEN",
        };
        Case {
            name: name.to_owned(),
            api,
            resource: resource.to_owned(),
            token,
            values: true,
        }
    }

    /// The same with a token the runner refuses.
    fn wrong_token(self) -> Case {
        Case {
            token: "WRONG_TOKEN",
            ..self
        }
    }

    /// The same passing no values (for Jenkins: `/build` instead of `buildWithParameters`).
    fn without_values(self) -> Case {
        Case {
            values: false,
            ..self
        }
    }

    /// Its pipeline file, the start's values made of templates.
    fn pipeline(&self, url: &str) -> String {
        let resource = self.resource.as_str();
        let (first, rest) = resource.split_once('/').unwrap_or(("", resource));
        // (the target's key, its fields, its values)
        let (key, fields, values) = match self.api {
            Api::GithubWorkflow => {
                let (repository, workflow) = resource.rsplit_once('/').expect("o/r/workflow");
                (
                    "github_actions",
                    format!(
                        "api_url: \"{url}\", repository: {repository}, workflow: {workflow}, ref: \"${{ref}}\""
                    ),
                    r#"inputs: {sha: "${sha}", branch: "${branch}", start: "${start_id}"}"#,
                )
            }
            Api::GithubRepository => (
                "github_actions",
                format!(
                    "api_url: \"{url}\", repository: {resource}, event_type: \"deploy-${{branch}}\""
                ),
                r#"client_payload: {sha: "${sha}", ref: "${ref}"}"#,
            ),
            Api::Gitlab => (
                "gitlab",
                format!("url: \"{url}\", project: {resource}"),
                r#"variables: {SHA: "${sha}", PIPELINE: "${pipeline}"}"#,
            ),
            Api::Buildkite => (
                "buildkite",
                format!("api_url: \"{url}\", organization: {first}, pipeline: {rest}"),
                r#"env: {SHA: "${sha}"}, meta_data: {change: "${change_id}"}"#,
            ),
            Api::Jenkins => (
                "jenkins",
                format!("url: \"{url}\", job: {resource}, user: {JENKINS_USER}"),
                r#"parameters: {SHA: "${sha}", REF: "${ref}"}"#,
            ),
        };
        let token = format!("token: \"env:{}\"", self.token);
        let values = if self.values {
            format!(", {values}")
        } else {
            String::new()
        };
        format!(
            "repository: {REPOSITORY}\non: push\nstart:\n  {key}: {{{fields}, {token}{values}}}\n"
        )
    }
}

/// A `serve` whose pipelines are the cases, calling the runner APIs.
struct Lab {
    project: Project,
    serve: Serve,
}

impl Lab {
    /// Serves the cases, retrying after `backoff` (and twice that at most) up to 5 attempts.
    async fn start(apis: &RunnerApis, cases: &[Case], backoff: &str) -> Lab {
        let project = Project::served(&format!(
            "dispatch: {{attempts: 5, backoff: {backoff}, backoff_max: 1s}}\n"
        ));
        for case in cases {
            project.file(
                &format!("triggers/{}.yaml", case.name),
                &case.pipeline(&apis.url()),
            );
        }
        let check = project.run(&["check"], &[], "");
        assert_eq!(check.code, Some(0), "{}{}", check.stdout, check.stderr);
        let env = [
            ("GITHUB_TOKEN", GITHUB_TOKEN.to_owned()),
            ("GITLAB_TOKEN", GITLAB_TOKEN.to_owned()),
            ("BUILDKITE_TOKEN", BUILDKITE_TOKEN.to_owned()),
            ("JENKINS_TOKEN", JENKINS_TOKEN.to_owned()),
            ("WRONG_TOKEN", WRONG_TOKEN.to_owned()),
        ];
        let serve = serve(project.root(), &env).await;
        Lab { project, serve }
    }

    /// Pushes `sha` to main; waits until every start it made succeeded or was dead-lettered:
    /// `outbox list --all --format json`, by pipeline.
    async fn push(&self, sha: &str, starts: usize) -> HashMap<String, Value> {
        let (status, answer) = try_post(self.serve.addr(), "d-1", &change("refs/heads/main", sha))
            .await
            .expect("serve answers");
        assert_eq!(status, 202, "{answer}");
        assert_eq!(
            answer["starts"].as_array().map(Vec::len),
            Some(starts),
            "{answer}"
        );
        let admin = Admin::open(&self.project.root().join("state")).expect("admin");
        eventually(30, "every start succeeded or dead-lettered", || {
            let rows = admin.starts(&[]).expect("starts");
            rows.iter()
                .all(|r| matches!(r.state, StartState::Succeeded | StartState::Dead))
                .then_some(())
        })
        .await;
        self.outbox("json")
            .lines()
            .map(|l| {
                let row: Value = serde_json::from_str(l).expect("a JSON line");
                (row["pipeline"].as_str().expect("pipeline").to_owned(), row)
            })
            .collect()
    }

    /// `switchyard outbox list --all --format FORMAT`.
    fn outbox(&self, format: &str) -> String {
        let run = self
            .project
            .run(&["outbox", "list", "--all", "--format", format], &[], "");
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        run.stdout
    }

    /// No credential in what `serve` printed nor in `outbox list`.
    fn assert_no_credential_shown(&self) {
        let shown = [
            ("serve's stdout", self.serve.out()),
            ("serve's log", self.serve.err()),
            ("outbox list", self.outbox("text")),
            ("outbox list --format json", self.outbox("json")),
        ];
        for (what, text) in &shown {
            for secret in secrets() {
                assert!(!text.contains(&secret), "{what} shows {secret}:\n{text}");
            }
        }
    }
}

/// The one call to `resource` of `api`.
fn only_call(apis: &RunnerApis, api: Api, resource: &str) -> Call {
    let calls = apis.calls_to(api, resource);
    assert_eq!(calls.len(), 1, "{api:?} {resource}: {calls:#?}");
    calls.into_iter().next().expect("one call")
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_runner_gets_its_documented_request_and_the_run_is_listed() {
    let apis = RunnerApis::start().await.expect("runner APIs");
    let cases = [
        Case::new("workflow", Api::GithubWorkflow, "acme/api/deploy.yml"),
        Case::new("dispatch", Api::GithubRepository, "acme/api"),
        Case::new("gitlab", Api::Gitlab, "acme/api"),
        Case::new("buildkite", Api::Buildkite, "acme/api"),
        Case::new("jenkins", Api::Jenkins, "folder/api"),
        Case::new("jenkins-plain", Api::Jenkins, "plain").without_values(),
    ];
    for case in &cases {
        apis.add(case.api, &case.resource);
    }
    let lab = Lab::start(&apis, &cases, "100ms").await;
    let commit = sha(7);
    let outbox = lab.push(&commit, cases.len()).await;
    assert_eq!(apis.calls().len(), cases.len(), "one request per start");
    for case in &cases {
        let row = &outbox[&case.name];
        assert_eq!(row["state"], "succeeded", "{row}");
        assert_eq!(row["attempts"], 1, "{row}");
    }
    let start_id = |name: &str| text(&outbox[name]["start_id"]).to_owned();
    let json_headers = |call: &Call, auth: &str| {
        assert_eq!(call.method, "POST");
        assert_eq!(call.header("content-type"), "application/json");
        assert_eq!(call.header("authorization"), auth);
        assert!(
            call.header("user-agent").starts_with("switchyard/"),
            "{call:?}"
        );
    };

    // GitHub: a workflow_dispatch asking for the run's details, which come back.
    let call = only_call(&apis, Api::GithubWorkflow, "acme/api/deploy.yml");
    assert_eq!(
        call.path,
        "/repos/acme/api/actions/workflows/deploy.yml/dispatches"
    );
    json_headers(&call, &format!("Bearer {GITHUB_TOKEN}"));
    assert_eq!(call.header("accept"), "application/vnd.github+json");
    assert_eq!(call.header("x-github-api-version"), "2022-11-28");
    assert_eq!(
        call.json(),
        serde_json::json!({
            "ref": "refs/heads/main",
            "inputs": {"sha": commit, "branch": "main", "start": start_id("workflow")},
            "return_run_details": true,
        })
    );
    assert_eq!(call.reply.status, 200);
    let details: Value = serde_json::from_str(&call.reply.body).expect("details");
    assert_eq!(outbox["workflow"]["run"], details["html_url"]);

    // GitHub: a repository_dispatch, answered 204 without a run.
    let call = only_call(&apis, Api::GithubRepository, "acme/api");
    assert_eq!(call.path, "/repos/acme/api/dispatches");
    json_headers(&call, &format!("Bearer {GITHUB_TOKEN}"));
    assert_eq!(call.header("x-github-api-version"), "2022-11-28");
    assert_eq!(
        call.json(),
        serde_json::json!({
            "event_type": "deploy-main",
            "client_payload": {"sha": commit, "ref": "refs/heads/main"},
        })
    );
    assert_eq!(call.reply.status, 204);
    assert_eq!(outbox["dispatch"]["run"], Value::Null);

    // GitLab: the trigger token, the branch and the variables as a form.
    let call = only_call(&apis, Api::Gitlab, "acme/api");
    assert_eq!(call.method, "POST");
    assert_eq!(call.path, "/api/v4/projects/acme%2Fapi/trigger/pipeline");
    assert_eq!(
        call.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        call.header("authorization"),
        "",
        "the token goes in the form"
    );
    let form: HashMap<String, String> = call.form().into_iter().collect();
    let expected: HashMap<String, String> = [
        ("token", GITLAB_TOKEN),
        ("ref", "main"),
        ("variables[SHA]", commit.as_str()),
        ("variables[PIPELINE]", "gitlab"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(form, expected);
    assert_eq!(call.reply.status, 201);
    let pipeline: Value = serde_json::from_str(&call.reply.body).expect("pipeline");
    assert_eq!(outbox["gitlab"]["run"], pipeline["web_url"]);

    // Buildkite: commit, branch, the default message, env and meta-data.
    let call = only_call(&apis, Api::Buildkite, "acme/api");
    assert_eq!(call.path, "/v2/organizations/acme/pipelines/api/builds");
    json_headers(&call, &format!("Bearer {BUILDKITE_TOKEN}"));
    let body = call.json();
    assert_eq!(body["commit"], commit.as_str());
    assert_eq!(body["branch"], "main");
    assert_eq!(
        body["message"],
        format!(
            "github.com/acme/api refs/heads/main (switchyard {})",
            start_id("buildkite")
        )
    );
    assert_eq!(body["env"], serde_json::json!({"SHA": commit}));
    assert_eq!(body["meta_data"]["change"], outbox["buildkite"]["change"]);
    assert_eq!(call.reply.status, 201);
    let build: Value = serde_json::from_str(&call.reply.body).expect("build");
    assert_eq!(outbox["buildkite"]["run"], build["web_url"]);

    // Jenkins: Basic user:token, the parameters as a form; the queue item is the run.
    let call = only_call(&apis, Api::Jenkins, "folder/api");
    assert_eq!(call.method, "POST");
    assert_eq!(call.path, "/job/folder/job/api/buildWithParameters");
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{JENKINS_USER}:{JENKINS_TOKEN}"));
    assert_eq!(call.header("authorization"), format!("Basic {basic}"));
    assert_eq!(
        call.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let form: HashMap<String, String> = call.form().into_iter().collect();
    assert_eq!(form.len(), 2, "{form:?}");
    assert_eq!(form["SHA"], commit);
    assert_eq!(form["REF"], "refs/heads/main");
    assert_eq!(call.reply.status, 201);
    let location = call.reply.header_value("location").expect("Location");
    assert_eq!(text(&outbox["jenkins"]["run"]), location);
    // Without parameters: `/build`, with nothing in the body.
    let call = only_call(&apis, Api::Jenkins, "plain");
    assert_eq!(call.path, "/job/plain/build");
    assert_eq!(call.header("authorization"), format!("Basic {basic}"));
    assert!(call.body.is_empty(), "{call:?}");
    assert_eq!(call.reply.status, 201);
    let location = call.reply.header_value("location").expect("Location");
    assert_eq!(text(&outbox["jenkins-plain"]["run"]), location);

    // The table shows each run under its start.
    let table = lab.outbox("text");
    for name in ["workflow", "gitlab", "buildkite", "jenkins"] {
        let run = format!("run: {}", text(&outbox[name]["run"]));
        assert!(
            table.lines().any(|l| l.trim_end().ends_with(&run)),
            "{table}"
        );
    }
    lab.assert_no_credential_shown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_dead_lettered_at_once_with_a_hint_and_no_credential_shown() {
    let apis = RunnerApis::start().await.expect("runner APIs");
    // (pipeline, endpoint, resource, what its last error must say)
    let mut expected: Vec<(String, Api, String, Vec<String>)> = Vec::new();
    let mut cases = Vec::new();
    for (runner, api, shape) in RUNNERS {
        let resource = |what: &str| shape.replace("{}", what);
        let name = |what: &str| format!("{runner}-{what}");
        let label = match api {
            Api::GithubWorkflow | Api::GithubRepository => "GitHub",
            Api::Gitlab => "GitLab",
            Api::Buildkite => "Buildkite",
            Api::Jenkins => "Jenkins",
        };
        // 401: a token the runner refuses (GitLab answers a wrong trigger token with 404, so
        // its 401 is scripted).
        let refused = Case::new(&name("401"), api, &resource("refused"));
        apis.add(api, &refused.resource);
        if api == Api::Gitlab {
            apis.script(
                api,
                &refused.resource,
                [Reply::status(401).body(r#"{"message":"401 Unauthorized"}"#)],
            );
            cases.push(refused);
        } else {
            cases.push(refused.wrong_token());
        }
        let says = [
            "401 Unauthorized".to_owned(),
            format!("\nhint: {label} refused the credential"),
        ];
        expected.push((name("401"), api, resource("refused"), says.into()));
        // 403: a token without the permission.
        let forbidden = Case::new(&name("403"), api, &resource("forbidden"));
        apis.add(api, &forbidden.resource);
        apis.script(
            api,
            &forbidden.resource,
            [Reply::status(403)
                .body(r#"{"message":"Resource not accessible by personal access token"}"#)],
        );
        cases.push(forbidden);
        expected.push((
            name("403"),
            api,
            resource("forbidden"),
            vec![
                "403 Forbidden".into(),
                "\nhint: the credential lacks a permission".into(),
            ],
        ));
        // 404: what the target names does not exist.
        cases.push(Case::new(&name("404"), api, &resource("missing")));
        expected.push((
            name("404"),
            api,
            resource("missing"),
            vec!["404 Not Found".into(), "\nhint: check that".into()],
        ));
        // A 400 whose body quotes the credential (Jenkins: the user:token it decoded).
        let echo = Case::new(&name("echo"), api, &resource("echo"));
        apis.add(api, &echo.resource);
        apis.script(
            api,
            &echo.resource,
            [Reply::status(400).body("refused").echoing()],
        );
        cases.push(echo);
        expected.push((
            name("echo"),
            api,
            resource("echo"),
            vec![
                "400 Bad Request".into(),
                "[credential]\"".into(),
                "\"message\":\"refused\"".into(),
            ],
        ));
    }
    // GitLab's answer to a trigger token of another project.
    let other = Case::new("gitlab-other-token", Api::Gitlab, "acme/other").wrong_token();
    apis.add(Api::Gitlab, "acme/other");
    cases.push(other);
    expected.push((
        "gitlab-other-token".into(),
        Api::Gitlab,
        "acme/other".into(),
        vec![
            "404 Not Found".into(),
            "\nhint: check that project acme/other exists".into(),
        ],
    ));

    let lab = Lab::start(&apis, &cases, "50ms").await;
    let outbox = lab.push(&sha(8), cases.len()).await;
    for (name, api, resource, says) in &expected {
        let row = &outbox[name];
        assert_eq!(row["state"], "dead", "{name}: {row}");
        assert_eq!(row["attempts"], 1, "{name}: {row}");
        for said in says {
            assert!(
                text(&row["last_error"]).contains(said.as_str()),
                "{name}: {said:?} in {row}"
            );
        }
        only_call(&apis, *api, resource);
    }
    // The hint is a line of its own under the start in the table.
    let table = lab.outbox("text");
    assert!(
        table.lines().any(|l| l
            .trim_start()
            .starts_with("hint: Jenkins refused the credential")),
        "{table}"
    );
    lab.assert_no_credential_shown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_waits_as_the_runner_asks_and_server_errors_are_retried() {
    let apis = RunnerApis::start().await.expect("runner APIs");
    let mut cases = Vec::new();
    for (runner, api, shape) in RUNNERS {
        let resource = |what: &str| shape.replace("{}", what);
        let throttled = Case::new(&format!("throttled-{runner}"), api, &resource("throttled"));
        let retry_after = Reply::status(429).header("retry-after", "2");
        apis.script(api, &throttled.resource, [retry_after]);
        let failing = Case::new(&format!("failing-{runner}"), api, &resource("failing"));
        let errors = [Reply::status(500), Reply::status(503)];
        apis.script(api, &failing.resource, errors);
        cases.extend([throttled, failing]);
    }
    // GitHub's spent rate limit (403, remaining 0, reset at a Unix second) and its secondary
    // limit (403 with Retry-After).
    let reset = jiff::Timestamp::now().as_second() + 2;
    let limited = Case::new(
        "rate-limited",
        Api::GithubWorkflow,
        "acme/limited/deploy.yml",
    );
    apis.script(
        Api::GithubWorkflow,
        &limited.resource,
        [Reply::status(403)
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", reset.to_string())
            .body(r#"{"message":"API rate limit exceeded for user ID 1."}"#)],
    );
    let secondary = Case::new("secondary-limit", Api::GithubRepository, "acme/secondary");
    apis.script(
        Api::GithubRepository,
        &secondary.resource,
        [Reply::status(403)
            .header("retry-after", "1")
            .body(r#"{"message":"You have exceeded a secondary rate limit."}"#)],
    );
    cases.extend([limited, secondary]);
    for case in &cases {
        apis.add(case.api, &case.resource);
    }

    // The backoff is short: only the runner's word makes a start wait seconds.
    let lab = Lab::start(&apis, &cases, "100ms").await;
    let outbox = lab.push(&sha(9), cases.len()).await;
    for case in &cases {
        let row = &outbox[&case.name];
        assert_eq!(row["state"], "succeeded", "{}: {row}", case.name);
        assert!(
            row["run"].is_string() || case.api == Api::GithubRepository,
            "{row}"
        );
    }
    let gap = |calls: &[Call], i: usize| calls[i].at.duration_since(calls[i - 1].at);
    for case in &cases {
        let calls = apis.calls_to(case.api, &case.resource);
        let statuses: Vec<u16> = calls.iter().map(|c| c.reply.status).collect();
        let name = case.name.as_str();
        if name.starts_with("throttled") {
            assert_eq!(statuses.len(), 2, "{name}: {statuses:?}");
            assert!(
                gap(&calls, 1) >= Duration::from_secs(2),
                "{name}: retried after {:?}",
                gap(&calls, 1)
            );
        } else if name.starts_with("failing") {
            assert_eq!(statuses.len(), 3, "{name}: {statuses:?}");
            // The configured backoff (100 ms, then 200 ms, with jitter), not seconds.
            assert!(
                gap(&calls, 1) < Duration::from_secs(2),
                "{name}: retried after {:?}",
                gap(&calls, 1)
            );
        } else if name == "rate-limited" {
            assert_eq!(statuses.len(), 2, "{name}: {statuses:?}");
            assert!(
                calls[1].at_ms >= (reset * 1000) as f64,
                "{name}: retried at {} ms, before the reset at {reset} s",
                calls[1].at_ms
            );
        } else {
            assert_eq!(statuses.len(), 2, "{name}: {statuses:?}");
            assert!(
                gap(&calls, 1) >= Duration::from_secs(1),
                "{name}: retried after {:?}",
                gap(&calls, 1)
            );
        }
        assert_eq!(outbox[name]["attempts"], statuses.len(), "{name}");
    }
    lab.assert_no_credential_shown();
}

/// A GitHub Enterprise Server that does not know `return_run_details` yet answers the workflow
/// dispatch 204: the start succeeds with no run to record. A GitLab project named by its numeric
/// id is started like one named by its path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_github_tells_no_run_and_a_gitlab_project_may_be_an_id() {
    let apis = RunnerApis::start().await.expect("runner APIs");
    let older = Case::new("older-github", Api::GithubWorkflow, "acme/older/deploy.yml");
    apis.script(Api::GithubWorkflow, &older.resource, [Reply::status(204)]);
    let by_id = Case::new("gitlab-by-id", Api::Gitlab, "4242");
    let cases = [older, by_id];
    for case in &cases {
        apis.add(case.api, &case.resource);
    }
    let lab = Lab::start(&apis, &cases, "100ms").await;
    let outbox = lab.push(&sha(11), cases.len()).await;

    let older = &outbox["older-github"];
    assert_eq!(older["state"], "succeeded", "{older}");
    assert_eq!(older["attempts"], 1, "{older}");
    assert!(
        older["run"].is_null(),
        "no run told, none recorded: {older}"
    );

    let by_id = &outbox["gitlab-by-id"];
    assert_eq!(by_id["state"], "succeeded", "{by_id}");
    let call = only_call(&apis, Api::Gitlab, "4242");
    assert_eq!(call.path, "/api/v4/projects/4242/trigger/pipeline");
    assert!(
        by_id["run"]
            .as_str()
            .is_some_and(|run| run.contains("/pipelines/")),
        "{by_id}"
    );
    lab.assert_no_credential_shown();
}
