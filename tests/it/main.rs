//! Integration tests: the `switchyard` binary and library against real files in temp dirs.

mod check;
mod crash;
mod explain;
mod serve;
mod support;
