//! The `http` target: POST `{"pipeline", "start_id", "event"}` to a runner, signed with
//! Standard Webhooks headers when a secret is set. The start id is the `webhook-id` on every
//! attempt, so a runner can drop a repeat; `traceparent` ties the request to the change's
//! trace.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::Failure;
use crate::signature::{Key, sign};
use crate::trace::TraceParent;

/// An HTTP(S) client shared by every start.
pub type Client = LegacyClient<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for http and https URLs (webpki roots).
pub fn client() -> Client {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    LegacyClient::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https)
}

/// POSTs one start. 2xx is success; 408, 429, 5xx and transport errors are retried (429 and
/// 503 after their `Retry-After`); any other status is final.
pub async fn post(
    client: &Client,
    url: &str,
    body: Vec<u8>,
    start_id: &str,
    key: Option<&Key>,
    traceparent: &TraceParent,
    timeout: Duration,
) -> Result<(), Failure> {
    let ts = jiff::Timestamp::now().as_second();
    let mut req = Request::post(url)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(USER_AGENT, AGENT)
        .header(TRACEPARENT, traceparent.to_string())
        .header("webhook-id", start_id)
        .header("webhook-timestamp", ts.to_string());
    if let Some(key) = key {
        req = req.header("webhook-signature", sign(key, start_id, ts, &body));
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Failure::dead(format!("cannot build a request for {url}: {e}")))?;
    let answer = send(client, req, timeout).await?;
    if answer.status.is_success() {
        return Ok(());
    }
    let message = answer.describe("POST", url);
    Err(answer.failure(message))
}

/// The W3C Trace Context header every start request carries.
pub const TRACEPARENT: &str = "traceparent";

/// `User-Agent` of every request switchyard makes.
pub const AGENT: &str = concat!("switchyard/", env!("CARGO_PKG_VERSION"));

/// Bytes of an answer's body kept (enough for a runner's JSON about the run it made).
const BODY_LIMIT: usize = 64 * 1024;

/// What a server answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body, at most [`BODY_LIMIT`] bytes of it.
    pub body: Bytes,
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

    /// `METHOD URL: STATUS: excerpt`.
    pub fn describe(&self, method: &str, url: &str) -> String {
        let text = self.excerpt();
        if text.is_empty() {
            format!("{method} {url}: {}", self.status)
        } else {
            format!("{method} {url}: {}: {text}", self.status)
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
}

/// Sends `req` and reads the answer, within `timeout`. A transport error or no answer in time
/// is a failure to retry.
pub async fn send(
    client: &Client,
    req: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Answer, Failure> {
    let what = format!("{} {}", req.method(), shown(req.uri()));
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| Failure::retry(format!("{what}: {}", chain(&e))))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        // Read (a bounded part of) the body, so the connection can be reused.
        let body = match http_body_util::Limited::new(resp.into_body(), BODY_LIMIT)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::new(),
        };
        Ok::<_, Failure>(Answer {
            status,
            headers,
            body,
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| Failure::retry(format!("{what}: no answer within {timeout:?}")))?
}

/// [`send`] of a request whose body is in memory (the OTLP exporter's).
pub async fn send_bytes(
    client: &Client,
    req: Request<Bytes>,
    timeout: Duration,
) -> Result<Answer, Failure> {
    send(client, req.map(Full::new), timeout).await
}

/// A URI as shown in messages: without its query, which may hold values.
fn shown(uri: &hyper::Uri) -> String {
    let mut text = String::new();
    if let Some(scheme) = uri.scheme_str() {
        text.push_str(scheme);
        text.push_str("://");
    }
    if let Some(authority) = uri.authority() {
        // Never a user or password written in the URL.
        let host = authority.as_str().rsplit('@').next().unwrap_or_default();
        text.push_str(host);
    }
    text.push_str(uri.path());
    text
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
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
        assert_eq!(long.after, Some(crate::dispatch::RETRY_AFTER_MAX));
        let unavailable = judge(answer(503, &[("retry-after", "3")]));
        assert_eq!(unavailable.after, Some(Duration::from_secs(3)));
        let server = judge(answer(500, &[]));
        assert!(server.retry && server.after.is_none());
        assert!(judge(answer(408, &[])).retry);
        assert!(!judge(answer(400, &[])).retry);
        assert!(!judge(answer(422, &[])).retry);
    }
}
