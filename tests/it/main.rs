//! Integration tests: the `switchyard` binary and library against real files in temp dirs and the
//! lab's real parts (git servers, moto, PostgreSQL, the runner and the runners' APIs, headless
//! Chromium), one module per subject; each module's `//!` says what it holds. `support.rs` keeps
//! what only tests need: projects, the one way a test runs the binary (with its environment and
//! without the shell's), the in-process `TestServer`, change events, waits on counters.

mod aws_targets;
mod bench;
mod changes;
mod check;
mod crash;
mod deploy;
mod eventbridge;
mod explain;
mod lambda;
mod outbox;
mod poll;
mod poll_git;
mod providers;
mod replicas;
mod runner_apis;
mod serve;
mod status;
mod support;
mod tidy;
mod traces;
