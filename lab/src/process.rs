//! Child processes of the lab: free ports, waiting for a port, a process group killed on drop,
//! output captured line by line that a waiter is woken by, and whether this process is root.

use std::io::{BufRead as _, Read, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A loopback port nobody listens on now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until something accepts connections on loopback `port`: true; false when `child`
/// exited first (another process may have taken the port); an error after `within`. The
/// servers it waits for (moto, git daemon, sshd) say nothing when ready, so it tries to
/// connect every 20 ms.
pub fn await_port(port: u16, child: &mut Child, within: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + within;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(true);
        }
        if child.try_wait()?.is_some() {
            return Ok(false);
        }
        if Instant::now() > deadline {
            bail!("nothing accepted connections on port {port} within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` (`TERM`, `KILL`) to process `pid`, or to its process group with `group`.
pub fn signal(pid: u32, signal: &str, group: bool) {
    let target = if group {
        format!("-{pid}")
    } else {
        pid.to_string()
    };
    let _ = Command::new("kill")
        .args([format!("-{signal}"), "--".to_owned(), target])
        .stderr(Stdio::null())
        .status();
}

/// A child process leading its own process group; the group is killed (SIGKILL) and the child
/// reaped on drop, so that what it forked (git daemon's per-connection processes, a pipeline's
/// shell) ends with it.
#[derive(Debug)]
pub struct Killed(Child);

impl Killed {
    /// Spawns `command` as the leader of a new process group.
    pub fn spawn(command: &mut Command) -> std::io::Result<Killed> {
        command.process_group(0).spawn().map(Killed)
    }

    /// The child.
    pub fn child(&mut self) -> &mut Child {
        &mut self.0
    }

    /// Its process id (and process group id).
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        signal(self.0.id(), "KILL", true);
        let _ = self.0.wait();
    }
}

/// Text a child writes to a pipe, collected line by line on a thread of its own; a waiter is
/// woken at each line and at the end.
#[derive(Debug, Default)]
pub struct Captured {
    state: Mutex<(String, bool)>,
    changed: Condvar,
}

impl Captured {
    /// Starts reading `from` until its end; every line is also appended to `tee` when given.
    pub fn spawn(from: impl Read + Send + 'static, tee: Option<&Path>) -> Arc<Captured> {
        let captured = Arc::new(Captured::default());
        let sink = Arc::clone(&captured);
        let mut file = tee.and_then(|p| std::fs::File::create(p).ok());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(from).lines().map_while(Result::ok) {
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                if let Ok(mut state) = sink.state.lock() {
                    state.0.push_str(&line);
                    state.0.push('\n');
                }
                sink.changed.notify_all();
            }
            if let Ok(mut state) = sink.state.lock() {
                state.1 = true;
            }
            sink.changed.notify_all();
        });
        captured
    }

    /// Everything so far.
    pub fn text(&self) -> String {
        self.state.lock().map(|s| s.0.clone()).unwrap_or_default()
    }

    /// Blocks until `found` finds something in the text, woken at each new line: what it
    /// found; `None` when the pipe closed without it, or after `within`.
    pub fn wait_for<T>(
        &self,
        within: Duration,
        mut found: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + within;
        let mut state = self.state.lock().ok()?;
        loop {
            if let Some(v) = found(&state.0) {
                return Some(v);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if state.1 {
                return None;
            }
            state = self.changed.wait_timeout(state, left).ok()?.0;
        }
    }
}

/// The effective user id of this process, from `/proc/self/status` (or `id -u`): the crate
/// forbids the unsafe code `geteuid` needs.
pub fn effective_uid() -> anyhow::Result<u32> {
    let from_proc = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1))
                .and_then(|euid| euid.parse().ok())
        });
    match from_proc {
        Some(uid) => Ok(uid),
        None => output(Command::new("id").arg("-u"))?
            .parse()
            .context("`id -u` printed no number"),
    }
}

/// Runs `command` to its end; its stdout, or an error naming it and what it said.
pub fn output(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
