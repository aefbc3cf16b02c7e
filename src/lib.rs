//! switchyard: a trigger dispatcher. It learns that a git repository changed, turns every notice
//! into one normalized change event, and decides with glob filters which pipelines must start.
//!
//! See `ARCHITECTURE.md` for the map of the modules and the invariants they keep.

// The decision path lives in `switchyard-core` (no I/O crates); its modules are this crate's
// too, under the same names.
pub use switchyard_core::{
    check, config, diag, envelope, event, explain, filter, glob, load, outcome, pipeline,
    providers, repo, secret, signature, target, template, trace, yaml,
};

pub mod activity;
pub mod aws;
pub mod changes;
pub mod cli;
pub mod dispatch;
pub mod http;
pub mod intake;
pub mod lambda;
pub mod metrics;
pub mod serve;
pub mod shutdown;
pub mod sources;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod transport;

/// For tests of crash safety: `SWITCHYARD_CRASH_AT=NAME` aborts the process at the point
/// called `NAME`, as a crash there would. Only with the `crash-points` feature, which test and
/// bench builds turn on; without it (the shipped binary) a crash point is nothing. Points:
/// `poll-store` (a poll's changes made, before they and its cursor moves are stored) and
/// `start-attempted` (a target answered, before the outcome is recorded).
#[cfg(feature = "crash-points")]
pub(crate) fn crash_point(name: &str) {
    if std::env::var("SWITCHYARD_CRASH_AT").is_ok_and(|at| at == name) {
        tracing::error!(point = name, "SWITCHYARD_CRASH_AT: aborting");
        std::process::abort();
    }
}

#[cfg(not(feature = "crash-points"))]
pub(crate) fn crash_point(_name: &str) {}
