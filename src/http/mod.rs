//! The HTTP server of `serve`: switchyard's own accept loop, handing each connection to hyper
//! with the one route table ([`routes::router`], an axum `Router`) as its service.
//!
//! Slow, idle or greedy clients cannot hold the server:
//!
//! - A connection takes one of `limits.max_connections` slots until it closes; one address holds
//!   at most `limits.per_peer` of them at once (a further connection from it is closed at once),
//!   so a client that reconnects as fast as it is cut cannot take every slot.
//! - When every slot is taken, a few more connections are still accepted (the overflow): on
//!   them `/healthz`, `/readyz` and `/metrics` are answered at once, and any other request waits
//!   for a slot to free, so a health probe is never stuck behind held connections. Beyond the
//!   overflow, connections wait in the kernel's backlog.
//! - Request headers must arrive within the read timeout (hyper's `header_read_timeout`, which
//!   also closes an idle keep-alive connection), and each handler reads its body within the
//!   read timeout and a size limit.
//!
//! On shutdown the listener closes, requests in progress finish within the grace period, and
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
    /// The most connections served at once; a few more are taken as the overflow, then more
    /// wait in the kernel's backlog.
    pub max_connections: usize,
    /// The most connections one address may hold at once.
    pub per_peer: usize,
    /// How long a request's headers (and an idle keep-alive connection) may take.
    pub read_timeout: Duration,
}

impl Limits {
    /// The connections taken beyond `max_connections`, on which health is answered at once.
    fn overflow(&self) -> usize {
        (self.max_connections / 16).clamp(4, 64)
    }
}

/// The paths answered on an overflow connection without waiting for a slot.
const ALWAYS_ANSWERED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// How many connections each address holds.
#[derive(Debug, Default)]
struct Peers(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

/// One address's hold on a connection, released when the connection ends.
struct Held {
    peers: Arc<Peers>,
    ip: std::net::IpAddr,
}

impl Peers {
    /// A hold for `ip`, unless it already holds `cap` connections.
    fn hold(self: &Arc<Peers>, ip: std::net::IpAddr, cap: usize) -> Option<Held> {
        let mut held = self.0.lock().ok()?;
        let n = held.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Held {
            peers: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut held) = self.peers.0.lock()
            && let Some(n) = held.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// The address a request came from (the connection's peer), in each request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub std::net::IpAddr);

/// `router` as the service of one connection from `peer`: each request carries [`Peer`]. On
/// an overflow connection (`slots` given) a request other than health waits for a slot first.
fn with_peer(
    router: &axum::Router,
    peer: std::net::SocketAddr,
    slots: Option<Arc<Semaphore>>,
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
        let inner = inner.clone();
        let slots = slots
            .clone()
            .filter(|_| !ALWAYS_ANSWERED.contains(&req.uri().path()));
        async move {
            let _slot = match slots {
                Some(slots) => slots.acquire_owned().await.ok(),
                None => None,
            };
            hyper::service::Service::call(&inner, req).await
        }
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
    let overflow = Arc::new(Semaphore::new(limits.overflow()));
    let peers = Arc::new(Peers::default());
    loop {
        // Wait for room: a slot, or else a place in the overflow.
        let room = tokio::select! {
            _ = shutdown.wait() => break,
            room = room(&slots, &overflow) => room,
        };
        let Some((permit, overflowing)) = room else {
            break;
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
        // A slot taken while the accept waited serves this connection in full.
        let (permit, overflowing) = match (overflowing, Arc::clone(&slots).try_acquire_owned()) {
            (true, Ok(slot)) => (slot, false),
            _ => (permit, overflowing),
        };
        let Some(held) = peers.hold(peer.ip(), limits.per_peer) else {
            tracing::debug!(%peer, "connection refused: its address holds its share of the connections");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let waits = overflowing.then(|| Arc::clone(&slots));
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.read_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), with_peer(&router, peer, waits));
        let watched = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = watched.await;
            drop((permit, held));
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

/// A slot (`false`), or when none is free a place in the overflow (`true`); `None` when the
/// semaphores are closed.
async fn room(
    slots: &Arc<Semaphore>,
    overflow: &Arc<Semaphore>,
) -> Option<(tokio::sync::OwnedSemaphorePermit, bool)> {
    if let Ok(slot) = Arc::clone(slots).try_acquire_owned() {
        return Some((slot, false));
    }
    tokio::select! {
        slot = Arc::clone(slots).acquire_owned() => slot.ok().map(|s| (s, false)),
        place = Arc::clone(overflow).acquire_owned() => place.ok().map(|p| (p, true)),
    }
}
