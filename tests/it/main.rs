//! Integration tests: the `switchyard` binary and library against real files in temp dirs.

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
