//! The completer: takes the changes the intake deferred (their paths incomplete), completes
//! them from the mirrors, and has the intake plan their starts. Changes still waiting in the
//! store (after a crash, or a plan that failed) are picked up at start and every minute.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};

use super::Poller;
use crate::event::ChangeEvent;
use crate::shutdown::Shutdown;

/// How often the store is searched for deferred changes nobody is completing.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Poller {
    /// Completes deferred changes from `queue` (and from the store) until shutdown.
    pub async fn complete_deferred(
        self: Arc<Self>,
        mut queue: mpsc::UnboundedReceiver<ChangeEvent>,
        mut shutdown: Shutdown,
    ) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            let events = tokio::select! {
                _ = shutdown.wait() => return,
                event = queue.recv() => match event {
                    Some(e) => vec![e],
                    None => return,
                },
                _ = sweep.tick() => self.waiting().await,
            };
            for event in events {
                let fresh = busy.lock().is_ok_and(|mut b| b.insert(event.id.clone()));
                if !fresh {
                    continue;
                }
                let poller = Arc::clone(&self);
                let slots = Arc::clone(&slots);
                let busy = Arc::clone(&busy);
                tokio::spawn(async move {
                    let _slot = slots.acquire().await;
                    let id = event.id.clone();
                    let event = poller.complete(event).await;
                    if let Err(e) = poller.intake().plan(event).await {
                        tracing::warn!(change_id = %id, error = %e, "cannot plan the starts of a completed change; retried within a minute");
                    }
                    if let Ok(mut b) = busy.lock() {
                        b.remove(&id);
                    }
                });
            }
        }
    }

    /// The deferred changes in the store.
    async fn waiting(&self) -> Vec<ChangeEvent> {
        match self.intake().store().deferred().await {
            Ok(rows) => rows
                .iter()
                .filter_map(|json| match serde_json::from_str(json) {
                    Ok(event) => Some(event),
                    Err(e) => {
                        tracing::error!(error = %e, "a stored change cannot be read back");
                        None
                    }
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for deferred changes");
                Vec::new()
            }
        }
    }
}
