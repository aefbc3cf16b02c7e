//! Webhook receivers, `POST /hooks/NAME`: verify the signature, turn the delivery into a change
//! event, hand it to the intake, and answer only then.
//!
//! Independent of the HTTP server: a delivery is (headers, body) in and an [`Answer`] out, so
//! the same code serves `serve` and, later, a Lambda function URL. Logs name the receiver and
//! the reason, never the secret or the body.

use std::collections::HashMap;

use hyper::HeaderMap;
use serde_json::json;

use crate::config::{self, Provider};
use crate::event::{ChangeEvent, Source, SourceKind};
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::signature::{self, Key, VerifyError};
use crate::store::{DuplicateOf, IntakeOutcome};

/// A configured receiver with its secrets resolved.
#[derive(Debug)]
pub struct Receiver {
    pub name: String,
    pub provider: Provider,
    keys: Vec<Key>,
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
            let mut keys = Vec::with_capacity(r.secrets.len());
            for secret in &r.secrets {
                let value = secret
                    .resolve()
                    .map_err(|e| format!("receiver {:?}: {e}", r.name))?;
                let key = Key::from_secret(&value)
                    .map_err(|e| format!("receiver {:?}: {secret}: {e}", r.name))?;
                keys.push(key);
            }
            by_name.insert(
                r.name.clone(),
                Receiver {
                    name: r.name.clone(),
                    provider: r.provider,
                    keys,
                },
            );
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

/// Handles one delivery to `receiver`.
pub async fn handle(
    receiver: &Receiver,
    headers: &HeaderMap,
    body: &[u8],
    intake: &Intake,
    metrics: &Metrics,
) -> Answer {
    let name = receiver.name.as_str();
    let reject = |status: u16, reason: &'static str, message: String| {
        tracing::warn!(
            receiver = name,
            status,
            reason,
            "delivery refused: {message}"
        );
        metrics.inc(
            "switchyard_rejected_total",
            &[("receiver", name), ("reason", reason)],
        );
        metrics.inc(
            "switchyard_deliveries_total",
            &[("receiver", name), ("outcome", "rejected")],
        );
        Answer::rejected(status, message)
    };
    match receiver.provider {
        Provider::Standard => {}
        other => {
            return reject(
                501,
                "provider",
                format!("provider {other:?} receivers are not available in this build yet"),
            );
        }
    }
    let sig_headers = signature::Headers {
        id: header(headers, "webhook-id"),
        timestamp: header(headers, "webhook-timestamp"),
        signature: header(headers, "webhook-signature"),
    };
    let now = jiff::Timestamp::now();
    if let Err(e) = signature::verify(&receiver.keys, sig_headers, body, now.as_second()) {
        let reason = match e {
            VerifyError::MissingId | VerifyError::MissingSignature => "missing_signature",
            VerifyError::BadTimestamp => "bad_timestamp",
            VerifyError::Stale => "stale",
            VerifyError::Mismatch => "bad_signature",
        };
        return reject(401, reason, e.to_string());
    }
    let delivery_id = sig_headers.id.unwrap_or_default().to_owned();
    let source = Source {
        kind: SourceKind::Webhook,
        provider: Some("standard".into()),
        delivery_id: Some(delivery_id.clone()),
    };
    let mut event = match ChangeEvent::from_json(body, source.clone()) {
        Ok(event) => event,
        Err(e) => {
            return reject(
                400,
                "malformed",
                format!("the body is not a valid change event: {e}"),
            );
        }
    };
    // This receiver is the source of this notice, whatever the producer wrote.
    event.source = source;
    event.received_at = now;
    match intake
        .submit(event, Some((name.to_owned(), delivery_id)))
        .await
    {
        Ok(IntakeOutcome::Accepted { change_id, starts }) => {
            metrics.inc(
                "switchyard_deliveries_total",
                &[("receiver", name), ("outcome", "accepted")],
            );
            tracing::info!(receiver = name, change = %change_id, starts = starts.len(), "change accepted");
            Answer::new(
                202,
                json!({"status": "accepted", "change": change_id, "starts": starts}),
            )
        }
        Ok(IntakeOutcome::Duplicate { change_id, why }) => {
            metrics.inc(
                "switchyard_deliveries_total",
                &[("receiver", name), ("outcome", "duplicate")],
            );
            let of = match why {
                DuplicateOf::Delivery => "delivery",
                DuplicateOf::Change => "change",
            };
            tracing::info!(receiver = name, change = %change_id, of, "duplicate: nothing new to start");
            Answer::new(
                202,
                json!({"status": "duplicate", "change": change_id, "duplicate_of": of}),
            )
        }
        Err(e) => {
            tracing::error!(receiver = name, error = %e, "change not stored; the sender should retry");
            metrics.inc(
                "switchyard_deliveries_total",
                &[("receiver", name), ("outcome", "unavailable")],
            );
            Answer::rejected(503, format!("the change could not be stored: {e}"))
        }
    }
}
