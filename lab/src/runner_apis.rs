//! The runners' own APIs that `github_actions`, `gitlab`, `buildkite` and `jenkins` starts call,
//! on one loopback server: GitHub's workflow and repository dispatches, GitLab's pipeline
//! trigger, Buildkite's create-a-build and Jenkins' `buildWithParameters`. Each endpoint checks
//! a request as its documentation says (method, path, credential, content type, body) and
//! answers as the real API does: the status codes, and the run it made in the body or in
//! `Location`. Every request is recorded with the answer it got; an endpoint can be scripted
//! to answer a sequence first (429 with `Retry-After`, 503, a spent rate limit) before it
//! behaves.
//!
//! The credentials it accepts are the constants below; what exists (a repository's workflow, a
//! project, a pipeline, a job) is what [`RunnerApis::add`] named, and anything else is a 404.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::now_ms;
use crate::runner::Recorder;

/// The token GitHub accepts (`Authorization: Bearer …`).
pub const GITHUB_TOKEN: &str = "ghp_lab0GithubToken0123456789abcdef";
/// The pipeline trigger token GitLab accepts (the form's `token`).
pub const GITLAB_TOKEN: &str = "glptt-lab0GitlabTrigger0123456789";
/// The API access token Buildkite accepts (`Authorization: Bearer …`).
pub const BUILDKITE_TOKEN: &str = "bkua_lab0BuildkiteToken0123456789";
/// The user and API token Jenkins accepts (`Authorization: Basic user:token`).
pub const JENKINS_USER: &str = "ci-bot";
pub const JENKINS_TOKEN: &str = "11lab0JenkinsApiToken0123456789";

/// The API version GitHub is asked for.
const GITHUB_API_VERSION: &str = "2022-11-28";

/// The endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// `POST /repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches`; its resource is
    /// `owner/repo/workflow`.
    GithubWorkflow,
    /// `POST /repos/{owner}/{repo}/dispatches`; its resource is `owner/repo`.
    GithubRepository,
    /// `POST /api/v4/projects/{id}/trigger/pipeline`; its resource is the project's id or path.
    Gitlab,
    /// `POST /v2/organizations/{org}/pipelines/{pipeline}/builds`; its resource is
    /// `org/pipeline`.
    Buildkite,
    /// `POST /job/{a}/job/{b}/buildWithParameters` (or `/build`); its resource is `a/b`.
    Jenkins,
}

/// An answer: scripted, or the one an endpoint gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Headers (names in lower case).
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Whether the body is to echo the credential the request carried (as a careless server
    /// quoting the request in an error does).
    echo: bool,
}

impl Reply {
    /// `status` with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            echo: false,
        }
    }

    /// `status` with a JSON body.
    fn json(status: u16, body: Value) -> Reply {
        Reply::status(status)
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    /// With a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// With a body.
    pub fn body(mut self, body: impl Into<String>) -> Reply {
        self.body = body.into();
        self
    }

    /// With a JSON body `{"message": BODY, "credential": …}` quoting the credential of the
    /// request it answers.
    pub fn echoing(mut self) -> Reply {
        self.echo = true;
        self
    }

    /// A header's value.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn response(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.body.clone())));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                hyper::header::HeaderName::from_bytes(name.as_bytes()),
                hyper::header::HeaderValue::from_str(value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// One request the server received, and what it answered.
#[derive(Clone, Debug)]
pub struct Call {
    /// The endpoint and the resource it named; `None` for a path no endpoint has.
    pub api: Option<(Api, String)>,
    /// When it arrived (before its body was read); the same in Unix milliseconds.
    pub at: Instant,
    pub at_ms: f64,
    pub method: String,
    /// The path as sent (percent-encoded), with the query.
    pub path: String,
    /// Headers (names in lower case).
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    pub reply: Reply,
}

impl Call {
    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    /// The body as a form: `(name, value)` pairs, decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// A form field's value.
    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// A header's value (`""` when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// The server: what exists, the scripts, every call.
#[derive(Debug)]
pub struct RunnerApis {
    /// Set once it listens, before any request can arrive.
    addr: OnceLock<SocketAddr>,
    known: Mutex<HashSet<(Api, String)>>,
    scripts: Mutex<HashMap<(Api, String), VecDeque<Reply>>>,
    calls: Recorder<Call>,
    next_run: AtomicU64,
}

impl RunnerApis {
    /// Serves every endpoint on a loopback port for as long as the runtime runs; nothing
    /// exists yet.
    pub async fn start() -> anyhow::Result<Arc<RunnerApis>> {
        let apis = Arc::new(RunnerApis {
            addr: OnceLock::new(),
            known: Mutex::default(),
            scripts: Mutex::default(),
            calls: Recorder::default(),
            next_run: AtomicU64::new(1000),
        });
        let shared = Arc::clone(&apis);
        let addr = crate::http::serve(move |request| {
            let apis = Arc::clone(&shared);
            async move { apis.take(request).await }
        })
        .await?;
        let _ = apis.addr.set(addr);
        Ok(apis)
    }

    /// `http://ADDR`: the API root of every runner (GitHub's `api_url`, GitLab's and Jenkins'
    /// `url`, Buildkite's `api_url`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        *self.addr.get().expect("set once it listens")
    }

    /// Makes `resource` of `api` exist (see [`Api`] for how each is named).
    pub fn add(&self, api: Api, resource: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.insert((api, resource.to_owned()));
        }
    }

    /// Answers the next requests to `resource` of `api` with `replies` in order, then behaves.
    pub fn script(&self, api: Api, resource: &str, replies: impl IntoIterator<Item = Reply>) {
        if let Ok(mut scripts) = self.scripts.lock() {
            scripts.insert((api, resource.to_owned()), replies.into_iter().collect());
        }
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.all()
    }

    /// The calls to `resource` of `api`, in order.
    pub fn calls_to(&self, api: Api, resource: &str) -> Vec<Call> {
        self.calls
            .all()
            .into_iter()
            .filter(|c| {
                c.api
                    .as_ref()
                    .is_some_and(|(a, r)| *a == api && r == resource)
            })
            .collect()
    }

    async fn take(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let at = Instant::now();
        let at_ms = now_ms();
        let method = request.method().to_string();
        let path = request
            .uri()
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        let headers: HashMap<String, String> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = crate::http::read_body(request.into_body()).await;
        let mut call = Call {
            api: route(request_path(&path)),
            at,
            at_ms,
            method,
            path,
            headers,
            body,
            reply: Reply::status(200),
        };
        call.reply = self.answer(&call);
        let response = call.reply.response();
        self.calls.push(call);
        response
    }

    /// The answer to `call`: the next scripted one, else the endpoint's own.
    fn answer(&self, call: &Call) -> Reply {
        let Some((api, resource)) = &call.api else {
            return Reply::json(404, json!({"message": "Not Found"}));
        };
        let scripted = self
            .scripts
            .lock()
            .ok()
            .and_then(|mut s| s.get_mut(&(*api, resource.clone()))?.pop_front());
        if let Some(mut reply) = scripted {
            if reply.echo {
                let echoed = json!({"message": reply.body, "credential": credential(*api, call)});
                reply.body = echoed.to_string();
                reply
                    .headers
                    .push(("content-type".into(), "application/json".into()));
                reply.echo = false;
            }
            return reply;
        }
        if call.method != "POST" {
            return Reply::json(405, json!({"message": "Method Not Allowed"}));
        }
        let known = self
            .known
            .lock()
            .is_ok_and(|k| k.contains(&(*api, resource.clone())));
        match api {
            Api::GithubWorkflow | Api::GithubRepository => self.github(*api, resource, known, call),
            Api::Gitlab => self.gitlab(resource, known, call),
            Api::Buildkite => self.buildkite(resource, known, call),
            Api::Jenkins => self.jenkins(resource, known, call),
        }
    }

    fn run_number(&self) -> u64 {
        self.next_run.fetch_add(1, Ordering::SeqCst)
    }

    /// GitHub: a `User-Agent`, the token, the API version, JSON; a workflow dispatch needs a
    /// `ref` and string inputs and answers 200 with the run when `return_run_details` is true
    /// (else 204); a repository dispatch needs an `event_type` and answers 204.
    fn github(&self, api: Api, resource: &str, known: bool, call: &Call) -> Reply {
        // GitHub's error body: a message, where the documentation is, the status as text.
        let error = |status: u16, message: &str| {
            let docs = "https://docs.github.com/rest";
            Reply::json(
                status,
                json!({"message": message, "documentation_url": docs, "status": status.to_string()}),
            )
        };
        if call.header("user-agent").is_empty() {
            return Reply::status(403).body(
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
            );
        }
        match bearer(call) {
            None => return error(401, "Requires authentication"),
            Some(token) if token != GITHUB_TOKEN => return error(401, "Bad credentials"),
            Some(_) => {}
        }
        let version = call.header("x-github-api-version");
        if !version.is_empty() && version != GITHUB_API_VERSION {
            return error(400, &format!("API version {version} is not supported."));
        }
        if !known {
            return error(404, "Not Found");
        }
        let Some(body) = json_body(call) else {
            return error(400, "Problems parsing JSON");
        };
        let invalid = |why: &str| error(422, &format!("Invalid request.\n\n{why}"));
        if api == Api::GithubRepository {
            return match body.get("event_type").and_then(Value::as_str) {
                Some(t) if !t.is_empty() && t.len() <= 100 => match body.get("client_payload") {
                    None => Reply::status(204),
                    Some(Value::Object(o)) if o.len() <= 10 => Reply::status(204),
                    Some(_) => {
                        invalid("\"client_payload\" is not an object of at most 10 properties.")
                    }
                },
                _ => invalid("\"event_type\" wasn't supplied."),
            };
        }
        match body.get("ref").and_then(Value::as_str) {
            Some(r) if !r.is_empty() => {}
            Some(r) => return error(422, &format!("No ref found for: {r}")),
            None => return invalid("\"ref\" wasn't supplied."),
        }
        match body.get("inputs") {
            None => {}
            Some(Value::Object(o)) if o.len() <= 25 => {
                if let Some((name, _)) = o.iter().find(|(_, v)| !v.is_string()) {
                    return invalid(&format!("For 'properties/{name}', it is not a string."));
                }
            }
            Some(_) => return invalid("\"inputs\" is not an object of at most 25 properties."),
        }
        match body.get("return_run_details") {
            Some(Value::Bool(true)) => {
                let run = self.run_number();
                let (owner_repo, _) = resource.rsplit_once('/').unwrap_or((resource, ""));
                Reply::json(
                    200,
                    json!({
                        "workflow_run_id": run,
                        "run_url": format!("{}/repos/{owner_repo}/actions/runs/{run}", self.url()),
                        "html_url": format!("https://github.com/{owner_repo}/actions/runs/{run}"),
                    }),
                )
            }
            None | Some(Value::Bool(false)) => Reply::status(204),
            Some(_) => invalid("\"return_run_details\" is not a boolean."),
        }
    }

    /// GitLab: a form with the trigger token (a wrong one is a 404, as GitLab answers) and a
    /// `ref`; 201 with the pipeline.
    fn gitlab(&self, resource: &str, known: bool, call: &Call) -> Reply {
        if !call
            .header("content-type")
            .starts_with("application/x-www-form-urlencoded")
        {
            return Reply::json(415, json!({"message": "415 Unsupported Media Type"}));
        }
        let not_found = || Reply::json(404, json!({"message": "404 Not Found"}));
        if !known {
            return not_found();
        }
        match call.field("token") {
            None => return Reply::json(400, json!({"error": "token is missing"})),
            Some(t) if t != GITLAB_TOKEN => return not_found(),
            Some(_) => {}
        }
        let git_ref = match call.field("ref") {
            Some(r) if !r.is_empty() => r,
            Some(_) => {
                return Reply::json(400, json!({"message": {"base": ["Reference not found"]}}));
            }
            None => return Reply::json(400, json!({"error": "ref is missing"})),
        };
        let id = self.run_number();
        Reply::json(
            201,
            json!({
                "id": id,
                "iid": id - 999,
                "project_id": 42,
                "ref": git_ref,
                "status": "created",
                "source": "trigger",
                "web_url": format!("https://gitlab.example.com/{resource}/-/pipelines/{id}"),
            }),
        )
    }

    /// Buildkite: the token, JSON with `commit` and `branch` (else 422), string `env` and
    /// `meta_data`; 201 with the build.
    fn buildkite(&self, resource: &str, known: bool, call: &Call) -> Reply {
        if bearer(call) != Some(BUILDKITE_TOKEN) {
            return Reply::json(
                401,
                json!({"message": "Authentication required. Please supply a valid API Access Token: https://buildkite.com/docs/apis/rest-api#authentication"}),
            );
        }
        if !known {
            return Reply::json(404, json!({"message": "No pipeline found"}));
        }
        let Some(body) = json_body(call) else {
            return Reply::json(400, json!({"message": "Problems parsing JSON"}));
        };
        let missing: Vec<Value> = ["commit", "branch"]
            .into_iter()
            .filter(|k| {
                body.get(*k)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            })
            .map(|k| json!({"field": k, "code": "missing"}))
            .collect();
        let not_strings = ["env", "meta_data"].into_iter().find(|k| {
            body.get(*k).is_some_and(|v| {
                !v.as_object()
                    .is_some_and(|o| o.values().all(Value::is_string))
            })
        });
        if !missing.is_empty() || not_strings.is_some() {
            let mut errors = missing;
            errors.extend(not_strings.map(|k| json!({"field": k, "code": "invalid"})));
            return Reply::json(
                422,
                json!({"message": "Validation Failed", "errors": errors}),
            );
        }
        let number = self.run_number();
        Reply::json(
            201,
            json!({
                "id": format!("0190b4c0-0000-7000-8000-{number:012}"),
                "number": number,
                "url": format!("{}/v2/organizations/{}/builds/{number}", self.url(), resource.replacen('/', "/pipelines/", 1)),
                "web_url": format!("https://buildkite.com/{resource}/builds/{number}"),
                "state": "scheduled",
                "commit": body["commit"],
                "branch": body["branch"],
                "message": body.get("message").cloned().unwrap_or(Value::Null),
                "source": "api",
            }),
        )
    }

    /// Jenkins: Basic `user:api-token` (a wrong or missing one is a 401), a known job, the
    /// parameters as a form; 201 with the queue item in `Location`.
    fn jenkins(&self, _resource: &str, known: bool, call: &Call) -> Reply {
        let expected = format!("{JENKINS_USER}:{JENKINS_TOKEN}");
        if basic(call).as_deref() != Some(expected.as_str()) {
            return Reply::status(401)
                .header("www-authenticate", "Basic realm=\"Jenkins\"")
                .body("Invalid password/token for user");
        }
        if !known {
            return Reply::status(404)
                .body("<html><body><h2>HTTP ERROR 404 Not Found</h2></body></html>");
        }
        let with_parameters = request_path(&call.path).ends_with("/buildWithParameters");
        if with_parameters
            && !call.body.is_empty()
            && !call
                .header("content-type")
                .starts_with("application/x-www-form-urlencoded")
        {
            return Reply::status(415).body("Unsupported Media Type");
        }
        let item = self.run_number();
        Reply::status(201).header("location", format!("{}/queue/item/{item}/", self.url()))
    }
}

/// The path without its query.
fn request_path(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// One path segment, percent-decoded.
fn decoded(segment: &str) -> String {
    form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The endpoint and resource a path names.
fn route(path: &str) -> Option<(Api, String)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let d = |i: usize| decoded(parts[i]);
    match parts.as_slice() {
        ["repos", _, _, "actions", "workflows", _, "dispatches"] => {
            Some((Api::GithubWorkflow, format!("{}/{}/{}", d(1), d(2), d(5))))
        }
        ["repos", _, _, "dispatches"] => {
            Some((Api::GithubRepository, format!("{}/{}", d(1), d(2))))
        }
        ["api", "v4", "projects", _, "trigger", "pipeline"] => Some((Api::Gitlab, d(3))),
        ["v2", "organizations", _, "pipelines", _, "builds"] => {
            Some((Api::Buildkite, format!("{}/{}", d(2), d(4))))
        }
        ["job", .., "build" | "buildWithParameters"] if parts.len() % 2 == 1 => {
            let pairs = &parts[..parts.len() - 1];
            let job = pairs
                .chunks(2)
                .map(|p| (p[0] == "job").then(|| decoded(p[1])))
                .collect::<Option<Vec<_>>>()?;
            Some((Api::Jenkins, job.join("/")))
        }
        _ => None,
    }
}

/// The JSON object of a request whose content type says JSON.
fn json_body(call: &Call) -> Option<serde_json::Map<String, Value>> {
    if !call.header("content-type").starts_with("application/json") {
        return None;
    }
    match serde_json::from_slice(&call.body).ok()? {
        Value::Object(o) => Some(o),
        _ => None,
    }
}

/// The token of `Authorization: Bearer …` (GitHub also takes `token …`).
fn bearer(call: &Call) -> Option<&str> {
    let value = call.headers.get("authorization")?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("token "))
}

/// `user:token` of `Authorization: Basic …`.
fn basic(call: &Call) -> Option<String> {
    let encoded = call.headers.get("authorization")?.strip_prefix("Basic ")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The credential a request carried, as its endpoint reads it.
fn credential(api: Api, call: &Call) -> String {
    match api {
        Api::Gitlab => call.field("token"),
        Api::Jenkins => basic(call),
        _ => bearer(call).map(str::to_owned),
    }
    .unwrap_or_default()
}

#[cfg(test)]
mod tests;
