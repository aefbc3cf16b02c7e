//! The `exec` target: run a program with argv as written — never through a shell — with the
//! change event on standard input and in the file named by `SWITCHYARD_EVENT`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;

use super::Failure;

/// Bytes of the program's standard error kept for the error message.
const STDERR_TAIL: usize = 2048;

/// Runs `argv` once. Exit status 0 is success; anything else is a failure to retry.
pub async fn run(
    argv: &[String],
    env: &[(&'static str, String)],
    event_json: &[u8],
    event_file: &Path,
    timeout: Duration,
) -> Result<(), Failure> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Failure::dead("start.exec is empty"))?;
    tokio::fs::write(event_file, event_json)
        .await
        .map_err(|e| Failure::retry(format!("cannot write {}: {e}", event_file.display())))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("SWITCHYARD_EVENT", event_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let result = run_child(cmd, program, event_json, timeout).await;
    let _ = tokio::fs::remove_file(event_file).await;
    result
}

async fn run_child(
    mut cmd: Command,
    program: &str,
    event_json: &[u8],
    timeout: Duration,
) -> Result<(), Failure> {
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::retry(format!("cannot run {program:?}: {e}")))?;
    let stdin = child.stdin.take();
    let input = event_json.to_vec();
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
        Ok((_, Ok(status))) if status.success() => Ok(()),
        Ok((tail, Ok(status))) => {
            let text = String::from_utf8_lossy(&tail);
            let last = text.trim().lines().last().unwrap_or("").trim().to_owned();
            let how = match status.code() {
                Some(code) => format!("exit status {code}"),
                None => "killed by a signal".to_owned(),
            };
            let message = if last.is_empty() {
                format!("{program:?} ended with {how}")
            } else {
                format!("{program:?} ended with {how}: {last}")
            };
            Err(Failure::retry(message))
        }
    }
}
