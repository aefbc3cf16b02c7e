//! The program transport of `exec`: the event file written, the program run with argv as
//! written — never through a shell — its standard error's tail kept, killed at the timeout.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::target::Failure;
use crate::target::exec::{Command, Exit};

/// Bytes of the program's standard error kept for the error message.
const STDERR_TAIL: usize = 2048;

/// Where the dispatcher's `exec` attempts find their event files (`SWITCHYARD_EVENT`). The files
/// live only as long as an attempt, so a memory-backed file system is preferred when there is
/// one (`/dev/shm`): creating and deleting a file per start on a journaling file system costs
/// more than the start's own bookkeeping. Otherwise `STATE_DIR/events`.
pub fn events_dir(state_dir: &Path) -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        remove_stale_event_dirs(shm);
        // One directory per dispatcher: several may run in one process (tests), and each
        // removes its own when it stops.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = shm.join(format!("switchyard-{}-{n}", std::process::id()));
        if std::fs::create_dir_all(&dir).is_ok() {
            return dir;
        }
    }
    state_dir.join("events")
}

/// Removes the event-file directories of switchyard processes that no longer run (a process
/// killed with SIGKILL cannot remove its own).
fn remove_stale_event_dirs(shm: &Path) {
    let Ok(entries) = std::fs::read_dir(shm) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("switchyard-")) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Runs `command` once, its event file in `dir`.
pub async fn run(dir: &Path, command: Command, timeout: Duration) -> Result<Exit, Failure> {
    if !dir.is_dir()
        && let Err(e) = tokio::fs::create_dir_all(dir).await
    {
        return Err(Failure::retry(format!(
            "cannot create {}: {e}",
            dir.display()
        )));
    }
    let file = dir.join(&command.file_name);
    tokio::fs::write(&file, &command.input)
        .await
        .map_err(|e| Failure::retry(format!("cannot write {}: {e}", file.display())))?;
    let mut cmd = tokio::process::Command::new(&command.program);
    cmd.args(&command.args)
        .envs(command.env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("SWITCHYARD_EVENT", &file)
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let result = run_child(cmd, &command.program, command.input.into_bytes(), timeout).await;
    let _ = tokio::fs::remove_file(&file).await;
    result
}

async fn run_child(
    mut cmd: tokio::process::Command,
    program: &str,
    input: Vec<u8>,
    timeout: Duration,
) -> Result<Exit, Failure> {
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::retry(format!("cannot run {program:?}: {e}")))?;
    let stdin = child.stdin.take();
    let feed = async move {
        if let Some(mut stdin) = stdin {
            // A program that does not read its input is fine: ignore a closed pipe.
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        }
    };
    let mut stderr = child.stderr.take();
    let collect = async move {
        let mut tail = Vec::new();
        if let Some(err) = stderr.as_mut() {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
        }
        tail
    };
    let run = async {
        let ((), tail, status) = tokio::join!(feed, collect, child.wait());
        (tail, status)
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => {
            let _ = child.kill().await;
            Err(Failure::retry(format!(
                "{program:?} ran longer than {timeout:?} and was killed"
            )))
        }
        Ok((_, Err(e))) => Err(Failure::retry(format!(
            "waiting for {program:?} failed: {e}"
        ))),
        Ok((tail, Ok(status))) => Ok(Exit {
            code: status.code(),
            stderr: if status.success() {
                String::new()
            } else {
                String::from_utf8_lossy(&tail).into_owned()
            },
        }),
    }
}
