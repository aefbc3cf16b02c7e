//! Polling at scale against a real `git daemon` on loopback: K repositories (1,000 by
//! default, `SWITCHYARD_BENCH_REPOS` to change), nothing changed: the time of one full poll
//! cycle, ref checks per second and the process's memory; then one ref moved among them under
//! `serve`: the time from the push to the pipeline start, against the interval.
//!
//! `cargo bench --bench poll` prints medians (the nearest-rank p50 of the lab's `Summary`: the
//! lower median of an even count); it needs `git` on PATH. Without `--bench` (as under `cargo
//! test --benches`) it is a smoke run over 20 repositories. The git daemon and the `/proc`
//! readers are the lab's (`lab/`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::diag::Diagnostics;
use switchyard::intake::Intake;
use switchyard::metrics::Metrics;
use switchyard::pipeline::Pipelines;
use switchyard::sources::poll::Poller;
use switchyard::store::{Role, Store};
use switchyard_lab::procfs::{self, MachineTicks};
use switchyard_lab::{GitDaemon, Summary, git, or_skip};

/// The sizes of a run: the measurement, or the smoke run of `cargo test --benches`.
struct Sizes {
    repos: usize,
    cycles: usize,
    moves: usize,
    interval_secs: u64,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn memory_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds this process has used (user + system).
fn cpu_seconds() -> f64 {
    procfs::cpu_seconds(std::process::id()).unwrap_or(0.0)
}

/// The median (nearest rank) of `v`.
fn median(v: &[f64]) -> f64 {
    Summary::of(v).p50
}

fn config_text(daemon: &GitDaemon, repos: usize, interval: &str, extra: &str) -> String {
    let mut text = format!("listen: 127.0.0.1:0\nstate_dir: state\n{extra}poll:\n");
    for i in 0..repos {
        text.push_str(&format!(
            "  - url: {}\n    interval: {interval}\n",
            daemon.url(&format!("r{i:04}.git"))
        ));
    }
    text
}

fn parse(text: &str, root: &Path) -> switchyard::config::Config {
    let mut d = Diagnostics::new("bench.yaml");
    let config = switchyard::config::Config::parse(text, root, &mut d).expect("config");
    assert!(d.items.is_empty(), "{:?}", d.items);
    config
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        Sizes {
            repos: std::env::var("SWITCHYARD_BENCH_REPOS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000),
            cycles: 7,
            moves: 10,
            interval_secs: 5,
        }
    } else {
        Sizes {
            repos: 20,
            cycles: 2,
            moves: 1,
            interval_secs: 1,
        }
    };
    let Sizes {
        repos,
        cycles: n_cycles,
        moves,
        interval_secs: interval,
    } = sizes;
    let root = tempfile::tempdir().expect("temp dir");
    let base = root.path().join("served");
    std::fs::create_dir(&base).expect("base");
    let work = root.path().join("work");
    std::fs::create_dir(&work).expect("work");
    git(&work, &["init", "--quiet"]);
    std::fs::create_dir(work.join("src")).expect("src");
    std::fs::write(work.join("src/lib.rs"), "pub fn f() {}\n").expect("file");
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "first"]);
    let template = base.join("template.git");
    git(&base, &["init", "--quiet", "--bare", "template.git"]);
    git(
        &work,
        &["push", "--quiet", template.to_str().expect("utf-8"), "main"],
    );
    let made = Instant::now();
    for i in 0..repos {
        copy_dir(&template, &base.join(format!("r{i:04}.git")));
    }
    eprintln!(
        "{repos} repositories made in {:.1} s",
        made.elapsed().as_secs_f64()
    );
    let Some(daemon) = or_skip(GitDaemon::start(&base)) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // Nothing changed: full cycles.
    let state = root.path().join("cycle");
    std::fs::create_dir(&state).expect("state");
    let concurrency = std::env::var("SWITCHYARD_BENCH_CONCURRENCY").unwrap_or_else(|_| "8".into());
    let polling = format!("polling: {{concurrency: {concurrency}}}\n");
    let config = parse(&config_text(&daemon, repos, "1h", &polling), &state);
    let rss_before = memory_kib("VmRSS:");
    let (cycles, baseline, cpu_per_cycle, busy_per_cycle) = runtime.block_on(async {
        let store = Store::open(&config.state_dir, Role::Serve, Arc::default());
        let metrics = Arc::new(Metrics::default());
        let intake = Intake::new(
            Arc::new(Pipelines::default()),
            store.clone(),
            Arc::clone(&metrics),
        );
        let poller = Arc::new(Poller::new(
            &config.poll,
            &config.polling,
            &config.state_dir,
            intake,
            store,
            metrics,
        ));
        let started = Instant::now();
        let first = poller.poll_all_once().await;
        let baseline = started.elapsed().as_secs_f64();
        assert!(first.iter().all(|r| r.as_ref().is_ok_and(|r| r.baseline)));
        let mut cycles = Vec::new();
        let cpu = cpu_seconds();
        let busy = MachineTicks::now();
        for _ in 0..n_cycles {
            let started = Instant::now();
            let results = poller.poll_all_once().await;
            cycles.push(started.elapsed().as_secs_f64());
            for r in &results {
                match r {
                    Ok(r) => assert!(r.found.is_empty()),
                    Err(e) => panic!("{e}"),
                }
            }
        }
        let cpu_per_cycle = (cpu_seconds() - cpu) / n_cycles as f64;
        let busy_per_cycle = MachineTicks::now().busy_seconds_since(&busy) / n_cycles as f64;
        (cycles, baseline, cpu_per_cycle, busy_per_cycle)
    });
    let cycle = median(&cycles);
    println!(
        "poll/cycle/{repos} repositories, nothing changed: median {:.3} s ({:.0} ref checks/s; cycles {:?}); CPU per cycle: switchyard {:.2} s, the whole machine {:.2} s of {} cores; first poll with mirror fill {:.2} s; concurrency {}",
        cycle,
        repos as f64 / cycle,
        cycles.iter().map(|c| format!("{c:.3}")).collect::<Vec<_>>(),
        cpu_per_cycle,
        busy_per_cycle,
        std::thread::available_parallelism().map_or(1, usize::from),
        baseline,
        config.polling.concurrency
    );
    // The same ref checks with git's own client, as many at a time: the floor the server sets.
    let per_thread = repos.div_ceil(config.polling.concurrency);
    let indexes: Vec<usize> = (0..repos).collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for chunk in indexes.chunks(per_thread) {
            let daemon = &daemon;
            scope.spawn(move || {
                for i in chunk {
                    let out = Command::new("git")
                        .args(["ls-remote", &daemon.url(&format!("r{i:04}.git"))])
                        .output()
                        .expect("git ls-remote");
                    assert!(out.status.success());
                }
            });
        }
    });
    let cli = started.elapsed().as_secs_f64();
    println!(
        "poll/cycle/{repos} repositories with `git ls-remote`, {} at a time: {cli:.3} s ({:.0} ref checks/s)",
        config.polling.concurrency,
        repos as f64 / cli
    );
    println!(
        "poll/memory: RSS {} MiB before, {} MiB after, peak {} MiB",
        rss_before / 1024,
        memory_kib("VmRSS:") / 1024,
        memory_kib("VmHWM:") / 1024
    );

    // One ref moved among them, under serve: push to start.
    let state = root.path().join("serve");
    std::fs::create_dir_all(state.join("triggers")).expect("triggers");
    let target = repos / 2;
    let stamp = state.join("started");
    std::fs::write(
        state.join("triggers/one.yaml"),
        format!(
            "repository: {}\non: push\nstart:\n  exec: [\"/bin/sh\", \"-c\", \"date +%s%N >> {}\"]\n",
            daemon.url(&format!("r{target:04}.git")),
            stamp.display()
        ),
    )
    .expect("trigger");
    let config = parse(
        &config_text(&daemon, repos, &format!("{interval}s"), ""),
        &state,
    );
    let (pipelines, diags) = Pipelines::load_dir(&state.join("triggers"));
    assert!(diags.is_empty(), "{diags:?}");
    let target_repo: PathBuf = base.join(format!("r{target:04}.git"));
    let latencies = runtime.block_on(async {
        let server = switchyard::serve::start(config, pipelines)
            .await
            .expect("serve");
        // Let every repository record its baseline (its mirror appears once it has), and
        // then poll once more.
        let mirrors = state.join("state/mirrors");
        while std::fs::read_dir(&mirrors).map_or(0, Iterator::count) < repos {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(interval + 1)).await;
        let mut latencies = Vec::new();
        for n in 0..moves {
            std::fs::write(work.join("src/lib.rs"), format!("pub fn f() {{ {n} }}\n"))
                .expect("edit");
            git(&work, &["commit", "--quiet", "-am", "move"]);
            let pushed = Instant::now();
            git(
                &work,
                &[
                    "push",
                    "--quiet",
                    target_repo.to_str().expect("utf-8"),
                    "main",
                ],
            );
            loop {
                let lines = std::fs::read_to_string(&stamp)
                    .map(|s| s.lines().count())
                    .unwrap_or(0);
                if lines > n {
                    break;
                }
                assert!(
                    pushed.elapsed() < Duration::from_secs(interval * 4),
                    "the move was not started"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            latencies.push(pushed.elapsed().as_secs_f64());
            // The next push lands at a random point of the interval.
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..interval * 1000))).await;
        }
        server.stop().await;
        latencies
    });
    let worst = latencies.iter().copied().fold(0.0, f64::max);
    println!(
        "poll/one moved among {repos}, interval {interval} s: push to start median {:.2} s, max {:.2} s (target: under interval + 1 s = {} s); {:?}",
        median(&latencies),
        worst,
        interval + 1,
        latencies
            .iter()
            .map(|l| format!("{l:.2}"))
            .collect::<Vec<_>>()
    );
}
