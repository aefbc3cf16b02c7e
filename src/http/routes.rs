//! The one route table of `serve`: which path and method reach which handler, and the answers
//! to every other path and method. The handlers are the webhook front's ([`Hooks`]) and the
//! status page's ([`StatusPage`]); this file only reads bodies (within the read timeout and
//! their limits) and turns their answers into HTTP.
//!
//! | path | methods | handler |
//! |---|---|---|
//! | `/hooks/NAME` | POST | the receiver `NAME` ([`Hooks::open`], then [`Hooks::deliver`]) |
//! | `/healthz`, `/readyz`, `/metrics` | GET | the process answers; a store probe; OpenMetrics text |
//! | `/`, `/changes/ID` | GET | the status page's overview and change pages |
//! | `/changes/ID/replay`, `/starts/ID/retry`, `/starts/ID/drop`, `/login`, `/logout` | POST | the operator's forms |
//! | `/api/changes`, `/api/changes/ID` | GET | the JSON of `changes list` / `changes show` |
//! | any other path below `/changes/`, `/starts/` (`/api/changes/`) | any | the status page's 404 page (JSON): [`STATUS_AREAS`] |
//! | anything else | any | 404 JSON naming the endpoints |
//!
//! A known path asked with another method is a 405 naming the method to use (JSON for the
//! webhook front and the API, a page for the status page), `HEAD` included.
//!
//! A Lambda function URL has three of these paths; [`function_url`] says which, and a test
//! holds its answers to the router's.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::sources::webhook::{Answer, BodyError, Hooks};
use crate::status::{self, Kind, StatusPage};
use crate::store::{Store, Transition};

/// The 404 of a path `serve` does not have.
const NO_SUCH_ENDPOINT: &str = "no such endpoint: POST /hooks/NAME, GET /healthz, /readyz, /metrics, / (the status page), /api/changes";
/// The 404 of a path a Lambda function URL does not have.
const NO_SUCH_FUNCTION_URL_ENDPOINT: &str =
    "no such endpoint: POST /hooks/NAME, GET /healthz, /readyz";

/// What the handlers share.
#[derive(Debug)]
pub struct App {
    pub intake: Intake,
    pub hooks: Hooks,
    pub metrics: Arc<Metrics>,
    pub store: Store,
    pub status: StatusPage,
    /// How long a body may take to arrive.
    pub read_timeout: Duration,
}

type Shared = State<Arc<App>>;
/// A route's handler and its answers to other methods.
type Endpoint = MethodRouter<Arc<App>>;

/// `serve`'s route table over `app`.
pub fn router(app: Arc<App>) -> Router {
    use Method::{Get, Post};
    Router::new()
        .route("/hooks/{*name}", front(Post, hook))
        .route("/hooks/", front(Post, hook))
        .route("/healthz", front(Get, healthz))
        .route("/readyz", front(Get, readyz))
        .route("/metrics", front(Get, metrics))
        .route("/", page(Get, overview))
        .route("/changes/{id}", page(Get, change))
        .route("/changes/{id}/replay", page(Post, replay))
        .route("/starts/{id}/retry", page(Post, retry))
        .route("/starts/{id}/drop", page(Post, drop_start))
        .route("/login", page(Post, login))
        .route("/logout", page(Post, logout))
        .route("/api/changes", api(Get, api_changes))
        .route("/api/changes/{id}", api(Get, api_change))
        .fallback(unknown)
        .with_state(app)
}

/// Where a request to a Lambda function URL goes: its three paths of `serve`'s table.
#[derive(Clone, Debug, PartialEq)]
pub enum Route<'a> {
    /// `GET /healthz`: the process answers.
    Health,
    /// `GET /readyz`: a change posted now would be taken.
    Ready,
    /// `POST /hooks/NAME`.
    Hook(&'a str),
    /// Anything else: the answer `serve` gives too (404 naming the endpoints, 405 naming the
    /// method).
    Refused(Answer),
}

/// The route of `method path` on a Lambda function URL.
pub fn function_url<'a>(method: &str, path: &'a str) -> Route<'a> {
    let wrong = |allowed: Method| Route::Refused(Answer::rejected(405, allowed.hint()));
    match path {
        "/healthz" if method == "GET" => Route::Health,
        "/readyz" if method == "GET" => Route::Ready,
        "/healthz" | "/readyz" => wrong(Method::Get),
        p => match p.strip_prefix("/hooks/") {
            Some(name) if method == "POST" => Route::Hook(name),
            Some(_) => wrong(Method::Post),
            None => Route::Refused(Answer::rejected(404, NO_SUCH_FUNCTION_URL_ENDPOINT)),
        },
    }
}

/// The one method a route answers.
#[derive(Clone, Copy, Debug)]
enum Method {
    Get,
    Post,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Method::Get => "use GET",
            Method::Post => "use POST",
        }
    }
}

/// How a route refuses another method: the webhook front's JSON, or the status page's page
/// or JSON.
#[derive(Clone, Copy, Debug)]
enum Answers {
    Json,
    Status(Kind),
}

/// A route of the webhook front or the process (health, readiness, metrics).
fn front<H: Handler<T, Arc<App>>, T: 'static>(method: Method, handler: H) -> Endpoint {
    only(method, Answers::Json, handler)
}

/// A route of the status page's HTML pages and forms.
fn page<H: Handler<T, Arc<App>>, T: 'static>(method: Method, handler: H) -> Endpoint {
    only(method, Answers::Status(Kind::Page), handler)
}

/// A route of the status page's JSON API.
fn api<H: Handler<T, Arc<App>>, T: 'static>(method: Method, handler: H) -> Endpoint {
    only(method, Answers::Status(Kind::Api), handler)
}

/// A route answering `method` with `handler` and every other method (`HEAD` too, which axum
/// would otherwise answer as `GET`) with a 405 naming `method`.
fn only<H: Handler<T, Arc<App>>, T: 'static>(
    method: Method,
    answers: Answers,
    handler: H,
) -> Endpoint {
    let filter = match method {
        Method::Get => MethodFilter::GET,
        Method::Post => MethodFilter::POST,
    };
    let refuse = move |State(app): Shared, req: Request| async move {
        let mut response = match answers {
            Answers::Json => json(&Answer::rejected(405, method.hint())),
            Answers::Status(kind) => {
                let (parts, _) = req.into_parts();
                let request = page_request(&parts, &[]);
                status_answer(
                    app.status
                        .wrong_method(kind, method.as_str(), &request)
                        .await,
                )
            }
        };
        // Axum's own Allow would name HEAD too, which is refused as well.
        response
            .headers_mut()
            .entry(axum::http::header::ALLOW)
            .or_insert(HeaderValue::from_static(method.as_str()));
        response
    };
    MethodRouter::new()
        .on(filter, handler)
        .on(MethodFilter::HEAD, refuse)
        .fallback(refuse)
}

/// The paths the status page owns beyond its routes: below them, an unknown path is its 404
/// (a page; JSON for the API).
const STATUS_AREAS: [(&str, Kind); 3] = [
    ("/api/changes/", Kind::Api),
    ("/changes/", Kind::Page),
    ("/starts/", Kind::Page),
];

/// A path no route names: the status page's 404 in its areas, else the 404 naming the
/// endpoints.
async fn unknown(State(app): Shared, req: Request) -> Response {
    let path = req.uri().path();
    let Some(&(_, kind)) = STATUS_AREAS.iter().find(|(area, _)| path.starts_with(area)) else {
        return json(&Answer::rejected(404, NO_SUCH_ENDPOINT));
    };
    let (parts, _) = req.into_parts();
    status_answer(app.status.not_found(kind, &page_request(&parts, &[])).await)
}

/// The route's one parameter as the request wrote it: not percent-decoded, as the ids and
/// receiver names were matched before the router (and a `%FF` in a path is text, not an
/// error). `{*tail}` is the rest of the path.
#[derive(Debug)]
struct Param(String);

impl<S: Send + Sync> FromRequestParts<S> for Param {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Param, Infallible> {
        let pattern = parts
            .extensions
            .get::<MatchedPath>()
            .map_or("", MatchedPath::as_str);
        let mut raw = parts.uri.path().split('/');
        for segment in pattern.split('/') {
            let Some(value) = raw.next() else { break };
            if segment.starts_with("{*") {
                let rest: Vec<&str> = std::iter::once(value).chain(raw).collect();
                return Ok(Param(rest.join("/")));
            }
            if segment.starts_with('{') {
                return Ok(Param(value.to_owned()));
            }
        }
        Ok(Param(String::new()))
    }
}

fn respond(status: u16, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The webhook front's answer: its status and JSON body.
fn json(answer: &Answer) -> Response {
    let mut body = serde_json::to_vec(&answer.body).unwrap_or_default();
    body.push(b'\n');
    respond(answer.status, "application/json", body)
}

/// The status page's answer, with its headers.
fn status_answer(answer: status::Response) -> Response {
    let mut response = respond(answer.status, answer.content_type, answer.body);
    for (name, value) in answer.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .append(HeaderName::from_static(name), value);
        }
    }
    response
}

/// What the status page needs of a request.
fn page_request<'a>(parts: &'a Parts, form: &'a [u8]) -> status::Request<'a> {
    let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
    status::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        cookie: header(axum::http::header::COOKIE),
        origin: header(axum::http::header::ORIGIN),
        host: header(axum::http::header::HOST),
        peer: parts.extensions.get::<super::Peer>().map(|p| p.0),
        body: form,
    }
}

/// A status page form's body: small, within the read timeout.
async fn read_form(app: &App, body: Body) -> Result<Bytes, Response> {
    let limited = Limited::new(body, status::MAX_FORM_BYTES).collect();
    match tokio::time::timeout(app.read_timeout, limited).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(respond(413, "text/plain", "the form is too large\n"))
        }
        _ => Err(respond(400, "text/plain", "the form could not be read\n")),
    }
}

async fn hook(State(app): Shared, Param(name): Param, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let receiver = match app.hooks.open(&name, declared, &app.metrics) {
        Ok(receiver) => receiver,
        Err(answer) => return json(&answer),
    };
    let limit = app.hooks.max_body();
    let collected =
        tokio::time::timeout(app.read_timeout, Limited::new(body, limit).collect()).await;
    let body = match collected {
        Err(_) => Err(BodyError::Slow),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Ok(Err(e)) => Err(BodyError::Unreadable(e.to_string())),
        Ok(Ok(b)) => Ok(b.to_bytes()),
    };
    let (hooks, metrics) = (&app.hooks, &app.metrics);
    json(
        &hooks
            .deliver(receiver, &parts.headers, body, &app.intake, metrics)
            .await,
    )
}

async fn healthz() -> Response {
    respond(200, "text/plain", "ok\n")
}

async fn readyz(State(app): Shared) -> Response {
    // A real write: ready means a change posted now would be stored.
    match app.store.probe().await {
        Ok(()) => respond(200, "text/plain", "ready\n"),
        Err(e) => respond(503, "text/plain", format!("not ready: {e}\n")),
    }
}

async fn metrics(State(app): Shared) -> Response {
    respond(200, crate::metrics::CONTENT_TYPE, app.metrics.render())
}

async fn overview(State(app): Shared, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    status_answer(app.status.overview(&page_request(&parts, &[])).await)
}

async fn change(State(app): Shared, Param(id): Param, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    status_answer(app.status.change(&id, &page_request(&parts, &[])).await)
}

async fn api_changes(State(app): Shared, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    status_answer(app.status.api_changes(&page_request(&parts, &[])).await)
}

async fn api_change(State(app): Shared, Param(id): Param, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    status_answer(app.status.api_change(&id, &page_request(&parts, &[])).await)
}

async fn login(State(app): Shared, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    match read_form(&app, body).await {
        Ok(form) => status_answer(app.status.login(&page_request(&parts, &form)).await),
        Err(refused) => refused,
    }
}

async fn logout(State(app): Shared, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    match read_form(&app, body).await {
        Ok(form) => status_answer(app.status.logout(&page_request(&parts, &form)).await),
        Err(refused) => refused,
    }
}

async fn transition(app: &App, id: &str, to: Transition, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    match read_form(app, body).await {
        Ok(form) => status_answer(
            app.status
                .transition(id, to, &page_request(&parts, &form))
                .await,
        ),
        Err(refused) => refused,
    }
}

async fn retry(State(app): Shared, Param(id): Param, req: Request) -> Response {
    transition(&app, &id, Transition::Retry, req).await
}

async fn drop_start(State(app): Shared, Param(id): Param, req: Request) -> Response {
    transition(&app, &id, Transition::Drop, req).await
}

async fn replay(State(app): Shared, Param(id): Param, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    match read_form(&app, body).await {
        Ok(form) => status_answer(app.status.replay(&id, &page_request(&parts, &form)).await),
        Err(refused) => refused,
    }
}

#[cfg(test)]
mod tests;
