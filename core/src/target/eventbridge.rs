//! `eventbridge`: PutEvents of `{"pipeline", "start_id", "event"}` to a bus, with the
//! detail-type as configured and `switchyard` as the source. The run is the event id. Any
//! failure is retried: a bus that refused the entry may accept it later.

use super::aws::{Answer, Call};
use super::{Api, Attempt, Failure, Kind, Run};
use crate::diag::{Diagnostics, MapReader, scalar};
use crate::yaml::Node;

/// `eventbridge: {bus, detail_type}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventBridge {
    pub bus: String,
    pub detail_type: String,
}

impl Kind for EventBridge {
    type Via = Api;

    fn read(value: &Node, what: &str, d: &mut Diagnostics) -> Option<EventBridge> {
        let m = MapReader::new(value, what, d)?;
        m.deny_unknown(&["bus", "detail_type"], what, d);
        let bus = m
            .get("bus")
            .map_or(Some("default"), |n| scalar(n, "bus", d));
        let detail_type = m
            .get("detail_type")
            .map_or(Some("Pipeline Start Requested"), |n| {
                scalar(n, "detail_type", d)
            });
        Some(EventBridge {
            bus: bus?.to_owned(),
            detail_type: detail_type?.to_owned(),
        })
    }

    fn request(&self, a: &Attempt<'_>) -> Result<Call, Failure> {
        Ok(Call::PutEvents {
            bus: self.bus.clone(),
            detail_type: self.detail_type.clone(),
            detail: a.body()?,
        })
    }

    fn judge(&self, answer: Answer) -> Result<Run, Failure> {
        let bus = &self.bus;
        match answer {
            Answer::Failed(e) => Err(Failure::retry(format!(
                "PutEvents to bus {bus:?}: {}",
                e.text
            ))),
            Answer::Done {
                refused: Some(why), ..
            } => Err(Failure::retry(format!(
                "PutEvents to bus {bus:?} refused the entry: {why}"
            ))),
            Answer::Done { id, .. } => Ok(Run { id }),
        }
    }
}
