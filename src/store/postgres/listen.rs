//! How a replica learns that another made or reopened starts: `LISTEN switchyard_starts` on a
//! connection of its own, each notification waking its dispatcher (a trigger on `starts`
//! notifies when a start becomes pending). A lost connection is opened again after a second;
//! what was missed meanwhile the dispatcher's backstop sweep finds.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

/// The channel the trigger notifies.
const CHANNEL: &str = "switchyard_starts";
/// How long a lost listening connection waits before it is opened again.
const AGAIN_AFTER: Duration = Duration::from_secs(1);
/// How often the listener checks that its store is still open (and ends when it is not).
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// Listens on a thread of its own until the store that owns `new_work` is gone.
pub(super) fn spawn(url: String, new_work: &Arc<Notify>) {
    let new_work = Arc::downgrade(new_work);
    let spawned = std::thread::Builder::new()
        .name("switchyard-listen".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                while new_work.strong_count() > 0 {
                    if let Err(e) = listen(&url, &new_work).await {
                        tracing::debug!(error = %e, "not hearing the other replicas' starts; listening again in a second");
                    }
                    tokio::time::sleep(AGAIN_AFTER).await;
                }
            });
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot listen for the other replicas' starts; the dispatcher sweeps instead");
    }
}

/// One listening connection, until it fails or the store is gone.
async fn listen(url: &str, new_work: &Weak<Notify>) -> Result<(), String> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let client = super::connect_hearing(url, Some(tx))
        .await
        .map_err(|e| e.to_string())?;
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| super::message(&e))?;
    // Starts made while nobody listened are found by a pass now.
    if let Some(new_work) = new_work.upgrade() {
        new_work.notify_one();
    }
    loop {
        tokio::select! {
            heard = rx.recv() => match (heard, new_work.upgrade()) {
                (Some(()), Some(new_work)) => new_work.notify_one(),
                (Some(()), None) => return Ok(()),
                (None, _) => return Err("the listening connection ended".into()),
            },
            _ = tokio::time::sleep(CHECK_EVERY) => {
                if new_work.strong_count() == 0 {
                    return Ok(());
                }
            }
        }
    }
}
