//! An SQS batch (the queue an EventBridge rule fills): every record at once, the failed ones
//! answered in `batchItemFailures` so that only they come back.

use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::Diagnostic;
use serde_json::Value;
use tokio::task::JoinSet;

use super::{Handler, unreadable};

impl Handler {
    /// An SQS batch: every record at once; the failed ones are answered in
    /// `batchItemFailures`, so that only they come back.
    pub(super) async fn sqs(
        self: &Arc<Self>,
        batch: SqsEvent,
        deadline: Instant,
    ) -> Result<SqsBatchResponse, Diagnostic> {
        let mut records = JoinSet::new();
        for record in batch.records {
            let handler = Arc::clone(self);
            records.spawn(async move {
                let result = handler.record(&record, deadline).await;
                (record.message_id, result)
            });
        }
        let mut answer = SqsBatchResponse::default();
        let mut unnamed = 0;
        while let Some(done) = records.join_next().await {
            let (id, result) = done.map_err(|e| unreadable("a record", &e.to_string()))?;
            if result.is_ok() {
                continue;
            }
            match id.filter(|id| !id.is_empty()) {
                Some(id) => {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id;
                    answer.batch_item_failures.push(failure);
                }
                None => unnamed += 1,
            }
        }
        if unnamed > 0 {
            // A failure that cannot be named fails the whole batch, so that nothing is lost.
            return Err(Diagnostic {
                error_type: "switchyard.NotStarted".into(),
                error_message: format!(
                    "{unnamed} record(s) without a messageId could not be started; the whole batch is retried"
                ),
            });
        }
        answer
            .batch_item_failures
            .sort_by(|a, b| a.item_identifier.cmp(&b.item_identifier));
        Ok(answer)
    }

    /// One SQS record: its body is an EventBridge event as a rule delivers it.
    async fn record(&self, record: &SqsMessage, deadline: Instant) -> Result<Value, String> {
        let message = record.message_id.as_deref().unwrap_or("(no messageId)");
        let body = record.body.as_deref().unwrap_or_default();
        let result = self.envelope(body.as_bytes(), deadline).await;
        if let Err(e) = &result {
            tracing::warn!(
                message,
                "record not started; it comes back after the queue's visibility timeout: {e}"
            );
        }
        result
    }
}
