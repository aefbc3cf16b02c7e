//! The HTTP server of `serve`: switchyard's own accept loop, handing each connection to hyper
//! with the one route table ([`routes::router`], an axum `Router`) as its service.
//!
//! Slow or idle clients cannot hold the server: a connection takes one of
//! `limits.max_connections` slots until it closes, its request headers must arrive within the
//! read timeout (hyper's `header_read_timeout`, which also closes an idle keep-alive
//! connection), and each handler reads its body within the read timeout and a size limit. On
//! shutdown the listener closes, requests in progress finish within the grace period, and
//! then every connection is closed.

pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::shutdown::Shutdown;

pub use routes::{App, router};

/// What the listener bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The most connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long a request's headers (and an idle keep-alive connection) may take.
    pub read_timeout: Duration,
}

/// The address a request came from (the connection's peer), in each request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub std::net::IpAddr);

/// `router` as the service of one connection from `peer`: each request carries [`Peer`].
fn with_peer(
    router: &axum::Router,
    peer: std::net::SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future + Send + 'static,
> + Clone
+ Send
+ 'static {
    let inner = TowerToHyperService::new(router.clone());
    let peer = Peer(peer.ip());
    hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer);
        hyper::service::Service::call(&inner, req)
    })
}

/// Serves `router` on `listener` until `shutdown`; then drains the connections for at most
/// `grace`.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    mut shutdown: Shutdown,
    grace: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            _ = shutdown.wait() => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.read_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), with_peer(&router, peer));
        let watched = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = watched.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period; closing them");
    }
}
