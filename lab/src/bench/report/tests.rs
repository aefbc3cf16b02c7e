//! Tests of the report: the table, the verdicts, the Markdown and the plots.

use std::path::Path;

use super::*;
use crate::bench::results::{Machine, Sample, Settings, SourceStats, SweepPoint};

/// A scenario whose pushes started after `trigger` ms each.
fn scenario(name: &str, sources: &[&str], trigger: &[f64]) -> Scenario {
    let samples: Vec<Sample> = trigger
        .iter()
        .enumerate()
        .map(|(i, t)| Sample {
            repository: "repo-0".into(),
            git_ref: "refs/heads/main".into(),
            sha: format!("{i:040x}"),
            pushed_at_ms: 1.7e12 + i as f64 * 100.0,
            webhook_sent: sources.contains(&"webhook"),
            event_sent: sources.contains(&"events"),
            source: Some(sources[0].replace("events", "eventbridge")),
            detection_ms: Some(t * 0.8),
            trigger_ms: Some(*t),
            starts: 1,
        })
        .collect();
    let by_source = sources
        .iter()
        .enumerate()
        .map(|(i, s)| SourceStats {
            source: s.replace("events", "eventbridge"),
            first: if i == 0 { trigger.len() } else { 0 },
            ..SourceStats::default()
        })
        .collect();
    Scenario {
        name: name.into(),
        sources: sources.iter().map(|s| (*s).to_owned()).collect(),
        interval_ms: sources.contains(&"poll").then_some(1_000),
        pushes: trigger.len(),
        started: trigger.len(),
        detection_ms: Summary::of(&trigger.iter().map(|t| t * 0.8).collect::<Vec<_>>()),
        trigger_ms: Summary::of(trigger),
        by_source,
        git_requests: 3_600,
        aws_requests: 120,
        git_requests_per_hour: 3_600.0,
        aws_requests_per_hour: 120.0,
        git_requests_per_hour_extrapolated: 36_000_000.0,
        aws_requests_per_hour_extrapolated: 1_200.0,
        cpu_s: 0.5,
        cpu_ms_per_change: 0.42,
        samples,
        ..Scenario::default()
    }
}

fn spread(from: f64, to: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| from + (to - from) * i as f64 / (n - 1) as f64)
        .collect()
}

fn synthetic() -> Results {
    let mut faults = scenario(
        "all+faults",
        &["webhook", "events", "poll"],
        &spread(2.0, 900.0, 50),
    );
    faults.drop_webhooks = 0.2;
    faults.drop_events = 0.2;
    faults.only_poll_could_find = 3;
    faults.caught_by_poll = 3;
    faults.caught_trigger_ms = Summary::of(&[400.0, 600.0, 900.0]);
    faults.started_twice = 1;
    let mut webhook = scenario("webhook", &["webhook"], &spread(1.0, 8.0, 50));
    webhook.git_requests_per_hour_extrapolated = 0.0;
    webhook.aws_requests_per_hour_extrapolated = 0.0;
    let mut events = scenario("events", &["events"], &spread(200.0, 300.0, 50));
    events.git_requests_per_hour_extrapolated = 0.0;
    events.aws_requests_per_hour_extrapolated = 2_400.0;
    let sweep = [(1_000, 500.0), (5_000, 2_500.0), (30_000, 15_000.0)]
        .into_iter()
        .map(|(interval_ms, p50)| SweepPoint {
            interval_ms,
            trigger_ms: Summary {
                n: 100,
                p50,
                p90: p50 * 1.7,
                p99: p50 * 1.9,
                max: p50 * 2.0,
                mean: p50,
            },
            git_requests_per_hour: 3.6e6 / interval_ms as f64,
            git_requests_per_hour_extrapolated: 3.6e9 / interval_ms as f64,
            cpu_ms_per_change: 1.5,
            missed: 0,
        })
        .collect();
    Results {
        started_at: "2026-01-01T00:00:00Z".into(),
        machine: Machine {
            cores: 2,
            os: "linux".into(),
            switchyard_version: "0.1.0".into(),
        },
        settings: Settings {
            quick: true,
            repos: 10,
            pushes: 50,
            rate_per_s: 10.0,
            interval_ms: 1_000,
            sweep_ms: vec![1_000, 5_000, 30_000],
            drop_webhooks: 0.2,
            drop_events: 0.2,
            extrapolate_repos: 10_000,
        },
        scenarios: vec![
            webhook,
            events,
            scenario("poll", &["poll"], &spread(300.0, 1_100.0, 50)),
            scenario("all", &["webhook", "events", "poll"], &spread(1.0, 9.0, 50)),
            faults,
        ],
        sweep,
        moto_delivery_ms: Summary::of(&spread(150.0, 250.0, 100)),
    }
}

#[test]
fn numbers_are_readable() {
    #[rustfmt::skip]
    let millis = [
        (3.25, "3.2"), (99.94, "99.9"), (100.4, "100"), (12_345.6, "12,346"), (f64::NAN, "-"),
    ];
    for (x, want) in millis {
        assert_eq!(ms(x), want, "{x}");
    }
    #[rustfmt::skip]
    let rates = [
        (0.0, "0"), (2.5, "2.5"), (9_999.0, "9,999"), (10_000.0, "10k"), (12_345.0, "12.3k"),
        (456_789.0, "457k"), (7_800_000.0, "7.8M"), (36e6, "36M"), (360e6, "360M"),
    ];
    for (x, want) in rates {
        assert_eq!(rate(x), want, "{x}");
    }
    #[rustfmt::skip]
    let intervals = [(500, "500ms"), (1_000, "1s"), (2_500, "2.5s"), (300_000, "5m")];
    for (ms, want) in intervals {
        assert_eq!(interval(ms), want);
    }
}

#[test]
fn the_table_names_every_scenario_and_ends_with_the_verdicts() {
    let text = table(&synthetic());
    println!("{text}\n{}", markdown(&synthetic()));
    for name in ["webhook", "events", "poll", "all", "all+faults"] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name}:\n{text}"
        );
    }
    assert!(
        text.contains("first reporter: webhook 50, eventbridge 0, poll 0"),
        "{text}"
    );
    assert!(
        text.contains(
            "all+faults: only polling could find 3, caught 3, how late: p50 600 / max 900 ms"
        ),
        "{text}"
    );
    assert!(text.contains("polling sweep"), "{text}");
    assert!(text.contains("verdict: "), "{text}");
    assert!(
        text.contains("PASS  webhook: trigger p99 < 10 ms"),
        "{text}"
    );
    assert!(
        text.contains("FAIL  all+faults: no push started twice"),
        "{text}"
    );
    // Columns line up: the last column is right-aligned, so every line of the scenario
    // table (head, rule, five rows) is as wide as the others.
    let lines: Vec<&str> = text.lines().collect();
    let rule = lines.iter().position(|l| l.starts_with("---")).unwrap_or(1);
    let widths: Vec<usize> = lines[rule - 1..rule + 6]
        .iter()
        .map(|l| l.chars().count())
        .collect();
    assert!(widths.iter().all(|w| *w == widths[0]), "{widths:?}\n{text}");
}

#[test]
fn verdicts_check_each_target() {
    let verdicts = verdicts(&synthetic());
    let pass = |target: &str| {
        verdicts
            .iter()
            .find(|v| v.target == target)
            .unwrap_or_else(|| panic!("no verdict {target:?} in {verdicts:#?}"))
            .pass
    };
    assert!(pass("webhook: trigger p99 < 10 ms"));
    assert!(pass("events: trigger p99 - moto delivery p99 < 100 ms"));
    assert!(pass(
        "poll every 1s: trigger p50 in [250, 750] ms, p99 < 1,200 ms"
    ));
    assert!(pass(
        "sweep, poll every 30s: trigger p50 in [7,500, 22,500] ms, p99 < 30,200 ms"
    ));
    assert!(pass("all: no push started twice"));
    assert!(!pass("all+faults: no push started twice"));
    assert!(pass("all+faults: no push missed"));

    let mut results = synthetic();
    results.scenarios[0].trigger_ms.p99 = 12.0;
    results.scenarios[1].missed = 2;
    results.sweep[1].trigger_ms.p99 = 5_300.0;
    let failed: Vec<String> = verdicts_failed(&results);
    assert_eq!(
        failed,
        [
            "webhook: trigger p99 < 10 ms",
            "sweep, poll every 5s: trigger p50 in [1,250, 3,750] ms, p99 < 5,200 ms",
            "events: no push missed",
            "all+faults: no push started twice",
        ]
    );
    assert!(super::verdicts(&Results::default()).is_empty());
}

fn verdicts_failed(results: &Results) -> Vec<String> {
    verdicts(results)
        .into_iter()
        .filter(|v| !v.pass)
        .map(|v| v.target)
        .collect()
}

#[test]
fn a_latency_target_fails_when_nothing_started() {
    let mut results = synthetic();
    results.scenarios[0].trigger_ms = Summary::default();
    let v = &verdicts(&results)[0];
    assert_eq!(
        (v.measured.as_str(), v.pass),
        ("no pipeline started", false)
    );
}

#[test]
fn markdown_has_the_header_and_the_tables() {
    let md = markdown(&synthetic());
    let first = md.lines().next().unwrap_or_default();
    assert!(first.contains("2 cores (linux)"), "{first}");
    assert!(
        first.contains("extrapolated to 10,000 repositories"),
        "{first}"
    );
    assert!(md.contains("| all+faults "), "{md}");
    assert!(
        md.contains("| FAIL | all+faults: no push started twice"),
        "{md}"
    );
    assert!(md.contains(" 30s |"), "{md}");
}

#[test]
fn plots_write_two_svg_files() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("plots");
    let paths = plots(&synthetic(), &out).unwrap_or_else(|e| panic!("{e:#}"));
    let names: Vec<_> = paths.iter().filter_map(|p| p.file_name()).collect();
    assert_eq!(names, ["latency-cdf.svg", "cost-vs-latency.svg"]);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{e}"));
    let cdf = read(&paths[0]);
    assert!(cdf.contains("<svg"));
    assert!(cdf.contains("push → pipeline start"));
    for name in ["webhook", "events", "poll", "all+faults", "<polyline"] {
        assert!(cdf.contains(name), "{name}");
    }
    let cost = read(&paths[1]);
    assert!(cost.contains("<svg"));
    for name in [
        "polling p50",
        "polling p99",
        "webhook p99",
        "events p50",
        "\n30s\n",
    ] {
        assert!(cost.contains(name), "{name}");
    }
}

#[test]
fn plots_of_nothing_say_so() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let paths = plots(&Results::default(), dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(paths.len(), 2);
    let cdf = std::fs::read_to_string(&paths[0]).unwrap_or_else(|e| panic!("{e}"));
    assert!(cdf.contains("no trigger latency measured"));

    // One sweep point, all values zero, samples without latencies: no panic either.
    let mut results = synthetic();
    results.sweep.truncate(1);
    results.sweep[0] = SweepPoint {
        interval_ms: 1_000,
        trigger_ms: Summary::of(&[0.0]),
        ..SweepPoint::default()
    };
    for s in &mut results.scenarios {
        s.git_requests_per_hour_extrapolated = 0.0;
        s.aws_requests_per_hour_extrapolated = 0.0;
        s.trigger_ms = Summary::of(&[0.0]);
        for sample in &mut s.samples {
            sample.trigger_ms = None;
        }
    }
    plots(&results, dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
}
