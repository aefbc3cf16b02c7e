//! The targets' definitions, requests and judgements, without I/O: a carrier that records each
//! request and answers as scripted.

use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::diag::Diagnostics;
use crate::event::{ChangeEvent, Source, SourceKind};
use crate::yaml::Value;

fn read_text(text: &str) -> (Option<Target>, Vec<String>) {
    let node = crate::yaml::parse(&format!("start: {{{}}}\n", text.trim_end())).expect("yaml");
    let Value::Map(entries) = &node.value else {
        panic!("a mapping");
    };
    let mut d = Diagnostics::new("t.yaml");
    let target = read_start(&entries[0].1, &mut d).map(|(t, _)| t);
    let messages = d.items.iter().map(|x| x.message.clone()).collect();
    (target, messages)
}

#[test]
fn defaults_fill_what_a_runner_needs() {
    let (target, errors) =
        read_text("buildkite: {organization: acme, pipeline: api, token: env:T}");
    assert!(errors.is_empty(), "{errors:?}");
    let Some(Target::Buildkite(b)) = target else {
        panic!("{target:?}");
    };
    assert_eq!(b.api_url, "https://api.buildkite.com");
    assert_eq!(b.commit.to_string(), "${sha}");
    assert_eq!(b.branch.to_string(), "${branch}${tag}");

    let (target, errors) =
        read_text("github_actions: {repository: acme/api, workflow: ci.yml, token: env:T}");
    assert!(errors.is_empty(), "{errors:?}");
    let Some(Target::GithubActions(g)) = target else {
        panic!("{target:?}");
    };
    assert_eq!(g.api_url, "https://api.github.com");
    let github_actions::Dispatch::Workflow { git_ref, .. } = g.dispatch else {
        panic!("a workflow dispatch");
    };
    assert_eq!(git_ref.to_string(), "${ref}");

    let (target, errors) = read_text(
        "jenkins: {url: \"https://ci.example.com/\", job: \"Team A/api build\", user: bot, token: file:/run/t}",
    );
    assert!(errors.is_empty(), "{errors:?}");
    let Some(Target::Jenkins(j)) = target else {
        panic!("{target:?}");
    };
    assert_eq!(j.url, "https://ci.example.com");
    assert_eq!(j.job, "Team A/api build");
    assert_eq!(
        read_text("eventbridge: {}").0,
        Some(Target::EventBridge(eventbridge::EventBridge {
            bus: "default".into(),
            detail_type: "Pipeline Start Requested".into()
        }))
    );
}

#[test]
fn runner_limits_are_checked() {
    let many: Vec<String> = (0..11).map(|i| format!("k{i}: v")).collect();
    let text = format!(
        "github_actions: {{repository: acme/api, event_type: deploy, token: env:T, client_payload: {{{}}}}}",
        many.join(", ")
    );
    let (target, errors) = read_text(&text);
    assert!(target.is_none());
    assert!(
        errors
            .iter()
            .any(|e| e.contains("11 entries, more than the 10")),
        "{errors:?}"
    );
    let (target, errors) = read_text("gitlab: {url: \"ftp://x\", project: /a, token: env:T}");
    assert!(target.is_none());
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[test]
fn start_names_exactly_one_known_target() {
    let (target, errors) = read_text("timeout: 5s");
    assert!(target.is_none());
    assert_eq!(errors, ["start names no target"]);
    let (_, errors) = read_text("exec: [a], http: {url: \"http://x\"}");
    assert_eq!(errors, ["start names more than one target"]);
    let (_, errors) = read_text("exex: [a]");
    assert!(
        errors[0].starts_with("unknown key `exex` in start"),
        "{errors:?}"
    );
    assert_eq!(KEYS.len(), 10);
    for key in KEYS {
        assert!(
            read_text(&format!("{key}: {{}}"))
                .1
                .iter()
                .all(|e| !e.contains("unknown key")),
            "{key}"
        );
    }
}

/// What a scripted carrier was asked.
#[derive(Debug)]
enum Asked {
    Program(exec::Command),
    Exchange(::http::Request<bytes::Bytes>, Vec<String>),
    Api(aws::Call),
}

/// A carrier that records each request and answers with what the test gives.
struct Scripted {
    asked: Mutex<Vec<Asked>>,
    status: u16,
    body: &'static str,
    headers: Vec<(&'static str, &'static str)>,
}

impl Scripted {
    fn answering(status: u16, body: &'static str) -> Scripted {
        Scripted {
            asked: Mutex::new(Vec::new()),
            status,
            body,
            headers: Vec::new(),
        }
    }

    fn asked(&self) -> Asked {
        self.asked.lock().expect("lock").pop().expect("a request")
    }
}

impl Carry<Program> for Scripted {
    async fn carry(&self, request: exec::Command, _: &Attempt<'_>) -> Result<exec::Exit, Failure> {
        self.asked
            .lock()
            .expect("lock")
            .push(Asked::Program(request));
        Ok(exec::Exit {
            code: Some(if self.status < 300 { 0 } else { 3 }),
            stderr: self.body.to_owned(),
        })
    }
}

impl Carry<Exchange> for Scripted {
    async fn carry(
        &self,
        request: exchange::Request,
        _: &Attempt<'_>,
    ) -> Result<exchange::Answer, Failure> {
        let mut headers = ::http::HeaderMap::new();
        for (name, value) in &self.headers {
            headers.insert(*name, ::http::HeaderValue::from_static(value));
        }
        let answer = exchange::Answer {
            status: ::http::StatusCode::from_u16(self.status).expect("a status"),
            headers,
            body: bytes::Bytes::from_static(self.body.as_bytes()),
            url: request.url,
            secrets: request.secrets.clone(),
        };
        self.asked
            .lock()
            .expect("lock")
            .push(Asked::Exchange(request.request, request.secrets));
        Ok(answer)
    }
}

impl Carry<Api> for Scripted {
    async fn carry(&self, request: aws::Call, _: &Attempt<'_>) -> Result<aws::Answer, Failure> {
        self.asked.lock().expect("lock").push(Asked::Api(request));
        Ok(if self.status < 300 {
            aws::Answer::Done {
                id: Some(self.body.to_owned()),
                refused: None,
            }
        } else {
            aws::Answer::Failed(aws::Error {
                text: format!("HTTP {} {}", self.status, self.body),
                cause: aws::Cause::Service {
                    code: Some(self.body.to_owned()),
                    status: self.status,
                },
                region: Some("eu-west-1".into()),
            })
        })
    }
}

fn event() -> ChangeEvent {
    let json = serde_json::json!({
        "schema": "switchyard.change/v1",
        "repository": "https://github.com/acme/api",
        "kind": "push",
        "ref": "refs/heads/main",
        "before": "1111111111111111111111111111111111111111",
        "after": "2222222222222222222222222222222222222222",
        "changed_paths": ["src/lib.rs"], "changed_paths_complete": true,
    });
    let source = Source {
        kind: SourceKind::Webhook,
        provider: Some("github".into()),
        delivery_id: None,
    };
    ChangeEvent::from_json(json.to_string().as_bytes(), source).expect("a valid event")
}

/// Runs one attempt of the target `text` against `carrier`, on a minimal executor (the futures
/// here never wait).
fn attempt(text: &str, carrier: &Scripted) -> Result<Run, Failure> {
    let (target, errors) = read_text(text);
    assert!(errors.is_empty(), "{errors:?}");
    let target = target.expect("a target");
    let event = event();
    let json = serde_json::to_string(&event).expect("json");
    let traceparent = TraceParent::of_change(&event.id);
    let a = Attempt {
        pipeline: "api-build",
        start_id: "0123456789abcdef0123456789abcdef",
        number: 2,
        event: &event,
        event_json: &json,
        traceparent: &traceparent,
        timeout: Duration::from_secs(5),
    };
    block_on(target.attempt(carrier, &a))
}

fn block_on<F: Future>(f: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

#[test]
fn each_kind_makes_its_documented_request_and_reads_its_run() {
    // The HTTP runners read their credential at each attempt: from a file the test writes.
    let dir = std::env::temp_dir().join(format!("switchyard-target-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let secret = dir.join("token");
    std::fs::write(&secret, "tok-0123456789\n").expect("the token");
    let token = format!("file:{}", secret.display());

    let gitlab = Scripted::answering(
        201,
        r#"{"id":4242,"web_url":"https://gitlab.com/acme/api/-/pipelines/4242"}"#,
    );
    let run = attempt(
        &format!(
            "gitlab: {{url: \"https://gitlab.example.com/\", project: acme/api, token: \"{token}\", variables: {{SHA: \"${{sha}}\"}}}}"
        ),
        &gitlab,
    );
    assert_eq!(
        run,
        Ok(Run::named("https://gitlab.com/acme/api/-/pipelines/4242"))
    );
    let Asked::Exchange(req, secrets) = gitlab.asked() else {
        panic!("an exchange");
    };
    assert_eq!(
        req.uri(),
        "https://gitlab.example.com/api/v4/projects/acme%2Fapi/trigger/pipeline"
    );
    assert_eq!(
        req.body().as_ref(),
        b"token=tok-0123456789&ref=main&variables%5BSHA%5D=2222222222222222222222222222222222222222"
    );
    assert_eq!(secrets, ["tok-0123456789"]);
    assert!(
        req.headers()["traceparent"]
            .to_str()
            .is_ok_and(|t| t.starts_with("00-"))
    );

    let jenkins = Scripted::answering(401, "bad token tok-0123456789");
    let failed = attempt(
        &format!("jenkins: {{url: \"https://ci.example.com\", job: \"Team A/api\", user: bot, token: \"{token}\"}}"),
        &jenkins,
    )
    .expect_err("refused");
    assert!(!failed.retry);
    assert!(failed.message.starts_with("POST https://ci.example.com/job/Team%20A/job/api/build: 401 Unauthorized: bad token [credential]\nhint: Jenkins refused"), "{}", failed.message);

    let exec = Scripted::answering(500, "first\nlast words\n");
    let failed = attempt("exec: [./run, \"${sha}\"]", &exec).expect_err("exit 3");
    assert_eq!(
        failed.message,
        "\"./run\" ended with exit status 3: last words"
    );
    let Asked::Program(command) = exec.asked() else {
        panic!("a program");
    };
    assert_eq!(
        command.args,
        ["${sha}"],
        "argv is passed as written, never a template"
    );
    assert!(
        command
            .env
            .contains(&("SWITCHYARD_ATTEMPT", "2".to_owned()))
    );
    assert_eq!(command.file_name, "0123456789abcdef0123456789abcdef.json");

    let pipeline = Scripted::answering(200, "exec-1");
    let run = attempt(
        "codepipeline: {name: deploy, source_action: Source, variables: {EMPTY: \"${tag}\", BRANCH: \"${branch}\"}}",
        &pipeline,
    );
    assert_eq!(run, Ok(Run::named("exec-1")));
    assert_eq!(
        match pipeline.asked() {
            Asked::Api(call) => call,
            other => panic!("{other:?}"),
        },
        aws::Call::StartPipelineExecution {
            name: "deploy".into(),
            source_action: "Source".into(),
            commit: "2222222222222222222222222222222222222222".into(),
            variables: vec![("BRANCH".into(), "main".into())],
            client_request_token: "0123456789abcdef0123456789abcdef".into(),
        }
    );
    let denied = Scripted::answering(400, "AccessDeniedException");
    let failed = attempt("codebuild: {project: web}", &denied).expect_err("denied");
    assert!(failed.message.ends_with("hint: allow codebuild:StartBuild on arn:aws:codebuild:eu-west-1:ACCOUNT:project/web to switchyard's credentials (its role or user)"), "{}", failed.message);

    let queue = Scripted::answering(200, "m-1");
    assert_eq!(
        attempt(
            "sqs: {queue_url: \"https://sqs.eu-west-1.amazonaws.com/1/q.fifo\"}",
            &queue
        ),
        Ok(Run::named("m-1"))
    );
    let Asked::Api(aws::Call::SendMessage { fifo, body, .. }) = queue.asked() else {
        panic!("a message");
    };
    assert_eq!(fifo.map(|f| f.group_id), Some("api-build".to_owned()));
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["start_id"], "0123456789abcdef0123456789abcdef");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failure_shows_the_url_without_its_query_or_credentials() {
    let http = Scripted::answering(500, "down");
    let failed = attempt(
        "http: {url: \"https://hook:pw@ci.example.com/start?token=s3cret#frag\"}",
        &http,
    )
    .expect_err("a 500");
    assert!(failed.retry);
    assert_eq!(
        failed.message,
        "POST https://ci.example.com/start: 500 Internal Server Error: down"
    );
    let Asked::Exchange(req, _) = http.asked() else {
        panic!("an exchange");
    };
    assert_eq!(
        req.uri(),
        "https://hook:pw@ci.example.com/start?token=s3cret#frag",
        "sent as written"
    );
}
