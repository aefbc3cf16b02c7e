//! `sqs`: SendMessage of `{"pipeline", "start_id", "event"}` to a queue; on a FIFO queue the
//! group id is the pipeline and the deduplication id the start id, so SQS itself drops a repeat
//! within its 5-minute window. The run is the message id. Any failure is retried.

use super::aws::{Answer, Call, Fifo};
use super::read::required_url;
use super::{Api, Attempt, Failure, Kind, Run};
use crate::diag::{Diagnostics, MapReader};
use crate::yaml::Node;

/// `sqs: {queue_url}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sqs {
    pub queue_url: String,
}

impl Kind for Sqs {
    type Via = Api;

    fn read(value: &Node, what: &str, d: &mut Diagnostics) -> Option<Sqs> {
        let m = MapReader::new(value, what, d)?;
        m.deny_unknown(&["queue_url"], what, d);
        let url = required_url(&m, "queue_url", what, &["http", "https"], d);
        Some(Sqs { queue_url: url? })
    }

    fn request(&self, a: &Attempt<'_>) -> Result<Call, Failure> {
        Ok(Call::SendMessage {
            queue_url: self.queue_url.clone(),
            body: a.body()?,
            fifo: self.queue_url.ends_with(".fifo").then(|| Fifo {
                group_id: a.pipeline.to_owned(),
                deduplication_id: a.start_id.to_owned(),
            }),
        })
    }

    fn judge(&self, answer: Answer) -> Result<Run, Failure> {
        match answer {
            Answer::Failed(e) => Err(Failure::retry(format!(
                "SendMessage to {}: {}",
                self.queue_url, e.text
            ))),
            Answer::Done { id, .. } => Ok(Run { id }),
        }
    }
}
