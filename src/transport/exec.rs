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
/// more than the start's own bookkeeping. Otherwise `parent` (the state directory).
///
/// The directory is this process's own: made fresh under a name no one can guess
/// (`switchyard-PID-RANDOM`), mode 0700, and never one that already existed, so another user of
/// the host can neither plant files or links in it nor read the events written there.
pub fn events_dir(parent: &Path) -> PathBuf {
    let shm = Path::new("/dev/shm");
    for dir in [shm, parent] {
        if !dir.is_dir() {
            continue;
        }
        remove_stale_event_dirs(dir);
        if let Ok(made) = private_dir(dir) {
            return made;
        }
    }
    parent.join("events")
}

/// A new directory in `parent` named `switchyard-PID-RANDOM`, mode 0700. It fails rather than
/// take a directory that exists.
fn private_dir(parent: &Path) -> std::io::Result<PathBuf> {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
    let dir = parent.join(format!(
        "switchyard-{}-{}",
        std::process::id(),
        crate::signature::to_hex(random)
    ));
    create_private(&dir)?;
    Ok(dir)
}

/// Creates `dir` (not its parents) with mode 0700; an error when anything is there already.
fn create_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().mode(0o700).create(dir)
}

/// The effective user of this process (the owner of `/proc/self`), when known.
fn own_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Removes the event-file directories of switchyard processes that no longer run (a process
/// killed with SIGKILL cannot remove its own). Only directories this user owns are touched,
/// never a link.
fn remove_stale_event_dirs(parent: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let (Some(uid), Ok(entries)) = (own_uid(), std::fs::read_dir(parent)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("switchyard-")) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        let ours = std::fs::symlink_metadata(entry.path())
            .is_ok_and(|m| m.file_type().is_dir() && m.uid() == uid);
        if ours && pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether `dir` is a directory [`events_dir`] made, which its dispatcher removes when it stops.
pub fn is_private(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("switchyard-"))
}

/// Writes a new event file, mode 0600, never through a link: a file or link already at `file`
/// (left by an attempt killed before it could remove its own) is removed first.
fn write_event(file: &Path, input: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(file)
    };
    let mut out = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(file)?;
            open()?
        }
        other => other?,
    };
    out.write_all(input)
}

/// Runs `command` once, its event file in `dir`.
pub async fn run(dir: &Path, command: Command, timeout: Duration) -> Result<Exit, Failure> {
    if !dir.is_dir() {
        use std::os::unix::fs::DirBuilderExt as _;
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true).mode(0o700);
        if let Err(e) = builder.create(dir) {
            return Err(Failure::retry(format!(
                "cannot create {}: {e}",
                dir.display()
            )));
        }
    }
    let file = dir.join(&command.file_name);
    let input = command.input.clone();
    let path = file.clone();
    let written = tokio::task::spawn_blocking(move || write_event(&path, input.as_bytes()))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    if let Err(e) = written {
        return Err(Failure::retry(format!(
            "cannot write {}: {e}",
            file.display()
        )));
    }
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn each_events_dir_is_new_private_and_unguessable() {
        let parent = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = events_dir(parent.path());
        let b = events_dir(parent.path());
        assert_ne!(a, b, "two dispatchers, two directories");
        for dir in [&a, &b] {
            assert!(dir.is_dir(), "{}", dir.display());
            assert_eq!(mode(dir), 0o700, "{}", dir.display());
            assert!(is_private(dir));
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let random = name.rsplit('-').next().unwrap_or_default();
            assert_eq!(random.len(), 16, "64 random bits in {name}");
        }
        let _ = std::fs::remove_dir_all(a);
        let _ = std::fs::remove_dir_all(b);
    }

    #[test]
    fn a_directory_someone_made_first_is_never_taken() {
        let parent = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let planted = parent.path().join("switchyard-1-0");
        std::fs::create_dir(&planted).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o777))
            .unwrap_or_else(|e| panic!("{e}"));
        let got = create_private(&planted);
        assert_eq!(
            got.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::AlreadyExists)
        );
        assert_eq!(mode(&planted), 0o777, "left as it was");
    }

    #[test]
    fn a_planted_link_is_replaced_not_followed() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let parent = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = events_dir(parent.path());
        let victim = parent.path().join("victim");
        std::fs::write(&victim, "precious").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        let seen = parent.path().join("seen");
        std::os::unix::fs::symlink(&victim, dir.join("start1.json"))
            .unwrap_or_else(|e| panic!("{e}"));
        let command = Command {
            program: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                format!(
                    "cat \"$SWITCHYARD_EVENT\" > {0} && stat -c %a \"$SWITCHYARD_EVENT\" >> {0}",
                    seen.display()
                ),
            ],
            env: Vec::new(),
            input: "{\"event\":1}".into(),
            file_name: "start1.json".into(),
        };
        let exit = rt
            .block_on(run(&dir, command, Duration::from_secs(10)))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(exit.code, Some(0), "{}", exit.stderr);
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap_or_default(),
            "precious",
            "the link's target is untouched"
        );
        assert_eq!(
            std::fs::read_to_string(&seen).unwrap_or_default(),
            "{\"event\":1}600\n",
            "the program read its own event, in a file only this user can read"
        );
        assert!(
            !dir.join("start1.json").exists(),
            "removed after the attempt"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
