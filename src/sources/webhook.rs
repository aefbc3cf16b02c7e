//! Webhook receivers, `POST /hooks/NAME`: verify the signature the way the receiver's provider
//! signs, turn the delivery into change events, hand them to the intake, and answer only then.
//!
//! Independent of the HTTP server and its routes: a delivery is (headers, body) in and an
//! [`Answer`] out, so the same code and the front ([`Hooks`]: unknown receivers, the body
//! limit, refusals) serve both `serve` (`http::routes`) and a Lambda function URL. Logs name the receiver and
//! the reason, never the secret or the body. A correctly signed delivery that is no change (a
//! ping, a comment, a star) is answered 2xx with the reason, never 4xx: providers disable hooks
//! that keep failing.
//!
//! A delivery's W3C `traceparent` header, when it holds a valid one, goes with its changes to
//! their starts (an invalid one is ignored, as the spec says: never a refusal).

use std::collections::HashMap;

use hyper::HeaderMap;
use serde_json::json;
use tracing::Instrument as _;

use crate::config::{self, Provider};
use crate::event::{ChangeEvent, Source, SourceKind};
use crate::intake::Intake;
use crate::metrics::{Metrics, Name};
use crate::outcome::{DuplicateOf, IntakeOutcome};
use crate::signature::{self, Key, VerifyError};
use crate::sources::providers::{self, Normalized};
use crate::trace::TraceParent;

/// A configured receiver with its secrets resolved.
pub struct Receiver {
    pub name: String,
    /// The name as a metric label.
    label: Name,
    pub provider: Provider,
    allow_sha1: bool,
    /// The secrets as given (HMAC keys, GitLab tokens).
    raw: Vec<Vec<u8>>,
    /// The same secrets as Standard Webhooks keys (`whsec_` decoded).
    keys: Vec<Key>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("secrets", &self.raw.len())
            .finish()
    }
}

/// Every receiver, by name.
#[derive(Debug, Default)]
pub struct Receivers {
    by_name: HashMap<String, Receiver>,
}

impl Receivers {
    /// Resolves every receiver's secrets. An error names the receiver and the reference.
    pub fn from_config(receivers: &[config::Receiver]) -> Result<Receivers, String> {
        let mut by_name = HashMap::new();
        for r in receivers {
            let mut raw = Vec::with_capacity(r.secrets.len());
            let mut keys = Vec::with_capacity(r.secrets.len());
            for secret in &r.secrets {
                let value = secret
                    .resolve()
                    .map_err(|e| format!("receiver {:?}: {e}", r.name))?;
                match Key::from_secret(&value) {
                    Ok(key) => keys.push(key),
                    // Only Standard Webhooks secrets must be valid `whsec_` base64.
                    Err(e) if r.provider == Provider::Standard => {
                        return Err(format!("receiver {:?}: {secret}: {e}", r.name));
                    }
                    Err(_) => {}
                }
                raw.push(value.into_bytes());
            }
            let receiver = Receiver {
                name: r.name.clone(),
                label: Name::from(r.name.as_str()),
                provider: r.provider,
                allow_sha1: r.allow_sha1,
                raw,
                keys,
            };
            by_name.insert(r.name.clone(), receiver);
        }
        Ok(Receivers { by_name })
    }

    /// The receiver with this name.
    pub fn get(&self, name: &str) -> Option<&Receiver> {
        self.by_name.get(name)
    }
}

/// An HTTP answer: status and JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Answer {
    fn new(status: u16, body: serde_json::Value) -> Answer {
        Answer { status, body }
    }

    /// A refusal with a reason.
    pub fn rejected(status: u16, error: impl Into<String>) -> Answer {
        Answer::new(status, json!({"status": "rejected", "error": error.into()}))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The delivery's `traceparent`: one header holding a valid value, else none (several headers
/// are as good as none, as the spec says).
pub fn traceparent(headers: &HeaderMap) -> Option<TraceParent> {
    let mut values = headers.get_all("traceparent").iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    TraceParent::parse(value.to_str().ok()?)
}

/// Why a delivery's signature was refused: the metric's reason and the message.
struct Refusal {
    reason: &'static str,
    message: String,
}

impl Refusal {
    fn missing(header_name: &str) -> Refusal {
        Refusal {
            reason: "missing_signature",
            message: format!("the {header_name} header is missing"),
        }
    }

    fn mismatch(header_name: &str) -> Refusal {
        Refusal {
            reason: "bad_signature",
            message: format!("{header_name} matches no configured secret"),
        }
    }
}

impl From<VerifyError> for Refusal {
    fn from(e: VerifyError) -> Refusal {
        let reason = match e {
            VerifyError::MissingId | VerifyError::MissingSignature => "missing_signature",
            VerifyError::BadTimestamp => "bad_timestamp",
            VerifyError::Stale => "stale",
            VerifyError::Mismatch => "bad_signature",
        };
        Refusal {
            reason,
            message: e.to_string(),
        }
    }
}

/// Checks a delivery's signature the way `receiver.provider` signs.
fn verify(receiver: &Receiver, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), Refusal> {
    let raw: Vec<&[u8]> = receiver.raw.iter().map(Vec::as_slice).collect();
    let standard = |headers: &HeaderMap| {
        let h = signature::Headers {
            id: header(headers, "webhook-id"),
            timestamp: header(headers, "webhook-timestamp"),
            signature: header(headers, "webhook-signature"),
        };
        signature::verify(&receiver.keys, h, body, now).map_err(Refusal::from)
    };
    let hex_sig = |name: &str, prefix: &str| -> Option<Result<(), Refusal>> {
        let value = header(headers, name)?.trim();
        let Some(hex) = value.strip_prefix(prefix) else {
            return Some(Err(Refusal::mismatch(name)));
        };
        let ok = if prefix == "sha1=" {
            signature::verify_hmac_sha1_hex(&raw, body, hex)
        } else {
            signature::verify_hmac_sha256_hex(&raw, body, hex)
        };
        Some(if ok {
            Ok(())
        } else {
            Err(Refusal::mismatch(name))
        })
    };
    match receiver.provider {
        Provider::Standard => standard(headers),
        Provider::GitHub => match hex_sig("x-hub-signature-256", "sha256=") {
            Some(result) => result,
            None if receiver.allow_sha1 => hex_sig("x-hub-signature", "sha1=")
                .unwrap_or_else(|| Err(Refusal::missing("X-Hub-Signature-256"))),
            None => Err(Refusal::missing("X-Hub-Signature-256")),
        },
        Provider::GitLab => {
            if header(headers, "webhook-signature").is_some() {
                standard(headers)
            } else {
                match header(headers, "x-gitlab-token") {
                    Some(token)
                        if raw
                            .iter()
                            .any(|s| signature::secrets_equal(s, token.as_bytes())) =>
                    {
                        Ok(())
                    }
                    Some(_) => Err(Refusal::mismatch("X-Gitlab-Token")),
                    None => Err(Refusal::missing("X-Gitlab-Token")),
                }
            }
        }
        Provider::Bitbucket => hex_sig("x-hub-signature", "sha256=")
            .unwrap_or_else(|| Err(Refusal::missing("X-Hub-Signature"))),
        Provider::Gitea => hex_sig("x-gitea-signature", "")
            .or_else(|| hex_sig("x-forgejo-signature", ""))
            .unwrap_or_else(|| Err(Refusal::missing("X-Gitea-Signature"))),
    }
}

/// Why a delivery's body could not be had, as the HTTP layer found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Over the body limit (declared, or found while reading).
    TooLarge,
    /// Not received within the read timeout.
    Slow,
    /// Broken off, or not decodable (a function URL body that is not base64).
    Unreadable(String),
}

/// The front of `POST /hooks/NAME` that `serve` and the Lambda function URL share: the
/// receivers, the body limit, and the refusals before a delivery reaches [`handle`].
#[derive(Debug)]
pub struct Hooks {
    receivers: Receivers,
    max_body: usize,
}

impl Hooks {
    /// The receivers, taking bodies of at most `max_body` bytes.
    pub fn new(receivers: Receivers, max_body: usize) -> Hooks {
        Hooks {
            receivers,
            max_body,
        }
    }

    /// The body limit.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Before the body is read: the receiver `name` (else 404), and a declared length within
    /// the limit (else 413), so that an unwanted body is never read.
    pub fn open(
        &self,
        name: &str,
        declared_len: Option<u64>,
        metrics: &Metrics,
    ) -> Result<&Receiver, Answer> {
        let Some(receiver) = self.receivers.get(name) else {
            return Err(Answer::rejected(404, format!("no receiver named {name:?}")));
        };
        if declared_len.is_some_and(|n| n > self.max_body as u64) {
            return Err(self.refuse_body(receiver, &BodyError::TooLarge, metrics));
        }
        Ok(receiver)
    }

    /// The delivery's body as read (or why it could not be): refused, or handled.
    pub async fn deliver(
        &self,
        receiver: &Receiver,
        headers: &HeaderMap,
        body: Result<impl AsRef<[u8]>, BodyError>,
        sink: &impl Sink,
        metrics: &Metrics,
    ) -> Answer {
        match body {
            Ok(body) if body.as_ref().len() <= self.max_body => {
                handle(receiver, headers, body.as_ref(), sink, metrics).await
            }
            Ok(_) => self.refuse_body(receiver, &BodyError::TooLarge, metrics),
            Err(e) => self.refuse_body(receiver, &e, metrics),
        }
    }

    fn refuse_body(&self, receiver: &Receiver, e: &BodyError, metrics: &Metrics) -> Answer {
        let (status, reason, message) = match e {
            BodyError::TooLarge => (
                413,
                "too_large",
                format!("the body is larger than {} bytes", self.max_body),
            ),
            BodyError::Slow => (
                408,
                "slow_body",
                "the body was not received in time".to_owned(),
            ),
            BodyError::Unreadable(why) => {
                (400, "unreadable", format!("cannot read the body: {why}"))
            }
        };
        refuse(metrics, receiver, status, reason, message)
    }
}

/// Turns a verified delivery into change events (or a ping, or an ignored event).
fn normalize(
    receiver: &Receiver,
    headers: &HeaderMap,
    body: &[u8],
    now: jiff::Timestamp,
) -> Result<Normalized, String> {
    if receiver.provider != Provider::Standard {
        return providers::normalize(receiver.provider, headers, body, now)
            .map_err(|e| e.to_string());
    }
    let delivery_id = header(headers, "webhook-id").unwrap_or_default().to_owned();
    let source = Source {
        kind: SourceKind::Webhook,
        provider: Some("standard".into()),
        delivery_id: Some(delivery_id),
    };
    let mut event = ChangeEvent::from_json(body, source.clone()).map_err(|e| e.to_string())?;
    // This receiver is the source of this notice, whatever the producer wrote.
    event.source = source;
    event.received_at = now;
    Ok(Normalized::Changes(vec![event]))
}

/// Refuses a delivery: logs the receiver and the reason (never the body), counts it, and
/// builds the answer.
fn refuse(
    metrics: &Metrics,
    receiver: &Receiver,
    status: u16,
    reason: &'static str,
    message: String,
) -> Answer {
    tracing::warn!(receiver = %receiver.name, status, reason, "delivery refused: {message}");
    metrics.rejected(&receiver.label, reason);
    metrics.delivery(&receiver.label, "rejected");
    Answer::rejected(status, message)
}

/// Where a verified delivery's changes go: the intake (`serve`), or the Lambda handler, which
/// starts the pipelines before it answers.
pub trait Sink {
    /// Takes one change, with the delivery's `traceparent` when it had one. An error is the
    /// reason it was not taken, a whole sentence, answered with a 503 so that the sender
    /// retries.
    fn submit(
        &self,
        event: ChangeEvent,
        delivery: Option<(String, String)>,
        traceparent: Option<TraceParent>,
    ) -> impl Future<Output = Result<IntakeOutcome, String>> + Send;
}

impl Sink for Intake {
    async fn submit(
        &self,
        event: ChangeEvent,
        delivery: Option<(String, String)>,
        traceparent: Option<TraceParent>,
    ) -> Result<IntakeOutcome, String> {
        Intake::submit_traced(self, event, delivery, traceparent)
            .await
            .map_err(|e| format!("the change could not be stored: {e}"))
    }
}

/// Handles one delivery to `receiver`, in a span `receive` of the delivery's trace.
pub async fn handle(
    receiver: &Receiver,
    headers: &HeaderMap,
    body: &[u8],
    sink: &impl Sink,
    metrics: &Metrics,
) -> Answer {
    let traceparent = traceparent(headers);
    let span = tracing::info_span!(
        "receive",
        receiver = %receiver.name,
        delivery_id = tracing::field::Empty,
    );
    if let Some(parent) = &traceparent {
        crate::telemetry::set_parent(&span, parent);
    }
    receive(receiver, headers, body, sink, metrics, traceparent)
        .instrument(span)
        .await
}

async fn receive(
    receiver: &Receiver,
    headers: &HeaderMap,
    body: &[u8],
    sink: &impl Sink,
    metrics: &Metrics,
    traceparent: Option<TraceParent>,
) -> Answer {
    let name = receiver.name.as_str();
    let outcome = |o: &'static str| metrics.delivery(&receiver.label, o);
    let reject = |status: u16, reason: &'static str, message: String| {
        refuse(metrics, receiver, status, reason, message)
    };
    let now = jiff::Timestamp::now();
    let verified =
        tracing::info_span!("verify").in_scope(|| verify(receiver, headers, body, now.as_second()));
    if let Err(refusal) = verified {
        return reject(401, refusal.reason, refusal.message);
    }
    let events = match normalize(receiver, headers, body, now) {
        Err(message) => {
            return reject(
                400,
                "malformed",
                format!("the delivery cannot be read: {message}"),
            );
        }
        Ok(Normalized::Ping) => {
            outcome("ping");
            tracing::info!(receiver = name, "ping");
            return Answer::new(200, json!({"status": "ping"}));
        }
        Ok(Normalized::Ignored(reason)) => {
            outcome("ignored");
            tracing::info!(receiver = name, %reason, "delivery ignored");
            return Answer::new(202, json!({"status": "ignored", "reason": reason}));
        }
        Ok(Normalized::Changes(events)) if events.is_empty() => {
            outcome("ignored");
            return Answer::new(
                202,
                json!({"status": "ignored", "reason": "the delivery reports no change"}),
            );
        }
        Ok(Normalized::Changes(events)) => events,
    };
    let delivery_id = providers::delivery_id(receiver.provider, headers);
    if let Some(id) = &delivery_id {
        tracing::Span::current().record("delivery_id", id.as_str());
    }
    let several = events.len() > 1;
    let mut changes = Vec::with_capacity(events.len());
    let mut accepted = false;
    for (i, event) in events.into_iter().enumerate() {
        // A delivery that reports several changes remembers each under its own key, so that a
        // redelivery is recognised change by change.
        let delivery = delivery_id.as_ref().map(|d| {
            let key = if several {
                format!("{d}#{i}")
            } else {
                d.clone()
            };
            (name.to_owned(), key)
        });
        match sink.submit(event, delivery, traceparent).await {
            Ok(IntakeOutcome::Accepted { change_id, starts }) => {
                accepted = true;
                tracing::info!(receiver = name, change_id = %change_id, starts = starts.len(), "change accepted");
                changes.push(json!({"change": change_id, "status": "accepted", "starts": starts}));
            }
            Ok(IntakeOutcome::Duplicate { change_id, why }) => {
                let of = match why {
                    DuplicateOf::Delivery => "delivery",
                    DuplicateOf::Change => "change",
                };
                tracing::info!(receiver = name, change_id = %change_id, of, "duplicate: nothing new to start");
                changes
                    .push(json!({"change": change_id, "status": "duplicate", "duplicate_of": of}));
            }
            Err(message) => {
                tracing::error!(receiver = name, "{message}; the sender should retry");
                outcome("unavailable");
                return Answer::rejected(503, message);
            }
        }
    }
    outcome(if accepted { "accepted" } else { "duplicate" });
    let status = if accepted { "accepted" } else { "duplicate" };
    if let [one] = changes.as_slice() {
        let mut body = one.clone();
        body["status"] = json!(status);
        return Answer::new(202, body);
    }
    Answer::new(202, json!({"status": status, "changes": changes}))
}

#[cfg(test)]
mod tests;
