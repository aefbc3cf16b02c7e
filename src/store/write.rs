//! Writes: the typed protocol between the [`Store`](super::Store) handle and a backend's
//! writer, and the group-commit loop every backend's writer runs.
//!
//! Each write is a type implementing [`Write`], whose `Answer` is what the caller gets back;
//! a backend implements its own `Apply` trait for every write (a missing one is a compile
//! error), so an answer of the wrong kind cannot be written. A call becomes a [`Pending`]
//! write (the request, the channel its answer goes back on, and the answer once applied) sent
//! to the writer thread, which takes every write waiting at that moment, commits them in one
//! transaction ([`Backend::commit`]) and only then answers them all.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use super::StoreError;

/// One write of the store: what it asks, and what it answers once committed.
pub(crate) trait Write: Send + 'static {
    type Answer: Send + 'static;

    /// Whether it must be on disk before it is answered. Claims and releases need not: a lost
    /// one is reopened at the next start, or when its lease runs out.
    fn durable(&self) -> bool {
        true
    }

    /// Whether this answer created or reopened starts: the dispatcher has new work.
    fn woke(_answer: &Self::Answer) -> bool {
        false
    }
}

/// A write waiting for its batch: the request, its answer once applied, and where the answer
/// goes.
pub(crate) struct Pending<W: Write> {
    pub(crate) write: W,
    pub(crate) done: Option<W::Answer>,
    reply: oneshot::Sender<Result<W::Answer, StoreError>>,
}

impl<W: Write> Pending<W> {
    /// The write, and the receiver its answer comes back on.
    pub(crate) fn new(write: W) -> (Pending<W>, oneshot::Receiver<Result<W::Answer, StoreError>>) {
        let (reply, rx) = oneshot::channel();
        (
            Pending {
                write,
                done: None,
                reply,
            },
            rx,
        )
    }
}

/// What the commit loop needs of a write, whatever its type.
pub(crate) trait Job: Send {
    fn durable(&self) -> bool;
    /// Whether its (applied) answer means new work for the dispatcher.
    fn woke(&self) -> bool;
    /// Sends the answer of a committed batch. A caller that stopped waiting is not told.
    fn answer(self: Box<Self>);
    /// Sends the reason its batch failed.
    fn fail(self: Box<Self>, err: &StoreError);
}

impl<W: Write> Job for Pending<W> {
    fn durable(&self) -> bool {
        self.write.durable()
    }

    fn woke(&self) -> bool {
        self.done.as_ref().is_some_and(W::woke)
    }

    fn answer(self: Box<Self>) {
        let answer = self.done.ok_or_else(|| {
            StoreError::Write("internal: a write of the batch was not applied".into())
        });
        let _ = self.reply.send(answer);
    }

    fn fail(self: Box<Self>, err: &StoreError) {
        let _ = self.reply.send(Err(err.clone()));
    }
}

/// A backend's writer: what commits a batch, and what it does between batches.
pub(crate) trait Backend {
    /// The backend's own kind of job (a [`Job`] it can apply).
    type Job: Job + ?Sized;

    /// Writes committed in one transaction at most.
    const MAX_BATCH: usize;

    /// Applies every write of `batch` in one transaction and commits it; each job then holds
    /// its answer. On an error nothing was committed.
    fn commit(&mut self, batch: &mut [Box<Self::Job>]) -> Result<(), StoreError>;

    /// A batch failed with `err`, before or after the commit (the backend decides what that
    /// means for what it holds).
    fn failed(&mut self, _batch: &[Box<Self::Job>], _err: &StoreError) {}

    /// Before the first write: what the writer does as soon as it runs.
    fn start(&mut self) {}

    /// When the writer must wake without a write (a heartbeat), and what it does then.
    fn next_tick(&self) -> Option<Instant> {
        None
    }

    fn tick(&mut self) {}

    /// A committed batch created or reopened starts (after `new_work` was told): tell whoever
    /// else should know.
    fn woke(&mut self) {}

    /// The last handle is gone: leave cleanly.
    fn stop(&mut self) {}
}

/// The group-commit loop: answers the writes of `rx` in batches until every sender is gone.
pub(crate) fn run<B: Backend>(
    mut backend: B,
    rx: mpsc::Receiver<Box<B::Job>>,
    new_work: Arc<Notify>,
) {
    let mut batch: Vec<Box<B::Job>> = Vec::with_capacity(64);
    backend.start();
    loop {
        let first = match backend.next_tick() {
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv_timeout(Duration::from_secs(3600)) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
        };
        if let Some(first) = first {
            batch.push(first);
            while batch.len() < B::MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            // The writes that need not wait for the disk (the dispatcher's claims) go first, in
            // a transaction of their own that does not: a claim never waits for the flush of
            // the intakes beside it, nor does the next start.
            batch.sort_by_key(|job| job.durable());
            let quick = batch.iter().take_while(|job| !job.durable()).count();
            if quick > 0 && quick < batch.len() {
                let mut rest = batch.split_off(quick);
                commit(&mut backend, &mut batch, &new_work);
                batch.append(&mut rest);
            }
            commit(&mut backend, &mut batch, &new_work);
        }
        if backend.next_tick().is_some_and(|at| Instant::now() >= at) {
            backend.tick();
        }
    }
    backend.stop();
}

/// Commits `batch` in one transaction and answers (and empties) it.
fn commit<B: Backend>(backend: &mut B, batch: &mut Vec<Box<B::Job>>, new_work: &Notify) {
    match backend.commit(batch) {
        Ok(()) => {
            if batch.iter().any(|job| job.woke()) {
                new_work.notify_one();
                backend.woke();
            }
            batch.drain(..).for_each(Job::answer);
        }
        Err(err) => {
            tracing::error!(error = %err, batch = batch.len(), "store write failed; nothing in this batch was acknowledged");
            backend.failed(batch, &err);
            batch.drain(..).for_each(|job| job.fail(&err));
        }
    }
}

/// Starts a writer thread running [`run`] over `backend`.
pub(crate) fn spawn<B>(backend: B, rx: mpsc::Receiver<Box<B::Job>>, new_work: Arc<Notify>)
where
    B: Backend + Send + 'static,
    B::Job: 'static,
    Box<B::Job>: Send,
{
    let spawned = std::thread::Builder::new()
        .name("switchyard-store".into())
        .spawn(move || run(backend, rx, new_work));
    if let Err(e) = spawned {
        // The receiver is gone with the closure: every request fails with `Closed`.
        tracing::error!(error = %e, "cannot start the store thread");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn push(log: &Mutex<Vec<String>>, line: String) {
        log.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    /// A write that logs what happens to it.
    struct Logged {
        name: &'static str,
        durable: bool,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Job for Logged {
        fn durable(&self) -> bool {
            self.durable
        }
        fn woke(&self) -> bool {
            false
        }
        fn answer(self: Box<Self>) {
            push(&self.log, format!("answer {}", self.name));
        }
        fn fail(self: Box<Self>, _err: &StoreError) {
            push(&self.log, format!("fail {}", self.name));
        }
    }

    /// Commits by logging the batch; fails a batch holding a write named `bad`.
    struct Logging(Arc<Mutex<Vec<String>>>);

    impl Backend for Logging {
        type Job = Logged;
        const MAX_BATCH: usize = 64;

        fn commit(&mut self, batch: &mut [Box<Logged>]) -> Result<(), StoreError> {
            let names: Vec<&str> = batch.iter().map(|job| job.name).collect();
            push(&self.0, format!("commit {}", names.join(" ")));
            if names.contains(&"bad") {
                return Err(StoreError::Write("bad".into()));
            }
            Ok(())
        }
    }

    /// Runs the loop over one batch of `jobs` (name, durable); what happened, in order.
    fn one_batch(jobs: &[(&'static str, bool)]) -> Vec<String> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        for &(name, durable) in jobs {
            let job = Logged {
                name,
                durable,
                log: Arc::clone(&log),
            };
            tx.send(Box::new(job))
                .unwrap_or_else(|_| panic!("the receiver is here"));
        }
        drop(tx);
        run(Logging(Arc::clone(&log)), rx, Arc::new(Notify::new()));
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        log.clone()
    }

    #[test]
    fn writes_that_need_no_flush_commit_first_and_are_answered_at_once() {
        let log = one_batch(&[
            ("a", true),
            ("claim1", false),
            ("b", true),
            ("claim2", false),
        ]);
        assert_eq!(
            log,
            [
                "commit claim1 claim2",
                "answer claim1",
                "answer claim2",
                "commit a b",
                "answer a",
                "answer b",
            ]
        );
    }

    #[test]
    fn a_batch_of_one_kind_is_one_commit() {
        assert_eq!(
            one_batch(&[("a", true), ("b", true)]),
            ["commit a b", "answer a", "answer b"]
        );
        assert_eq!(
            one_batch(&[("c", false), ("d", false)]),
            ["commit c d", "answer c", "answer d"]
        );
    }

    #[test]
    fn a_failed_quick_commit_fails_only_its_writes() {
        let log = one_batch(&[("a", true), ("bad", false)]);
        assert_eq!(log, ["commit bad", "fail bad", "commit a", "answer a"]);
    }
}
