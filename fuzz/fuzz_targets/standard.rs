//! A Standard Webhooks delivery: its headers verified against a key, its body read as a change
//! event (`switchyard.change/v1`); neither panics. The first three lines of the input are the
//! `webhook-id`, `webhook-timestamp` and `webhook-signature` values; the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::event::{ChangeEvent, Source, SourceKind};
use switchyard_core::signature::{self, Headers, Key};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let mut line = || parts.next().and_then(|l| std::str::from_utf8(l).ok());
    let (id, timestamp, sig) = (line(), line(), line());
    let body = parts.next().unwrap_or_default();
    if let Ok(key) = Key::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
        let headers = Headers {
            id,
            timestamp,
            signature: sig,
        };
        let _ = signature::verify(&[key], headers, body, 1_700_000_000);
    }
    let source = Source {
        kind: SourceKind::Webhook,
        provider: None,
        delivery_id: None,
    };
    if let Ok(event) = ChangeEvent::from_json(body, source) {
        let _ = serde_json::to_string(&event);
    }
});
