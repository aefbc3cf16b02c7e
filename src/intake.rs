//! Intake: the one door every source uses. Decides the pipelines a change starts, hands the
//! change and its starts to the store, and answers only once they are on disk.

use std::sync::Arc;
use std::time::Instant;

use crate::event::ChangeEvent;
use crate::metrics::Metrics;
use crate::pipeline::{Mode, Pipelines};
use crate::store::{IntakeOutcome, IntakeRequest, PlannedStart, Store, StoreError};

/// Shared by every source.
#[derive(Clone, Debug)]
pub struct Intake {
    pipelines: Arc<Pipelines>,
    store: Store,
    metrics: Arc<Metrics>,
}

impl Intake {
    /// An intake over these pipelines and this store.
    pub fn new(pipelines: Arc<Pipelines>, store: Store, metrics: Arc<Metrics>) -> Intake {
        Intake {
            pipelines,
            store,
            metrics,
        }
    }

    /// The pipelines the intake decides with.
    pub fn pipelines(&self) -> &Pipelines {
        &self.pipelines
    }

    /// Stores `event` (and its delivery id, for the replay window) with one start per matching
    /// pipeline. Returns once durable; an error means nothing was acknowledged.
    pub async fn submit(
        &self,
        event: ChangeEvent,
        delivery: Option<(String, String)>,
    ) -> Result<IntakeOutcome, StoreError> {
        let starts = self
            .pipelines
            .matching(&event)
            .into_iter()
            .map(|p| PlannedStart {
                pipeline: p.name.clone(),
                supersede: p.mode == Mode::Superseded,
            })
            .collect();
        let source = event.source.kind.to_string();
        let began = Instant::now();
        let result = self
            .store
            .intake(IntakeRequest {
                event,
                delivery,
                starts,
            })
            .await;
        let outcome = match &result {
            Ok(IntakeOutcome::Accepted { .. }) => "accepted",
            Ok(IntakeOutcome::Duplicate { .. }) => "duplicate",
            Err(_) => "error",
        };
        self.metrics.inc(
            "switchyard_intake_total",
            &[("source", &source), ("outcome", outcome)],
        );
        if result.is_ok() {
            self.metrics.observe(
                "switchyard_intake_seconds",
                &[("source", &source)],
                began.elapsed().as_secs_f64(),
            );
        } else {
            self.metrics.inc("switchyard_store_errors_total", &[]);
        }
        result
    }
}
