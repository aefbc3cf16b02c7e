//! switchyard: a trigger dispatcher. It learns that a git repository changed, turns every notice
//! into one normalized change event, and decides with glob filters which pipelines must start.
//!
//! See `ARCHITECTURE.md` for the map of the modules and the invariants they keep.

pub mod activity;
pub mod aws;
pub mod check;
pub mod config;
pub mod diag;
pub mod dispatch;
pub mod event;
pub mod explain;
pub mod filter;
pub mod glob;
pub mod intake;
pub mod lambda;
pub mod metrics;
pub mod outbox;
pub mod outcome;
pub mod pipeline;
pub mod repo;
pub mod secret;
pub mod serve;
pub mod shutdown;
pub mod signature;
pub mod sources;
pub mod store;
pub mod target;
pub mod template;
pub mod yaml;
