//! `switchyard bench`: a laboratory on one machine comparing the three ways of learning that a
//! repository changed (webhooks, EventBridge events, polling) on real local servers.
//!
//! The lab (`lab.rs`) is a `git daemon` with K repositories, a moto server with a rule → queue,
//! a runner that records pipeline starts, and `switchyard serve` as a child process. A pusher
//! makes N real pushes at a fixed rate to random repositories, branches and paths; each push is
//! announced as each source would announce it (a signed GitHub push delivery the moment it
//! lands, a CodeCommit event through PutEvents → rule → SQS, and nothing for polling). Every
//! scenario runs a fresh `serve` with its sources on and measures each push from the moment it
//! landed: detection (the change event made) and trigger (the start reached the runner), the
//! requests switchyard made, its CPU time, what was missed and what started twice.

pub mod lab;
pub mod report;
pub mod results;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;

use lab::{GitHost, Moto, Pusher, Runner, Serve, ServeSetup, Sources, metric_sum};
use results::{Machine, Results, Sample, Scenario, Settings, SourceStats, Summary, SweepPoint};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
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
    /// The defaults: `--quick` finishes in under a minute; the full run in about ten.
    pub fn defaults(quick: bool) -> Options {
        if quick {
            Options {
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
    http: crate::dispatch::http::Client,
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
    let (host, pusher) = tokio::task::spawn_blocking(move || lab::git_host(&lab_dir, repos))
        .await
        .context("the set-up thread failed")??;
    progress.set_message("starting moto");
    let moto_dir = opts.moto.clone();
    let moto = tokio::task::spawn_blocking(move || Moto::start(moto_dir.as_deref()))
        .await
        .context("the set-up thread failed")??;
    let sdk = moto.sdk();
    let (queue_url, _) = lab::queue_with_rule(
        &sdk,
        "switchyard-bench",
        serde_json::json!({"source": ["aws.codecommit"]}),
    )
    .await?;
    let (probe_url, _) = lab::queue_with_rule(
        &sdk,
        "switchyard-bench-probe",
        serde_json::json!({"source": ["bench.probe"]}),
    )
    .await?;
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
        http: crate::dispatch::http::client(),
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
        scenarios.push(run_scenario(&lab, plan).await?);
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
            switchyard_version: env!("CARGO_PKG_VERSION").to_owned(),
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
    if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// moto alone: PutEvents → rule → SQS → the lab's own long-poll receive, one at a time.
async fn moto_delivery(lab: &Lab, probe_url: &str, count: usize) -> anyhow::Result<Summary> {
    let mut ms = Vec::with_capacity(count);
    for n in 0..count {
        let began = Instant::now();
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source("bench.probe")
            .detail_type("probe")
            .detail(serde_json::json!({"n": n}).to_string())
            .build();
        lab.events
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("moto PutEvents: {}", crate::aws::describe(&e)))?;
        loop {
            let out = lab
                .sqs
                .receive_message()
                .queue_url(probe_url)
                .wait_time_seconds(5)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!("moto ReceiveMessage: {}", crate::aws::describe(&e))
                })?;
            if let Some(m) = out.messages().first() {
                ms.push(began.elapsed().as_secs_f64() * 1000.0);
                let _ = lab
                    .sqs
                    .delete_message()
                    .queue_url(probe_url)
                    .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                    .send()
                    .await;
                break;
            }
            if began.elapsed() > Duration::from_secs(20) {
                anyhow::bail!("moto did not deliver a probe event to its queue within 20 s");
            }
        }
    }
    Ok(Summary::of(&ms))
}

/// GET a path of `serve`: (status, body).
async fn get(lab: &Lab, serve: &Serve, path: &str) -> Option<(u16, String)> {
    use http_body_util::BodyExt as _;
    let request = hyper::Request::get(format!("http://{}{path}", serve.addr))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .ok()?;
    let response = lab.http.request(request).await.ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Waits until `serve` is ready, and, when it polls, has polled every repository once (its
/// baseline) and filled the mirrors.
async fn settle(lab: &Lab, serve: &Serve, polls: bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((200, _)) = get(lab, serve, "/readyz").await {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!("serve did not become ready; see {}", serve.log.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if polls {
        let want = 2.0 * lab.host.names.len() as f64;
        loop {
            let text = get(lab, serve, "/metrics")
                .await
                .map(|(_, t)| t)
                .unwrap_or_default();
            if metric_sum(&text, "switchyard_poll_requests_total", "outcome=\"ok\"") >= want {
                break;
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "serve did not poll every repository within 60 s; see {}",
                    serve.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// What one scenario's counters were at a moment.
struct Counters {
    cpu_s: f64,
    ls_remote: f64,
    fetch: f64,
    aws: f64,
    notices: f64,
}

async fn counters(lab: &Lab, serve: &Serve) -> Counters {
    let text = get(lab, serve, "/metrics")
        .await
        .map(|(_, t)| t)
        .unwrap_or_default();
    Counters {
        cpu_s: serve.cpu_s(),
        ls_remote: metric_sum(
            &text,
            "switchyard_poll_requests_total",
            "kind=\"ls-remote\"",
        ),
        fetch: metric_sum(&text, "switchyard_poll_requests_total", "kind=\"fetch\""),
        aws: metric_sum(&text, "switchyard_aws_requests_total", ""),
        notices: metric_sum(&text, "switchyard_deliveries_total", "")
            + metric_sum(&text, "switchyard_sqs_messages_total", ""),
    }
}

/// One scenario: a fresh `serve` with the plan's sources, N pushes at the rate, the drain.
async fn run_scenario(lab: &Lab, plan: &Plan) -> anyhow::Result<Scenario> {
    lab.progress
        .set_message(format!("{}: starting serve", plan.name));
    let dir = lab.dir.join(plan.name.replace(['@', '+'], "-"));
    let moto = lab.moto.endpoint.clone();
    if plan.sources.events {
        // Whatever an earlier scenario left must not count here.
        let _ = lab.sqs.purge_queue().queue_url(&lab.queue_url).send().await;
    }
    let setup = ServeSetup {
        dir: &dir,
        host: &lab.host,
        sources: plan.sources,
        interval: plan.interval,
        max_interval: max_interval(plan.interval),
        queue_url: &lab.queue_url,
        moto: &moto,
        runner: lab.runner_addr,
    };
    let serve = tokio::task::block_in_place(|| Serve::start(&setup))?;
    settle(lab, &serve, plan.sources.poll).await?;
    lab.runner.drain();
    lab.progress.set_message(format!("{}: pushing", plan.name));
    let before = counters(lab, &serve).await;
    let began = Instant::now();
    let mut samples: Vec<Sample> = Vec::with_capacity(plan.pushes);
    let mut befores: Vec<String> = Vec::with_capacity(plan.pushes);
    let mut announcements = JoinSet::new();
    let serve_addr = serve.addr;
    for i in 0..plan.pushes {
        let due = began + Duration::from_secs_f64(i as f64 / lab.opts.rate);
        tokio::time::sleep_until(due.into()).await;
        let repository = lab.host.names[fastrand::usize(..lab.host.names.len())].clone();
        let branch = lab::BRANCHES[fastrand::usize(..lab::BRANCHES.len())];
        let pusher = Arc::clone(&lab.pusher);
        let push = tokio::task::spawn_blocking(move || {
            pusher
                .lock()
                .map_err(|_| anyhow::anyhow!("the pusher failed earlier"))?
                .push(&repository, branch)
        })
        .await
        .context("the push thread failed")??;
        let webhook_sent = plan.sources.webhook && fastrand::f64() >= plan.drop_webhooks;
        let event_sent = plan.sources.events && fastrand::f64() >= plan.drop_events;
        if webhook_sent {
            let (client, push) = (lab.http.clone(), push.clone());
            announcements.spawn(async move {
                match lab::send_webhook(&client, serve_addr, &push).await {
                    Ok(202) => Ok(()),
                    Ok(status) => Err(anyhow::anyhow!(
                        "the webhook of {} was answered {status}",
                        push.after
                    )),
                    Err(e) => Err(e),
                }
            });
        }
        if event_sent {
            let (events, push) = (lab.events.clone(), push.clone());
            announcements.spawn(async move { lab::send_event(&events, &push).await });
        }
        befores.push(push.before.clone());
        samples.push(Sample {
            repository: lab::identity(&push.repository).to_string(),
            git_ref: format!("refs/heads/{}", push.branch),
            sha: push.after.clone(),
            pushed_at_ms: push.at_ms,
            webhook_sent,
            event_sent,
            source: None,
            detection_ms: None,
            trigger_ms: None,
            starts: 0,
        });
        lab.progress.inc(1);
    }
    while let Some(done) = announcements.join_next().await {
        done.context("an announcement task failed")??;
    }
    lab.progress
        .set_message(format!("{}: waiting for the last starts", plan.name));
    let mut arrivals = Vec::new();
    let drain = if plan.sources.poll {
        max_interval(plan.interval) + Duration::from_secs(3)
    } else {
        Duration::from_secs(5)
    };
    let last_push = Instant::now();
    loop {
        arrivals.extend(lab.runner.drain());
        let mut trial = samples.clone();
        attribute(&mut trial, &befores, &arrivals);
        if trial.iter().all(|s| s.source.is_some()) || last_push.elapsed() > drain {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // A second start of a change would come right after the first: wait a little for it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    arrivals.extend(lab.runner.drain());
    let after = counters(lab, &serve).await;
    let duration_s = began.elapsed().as_secs_f64();
    tokio::task::block_in_place(|| serve.stop());

    let unmatched = attribute(&mut samples, &befores, &arrivals);
    Ok(summarize(
        lab, plan, samples, unmatched, &before, &after, duration_s,
    ))
}

/// Gives each push the first start that covers it, and counts the starts of each push.
///
/// A start covers the push whose commit it names, and the pushes before it on the same ref
/// back to the start's `before`: polling sees where a ref is, so two pushes between polls are
/// one change, and its start runs the pipeline on a commit that contains both. Returns the
/// starts that match no push at all (counted as started twice: something started that no push
/// asked for).
fn attribute(samples: &mut [Sample], befores: &[String], arrivals: &[lab::Arrival]) -> usize {
    // Each ref's pushes, in push order.
    let mut by_ref: HashMap<(String, String), Vec<usize>> = HashMap::new();
    for (i, s) in samples.iter().enumerate() {
        by_ref
            .entry((s.repository.clone(), s.git_ref.clone()))
            .or_default()
            .push(i);
    }
    let mut arrivals: Vec<&lab::Arrival> = arrivals.iter().collect();
    arrivals.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let mut unmatched = 0;
    for a in arrivals {
        let Some(pushes) = by_ref.get(&(a.repository.clone(), a.git_ref.clone())) else {
            unmatched += 1;
            continue;
        };
        let Some(end) = pushes.iter().rposition(|&i| samples[i].sha == a.sha) else {
            unmatched += 1;
            continue;
        };
        samples[pushes[end]].starts += 1;
        for &i in pushes[..=end].iter().rev() {
            let s = &mut samples[i];
            if s.source.is_none() && a.at_ms >= s.pushed_at_ms {
                s.source = Some(a.source.clone());
                s.trigger_ms = Some(a.at_ms - s.pushed_at_ms);
                s.detection_ms = a.received_at_ms.map(|r| r - s.pushed_at_ms);
            }
            if befores[i] == a.before {
                break;
            }
        }
    }
    unmatched
}

fn summarize(
    lab: &Lab,
    plan: &Plan,
    samples: Vec<Sample>,
    unmatched: usize,
    before: &Counters,
    after: &Counters,
    duration_s: f64,
) -> Scenario {
    let values = |f: &dyn Fn(&Sample) -> Option<f64>, keep: &dyn Fn(&Sample) -> bool| -> Vec<f64> {
        samples.iter().filter(|s| keep(s)).filter_map(f).collect()
    };
    let started = samples.iter().filter(|s| s.source.is_some()).count();
    let started_twice = samples
        .iter()
        .map(|s| s.starts.saturating_sub(1))
        .sum::<usize>()
        + unmatched;
    let mut by_source = Vec::new();
    for source in ["webhook", "eventbridge", "poll"] {
        let of = |s: &Sample| s.source.as_deref() == Some(source);
        let first = samples.iter().filter(|s| of(s)).count();
        if first > 0 {
            by_source.push(SourceStats {
                source: source.to_owned(),
                first,
                detection_ms: Summary::of(&values(&|s| s.detection_ms, &of)),
                trigger_ms: Summary::of(&values(&|s| s.trigger_ms, &of)),
            });
        }
    }
    let only_poll = |s: &Sample| !s.webhook_sent && !s.event_sent;
    let faults = plan.drop_webhooks > 0.0 || plan.drop_events > 0.0;
    let only_poll_could_find = if faults {
        samples.iter().filter(|s| only_poll(s)).count()
    } else {
        0
    };
    let caught: Vec<f64> = if faults {
        values(&|s| s.trigger_ms, &|s| {
            only_poll(s) && s.source.as_deref() == Some("poll")
        })
    } else {
        Vec::new()
    };
    let hours = duration_s / 3600.0;
    let per_hour = |n: f64| if hours > 0.0 { n / hours } else { 0.0 };
    let ls_remote = per_hour(after.ls_remote - before.ls_remote);
    let fetch = per_hour(after.fetch - before.fetch);
    let aws = per_hour(after.aws - before.aws);
    let scale = lab.opts.extrapolate as f64 / lab.host.names.len() as f64;
    let cpu_s = (after.cpu_s - before.cpu_s).max(0.0);
    Scenario {
        name: plan.name.clone(),
        sources: plan.sources.names(),
        interval_ms: plan
            .sources
            .poll
            .then_some(plan.interval.as_millis() as u64),
        drop_webhooks: plan.drop_webhooks,
        drop_events: plan.drop_events,
        duration_s,
        pushes: samples.len(),
        started,
        missed: samples.len() - started,
        started_twice,
        detection_ms: Summary::of(&values(&|s| s.detection_ms, &|_| true)),
        trigger_ms: Summary::of(&values(&|s| s.trigger_ms, &|_| true)),
        by_source,
        git_requests: (after.ls_remote + after.fetch - before.ls_remote - before.fetch) as u64,
        aws_requests: (after.aws - before.aws) as u64,
        notices: (after.notices - before.notices) as u64,
        git_requests_per_hour: ls_remote + fetch,
        aws_requests_per_hour: aws,
        git_requests_per_hour_extrapolated: ls_remote * scale + fetch,
        aws_requests_per_hour_extrapolated: aws,
        cpu_s,
        cpu_ms_per_change: if started > 0 {
            cpu_s * 1000.0 / started as f64
        } else {
            0.0
        },
        only_poll_could_find,
        caught_by_poll: caught.len(),
        caught_trigger_ms: Summary::of(&caught),
        samples,
    }
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
