//! The status page of `serve`, and the JSON behind it: why each change started what it did.
//!
//! | handler | route (`http::routes`) | what |
//! |---|---|---|
//! | [`StatusPage::overview`] | `GET /` | recent changes (filtered like `changes list`), dead letters, polled repositories, missed changes |
//! | [`StatusPage::change`] | `GET /changes/ID` | one change (a unique prefix works): its event, sightings, decisions, starts |
//! | [`StatusPage::replay`] | `POST /changes/ID/replay` | `changes replay` (every watching pipeline, or `pipeline`) |
//! | [`StatusPage::transition`] | `POST /starts/ID/retry`, `POST /starts/ID/drop` | `outbox retry` / `outbox drop` |
//! | [`StatusPage::login`], [`StatusPage::logout`] | `POST /login`, `POST /logout` | the operator's session ([`auth`]) |
//! | [`StatusPage::api_changes`], [`StatusPage::api_change`] | `GET /api/changes`, `GET /api/changes/ID` | the JSON of `changes list` and `changes show` |
//!
//! Server-rendered HTML without scripts, so it works with JavaScript off. The actions exist only
//! with `operator_token` configured, and need the operator's session and the CSRF token of the
//! form (see [`auth`]); after one the browser is sent back (303) to the change's page.
//!
//! The module knows no HTTP library and matches no path: the route table (`http::routes`)
//! picks the handler, hands it a plain [`Request`] and writes out the [`Response`].

pub mod access;
pub mod auth;
pub mod html;
pub mod logins;

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::changes::{self, ChangeLine, ChangeView, ReplayError};
use crate::diag::did_you_mean;
use crate::metrics::Metrics;
use crate::pipeline::Pipelines;
use crate::repo::RepoId;
use crate::secret::SecretRef;
use crate::sources::poll::health::PollHealth;
use crate::store::{ChangeQuery, ChangeRecord, StartState, Store, StoreError, Transition, now_ms};

use access::{Access, Grant};
use auth::Operator;
use html::{ErrorPage, Viewer};

/// The most a form's body may hold.
pub const MAX_FORM_BYTES: usize = 8 * 1024;
/// How many changes the overview shows unless `limit` says otherwise.
pub const PAGE_LIMIT: u32 = 50;
/// The most changes one page or answer holds for a visitor without the operator's session
/// (more is asked for with `before`, the cursor of the next page); an operator may ask for up
/// to [`changes::MAX_LIMIT`].
pub const ANONYMOUS_LIMIT: u32 = 500;
/// How many dead letters the overview lists (the newest).
const DEAD_SHOWN: usize = 100;
/// The push sources whose missed changes the overview counts.
const PUSH_SOURCES: [&str; 2] = ["webhook", "eventbridge"];
/// The parameters of the change list, in the order the form shows them.
const LIST_PARAMETERS: [&str; 4] = ["repository", "pipeline", "since", "limit"];

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

/// What the page needs of one HTTP request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The `Cookie` header.
    pub cookie: Option<&'a str>,
    /// The `Origin` header (a browser sends it with every form it posts).
    pub origin: Option<&'a str>,
    /// The `Host` header.
    pub host: Option<&'a str>,
    /// The address the request came from (a proxy's, behind one).
    pub peer: Option<std::net::IpAddr>,
    /// The body of a POST (`application/x-www-form-urlencoded`).
    pub body: &'a [u8],
}

/// The answer: status, content type, more headers (lowercase names), body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// Whom an answer is for: people (an HTML page) or programs (the JSON API).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Page,
    Api,
}

/// Something a request cannot have: status, a title, what is wrong, and how to fix it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Problem {
    status: u16,
    title: &'static str,
    message: String,
    hint: Option<String>,
    candidates: Vec<String>,
}

impl Problem {
    fn new(status: u16, title: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            status,
            title,
            message: message.into(),
            ..Problem::default()
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Problem {
        self.hint = Some(hint.into());
        self
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        let message = e.to_string();
        match e {
            StoreError::NoSuchChange(_) => Problem::new(404, "no such change", message).hint(
                "the overview lists the stored changes; changes older than the retention are pruned",
            ),
            StoreError::AmbiguousChange { candidates, .. } => Problem {
                candidates,
                ..Problem::new(400, "ambiguous change id", message)
                    .hint("give more characters of the id")
            },
            StoreError::NoSuchStart(_) => Problem::new(404, "no such start", message)
                .hint("the change's page lists its starts"),
            StoreError::WrongState { .. } => Problem::new(409, "not possible now", message)
                .hint("retry a dead or failed start; drop a waiting, failed or dead one"),
            _ => Problem::new(503, "store unavailable", message)
                .hint("try again shortly; GET /readyz says whether the store is usable"),
        }
    }
}

/// The status page: what it reads (the store, the definitions, the metrics, the poller's
/// record) and who may act.
pub struct StatusPage {
    store: Store,
    pipelines: Arc<Pipelines>,
    metrics: Arc<Metrics>,
    polls: Arc<PollHealth>,
    operator: Option<Operator>,
    access: Access,
    /// The wrong tokens of each address at `/login`.
    logins: logins::Logins,
    /// The Content-Security-Policy of every page: no scripts, the one stylesheet by its hash.
    csp: String,
}

impl std::fmt::Debug for StatusPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusPage")
            .field("operator", &self.operator)
            .finish_non_exhaustive()
    }
}

/// The parameters of a query string or form, decoded.
fn pairs(text: &[u8]) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    form_urlencoded::parse(text).collect()
}

/// The value of `name` among `pairs` (the last, when repeated).
fn field<'a>(pairs: &'a [(Cow<'_, str>, Cow<'_, str>)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_ref())
}

/// A path of this server to return to after logging in; `/` for anything else (another
/// site, a scheme-relative `//host`, odd characters).
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && p.len() <= 512
                && p.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// Whether a change id (or prefix) from a form is safe to put in a path.
fn plain_id(id: &str) -> Option<&str> {
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(id)
}

/// Whether a POST came from this site: no `Origin` (not a browser), or one naming `Host`.
/// The 421 of a request naming a host the page does not answer for.
fn misdirected(req: &Request<'_>) -> Problem {
    Problem::new(
        421,
        "misdirected request",
        format!(
            "this server's status page does not answer for the host {:?}",
            req.host.unwrap_or("")
        ),
    )
    .hint("use localhost, or add the name to status.hosts in switchyard.yaml")
}

fn same_origin(req: &Request<'_>) -> bool {
    let Some(origin) = req.origin else {
        return true;
    };
    req.host.is_some_and(|host| {
        origin.strip_prefix("http://") == Some(host)
            || origin.strip_prefix("https://") == Some(host)
    })
}

/// The change list's parameters as asked, each with its value (empty when absent).
type Asked = [(&'static str, String); 4];

/// The most changes `viewer` may ask for at once.
fn cap(viewer: &Viewer) -> u32 {
    match viewer {
        Viewer::Operator { .. } => changes::MAX_LIMIT,
        _ => ANONYMOUS_LIMIT,
    }
}

/// The cursor of a list's next page: the changes stored before the change with this `seq`.
const CURSOR: &str = "before";

/// The change list's filter from a query string: the store's query and the values as asked
/// (for the form). Empty values count as absent; an unknown parameter or a bad value is a 400
/// naming it. A `limit` above `cap` (what this visitor may ask for) is lowered to it.
fn list_query(
    query: Option<&str>,
    default_limit: u32,
    cap: u32,
) -> Result<(ChangeQuery, Asked), Problem> {
    let pairs = pairs(query.unwrap_or("").as_bytes());
    for (k, _) in &pairs {
        if !LIST_PARAMETERS.contains(&k.as_ref()) && k != CURSOR {
            let known: Vec<&str> = LIST_PARAMETERS.iter().copied().chain([CURSOR]).collect();
            let hint = match did_you_mean(k, &known) {
                Some(near) => format!(
                    "did you mean {near:?}? The parameters are repository, pipeline, since, limit and before"
                ),
                None => "the parameters are repository, pipeline, since (e.g. 2h), limit and \
                         before (the cursor of the next page)"
                    .to_owned(),
            };
            return Err(
                Problem::new(400, "bad query", format!("unknown parameter {k:?}")).hint(hint),
            );
        }
    }
    let get = |name: &str| field(&pairs, name).map(str::trim).filter(|v| !v.is_empty());
    let asked = LIST_PARAMETERS.map(|name| (name, get(name).unwrap_or("").to_owned()));
    let limit_hint = changes::limit_hint();
    let limit = match get("limit") {
        None => default_limit,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=changes::MAX_LIMIT).contains(&n) => n,
            Ok(_) => {
                return Err(Problem::new(
                    400,
                    "bad query",
                    format!("limit={text:?} is out of range"),
                )
                .hint(limit_hint));
            }
            Err(_) => {
                return Err(Problem::new(
                    400,
                    "bad query",
                    format!("limit={text:?} is not a number"),
                )
                .hint(limit_hint));
            }
        },
    };
    let repository = match get("repository") {
        None => None,
        Some(text) => Some(
            RepoId::parse_id(text)
                .map_err(|e| {
                    Problem::new(400, "bad query", format!("repository={text:?}: {e}")).hint(
                        "name the repository by its id (github.com/acme/api) or its clone URL",
                    )
                })?
                .as_str()
                .to_owned(),
        ),
    };
    let since_ms = match get("since") {
        None => None,
        Some(text) => {
            let start = changes::since(text, now_ms()).ok_or_else(|| {
                Problem::new(
                    400,
                    "bad query",
                    format!("since={text:?} is not a duration"),
                )
                .hint(changes::SINCE_HINT)
            })?;
            Some(start)
        }
    };
    let before_seq = match get(CURSOR) {
        None => None,
        Some(text) => Some(text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            Problem::new(
                400,
                "bad query",
                format!("{CURSOR}={text:?} is not a cursor"),
            )
            .hint("follow the list's next link (the answer's Link header, \"older changes\" on the page)")
        })?),
    };
    let query = ChangeQuery {
        repository,
        pipeline: get("pipeline").map(str::to_owned),
        since_ms,
        before_seq,
        limit: limit.min(cap),
    };
    Ok((query, asked))
}

/// The link to the page after `records` (newest first), when the page is full: the same
/// filter, the limit served, and the cursor after its last change.
fn next_page(path: &str, asked: &Asked, limit: u32, records: &[ChangeRecord]) -> Option<String> {
    let last = records.last()?;
    if records.len() < limit as usize {
        return None;
    }
    let mut link = form_urlencoded::Serializer::new(String::new());
    for (name, value) in asked {
        match *name {
            "limit" => link.append_pair(name, &limit.to_string()),
            _ if value.is_empty() => &mut link,
            _ => link.append_pair(name, value),
        };
    }
    link.append_pair(CURSOR, &last.seq.to_string());
    Some(format!("{path}?{}", link.finish()))
}

/// The line the change page shows after an action, from the fixed words the redirect carries.
fn notice(query: Option<&str>) -> Option<String> {
    let pairs = pairs(query.unwrap_or("").as_bytes());
    let number = |name: &str| field(&pairs, name).and_then(|v| v.parse::<u32>().ok());
    match field(&pairs, "done") {
        Some("retried") => {
            return Some(
                "Start retried: it is pending again, with a fresh set of attempts.".into(),
            );
        }
        Some("dropped") => return Some("Start dropped: it will not be started.".into()),
        _ => {}
    }
    let (new, duplicates) = (number("replayed")?, number("duplicates").unwrap_or(0));
    Some(match (new, duplicates) {
        (0, 0) => "Replayed: no pipeline starts this change today; nothing new started.".into(),
        (n, 0) => format!("Replayed: {n} new start{}.", if n == 1 { "" } else { "s" }),
        (n, d) => format!(
            "Replayed: {n} new start{}; {d} pipeline{} had a start waiting, running or succeeded already (a duplicate).",
            if n == 1 { "" } else { "s" },
            if d == 1 { "" } else { "s" }
        ),
    })
}

impl StatusPage {
    /// The page of a server; with `operator_token`, its actions; `access` says who may read it.
    pub fn new(
        store: Store,
        pipelines: Arc<Pipelines>,
        metrics: Arc<Metrics>,
        polls: Arc<PollHealth>,
        operator_token: Option<SecretRef>,
        access: Access,
    ) -> StatusPage {
        let operator = operator_token.map(Operator::new);
        let style = base64::engine::general_purpose::STANDARD
            .encode(Sha256::digest(html::STYLE.as_bytes()));
        let csp = format!(
            "default-src 'none'; style-src 'sha256-{style}'; img-src data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        );
        StatusPage {
            store,
            pipelines,
            metrics,
            polls,
            operator,
            access,
            logins: logins::Logins::default(),
            csp,
        }
    }

    /// Whether actions are configured and the token can be read now; the reason when not.
    pub fn check_operator(&self) -> Option<Result<(), String>> {
        let op = self.operator.as_ref()?;
        Some(op.available().map_err(|e| e.to_string()))
    }

    /// `GET /`: the overview.
    pub async fn overview(&self, req: &Request<'_>) -> Response {
        let viewer = match self.reader(Kind::Page, req).await {
            Ok(viewer) => viewer,
            Err(refused) => return refused,
        };
        let answered = self.overview_page(req, &viewer).await;
        answered.unwrap_or_else(|p| self.problem(Kind::Page, &viewer, p))
    }

    /// `GET /changes/ID`: one change.
    pub async fn change(&self, id: &str, req: &Request<'_>) -> Response {
        let viewer = match self.reader(Kind::Page, req).await {
            Ok(viewer) => viewer,
            Err(refused) => return refused,
        };
        let answered = self.change_page(id, req.query, &viewer).await;
        answered.unwrap_or_else(|p| self.problem(Kind::Page, &viewer, p))
    }

    /// `GET /api/changes`: the JSON of `changes list`.
    pub async fn api_changes(&self, req: &Request<'_>) -> Response {
        let viewer = match self.reader(Kind::Api, req).await {
            Ok(viewer) => viewer,
            Err(refused) => return refused,
        };
        let answered = self.api_list(req, &viewer).await;
        answered.unwrap_or_else(|p| self.problem(Kind::Api, &Viewer::ReadOnly, p))
    }

    /// `GET /api/changes/ID`: the JSON of `changes show`.
    pub async fn api_change(&self, id: &str, req: &Request<'_>) -> Response {
        if let Err(refused) = self.reader(Kind::Api, req).await {
            return refused;
        }
        let answered = self.api_view(id).await;
        answered.unwrap_or_else(|p| self.problem(Kind::Api, &Viewer::ReadOnly, p))
    }

    /// Who reads, when the request may read: a host the page does not answer for is a 421;
    /// where reads need the operator's session, a visitor without one is a 401 (a 403 when no
    /// `operator_token` lets anyone log in).
    async fn reader(&self, kind: Kind, req: &Request<'_>) -> Result<Viewer, Response> {
        let viewer = self.viewer(req).await;
        match self.access.grant(req.host) {
            Grant::Read => Ok(viewer),
            Grant::Session if matches!(viewer, Viewer::Operator { .. }) => Ok(viewer),
            Grant::Refused => Err(self.problem(kind, &Viewer::ReadOnly, misdirected(req))),
            Grant::Session => Err(self.private(kind, req, &viewer)),
        }
    }

    /// A read where reads need the operator's session, by a visitor without one.
    fn private(&self, kind: Kind, req: &Request<'_>, viewer: &Viewer) -> Response {
        if self.operator.is_none() {
            let p = Problem::new(
                403,
                "private",
                "on this listener the status page is for the operator, and this server has no operator_token",
            )
            .hint("set operator_token: env:NAME in switchyard.yaml to log in, or status: {public: true} to let anyone who reaches the listener read it");
            return self.problem(kind, &Viewer::ReadOnly, p);
        }
        let p = Problem::new(
            401,
            "log in to read",
            "on this listener the status page is for the operator",
        )
        .hint("log in with the operator token");
        if kind == Kind::Api {
            return self.problem(kind, viewer, p);
        }
        let next = match req.query {
            Some(q) => format!("{}?{q}", req.path),
            None => req.path.to_owned(),
        };
        let page = ErrorPage {
            status: p.status,
            title: p.title.to_owned(),
            message: p.message,
            hint: p.hint,
            login_next: Some(local_path(Some(&next))),
            ..ErrorPage::default()
        };
        self.html(401, html::error(&page, viewer))
    }

    /// An action's request must name a host the page answers for.
    fn check_host(&self, req: &Request<'_>) -> Result<(), Problem> {
        match self.access.grant(req.host) {
            Grant::Refused => Err(misdirected(req)),
            Grant::Read | Grant::Session => Ok(()),
        }
    }

    /// `POST /login`: a session for the operator token of the form; a `429` while the address
    /// waits after wrong tokens ([`logins`]).
    pub async fn login(&self, req: &Request<'_>) -> Response {
        if let Err(wait) = self.logins.check(req.peer, std::time::Instant::now()) {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let p = Problem::new(
                429,
                "too many wrong tokens",
                format!("after wrong operator tokens from this address, the next login may be tried in {seconds} s"),
            )
            .hint("wait, then log in with the value of the operator token");
            let mut answer = self.problem(Kind::Page, &Viewer::Anonymous, p);
            answer.headers.push(("retry-after", seconds.to_string()));
            return answer;
        }
        match self.log_in(req).await {
            Ok(answer) => answer,
            Err(p) => self.problem(Kind::Page, &self.viewer(req).await, p),
        }
    }

    /// `POST /logout`: the session ended in the store (for every replica that shares it) and
    /// its cookie cleared, for a form of this site.
    pub async fn logout(&self, req: &Request<'_>) -> Response {
        if let Err(p) = self.check_host(req) {
            return self.problem(Kind::Page, &Viewer::ReadOnly, p);
        }
        if !same_origin(req) {
            return StatusPage::see_other("/".into(), None);
        }
        if let Some(id) = auth::cookie_id(req.cookie)
            && let Err(e) = self.store.end_session(auth::id_hash(&id)).await
        {
            let p = Problem::new(
                503,
                "store unavailable",
                format!("the session could not be ended: {e}"),
            )
            .hint("log out again in a moment; until then the session stays valid");
            return self.problem(Kind::Page, &self.viewer(req).await, p);
        }
        tracing::info!("status page: operator logged out");
        StatusPage::see_other("/".into(), Some(auth::clear_cookie()))
    }

    /// `POST /starts/ID/retry` and `POST /starts/ID/drop`.
    pub async fn transition(&self, id: &str, to: Transition, req: &Request<'_>) -> Response {
        match self.act(Action::Start(id, to), req).await {
            Ok(answer) => answer,
            Err(p) => self.problem(Kind::Page, &self.viewer(req).await, p),
        }
    }

    /// `POST /changes/ID/replay`.
    pub async fn replay(&self, id: &str, req: &Request<'_>) -> Response {
        match self.act(Action::Replay(id), req).await {
            Ok(answer) => answer,
            Err(p) => self.problem(Kind::Page, &self.viewer(req).await, p),
        }
    }

    /// A path of the page's (below `/changes/`, `/starts/`, `/api/changes/`) that names
    /// nothing: a 404 saying where things are.
    pub async fn not_found(&self, kind: Kind, req: &Request<'_>) -> Response {
        let p = Problem::new(404, "not found", format!("nothing at {}", req.path))
            .hint("the status page is at /, a change at /changes/ID, the JSON at /api/changes");
        self.problem(kind, &self.viewer(req).await, p)
    }

    /// A route of the page asked with another method than `allowed`: a 405 naming it.
    pub async fn wrong_method(
        &self,
        kind: Kind,
        allowed: &'static str,
        req: &Request<'_>,
    ) -> Response {
        let p = Problem::new(
            405,
            "method not allowed",
            format!("{} {} is not served", req.method, req.path),
        )
        .hint(format!("use {allowed}"));
        let mut answer = self.problem(kind, &self.viewer(req).await, p);
        answer.headers.push(("allow", allowed.to_owned()));
        answer
    }

    async fn viewer(&self, req: &Request<'_>) -> Viewer {
        let Some(op) = &self.operator else {
            return Viewer::ReadOnly;
        };
        if op.available().is_err() {
            return Viewer::Unavailable(op.reference());
        }
        match self.session(op, req).await {
            Some(s) => Viewer::Operator {
                csrf: s.csrf().to_owned(),
            },
            None => Viewer::Anonymous,
        }
    }

    /// The operator's session the request's cookie names, when the store holds it (a store
    /// that cannot be read now logs nobody in).
    async fn session(&self, op: &Operator, req: &Request<'_>) -> Option<auth::Session> {
        let id = auth::cookie_id(req.cookie)?;
        match self.store.session(auth::id_hash(&id)).await {
            Ok(stored) => op.session(&id, stored.as_ref(), now_ms()),
            Err(e) => {
                tracing::warn!(error = %e, "status page: the sessions cannot be read; treating the visitor as logged out");
                None
            }
        }
    }

    fn html(&self, status: u16, body: String) -> Response {
        Response {
            status,
            content_type: HTML,
            headers: vec![
                ("content-security-policy", self.csp.clone()),
                ("x-content-type-options", "nosniff".into()),
                ("x-frame-options", "DENY".into()),
                ("referrer-policy", "same-origin".into()),
                ("cache-control", "no-store".into()),
            ],
            body,
        }
    }

    fn json(status: u16, value: &serde_json::Value) -> Response {
        Response {
            status,
            content_type: JSON,
            headers: vec![
                ("x-content-type-options", "nosniff".into()),
                ("cache-control", "no-store".into()),
            ],
            body: format!("{value}\n"),
        }
    }

    fn see_other(location: String, cookie: Option<String>) -> Response {
        let mut headers = vec![("location", location), ("cache-control", "no-store".into())];
        if let Some(c) = cookie {
            headers.push(("set-cookie", c));
        }
        Response {
            status: 303,
            content_type: "text/plain; charset=utf-8",
            headers,
            body: String::new(),
        }
    }

    /// A problem as the route's kind of answer: JSON for the API, an HTML page otherwise.
    fn problem(&self, kind: Kind, viewer: &Viewer, p: Problem) -> Response {
        if kind == Kind::Api {
            let mut body = serde_json::json!({"error": p.message});
            if let Some(h) = &p.hint {
                body["hint"] = h.as_str().into();
            }
            if !p.candidates.is_empty() {
                body["candidates"] = p.candidates.clone().into();
            }
            return StatusPage::json(p.status, &body);
        }
        let page = ErrorPage {
            status: p.status,
            title: p.title.to_owned(),
            message: p.message,
            hint: p.hint,
            candidates: p.candidates,
            ..ErrorPage::default()
        };
        self.html(p.status, html::error(&page, viewer))
    }

    /// A change id from a path: at least 4 characters, else a 400.
    fn change_id(id: &str) -> Result<&str, Problem> {
        if id.len() < 4 {
            return Err(Problem::new(
                400,
                "change id too short",
                format!("{id:?} is too short to name a change"),
            )
            .hint("give at least 4 characters of the id"));
        }
        Ok(id)
    }

    async fn overview_page(&self, req: &Request<'_>, viewer: &Viewer) -> Result<Response, Problem> {
        let (query, filter) = list_query(req.query, PAGE_LIMIT, cap(viewer))?;
        let limit = query.limit;
        let (records, dead) = tokio::join!(
            self.store.changes(query),
            self.store.starts(&[StartState::Dead])
        );
        let records = records?;
        let older = next_page("/", &filter, limit, &records);
        let lines: Vec<ChangeLine> = records.iter().map(ChangeLine::of).collect();
        let mut dead = dead?;
        let dead_total = dead.len();
        dead.reverse();
        dead.truncate(DEAD_SHOWN);
        let polls = self.polls.snapshot();
        let missed = PUSH_SOURCES.map(|s| (s, self.metrics.missed_total(s)));
        let page = html::Overview {
            viewer,
            now_ms: now_ms(),
            filter,
            changes: &lines,
            older,
            dead: &dead,
            dead_total,
            polls: &polls,
            missed: &missed,
        };
        Ok(self.html(200, html::overview(&page)))
    }

    async fn change_page(
        &self,
        id: &str,
        query: Option<&str>,
        viewer: &Viewer,
    ) -> Result<Response, Problem> {
        let view = ChangeView::of(&self.store.change(StatusPage::change_id(id)?).await?);
        let watching: Vec<String> = self
            .pipelines
            .list
            .iter()
            .filter(|p| p.repository.as_str() == view.repository)
            .map(|p| p.name.clone())
            .collect();
        let page = html::ChangePage {
            viewer,
            view: &view,
            watching: &watching,
            notice: notice(query),
        };
        Ok(self.html(200, html::change(&page)))
    }

    async fn api_list(&self, req: &Request<'_>, viewer: &Viewer) -> Result<Response, Problem> {
        let (query, asked) = list_query(req.query, changes::DEFAULT_LIMIT, cap(viewer))?;
        let limit = query.limit;
        let records = self.store.changes(query).await?;
        let next = next_page("/api/changes", &asked, limit, &records);
        let lines: Vec<ChangeLine> = records.iter().map(ChangeLine::of).collect();
        let mut answer = StatusPage::json(200, &serde_json::json!({ "changes": lines }));
        if let Some(next) = next {
            answer
                .headers
                .push(("link", format!("<{next}>; rel=\"next\"")));
        }
        Ok(answer)
    }

    async fn api_view(&self, id: &str) -> Result<Response, Problem> {
        let view = ChangeView::of(&self.store.change(StatusPage::change_id(id)?).await?);
        Ok(StatusPage::json(200, &serde_json::json!(view)))
    }

    /// The operator, when actions are configured; a 403 when they are not.
    fn operator(&self) -> Result<&Operator, Problem> {
        self.operator.as_ref().ok_or_else(|| {
            Problem::new(
                403,
                "actions are off",
                "this server has no operator_token: its status page is read-only",
            )
            .hint("set operator_token: env:NAME in switchyard.yaml and restart serve")
        })
    }

    fn check_origin(req: &Request<'_>) -> Result<(), Problem> {
        if same_origin(req) {
            return Ok(());
        }
        Err(
            Problem::new(403, "forbidden", "the form was posted from another site")
                .hint("use the forms of this server's own pages"),
        )
    }

    async fn log_in(&self, req: &Request<'_>) -> Result<Response, Problem> {
        self.check_host(req)?;
        let op = self.operator()?;
        StatusPage::check_origin(req)?;
        let form = pairs(req.body);
        let next = local_path(field(&form, "next"));
        let offered = field(&form, "token").unwrap_or("");
        let mut id = [0u8; auth::ID_BYTES];
        getrandom::fill(&mut id).map_err(|e| {
            Problem::new(
                503,
                "actions unavailable",
                format!("no random session id: {e}"),
            )
            .hint("the system's random source failed; try again")
        })?;
        let now = now_ms();
        match op.login(offered, id, now) {
            Ok(Some(opened)) => {
                self.logins.right(req.peer);
                self.store.open_session(opened.row, now).await?;
                tracing::info!("status page: operator logged in");
                Ok(StatusPage::see_other(
                    next,
                    Some(opened.session.set_cookie()),
                ))
            }
            Ok(None) => {
                let wrong = self.logins.wrong(req.peer, std::time::Instant::now());
                let peer = req.peer.map(|p| p.to_string()).unwrap_or_default();
                if wrong.log {
                    tracing::warn!(
                        peer,
                        wrong = wrong.count,
                        refused_meanwhile = wrong.refused,
                        wait_s = wrong.wait.map(|w| w.as_secs()),
                        "status page: a wrong operator token (logged at the first and at each doubling)"
                    );
                }
                let page = ErrorPage {
                    status: 401,
                    title: "wrong operator token".into(),
                    message: "that is not the operator token".into(),
                    hint: Some(format!(
                        "use the value of {} in the server's environment",
                        op.reference()
                    )),
                    login_next: Some(next.clone()),
                    back: Some(next),
                    ..ErrorPage::default()
                };
                Ok(self.html(401, html::error(&page, &Viewer::Anonymous)))
            }
            Err(e) => Err(Problem::new(
                503,
                "actions unavailable",
                format!("the operator token cannot be read: {e}"),
            )
            .hint("set it where operator_token points, then log in again")),
        }
    }

    /// A retry, drop or replay: only for a logged-in operator whose form carries the
    /// session's CSRF token; then back to the change's page.
    async fn act(&self, action: Action<'_>, req: &Request<'_>) -> Result<Response, Problem> {
        self.check_host(req)?;
        let op = self.operator()?;
        StatusPage::check_origin(req)?;
        let form = pairs(req.body);
        let back = match action {
            Action::Replay(id) => plain_id(id),
            Action::Start(..) => field(&form, "change").and_then(plain_id),
        }
        .map_or_else(|| "/".to_owned(), |id| format!("/changes/{id}"));
        let Some(session) = self.session(op, req).await else {
            let page = ErrorPage {
                status: 401,
                title: "log in first".into(),
                message: "retry, drop and replay need the operator's session".into(),
                hint: Some("log in with the operator token, then use the button again".into()),
                login_next: Some(back.clone()),
                back: Some(back),
                ..ErrorPage::default()
            };
            return Ok(self.html(401, html::error(&page, &Viewer::Anonymous)));
        };
        if !session.csrf_matches(field(&form, "csrf").unwrap_or("")) {
            return Err(Problem::new(
                403,
                "stale form",
                "the form does not carry this session's CSRF token",
            )
            .hint("reload the page and use the button again"));
        }
        match action {
            Action::Start(id, to) => {
                let row = self.store.transition(id, to).await?;
                tracing::info!(start_id = %row.id, change_id = %row.change_id, action = to.done(), "status page: start {} by the operator", to.done());
                let location = format!("/changes/{}?done={}", row.change_id, to.done());
                Ok(StatusPage::see_other(location, None))
            }
            Action::Replay(id) => {
                let id = StatusPage::change_id(id)?;
                let pipeline = field(&form, "pipeline").filter(|p| !p.is_empty());
                let report = changes::replay(&self.store, &self.pipelines, id, pipeline)
                    .await
                    .map_err(replay_problem)?;
                let new = report.replayed.iter().filter(|r| !r.duplicate).count();
                let duplicates = report.replayed.len() - new;
                tracing::info!(change_id = %report.change, new, duplicates, "status page: change replayed by the operator");
                let location = format!(
                    "/changes/{}?replayed={new}&duplicates={duplicates}",
                    report.change
                );
                Ok(StatusPage::see_other(location, None))
            }
        }
    }
}

/// What an operator's form asks.
#[derive(Clone, Copy, Debug)]
enum Action<'a> {
    Start(&'a str, Transition),
    Replay(&'a str),
}

fn replay_problem(e: ReplayError) -> Problem {
    let text = e.to_string();
    let (message, hint) = match text.split_once("\nhint: ") {
        Some((m, h)) => (m.to_owned(), Some(h.to_owned())),
        None => (text.clone(), None),
    };
    let status = match e {
        ReplayError::Store(e) => return Problem::from(e),
        ReplayError::NoSuchPipeline { .. } | ReplayError::OtherRepository { .. } => 400,
        ReplayError::Deferred(_) => 409,
        ReplayError::BadEvent(..) => 500,
    };
    Problem {
        hint,
        ..Problem::new(status, "cannot replay", message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_take_the_commands_options_and_name_a_bad_one() {
        let (q, asked) = list_query(
            Some("repository=https://github.com/acme/api.git&pipeline=deploy&limit=5"),
            20,
            changes::MAX_LIMIT,
        )
        .expect("good");
        assert_eq!(q.repository.as_deref(), Some("github.com/acme/api"));
        assert_eq!(q.pipeline.as_deref(), Some("deploy"));
        assert_eq!(q.limit, 5);
        assert_eq!(asked[1], ("pipeline", "deploy".to_owned()));
        let (q, _) =
            list_query(Some("repository=&pipeline=&since=&limit="), 20, 500).expect("empty");
        assert_eq!(
            q,
            ChangeQuery {
                limit: 20,
                ..ChangeQuery::default()
            }
        );
        let (q, _) = list_query(Some("since=2h"), 20, 500).expect("since");
        assert!(q.since_ms.is_some_and(|ms| ms <= now_ms() - 7_200_000));
        let bad = [
            (
                "limt=5",
                "unknown parameter \"limt\"",
                "did you mean \"limit\"?",
            ),
            (
                "limit=lots",
                "limit=\"lots\" is not a number",
                "ask for 1 to 10000",
            ),
            (
                "limit=0",
                "limit=\"0\" is out of range",
                "ask for 1 to 10000",
            ),
            (
                "before=x",
                "before=\"x\" is not a cursor",
                "follow the list's next link",
            ),
            (
                "befor=3",
                "unknown parameter \"befor\"",
                "did you mean \"before\"?",
            ),
            (
                "limit=10001",
                "limit=\"10001\" is out of range",
                "ask for 1 to 10000",
            ),
            (
                "since=soon",
                "since=\"soon\" is not a duration",
                "write a duration",
            ),
            (
                "repository=nohost",
                "repository=\"nohost\"",
                "name the repository",
            ),
        ];
        for (query, message, hint) in bad {
            let p = list_query(Some(query), 20, 500).expect_err(query);
            assert_eq!(p.status, 400, "{query}");
            assert!(p.message.contains(message), "{query}: {}", p.message);
            assert!(
                p.hint.as_deref().unwrap_or("").contains(hint),
                "{query}: {:?}",
                p.hint
            );
        }
    }

    #[test]
    fn a_visitor_without_the_operators_session_gets_at_most_a_capped_page_and_its_next_link() {
        let (q, asked) =
            list_query(Some("limit=10000&pipeline=deploy"), 20, ANONYMOUS_LIMIT).expect("capped");
        assert_eq!(q.limit, ANONYMOUS_LIMIT);
        let (q_op, _) = list_query(Some("limit=10000"), 20, changes::MAX_LIMIT).expect("operator");
        assert_eq!(q_op.limit, 10_000);
        let record = |seq| ChangeRecord {
            seq,
            ..changes::fixtures::record(Vec::new(), None)
        };
        let full: Vec<ChangeRecord> = (0..500).map(|i| record(900 - i)).collect();
        assert_eq!(
            next_page("/api/changes", &asked, q.limit, &full).as_deref(),
            Some("/api/changes?pipeline=deploy&limit=500&before=401")
        );
        assert_eq!(
            next_page("/api/changes", &asked, q.limit, &full[..499]),
            None
        );
        let (q, _) = list_query(Some("pipeline=deploy&limit=500&before=401"), 20, 500)
            .expect("the next link is a good query");
        assert_eq!(q.before_seq, Some(401));
    }

    #[test]
    fn only_local_paths_are_returned_to() {
        let cases = [
            (Some("/changes/abcd"), "/changes/abcd"),
            (Some("/?limit=5"), "/?limit=5"),
            (Some("//evil.example/"), "/"),
            (Some("https://evil.example/"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("/a b"), "/"),
            (None, "/"),
        ];
        for (next, want) in cases {
            assert_eq!(local_path(next), want, "{next:?}");
        }
    }

    #[test]
    fn a_post_from_another_origin_is_refused() {
        let req = |origin, host| Request {
            method: "POST",
            origin,
            host,
            ..Request::default()
        };
        assert!(same_origin(&req(None, Some("127.0.0.1:8080"))));
        assert!(same_origin(&req(
            Some("http://127.0.0.1:8080"),
            Some("127.0.0.1:8080")
        )));
        assert!(!same_origin(&req(
            Some("http://evil.example"),
            Some("127.0.0.1:8080")
        )));
        assert!(!same_origin(&req(Some("null"), Some("127.0.0.1:8080"))));
        assert!(!same_origin(&req(Some("http://127.0.0.1:8080"), None)));
    }

    #[test]
    fn notices_come_only_from_fixed_words() {
        assert_eq!(
            notice(Some("done=retried")).as_deref(),
            Some("Start retried: it is pending again, with a fresh set of attempts.")
        );
        assert_eq!(
            notice(Some("replayed=1&duplicates=0")).as_deref(),
            Some("Replayed: 1 new start.")
        );
        assert!(notice(Some("replayed=0&duplicates=2")).is_some_and(|n| n.contains("2 pipelines")));
        assert_eq!(notice(Some("done=<script>")), None);
        assert_eq!(notice(None), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 4096,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Whatever a query string or a form holds, it is read or refused with a 400, the
        /// limit never exceeds the visitor's cap, a path to return to is always this server's,
        /// and a change id put in a path is plain: never a panic.
        #[test]
        fn query_strings_and_forms_are_read_or_refused(
            text in "(([a-z_]{0,10}|repository|pipeline|since|limit|before|next|token|csrf)=([^&]{0,24}|%[0-9A-Fa-f]{2}|[0-9]{1,12}|[0-9]{1,4}[smhd]|/[/a-z%.]{0,12})&?){0,6}",
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            cap in 1u32..20_000,
        ) {
            match list_query(Some(&text), changes::DEFAULT_LIMIT, cap) {
                Ok((query, _)) => proptest::prop_assert!(query.limit <= cap.max(changes::DEFAULT_LIMIT), "{text}: {}", query.limit),
                Err(p) => proptest::prop_assert_eq!(p.status, 400, "{}", text),
            }
            for raw in [text.as_bytes(), &bytes[..]] {
                let form = pairs(raw);
                let next = local_path(field(&form, "next"));
                proptest::prop_assert!(next.starts_with('/') && !next.starts_with("//"), "{next}");
                if let Some(id) = field(&form, "change").and_then(plain_id) {
                    proptest::prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
                }
            }
        }
    }
}
