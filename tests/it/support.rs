//! Helpers: a project folder in a temp dir, and the real binary run inside it.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A throwaway project: `triggers/`, maybe `switchyard.yaml`.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// An empty project with an empty `triggers/`.
    pub fn new() -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("triggers")).expect("triggers dir");
        Project { dir }
    }

    /// The project's root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file relative to the root.
    pub fn file(&self, rel: &str, text: &str) -> &Project {
        let path = self.root().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent dir");
        }
        std::fs::write(path, text).expect("write file");
        self
    }

    /// Runs `switchyard ARGS` in the project root, with `stdin` as standard input.
    pub fn run(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(args)
            .current_dir(self.root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchyard");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let output = child.wait_with_output().expect("wait for switchyard");
        Run::from(output)
    }
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A push change event as JSON.
pub fn push_event(repo: &str, git_ref: &str, paths: &[&str]) -> String {
    serde_json::json!({
        "schema": "switchyard.change/v1",
        "repository": repo,
        "kind": "push",
        "ref": git_ref,
        "before": "1111111111111111111111111111111111111111",
        "after": "2222222222222222222222222222222222222222",
        "commit_count": 1,
        "changed_paths": paths,
        "changed_paths_complete": true,
        "pull_request": null,
        "source": {"kind": "webhook", "provider": "github", "delivery_id": "d-1"},
        "occurred_at": null,
        "received_at": "2026-11-26T10:00:00.120Z"
    })
    .to_string()
}
