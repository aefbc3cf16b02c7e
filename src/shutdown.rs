//! The one shutdown signal every task of `serve` listens to.

use tokio::sync::watch;

/// Triggers shutdown; dropping it triggers it too.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// A task's view of the shutdown signal. Clone one per task.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new signal: the trigger and the first listener.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    /// Tells every listener to stop.
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// True once shutdown was triggered.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until shutdown is triggered (at once if it already was).
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which also means stop.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}
