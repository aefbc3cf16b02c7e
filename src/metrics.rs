//! Counters and histograms, rendered in the Prometheus text format for `GET /metrics`.
//!
//! Deliberately small: labelled counters in one map behind a mutex, and fixed-bucket
//! histograms. Label values come from configuration (receiver and pipeline names) or from a
//! closed set of words, never from a payload, so the number of series stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Inner {
    counters: BTreeMap<(&'static str, Labels), u64>,
    gauges: BTreeMap<(&'static str, Labels), i64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// All metrics of one process.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Help texts, by metric name.
const HELP: &[(&str, &str)] = &[
    (
        "switchyard_intake_total",
        "Change notices handed to the store, by source and outcome (accepted, duplicate, error).",
    ),
    (
        "switchyard_deliveries_total",
        "Webhook deliveries by receiver and outcome (accepted, duplicate, ignored, rejected).",
    ),
    (
        "switchyard_rejected_total",
        "Webhook deliveries refused, by receiver and reason.",
    ),
    (
        "switchyard_starts_total",
        "Start attempts by pipeline and outcome (succeeded, retry, dead).",
    ),
    ("switchyard_starts_in_flight", "Starts running now."),
    (
        "switchyard_detection_lag_seconds",
        "How long after the first source each source reported a change (0 for the first), by source.",
    ),
    (
        "switchyard_missed_total",
        "Changes only polling found: not announced by a push source that delivers for the repository, by source.",
    ),
    (
        "switchyard_poll_requests_total",
        "Requests polling made to git servers, by kind (ls-remote, fetch) and outcome (ok, error).",
    ),
    (
        "switchyard_poll_seconds",
        "Time of one poll of one repository (ref advertisement, and fetch and diff when a ref moved).",
    ),
    (
        "switchyard_sqs_messages_total",
        "SQS messages handled, by outcome (stored, ignored, malformed, failed); only stored and ignored ones are deleted.",
    ),
    (
        "switchyard_aws_requests_total",
        "Requests to AWS APIs, by API and outcome (ok, error).",
    ),
    (
        "switchyard_completions_total",
        "Changes whose changed paths were completed from a mirror, by outcome (completed, failed, timed_out).",
    ),
    (
        "switchyard_store_errors_total",
        "Store operations that failed.",
    ),
    (
        "switchyard_start_latency_seconds",
        "From the change being received to its first start attempt beginning, by pipeline.",
    ),
    (
        "switchyard_intake_seconds",
        "Time to store a change durably, by source.",
    ),
];

impl Metrics {
    /// Adds 1 to a counter.
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        let key = (name, own(labels));
        if let Ok(mut m) = self.inner.lock() {
            *m.counters.entry(key).or_default() += 1;
        }
    }

    /// Adds `delta` to a gauge.
    pub fn gauge_add(&self, name: &'static str, labels: &[(&'static str, &str)], delta: i64) {
        let key = (name, own(labels));
        if let Ok(mut m) = self.inner.lock() {
            *m.gauges.entry(key).or_default() += delta;
        }
    }

    /// Records one observation (seconds) in a histogram.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], seconds: f64) {
        let key = (name, own(labels));
        if let Ok(mut m) = self.inner.lock() {
            let h = m.histograms.entry(key).or_default();
            if h.counts.is_empty() {
                h.counts = vec![0; BUCKETS.len()];
            }
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    /// The value of a counter (for tests and reports).
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        let key = (name, own(labels));
        self.inner
            .lock()
            .map(|m| m.counters.get(&key).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(m) = self.inner.lock() else { return out };
        let mut last = "";
        let header = |out: &mut String, name: &'static str, kind: &str, last: &mut &'static str| {
            if *last != name {
                let help = HELP
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, h)| *h)
                    .unwrap_or("");
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                *last = name;
            }
        };
        for ((name, labels), value) in &m.counters {
            header(&mut out, name, "counter", &mut last);
            let _ = writeln!(out, "{name}{} {value}", fmt_labels(labels, None));
        }
        for ((name, labels), value) in &m.gauges {
            header(&mut out, name, "gauge", &mut last);
            let _ = writeln!(out, "{name}{} {value}", fmt_labels(labels, None));
        }
        for ((name, labels), h) in &m.histograms {
            header(&mut out, name, "histogram", &mut last);
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {}",
                    fmt_labels(labels, Some(&bound.to_string())),
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{} {}",
                fmt_labels(labels, Some("+Inf")),
                h.count
            );
            let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(labels, None), h.sum);
            let _ = writeln!(out, "{name}_count{} {}", fmt_labels(labels, None), h.count);
        }
        out
    }
}

fn own(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

fn fmt_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.inc(
            "switchyard_intake_total",
            &[("source", "webhook"), ("outcome", "accepted")],
        );
        m.inc(
            "switchyard_intake_total",
            &[("source", "webhook"), ("outcome", "accepted")],
        );
        m.observe("switchyard_intake_seconds", &[("source", "webhook")], 0.003);
        let text = m.render();
        assert!(
            text.contains("# TYPE switchyard_intake_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("switchyard_intake_total{source=\"webhook\",outcome=\"accepted\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("switchyard_intake_seconds_bucket{source=\"webhook\",le=\"0.0025\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("switchyard_intake_seconds_bucket{source=\"webhook\",le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("switchyard_intake_seconds_count{source=\"webhook\"} 1\n"),
            "{text}"
        );
        assert_eq!(
            m.counter(
                "switchyard_intake_total",
                &[("source", "webhook"), ("outcome", "accepted")]
            ),
            2
        );
    }
}
