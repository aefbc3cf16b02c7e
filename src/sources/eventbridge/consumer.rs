//! The SQS consumer: long-polls the queue an EventBridge rule targets, turns each message into
//! change events, and deletes a message only once its changes are durable.
//!
//! - A message whose changes the intake stored (or had seen) is deleted, in batches.
//! - A well-formed event that is no change is counted, logged and deleted.
//! - A malformed message, or one the store could not take, is left alone: it comes back after
//!   the visibility timeout, and the queue's redrive policy moves a poison message to its
//!   dead-letter queue. The consumer never stops on a message.
//! - While an intake is slow, the batch's visibility is extended (by the queue's visibility
//!   timeout, every half of it) so that no other consumer takes the messages meanwhile.
//! - The EventBridge event id is the delivery id (replay window): a redelivered message is a
//!   duplicate, never a second start.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
};
use jiff::Timestamp;

use super::envelope::{self, Envelope};
use crate::config::EventBridge;
use crate::diag::Hint as _;
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::outcome::IntakeOutcome;
use crate::shutdown::Shutdown;

/// The delivery-id namespace of EventBridge events in the replay window.
pub const DELIVERY_NAMESPACE: &str = "eventbridge";
/// Messages asked for per receive (the SQS maximum).
const BATCH: i32 = 10;
/// The visibility timeout assumed when the queue's cannot be read.
const DEFAULT_VISIBILITY: Duration = Duration::from_secs(30);
/// The longest wait between two receives after errors.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Consumers of one queue.
#[derive(Clone, Debug)]
pub struct Consumer {
    client: Client,
    queue_url: String,
    wait_secs: i32,
    intake: Intake,
    /// The queue's visibility timeout, read at the first batch: a slow batch's visibility is
    /// extended by it every half of it.
    visibility: Arc<tokio::sync::OnceCell<Duration>>,
}

/// What became of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Its changes are stored (new or seen before): delete it.
    Stored,
    /// A well-formed event that is no change: delete it.
    Ignored,
    /// Malformed: leave it for the redrive policy.
    Malformed,
    /// The store failed: leave it, it comes back.
    Failed,
}

impl Fate {
    fn word(self) -> &'static str {
        match self {
            Fate::Stored => "stored",
            Fate::Ignored => "ignored",
            Fate::Malformed => "malformed",
            Fate::Failed => "failed",
        }
    }
}

impl Consumer {
    /// A consumer of the configured queue.
    pub async fn new(config: &EventBridge, intake: Intake) -> Consumer {
        let sdk =
            crate::aws::sdk_config(Some(&config.region), config.endpoint_url.as_deref()).await;
        Consumer {
            client: Client::new(&sdk),
            queue_url: config.queue_url.clone(),
            wait_secs: i32::try_from(config.wait.as_secs())
                .unwrap_or(20)
                .clamp(0, 20),
            intake,
            visibility: Arc::default(),
        }
    }

    fn metrics(&self) -> &Arc<Metrics> {
        self.intake.metrics()
    }

    fn count_request(&self, api: &'static str, ok: bool) {
        self.metrics().aws_request(api, ok);
    }

    /// Runs `consumers` long-poll loops until shutdown.
    pub async fn run(self, consumers: usize, shutdown: Shutdown) {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..consumers.max(1) {
            tasks.spawn(self.clone().receive_loop(shutdown.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn receive_loop(self, mut shutdown: Shutdown) {
        let mut failures = 0u32;
        loop {
            let received = tokio::select! {
                _ = shutdown.wait() => return,
                r = self.receive_once() => r,
            };
            match received {
                Ok(_) => {
                    if failures > 0 {
                        tracing::info!(queue = %self.queue_url, "the queue answers again");
                    }
                    failures = 0;
                }
                Err(e) => {
                    failures += 1;
                    let wait = Duration::from_millis(250)
                        .saturating_mul(2u32.saturating_pow(failures.min(10)))
                        .min(MAX_BACKOFF);
                    tracing::warn!(queue = %self.queue_url, failures, error = %e, retry_in = ?wait, "cannot receive from the queue");
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// One receive: waits up to the long-poll time for messages, stores their changes, and
    /// deletes the messages that are done. Returns how many messages it handled.
    pub async fn receive_once(&self) -> Result<usize, String> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(BATCH)
            .wait_time_seconds(self.wait_secs)
            .send()
            .await;
        self.count_request("ReceiveMessage", output.is_ok());
        let output = output.map_err(|e| crate::aws::describe(&e))?;
        let messages = output.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(0);
        }
        let fates = self.handle_slowly(&messages).await;
        let done: Vec<&Message> = messages
            .iter()
            .zip(&fates)
            .filter(|(_, fate)| matches!(fate, Fate::Stored | Fate::Ignored))
            .map(|(m, _)| m)
            .collect();
        for fate in &fates {
            self.metrics().sqs_message(fate.word());
        }
        self.delete(&done).await;
        Ok(messages.len())
    }

    /// Handles a batch, its messages at once (their intakes share the store's group commits),
    /// extending the messages' visibility while it takes long.
    async fn handle_slowly(&self, messages: &[Message]) -> Vec<Fate> {
        let work = async {
            let mut tasks = tokio::task::JoinSet::new();
            for (i, m) in messages.iter().enumerate() {
                let (consumer, m) = (self.clone(), m.clone());
                tasks.spawn(async move { (i, consumer.handle(&m).await) });
            }
            // A task that panicked leaves its message undeleted, as a failed intake would.
            let mut fates = vec![Fate::Failed; messages.len()];
            while let Some(done) = tasks.join_next().await {
                if let Ok((i, fate)) = done {
                    fates[i] = fate;
                }
            }
            fates
        };
        tokio::pin!(work);
        let visibility = *self
            .visibility
            .get_or_init(|| self.queue_visibility())
            .await;
        loop {
            tokio::select! {
                fates = &mut work => return fates,
                _ = tokio::time::sleep(visibility / 2) => self.extend(messages, visibility).await,
            }
        }
    }

    /// The queue's visibility timeout (at least 2 s), or [`DEFAULT_VISIBILITY`].
    async fn queue_visibility(&self) -> Duration {
        use aws_sdk_sqs::types::QueueAttributeName;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .send()
            .await;
        self.count_request("GetQueueAttributes", out.is_ok());
        out.ok()
            .and_then(|o| {
                o.attributes()?
                    .get(&QueueAttributeName::VisibilityTimeout)?
                    .parse::<u64>()
                    .ok()
            })
            .map_or(DEFAULT_VISIBILITY, |secs| Duration::from_secs(secs.max(2)))
    }

    /// What one message is, and its changes handed to the intake.
    pub async fn handle(&self, message: &Message) -> Fate {
        let body = message.body().unwrap_or_default();
        let id = message.message_id().unwrap_or("?");
        match envelope::parse(body.as_bytes(), Timestamp::now()) {
            Err(e) => {
                tracing::warn!(message = id, error = %e, hint = e.hint(), "a malformed message stays on the queue for its redrive policy");
                Fate::Malformed
            }
            Ok(Envelope::Unknown { event_id, reason }) => {
                tracing::info!(
                    message = id,
                    event = event_id.as_deref().unwrap_or("?"),
                    reason,
                    "not a change; deleted"
                );
                Fate::Ignored
            }
            Ok(Envelope::Changes { event_id, changes }) => {
                for (i, change) in changes.into_iter().enumerate() {
                    // One delivery id per change, so that the second change of an event is not
                    // taken for a redelivery of the first.
                    let delivery = match i {
                        0 => event_id.clone(),
                        i => format!("{event_id}#{i}"),
                    };
                    match self
                        .intake
                        .submit(change, Some((DELIVERY_NAMESPACE.to_owned(), delivery)))
                        .await
                    {
                        Ok(IntakeOutcome::Accepted { .. } | IntakeOutcome::Duplicate { .. }) => {}
                        Err(e) => {
                            tracing::warn!(message = id, event = %event_id, error = %e, "the store cannot take the change; the message comes back");
                            return Fate::Failed;
                        }
                    }
                }
                Fate::Stored
            }
        }
    }

    async fn delete(&self, done: &[&Message]) {
        let entries: Vec<DeleteMessageBatchRequestEntry> = done
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        let result = self
            .client
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        self.count_request("DeleteMessageBatch", result.is_ok());
        match result {
            Ok(out) if !out.failed().is_empty() => {
                tracing::warn!(
                    failed = out.failed().len(),
                    "some messages were not deleted; they come back as duplicates"
                )
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %crate::aws::describe(&e), "cannot delete messages; they come back as duplicates")
            }
        }
    }

    async fn extend(&self, messages: &[Message], by: Duration) {
        let by = i32::try_from(by.as_secs()).unwrap_or(43_200);
        let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                    .visibility_timeout(by)
                    .build()
                    .ok()
            })
            .collect();
        let result = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        self.count_request("ChangeMessageVisibilityBatch", result.is_ok());
        if let Err(e) = result {
            tracing::warn!(error = %crate::aws::describe(&e), "cannot extend the visibility of a slow batch");
        }
    }
}
