//! The sources of change notices. Each turns its notices into change events and hands them to
//! the [`Intake`](crate::intake::Intake); none acknowledges a notice before the intake answered.
//!
//! - `webhook`: the receivers of every provider (signatures, redeliveries, the answers), which
//!   `serve`'s router and Lambda's function URL share;
//! - `providers`: provider payloads (GitHub, GitLab, Bitbucket, Gitea) to change events, pure
//!   (in `switchyard-core`, re-exported here);
//! - `eventbridge`: the SQS consumer (`consumer`) and the events it understands (`envelope`:
//!   CodeCommit, GitHub via AWS's quick start, `switchyard.change/v1`; pure, in
//!   `switchyard-core`);
//! - `poll`: polling git servers (one job a file: schedule, pass, moves, completion of other
//!   sources' paths, the git2 side, the health record).

pub mod eventbridge;
pub mod poll;
pub use switchyard_core::providers;
pub mod webhook;
