//! The runner pipeline starts reach (their `http` target): an HTTP server on loopback that
//! records when each start arrived and what it named, answers as scripted (at once, after
//! holding each request a while, or held until released; counting how many it holds at once),
//! and wakes whoever waits for one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::Value;

use crate::now_ms;

/// One start request that reached the runner.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// When its request arrived (before its body was read).
    pub at: Instant,
    /// The same, Unix milliseconds.
    pub at_ms: f64,
    /// Its headers (names in lower case).
    pub headers: HashMap<String, String>,
    /// Its body as sent, and as JSON (`Null` when it is not).
    pub body: Bytes,
    pub json: Value,
    pub start_id: String,
    pub repository: String,
    pub git_ref: String,
    pub before: String,
    /// The change's `after` (empty when the body names none).
    pub sha: String,
    /// The change's `source.kind`.
    pub source: String,
    /// The change's `received_at`, Unix milliseconds.
    pub received_at_ms: Option<f64>,
}

/// What a loopback server received, in order, and a wake-up for whoever waits for more: the
/// runner's arrivals, the runner APIs' calls.
#[derive(Debug)]
pub struct Recorder<T> {
    items: Mutex<Vec<T>>,
    added: tokio::sync::Notify,
}

impl<T> Default for Recorder<T> {
    fn default() -> Recorder<T> {
        Recorder {
            items: Mutex::new(Vec::new()),
            added: tokio::sync::Notify::new(),
        }
    }
}

impl<T: Clone> Recorder<T> {
    /// Records `item` and wakes the waiters.
    pub fn push(&self, item: T) {
        if let Ok(mut items) = self.items.lock() {
            items.push(item);
        }
        self.added.notify_waiters();
    }

    /// Everything so far, left in place.
    pub fn all(&self) -> Vec<T> {
        self.items.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Takes everything so far.
    pub fn drain(&self) -> Vec<T> {
        self.items
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default()
    }

    /// Waits, woken at each record, until `found` finds something among the records so far
    /// (not drained): what it found; `None` after `within`.
    pub async fn wait_for<R>(
        &self,
        within: Duration,
        mut found: impl FnMut(&[T]) -> Option<R>,
    ) -> Option<R> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let added = self.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if let Some(v) = self.items.lock().ok().and_then(|a| found(&a)) {
                return Some(v);
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return self.items.lock().ok().and_then(|a| found(&a));
            }
        }
    }
}

/// The runner: every arrival, in order, until drained.
#[derive(Debug, Default)]
pub struct Runner {
    arrivals: Recorder<Arrival>,
    /// The statuses to answer with, the next last; 200 when none is left.
    script: Mutex<Vec<u16>>,
    /// While true, answers wait (the request is recorded at once).
    held: tokio::sync::watch::Sender<bool>,
    /// How long each request is held before it is answered.
    hold_for: Duration,
    /// Requests being held (or read) now, and the most there ever were at once.
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// Counts a request in flight for as long as it lives (a request whose client went away is
/// dropped by the server, and counted out all the same).
struct InFlight<'a>(&'a Runner);

impl<'a> InFlight<'a> {
    fn enter(runner: &'a Runner) -> InFlight<'a> {
        let now = runner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        runner.most_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(runner)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Runner {
    /// Serves on a loopback port, answering 200, for as long as the runtime runs; the runner
    /// and its address.
    pub async fn start() -> anyhow::Result<(Arc<Runner>, SocketAddr)> {
        Runner::scripted(&[]).await
    }

    /// The same, answering the first requests with `statuses` in order (a body `runner says
    /// no` with those that are not 2xx), then 200.
    pub async fn scripted(statuses: &[u16]) -> anyhow::Result<(Arc<Runner>, SocketAddr)> {
        Runner::serve(Runner {
            script: Mutex::new(statuses.iter().rev().copied().collect()),
            ..Runner::default()
        })
        .await
    }

    /// The same, answering 200 to each request only after holding it for `hold` (a slow
    /// runner: starts stay in flight meanwhile); [`Runner::most_in_flight`] tells how many it
    /// held at once.
    pub async fn holding(hold: Duration) -> anyhow::Result<(Arc<Runner>, SocketAddr)> {
        Runner::serve(Runner {
            hold_for: hold,
            ..Runner::default()
        })
        .await
    }

    async fn serve(runner: Runner) -> anyhow::Result<(Arc<Runner>, SocketAddr)> {
        let runner = Arc::new(runner);
        let shared = Arc::clone(&runner);
        let addr = crate::http::serve(move |request| Arc::clone(&shared).take(request)).await?;
        Ok((runner, addr))
    }

    async fn take(self: Arc<Self>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let at = Instant::now();
        let at_ms = now_ms();
        let _in_flight = InFlight::enter(&self);
        let headers = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = crate::http::read_body(request.into_body()).await;
        let json: Value = serde_json::from_slice(&body).unwrap_or_default();
        let event = &json["event"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let arrival = Arrival {
            at,
            at_ms,
            headers,
            start_id: text(&json["start_id"]),
            repository: text(&event["repository"]),
            git_ref: text(&event["ref"]),
            before: text(&event["before"]),
            sha: text(&event["after"]),
            source: text(&event["source"]["kind"]),
            received_at_ms: event["received_at"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_nanosecond() as f64 / 1e6),
            body,
            json,
        };
        self.arrivals.push(arrival);
        if !self.hold_for.is_zero() {
            tokio::time::sleep(self.hold_for).await;
        }
        let _ = self.held.subscribe().wait_for(|held| !held).await;
        let status = self.script.lock().ok().and_then(|mut s| s.pop());
        let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
        if let Some(status) = status.and_then(|s| StatusCode::from_u16(s).ok()) {
            if !status.is_success() {
                *response.body_mut() = Full::new(Bytes::from_static(b"runner says no"));
            }
            *response.status_mut() = status;
        }
        response
    }

    /// From now on the answers wait (each arrival is recorded, and waiters woken, at once),
    /// until [`release`](Runner::release): a start that stays in flight.
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    /// Answers the held requests and those to come.
    pub fn release(&self) {
        self.held.send_replace(false);
    }

    /// Answers the next requests with `statuses` in order, then 200 again.
    pub fn script(&self, statuses: &[u16]) {
        if let Ok(mut script) = self.script.lock() {
            *script = statuses.iter().rev().copied().collect();
        }
    }

    /// Takes every arrival so far.
    pub fn drain(&self) -> Vec<Arrival> {
        self.arrivals.drain()
    }

    /// Requests it holds now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests it ever held at once.
    pub fn most_in_flight(&self) -> usize {
        self.most_in_flight.load(Ordering::SeqCst)
    }

    /// Every arrival so far, left in place.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.all()
    }

    /// Waits, woken at each arrival, until `found` finds something among the arrivals so far
    /// (not drained): what it found; `None` after `within`.
    pub async fn wait_for<T>(
        &self,
        within: Duration,
        found: impl FnMut(&[Arrival]) -> Option<T>,
    ) -> Option<T> {
        self.arrivals.wait_for(within, found).await
    }
}
