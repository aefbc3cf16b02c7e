//! `switchyard serve`: the store, the dispatcher and the HTTP server, wired together, until
//! SIGINT or SIGTERM; then new requests stop, requests in progress finish, running starts get
//! a grace period, and whatever is unfinished resumes at the next start.
//!
//! HTTP: the webhook receivers, health, readiness, metrics and the status page with its JSON,
//! served by [`crate::http`] (the listener and the one route table).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::Config;
use crate::dispatch::{Dispatcher, Policy};
use crate::http::{self, App};
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::pipeline::Pipelines;
use crate::shutdown::{self, Shutdown};
use crate::sources::poll::Poller;
use crate::sources::webhook::{Hooks, Receivers};
use crate::status::StatusPage;
use crate::status::access::Access;
use crate::store::{Location, Role, Store, now_ms};

/// A running server, for tests and for `main`.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    trigger: shutdown::Trigger,
    done: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Asks the server to stop and waits until it has.
    pub async fn stop(self) {
        self.trigger.fire();
        let _ = self.done.await;
    }

    /// Waits until the server stops by itself (after a signal).
    pub async fn wait(self) {
        let _ = self.done.await;
    }
}

/// Warns about targets whose credential cannot be read now: their starts will fail (and be
/// retried) until it can.
fn check_target_secrets(pipelines: &Pipelines) {
    for p in &pipelines.list {
        for secret in p.target.secrets() {
            if let Err(e) = secret.resolve() {
                tracing::warn!(pipeline = %p.name, "{e}: its starts will fail until the secret can be read");
            }
        }
    }
}

/// Binds the listener and starts everything. Returns once the server accepts connections;
/// [`Server::stop`] drains and stops it.
pub async fn start(config: Config, pipelines: Pipelines) -> anyhow::Result<Server> {
    if let Some(path) = &config.generated_secret {
        ensure_secret(path)?;
    }
    let pipelines = Arc::new(pipelines);
    let receivers = Receivers::from_config(&config.receivers).map_err(anyhow::Error::msg)?;
    check_target_secrets(&pipelines);
    let metrics = Arc::new(Metrics::default());
    let new_work = Arc::new(Notify::new());
    let location = config.store_location().map_err(anyhow::Error::msg)?;
    let store = Store::open_at(&location, Role::Serve, Arc::clone(&new_work));
    let prune_before = now_ms() - config.replay_window.as_millis() as i64;
    if let Err(e) = store.prune_deliveries(prune_before).await {
        // A full disk may clear by itself; a database that cannot be reached or speaks a newer
        // schema is a mistake in the set-up, said at once.
        if let Location::Postgres(_) = location {
            return Err(crate::diag::Hinted::new(
                e.to_string(),
                format!(
                    "check store.postgres in the configuration, that the database at {} accepts connections, and that no newer switchyard migrated it",
                    location.describe()
                ),
            )
            .into());
        }
        tracing::error!(error = %e, "the store is not usable yet; answering 503 until it is");
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let (trigger, shutdown) = shutdown::channel();

    let policy = Policy {
        attempts: config.dispatch.attempts,
        backoff: config.dispatch.backoff,
        backoff_max: config.dispatch.backoff_max,
    };
    let dispatcher = Dispatcher::new(
        store.clone(),
        Arc::clone(&pipelines),
        policy,
        config.state_dir.clone(),
        Arc::clone(&new_work),
        Arc::clone(&metrics),
        crate::transport::aws::Aws::new(
            config.eventbridge.as_ref().map(|e| e.region.clone()),
            config
                .eventbridge
                .as_ref()
                .and_then(|e| e.endpoint_url.clone()),
        ),
    );
    let (deferred, deferred_rx) = tokio::sync::mpsc::unbounded_channel();
    let intake = Intake::new(Arc::clone(&pipelines), store.clone(), Arc::clone(&metrics))
        .complete_with(config.poll.iter().map(|p| p.repository.clone()), deferred);
    let poller = Arc::new(Poller::new(
        &config.poll,
        &config.polling,
        &config.state_dir,
        intake.clone(),
        store.clone(),
        Arc::clone(&metrics),
    ));
    let eventbridge = match &config.eventbridge {
        Some(eb) => Some((
            crate::sources::eventbridge::consumer::Consumer::new(eb, intake.clone()).await,
            eb.consumers,
        )),
        None => None,
    };
    let status = StatusPage::new(
        store.clone(),
        Arc::clone(&pipelines),
        Arc::clone(&metrics),
        poller.health(),
        config.operator_token.clone(),
        Access::new(config.listen, &config.status),
    );
    if !config.listen.ip().is_loopback() && !config.status.public {
        if config.operator_token.is_none() {
            tracing::warn!(listen = %config.listen, "the status page and its API refuse every read on this listener: set operator_token to log in, or status: {{public: true}}");
        } else {
            tracing::info!(listen = %config.listen, "the status page and its API need the operator's session on this listener");
        }
    }
    if let Some(Err(e)) = status.check_operator() {
        tracing::warn!(error = %e, "operator_token cannot be read: the status page stays read-only until it can");
    }
    let app = Arc::new(App {
        intake,
        hooks: Hooks::new(receivers, config.limits.max_body_bytes),
        metrics,
        store: store.clone(),
        status,
        read_timeout: config.limits.read_timeout,
    });
    tracing::info!(%addr, pipelines = pipelines.list.len(), polled = config.poll.len(), state_dir = %config.state_dir.display(), store = %location.describe(), "serving");

    let grace = config.shutdown_grace;
    let limits = http::Limits {
        max_connections: config.limits.max_connections,
        per_peer: config.limits.per_peer(),
        read_timeout: config.limits.read_timeout,
    };
    let (replay_window, retention) = (config.replay_window, config.retention);
    let done = tokio::spawn(async move {
        let dispatch = tokio::spawn(dispatcher.run(shutdown.clone(), grace));
        let housekeeping = tokio::spawn(housekeeping(
            store,
            replay_window,
            retention,
            shutdown.clone(),
        ));
        let polling = tokio::spawn(Arc::clone(&poller).run(shutdown.clone()));
        let consuming =
            eventbridge.map(|(consumer, n)| tokio::spawn(consumer.run(n, shutdown.clone())));
        let completing = tokio::spawn(poller.complete_deferred(deferred_rx, shutdown.clone()));
        http::serve(listener, http::router(app), limits, shutdown.clone(), grace).await;
        let _ = dispatch.await;
        housekeeping.abort();
        // The sources stopped taking work with the signal; one grace period for them all. A
        // poll, completion or receive still running holds nothing unsaved: a cursor moves only
        // with its changes, a deferred change waits in the store, an undeleted message returns.
        let sources = async {
            for task in [polling, completing].into_iter().chain(consuming) {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(grace, sources).await.is_err() {
            tracing::warn!("a source did not stop within the grace period");
        }
        tracing::info!("stopped");
    });
    Ok(Server {
        addr,
        trigger,
        done,
    })
}

/// Creates a Standard Webhooks secret (`whsec_` + 24 random bytes, base64) at `path` unless
/// the file exists; only its owner may read it.
fn ensure_secret(path: &Path) -> anyhow::Result<()> {
    use base64::Engine as _;
    use std::io::Write as _;
    if path.exists() {
        return Ok(());
    }
    let fail = |e: std::io::Error| {
        anyhow::anyhow!("cannot create the webhook secret {}: {e}", path.display())
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut key = [0u8; 24];
    getrandom::fill(&mut key).map_err(|e| fail(std::io::Error::other(e.to_string())))?;
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(secret.as_bytes()).map_err(fail)?;
    tracing::info!(path = %path.display(), "generated the secret of the webhook receiver `local`");
    Ok(())
}

/// Hourly, and once at the start: forgets delivery ids older than the replay window, and
/// changes older than the retention whose starts are all finished (with their decisions,
/// sightings and starts).
async fn housekeeping(store: Store, window: Duration, retention: Duration, mut shutdown: Shutdown) {
    let mut first = true;
    loop {
        let wait = if first {
            Duration::ZERO
        } else {
            Duration::from_secs(3600)
        };
        first = false;
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(wait) => {
                let before = now_ms() - window.as_millis() as i64;
                if let Err(e) = store.prune_deliveries(before).await {
                    tracing::warn!(error = %e, "cannot prune old delivery ids");
                }
                let before = now_ms() - retention.as_millis() as i64;
                match store.prune_changes(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(changes = n, "pruned changes older than the retention"),
                    Err(e) => tracing::warn!(error = %e, "cannot prune old changes"),
                }
            }
        }
    }
}
