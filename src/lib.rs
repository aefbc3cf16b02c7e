//! switchyard: a trigger dispatcher. It learns that a git repository changed, turns every notice
//! into one normalized change event, and decides with glob filters which pipelines must start.
//!
//! See `ARCHITECTURE.md` for the map of the modules and the invariants they keep.

pub mod check;
pub mod config;
pub mod diag;
pub mod event;
pub mod explain;
pub mod filter;
pub mod glob;
pub mod pipeline;
pub mod repo;
pub mod secret;
pub mod yaml;
