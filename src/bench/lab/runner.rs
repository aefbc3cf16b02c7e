//! The runner that pipeline starts reach: it records when each arrived.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::*;

/// One start request that reached the runner.
#[derive(Clone, Debug)]
pub struct Arrival {
    pub at_ms: f64,
    pub start_id: String,
    pub repository: String,
    pub git_ref: String,
    pub before: String,
    pub sha: String,
    pub source: String,
    pub received_at_ms: Option<f64>,
}

/// The runner the pipelines' `http` starts reach: records every arrival.
#[derive(Debug, Default)]
pub struct Runner {
    pub arrivals: Mutex<Vec<Arrival>>,
}

impl Runner {
    /// Serves on a loopback port until the process ends.
    pub async fn start() -> anyhow::Result<(Arc<Runner>, SocketAddr)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let runner = Arc::new(Runner::default());
        let shared = Arc::clone(&runner);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let runner = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(|request| Arc::clone(&runner).take(request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok((runner, addr))
    }

    async fn take(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let at_ms = now_ms();
        let body = request
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if let Ok(start) = serde_json::from_slice::<Value>(&body) {
            let event = &start["event"];
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            let received_at_ms = event["received_at"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_nanosecond() as f64 / 1e6);
            let arrival = Arrival {
                at_ms,
                start_id: text(&start["start_id"]),
                repository: text(&event["repository"]),
                git_ref: text(&event["ref"]),
                before: text(&event["before"]),
                sha: text(&event["after"]),
                source: text(&event["source"]["kind"]),
                received_at_ms,
            };
            if let Ok(mut arrivals) = self.arrivals.lock() {
                arrivals.push(arrival);
            }
        }
        Ok(Response::new(Full::new(Bytes::from_static(b"{}"))))
    }

    /// Takes every arrival so far.
    pub fn drain(&self) -> Vec<Arrival> {
        self.arrivals
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default()
    }
}
