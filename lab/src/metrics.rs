//! The one reader of switchyard's `/metrics`: the exposition parsed into series, then a
//! metric's sum over the series with some labels, one series' value, a histogram's mean.
//!
//! It reads both the classic Prometheus text format and OpenMetrics text: `# HELP`, `# TYPE`,
//! `# UNIT` and other comments are skipped (`# TYPE` is remembered), `# EOF` ends the text, and
//! a sample is `name{label="value",…} value [timestamp] [# exemplar]` with label values
//! escaped (`\\`, `\"`, `\n`) and values such as `+Inf` and `NaN`. A counter may be asked for
//! by its sample name (`switchyard_intake_total`) or, when `# TYPE` names it a counter, by its
//! family name (`switchyard_intake`), as OpenMetrics writers expose it.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Series {
    /// Whether every one of `labels` is among this series' labels.
    fn has(&self, labels: &[(&str, &str)]) -> bool {
        labels
            .iter()
            .all(|(k, v)| self.labels.iter().any(|(k2, v2)| k2 == k && v2 == v))
    }
}

/// A `/metrics` text, parsed.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    text: String,
    types: HashMap<String, String>,
    series: Vec<Series>,
}

impl Metrics {
    /// Parses an exposition; lines it cannot read are left out.
    pub fn parse(text: &str) -> Metrics {
        let mut types = HashMap::new();
        let mut series = Vec::new();
        for line in text.lines().map(|l| l.trim_end_matches('\r')) {
            if line.trim() == "# EOF" {
                break;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.split_whitespace();
                if let (Some("TYPE"), Some(name), Some(kind)) =
                    (words.next(), words.next(), words.next())
                {
                    types.insert(name.to_owned(), kind.to_owned());
                }
                continue;
            }
            if let Some(s) = sample(line) {
                series.push(s);
            }
        }
        Metrics {
            text: text.to_owned(),
            types,
            series,
        }
    }

    /// Every series.
    pub fn series(&self) -> &[Series] {
        &self.series
    }

    /// The series of metric `name`: its samples of that name, or of `name_total` when
    /// `# TYPE` declares `name` a counter.
    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Series> + 'a {
        let counter = self.types.get(name).is_some_and(|t| t == "counter");
        self.series.iter().filter(move |s| {
            s.name == name
                || (counter
                    && s.name
                        .strip_suffix("_total")
                        .is_some_and(|base| base == name))
        })
    }

    /// The sum of every series of metric `name` that has all of `labels` (no labels: every
    /// series); 0 when there is none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.named(name)
            .filter(|s| s.has(labels))
            .map(|s| s.value)
            .sum()
    }

    /// The value of the one series of metric `name` whose labels are exactly `labels` (in
    /// any order); `None` when there is no such series.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.named(name)
            .find(|s| s.labels.len() == labels.len() && s.has(labels))
            .map(|s| s.value)
    }

    /// The mean of histogram (or summary) `name` over every series: `name_sum / name_count`;
    /// `None` when it counted nothing.
    pub fn mean(&self, name: &str) -> Option<f64> {
        let count = self.sum(&format!("{name}_count"), &[]);
        (count > 0.0).then(|| self.sum(&format!("{name}_sum"), &[]) / count)
    }
}

/// `GET /metrics` of the server at `addr`, read; empty when it does not answer.
pub async fn read(addr: SocketAddr) -> Metrics {
    let text = crate::http::try_request(addr, "GET", "/metrics", &[], Vec::new())
        .await
        .map(|(_, text)| text)
        .unwrap_or_default();
    Metrics::parse(&text)
}

/// The dispatcher's passes over the store's open starts (`src/dispatch/mod.rs`).
pub const DISPATCH_PASSES: &str = "switchyard_dispatch_passes_total";

/// Waits until the dispatcher of the `serve` at `addr` (SQLite in `state_dir`) has passed over
/// the store twice since this call with no attempt in flight: what the store holds now has been
/// attempted. It rings the store's doorbell (as a command beside `serve` does after a write) so that the passes come at once instead of at the dispatcher's idle
/// sweep. `None` after `within`.
pub async fn dispatcher_idle(
    addr: SocketAddr,
    state_dir: &std::path::Path,
    within: Duration,
) -> Option<Metrics> {
    let deadline = Instant::now() + within;
    let passes = read(addr).await.sum(DISPATCH_PASSES, &[]) + 2.0;
    loop {
        switchyard::store::ring_doorbell(state_dir);
        let metrics = read(addr).await;
        let idle = metrics.sum("switchyard_starts_in_flight", &[]) == 0.0;
        if metrics.sum(DISPATCH_PASSES, &[]) >= passes && idle {
            return Some(metrics);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The text as it was read.
impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `name{labels} value [timestamp] [# exemplar]`.
fn sample(line: &str) -> Option<Series> {
    let line = line.trim_start();
    let end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let (name, mut rest) = line.split_at(end);
    if name.is_empty() {
        return None;
    }
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(inner)?;
        labels = parsed;
        rest = after;
    }
    let value = number(rest.split_whitespace().next()?)?;
    Some(Series {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The labels after `{`, up to and with the closing `}`; what follows it.
fn label_set(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start();
        if let Some(after) = text.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after) = text.split_once('=')?;
        let mut chars = after.trim_start().strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let close = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim().to_owned(), value));
        text = after.trim_start()[1 + close + 1..].trim_start();
        text = text.strip_prefix(',').unwrap_or(text);
    }
}

/// A sample value: a float, or `+Inf`, `-Inf`, `NaN` in any case.
fn number(word: &str) -> Option<f64> {
    match word.to_ascii_lowercase().as_str() {
        "+inf" | "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => word.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// switchyard's own exposition (classic Prometheus text).
    const PROMETHEUS: &str = "# HELP switchyard_poll_requests_total Requests.\n# TYPE switchyard_poll_requests_total counter\nswitchyard_poll_requests_total{kind=\"ls-remote\",outcome=\"ok\"} 10\nswitchyard_poll_requests_total{kind=\"fetch\",outcome=\"ok\"} 3\nswitchyard_poll_requests_total{kind=\"fetch\",outcome=\"error\"} 2\nswitchyard_poll_requests_total_other 7\nswitchyard_starts_in_flight 0\n# TYPE switchyard_intake_seconds histogram\nswitchyard_intake_seconds_bucket{source=\"webhook\",le=\"+Inf\"} 4\nswitchyard_intake_seconds_sum{source=\"webhook\"} 0.5\nswitchyard_intake_seconds_count{source=\"webhook\"} 4\nswitchyard_intake_seconds_sum{source=\"poll\"} 1.5\nswitchyard_intake_seconds_count{source=\"poll\"} 4\n";

    /// The same counters as the prometheus-client crate writes them (OpenMetrics).
    const OPENMETRICS: &str = "# HELP switchyard_poll_requests Requests.\n# TYPE switchyard_poll_requests counter\nswitchyard_poll_requests_total{kind=\"ls-remote\",outcome=\"ok\"} 10 1700000000.5\nswitchyard_poll_requests_total{kind=\"fetch\",outcome=\"ok\"} 3 # {trace_id=\"a b\"} 1.0\nswitchyard_poll_requests_created{kind=\"fetch\",outcome=\"ok\"} 1700000000\n# UNIT switchyard_lag_seconds seconds\n# TYPE switchyard_lag_seconds gauge\nswitchyard_lag_seconds{note=\"a \\\"quoted\\\", spaced} value\\\\\",path=\"x\"} +Inf\n# EOF\nswitchyard_after_eof 1\n";

    #[test]
    fn sums_add_the_series_of_a_name_with_the_labels_asked_for() {
        let m = Metrics::parse(PROMETHEUS);
        let name = "switchyard_poll_requests_total";
        assert_eq!(m.sum(name, &[]), 15.0);
        assert_eq!(m.sum(name, &[("kind", "fetch")]), 5.0);
        assert_eq!(m.sum(name, &[("outcome", "ok"), ("kind", "fetch")]), 3.0);
        assert_eq!(m.sum(name, &[("kind", "clone")]), 0.0);
        assert_eq!(m.sum("missing", &[]), 0.0);
        assert_eq!(m.sum("switchyard_starts_in_flight", &[]), 0.0);
    }

    #[test]
    fn a_value_is_the_series_with_exactly_those_labels() {
        let m = Metrics::parse(PROMETHEUS);
        let name = "switchyard_poll_requests_total";
        assert_eq!(
            m.value(name, &[("outcome", "error"), ("kind", "fetch")]),
            Some(2.0)
        );
        assert_eq!(m.value(name, &[("kind", "fetch")]), None);
        assert_eq!(m.value("switchyard_starts_in_flight", &[]), Some(0.0));
        assert_eq!(
            m.value("switchyard_poll_requests_total_other", &[]),
            Some(7.0)
        );
    }

    #[test]
    fn a_histogram_mean_is_its_sum_over_its_count() {
        let m = Metrics::parse(PROMETHEUS);
        assert_eq!(m.mean("switchyard_intake_seconds"), Some(0.25));
        assert_eq!(m.mean("switchyard_missing_seconds"), None);
    }

    #[test]
    fn openmetrics_counters_timestamps_exemplars_and_escapes_are_read() {
        let m = Metrics::parse(OPENMETRICS);
        for name in ["switchyard_poll_requests", "switchyard_poll_requests_total"] {
            assert_eq!(m.sum(name, &[]), 13.0, "{name}");
            assert_eq!(m.sum(name, &[("kind", "fetch")]), 3.0, "{name}");
        }
        let lag = m.value(
            "switchyard_lag_seconds",
            &[("path", "x"), ("note", "a \"quoted\", spaced} value\\")],
        );
        assert_eq!(lag, Some(f64::INFINITY));
        assert_eq!(
            m.sum("switchyard_after_eof", &[]),
            0.0,
            "# EOF ends the text"
        );
        assert!(m.to_string().starts_with("# HELP"));
    }

    #[test]
    fn lines_that_are_not_samples_are_left_out() {
        let m = Metrics::parse("\n{x=\"1\"} 2\nbroken{x=1} 3\nnovalue\nok 1.5e3\r\n");
        let names: Vec<&str> = m.series().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ok"]);
        assert_eq!(m.sum("ok", &[]), 1500.0);
    }
}
