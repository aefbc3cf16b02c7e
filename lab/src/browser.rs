//! A real headless browser: Debian's Chromium, driven through the DevTools protocol (CDP) over
//! one WebSocket to one page, for tests of what switchyard renders for people (the status page):
//! load a page, read its text, submit its forms, switch JavaScript off, take a screenshot, and
//! hear every error the page reported (console, uncaught exceptions, failed subresources, CSP).
//!
//! The client is ours and small: a task owns the WebSocket, sends each call with its id, hands
//! each answer to the caller waiting for that id, and keeps every event in a list that waiters
//! are woken by (a `watch` channel, so no wake-up is lost between a look and a wait). Every call
//! and every wait has a time bound.
//!
//! Chromium runs in a process group of its own with a profile in a temp dir; both go when the
//! [`Browser`] is dropped. As root it needs `--no-sandbox` (it refuses to start otherwise).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::process::{Captured, Killed, effective_uid};
use crate::skip::Missing;

/// How to get Chromium, for the error that says it is missing.
const INSTALL: &str =
    "apt-get install chromium (.ci/test does it), or set SWITCHYARD_CHROMIUM to a Chromium binary";
/// What Chromium prints on stderr once its DevTools endpoint listens, before the browser URL.
const LISTENING: &str = "DevTools listening on ";
/// How long Chromium may take to say it listens.
const START_WITHIN: Duration = Duration::from_secs(30);
/// How long one CDP call may wait for its answer.
const CALL_WITHIN: Duration = Duration::from_secs(10);
/// How long a navigation or a click may take to load the next page.
const LOAD_WITHIN: Duration = Duration::from_secs(30);

/// Where Chromium is: `$SWITCHYARD_CHROMIUM`, else `/usr/bin/chromium`, else `chromium` on
/// PATH; what is missing when none is.
pub fn chromium() -> Result<PathBuf, Missing> {
    if let Some(path) = std::env::var_os("SWITCHYARD_CHROMIUM") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            let what = format!("{} ($SWITCHYARD_CHROMIUM)", path.display());
            return Err(Missing::new(what, INSTALL));
        }
        return Ok(path);
    }
    let debian = Path::new("/usr/bin/chromium");
    if debian.is_file() {
        return Ok(debian.to_path_buf());
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("chromium"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| Missing::new("chromium", INSTALL))
}

/// A headless Chromium with one page open, connected over CDP with the Page, Runtime and Log
/// domains enabled; killed (with its renderers) and its profile removed on drop.
#[derive(Debug)]
pub struct Browser {
    calls: mpsc::Sender<Call>,
    seen: Arc<watch::Sender<Seen>>,
    next_id: AtomicU64,
    connection: tokio::task::JoinHandle<()>,
    stderr: Arc<Captured>,
    _child: Killed,
    _profile: tempfile::TempDir,
}

/// The page's DevTools WebSocket.
type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Where an answer goes: the call's `result`, or the message of its error.
type Answer = oneshot::Sender<Result<Value, String>>;

/// One call on its way to the connection task: its id, its JSON text, where its answer goes.
#[derive(Debug)]
struct Call {
    id: u64,
    text: String,
    answer: Answer,
}

/// Everything the page's connection reported: its events in order, and why it closed.
#[derive(Debug, Default)]
struct Seen {
    events: Vec<Event>,
    closed: Option<String>,
}

/// One CDP event: its method (`Page.loadEventFired`) and parameters.
#[derive(Debug)]
struct Event {
    method: String,
    params: Value,
}

impl Browser {
    /// Starts Chromium headless, opens one blank page and connects to it. A [`Missing`] error
    /// when Chromium is not installed (`skip::or_skip(Browser::launch().await)`); an error with
    /// Chromium's output when it does not say it listens.
    pub async fn launch() -> anyhow::Result<Browser> {
        let program = chromium()?;
        let profile = tempfile::Builder::new()
            .prefix("switchyard-chromium-")
            .tempdir()
            .context("a temp dir for Chromium's profile")?;
        let dir = profile.path().to_owned();
        let (child, stderr, endpoint) = tokio::task::spawn_blocking(move || start(&program, &dir))
            .await
            .context("the thread starting Chromium failed")??;
        // ws://127.0.0.1:PORT/devtools/browser/ID: the page is opened over HTTP on that port.
        let host = endpoint
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .and_then(|host| host.parse().ok())
            .with_context(|| {
                format!("Chromium named an endpoint that is not ws://ADDR/…: {endpoint}")
            })?;
        let (status, body) =
            crate::http::try_request(host, "PUT", "/json/new?about:blank", &[], Vec::new())
                .await
                .with_context(|| format!("PUT http://{host}/json/new"))?;
        let page: Value = serde_json::from_str(&body).unwrap_or_default();
        let Some(url) = page["webSocketDebuggerUrl"]
            .as_str()
            .filter(|_| status == 200)
        else {
            bail!(
                "PUT http://{host}/json/new?about:blank answered {status} without a page: {body}"
            );
        };
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .with_context(|| format!("cannot connect to the page's DevTools endpoint {url}"))?;
        let (calls, receiver) = mpsc::channel(16);
        let seen = Arc::new(watch::Sender::new(Seen::default()));
        let browser = Browser {
            calls,
            seen: Arc::clone(&seen),
            next_id: AtomicU64::new(1),
            connection: tokio::spawn(connection(socket, receiver, seen)),
            stderr,
            _child: child,
            _profile: profile,
        };
        for domain in ["Page", "Runtime", "Log"] {
            browser.call(&format!("{domain}.enable"), json!({})).await?;
        }
        Ok(browser)
    }

    /// Everything Chromium wrote to stderr so far (its own complaints, crashes).
    pub fn output(&self) -> String {
        self.stderr.text()
    }

    /// Sends one CDP command to the page and waits for its answer: the `result`; an error with
    /// the message of an error answer, when the connection closed, or after [`CALL_WITHIN`].
    pub async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let text = json!({"id": id, "method": method, "params": params}).to_string();
        let (answer, answered) = oneshot::channel();
        if self.calls.send(Call { id, text, answer }).await.is_err() {
            bail!("CDP {method}: {}", self.closed());
        }
        match tokio::time::timeout(CALL_WITHIN, answered).await {
            Err(_) => bail!("CDP {method} got no answer within {CALL_WITHIN:?}"),
            Ok(Err(_)) => bail!("CDP {method}: {}", self.closed()),
            Ok(Ok(Err(message))) => bail!("CDP {method} failed: {message}"),
            Ok(Ok(Ok(result))) => Ok(result),
        }
    }

    /// Loads `url` and waits until its load event fired (its subresources loaded).
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        let mark = self.mark();
        let answer = self.call("Page.navigate", json!({ "url": url })).await?;
        if let Some(error) = answer["errorText"].as_str() {
            bail!("cannot load {url}: {error}");
        }
        self.wait_for(mark, "Page.loadEventFired", LOAD_WITHIN)
            .await
            .with_context(|| format!("{url} did not finish loading"))
    }

    /// Evaluates `js` in the page (a promise is awaited): its value as JSON (`null` for
    /// `undefined`); an error with the exception's text when it throws.
    pub async fn eval(&self, js: &str) -> anyhow::Result<Value> {
        let params = json!({"expression": js, "returnByValue": true, "awaitPromise": true});
        let mut answer = self.call("Runtime.evaluate", params).await?;
        if let Some(details) = answer.get("exceptionDetails") {
            bail!("{js}\nthrew {}", exception(details));
        }
        Ok(answer["result"]["value"].take())
    }

    /// The text (`innerText`) of the first element `selector` matches; `None` when none does.
    pub async fn text(&self, selector: &str) -> anyhow::Result<Option<String>> {
        let js = format!(
            "document.querySelector({})?.innerText ?? null",
            json!(selector)
        );
        Ok(self.eval(&js).await?.as_str().map(str::to_owned))
    }

    /// The page's whole HTML as it stands now (`document.documentElement.outerHTML`).
    pub async fn html(&self) -> anyhow::Result<String> {
        let html = self.eval("document.documentElement.outerHTML").await?;
        Ok(html.as_str().unwrap_or_default().to_owned())
    }

    /// Clicks the first element `selector` matches (a form's submit button, a link) and waits
    /// until the page it leads to has loaded; an error when nothing matches or nothing loads.
    pub async fn click_and_wait(&self, selector: &str) -> anyhow::Result<()> {
        let mark = self.mark();
        let js = format!(
            "(e => {{ if (!e) return false; e.click(); return true; }})(document.querySelector({}))",
            json!(selector)
        );
        if self.eval(&js).await? != Value::Bool(true) {
            bail!("no element matches {selector}");
        }
        self.wait_for(mark, "Page.loadEventFired", LOAD_WITHIN)
            .await
            .with_context(|| format!("clicking {selector} loaded no page"))
    }

    /// Every error the page reported since launch, in order: `console.error` and failed
    /// `console.assert` calls, uncaught exceptions, and the browser's own error log entries (a
    /// subresource that failed to load, a Content-Security-Policy violation).
    pub fn console_errors(&self) -> Vec<String> {
        self.seen
            .borrow()
            .events
            .iter()
            .filter_map(error_of)
            .collect()
    }

    /// Lets the page's scripts run, or not (`Emulation.setScriptExecutionDisabled`), from the
    /// next page loaded on; [`Browser::eval`] still works.
    pub async fn set_javascript(&self, enabled: bool) -> anyhow::Result<()> {
        self.call(
            "Emulation.setScriptExecutionDisabled",
            json!({ "value": !enabled }),
        )
        .await
        .map(drop)
    }

    /// Writes a PNG of the page's viewport to `path`.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let answer = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(answer["data"].as_str().unwrap_or_default())
            .context("Page.captureScreenshot answered with data that is not base64")?;
        tokio::fs::write(path, png)
            .await
            .with_context(|| format!("cannot write the screenshot {}", path.display()))
    }

    /// How many events were seen so far: a wait looks only at those after it.
    fn mark(&self) -> usize {
        self.seen.borrow().events.len()
    }

    /// Waits until an event `method` arrives after `mark`, at most `within`.
    async fn wait_for(&self, mark: usize, method: &str, within: Duration) -> anyhow::Result<()> {
        let mut seen = self.seen.subscribe();
        let arrived = tokio::time::timeout(within, async {
            loop {
                {
                    let now = seen.borrow_and_update();
                    if now.events.iter().skip(mark).any(|e| e.method == method) {
                        return Ok(());
                    }
                    if let Some(why) = &now.closed {
                        return Err(why.clone());
                    }
                }
                // The sender lives in `self`, so this waits for a change and cannot fail.
                let _ = seen.changed().await;
            }
        });
        match arrived.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => bail!("no {method}: {why}"),
            Err(_) => bail!("no {method} within {within:?}"),
        }
    }

    /// Why the connection is gone.
    fn closed(&self) -> String {
        let why = self.seen.borrow().closed.clone();
        why.unwrap_or_else(|| "the DevTools connection is closed".to_owned())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// Starts Chromium and blocks until it names its DevTools endpoint: the process, its stderr, the
/// browser's `ws://` URL.
fn start(program: &Path, profile: &Path) -> anyhow::Result<(Killed, Arc<Captured>, String)> {
    let mut command = Command::new(program);
    command
        .args([
            "--headless=new",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
        ])
        // No requests to Google's services in the background; shared memory in /tmp, as a
        // container's /dev/shm may be too small.
        .args(["--disable-background-networking", "--disable-dev-shm-usage"])
        .arg("--remote-debugging-port=0")
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if effective_uid()? == 0 {
        // Chromium refuses root without it: "Running as root without --no-sandbox is not supported".
        command.arg("--no-sandbox");
    }
    command.arg("about:blank");
    let mut child = Killed::spawn(&mut command)
        .with_context(|| format!("cannot start {}", program.display()))?;
    let stderr = Captured::spawn(
        child.child().stderr.take().context("Chromium's stderr")?,
        None,
    );
    let endpoint = stderr.wait_for(START_WITHIN, |text| {
        text.lines()
            .find_map(|l| l.strip_prefix(LISTENING))
            .map(|url| url.trim().to_owned())
    });
    match endpoint {
        Some(endpoint) => Ok((child, stderr, endpoint)),
        None => {
            let state = match child.child().try_wait().ok().flatten() {
                Some(status) => format!("exited ({status})"),
                None => format!("did not say {LISTENING:?} within {START_WITHIN:?}"),
            };
            bail!("{} {state}; it said:\n{}", program.display(), stderr.text());
        }
    }
}

/// The connection task: sends the calls, hands each answer to its caller and records the events,
/// until the browser is dropped or the WebSocket closes; then says why in `seen`, and the
/// callers still waiting are told by their dropped answer channels.
async fn connection(
    mut socket: Socket,
    mut calls: mpsc::Receiver<Call>,
    seen: Arc<watch::Sender<Seen>>,
) {
    let mut waiting: HashMap<u64, Answer> = HashMap::new();
    let why = loop {
        tokio::select! {
            call = calls.recv() => {
                let Some(call) = call else { break "the browser was dropped".to_owned() };
                if let Err(e) = socket.send(Message::text(call.text)).await {
                    break format!("cannot send to Chromium: {e}");
                }
                waiting.insert(call.id, call.answer);
            }
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => receive(&text, &mut waiting, &seen),
                Some(Ok(Message::Close(_))) | None => break "Chromium closed the DevTools connection".to_owned(),
                Some(Ok(_)) => {}
                Some(Err(e)) => break format!("the DevTools connection broke: {e}"),
            },
        }
    };
    seen.send_modify(|seen| seen.closed = Some(why));
}

/// One message from Chromium: an answer goes to the caller waiting for its id, an event to the
/// list.
fn receive(text: &str, waiting: &mut HashMap<u64, Answer>, seen: &watch::Sender<Seen>) {
    let Ok(mut message) = serde_json::from_str::<Value>(text) else {
        return;
    };
    if let Some(id) = message["id"].as_u64() {
        if let Some(answer) = waiting.remove(&id) {
            let _ = answer.send(match message.get("error") {
                // {"code": -32602, "message": "Invalid parameters", "data": "Failed to deserialize…"}
                Some(error) => Err(format!(
                    "{}{}",
                    error["message"].as_str().unwrap_or("?"),
                    error["data"]
                        .as_str()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                )),
                None => Ok(message["result"].take()),
            });
        }
    } else if let Some(method) = message["method"].as_str() {
        let event = Event {
            method: method.to_owned(),
            params: message["params"].take(),
        };
        seen.send_modify(|seen| seen.events.push(event));
    }
}

/// The error an event reports, as a person reads it; `None` for every other event.
fn error_of(event: &Event) -> Option<String> {
    let p = &event.params;
    match event.method.as_str() {
        "Runtime.consoleAPICalled" if matches!(p["type"].as_str(), Some("error" | "assert")) => {
            let args: Vec<String> = p["args"]
                .as_array()
                .into_iter()
                .flatten()
                .map(shown)
                .collect();
            Some(format!(
                "console.{}: {}",
                p["type"].as_str().unwrap_or("?"),
                args.join(" ")
            ))
        }
        "Runtime.exceptionThrown" => Some(exception(&p["exceptionDetails"])),
        "Log.entryAdded" if p["entry"]["level"] == "error" => {
            // {"source": "network", "text": "Failed to load resource: …", "url": "http://…"}
            let entry = &p["entry"];
            let source = entry["source"].as_str().unwrap_or("?");
            let text = entry["text"].as_str().unwrap_or("?");
            let url = entry["url"].as_str().map(|u| format!(" ({u})"));
            Some(format!("{source}: {text}{}", url.unwrap_or_default()))
        }
        _ => None,
    }
}

/// An exception's details (`Uncaught Error: kaput at http://…/page:1:9`): its text, the first
/// line of its description, where it was thrown.
fn exception(details: &Value) -> String {
    let mut text = details["text"].as_str().unwrap_or("exception").to_owned();
    if let Some(first) = details["exception"]["description"]
        .as_str()
        .and_then(|d| d.lines().next())
    {
        text = format!("{text} {first}");
    }
    if let Some(url) = details["url"].as_str().filter(|u| !u.is_empty()) {
        let (line, column) = (
            details["lineNumber"].as_u64(),
            details["columnNumber"].as_u64(),
        );
        text = format!(
            "{text} at {url}:{}:{}",
            line.unwrap_or(0) + 1,
            column.unwrap_or(0) + 1
        );
    }
    text
}

/// A console argument as the console shows it: a string as it is, other values as JSON, objects
/// by their description.
fn shown(arg: &Value) -> String {
    match &arg["value"] {
        Value::String(s) => s.clone(),
        Value::Null => arg["description"]
            .as_str()
            .or(arg["unserializableValue"].as_str())
            .or(arg["type"].as_str())
            .unwrap_or("?")
            .to_owned(),
        value => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper::{Method, Request, Response};

    use super::*;
    use crate::skip::or_skip;

    /// The pages of the tests' site, by path.
    const PAGES: &[(&str, &str)] = &[
        ("/clean", "<p id=said>fine</p>"),
        (
            "/console",
            "<p>loud</p><script>console.error(\"boom\", 42)</script>",
        ),
        (
            "/throws",
            "<p>broken</p><script>throw new Error(\"kaput\")</script>",
        ),
        ("/missing", "<p>incomplete</p><img src=\"/nowhere.png\">"),
        (
            "/csp",
            "<p>locked</p><script>document.title = \"ran\"</script>",
        ),
        (
            "/form",
            "<form method=post action=/submitted><input name=who value=lab>\
             <button id=go type=submit>Go</button></form>",
        ),
        (
            "/scripted",
            "<p id=said>static</p><script>document.getElementById(\"said\").textContent = \"scripted\"</script>",
        ),
    ];

    /// The tests' site on a loopback port: the pages above, `/submitted` saying how it was
    /// reached and with what, 404 for everything else.
    async fn site() -> SocketAddr {
        crate::http::serve(|request: Request<Incoming>| async move {
            // `/csp` forbids every script, its own inline one included.
            let policy = match request.uri().path() {
                "/csp" => "script-src 'none'",
                _ => "script-src 'self' 'unsafe-inline'",
            };
            let (status, body) = match (request.method().clone(), request.uri().path()) {
                (Method::POST, "/submitted") => {
                    let form = crate::http::read_body(request.into_body()).await;
                    (
                        200,
                        format!("<p id=said>POST {}</p>", String::from_utf8_lossy(&form)),
                    )
                }
                (method, path) => match PAGES.iter().find(|(p, _)| *p == path) {
                    Some((_, page)) if method == Method::GET => (200, (*page).to_owned()),
                    _ => (404, "<p>no such page</p>".to_owned()),
                },
            };
            // An icon of its own, or Chromium asks for /favicon.ico after the load event and
            // logs the 404 as an error.
            let page = format!(
                "<!doctype html><html><head><title>lab</title><link rel=icon href=\"data:,\">\
                 </head><body>{body}</body></html>"
            );
            Response::builder()
                .status(status)
                .header("content-security-policy", policy)
                .header("content-type", "text/html; charset=utf-8")
                .body(Full::new(Bytes::from(page)))
                .expect("a response")
        })
        .await
        .expect("the tests' site")
    }

    /// The browser and the site; `None` when Chromium is missing outside strict mode.
    async fn launch() -> Option<(Browser, SocketAddr)> {
        let browser = or_skip(Browser::launch().await)?;
        Some((browser, site().await))
    }

    /// Loads `path` of the site, or panics.
    async fn open(browser: &Browser, site: SocketAddr, path: &str) {
        let url = format!("http://{site}{path}");
        browser.goto(&url).await.unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// The text of the page's `#said`.
    async fn said(browser: &Browser) -> Option<String> {
        browser.text("#said").await.expect("text")
    }

    #[tokio::test]
    async fn console_error_is_reported() {
        let Some((browser, site)) = launch().await else {
            return;
        };
        open(&browser, site, "/console").await;
        assert_eq!(browser.console_errors(), ["console.error: boom 42"]);
    }

    #[tokio::test]
    async fn clean_page_reports_nothing() {
        let Some((browser, site)) = launch().await else {
            return;
        };
        open(&browser, site, "/clean").await;
        assert_eq!(said(&browser).await.as_deref(), Some("fine"));
        assert_eq!(browser.text("#absent").await.expect("text"), None);
        let html = browser.html().await.expect("html");
        assert!(html.contains("<p id=\"said\">fine</p>"), "{html}");
        assert_eq!(browser.console_errors(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn uncaught_exception_is_reported() {
        let Some((browser, site)) = launch().await else {
            return;
        };
        open(&browser, site, "/throws").await;
        let errors = browser.console_errors();
        let thrown = format!("Uncaught Error: kaput at http://{site}/throws:1:");
        assert!(
            errors.len() == 1 && errors[0].starts_with(&thrown),
            "{errors:#?}"
        );
    }

    #[tokio::test]
    async fn failed_subresource_and_csp_violation_are_reported() {
        let Some((browser, site)) = launch().await else {
            return;
        };
        open(&browser, site, "/missing").await;
        open(&browser, site, "/csp").await;
        let errors = browser.console_errors();
        assert_eq!(errors.len(), 2, "{errors:#?}");
        let missing = errors[0].starts_with("network: ") && errors[0].contains("/nowhere.png");
        let refused = errors[1].starts_with("security: ") && errors[1].contains("Content Security");
        assert!(missing && refused, "{errors:#?}");
    }

    #[tokio::test]
    async fn click_submits_a_form_and_waits_for_the_next_page() {
        let Some((browser, site)) = launch().await else {
            return;
        };
        open(&browser, site, "/form").await;
        browser.click_and_wait("#go").await.expect("submit");
        assert_eq!(said(&browser).await.as_deref(), Some("POST who=lab"));
        let missing = browser.click_and_wait("#go").await.expect_err("no button");
        assert_eq!(missing.to_string(), "no element matches #go");
    }

    #[tokio::test]
    async fn scripts_do_not_run_with_javascript_off_and_forms_still_submit() {
        let Some((browser, site)) = launch().await else {
            return;
        };
        open(&browser, site, "/scripted").await;
        assert_eq!(said(&browser).await.as_deref(), Some("scripted"));
        browser.set_javascript(false).await.expect("javascript off");
        open(&browser, site, "/scripted").await;
        assert_eq!(said(&browser).await.as_deref(), Some("static"));
        // The click is the browser's, not a script of the page's.
        open(&browser, site, "/form").await;
        browser.click_and_wait("#go").await.expect("submit");
        assert_eq!(said(&browser).await.as_deref(), Some("POST who=lab"));
    }

    #[tokio::test]
    async fn eval_answers_values_and_exceptions_are_errors() {
        let Some((browser, _)) = launch().await else {
            return;
        };
        let sum = browser.eval("Promise.resolve(40 + 2)").await.expect("eval");
        assert_eq!(sum, json!(42));
        let thrown = browser.eval("null.x").await.expect_err("a TypeError");
        assert!(
            thrown.to_string().contains("threw Uncaught TypeError"),
            "{thrown}"
        );
        let refused = browser
            .call("Page.navigate", json!({}))
            .await
            .expect_err("no url");
        assert!(
            refused
                .to_string()
                .starts_with("CDP Page.navigate failed: "),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn screenshot_is_a_png() {
        let Some((browser, site)) = launch().await else {
            return;
        };
        open(&browser, site, "/clean").await;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("clean.png");
        browser.screenshot(&path).await.expect("screenshot");
        let png = std::fs::read(&path).expect("the screenshot");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{:?}",
            &png[..png.len().min(8)]
        );
    }

    #[tokio::test]
    async fn goto_names_the_url_it_cannot_load() {
        let Some((browser, _)) = launch().await else {
            return;
        };
        let url = format!(
            "http://127.0.0.1:{}/",
            crate::process::free_port().expect("port")
        );
        let error = browser.goto(&url).await.expect_err("nobody listens");
        let expected = format!("cannot load {url}: net::ERR_CONNECTION_REFUSED");
        assert_eq!(error.to_string(), expected);
    }
}
