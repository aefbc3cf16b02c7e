//! The HTTP transport: one client (hyper, rustls on ring, webpki roots) for every request
//! switchyard makes — the HTTP targets' and the OTLP exporter's — and one exchange with a
//! timeout and a bounded body.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::target::Failure;
use crate::target::exchange::{self, Answer, BODY_LIMIT};

/// An HTTP(S) client shared by every request.
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

/// Sends a target's request and reads the answer, within `timeout`; a transport failure has
/// the request's credentials masked.
pub async fn exchange(
    client: &Client,
    request: exchange::Request,
    timeout: Duration,
) -> Result<Answer, Failure> {
    let exchange::Request {
        request,
        url,
        secrets,
    } = request;
    match send(client, request, timeout).await {
        Ok((status, headers, body)) => Ok(Answer {
            status,
            headers,
            body,
            url,
            secrets,
        }),
        Err(f) => Err(f.masked(&secrets)),
    }
}

/// Sends `req` and reads the answer (at most [`BODY_LIMIT`] bytes of its body), within
/// `timeout`. A transport error or no answer in time is a failure to retry.
pub async fn send(
    client: &Client,
    req: Request<Bytes>,
    timeout: Duration,
) -> Result<(hyper::StatusCode, hyper::HeaderMap, Bytes), Failure> {
    let what = format!("{} {}", req.method(), shown(req.uri()));
    let exchange = async {
        let resp = client
            .request(req.map(Full::new))
            .await
            .map_err(|e| Failure::retry(format!("{what}: {}", crate::diag::with_causes(&e))))?;
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
        Ok::<_, Failure>((status, headers, body))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| Failure::retry(format!("{what}: no answer within {timeout:?}")))?
}

/// A URI as shown in messages: without its query or credentials.
fn shown(uri: &hyper::Uri) -> String {
    crate::secret::shown_url(&uri.to_string())
}
