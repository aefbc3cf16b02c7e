//! What keeps the store healthy: a probe that a change could be stored now (`/readyz`), and
//! forgetting old delivery ids and old finished changes.

use super::write::Write;
use super::{Store, StoreError};

/// Write and remove a row the size of a large change event.
#[derive(Debug)]
pub(crate) struct Probe;

impl Write for Probe {
    type Answer = ();
}

/// Forget delivery ids seen before a time.
#[derive(Debug)]
pub(crate) struct PruneDeliveries {
    pub before_ms: i64,
}

impl Write for PruneDeliveries {
    type Answer = usize;
}

/// Forget finished changes received before a time.
#[derive(Debug)]
pub(crate) struct PruneChanges {
    pub before_ms: i64,
}

impl Write for PruneChanges {
    type Answer = usize;
}

impl Store {
    /// Checks that a change could be stored now: writes and removes a row the size of a large
    /// change event, durably. Fails when the disk (or the store's page limit) is full.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.write(Probe).await
    }

    /// Forgets delivery ids seen before `before_ms`; returns how many.
    pub async fn prune_deliveries(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.write(PruneDeliveries { before_ms }).await
    }

    /// Forgets the changes received before `before_ms` whose starts are all finished, with
    /// their decisions, sightings and starts; returns how many changes.
    pub async fn prune_changes(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.write(PruneChanges { before_ms }).await
    }
}
