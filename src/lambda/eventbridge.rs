//! An EventBridge event, handed over directly by a rule or in an SQS record: its changes
//! (the envelope code the SQS consumer uses) are started, or the reason they were not.

use std::time::Instant;

use lambda_runtime::Diagnostic;
use serde_json::{Value, json};

use super::Handler;
use crate::diag::Hint as _;
use crate::outcome::IntakeOutcome;
use crate::sources::eventbridge::envelope::{self, Envelope};

impl Handler {
    /// An EventBridge event handed over directly (a rule targeting the function).
    pub(super) async fn eventbridge(
        &self,
        payload: &Value,
        deadline: Instant,
    ) -> Result<Value, Diagnostic> {
        let body = serde_json::to_vec(payload).unwrap_or_default();
        match self.envelope(&body, deadline).await {
            Ok(answer) => Ok(answer),
            Err(message) => Err(Diagnostic {
                error_type: "switchyard.NotStarted".into(),
                error_message: message,
            }),
        }
    }

    /// An EventBridge event: its changes are started, or the reason they were not.
    pub(super) async fn envelope(&self, body: &[u8], deadline: Instant) -> Result<Value, String> {
        let received = jiff::Timestamp::now();
        let (event_id, changes) = match envelope::parse(body, received) {
            Ok(Envelope::Changes { event_id, changes }) => (event_id, changes),
            Ok(Envelope::Unknown { event_id, reason }) => {
                tracing::info!(event = event_id.as_deref().unwrap_or_default(), %reason, "event ignored");
                return Ok(json!({"status": "ignored", "reason": reason}));
            }
            Err(e) => {
                self.metrics.sqs_message("malformed");
                return Err(format!("the event cannot be read: {}", e.hinted()));
            }
        };
        let mut answers = Vec::with_capacity(changes.len());
        for change in changes {
            match self.start_change(&change, deadline, None).await {
                Ok(outcome) => answers.push(outcome_json(&outcome)),
                Err(e) => {
                    tracing::warn!(event = %event_id, change_id = %change.id, "{e}");
                    return Err(e);
                }
            }
        }
        Ok(json!({"status": "accepted", "event": event_id, "changes": answers}))
    }
}

fn outcome_json(outcome: &IntakeOutcome) -> Value {
    match outcome {
        IntakeOutcome::Accepted { change_id, starts } => {
            json!({"change": change_id, "status": "accepted", "starts": starts})
        }
        IntakeOutcome::Duplicate { change_id, .. } => {
            json!({"change": change_id, "status": "duplicate", "duplicate_of": "change"})
        }
    }
}
