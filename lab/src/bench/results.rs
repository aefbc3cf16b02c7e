//! What `switchyard bench` measured: the JSON file of every measurement, and the summaries the
//! table and the plots are drawn from. Times are milliseconds; rates are per hour.

use serde::{Deserialize, Serialize};

/// One run of the laboratory.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Results {
    /// When the run began (RFC 3339).
    pub started_at: String,
    pub machine: Machine,
    pub settings: Settings,
    /// Each source alone, all three together, and all three with announcements dropped.
    pub scenarios: Vec<Scenario>,
    /// Polling alone at each interval of the sweep: cost against latency.
    pub sweep: Vec<SweepPoint>,
    /// moto's own share of the events path: PutEvents returned → the rule's message is in the
    /// queue (its `SentTimestamp`), over every event the lab put.
    pub moto_delivery_ms: Summary,
}

/// Where it ran.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub os: String,
    pub switchyard_version: String,
}

/// What the run was asked to do.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Settings {
    pub quick: bool,
    /// Repositories on the git daemon (K).
    pub repos: usize,
    /// Pushes per scenario (N).
    pub pushes: usize,
    /// Pushes per second.
    pub rate_per_s: f64,
    /// The polling interval of the scenarios that poll.
    pub interval_ms: u64,
    /// The polling intervals of the sweep.
    pub sweep_ms: Vec<u64>,
    /// The share of webhook / event announcements dropped in the fault scenario.
    pub drop_webhooks: f64,
    pub drop_events: f64,
    /// The repository count the request rates are extrapolated to.
    pub extrapolate_repos: usize,
}

/// One scenario: which sources were on, what every push became.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Scenario {
    /// `webhook`, `events`, `poll`, `all`, `all+faults`, or `poll@5s` in the sweep.
    pub name: String,
    /// The sources switchyard listened with: `webhook`, `events`, `poll`.
    pub sources: Vec<String>,
    /// The polling interval, when `poll` is on.
    pub interval_ms: Option<u64>,
    pub drop_webhooks: f64,
    pub drop_events: f64,
    /// Wall time from the first push to the end of the drain.
    pub duration_s: f64,
    /// Pushes made.
    pub pushes: usize,
    /// Pushes whose pipeline started.
    pub started: usize,
    /// Pushes whose pipeline never started (lost): must be 0.
    pub missed: usize,
    /// Pipeline starts beyond the first of a push (same push started again): must be 0.
    pub started_twice: usize,
    /// Push landed → change event made by the first source that reported it (its
    /// `received_at`, stamped just before the store commits it).
    pub detection_ms: Summary,
    /// Push landed → the pipeline's start request reached the runner.
    pub trigger_ms: Summary,
    /// The same, split by the source that reported each change first.
    pub by_source: Vec<SourceStats>,
    /// Requests switchyard made to the git host (ref advertisements and fetches).
    pub git_requests: u64,
    /// Requests switchyard made to AWS (ReceiveMessage, DeleteMessageBatch, ...).
    pub aws_requests: u64,
    /// Notices switchyard received: webhook deliveries and SQS messages.
    pub notices: u64,
    /// The request rates at this push rate, per hour.
    pub git_requests_per_hour: f64,
    pub aws_requests_per_hour: f64,
    /// The same extrapolated to `settings.extrapolate_repos` repositories at the same push
    /// rate: ref advertisements grow with repositories / interval, the rest with the pushes.
    pub git_requests_per_hour_extrapolated: f64,
    pub aws_requests_per_hour_extrapolated: f64,
    /// CPU time of the `switchyard serve` process (user + system) over the scenario.
    pub cpu_s: f64,
    /// `cpu_s` per started change, in milliseconds.
    pub cpu_ms_per_change: f64,
    /// Pushes whose every announcement was dropped, which only polling could find.
    pub only_poll_could_find: usize,
    /// Of those, found and started (by polling): must equal `only_poll_could_find`.
    pub caught_by_poll: usize,
    /// Their trigger latency: how late the backstop was.
    pub caught_trigger_ms: Summary,
    /// Every push.
    pub samples: Vec<Sample>,
}

/// Latencies of the changes one source reported first.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SourceStats {
    /// `webhook`, `eventbridge` or `poll` (the change event's `source.kind`).
    pub source: String,
    /// Changes this source reported first.
    pub first: usize,
    pub detection_ms: Summary,
    pub trigger_ms: Summary,
}

/// One push and what became of it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sample {
    pub repository: String,
    pub git_ref: String,
    pub sha: String,
    /// The push landed, Unix milliseconds.
    pub pushed_at_ms: f64,
    /// Whether the lab announced it by webhook / by event (false when dropped or off).
    pub webhook_sent: bool,
    pub event_sent: bool,
    /// The source that reported it first, when it started.
    pub source: Option<String>,
    pub detection_ms: Option<f64>,
    pub trigger_ms: Option<f64>,
    /// Starts of this push the runner received (1 is right).
    pub starts: usize,
}

/// One point of the polling sweep.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SweepPoint {
    pub interval_ms: u64,
    pub trigger_ms: Summary,
    pub git_requests_per_hour: f64,
    pub git_requests_per_hour_extrapolated: f64,
    pub cpu_ms_per_change: f64,
    pub missed: usize,
}

/// Order statistics of a set of milliseconds (nearest-rank percentiles).
pub use crate::stats::Summary;
