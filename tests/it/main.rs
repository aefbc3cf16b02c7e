//! Integration tests: the `switchyard` binary and library against real files in temp dirs.

mod check;
mod crash;
mod explain;
mod outbox;
mod providers;
mod serve;
mod support;
