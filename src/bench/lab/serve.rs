//! `switchyard serve` per scenario: its configuration, its process, its CPU time and metrics.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::*;

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

/// `switchyard serve`, the binary running this bench, with one scenario's configuration.
#[derive(Debug)]
pub struct Serve {
    pub addr: SocketAddr,
    pub pid: u32,
    child: Killed,
    pub log: PathBuf,
}

/// What a scenario's `switchyard.yaml` needs to know.
#[derive(Debug)]
pub struct ServeSetup<'a> {
    pub dir: &'a Path,
    pub host: &'a GitHost,
    pub sources: Sources,
    pub interval: Duration,
    pub max_interval: Duration,
    pub queue_url: &'a str,
    pub moto: &'a str,
    pub runner: SocketAddr,
}

impl Serve {
    /// Writes the configuration and the pipelines (one per repository, every push, an `http`
    /// start to the runner) and starts `serve`; returns once it listens.
    pub fn start(setup: &ServeSetup<'_>) -> anyhow::Result<Serve> {
        let dir = setup.dir;
        std::fs::create_dir_all(dir.join("triggers"))?;
        let secret = dir.join("github.secret");
        std::fs::write(&secret, SECRET)?;
        let mut config = format!(
            "state_dir: {}\nreceivers:\n  - name: github\n    provider: github\n    secrets: [\"file:{}\"]\ndispatch: {{attempts: 5, backoff: 100ms, backoff_max: 1s}}\n",
            dir.join("state").display(),
            secret.display()
        );
        if setup.sources.events {
            config.push_str(&format!(
                "eventbridge:\n  queue_url: {}\n  region: {REGION}\n  endpoint_url: {}\n  consumers: 2\n  wait: 20s\n",
                setup.queue_url, setup.moto
            ));
        }
        if setup.sources.poll {
            config.push_str(
                "polling: {concurrency: 8, timeout: 10s, complete_within: 5s, missed_grace: 60s}\npoll:\n",
            );
            for name in &setup.host.names {
                config.push_str(&format!(
                    "  - url: {}\n    repository: codecommit::{REGION}://{name}\n    interval: {}ms\n    max_interval: {}ms\n",
                    setup.host.url(name),
                    setup.interval.as_millis(),
                    setup.max_interval.as_millis()
                ));
            }
        }
        std::fs::write(dir.join("switchyard.yaml"), config)?;
        for name in &setup.host.names {
            std::fs::write(
                dir.join("triggers").join(format!("{name}.yaml")),
                format!(
                    "pipeline: build-{name}\nrepository: codecommit::{REGION}://{name}\nmode: parallel\nconcurrency: 64\non: push\nstart:\n  http:\n    url: http://{}/start\n",
                    setup.runner
                ),
            )?;
        }
        let log = dir.join("serve.log");
        let exe = std::env::current_exe().context("cannot find the switchyard binary")?;
        let mut child = Command::new(exe)
            .arg("serve")
            .current_dir(dir)
            .env("SWITCHYARD_LISTEN", "127.0.0.1:0")
            .env("SWITCHYARD_LOG", "warn,switchyard=info")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .context("cannot start switchyard serve")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        let log_path = log.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(&log_path).ok();
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(addr) = line.strip_prefix("switchyard listening on http://")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.trim().to_owned());
                }
                if let Some(f) = file.as_mut() {
                    let _ = std::io::Write::write_all(f, format!("{line}\n").as_bytes());
                }
            }
        });
        let pid = child.id();
        let child = Killed(child);
        let addr = rx.recv_timeout(Duration::from_secs(30)).map_err(|_| {
            anyhow::anyhow!("switchyard serve did not start; see {}", log.display())
        })?;
        let addr = addr.parse().context("serve printed no address")?;
        Ok(Serve {
            addr,
            pid,
            child,
            log,
        })
    }

    /// CPU seconds (user + system, all threads) the process has used.
    pub fn cpu_s(&self) -> f64 {
        cpu_seconds(self.pid).unwrap_or(0.0)
    }

    /// Stops it (SIGTERM, then the kill on drop).
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// utime + stime of a process from `/proc/PID/stat`, in seconds (USER_HZ is 100 on Linux).
pub(super) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields start after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The sum of every series of metric `name` in a Prometheus text whose line holds `with` (a
/// label such as `kind="fetch"`; empty for every series).
pub fn metric_sum(text: &str, name: &str, with: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(with))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
