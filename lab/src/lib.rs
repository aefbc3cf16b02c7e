//! switchyard's laboratory: every real part the integration tests, the benchmarks and
//! `switchyard bench` run against, written once. All of it runs on loopback.
//!
//! - [`git`]: the git command without user or system configuration, bare repositories, work
//!   clones ([`Work`]), `git daemon` ([`GitDaemon`]), smart HTTP behind Basic auth
//!   ([`GitHttp`]), OpenSSH's sshd ([`Sshd`]), and the bench's host of K repositories with its
//!   pusher ([`GitHost`], [`Pusher`]).
//! - [`moto`]: a real moto server ([`Moto`]), its queues and rules, the Lambda claims table.
//! - [`postgres`]: a real PostgreSQL server ([`Postgres`]) and fresh databases on it.
//! - [`serve`]: `switchyard serve` as a child process ([`Serve`]).
//! - [`runner`]: the HTTP runner pipeline starts reach, recording each arrival.
//! - [`runner_apis`]: the APIs of GitHub Actions, GitLab, Buildkite and Jenkins that runner
//!   targets call, checking requests as documented and answering with runs ([`RunnerApis`]).
//! - [`announce`]: how a push is announced: a signed GitHub delivery, a CodeCommit event; and
//!   Standard Webhooks signing.
//! - [`browser`]: a real headless Chromium driven over the DevTools protocol ([`Browser`]):
//!   pages loaded, read, submitted, with JavaScript off, screenshots, every error they report.
//! - [`http`]: one HTTP/1.1 request on a fresh connection.
//! - [`metrics`]: the one reader of `/metrics` (Prometheus text and OpenMetrics).
//! - [`otlp`]: an OTLP/HTTP collector stub recording the spans exported to it ([`Collector`]).
//! - [`stats`]: the one percentile (nearest rank) and summary every figure uses.
//! - [`procfs`]: CPU time of a process, its threads and of the machine, its write I/O and its
//!   children, from `/proc` (the `procfs` crate).
//! - [`cpu`]: the CPU use of a benchmark's servers, PostgreSQL and machine between two samples.
//! - [`load`]: the HTTP load generator: signed deliveries over keep-alive connections, in a
//!   closed loop or paced.
//! - [`process`]: free ports, children killed on drop, captured output.
//! - [`skip`]: the skip policy for a service that is not installed.
//! - [`bench`]: `switchyard bench`, the comparison of the three sources (binary
//!   `switchyard-bench`).

pub mod announce;
pub mod bench;
pub mod browser;
pub mod cpu;
pub mod git;
pub mod http;
pub mod load;
pub mod metrics;
pub mod moto;
pub mod otlp;
pub mod partition;
pub mod postgres;
pub mod process;
pub mod procfs;
pub mod runner;
pub mod runner_apis;
pub mod serve;
pub mod skip;
pub mod stats;

pub use announce::{codecommit_detail, github_push, standard_webhook_headers};
pub use browser::Browser;
pub use git::{GitDaemon, GitHost, GitHttp, Push, Pusher, Sshd, Work, bare, git};
pub use http::{Answer, request, try_exchange, try_request};
pub use metrics::Metrics;
pub use moto::Moto;
pub use otlp::{Collector, ExportedSpan};
pub use partition::Partition;
pub use postgres::Postgres;
pub use process::{Captured, Killed, free_port};
pub use runner::{Arrival, Recorder, Runner};
pub use runner_apis::{Api, Call, Reply, RunnerApis};
pub use serve::{Serve, ServeCommand};
pub use skip::{Missing, or_skip};
pub use stats::{Summary, percentile};

/// The region of the lab's AWS (moto) and of its CodeCommit identities.
pub const REGION: &str = "us-east-1";
/// The account of the lab's CodeCommit ARNs.
pub const ACCOUNT: &str = "123456789012";

/// Now, Unix milliseconds with a fraction.
pub fn now_ms() -> f64 {
    jiff::Timestamp::now().as_nanosecond() as f64 / 1e6
}
