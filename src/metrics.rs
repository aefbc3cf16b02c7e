//! The process's metrics, typed, on `prometheus-client`, exposed at `GET /metrics` in the
//! OpenMetrics text format (the Prometheus text exposition's standard form; counters' samples
//! end in `_total`, as they always did here).
//!
//! Each metric is one field: a counter, a gauge or a histogram, or a family of them keyed by
//! a label set. Counting is an atomic add on a series found by a read-locked hash lookup; no
//! label is allocated: label values come from configuration (receiver and pipeline names, held
//! as shared [`Name`]s) or from a closed set of words (`&'static str`), never from a payload,
//! so the number of series stays bounded.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

fn histograms<L: Clone + std::hash::Hash + Eq>() -> Histograms<L> {
    Histograms::new_with_constructor(histogram)
}

/// A configured name (a receiver's, a pipeline's) as a label value; cloning it is a reference
/// count, not an allocation.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Name(Arc<str>);

impl From<&str> for Name {
    fn from(name: &str) -> Name {
        Name(Arc::from(name))
    }
}

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceOutcome {
    source: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverOutcome {
    receiver: Name,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverReason {
    receiver: Name,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineOutcome {
    pipeline: Name,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineLabel {
    pipeline: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindOutcome {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiOutcome {
    api: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn ok_or_error(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

/// All metrics of one process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    intake: Family<SourceOutcome, Counter>,
    intake_seconds: Histograms<SourceLabel>,
    deliveries: Family<ReceiverOutcome, Counter>,
    rejected: Family<ReceiverReason, Counter>,
    starts: Family<PipelineOutcome, Counter>,
    starts_in_flight: Gauge,
    start_latency: Histograms<PipelineLabel>,
    detection_lag: Histograms<SourceLabel>,
    missed: Family<SourceLabel, Counter>,
    poll_requests: Family<KindOutcome, Counter>,
    poll_seconds: Histogram,
    sqs_messages: Family<OutcomeLabel, Counter>,
    aws_requests: Family<ApiOutcome, Counter>,
    completions: Family<OutcomeLabel, Counter>,
    store_errors: Counter,
    dispatch_passes: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            intake: Family::default(),
            intake_seconds: histograms(),
            deliveries: Family::default(),
            rejected: Family::default(),
            starts: Family::default(),
            starts_in_flight: Gauge::default(),
            start_latency: histograms(),
            detection_lag: histograms(),
            missed: Family::default(),
            poll_requests: Family::default(),
            poll_seconds: histogram(),
            sqs_messages: Family::default(),
            aws_requests: Family::default(),
            completions: Family::default(),
            store_errors: Counter::default(),
            dispatch_passes: Counter::default(),
        };
        // Names as exposed; a counter's samples get `_total` (OpenMetrics), so it is
        // registered without it. Help texts get their final period from the encoder.
        let r = &mut m.registry;
        r.register(
            "switchyard_intake",
            "Change notices handed to the store, by source and outcome (accepted, duplicate, error)",
            m.intake.clone(),
        );
        r.register(
            "switchyard_intake_seconds",
            "Time to store a change durably, by source",
            m.intake_seconds.clone(),
        );
        r.register(
            "switchyard_deliveries",
            "Webhook deliveries by receiver and outcome (accepted, duplicate, ignored, ping, rejected, unavailable)",
            m.deliveries.clone(),
        );
        r.register(
            "switchyard_rejected",
            "Webhook deliveries refused, by receiver and reason",
            m.rejected.clone(),
        );
        r.register(
            "switchyard_starts",
            "Start attempts by pipeline and outcome (succeeded, retry, dead; failed in Lambda)",
            m.starts.clone(),
        );
        r.register(
            "switchyard_starts_in_flight",
            "Starts running now",
            m.starts_in_flight.clone(),
        );
        r.register(
            "switchyard_start_latency_seconds",
            "From the change being received to its first start attempt beginning, by pipeline",
            m.start_latency.clone(),
        );
        r.register(
            "switchyard_detection_lag_seconds",
            "How long after the first source each source reported a change (0 for the first), by source",
            m.detection_lag.clone(),
        );
        r.register(
            "switchyard_missed",
            "Changes only polling found: not announced by a push source that delivers for the repository, by source",
            m.missed.clone(),
        );
        r.register(
            "switchyard_poll_requests",
            "Requests polling made to git servers, by kind (ls-remote, fetch) and outcome (ok, error)",
            m.poll_requests.clone(),
        );
        r.register(
            "switchyard_poll_seconds",
            "Time of one poll of one repository (ref advertisement, and fetch and diff when a ref moved)",
            m.poll_seconds.clone(),
        );
        r.register(
            "switchyard_sqs_messages",
            "SQS messages handled, by outcome (stored, ignored, malformed, failed); only stored and ignored ones are deleted",
            m.sqs_messages.clone(),
        );
        r.register(
            "switchyard_aws_requests",
            "Requests to AWS APIs, by API and outcome (ok, error)",
            m.aws_requests.clone(),
        );
        r.register(
            "switchyard_completions",
            "Changes whose changed paths were completed from a mirror, by outcome (completed, failed, timed_out)",
            m.completions.clone(),
        );
        r.register(
            "switchyard_store_errors",
            "Store operations that failed",
            m.store_errors.clone(),
        );
        r.register(
            "switchyard_dispatch_passes",
            "Passes of the dispatcher over the store's open starts (woken by new work, an ended attempt or its one-second sweep)",
            m.dispatch_passes.clone(),
        );
        m
    }
}

impl Metrics {
    /// One change notice handed to the store by `source`, and how it ended (`accepted`,
    /// `duplicate`, `error`).
    pub fn intake(&self, source: &'static str, outcome: &'static str) {
        self.intake
            .get_or_create(&SourceOutcome { source, outcome })
            .inc();
    }

    /// How long storing a change of `source` took.
    pub fn intake_seconds(&self, source: &'static str, seconds: f64) {
        self.intake_seconds
            .get_or_create(&SourceLabel { source })
            .observe(seconds);
    }

    /// One webhook delivery to `receiver`, and how it ended.
    pub fn delivery(&self, receiver: &Name, outcome: &'static str) {
        let receiver = receiver.clone();
        self.deliveries
            .get_or_create(&ReceiverOutcome { receiver, outcome })
            .inc();
    }

    /// One refused delivery to `receiver`, and why.
    pub fn rejected(&self, receiver: &Name, reason: &'static str) {
        let receiver = receiver.clone();
        self.rejected
            .get_or_create(&ReceiverReason { receiver, reason })
            .inc();
    }

    /// One start attempt of `pipeline`, and how it ended.
    pub fn start_attempt(&self, pipeline: &Name, outcome: &'static str) {
        let pipeline = pipeline.clone();
        self.starts
            .get_or_create(&PipelineOutcome { pipeline, outcome })
            .inc();
    }

    /// How long a change of `pipeline` waited from being received to its first attempt.
    pub fn start_latency(&self, pipeline: &Name, seconds: f64) {
        let pipeline = pipeline.clone();
        self.start_latency
            .get_or_create(&PipelineLabel { pipeline })
            .observe(seconds);
    }

    /// Starts running now: one more (`1`) or one fewer (`-1`).
    pub fn in_flight(&self, delta: i64) {
        self.starts_in_flight.inc_by(delta);
    }

    /// How long after the first source `source` reported a change.
    pub fn detection_lag(&self, source: &'static str, seconds: f64) {
        self.detection_lag
            .get_or_create(&SourceLabel { source })
            .observe(seconds);
    }

    /// A change only polling found, that push source `source` delivers for but never announced.
    pub fn missed(&self, source: &'static str) {
        self.missed.get_or_create(&SourceLabel { source }).inc();
    }

    /// How many changes push source `source` missed so far (`switchyard_missed_total`), for
    /// the status page.
    pub fn missed_total(&self, source: &'static str) -> u64 {
        self.missed
            .get(&SourceLabel { source })
            .map_or(0, |c| c.get())
    }

    /// One request polling made to a git server (`ls-remote`, `fetch`).
    pub fn poll_request(&self, kind: &'static str, ok: bool) {
        let outcome = ok_or_error(ok);
        self.poll_requests
            .get_or_create(&KindOutcome { kind, outcome })
            .inc();
    }

    /// How long one poll of one repository took.
    pub fn poll_seconds(&self, seconds: f64) {
        self.poll_seconds.observe(seconds);
    }

    /// One SQS message handled, and how (`stored`, `ignored`, `malformed`, `failed`).
    pub fn sqs_message(&self, outcome: &'static str) {
        self.sqs_messages
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// One request to an AWS API.
    pub fn aws_request(&self, api: &'static str, ok: bool) {
        let outcome = ok_or_error(ok);
        self.aws_requests
            .get_or_create(&ApiOutcome { api, outcome })
            .inc();
    }

    /// One completion of a change's paths from a mirror, and how it ended.
    pub fn completion(&self, outcome: &'static str) {
        self.completions
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// One store operation that failed.
    pub fn store_error(&self) {
        self.store_errors.inc();
    }

    /// One pass of the dispatcher over the store's open starts begins.
    pub fn dispatch_pass(&self) {
        self.dispatch_passes.inc();
    }

    /// Everything, in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of one series, as a scraper reads it.
    fn series(text: &str, line_start: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(line_start))
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn renders_the_same_series_names_in_openmetrics_text() {
        let m = Metrics::default();
        m.intake("webhook", "accepted");
        m.intake("webhook", "accepted");
        m.intake_seconds("webhook", 0.003);
        let hooks = Name::from("git\"hub\\");
        m.delivery(&hooks, "accepted");
        m.rejected(&hooks, "bad_signature");
        m.in_flight(1);
        m.in_flight(1);
        m.in_flight(-1);
        m.store_error();
        m.dispatch_pass();
        let text = m.render();
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            text.contains("# TYPE switchyard_intake counter\n"),
            "{text}"
        );
        let cases = [
            (
                "switchyard_intake_total{source=\"webhook\",outcome=\"accepted\"} ",
                2.0,
            ),
            (
                "switchyard_intake_seconds_bucket{le=\"0.0025\",source=\"webhook\"} ",
                0.0,
            ),
            (
                "switchyard_intake_seconds_bucket{le=\"0.005\",source=\"webhook\"} ",
                1.0,
            ),
            ("switchyard_intake_seconds_count{source=\"webhook\"} ", 1.0),
            (
                "switchyard_deliveries_total{receiver=\"git\\\"hub\\\\\",outcome=\"accepted\"} ",
                1.0,
            ),
            ("switchyard_starts_in_flight ", 1.0),
            ("switchyard_store_errors_total ", 1.0),
            ("switchyard_dispatch_passes_total ", 1.0),
        ];
        for (line, want) in cases {
            assert_eq!(series(&text, line), Some(want), "{line}\n{text}");
        }
        assert!(
            !text.contains(".."),
            "a help text ends in one period:\n{text}"
        );
    }

    #[test]
    fn missed_total_reads_what_the_counter_exposes() {
        let m = Metrics::default();
        assert_eq!(m.missed_total("webhook"), 0);
        m.missed("webhook");
        m.missed("webhook");
        m.missed("eventbridge");
        assert_eq!(m.missed_total("webhook"), 2);
        assert_eq!(m.missed_total("eventbridge"), 1);
        let text = m.render();
        assert_eq!(
            series(&text, "switchyard_missed_total{source=\"webhook\"} "),
            Some(2.0)
        );
    }
}
