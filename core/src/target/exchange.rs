//! What every target reached over HTTP shares: the request it makes (with the headers every
//! request of switchyard carries), the answer it gets, and the rules that judge an answer.
//!
//! The rules: 2xx is success; 429 is throttling, retried after `Retry-After`; 408 and 5xx are
//! retried (503 after its `Retry-After` when it has one); anything else is final. A runner's
//! API ([`judge`]) adds: a 403 that says a rate limit ran out is throttling too (until the
//! limit's reset); 401 and 403 are dead at once with a hint naming the permission the
//! credential lacks, 404 with a hint naming what was not found. A credential is read at every
//! attempt and never shown: a message that would quote it has it masked.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
use http::{Method, StatusCode};

use super::Failure;
use crate::secret::SecretRef;
use crate::template::{Context, Template};
use crate::trace::TraceParent;

/// `User-Agent` of every request switchyard makes.
pub const AGENT: &str = concat!("switchyard/", env!("CARGO_PKG_VERSION"));

/// The W3C Trace Context header every start request carries.
pub const TRACEPARENT: &str = "traceparent";

/// One HTTP request of an attempt.
#[derive(Debug)]
pub struct Request {
    pub request: http::Request<Bytes>,
    /// The URL as messages name it: without its query or credentials.
    pub url: String,
    /// What the transport masks in its failures (the credential in each form it was sent in).
    pub secrets: Vec<String>,
}

impl Request {
    /// A POST of `body` to `url` with the headers every start request carries: `User-Agent`,
    /// `Content-Type` and the attempt's `traceparent`.
    pub fn post(
        url: &str,
        content_type: &'static str,
        traceparent: &TraceParent,
    ) -> http::request::Builder {
        http::Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(USER_AGENT, HeaderValue::from_static(AGENT))
            .header(CONTENT_TYPE, HeaderValue::from_static(content_type))
            .header(TRACEPARENT, traceparent.to_string())
    }

    /// The request of `builder` with `body`, named in messages by `url` as
    /// [`shown_url`](crate::secret::shown_url) shows it.
    pub fn new(
        builder: http::request::Builder,
        body: impl Into<Bytes>,
        url: String,
        secrets: Vec<String>,
    ) -> Result<Request, Failure> {
        let url = crate::secret::shown_url(&url);
        let request = builder
            .body(body.into())
            .map_err(|e| Failure::dead(format!("cannot build a request for {url}: {e}")))?;
        Ok(Request {
            request,
            url,
            secrets,
        })
    }
}

/// Bytes of an answer's body kept (enough for a runner's JSON about the run it made).
pub const BODY_LIMIT: usize = 64 * 1024;

/// What a server answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body, at most [`BODY_LIMIT`] bytes of it.
    pub body: Bytes,
    /// The URL asked, as messages name it.
    pub url: String,
    /// What the request was sent with, masked in every message about it.
    pub secrets: Vec<String>,
}

impl Answer {
    /// The first 200 characters of the body, trimmed, for a message.
    pub fn excerpt(&self) -> String {
        String::from_utf8_lossy(&self.body)
            .trim()
            .chars()
            .take(200)
            .collect()
    }

    /// `POST URL: STATUS: excerpt`.
    pub fn describe(&self) -> String {
        let text = self.excerpt();
        if text.is_empty() {
            format!("POST {}: {}", self.url, self.status)
        } else {
            format!("POST {}: {}: {text}", self.url, self.status)
        }
    }

    /// How long `Retry-After` asks to wait (seconds or an HTTP date), when it says.
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self.headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
        let wait = at.as_millisecond() - jiff::Timestamp::now().as_millisecond();
        Some(Duration::from_millis(wait.max(0) as u64))
    }

    /// Success, or the failure of a status that is not one by the rules every HTTP target
    /// shares.
    pub fn success(&self) -> Result<(), Failure> {
        if self.status.is_success() {
            Ok(())
        } else {
            Err(self.failure(self.describe()))
        }
    }

    /// The failure of a status that is not a success, by the rules every HTTP target shares:
    /// 429 is throttling (retried after `Retry-After`), 408 and 5xx are retried (503 after its
    /// `Retry-After` when it has one), anything else is final.
    pub fn failure(&self, message: String) -> Failure {
        let code = self.status.as_u16();
        if code == 429 || (self.status.is_server_error() && self.headers.contains_key(RETRY_AFTER))
        {
            Failure::throttled(message, self.retry_after())
        } else if code == 408 || self.status.is_server_error() {
            Failure::retry(message)
        } else {
            Failure::dead(message)
        }
    }

    /// A JSON answer's first value at one of `keys`, as text (a number too).
    pub fn field(&self, keys: &[&str]) -> Option<String> {
        let value: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        keys.iter().find_map(|k| match value.get(*k)? {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    }
}

/// What a runner needs from a failed answer to explain it.
#[derive(Debug)]
pub struct Hints {
    /// The runner's name in messages.
    pub runner: &'static str,
    /// What the credential must be allowed (401, 403).
    pub permission: String,
    /// What may not exist (404).
    pub not_found: String,
}

/// A runner API's answer: itself when it is a success, else the failure it means (with the
/// credential masked).
pub fn judge(answer: Answer, hints: &Hints) -> Result<Answer, Failure> {
    if answer.status.is_success() {
        return Ok(answer);
    }
    Err(refusal(&answer, hints).masked(&answer.secrets))
}

fn refusal(answer: &Answer, hints: &Hints) -> Failure {
    use crate::diag::Hinted;
    let message = answer.describe();
    let code = answer.status.as_u16();
    let runner = hints.runner;
    // GitHub answers a spent rate limit with 403 (or 429) and says when it resets.
    let limit_spent = answer
        .headers
        .get("x-ratelimit-remaining")
        .is_some_and(|v| v.as_bytes() == b"0");
    if code == 429 || (code == 403 && (limit_spent || answer.headers.contains_key(RETRY_AFTER))) {
        let after = answer.retry_after().or_else(|| {
            let reset: i64 = answer
                .headers
                .get("x-ratelimit-reset")?
                .to_str()
                .ok()?
                .parse()
                .ok()?;
            let wait = reset * 1000 - jiff::Timestamp::now().as_millisecond();
            Some(Duration::from_millis(wait.max(0) as u64))
        });
        return Failure::throttled(format!("{message} ({runner} is throttling)"), after);
    }
    let hinted = match code {
        401 => Hinted::new(
            message,
            format!(
                "{runner} refused the credential: check that it is current, and that it {}",
                hints.permission
            ),
        ),
        403 => Hinted::new(
            message,
            format!("the credential lacks a permission: it {}", hints.permission),
        ),
        404 => Hinted::new(message, hints.not_found.clone()),
        _ => return answer.failure(message),
    };
    Failure::dead(hinted.to_string())
}

/// Reads a target's credential for this attempt. A credential that cannot be read is retried:
/// it may be a secret being rotated or mounted.
pub fn credential(secret: &SecretRef, what: &str) -> Result<String, Failure> {
    let value = secret
        .resolve()
        .map_err(|e| Failure::retry(format!("{what}: {e}")))?;
    let value = value.trim().to_owned();
    if value.is_empty() {
        return Err(Failure::retry(format!("{what}: {secret} is empty")));
    }
    Ok(value)
}

/// Renders `NAME: TEMPLATE` entries.
pub fn render_all(entries: &[(String, Template)], ctx: &Context<'_>) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|(name, t)| (name.clone(), t.render(ctx)))
        .collect()
}

/// A JSON object of rendered entries.
pub fn object(entries: &[(String, Template)], ctx: &Context<'_>) -> serde_json::Value {
    serde_json::Value::Object(
        entries
            .iter()
            .map(|(name, t)| (name.clone(), serde_json::Value::String(t.render(ctx))))
            .collect(),
    )
}

/// An `application/x-www-form-urlencoded` body of `(name, value)` pairs.
pub fn form(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// What one path segment may hold as it is: RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One path segment, percent-encoded (a GitLab project path's `/` included).
pub fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&'static str, &str)]) -> Answer {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).expect("a header value"));
        }
        Answer {
            status: StatusCode::from_u16(status).expect("a status"),
            headers: map,
            body: Bytes::new(),
            url: "http://runner/start".into(),
            secrets: Vec::new(),
        }
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_a_date() {
        assert_eq!(
            answer(429, &[("retry-after", "7")]).retry_after(),
            Some(Duration::from_secs(7))
        );
        let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30);
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&soon)
            .expect("a date");
        let wait = answer(503, &[("retry-after", &date)])
            .retry_after()
            .expect("a wait");
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        let past = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(
            answer(503, &[("retry-after", past)]).retry_after(),
            Some(Duration::ZERO)
        );
        assert_eq!(answer(429, &[("retry-after", "soon")]).retry_after(), None);
        assert_eq!(answer(429, &[]).retry_after(), None);
    }

    #[test]
    fn statuses_are_judged_alike_for_every_http_target() {
        let judge = |a: Answer| a.failure("m".to_owned());
        let throttled = judge(answer(429, &[("retry-after", "2")]));
        assert!(throttled.retry);
        assert_eq!(throttled.after, Some(Duration::from_secs(2)));
        // A day is cut to the longest wait.
        let long = judge(answer(429, &[("retry-after", "86400")]));
        assert_eq!(long.after, Some(super::super::RETRY_AFTER_MAX));
        let unavailable = judge(answer(503, &[("retry-after", "3")]));
        assert_eq!(unavailable.after, Some(Duration::from_secs(3)));
        let server = judge(answer(500, &[]));
        assert!(server.retry && server.after.is_none());
        assert!(judge(answer(408, &[])).retry);
        assert!(!judge(answer(400, &[])).retry);
        assert!(!judge(answer(422, &[])).retry);
        assert!(answer(204, &[]).success().is_ok());
        assert_eq!(
            answer(404, &[]).success().map_err(|f| f.message),
            Err("POST http://runner/start: 404 Not Found".to_owned())
        );
    }

    #[test]
    fn a_runner_refusal_names_the_permission_and_masks_the_credential() {
        let hints = Hints {
            runner: "GitLab",
            permission: "may run pipelines".into(),
            not_found: "check the project".into(),
        };
        let mut refused = answer(401, &[]);
        refused.body = Bytes::from_static(b"token glptt-0123456789 is not valid");
        refused.secrets = vec!["glptt-0123456789".into()];
        let f = judge(refused, &hints).expect_err("a refusal");
        assert!(!f.retry);
        assert_eq!(
            f.message,
            "POST http://runner/start: 401 Unauthorized: token [credential] is not valid\nhint: GitLab refused the credential: check that it is current, and that it may run pipelines"
        );
        let spent = judge(
            answer(403, &[("x-ratelimit-remaining", "0"), ("retry-after", "9")]),
            &hints,
        )
        .expect_err("throttled");
        assert!(spent.retry);
        assert_eq!(spent.after, Some(Duration::from_secs(9)));
        let missing = judge(answer(404, &[]), &hints).expect_err("not found");
        assert!(missing.message.ends_with("\nhint: check the project"));
    }

    #[test]
    fn forms_and_segments_encode_every_byte_that_is_not_plain() {
        let pairs = vec![
            ("variables[A B]".to_owned(), "x&y=z/ü".to_owned()),
            ("ref".to_owned(), "main".to_owned()),
        ];
        assert_eq!(
            form(&pairs),
            "variables%5BA+B%5D=x%26y%3Dz%2F%C3%BC&ref=main"
        );
        assert_eq!(segment("acme/api"), "acme%2Fapi");
        assert_eq!(segment("deploy.yml"), "deploy.yml");
        assert_eq!(segment("Team A"), "Team%20A");
    }

    #[test]
    fn a_credential_in_a_message_is_masked_in_every_form_it_was_sent_in() {
        // (message, secrets, masked)
        let cases: [(&str, &[&str], &str); 3] = [
            (
                "echo: glptt-0123456789 refused",
                &["glptt-0123456789"],
                "echo: [credential] refused",
            ),
            (
                "Basic Y2ktYm90OjExYWJjZGVm or ci-bot:11abcdef",
                &["Y2ktYm90OjExYWJjZGVm", "11abcdef"],
                "Basic [credential] or ci-bot:[credential]",
            ),
            ("too short to mask: abc", &["abc"], "too short to mask: abc"),
        ];
        for (message, secrets, masked) in cases {
            assert_eq!(Failure::dead(message).masked(secrets).message, masked);
        }
    }
}
