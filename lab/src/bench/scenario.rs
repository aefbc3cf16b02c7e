//! One scenario: a fresh `serve` with the plan's sources, N pushes at the rate, the drain, and
//! what became of each push.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::task::JoinSet;

use super::results::{Sample, Scenario, SourceStats};
use super::*;
use crate::git::{BRANCHES, identity};
use crate::{Arrival, REGION, Serve, ServeCommand, announce};

/// The webhook secret of the lab's GitHub receiver.
const SECRET: &str = "switchyard-bench-secret";

/// The sources one scenario turns on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sources {
    pub webhook: bool,
    pub events: bool,
    pub poll: bool,
}

impl Sources {
    pub fn names(self) -> Vec<String> {
        let mut out = Vec::new();
        for (on, name) in [
            (self.webhook, "webhook"),
            (self.events, "events"),
            (self.poll, "poll"),
        ] {
            if on {
                out.push(name.to_owned());
            }
        }
        out
    }
}

/// Writes a scenario's project into `dir`: the configuration with the plan's sources, and a
/// pipeline per repository (every push, an `http` start to the runner).
fn write_project(lab: &Lab, plan: &Plan, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("triggers"))?;
    let secret = dir.join("github.secret");
    std::fs::write(&secret, SECRET)?;
    let mut config = format!(
        "state_dir: {}\nreceivers:\n  - name: github\n    provider: github\n    secrets: [\"file:{}\"]\ndispatch: {{attempts: 5, backoff: 100ms, backoff_max: 1s}}\n",
        dir.join("state").display(),
        secret.display()
    );
    if plan.sources.events {
        config.push_str(&format!(
            "eventbridge:\n  queue_url: {}\n  region: {REGION}\n  endpoint_url: {}\n  consumers: 2\n  wait: 20s\n",
            lab.queue_url, lab.moto.endpoint
        ));
    }
    if plan.sources.poll {
        config.push_str(
            "polling: {concurrency: 8, timeout: 10s, complete_within: 5s, missed_grace: 60s}\npoll:\n",
        );
        for name in &lab.host.names {
            config.push_str(&format!(
                "  - url: {}\n    repository: codecommit::{REGION}://{name}\n    interval: {}ms\n    max_interval: {}ms\n",
                lab.host.url(name),
                plan.interval.as_millis(),
                max_interval(plan.interval).as_millis()
            ));
        }
    }
    std::fs::write(dir.join("switchyard.yaml"), config)?;
    for name in &lab.host.names {
        std::fs::write(
            dir.join("triggers").join(format!("{name}.yaml")),
            format!(
                "pipeline: build-{name}\nrepository: codecommit::{REGION}://{name}\nmode: parallel\nconcurrency: 64\non: push\nstart:\n  http:\n    url: http://{}/start\n",
                lab.runner_addr
            ),
        )?;
    }
    Ok(())
}

/// Waits until `serve` is ready, and, when it polls, has polled every repository once (its
/// baseline) and filled the mirrors.
async fn settle(lab: &Lab, serve: &Serve, polls: bool, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    serve
        .ready(Duration::from_secs(60))
        .await
        .with_context(|| format!("see {}", log.display()))?;
    if polls {
        let want = 2.0 * lab.host.names.len() as f64;
        loop {
            let metrics = serve.metrics().await;
            if metrics.sum("switchyard_poll_requests_total", &[("outcome", "ok")]) >= want {
                break;
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "serve did not poll every repository within 60 s; see {}",
                    log.display()
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

async fn counters(serve: &Serve) -> Counters {
    let m = serve.metrics().await;
    let polls = "switchyard_poll_requests_total";
    Counters {
        cpu_s: serve.cpu_seconds(),
        ls_remote: m.sum(polls, &[("kind", "ls-remote")]),
        fetch: m.sum(polls, &[("kind", "fetch")]),
        aws: m.sum("switchyard_aws_requests_total", &[]),
        notices: m.sum("switchyard_deliveries_total", &[])
            + m.sum("switchyard_sqs_messages_total", &[]),
    }
}

/// One scenario: a fresh `serve` with the plan's sources, N pushes at the rate, the drain.
pub(super) async fn run_scenario(lab: &Lab, plan: &Plan) -> anyhow::Result<Scenario> {
    lab.progress
        .set_message(format!("{}: starting serve", plan.name));
    let dir = lab.dir.join(plan.name.replace(['@', '+'], "-"));
    if plan.sources.events {
        // Whatever an earlier scenario left must not count here.
        let _ = lab.sqs.purge_queue().queue_url(&lab.queue_url).send().await;
    }
    write_project(lab, plan, &dir)?;
    let log = dir.join("serve.log");
    let serve = ServeCommand::new(&lab.opts.serve_bin, &dir)
        .envs(&lab.moto.env())
        .env("SWITCHYARD_LOG", "warn,switchyard=info")
        .log_to(&log)
        .start()
        .await?;
    settle(lab, &serve, plan.sources.poll, &log).await?;
    lab.runner.drain();
    lab.progress.set_message(format!("{}: pushing", plan.name));
    let before = counters(&serve).await;
    let began = Instant::now();
    let mut samples: Vec<Sample> = Vec::with_capacity(plan.pushes);
    let mut befores: Vec<String> = Vec::with_capacity(plan.pushes);
    let mut announcements = JoinSet::new();
    let serve_addr = serve.addr();
    for i in 0..plan.pushes {
        let due = began + Duration::from_secs_f64(i as f64 / lab.opts.rate);
        tokio::time::sleep_until(due.into()).await;
        let repository = lab.host.names[fastrand::usize(..lab.host.names.len())].clone();
        let branch = BRANCHES[fastrand::usize(..BRANCHES.len())];
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
                match announce::send_webhook(&client, serve_addr, SECRET, &push).await {
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
            announcements.spawn(async move { announce::send_event(&events, &push).await });
        }
        befores.push(push.before.clone());
        samples.push(Sample {
            repository: identity(&push.repository).to_string(),
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
        let left = drain.saturating_sub(last_push.elapsed());
        if trial.iter().all(|s| s.source.is_some()) || left.is_zero() {
            break;
        }
        // Until the next start arrives (or the drain ends).
        let _ = lab
            .runner
            .wait_for(left, |a| (!a.is_empty()).then_some(()))
            .await;
    }
    // A second start of a change would come from what the store holds now: once the
    // dispatcher has passed over it and nothing is in flight, every start has arrived.
    if crate::metrics::dispatcher_idle(serve.addr(), &dir.join("state"), Duration::from_secs(10))
        .await
        .is_none()
    {
        anyhow::bail!("serve's dispatcher did not go idle within 10 s of the drain");
    }
    arrivals.extend(lab.runner.drain());
    let after = counters(&serve).await;
    let duration_s = began.elapsed().as_secs_f64();
    serve.stop().await;

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
fn attribute(samples: &mut [Sample], befores: &[String], arrivals: &[Arrival]) -> usize {
    // Each ref's pushes, in push order.
    let mut by_ref: HashMap<(String, String), Vec<usize>> = HashMap::new();
    for (i, s) in samples.iter().enumerate() {
        by_ref
            .entry((s.repository.clone(), s.git_ref.clone()))
            .or_default()
            .push(i);
    }
    let mut arrivals: Vec<&Arrival> = arrivals.iter().collect();
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
                // `received_at` has millisecond precision: compare it with the push's
                // millisecond, so that a sub-millisecond detection does not read negative.
                s.detection_ms = a.received_at_ms.map(|r| r - s.pushed_at_ms.floor());
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
