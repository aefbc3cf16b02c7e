//! How a command beside `serve` tells it of new work in the same SQLite file: a datagram on a
//! Unix socket in the state directory. `serve` listens; a command whose commit reopened or
//! added starts (`outbox retry`, `changes replay`) rings. Without it, `serve`'s dispatcher would
//! have to look at the file on a timer to learn of them.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

/// The socket's name in the state directory.
const SOCKET: &str = "wake.sock";
/// How often the listener checks that its store is still open (and ends when it is not).
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// Listens for rings at `dir/wake.sock` on a thread of its own, each waking `new_work`, until
/// the store that owns `new_work` is gone. A socket left by a process that ended is replaced.
pub(super) fn listen(dir: &Path, new_work: &Arc<Notify>) {
    let path = dir.join(SOCKET);
    let _ = std::fs::remove_file(&path);
    let socket = match UnixDatagram::bind(&path) {
        Ok(socket) => socket,
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "no doorbell: commands beside serve reach its dispatcher at its next sweep");
            return;
        }
    };
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    let _ = socket.set_read_timeout(Some(CHECK_EVERY));
    let new_work: Weak<Notify> = Arc::downgrade(new_work);
    let spawned = std::thread::Builder::new()
        .name("switchyard-doorbell".into())
        .spawn(move || {
            let mut buf = [0u8; 8];
            loop {
                let rang = socket.recv(&mut buf).is_ok();
                let Some(new_work) = new_work.upgrade() else {
                    break;
                };
                if rang {
                    new_work.notify_one();
                }
            }
            let _ = std::fs::remove_file(&path);
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "no doorbell thread");
    }
}

/// Rings the `serve` listening in state directory `dir`, if one does: its dispatcher looks at
/// the store now.
pub fn ring(dir: &Path) {
    if let Ok(socket) = UnixDatagram::unbound() {
        let _ = socket.send_to(b"w", dir.join(SOCKET));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_wakes_the_listener() {
        let dir = tempfile::tempdir().expect("temp dir");
        let new_work = Arc::new(Notify::new());
        listen(dir.path(), &new_work);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        let woken = rt.block_on(async {
            let notified = new_work.notified();
            ring(dir.path());
            tokio::time::timeout(Duration::from_secs(5), notified).await
        });
        assert!(woken.is_ok(), "the ring woke the listener");
        let mode = std::fs::metadata(dir.path().join(SOCKET))
            .expect("the socket")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
