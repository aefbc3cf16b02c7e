//! The receivers' signature checks and the front's refusals.

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
        label: Name::from("r"),
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
        signature::to_hex(mac.finalize().into_bytes())
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
        let r = receiver(Provider::ALL[p], sha1);
        let _ = verify(&r, &headers(&pairs), &body, now);
    }
}

/// A sink that must never be reached.
struct Unreachable;

impl Sink for Unreachable {
    async fn submit(
        &self,
        _event: ChangeEvent,
        _delivery: Option<(String, String)>,
        _traceparent: Option<TraceParent>,
    ) -> Result<IntakeOutcome, String> {
        Err("a refused delivery reached the sink".into())
    }
}

#[tokio::test]
async fn the_front_refuses_before_the_receiver_sees_a_delivery() {
    let metrics = Metrics::default();
    let mut receivers = Receivers::default();
    receivers
        .by_name
        .insert("r".into(), receiver(Provider::GitHub, false));
    let hooks = Hooks::new(receivers, 10);
    assert_eq!(
        hooks.open("nope", None, &metrics).map(|r| r.name.clone()),
        Err(Answer::rejected(404, "no receiver named \"nope\""))
    );
    assert_eq!(
        hooks
            .open("r", Some(11), &metrics)
            .map(|_| ())
            .map_err(|a| a.status),
        Err(413)
    );
    let r = hooks
        .open("r", Some(10), &metrics)
        .expect("within the limit");
    let none = HeaderMap::new();
    let cases = [
        (Err(BodyError::Slow), 408),
        (Err(BodyError::TooLarge), 413),
        (Err(BodyError::Unreadable("reset".into())), 400),
        (Ok(&b"01234567890"[..]), 413),
        // Within the limit, the receiver checks it: no signature.
        (Ok(&b"{}"[..]), 401),
    ];
    for (body, status) in cases {
        let answer = hooks
            .deliver(r, &none, body.clone(), &Unreachable, &metrics)
            .await;
        assert_eq!(answer.status, status, "{body:?}: {answer:?}");
    }
}

#[test]
fn a_delivery_traceparent_is_one_valid_header_or_none() {
    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let headers = |values: &[&str]| {
        let mut map = HeaderMap::new();
        for v in values {
            map.append("traceparent", v.parse().expect("a header value"));
        }
        map
    };
    assert_eq!(
        traceparent(&headers(&[VALID])).map(|t| t.to_string()),
        Some(VALID.to_owned())
    );
    assert_eq!(traceparent(&headers(&[])), None);
    assert_eq!(traceparent(&headers(&["00-zz"])), None);
    assert_eq!(traceparent(&headers(&[VALID, VALID])), None, "two headers");
}
