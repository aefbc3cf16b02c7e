//! switchyard's decision path, with no I/O engine: the change event and repository identity,
//! the readers of outside input (provider payloads, EventBridge events), the glob engine and
//! both filter dialects, pipeline and target definitions, `switchyard.yaml`, secret references,
//! signatures, the strict loader every entry point shares, and the reports of `check` and
//! `explain`.
//!
//! Everything here is a pure function of its inputs, apart from reading the definition files,
//! `switchyard.yaml` and `env:`/`file:` references with std. The crate has no async runtime,
//! AWS SDK, SQLite, PostgreSQL, git2 or HTTP dependency, so Cargo refuses them here; the
//! `switchyard` crate does the I/O. See `ARCHITECTURE.md`.

pub mod check;
pub mod config;
pub mod diag;
pub mod envelope;
pub mod event;
pub mod explain;
pub mod filter;
pub mod glob;
pub mod load;
pub mod outcome;
pub mod pipeline;
pub mod providers;
pub mod repo;
pub mod secret;
pub mod signature;
pub mod target;
pub mod template;
pub mod trace;
pub mod yaml;
