//! The report of a bench run: the table, the Markdown for the README, the plots.
//!
//! [`table`] is what the terminal shows at the end of a run, [`markdown`] the same tables for the
//! README, [`verdicts`] the targets checked one by one (both texts end with them), and
//! [`plots`] the two SVG charts. Every function takes any [`Results`], even an empty one: a
//! missing scenario is left out, an empty series is skipped, an empty chart says so.

use std::fmt::Write as _;

use super::results::{Results, Scenario, Summary};
use crate::stats::thousands;

/// The scenarios the latency CDF draws, in this order.
const CDF_SCENARIOS: &[&str] = &["webhook", "events", "poll", "all", "all+faults"];
/// The scenarios the cost chart draws as single points.
const PUSH_SCENARIOS: &[&str] = &["webhook", "events"];
/// Webhook target: trigger p99 under this many ms.
const WEBHOOK_P99_MS: f64 = 10.0;
/// Events target: trigger p99 minus moto's delivery p99 under this many ms.
const EVENTS_OVERHEAD_MS: f64 = 100.0;
/// Polling target: p99 under the interval plus this many ms.
const POLL_SLACK_MS: f64 = 200.0;
/// Polling target: p50 within these fractions of the interval.
const POLL_P50_RANGE: (f64, f64) = (0.25, 0.75);
/// The smallest value a log axis shows: latencies (ms) and rates (per hour) are clamped to it.
const LOG_FLOOR_MS: f64 = 0.01;
const LOG_FLOOR_RATE: f64 = 1.0;
/// A CDF line keeps at most this many points.
const CDF_POINTS: usize = 2000;

/// One target of the issue, checked against a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// What must hold: `webhook: trigger p99 < 10 ms`.
    pub target: String,
    /// What was measured: `3.2 ms`.
    pub measured: String,
    pub pass: bool,
}

impl Verdict {
    fn new(target: String, measured: String, pass: bool) -> Verdict {
        Verdict {
            target,
            measured,
            pass,
        }
    }
}

// ---- Numbers. ----

/// Milliseconds: one decimal under 100, else an integer with thousands separators.
fn ms(x: f64) -> String {
    if !x.is_finite() {
        "-".to_owned()
    } else if x.abs() < 100.0 {
        format!("{x:.1}")
    } else {
        thousands(x.round() as i64)
    }
}

/// A rate or a count: exact up to 10,000 (one decimal under 10 when it has one), then `12.3k`,
/// `456k`, `7.8M` (`10k`, not `10.0k`).
fn rate(x: f64) -> String {
    scaled(x).replace(".0k", "k").replace(".0M", "M")
}

fn scaled(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_owned();
    }
    let a = x.abs();
    if a < 10.0 && x.fract() != 0.0 {
        format!("{x:.1}")
    } else if a < 10_000.0 {
        thousands(x.round() as i64)
    } else if a < 100_000.0 {
        format!("{:.1}k", x / 1e3)
    } else if a < 1e6 {
        format!("{:.0}k", x / 1e3)
    } else if a < 1e8 {
        format!("{:.1}M", x / 1e6)
    } else {
        format!("{:.0}M", x / 1e6)
    }
}

fn count(n: usize) -> String {
    thousands(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A polling interval: `500ms`, `1s`, `2.5s`, `5m`.
fn interval(ms: u64) -> String {
    if ms >= 60_000 && ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms >= 1_000 && ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else if ms >= 1_000 {
        format!("{:.1}s", ms as f64 / 1e3)
    } else {
        format!("{ms}ms")
    }
}

fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// The interval a scenario polled at, when it polled.
fn poll_interval(results: &Results, scenario: &Scenario) -> Option<u64> {
    scenario
        .interval_ms
        .or((results.settings.interval_ms > 0).then_some(results.settings.interval_ms))
        .filter(|&ms| ms > 0)
}

/// `webhook, events, poll 1s`.
fn sources(results: &Results, scenario: &Scenario) -> String {
    let names: Vec<String> = scenario
        .sources
        .iter()
        .map(|s| match poll_interval(results, scenario) {
            Some(ms) if s == "poll" => format!("poll {}", interval(ms)),
            _ => s.clone(),
        })
        .collect();
    names.join("+")
}

/// `10k` repositories, for column heads.
fn repos_short(results: &Results) -> String {
    rate(results.settings.extrapolate_repos as f64)
}

// ---- Tables. ----

#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// A table drawn as aligned plain text or as GitHub Markdown.
struct Grid {
    head: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Grid {
    fn new(head: &[(&str, Align)]) -> Grid {
        Grid {
            head: head.iter().map(|(h, a)| ((*h).to_owned(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    fn widths(&self) -> Vec<usize> {
        self.head
            .iter()
            .enumerate()
            .map(|(i, (h, _))| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.chars().count())
                    .chain([h.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    fn pad(cell: &str, width: usize, align: Align) -> String {
        match align {
            Align::Left => format!("{cell:<width$}"),
            Align::Right => format!("{cell:>width$}"),
        }
    }

    fn text(&self, out: &mut String) {
        let widths = self.widths();
        let line = |cells: Vec<String>| cells.join("  ").trim_end().to_owned();
        let head = self
            .head
            .iter()
            .zip(&widths)
            .map(|((h, a), w)| Grid::pad(h, *w, *a))
            .collect();
        let _ = writeln!(out, "{}", line(head));
        let rule = widths.iter().map(|w| "-".repeat(*w)).collect();
        let _ = writeln!(out, "{}", line(rule));
        for row in &self.rows {
            let cells = self
                .head
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, ((_, a), w))| Grid::pad(row.get(i).map_or("", String::as_str), *w, *a))
                .collect();
            let _ = writeln!(out, "{}", line(cells));
        }
    }

    fn markdown(&self, out: &mut String) {
        let escape = |c: &str| c.replace('|', "\\|");
        let head: Vec<String> = self.head.iter().map(|(h, _)| escape(h)).collect();
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|c| escape(c)).collect())
            .collect();
        let escaped = Grid {
            head: head
                .into_iter()
                .zip(self.head.iter().map(|(_, a)| *a))
                .collect(),
            rows,
        };
        let widths: Vec<usize> = escaped.widths().iter().map(|w| (*w).max(3)).collect();
        let line = |cells: Vec<String>| format!("| {} |", cells.join(" | "));
        let head = escaped
            .head
            .iter()
            .zip(&widths)
            .map(|((h, a), w)| Grid::pad(h, *w, *a))
            .collect();
        let _ = writeln!(out, "{}", line(head));
        let rule = escaped
            .head
            .iter()
            .zip(&widths)
            .map(|((_, a), w)| match a {
                Align::Left => format!(":{}", "-".repeat(w - 1)),
                Align::Right => format!("{}:", "-".repeat(w - 1)),
            })
            .collect();
        let _ = writeln!(out, "{}", line(rule));
        for row in &escaped.rows {
            let cells = escaped
                .head
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, ((_, a), w))| Grid::pad(row.get(i).map_or("", String::as_str), *w, *a))
                .collect();
            let _ = writeln!(out, "{}", line(cells));
        }
    }
}

fn scenario_grid(results: &Results) -> Grid {
    use Align::{Left, Right};
    let k = repos_short(results);
    let (git_k, aws_k) = (format!("git/h @{k}"), format!("AWS/h @{k}"));
    let mut grid = Grid::new(&[
        ("scenario", Left),
        ("sources", Left),
        ("pushes", Right),
        ("started", Right),
        ("missed", Right),
        ("twice", Right),
        ("detect p50", Right),
        ("p99", Right),
        ("trigger p50", Right),
        ("p90", Right),
        ("p99", Right),
        ("max", Right),
        ("git/h", Right),
        ("AWS/h", Right),
        (git_k.as_str(), Right),
        (aws_k.as_str(), Right),
        ("CPU ms/change", Right),
    ]);
    for s in &results.scenarios {
        grid.rows.push(vec![
            s.name.clone(),
            sources(results, s),
            count(s.pushes),
            count(s.started),
            count(s.missed),
            count(s.started_twice),
            ms(s.detection_ms.p50),
            ms(s.detection_ms.p99),
            ms(s.trigger_ms.p50),
            ms(s.trigger_ms.p90),
            ms(s.trigger_ms.p99),
            ms(s.trigger_ms.max),
            rate(s.git_requests_per_hour),
            rate(s.aws_requests_per_hour),
            rate(s.git_requests_per_hour_extrapolated),
            rate(s.aws_requests_per_hour_extrapolated),
            format!("{:.2}", s.cpu_ms_per_change),
        ]);
    }
    grid
}

fn sweep_grid(results: &Results) -> Grid {
    use Align::Right;
    let git_k = format!("git/h @{}", repos_short(results));
    let mut grid = Grid::new(&[
        ("interval", Right),
        ("trigger p50", Right),
        ("p99", Right),
        ("max", Right),
        ("git/h", Right),
        (git_k.as_str(), Right),
        ("CPU ms/change", Right),
        ("missed", Right),
    ]);
    for p in &results.sweep {
        grid.rows.push(vec![
            interval(p.interval_ms),
            ms(p.trigger_ms.p50),
            ms(p.trigger_ms.p99),
            ms(p.trigger_ms.max),
            rate(p.git_requests_per_hour),
            rate(p.git_requests_per_hour_extrapolated),
            format!("{:.2}", p.cpu_ms_per_change),
            count(p.missed),
        ]);
    }
    grid
}

fn verdict_grid(verdicts: &[Verdict]) -> Grid {
    use Align::Left;
    let mut grid = Grid::new(&[("", Left), ("target", Left), ("measured", Left)]);
    for v in verdicts {
        let status = if v.pass { "PASS" } else { "FAIL" };
        grid.rows.push(vec![
            status.to_owned(),
            v.target.clone(),
            v.measured.clone(),
        ]);
    }
    grid
}

/// `first reporter: webhook 95, eventbridge 3, poll 2` for a scenario with several sources.
fn first_reporters(scenario: &Scenario) -> Option<String> {
    if scenario.sources.len() < 2 {
        return None;
    }
    // The change event's `source.kind` of each source the lab switches on.
    let mut kinds: Vec<&str> = scenario
        .sources
        .iter()
        .map(|s| {
            if s == "events" {
                "eventbridge"
            } else {
                s.as_str()
            }
        })
        .collect();
    for extra in &scenario.by_source {
        if !kinds.contains(&extra.source.as_str()) {
            kinds.push(&extra.source);
        }
    }
    let parts: Vec<String> = kinds
        .iter()
        .map(|kind| {
            let first = scenario
                .by_source
                .iter()
                .filter(|b| b.source == *kind)
                .map(|b| b.first)
                .sum::<usize>();
            format!("{kind} {}", count(first))
        })
        .collect();
    Some(format!("first reporter: {}", parts.join(", ")))
}

/// What became of the pushes whose announcements were dropped, for a scenario with drops.
fn backstop(scenario: &Scenario) -> Option<String> {
    let dropped = scenario.drop_webhooks > 0.0 || scenario.drop_events > 0.0;
    if !dropped && scenario.only_poll_could_find == 0 {
        return None;
    }
    let late = &scenario.caught_trigger_ms;
    Some(format!(
        "only polling could find {}, caught {}, how late: p50 {} / max {} ms",
        count(scenario.only_poll_could_find),
        count(scenario.caught_by_poll),
        ms(late.p50),
        ms(late.max)
    ))
}

/// The notes under the scenario table: (scenario, line).
fn notes(results: &Results) -> Vec<(&str, String)> {
    results
        .scenarios
        .iter()
        .flat_map(|s| {
            [first_reporters(s), backstop(s)]
                .into_iter()
                .flatten()
                .map(move |line| (s.name.as_str(), line))
        })
        .collect()
}

fn moto_share(results: &Results) -> String {
    let m = &results.moto_delivery_ms;
    if m.n == 0 {
        "moto's delivery (PutEvents returned → message queued): not measured".to_owned()
    } else {
        format!(
            "moto's delivery (PutEvents returned → message queued): p50 {} ms, p99 {} ms over {} events",
            ms(m.p50),
            ms(m.p99),
            count(m.n)
        )
    }
}

/// The plain-text report for the terminal: the scenarios, who reported first, the backstop,
/// the polling sweep, moto's share and the verdicts.
pub fn table(results: &Results) -> String {
    let mut out = String::new();
    if results.scenarios.is_empty() {
        out.push_str("no scenario ran\n");
    } else {
        let _ = writeln!(
            out,
            "times in ms from the push; request rates per hour, measured and extrapolated to {} repositories",
            count(results.settings.extrapolate_repos)
        );
        scenario_grid(results).text(&mut out);
        let notes = notes(results);
        if !notes.is_empty() {
            out.push('\n');
            for (name, note) in notes {
                let _ = writeln!(out, "{name}: {note}");
            }
        }
    }
    out.push('\n');
    if results.sweep.is_empty() {
        out.push_str("no polling sweep\n");
    } else {
        out.push_str("polling sweep\n");
        sweep_grid(results).text(&mut out);
    }
    let _ = writeln!(out, "\n{}", moto_share(results));
    out.push('\n');
    let verdicts = verdicts(results);
    if verdicts.is_empty() {
        out.push_str("verdict: nothing to check\n");
    } else {
        let failed = verdicts.iter().filter(|v| !v.pass).count();
        let _ = writeln!(
            out,
            "verdict: {} of {} targets met",
            verdicts.len() - failed,
            verdicts.len()
        );
        verdict_grid(&verdicts).text(&mut out);
    }
    out
}

/// The report as GitHub Markdown for the README: a line naming the machine and the settings,
/// the scenario table with its notes, the sweep table and the verdicts.
pub fn markdown(results: &Results) -> String {
    let m = &results.machine;
    let s = &results.settings;
    let mut out = String::new();
    let sweep: Vec<String> = s.sweep_ms.iter().map(|&ms| interval(ms)).collect();
    let _ = writeln!(
        out,
        "Measured{} on {} cores ({}) with switchyard {}: {} repositories, {} pushes per scenario at {}/s, \
         polling every {}, sweep {}, {} of webhooks and {} of events dropped in `all+faults`, \
         rates extrapolated to {} repositories{}.\n",
        if results.started_at.is_empty() {
            String::new()
        } else {
            format!(" {}", results.started_at)
        },
        m.cores,
        if m.os.is_empty() { "unknown OS" } else { &m.os },
        if m.switchyard_version.is_empty() {
            "?"
        } else {
            &m.switchyard_version
        },
        count(s.repos),
        count(s.pushes),
        rate(s.rate_per_s),
        interval(s.interval_ms),
        if sweep.is_empty() {
            "none".to_owned()
        } else {
            sweep.join(", ")
        },
        percent(s.drop_webhooks),
        percent(s.drop_events),
        count(s.extrapolate_repos),
        if s.quick { " (quick run)" } else { "" },
    );
    if !results.scenarios.is_empty() {
        out.push_str("Times in ms from the push; request rates per hour.\n\n");
        scenario_grid(results).markdown(&mut out);
        let notes = notes(results);
        if !notes.is_empty() {
            out.push('\n');
            for (name, note) in notes {
                let _ = writeln!(out, "- `{name}`: {note}");
            }
        }
        out.push('\n');
    }
    if !results.sweep.is_empty() {
        out.push_str("Polling alone, by interval:\n\n");
        sweep_grid(results).markdown(&mut out);
        out.push('\n');
    }
    let _ = writeln!(out, "{}.\n", moto_share(results));
    let verdicts = verdicts(results);
    if !verdicts.is_empty() {
        let met = verdicts.iter().filter(|v| v.pass).count();
        let _ = writeln!(out, "Targets, {met} of {} met:\n", verdicts.len());
        verdict_grid(&verdicts).markdown(&mut out);
    }
    out
}

// ---- Verdicts. ----

fn scenario<'a>(results: &'a Results, name: &str) -> Option<&'a Scenario> {
    results.scenarios.iter().find(|s| s.name == name)
}

/// The polling target for trigger latencies `t` at `interval_ms`.
fn poll_verdict(label: &str, interval_ms: u64, t: &Summary) -> Verdict {
    let i = interval_ms as f64;
    let (lo, hi) = (POLL_P50_RANGE.0 * i, POLL_P50_RANGE.1 * i);
    let limit = i + POLL_SLACK_MS;
    let target = format!(
        "{label}: trigger p50 in [{}, {}] ms, p99 < {} ms",
        ms(lo),
        ms(hi),
        ms(limit)
    );
    if t.n == 0 {
        return Verdict::new(target, "no pipeline started".to_owned(), false);
    }
    let pass = (lo..=hi).contains(&t.p50) && t.p99 < limit;
    Verdict::new(
        target,
        format!("p50 {} ms, p99 {} ms", ms(t.p50), ms(t.p99)),
        pass,
    )
}

/// The targets, checked against what ran (a scenario that did not run is not checked):
/// webhook trigger p99 under 10 ms; events trigger p99 minus moto's delivery p99 under 100 ms;
/// polling p50 within a quarter to three quarters of the interval and p99 under the interval
/// plus 200 ms (the `poll` scenario and each sweep point); in every scenario, no push started
/// twice and no push missed. A latency target fails when no pipeline started at all.
pub fn verdicts(results: &Results) -> Vec<Verdict> {
    let mut out = Vec::new();
    if let Some(s) = scenario(results, "webhook") {
        let target = format!("webhook: trigger p99 < {WEBHOOK_P99_MS} ms");
        out.push(if s.trigger_ms.n == 0 {
            Verdict::new(target, "no pipeline started".to_owned(), false)
        } else {
            Verdict::new(
                target,
                format!("{} ms", ms(s.trigger_ms.p99)),
                s.trigger_ms.p99 < WEBHOOK_P99_MS,
            )
        });
    }
    if let Some(s) = scenario(results, "events") {
        let target = format!("events: trigger p99 - moto delivery p99 < {EVENTS_OVERHEAD_MS} ms");
        let moto = &results.moto_delivery_ms;
        out.push(if s.trigger_ms.n == 0 {
            Verdict::new(target, "no pipeline started".to_owned(), false)
        } else {
            let own = s.trigger_ms.p99 - moto.p99;
            let unmeasured = if moto.n == 0 {
                " (moto's delivery not measured)"
            } else {
                ""
            };
            Verdict::new(
                target,
                format!(
                    "{} - {} = {} ms{unmeasured}",
                    ms(s.trigger_ms.p99),
                    ms(moto.p99),
                    ms(own)
                ),
                own < EVENTS_OVERHEAD_MS,
            )
        });
    }
    if let Some(s) = scenario(results, "poll") {
        match poll_interval(results, s) {
            Some(i) => out.push(poll_verdict(
                &format!("poll every {}", interval(i)),
                i,
                &s.trigger_ms,
            )),
            None => out.push(Verdict::new(
                "poll: trigger latency within its interval".to_owned(),
                "the polling interval is unknown".to_owned(),
                false,
            )),
        }
    }
    for p in &results.sweep {
        let label = format!("sweep, poll every {}", interval(p.interval_ms));
        out.push(poll_verdict(&label, p.interval_ms, &p.trigger_ms));
    }
    for s in &results.scenarios {
        out.push(Verdict::new(
            format!("{}: no push started twice", s.name),
            format!("{} started twice", count(s.started_twice)),
            s.started_twice == 0,
        ));
        let mut measured = format!("{} of {} missed", count(s.missed), count(s.pushes));
        if s.only_poll_could_find > 0 {
            let _ = write!(
                measured,
                "; only polling could find {}, caught {}",
                count(s.only_poll_could_find),
                count(s.caught_by_poll)
            );
        }
        out.push(Verdict::new(
            format!("{}: no push missed", s.name),
            measured,
            s.missed == 0 && s.caught_by_poll >= s.only_poll_could_find,
        ));
    }
    for p in &results.sweep {
        out.push(Verdict::new(
            format!(
                "sweep, poll every {}: no push missed",
                interval(p.interval_ms)
            ),
            format!("{} missed", count(p.missed)),
            p.missed == 0,
        ));
    }
    out
}

// ---- Plots. ----

mod plots;
#[cfg(test)]
mod tests;

pub use plots::plots;
