//! Webhook receivers, `POST /hooks/NAME`: verify the signature the way the receiver's provider
//! signs, turn the delivery into change events, hand them to the intake, and answer only then.
//!
//! Independent of the HTTP server: a delivery is (headers, body) in and an [`Answer`] out, so
//! the same code serves `serve` and, later, a Lambda function URL. Logs name the receiver and
//! the reason, never the secret or the body. A correctly signed delivery that is no change (a
//! ping, a comment, a star) is answered 2xx with the reason, never 4xx: providers disable hooks
//! that keep failing.

use std::collections::HashMap;

use hyper::HeaderMap;
use serde_json::json;

use crate::config::{self, Provider};
use crate::event::{ChangeEvent, Source, SourceKind};
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::outcome::{DuplicateOf, IntakeOutcome};
use crate::signature::{self, Key, VerifyError};
use crate::sources::providers::{self, Normalized};

/// A configured receiver with its secrets resolved.
pub struct Receiver {
    pub name: String,
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
pub fn refuse(
    metrics: &Metrics,
    receiver: &str,
    status: u16,
    reason: &'static str,
    message: String,
) -> Answer {
    tracing::warn!(receiver, status, reason, "delivery refused: {message}");
    metrics.inc(
        "switchyard_rejected_total",
        &[("receiver", receiver), ("reason", reason)],
    );
    metrics.inc(
        "switchyard_deliveries_total",
        &[("receiver", receiver), ("outcome", "rejected")],
    );
    Answer::rejected(status, message)
}

/// Where a verified delivery's changes go: the intake (`serve`), or the Lambda handler, which
/// starts the pipelines before it answers.
pub trait Sink {
    /// Takes one change. An error is the reason it was not taken, a whole sentence, answered
    /// with a 503 so that the sender retries.
    fn submit(
        &self,
        event: ChangeEvent,
        delivery: Option<(String, String)>,
    ) -> impl Future<Output = Result<IntakeOutcome, String>> + Send;
}

impl Sink for Intake {
    async fn submit(
        &self,
        event: ChangeEvent,
        delivery: Option<(String, String)>,
    ) -> Result<IntakeOutcome, String> {
        Intake::submit(self, event, delivery)
            .await
            .map_err(|e| format!("the change could not be stored: {e}"))
    }
}

/// Handles one delivery to `receiver`.
pub async fn handle(
    receiver: &Receiver,
    headers: &HeaderMap,
    body: &[u8],
    sink: &impl Sink,
    metrics: &Metrics,
) -> Answer {
    let name = receiver.name.as_str();
    let outcome = |o: &'static str| {
        metrics.inc(
            "switchyard_deliveries_total",
            &[("receiver", name), ("outcome", o)],
        )
    };
    let reject = |status: u16, reason: &'static str, message: String| {
        refuse(metrics, name, status, reason, message)
    };
    let now = jiff::Timestamp::now();
    if let Err(refusal) = verify(receiver, headers, body, now.as_second()) {
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
        match sink.submit(event, delivery).await {
            Ok(IntakeOutcome::Accepted { change_id, starts }) => {
                accepted = true;
                tracing::info!(receiver = name, change = %change_id, starts = starts.len(), "change accepted");
                changes.push(json!({"change": change_id, "status": "accepted", "starts": starts}));
            }
            Ok(IntakeOutcome::Duplicate { change_id, why }) => {
                let of = match why {
                    DuplicateOf::Delivery => "delivery",
                    DuplicateOf::Change => "change",
                };
                tracing::info!(receiver = name, change = %change_id, of, "duplicate: nothing new to start");
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn receiver(provider: Provider, allow_sha1: bool) -> Receiver {
        let raw = vec![b"It's a Secret to Everybody".to_vec()];
        let keys = vec![
            Key::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .unwrap_or_else(|e| panic!("{e}")),
        ];
        Receiver {
            name: "r".into(),
            provider,
            allow_sha1,
            raw,
            keys,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            if let (Ok(k), Ok(v)) = (
                hyper::header::HeaderName::from_bytes(k.as_bytes()),
                hyper::header::HeaderValue::from_str(v),
            ) {
                map.append(k, v);
            }
        }
        map
    }

    const PROVIDERS: [Provider; 5] = [
        Provider::GitHub,
        Provider::GitLab,
        Provider::Bitbucket,
        Provider::Gitea,
        Provider::Standard,
    ];

    #[test]
    fn each_provider_checks_its_own_header() {
        let body = b"Hello, World!";
        let hex = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let sha256 = format!("sha256={hex}");
        #[rustfmt::skip]
        type Case<'a> = (Provider, &'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: &[Case<'_>] = &[
            (Provider::GitHub, &[("X-Hub-Signature-256", &sha256)], None),
            (
                Provider::GitHub,
                &[(
                    "x-hub-signature-256",
                    &sha256.to_uppercase().replace("SHA256=", "sha256="),
                )],
                None,
            ),
            (
                Provider::GitHub,
                &[("X-Hub-Signature-256", hex)],
                Some("bad_signature"),
            ),
            (
                Provider::GitHub,
                &[("X-Hub-Signature", &sha256)],
                Some("missing_signature"),
            ),
            (Provider::Bitbucket, &[("X-Hub-Signature", &sha256)], None),
            (
                Provider::Bitbucket,
                &[("X-Hub-Signature-256", &sha256)],
                Some("missing_signature"),
            ),
            (Provider::Gitea, &[("X-Gitea-Signature", hex)], None),
            (Provider::Gitea, &[("X-Forgejo-Signature", hex)], None),
            (
                Provider::Gitea,
                &[("X-Gitea-Signature", &sha256)],
                Some("bad_signature"),
            ),
            (
                Provider::GitLab,
                &[("X-Gitlab-Token", "It's a Secret to Everybody")],
                None,
            ),
            (
                Provider::GitLab,
                &[("X-Gitlab-Token", "It's a Secret to Everybody!")],
                Some("bad_signature"),
            ),
            (Provider::GitLab, &[], Some("missing_signature")),
            (
                Provider::Standard,
                &[("X-Hub-Signature-256", &sha256)],
                Some("missing_signature"),
            ),
        ];
        for (provider, pairs, want) in cases {
            let got = verify(&receiver(*provider, false), &headers(pairs), body, 0)
                .err()
                .map(|r| r.reason);
            assert_eq!(got, *want, "{provider:?} {pairs:?}");
        }
        // GitHub's legacy SHA-1 signature counts only for a receiver that opts in.
        let sha1 = format!("sha1={}", {
            use hmac::{Hmac, KeyInit, Mac};
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"It's a Secret to Everybody")
                .unwrap_or_else(|_| unreachable!());
            mac.update(body);
            mac.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        });
        let legacy = headers(&[("X-Hub-Signature", &sha1)]);
        assert!(verify(&receiver(Provider::GitHub, true), &legacy, body, 0).is_ok());
        assert!(verify(&receiver(Provider::GitHub, false), &legacy, body, 0).is_err());
        // GitLab signing per Standard Webhooks.
        let key = Key::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap_or_else(|e| panic!("{e}"));
        let sig = signature::sign(&key, "m1", 1000, body);
        let std_headers = headers(&[
            ("webhook-id", "m1"),
            ("webhook-timestamp", "1000"),
            ("webhook-signature", &sig),
        ]);
        assert!(verify(&receiver(Provider::GitLab, false), &std_headers, body, 1000).is_ok());
    }

    proptest! {
        /// Arbitrary header values and bodies never make a receiver's checks panic.
        #[test]
        fn verification_never_panics(
            names in proptest::collection::vec(prop_oneof![
                Just("x-hub-signature-256"), Just("x-hub-signature"), Just("x-gitlab-token"),
                Just("x-gitea-signature"), Just("x-forgejo-signature"), Just("webhook-id"),
                Just("webhook-timestamp"), Just("webhook-signature"),
            ], 0..6),
            values in proptest::collection::vec("[ -~]{0,80}", 6),
            body in proptest::collection::vec(any::<u8>(), 0..256),
            now in any::<i64>(),
            p in 0usize..5,
            sha1 in any::<bool>(),
        ) {
            let pairs: Vec<(&str, &str)> = names.iter().zip(values.iter()).map(|(n, v)| (*n, v.as_str())).collect();
            let r = receiver(PROVIDERS[p], sha1);
            let _ = verify(&r, &headers(&pairs), &body, now);
        }
    }
}
