//! The `deploy/` shapes, checked as far as this machine can, one file per artifact:
//!
//! - `image`: the Dockerfile builds and copies the binary Cargo.toml names, runs unprivileged
//!   with its state on the volume, lets in what it copies, and passes hadolint;
//! - `kubernetes`: the manifests pass kubernetes-validate (the API's own schemas), the pod
//!   probes, mounts, runs and stops as its switchyard.yaml says, the replicas share the
//!   PostgreSQL store and roll one at a time, kustomize ships every pipeline file;
//! - `systemd`: the unit is hardened, stops after the grace period and passes
//!   `systemd-analyze verify`;
//! - `lambda`: the SAM template passes cfn-lint and wires the function, its URL, the rule, the
//!   queue and its dead-letter queue, the claims table and the policies as the Lambda handler
//!   expects; the package build.sh makes is the one it runs.
//!
//! Each example configuration passes `switchyard check`. What they share is here: the
//! repository's files, the configurations as `serve` and `check` read them, a walk over YAML
//! nodes, and the outside validators (pinned by `.ci/test`) under the lab's skip policy.

mod image;
mod kubernetes;
mod lambda;
mod systemd;

use std::path::{Path, PathBuf};
use std::process::Command;

use switchyard::config::Config;
use switchyard::yaml::{self, Node, Value};
use switchyard_lab::{or_skip, skip};

use crate::support::Project;

/// The uid the image runs as, and the pod and unit expect.
const UID: &str = "10001";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// A configuration under `deploy/`, loaded as `serve` loads it; it must have no error.
fn config(rel: &str) -> Config {
    let (config, diags) = Config::load(Some(&root().join(rel)));
    assert!(diags.is_empty(), "{rel}: {diags:?}");
    config.unwrap_or_else(|| panic!("{rel} did not load"))
}

/// Runs the real `switchyard check` on a copy of `config` and of the trigger files in
/// `triggers` (none when `None`), in a temp project; it must say `ok` without a warning.
fn check(config: &str, triggers: Option<&str>) {
    let project = Project::new();
    project.file("switchyard.yaml", &read(config));
    for file in triggers.map(trigger_files).unwrap_or_default() {
        let name = file.file_name().expect("a file name").to_string_lossy();
        let text = std::fs::read_to_string(&file).expect("a trigger file");
        project.file(&format!("triggers/{name}"), &text);
    }
    let args = [
        "check",
        "--config",
        "switchyard.yaml",
        "--triggers",
        "triggers",
    ];
    let out = project.run(&args, &[], "");
    assert!(
        out.success() && out.stdout.starts_with("ok: ") && !out.stdout.contains("warning"),
        "{config} with {triggers:?}:\n{}{}",
        out.stdout,
        out.stderr
    );
}

/// An outside validator the tests run: the program `variable` names (what `.ci/test` installs,
/// pinned), else `name` on the PATH. `None` (the test returns, after saying `skipped: …`) when
/// it cannot be run here, outside strict mode; under `SWITCHYARD_TEST_STRICT=1` the test fails.
fn validator(variable: &str, name: &str, install: &str) -> Option<PathBuf> {
    or_skip(skip::program(variable, name, install))
}

/// Runs `program ARGS`: whether it exited with 0, and what it printed (standard output, then
/// standard error).
fn validate(program: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The YAML files of a triggers directory under the repository, sorted.
fn trigger_files(rel: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(rel))
        .unwrap_or_else(|e| panic!("read {rel}: {e}"))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

/// A mapping's value at `key`.
fn get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|e| &e.1),
        _ => None,
    }
}

/// The node at a path of keys; panics naming the path when it is missing.
fn at<'a>(node: &'a Node, path: &[&str]) -> &'a Node {
    path.iter().fold(node, |n, key| {
        get(n, key).unwrap_or_else(|| panic!("no {} in {n:?}", path.join(".")))
    })
}

fn text<'a>(node: &'a Node, path: &[&str]) -> &'a str {
    at(node, path)
        .as_str()
        .unwrap_or_else(|| panic!("{} is not a scalar", path.join(".")))
}

fn items(node: &Node) -> &[Node] {
    match &node.value {
        Value::Seq(items) => items,
        _ => panic!("not a list: {node:?}"),
    }
}

/// The list item whose `name` is `name`.
fn named<'a>(list: &'a Node, name: &str) -> &'a Node {
    items(list)
        .iter()
        .find(|n| get(n, "name").and_then(Node::as_str) == Some(name))
        .unwrap_or_else(|| panic!("nothing named {name}"))
}

/// The documents of a multi-document YAML file, by `kind`.
fn documents(rel: &str) -> Vec<Node> {
    let text = read(rel);
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in text.lines().chain(std::iter::once("---")) {
        if line.trim_end() == "---" {
            if !current.trim().is_empty() {
                let doc = yaml::parse(&current).unwrap_or_else(|e| panic!("{rel}: {e}"));
                if !doc.is_null() {
                    docs.push(doc);
                }
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs
}

fn kind<'a>(docs: &'a [Node], kind: &str) -> &'a Node {
    docs.iter()
        .find(|d| get(d, "kind").and_then(Node::as_str) == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}
