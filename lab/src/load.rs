//! The HTTP load generator of the benchmarks: signed Standard Webhooks deliveries of distinct
//! pushes (a [`Signer`] builds and signs each on the fly), posted over keep-alive HTTP/1.1
//! connections (hyper), in a closed loop ([`closed_loop`]: send, wait for the answer, send the
//! next, tallied in and out of a measured window) or paced ([`paced`]: a rate over some
//! connections); each answer classified ([`Outcome`]: accepted, duplicate, other).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use switchyard::signature::{Key, sign};
use tokio::net::TcpStream;

/// The `before` sha of every delivery.
const BEFORE: &str = "1111111111111111111111111111111111111111";

/// One keep-alive HTTP/1.1 connection.
pub type Sender = SendRequest<Full<Bytes>>;

/// One keep-alive HTTP/1.1 connection; its driver runs as a task.
pub async fn connect(addr: SocketAddr) -> std::io::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole answer.
pub async fn exchange(
    sender: &mut Sender,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), hyper::Error> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Builds and signs distinct deliveries to the Standard Webhooks receiver `receiver`.
#[derive(Debug)]
pub struct Signer {
    pub key: Key,
    /// The receiver's name: deliveries go to `/hooks/RECEIVER`.
    pub receiver: String,
    pub repository: String,
    /// Change `n` pushes `refs/heads/main`, or with `refs` > 1 branch `b{n % refs}`.
    pub refs: u64,
}

impl Signer {
    /// The `after` sha of change `n`: distinct per `n`, never the zero sha.
    pub fn after(n: u64) -> String {
        format!("be{:038x}", n + 1)
    }

    /// Delivery `n` to the server at `host`: a push of its own `after` sha, signed now.
    pub fn request(&self, n: u64, host: &str) -> Request<Full<Bytes>> {
        let after = Signer::after(n);
        let git_ref: std::borrow::Cow<'_, str> = if self.refs > 1 {
            format!("refs/heads/b{}", n % self.refs).into()
        } else {
            "refs/heads/main".into()
        };
        let body = format!(
            concat!(
                r#"{{"schema":"switchyard.change/v1","repository":"{}","kind":"push","#,
                r#""ref":"{}","before":"{}","after":"{}","commit_count":1,"#,
                r#""changed_paths":["src/lib.rs","README.md"],"changed_paths_complete":true,"#,
                r#""pull_request":null}}"#
            ),
            self.repository, git_ref, BEFORE, after
        );
        let id = format!("msg_bench_{n}");
        let ts = unix_now();
        let signature = sign(&self.key, &id, ts, body.as_bytes());
        Request::post(format!("/hooks/{}", self.receiver))
            .header(HOST, host)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(Full::new(Bytes::from(body)))
            .expect("a valid request")
    }
}

/// Now, Unix seconds: a delivery's `webhook-timestamp`.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How the server answered one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    Other(u16),
}

/// What an answer says: a 202 of an accepted or a duplicate change, or another status.
pub fn classify(status: StatusCode, body: &[u8]) -> Outcome {
    let has = |pat: &[u8]| body.windows(pat.len()).any(|w| w == pat);
    match status.as_u16() {
        202 if has(br#""status":"accepted""#) => Outcome::Accepted,
        202 if has(br#""status":"duplicate""#) => Outcome::Duplicate,
        code => Outcome::Other(code),
    }
}

/// What one load task saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: u64,
    pub accepted: u64,
    pub duplicate: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub transport: u64,
    /// Accepted answers received inside the measured window.
    pub window_accepted: u64,
    /// The same, per second of the window.
    pub per_second: Vec<u64>,
    /// Other answers and failures inside the window.
    pub window_errors: u64,
    /// Latencies (ms) of the accepted answers inside the window.
    pub latencies: Vec<f64>,
    pub first_error: Option<String>,
}

impl Tally {
    /// Adds what another task saw.
    pub fn merge(&mut self, o: Tally) {
        self.sent += o.sent;
        self.accepted += o.accepted;
        self.duplicate += o.duplicate;
        for (k, v) in o.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        self.transport += o.transport;
        self.window_accepted += o.window_accepted;
        if self.per_second.len() < o.per_second.len() {
            self.per_second.resize(o.per_second.len(), 0);
        }
        for (i, n) in o.per_second.iter().enumerate() {
            self.per_second[i] += n;
        }
        self.window_errors += o.window_errors;
        self.latencies.extend(o.latencies);
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }

    /// Answers other than 202, and transport failures.
    pub fn errors(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.transport
    }
}

/// A closed loop on one connection to `addr`: send delivery `next` (counted up across tasks),
/// wait for the answer, send the next, until `until`; answers from `window_start` on are the
/// measured window's.
pub async fn closed_loop(
    addr: SocketAddr,
    signer: Arc<Signer>,
    next: Arc<AtomicU64>,
    window_start: Instant,
    until: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let host = addr.to_string();
    let mut sender: Option<Sender> = None;
    let last = ((until - window_start).as_secs_f64().ceil() as usize).saturating_sub(1);
    while Instant::now() < until {
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match connect(addr).await {
                Ok(s) => sender.insert(s),
                Err(e) => {
                    tally.transport += 1;
                    tally.first_error.get_or_insert(format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let n = next.fetch_add(1, Ordering::Relaxed);
        let req = signer.request(n, &host);
        let sent = Instant::now();
        let result = exchange(s, req).await;
        let done = Instant::now();
        tally.sent += 1;
        let in_window = done >= window_start && done <= until;
        match result {
            Ok((status, body)) => match classify(status, &body) {
                Outcome::Accepted => {
                    tally.accepted += 1;
                    if in_window {
                        tally.window_accepted += 1;
                        let second = ((done - window_start).as_secs() as usize).min(last);
                        if tally.per_second.len() <= second {
                            tally.per_second.resize(second + 1, 0);
                        }
                        tally.per_second[second] += 1;
                        tally.latencies.push((done - sent).as_secs_f64() * 1e3);
                    }
                }
                Outcome::Duplicate => {
                    tally.duplicate += 1;
                    tally.window_errors += u64::from(in_window);
                }
                Outcome::Other(code) => {
                    *tally.statuses.entry(code).or_default() += 1;
                    tally.window_errors += u64::from(in_window);
                    tally.first_error.get_or_insert_with(|| {
                        format!("{code}: {}", String::from_utf8_lossy(&body).trim())
                    });
                }
            },
            Err(e) => {
                tally.transport += 1;
                tally.window_errors += u64::from(in_window);
                tally.first_error.get_or_insert(format!("transport: {e}"));
                sender = None;
            }
        }
    }
    tally
}

/// One paced delivery: its push's `after` sha, when it was sent and answered, and how
/// (`None`: no connection or no answer).
#[derive(Debug)]
pub struct Sent {
    pub after: String,
    pub sent: Instant,
    pub acked: Instant,
    pub outcome: Option<Outcome>,
}

/// Sends changes `ids` on one connection, one every `period`, beginning at `first`.
async fn paced_worker(
    addr: SocketAddr,
    signer: Arc<Signer>,
    ids: Vec<u64>,
    first: Instant,
    period: Duration,
) -> Vec<Sent> {
    let mut out = Vec::with_capacity(ids.len());
    let host = addr.to_string();
    let mut sender = connect(addr).await.ok();
    let mut tick = tokio::time::interval_at(first.into(), period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in ids {
        tick.tick().await;
        if sender.is_none() {
            sender = connect(addr).await.ok();
        }
        let req = signer.request(n, &host);
        let sent = Instant::now();
        let outcome = match sender.as_mut() {
            Some(s) => match exchange(s, req).await {
                Ok((status, body)) => Some(classify(status, &body)),
                Err(_) => {
                    sender = None;
                    None
                }
            },
            None => None,
        };
        out.push(Sent {
            after: Signer::after(n),
            sent,
            acked: Instant::now(),
            outcome,
        });
    }
    out
}

/// Sends `ids` to `addr` at `rate` per second over `connections` connections.
pub async fn paced(
    addr: SocketAddr,
    signer: &Arc<Signer>,
    ids: std::ops::Range<u64>,
    rate: f64,
    connections: usize,
) -> Vec<Sent> {
    let conns = connections.max(1);
    let period = Duration::from_secs_f64(conns as f64 / rate);
    let begin = Instant::now() + Duration::from_millis(20);
    let tasks: Vec<_> = (0..conns)
        .map(|c| {
            let mine: Vec<u64> = ids
                .clone()
                .filter(|n| n % conns as u64 == c as u64)
                .collect();
            let first = begin + period.mul_f64(c as f64 / conns as f64);
            tokio::spawn(paced_worker(addr, Arc::clone(signer), mine, first, period))
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a paced task"));
    }
    all
}
