//! The PostgreSQL backend, for several `serve` replicas sharing one database.
//!
//! Each process keeps one connection, on a thread of its own, and answers the commands waiting
//! at a moment in one transaction (group commit, as the SQLite writer does); PostgreSQL's own
//! group commit merges the replicas' WAL flushes. What one replica's memory cannot guarantee
//! the database does:
//!
//! - **One change, one row.** `changes.id`, `starts (change_id, pipeline)` and `deliveries
//!   (receiver, delivery_id)` are unique. The ref-state rule reads the ref's newest push inside
//!   the transaction while holding a transaction-scoped advisory lock on the ref.
//! - **No deadlocks between replicas.** A batch takes every advisory lock it needs (change ids,
//!   delivery ids, refs, superseded refs, claimed pipelines) in one statement, in ascending key
//!   order, before it writes: two batches that touch the same rows queue on the first common
//!   lock instead of crossing. A deadlock PostgreSQL still detects (two row locks taken by
//!   start updates) rolls the batch back and it is run again.
//! - **Claims.** `FOR UPDATE SKIP LOCKED` under the pipeline's lock, counting the pipeline's
//!   running starts in the database: a pipeline's concurrency is global. A claimed start holds
//!   a lease that its replica renews every [`HEARTBEAT`](backend::HEARTBEAT); when a replica
//!   dies, the next replica's heartbeat after [`LEASE`](backend::LEASE) reopens its starts
//!   (attempted again with the same start id). A replica judges others' leases only once it
//!   has been connected for a lease itself: after an outage of the database every lease has
//!   run out, and each live replica must have had the time to renew its own.
//! - **Polling.** Each repository is leased to one live replica, chosen by rendezvous hashing
//!   over the replicas that renewed their row within the lease, so the repositories spread out
//!   and move only when a replica comes or goes.
//!
//! Files: `backend.rs` the writer thread, how it applies each write, its heartbeat; `reader.rs`
//! the pool of read connections; `sql.rs` the statements; `admin.rs` a synchronous view for
//! tests (the `admin` feature);
//! `schema.rs` the schema (tables as in SQLite, plus `poll_leases` and `replicas`, and the
//! intake as PL/pgSQL functions: a batch's intakes are one call) and its migrations.

#[cfg(any(test, feature = "admin"))]
mod admin;
mod backend;
mod listen;
mod reader;
mod schema;
mod sql;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::Notify;

use super::{Role, StoreError};

#[cfg(any(test, feature = "admin"))]
pub use admin::Admin;
pub(crate) use backend::{Apply, Job};
pub(crate) use reader::Readers;
pub use schema::MIGRATIONS;

/// Starts the writer thread for the database at `url` (it answers the writes of the returned
/// sender until every sender is gone) and pools of read connections of the given sizes.
pub(super) fn open(
    url: &str,
    role: Role,
    new_work: Arc<Notify>,
    pools: [usize; 2],
) -> (mpsc::Sender<Box<dyn Job>>, [Readers; 2]) {
    let (tx, rx) = mpsc::channel();
    match backend::Writer::new(url.to_owned(), role, Arc::clone(&new_work)) {
        Ok(writer) => {
            if role == Role::Serve {
                listen::spawn(url.to_owned(), &new_work);
            }
            super::write::spawn(writer, rx, new_work)
        }
        // The receiver is gone: every write fails with `Closed`.
        Err(e) => tracing::error!(error = %e, "cannot start the store's runtime"),
    }
    (tx, pools.map(|n| Readers::new(url, n)))
}

/// The connection settings of `text`, and the file of root certificates it names
/// (`sslrootcert`, which the driver does not read itself). `sslmode=verify-ca|verify-full`
/// mean `require` to the driver: switchyard always verifies the server's certificate when TLS
/// is used.
fn parse(text: &str) -> Result<(tokio_postgres::Config, Option<String>), String> {
    let mut root_cert = None;
    let mut keep = |key: &str, value: &str| -> Option<String> {
        match key {
            "sslrootcert" => {
                root_cert = Some(value.to_owned());
                None
            }
            "sslmode" if value == "verify-ca" || value == "verify-full" => {
                Some("sslmode=require".to_owned())
            }
            _ => Some(format!("{key}={value}")),
        }
    };
    let rewritten = if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        match text.split_once('?') {
            Some((base, query)) => {
                let kept: Vec<String> = query
                    .split('&')
                    .filter_map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        keep(k, v)
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => text.to_owned(),
        }
    } else if text.contains('=') {
        text.split_whitespace()
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                keep(k, v)
            })
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        return Err("expected postgres://USER@HOST:PORT/DATABASE".into());
    };
    let config: tokio_postgres::Config = rewritten.parse().map_err(|e| {
        // The driver's message may quote the text, password included: never show it.
        let _ = e;
        "the URL cannot be parsed (check its form and options)".to_owned()
    })?;
    if config.get_hosts().is_empty() {
        return Err("the URL names no host".into());
    }
    Ok((config, root_cert))
}

pub(super) use crate::config::postgres::describe;

/// How long opening a connection may take in all (the socket, TLS, the startup and the
/// migration check): a database that stopped answering, or a network that drops every packet,
/// fails the attempt instead of holding it.
pub(super) const CONNECT_WITHIN: std::time::Duration = std::time::Duration::from_secs(4);
/// The words of a connection attempt that got no answer within [`CONNECT_WITHIN`].
pub(super) const NO_ANSWER: &str = "no answer within";

/// A connection to the database at `url` (TLS as the URL asks, verified), its driver running as
/// a task of the current runtime, the schema migrated to this version (the writer's and the
/// readers' first connections may race: the migrations take an advisory lock). The whole of it
/// within [`CONNECT_WITHIN`].
async fn connect(url: &str) -> Result<tokio_postgres::Client, StoreError> {
    connect_hearing(url, None).await
}

/// [`connect`], with the server's notifications (`LISTEN`) sent to `notices`.
async fn connect_hearing(
    url: &str,
    notices: Option<tokio::sync::mpsc::UnboundedSender<()>>,
) -> Result<tokio_postgres::Client, StoreError> {
    match tokio::time::timeout(CONNECT_WITHIN, connect_now(url, notices)).await {
        Ok(connected) => connected,
        Err(_) => Err(open_error(
            url,
            format!("cannot connect: {NO_ANSWER} {} s", CONNECT_WITHIN.as_secs()),
        )),
    }
}

async fn connect_now(
    url: &str,
    notices: Option<tokio::sync::mpsc::UnboundedSender<()>>,
) -> Result<tokio_postgres::Client, StoreError> {
    use std::time::Duration;
    let fail = |message: String| open_error(url, message);
    let (mut config, root_cert) = parse(url).map_err(fail)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_WITHIN);
    }
    // A peer that vanished (a partition: no RST, no FIN) is noticed by the kernel: keepalive
    // probes after 5 s idle, every 1 s, 3 unanswered closing the connection, and sent data
    // unacknowledged for 5 s closing it too. Set by the URL's own options when it has them.
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(5));
    }
    // A replica cut off in the middle of a batch leaves its transaction open on the server,
    // holding locks the other replicas wait for; the server ends such a session once it has
    // waited 2 s for the next statement, so that the others go on (a batch's statements follow
    // each other within milliseconds). Unless the URL's `options` set it.
    let options = config.get_options().unwrap_or_default().to_owned();
    if !options.contains("idle_in_transaction_session_timeout") {
        config.options(format!("{options} -c idle_in_transaction_session_timeout=2000").trim());
    }
    config.application_name("switchyard");
    let tls = tls(root_cert.as_deref()).map_err(fail)?;
    let (client, mut connection) = config
        .connect(tls)
        .await
        .map_err(|e| fail(format!("cannot connect: {}", message(&e))))?;
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                    if let Some(notices) = &notices {
                        let _ = notices.send(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "database connection ended");
                    break;
                }
                None => break,
            }
        }
    });
    schema::migrate(&client).await.map_err(fail)?;
    Ok(client)
}

/// The store at `url` cannot be opened: `message`, the URL described without credentials.
fn open_error(url: &str, message: String) -> StoreError {
    StoreError::Open {
        path: describe(url),
        message,
    }
}

/// A driver error as a message: the server's own text when it sent one.
pub(super) fn message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => crate::diag::with_causes(e),
    }
}

/// The TLS connector: rustls on ring, verifying the server against the Mozilla roots, or the
/// certificates of `sslrootcert` when the URL names a file.
fn tls(root_cert: Option<&str>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}
