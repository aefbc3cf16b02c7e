//! The `http` target: POST `{"pipeline", "start_id", "event"}` to a runner, signed with
//! Standard Webhooks headers when a secret is set. The start id is the `webhook-id` on every
//! attempt, so a runner can drop a repeat.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::Failure;
use crate::signature::{Key, sign};

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

/// POSTs one start. 2xx is success; 408, 429, 5xx and transport errors are retried; any other
/// status is final.
pub async fn post(
    client: &Client,
    url: &str,
    body: Vec<u8>,
    start_id: &str,
    key: Option<&Key>,
    timeout: Duration,
) -> Result<(), Failure> {
    let ts = jiff::Timestamp::now().as_second();
    let mut req = Request::post(url)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(
            USER_AGENT,
            concat!("switchyard/", env!("CARGO_PKG_VERSION")),
        )
        .header("webhook-id", start_id)
        .header("webhook-timestamp", ts.to_string());
    if let Some(key) = key {
        req = req.header("webhook-signature", sign(key, start_id, ts, &body));
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Failure::dead(format!("cannot build a request for {url}: {e}")))?;
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| Failure::retry(format!("POST {url}: {}", chain(&e))))?;
        let status = resp.status();
        // Read (a bounded part of) the body so the connection can be reused.
        let text = match http_body_util::Limited::new(resp.into_body(), 4096)
            .collect()
            .await
        {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes())
                .trim()
                .chars()
                .take(200)
                .collect::<String>(),
            Err(_) => String::new(),
        };
        Ok::<_, Failure>((status, text))
    };
    let (status, text) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| Failure::retry(format!("POST {url}: no answer within {timeout:?}")))??;
    if status.is_success() {
        return Ok(());
    }
    let message = if text.is_empty() {
        format!("POST {url}: {status}")
    } else {
        format!("POST {url}: {status}: {text}")
    };
    let code = status.as_u16();
    if code == 408 || code == 429 || status.is_server_error() {
        Err(Failure::retry(message))
    } else {
        Err(Failure::dead(message))
    }
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
