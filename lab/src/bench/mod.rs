//! `switchyard bench`: a laboratory on one machine comparing the three ways of learning that a
//! repository changed (webhooks, EventBridge events, polling) on real local servers.
//!
//! The lab (this crate's parts) is a `git daemon` with K repositories, a moto server with a
//! rule → queue, a runner that records pipeline starts, and `switchyard serve` (the binary
//! [`Options::serve_bin`]) as a child process. A pusher
//! makes N real pushes at a fixed rate to random repositories, branches and paths; each push is
//! announced as each source would announce it (a signed GitHub push delivery the moment it
//! lands, a CodeCommit event through PutEvents → rule → SQS, and nothing for polling). Every
//! scenario runs a fresh `serve` with its sources on and measures each push from the moment it
//! landed: detection (the change event made) and trigger (the start reached the runner), the
//! requests switchyard made, its CPU time, what was missed and what started twice.

pub mod report;
pub mod results;
mod scenario;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::{GitHost, Moto, Pusher, Runner, Summary};
use results::{Machine, Results, Scenario, Settings, SweepPoint};
use scenario::{Sources, run_scenario};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `switchyard` binary each scenario runs as `serve`.
    pub serve_bin: PathBuf,
    pub quick: bool,
    pub repos: usize,
    pub pushes: usize,
    pub rate: f64,
    pub interval: Duration,
    pub sweep: Vec<Duration>,
    pub drop_webhooks: f64,
    pub drop_events: f64,
    /// A running moto server; else one is started.
    pub moto: Option<String>,
    /// Where the JSON of every measurement goes.
    pub output: Option<PathBuf>,
    /// Where the SVG plots go.
    pub plots: Option<PathBuf>,
    /// The repository count request rates are extrapolated to.
    pub extrapolate: usize,
    /// No progress bar (not a terminal, or asked).
    pub quiet: bool,
}

impl Options {
    /// The defaults, with `serve_bin` as the binary under test: `--quick` finishes in under a
    /// minute; the full run in about ten.
    pub fn defaults(serve_bin: PathBuf, quick: bool) -> Options {
        if quick {
            Options {
                serve_bin,
                quick,
                repos: 4,
                pushes: 10,
                rate: 5.0,
                interval: Duration::from_secs(1),
                sweep: vec![Duration::from_millis(500), Duration::from_secs(2)],
                drop_webhooks: 0.5,
                drop_events: 0.5,
                moto: None,
                output: None,
                plots: None,
                extrapolate: 1000,
                quiet: false,
            }
        } else {
            Options {
                serve_bin,
                quick,
                repos: 20,
                pushes: 100,
                rate: 2.0,
                interval: Duration::from_secs(5),
                sweep: [1, 5, 30, 60].map(Duration::from_secs).to_vec(),
                drop_webhooks: 0.25,
                drop_events: 0.25,
                moto: None,
                output: None,
                plots: None,
                extrapolate: 1000,
                quiet: false,
            }
        }
    }

    /// Checks the values; an error names the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.repos == 0 || self.repos > 500 {
            anyhow::bail!("--repos {} is out of range: give 1 to 500", self.repos);
        }
        if self.pushes == 0 {
            anyhow::bail!("--pushes must be at least 1");
        }
        if !(self.rate > 0.0 && self.rate <= 50.0) {
            anyhow::bail!(
                "--rate {} is out of range: give more than 0 and at most 50 pushes per second",
                self.rate
            );
        }
        for (flag, p) in [
            ("--drop-webhooks", self.drop_webhooks),
            ("--drop-events", self.drop_events),
        ] {
            if !(0.0..=1.0).contains(&p) {
                anyhow::bail!("{flag} {p} is not a share: give a number from 0 to 1, e.g. 0.25");
            }
        }
        if self.interval < Duration::from_millis(100)
            || self.sweep.iter().any(|i| *i < Duration::from_millis(100))
        {
            anyhow::bail!("polling intervals must be at least 100ms");
        }
        Ok(())
    }
}

/// The ceiling a polled repository's interval stretches toward while pushes are announced.
fn max_interval(interval: Duration) -> Duration {
    interval * 4
}

/// What every scenario shares.
struct Lab {
    dir: PathBuf,
    host: GitHost,
    pusher: Arc<Mutex<Pusher>>,
    moto: Moto,
    events: aws_sdk_eventbridge::Client,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    runner: Arc<Runner>,
    runner_addr: std::net::SocketAddr,
    http: switchyard::transport::http::Client,
    progress: ProgressBar,
    opts: Options,
}

/// One scenario's plan.
struct Plan {
    name: String,
    sources: Sources,
    interval: Duration,
    drop_webhooks: f64,
    drop_events: f64,
    pushes: usize,
}

/// Runs the whole bench.
pub async fn run(opts: Options) -> anyhow::Result<Results> {
    opts.validate()?;
    let started_at = jiff::Timestamp::now().to_string();
    let dir = std::env::temp_dir().join(format!("switchyard-bench-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let result = run_in(&dir, opts, started_at).await;
    match &result {
        Ok(_) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(_) => eprintln!("the lab is kept for a look: {}", dir.display()),
    }
    result
}

async fn run_in(dir: &Path, opts: Options, started_at: String) -> anyhow::Result<Results> {
    let scenario_pushes = opts.pushes * 5 + opts.pushes * opts.sweep.len();
    let progress = if opts.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(scenario_pushes as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} pushes  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    };
    progress.set_message(format!(
        "setting up {} repositories on git daemon",
        opts.repos
    ));
    let repos = opts.repos;
    let lab_dir = dir.to_path_buf();
    let (host, pusher) = tokio::task::spawn_blocking(move || GitHost::start(&lab_dir, repos))
        .await
        .context("the set-up thread failed")??;
    progress.set_message("starting moto");
    let moto = match opts.moto.clone() {
        Some(endpoint) => Moto::at(&endpoint),
        None => tokio::task::spawn_blocking(Moto::start)
            .await
            .context("the set-up thread failed")?
            .context("the events path runs against a local moto server (or pass --moto URL of a running one)")?,
    };
    let sdk = moto.sdk();
    let mut queues = Vec::new();
    for (name, source) in [
        ("switchyard-bench", "aws.codecommit"),
        ("switchyard-bench-probe", "bench.probe"),
    ] {
        let (url, arn) = moto.create_queue(name, &[]).await?;
        moto.rule(name, &serde_json::json!({"source": [source]}), &arn)
            .await?;
        queues.push(url);
    }
    let (queue_url, probe_url) = (queues.remove(0), queues.remove(0));
    let (runner, runner_addr) = Runner::start().await?;
    let lab = Lab {
        dir: dir.to_path_buf(),
        host,
        pusher: Arc::new(Mutex::new(pusher)),
        events: aws_sdk_eventbridge::Client::new(&sdk),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        moto,
        queue_url,
        runner,
        runner_addr,
        http: switchyard::transport::http::client(),
        progress,
        opts: opts.clone(),
    };

    lab.progress
        .set_message("moto's own delivery (probe events)");
    let moto_delivery_ms =
        moto_delivery(&lab, &probe_url, if opts.quick { 10 } else { 50 }).await?;

    let all = Sources {
        webhook: true,
        events: true,
        poll: true,
    };
    let mut plans = vec![
        Plan::new(
            "webhook",
            Sources {
                webhook: true,
                events: false,
                poll: false,
            },
            &opts,
        ),
        Plan::new(
            "events",
            Sources {
                webhook: false,
                events: true,
                poll: false,
            },
            &opts,
        ),
        Plan::new(
            "poll",
            Sources {
                webhook: false,
                events: false,
                poll: true,
            },
            &opts,
        ),
        Plan::new("all", all, &opts),
    ];
    let mut faults = Plan::new("all+faults", all, &opts);
    faults.drop_webhooks = opts.drop_webhooks;
    faults.drop_events = opts.drop_events;
    plans.push(faults);
    let mut scenarios = Vec::new();
    for plan in &plans {
        let s = run_scenario(&lab, plan).await?;
        lab.said(&s);
        scenarios.push(s);
    }
    let mut sweep = Vec::new();
    for interval in &opts.sweep {
        let mut plan = Plan::new(
            &format!("poll@{}", human(*interval)),
            Sources {
                webhook: false,
                events: false,
                poll: true,
            },
            &opts,
        );
        plan.interval = *interval;
        let s = run_scenario(&lab, &plan).await?;
        lab.said(&s);
        sweep.push(SweepPoint {
            interval_ms: interval.as_millis() as u64,
            trigger_ms: s.trigger_ms.clone(),
            git_requests_per_hour: s.git_requests_per_hour,
            git_requests_per_hour_extrapolated: s.git_requests_per_hour_extrapolated,
            cpu_ms_per_change: s.cpu_ms_per_change,
            missed: s.missed,
        });
    }
    lab.progress.finish_and_clear();
    Ok(Results {
        started_at,
        machine: Machine {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            switchyard_version: version(&opts.serve_bin),
        },
        settings: Settings {
            quick: opts.quick,
            repos: opts.repos,
            pushes: opts.pushes,
            rate_per_s: opts.rate,
            interval_ms: opts.interval.as_millis() as u64,
            sweep_ms: opts.sweep.iter().map(|d| d.as_millis() as u64).collect(),
            drop_webhooks: opts.drop_webhooks,
            drop_events: opts.drop_events,
            extrapolate_repos: opts.extrapolate,
        },
        scenarios,
        sweep,
        moto_delivery_ms,
    })
}

impl Lab {
    /// Without a progress bar (not a terminal), a line per finished scenario.
    fn said(&self, s: &Scenario) {
        if self.progress.is_hidden() {
            eprintln!(
                "bench: {} done in {:.0} s: {} of {} pushes started, trigger p50 {:.1} ms, p99 {:.1} ms",
                s.name, s.duration_s, s.started, s.pushes, s.trigger_ms.p50, s.trigger_ms.p99
            );
        }
    }
}

impl Plan {
    fn new(name: &str, sources: Sources, opts: &Options) -> Plan {
        Plan {
            name: name.to_owned(),
            sources,
            interval: opts.interval,
            drop_webhooks: 0.0,
            drop_events: 0.0,
            pushes: opts.pushes,
        }
    }
}

/// A duration as people write it: `500ms`, `5s`, `1m`.
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// moto alone: PutEvents → rule → SQS → the lab's own long-poll receive, one at a time.
async fn moto_delivery(lab: &Lab, probe_url: &str, count: usize) -> anyhow::Result<Summary> {
    let mut ms = Vec::with_capacity(count);
    for n in 0..count {
        let probe = serde_json::json!({"n": n}).to_string();
        let within = Duration::from_secs(20);
        ms.push(
            lab.moto
                .delivery_ms("bench.probe", probe, probe_url, within)
                .await?,
        );
    }
    Ok(Summary::of(&ms))
}

/// The scenarios that lost a change or started one twice, each as `NAME: N missed, M started
/// twice`: a fault of switchyard's, unlike a missed latency target, which depends on the
/// machine.
pub fn faults(results: &Results) -> Vec<String> {
    results
        .scenarios
        .iter()
        .filter(|s| s.missed > 0 || s.started_twice > 0)
        .map(|s| {
            format!(
                "{}: {} missed, {} started twice",
                s.name, s.missed, s.started_twice
            )
        })
        .collect()
}

/// The version `bin --version` prints (`switchyard 0.1.0` → `0.1.0`); `unknown` when it
/// says none.
fn version(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            Some(text.split_whitespace().nth(1)?.to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Writes the JSON of every measurement.
pub fn write_json(results: &Results, path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(results)?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
