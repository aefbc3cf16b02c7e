//! The `deploy/` shapes, checked as far as this machine can: the Dockerfile builds and copies the
//! binary Cargo.toml names, the example configurations pass `switchyard check`, the systemd unit
//! is hardened and passes `systemd-analyze verify`, the Kubernetes pod probes, mounts, runs and
//! stops as its switchyard.yaml says, and the SAM template passes cfn-lint and wires the
//! function, its URL, the rule, the queue and its dead-letter queue as the Lambda handler expects.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use switchyard::config::{Auth, Config};
use switchyard::pipeline::Pipelines;
use switchyard::secret::SecretRef;
use switchyard::yaml::{self, Node, Value};

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

/// Whether `program` can be run here; when not, says why the test stops short. Under
/// `.ci/test` (`SWITCHYARD_TEST_STRICT=1`), which installs it, a missing program fails.
fn have(program: &str, test: &str) -> bool {
    match Command::new(program).arg("--version").output() {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var_os("SWITCHYARD_TEST_STRICT").is_none(),
                "{test}: `{program}` cannot be run here ({e}); .ci/test installs it"
            );
            eprintln!("{test}: skipped, `{program}` cannot be run here ({e})");
            false
        }
    }
}

// ---- Dockerfile ---------------------------------------------------------------------------

/// The name of Cargo.toml's `[[bin]]`.
fn bin_name() -> String {
    let manifest = read("Cargo.toml");
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(value) = line.strip_prefix("name") {
            let value = value.trim_start().trim_start_matches('=').trim();
            return value.trim_matches('"').to_owned();
        }
    }
    panic!("Cargo.toml has no [[bin]] with a name");
}

/// One Dockerfile instruction: the keyword (upper case) and the rest of its (joined) lines.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The Dockerfile's instructions, continuation lines joined and comments dropped.
fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push(Instruction {
                    keyword: keyword.to_uppercase(),
                    args: args.split_whitespace().collect::<Vec<_>>().join(" "),
                });
                current.clear();
            }
        }
    }
    assert!(
        current.is_empty(),
        "the Dockerfile ends inside a continued line"
    );
    out
}

/// The build stages: the stage name (`AS name`, or the index) and its instructions.
fn stages(all: Vec<Instruction>) -> Vec<(String, Vec<Instruction>)> {
    let mut stages: Vec<(String, Vec<Instruction>)> = Vec::new();
    for ins in all {
        if ins.keyword == "FROM" {
            let words: Vec<&str> = ins.args.split(' ').collect();
            let name = match words.iter().position(|w| w.eq_ignore_ascii_case("as")) {
                Some(i) => words[i + 1].to_owned(),
                None => stages.len().to_string(),
            };
            stages.push((name, vec![ins]));
        } else {
            let (_, list) = stages.last_mut().expect("an instruction before FROM");
            list.push(ins);
        }
    }
    stages
}

/// The strings of an exec-form (JSON array) instruction.
fn exec_form(ins: &Instruction) -> Vec<String> {
    serde_json::from_str(&ins.args)
        .unwrap_or_else(|e| panic!("{} {} is not in exec form: {e}", ins.keyword, ins.args))
}

fn one<'a>(stage: &'a [Instruction], keyword: &str) -> &'a Instruction {
    let found: Vec<&Instruction> = stage.iter().filter(|i| i.keyword == keyword).collect();
    assert_eq!(found.len(), 1, "expected one {keyword}: {found:?}");
    found[0]
}

#[test]
fn the_image_is_built_from_the_release_binary_cargo_names() {
    let bin = bin_name();
    let stages = stages(instructions(&read("deploy/Dockerfile")));
    assert!(stages.len() >= 2, "a multi-stage build: {stages:?}");
    let (_, runtime) = stages.last().expect("a stage");

    // The runtime stage copies one file from another stage...
    let copies: Vec<Vec<&str>> = runtime
        .iter()
        .filter(|i| i.keyword == "COPY" && i.args.starts_with("--from="))
        .map(|i| i.args.split(' ').collect())
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "one COPY --from in the runtime stage: {copies:?}"
    );
    let [from, source, dest] = copies[0][..] else {
        panic!("COPY --from=STAGE SOURCE DEST: {:?}", copies[0]);
    };
    let from = from.trim_start_matches("--from=");
    let (_, build) = stages
        .iter()
        .find(|(name, _)| name == from)
        .unwrap_or_else(|| panic!("no stage named {from}"));

    // ...the one that stage's release build makes: cargo's default target directory under
    // the stage's working directory, nothing moving it elsewhere.
    let cargo = build
        .iter()
        .filter(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .map(|i| i.args.as_str())
        .collect::<Vec<_>>();
    assert_eq!(cargo.len(), 1, "one cargo build in stage {from}: {cargo:?}");
    let cargo = cargo[0];
    let words: Vec<&str> = cargo.split(' ').collect();
    for flag in ["--release", "--locked"] {
        assert!(words.contains(&flag), "{cargo:?} lacks {flag}");
    }
    assert!(
        words.windows(2).any(|w| w == ["--bin", bin.as_str()]),
        "{cargo:?} does not build --bin {bin}"
    );
    for moves in [
        "--target",
        "--target-dir",
        "--profile",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_",
    ] {
        assert!(
            !build.iter().any(|i| i.args.contains(moves)),
            "stage {from} sets {moves}: the binary would not be at target/release"
        );
    }
    let workdir = &build
        .iter()
        .rfind(|i| i.keyword == "WORKDIR")
        .expect("the build stage sets WORKDIR")
        .args;
    assert_eq!(source, format!("{workdir}/target/release/{bin}"));

    // The entry point is the file copied.
    let entrypoint = exec_form(one(runtime, "ENTRYPOINT"));
    assert_eq!(
        entrypoint,
        [dest],
        "ENTRYPOINT runs what COPY put at {dest}"
    );
    assert_eq!(exec_form(one(runtime, "CMD")), ["serve"]);
}

#[test]
fn the_image_runs_unprivileged_with_its_state_on_the_volume() {
    let stages = stages(instructions(&read("deploy/Dockerfile")));
    let (_, runtime) = stages.last().expect("a stage");
    let baked = config("deploy/container/switchyard.yaml");

    let user = &one(runtime, "USER").args;
    assert_eq!(user.split(':').next(), Some(UID), "USER {user}");
    let volume = &one(runtime, "VOLUME").args;
    assert_eq!(
        Path::new(volume),
        baked.state_dir,
        "VOLUME is the state_dir"
    );
    let port = baked.listen.port().to_string();
    let listen = runtime
        .iter()
        .filter(|i| i.keyword == "ENV")
        .find_map(|i| i.args.strip_prefix("SWITCHYARD_LISTEN="))
        .expect("ENV SWITCHYARD_LISTEN");
    assert_eq!(listen, format!("0.0.0.0:{port}"));
    assert_eq!(one(runtime, "EXPOSE").args, port);
    assert_eq!(one(runtime, "WORKDIR").args, "/srv/switchyard");
    let baked_copy = runtime
        .iter()
        .find(|i| i.keyword == "COPY" && i.args.starts_with("deploy/container/switchyard.yaml "))
        .expect("the image's switchyard.yaml is copied");
    assert_eq!(
        baked_copy.args.split(' ').nth(1),
        Some("/srv/switchyard/switchyard.yaml")
    );
}

#[test]
fn the_build_context_lets_in_what_the_dockerfile_copies() {
    let ignore = read("deploy/Dockerfile.dockerignore");
    let rules: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(rules.first(), Some(&"*"), "everything left out first");
    let let_in: BTreeSet<&str> = rules[1..]
        .iter()
        .map(|r| {
            r.strip_prefix('!')
                .unwrap_or_else(|| panic!("{r}: only ! rules follow"))
        })
        .collect();
    for rel in &let_in {
        assert!(
            root().join(rel).exists(),
            "{rel} is let in but does not exist"
        );
    }
    let mut copied = BTreeSet::new();
    for ins in instructions(&read("deploy/Dockerfile")) {
        if ins.keyword == "COPY" && !ins.args.starts_with("--") {
            let words: Vec<&str> = ins.args.split(' ').collect();
            for source in &words[..words.len() - 1] {
                copied.insert(source.trim_end_matches('/').to_owned());
            }
        }
    }
    for source in &copied {
        assert!(
            let_in.contains(source.as_str()),
            "COPY {source}: left out of the context"
        );
    }
    // Cargo refuses a manifest whose benchmark files or workspace members are missing.
    assert!(
        copied.contains("benches"),
        "benches/ is copied for Cargo.toml's [[bench]]"
    );
    assert!(
        copied.contains("lab"),
        "lab/ is copied: a member of Cargo.toml's [workspace]"
    );
}

// ---- the example configurations ----------------------------------------------------------

/// Runs the real `switchyard check` on a copy of `config` and of the trigger files in
/// `triggers` (none when `None`), in a temp dir.
fn check(config: &str, triggers: Option<&str>) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("switchyard.yaml"), read(config)).expect("write config");
    let to = dir.path().join("triggers");
    std::fs::create_dir(&to).expect("triggers dir");
    for file in triggers.map(trigger_files).unwrap_or_default() {
        let name = file.file_name().expect("a file name");
        std::fs::copy(&file, to.join(name)).expect("copy a trigger file");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "check",
            "--config",
            "switchyard.yaml",
            "--triggers",
            "triggers",
        ])
        .current_dir(dir.path())
        .output()
        .expect("run switchyard check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.starts_with("ok: ") && !stdout.contains("warning"),
        "{config} with {triggers:?}:\n{stdout}{stderr}"
    );
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

#[test]
fn the_example_configurations_pass_check() {
    check("deploy/container/switchyard.yaml", None);
    check(
        "deploy/kubernetes/config/switchyard.yaml",
        Some("deploy/kubernetes/config/triggers"),
    );
    check("deploy/systemd/switchyard.yaml", None);
    for rel in [
        "deploy/container/switchyard.yaml",
        "deploy/kubernetes/config/switchyard.yaml",
        "deploy/systemd/switchyard.yaml",
    ] {
        assert_eq!(
            config(rel).state_dir,
            Path::new("/var/lib/switchyard"),
            "{rel}"
        );
    }
}

// ---- Kubernetes -------------------------------------------------------------------------

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

/// The environment variables that the `env:` secret references of a configuration and its
/// pipelines need.
fn env_refs(config: &Config, pipelines: &Pipelines) -> BTreeSet<String> {
    let mut refs: Vec<&SecretRef> = config.receivers.iter().flat_map(|r| &r.secrets).collect();
    for repo in &config.poll {
        match &repo.auth {
            Some(Auth::Token { token, .. }) => refs.push(token),
            Some(Auth::SshKey(key)) => refs.push(key),
            None => {}
        }
    }
    for p in &pipelines.list {
        refs.extend(p.target.secrets());
    }
    refs.into_iter()
        .filter_map(|r| match r {
            SecretRef::Env(name) => Some(name.clone()),
            SecretRef::File(_) => None,
        })
        .collect()
}

#[test]
fn the_kubernetes_pod_probes_mounts_and_stops_as_its_configuration_says() {
    let config = config("deploy/kubernetes/config/switchyard.yaml");
    let (pipelines, diags) = Pipelines::load_dir(&root().join("deploy/kubernetes/config/triggers"));
    assert!(diags.is_empty(), "{diags:?}");
    let docs = documents("deploy/kubernetes/pod.yaml");
    let deployment = kind(&docs, "Deployment");

    // One writer per state directory.
    assert_eq!(text(deployment, &["spec", "replicas"]), "1");
    assert_eq!(text(deployment, &["spec", "strategy", "type"]), "Recreate");

    let pod = at(deployment, &["spec", "template", "spec"]);
    let grace: u64 = text(pod, &["terminationGracePeriodSeconds"])
        .parse()
        .expect("seconds");
    assert!(
        Duration::from_secs(grace) > config.shutdown_grace,
        "terminationGracePeriodSeconds {grace} is not longer than shutdown_grace {:?}",
        config.shutdown_grace
    );
    assert_eq!(text(pod, &["securityContext", "runAsNonRoot"]), "true");
    assert_eq!(text(pod, &["securityContext", "fsGroup"]), UID);

    let containers = at(pod, &["containers"]);
    assert_eq!(items(containers).len(), 2, "a runner and switchyard");
    let sidecar = named(containers, "switchyard");
    let env = at(sidecar, &["env"]);

    // Probes and the container port are where SWITCHYARD_LISTEN makes it listen.
    let listen = text(named(env, "SWITCHYARD_LISTEN"), &["value"]);
    let port = listen.rsplit_once(':').expect("IP:PORT").1;
    assert_eq!(
        listen
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip().is_unspecified()),
        Ok(true)
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(text(sidecar, &[probe, "httpGet", "path"]), path, "{probe}");
        assert_eq!(text(sidecar, &[probe, "httpGet", "port"]), port, "{probe}");
    }
    let http = named(at(sidecar, &["ports"]), "http");
    assert_eq!(text(http, &["containerPort"]), port);
    let service = kind(&docs, "Service");
    assert_eq!(
        text(
            named(at(service, &["spec", "ports"]), "http"),
            &["targetPort"]
        ),
        "http"
    );

    // Every env: reference of the configuration and its pipelines comes from the Secret.
    for name in env_refs(&config, &pipelines) {
        let var = named(env, &name);
        assert_eq!(
            text(var, &["valueFrom", "secretKeyRef", "name"]),
            "switchyard",
            "{name}"
        );
    }

    assert_hardened(sidecar);

    // The state volume is mounted at the state_dir; the configuration and the pipelines where
    // the arguments name them, from the ConfigMaps kustomization.yaml generates.
    let volumes = at(pod, &["volumes"]);
    let mounts = at(sidecar, &["volumeMounts"]);
    let mount_of = |volume: &str| text(named(mounts, volume), &["mountPath"]).to_owned();
    let claim = text(
        named(volumes, "state"),
        &["persistentVolumeClaim", "claimName"],
    );
    assert_eq!(
        text(kind(&docs, "PersistentVolumeClaim"), &["metadata", "name"]),
        claim
    );
    assert_eq!(Path::new(&mount_of("state")), config.state_dir);
    let args: Vec<&str> = items(at(sidecar, &["args"]))
        .iter()
        .filter_map(Node::as_str)
        .collect();
    let config_path = mount_of("config");
    assert_eq!(
        text(named(mounts, "config"), &["subPath"]),
        "switchyard.yaml"
    );
    assert_eq!(
        args,
        [
            "serve",
            "--config",
            &config_path,
            "--triggers",
            &mount_of("triggers")
        ]
    );
    assert_eq!(
        text(named(volumes, "config"), &["configMap", "name"]),
        "switchyard-config"
    );
    assert_eq!(
        text(named(volumes, "triggers"), &["configMap", "name"]),
        "switchyard-triggers"
    );
}

#[test]
fn kustomize_ships_every_pipeline_file() {
    for example in ["deploy/kubernetes", "deploy/kubernetes-replicas"] {
        let kustomization = yaml::parse(&read(&format!("{example}/kustomization.yaml")))
            .expect("kustomization.yaml");
        for resource in items(at(&kustomization, &["resources"])) {
            let rel = resource.as_str().expect("a file");
            assert!(
                root().join(example).join(rel).exists(),
                "{example}: {rel} is missing"
            );
        }
        let generators = at(&kustomization, &["configMapGenerator"]);
        let files = |name: &str| -> Vec<String> {
            items(at(named(generators, name), &["files"]))
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        };
        assert_eq!(
            files("switchyard-config"),
            ["config/switchyard.yaml"],
            "{example}"
        );
        let on_disk: Vec<String> = trigger_files(&format!("{example}/config/triggers"))
            .iter()
            .map(|p| {
                format!(
                    "config/triggers/{}",
                    p.file_name().expect("name").to_string_lossy()
                )
            })
            .collect();
        assert!(!on_disk.is_empty());
        assert_eq!(
            files("switchyard-triggers"),
            on_disk,
            "{example}: every file in config/triggers/"
        );
    }
}

// ---- Kubernetes, several replicas ----------------------------------------------------------

const REPLICAS: &str = "deploy/kubernetes-replicas";

/// The names of the `env:NAME` references anywhere in a YAML document.
fn env_names(node: &Node, out: &mut BTreeSet<String>) {
    match &node.value {
        Value::Scalar(text, _) => {
            if let Some(name) = text.strip_prefix("env:") {
                out.insert(name.to_owned());
            }
        }
        Value::Seq(list) => list.iter().for_each(|n| env_names(n, out)),
        Value::Map(entries) => entries.iter().for_each(|(_, v)| env_names(v, out)),
    }
}

/// The labels a selector's `matchLabels` asks for, as `key=value`.
fn labels(node: &Node) -> BTreeSet<String> {
    let Value::Map(entries) = &node.value else {
        panic!("labels are not a mapping: {node:?}");
    };
    entries
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                k.as_str().expect("a key"),
                v.as_str().expect("a value")
            )
        })
        .collect()
}

/// The replicas example, read as YAML only: its `switchyard.yaml` uses the `store:` key, so
/// this test does not load it as a `Config` (see the test that runs `switchyard check` on it).
#[test]
fn the_kubernetes_replicas_share_the_postgres_store_and_roll_one_at_a_time() {
    let config =
        yaml::parse(&read(&format!("{REPLICAS}/config/switchyard.yaml"))).expect("switchyard.yaml");
    // The store is PostgreSQL, its URL a reference the Secret fills.
    let url = text(&config, &["store", "postgres"]);
    assert!(
        url.starts_with("env:") || url.starts_with("file:"),
        "store.postgres is a reference: {url}"
    );
    let state_dir = text(&config, &["state_dir"]);
    let grace = switchyard::diag::parse_duration(text(&config, &["shutdown_grace"]))
        .expect("shutdown_grace");

    let docs = documents(&format!("{REPLICAS}/deployment.yaml"));
    let deployment = kind(&docs, "Deployment");
    let replicas: u32 = text(deployment, &["spec", "replicas"])
        .parse()
        .expect("replicas");
    assert!(replicas >= 3, "several replicas: {replicas}");
    assert_eq!(
        text(deployment, &["spec", "strategy", "type"]),
        "RollingUpdate"
    );
    let unavailable: u32 = text(
        deployment,
        &["spec", "strategy", "rollingUpdate", "maxUnavailable"],
    )
    .parse()
    .expect("maxUnavailable as a number");

    // The budget holds two replicas up, and the rolling update keeps to it.
    let pods = labels(at(deployment, &["spec", "template", "metadata", "labels"]));
    assert!(labels(at(deployment, &["spec", "selector", "matchLabels"])).is_subset(&pods));
    let budget = kind(&docs, "PodDisruptionBudget");
    let min_available: u32 = text(budget, &["spec", "minAvailable"])
        .parse()
        .expect("minAvailable");
    assert_eq!(min_available, 2);
    assert!(
        replicas - unavailable >= min_available,
        "a rolling update takes down {unavailable} of {replicas}, below minAvailable {min_available}"
    );
    assert!(labels(at(budget, &["spec", "selector", "matchLabels"])).is_subset(&pods));
    let service = kind(&docs, "Service");
    assert!(labels(at(service, &["spec", "selector"])).is_subset(&pods));
    assert_eq!(
        text(
            named(at(service, &["spec", "ports"]), "http"),
            &["targetPort"]
        ),
        "http"
    );

    let pod = at(deployment, &["spec", "template", "spec"]);
    let stop: u64 = text(pod, &["terminationGracePeriodSeconds"])
        .parse()
        .expect("seconds");
    assert!(
        Duration::from_secs(stop) > grace,
        "terminationGracePeriodSeconds {stop} is not longer than shutdown_grace {grace:?}"
    );
    let containers = items(at(pod, &["containers"]));
    assert_eq!(
        containers.len(),
        1,
        "switchyard alone: the runner is elsewhere"
    );
    let switchyard = named(at(pod, &["containers"]), "switchyard");
    let env = at(switchyard, &["env"]);

    // Probes and the container port are where SWITCHYARD_LISTEN makes it listen.
    let listen = text(named(env, "SWITCHYARD_LISTEN"), &["value"]);
    let port = listen.rsplit_once(':').expect("IP:PORT").1;
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(
            text(switchyard, &[probe, "httpGet", "path"]),
            path,
            "{probe}"
        );
        assert_eq!(
            text(switchyard, &[probe, "httpGet", "port"]),
            port,
            "{probe}"
        );
    }
    assert_eq!(
        text(
            named(at(switchyard, &["ports"]), "http"),
            &["containerPort"]
        ),
        port
    );

    // Every env: reference of the configuration and its pipelines comes from the Secret, and
    // the example Secret has every key the Deployment reads.
    let mut needed = BTreeSet::new();
    env_names(&config, &mut needed);
    for file in trigger_files(&format!("{REPLICAS}/config/triggers")) {
        let text = std::fs::read_to_string(&file).expect("a trigger file");
        env_names(&yaml::parse(&text).expect("a trigger file"), &mut needed);
    }
    assert!(needed.contains("SWITCHYARD_DATABASE_URL"), "{needed:?}");
    let secret = yaml::parse(&read(&format!("{REPLICAS}/secret.example.yaml"))).expect("secret");
    for name in &needed {
        let from = at(named(env, name), &["valueFrom", "secretKeyRef"]);
        assert_eq!(text(from, &["name"]), text(&secret, &["metadata", "name"]));
        let key = text(from, &["key"]);
        assert!(
            get(at(&secret, &["stringData"]), key).is_some(),
            "secret.example.yaml has no {key} (for {name})"
        );
    }

    assert_hardened(switchyard);

    // No state of its own: the state_dir (the mirrors) is an emptyDir, and nothing claims a
    // volume; the configuration and the pipelines where the arguments name them.
    assert!(
        !docs
            .iter()
            .any(|d| get(d, "kind").and_then(Node::as_str) == Some("PersistentVolumeClaim")),
        "no volume claim: the state is in PostgreSQL"
    );
    let volumes = at(pod, &["volumes"]);
    for volume in items(volumes) {
        assert!(get(volume, "persistentVolumeClaim").is_none(), "{volume:?}");
    }
    let mounts = at(switchyard, &["volumeMounts"]);
    let mirrors = items(mounts)
        .iter()
        .find(|m| text(m, &["mountPath"]) == state_dir)
        .expect("a volume at state_dir");
    let mirrors = named(volumes, text(mirrors, &["name"]));
    assert!(get(mirrors, "emptyDir").is_some(), "{mirrors:?}");
    let mount_of = |volume: &str| text(named(mounts, volume), &["mountPath"]).to_owned();
    let args: Vec<&str> = items(at(switchyard, &["args"]))
        .iter()
        .filter_map(Node::as_str)
        .collect();
    assert_eq!(
        args,
        [
            "serve",
            "--config",
            &mount_of("config"),
            "--triggers",
            &mount_of("triggers")
        ]
    );
    assert_eq!(
        text(named(mounts, "config"), &["subPath"]),
        "switchyard.yaml"
    );
    assert_eq!(
        text(named(volumes, "config"), &["configMap", "name"]),
        "switchyard-config"
    );
    assert_eq!(
        text(named(volumes, "triggers"), &["configMap", "name"]),
        "switchyard-triggers"
    );
}

/// Fails until the `store:` key of `switchyard.yaml` (the PostgreSQL store) is in the binary.
#[test]
fn the_kubernetes_replicas_configuration_passes_check() {
    check(
        &format!("{REPLICAS}/config/switchyard.yaml"),
        Some(&format!("{REPLICAS}/config/triggers")),
    );
}

// ---- systemd ------------------------------------------------------------------------------

const UNIT: &str = "deploy/systemd/switchyard.service";

/// The `[Service]` section's settings, in order.
fn service_settings(unit: &str) -> Vec<(String, String)> {
    let mut section = "";
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]"
            && !line.is_empty()
            && !line.starts_with('#')
            && let Some((key, value)) = line.split_once('=')
        {
            out.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    out
}

/// A setting's value; the last one wins, as in systemd.
fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .rfind(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_unit_is_hardened_and_stops_after_the_grace_period() {
    let settings = service_settings(&read(UNIT));
    #[rustfmt::skip]
    let want: &[(&str, &str)] = &[
        ("Type", "simple"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "switchyard"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("SystemCallFilter", "@system-service"),
        ("CapabilityBoundingSet", ""),
        ("EnvironmentFile", "-/etc/switchyard/env"),
    ];
    for (key, value) in want {
        assert_eq!(setting(&settings, key), Some(*value), "{key}= in {UNIT}");
    }

    // The configuration it runs with keeps its state in the StateDirectory, and stops in time.
    let exec = setting(&settings, "ExecStart").expect("ExecStart");
    let words: Vec<&str> = exec.split(' ').collect();
    let [
        program,
        "serve",
        "--config",
        config_path,
        "--triggers",
        triggers,
    ] = words[..]
    else {
        panic!("ExecStart={exec}");
    };
    assert_eq!(program, "/usr/local/bin/switchyard");
    assert_eq!(config_path, "/etc/switchyard/switchyard.yaml");
    assert_eq!(triggers, "/etc/switchyard/triggers");
    let config = config("deploy/systemd/switchyard.yaml");
    assert_eq!(
        config.state_dir,
        Path::new("/var/lib/switchyard"),
        "StateDirectory=switchyard"
    );
    let stop = setting(&settings, "TimeoutStopSec").expect("TimeoutStopSec");
    let stop: u64 = stop
        .trim_end_matches('s')
        .parse()
        .expect("TimeoutStopSec in seconds");
    assert!(
        Duration::from_secs(stop) > config.shutdown_grace,
        "TimeoutStopSec={stop} is not longer than shutdown_grace {:?}",
        config.shutdown_grace
    );
}

/// `systemd-analyze verify` on `unit` (the text of switchyard.service): its success and what it
/// said about the unit.
fn verify(unit: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("switchyard.service");
    std::fs::write(&path, unit).expect("write the unit");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let said = String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        .filter(|l| l.contains("switchyard.service"))
        .collect::<Vec<_>>()
        .join("\n");
    (out.status.success(), said)
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if !have("systemd-analyze", "the_unit_passes_systemd_analyze_verify") {
        return;
    }
    // The binary must exist for verify: the one built here stands in for /usr/local/bin's.
    let unit = read(UNIT).replace(
        "ExecStart=/usr/local/bin/switchyard ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_switchyard")),
    );
    assert!(
        unit.contains(env!("CARGO_BIN_EXE_switchyard")),
        "ExecStart was replaced"
    );
    let (ok, said) = verify(&unit);
    assert!(
        ok && said.is_empty(),
        "systemd-analyze verify {UNIT}:\n{said}"
    );

    // What a mistake looks like to this systemd, so that the check above can fail.
    let (_, said) = verify(&unit.replace("ProtectHome=yes", "ProtectHome=yes\nProtectHom=yes"));
    assert!(
        said.contains("ProtectHom"),
        "a misspelt directive goes unnoticed: {said:?}"
    );
}

// ---- Lambda (AWS SAM) ---------------------------------------------------------------------

const TEMPLATE: &str = "deploy/template.yaml";

/// cfn-lint: `SWITCHYARD_CFN_LINT` (which .ci/test sets to the version it pins), else the one
/// on the PATH.
fn cfn_lint_program() -> String {
    std::env::var("SWITCHYARD_CFN_LINT").unwrap_or_else(|_| "cfn-lint".to_owned())
}

/// cfn-lint on a template: whether it found nothing (errors, warnings or notes), and what it
/// said.
fn cfn_lint(program: &str, template: &Path) -> (bool, String) {
    let out = Command::new(program)
        .arg(template)
        .output()
        .expect("run cfn-lint");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn the_template_passes_cfn_lint() {
    let program = cfn_lint_program();
    if !have(&program, "the_template_passes_cfn_lint") {
        return;
    }
    let (ok, said) = cfn_lint(&program, &root().join(TEMPLATE));
    assert!(ok, "{program} {TEMPLATE}:\n{said}");

    // What a mistake looks like to this cfn-lint, so that the check above can fail.
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("template.yaml");
    let text = read(TEMPLATE).replace("MemorySize:", "MemorySise:");
    std::fs::write(&broken, text).expect("write the broken template");
    let (ok, said) = cfn_lint(&program, &broken);
    assert!(
        !ok && said.contains("MemorySise"),
        "a misspelt property goes unnoticed: {said:?}"
    );
}

/// The template's resources of one type, by logical id.
fn resources_of<'a>(template: &'a Node, kind: &str) -> Vec<(&'a str, &'a Node)> {
    let Value::Map(entries) = &at(template, &["Resources"]).value else {
        panic!("Resources is not a mapping");
    };
    entries
        .iter()
        .filter(|(_, r)| get(r, "Type").and_then(Node::as_str) == Some(kind))
        .map(|(id, r)| (id.as_str().expect("a logical id"), r))
        .collect()
}

/// The one resource of a type.
fn only<'a>(template: &'a Node, kind: &str) -> (&'a str, &'a Node) {
    let found = resources_of(template, kind);
    assert_eq!(found.len(), 1, "one {kind}: {found:?}");
    found[0]
}

/// The logical id in `Fn::GetAtt: [ID, ATTRIBUTE]`.
fn get_att<'a>(node: &'a Node, attribute: &str) -> &'a str {
    let pair = items(at(node, &["Fn::GetAtt"]));
    assert_eq!(pair.len(), 2, "Fn::GetAtt [ID, ATTRIBUTE]: {node:?}");
    assert_eq!(pair[1].as_str(), Some(attribute), "{node:?}");
    pair[0].as_str().expect("a logical id")
}

/// A node as JSON, scalars as strings.
fn json_of(node: &Node) -> serde_json::Value {
    match &node.value {
        Value::Scalar(s, _) => serde_json::Value::String(s.clone()),
        Value::Seq(list) => list.iter().map(json_of).collect(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| (k.as_str().expect("a scalar key").to_owned(), json_of(v)))
            .collect(),
    }
}

/// The values an `Fn::If` tree can take: its leaves, each branch followed.
fn branches(node: &Node) -> Vec<&Node> {
    match get(node, "Fn::If") {
        Some(args) => items(args)[1..].iter().flat_map(branches).collect(),
        None => vec![node],
    }
}

fn is_no_value(node: &Node) -> bool {
    get(node, "Ref").and_then(Node::as_str) == Some("AWS::NoValue")
}

#[test]
fn the_template_runs_the_package_build_sh_makes() {
    let template = yaml::parse(&read(TEMPLATE)).expect(TEMPLATE);
    assert_eq!(
        text(&template, &["Transform"]),
        "AWS::Serverless-2016-10-31"
    );
    let (_, function) = only(&template, "AWS::Serverless::Function");
    let props = at(function, &["Properties"]);
    assert_eq!(text(props, &["Runtime"]), "provided.al2023");
    assert_eq!(text(props, &["Handler"]), "bootstrap");
    // Webhooks reach the function URL unauthenticated: switchyard checks their signatures.
    assert_eq!(text(props, &["FunctionUrlConfig", "AuthType"]), "NONE");

    // CodeUri, relative to the template, is the directory build.sh fills.
    let code = Path::new(TEMPLATE)
        .parent()
        .expect("deploy/")
        .join(text(props, &["CodeUri"]));
    let code: PathBuf = code.components().fold(PathBuf::new(), |mut p, c| {
        match c {
            std::path::Component::ParentDir => assert!(p.pop(), "CodeUri leaves the repository"),
            other => p.push(other),
        }
        p
    });
    let build = read("deploy/lambda/build.sh");
    assert!(
        build.contains(&format!("out=\"$root/{}\"", code.display())),
        "build.sh does not make {}",
        code.display()
    );
    assert!(
        build.contains("install -m 0755 \"$bin\" \"$out/bootstrap\""),
        "build.sh does not install the binary as bootstrap"
    );
}

#[test]
fn the_queue_outlasts_the_function_and_drains_to_a_dead_letter_queue() {
    let template = yaml::parse(&read(TEMPLATE)).expect(TEMPLATE);
    let (function_id, function) = only(&template, "AWS::Serverless::Function");
    let props = at(function, &["Properties"]);
    let timeout: u64 = text(props, &["Timeout"])
        .parse()
        .expect("Timeout in seconds");

    // One SQS event source, which reports the failed messages of a batch.
    let Value::Map(events) = &at(props, &["Events"]).value else {
        panic!("Events is not a mapping");
    };
    let sqs: Vec<&Node> = events
        .iter()
        .map(|(_, e)| e)
        .filter(|e| get(e, "Type").and_then(Node::as_str) == Some("SQS"))
        .collect();
    assert_eq!(sqs.len(), 1, "one SQS event on {function_id}");
    let source = at(sqs[0], &["Properties"]);
    let responses: Vec<&str> = items(at(source, &["FunctionResponseTypes"]))
        .iter()
        .filter_map(Node::as_str)
        .collect();
    assert_eq!(responses, ["ReportBatchItemFailures"]);
    let window: u64 = get(source, "MaximumBatchingWindowInSeconds")
        .and_then(Node::as_str)
        .map_or(0, |s| s.parse().expect("seconds"));

    // The queue it reads: hidden while a batch may still be worked on, as Lambda advises.
    let queue_id = get_att(at(source, &["Queue"]), "Arn");
    let queue = at(&template, &["Resources", queue_id]);
    assert_eq!(text(queue, &["Type"]), "AWS::SQS::Queue");
    let visibility: u64 = text(queue, &["Properties", "VisibilityTimeout"])
        .parse()
        .expect("VisibilityTimeout in seconds");
    assert!(
        visibility >= 6 * timeout + window,
        "VisibilityTimeout {visibility} < 6 × Timeout {timeout} + batching window {window}"
    );

    // Redrive to a dead-letter queue after as many receives as `aws setup` allows.
    let redrive = at(queue, &["Properties", "RedrivePolicy"]);
    assert_eq!(
        text(redrive, &["maxReceiveCount"]),
        switchyard::aws::setup::MAX_RECEIVES.to_string()
    );
    let dlq_id = get_att(at(redrive, &["deadLetterTargetArn"]), "Arn");
    assert_ne!(dlq_id, queue_id);
    let dlq = at(&template, &["Resources", dlq_id]);
    assert_eq!(text(dlq, &["Type"]), "AWS::SQS::Queue");
    assert_eq!(
        text(dlq, &["Properties", "MessageRetentionPeriod"]),
        "1209600",
        "the dead-letter queue keeps messages 14 days"
    );
}

#[test]
fn the_rule_sends_what_aws_setup_routes_and_only_it_may_send() {
    let template = yaml::parse(&read(TEMPLATE)).expect(TEMPLATE);
    let (_, function) = only(&template, "AWS::Serverless::Function");
    let Value::Map(events) = &at(function, &["Properties", "Events"]).value else {
        panic!("Events is not a mapping");
    };
    let queue_id = events
        .iter()
        .find_map(|(_, e)| get(e, "Properties").and_then(|p| get(p, "Queue")))
        .map(|q| get_att(q, "Arn"))
        .expect("the SQS event's queue");

    // The rule's one target is the queue the function reads.
    let (rule_id, rule) = only(&template, "AWS::Events::Rule");
    let targets = items(at(rule, &["Properties", "Targets"]));
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert_eq!(get_att(at(&targets[0], &["Arn"]), "Arn"), queue_id);

    // Its pattern matches what the rules of `switchyard aws setup` match, less their narrowing
    // to the repositories of the pipelines (the function drops the changes no pipeline watches).
    let files = [
        (
            "cc.yaml",
            "repository: codecommit::eu-west-1://api\nstart: {exec: [\"/bin/true\"]}\n",
        ),
        (
            "gh.yaml",
            "repository: https://github.com/acme/web.git\nstart: {exec: [\"/bin/true\"]}\n",
        ),
    ]
    .map(|(name, text)| (name.to_owned(), text.to_owned()));
    let (pipelines, diags) = Pipelines::load_texts(&files, Path::new("/srv"));
    assert!(diags.is_empty(), "{diags:?}");
    let want: Vec<serde_json::Value> = switchyard::aws::setup::rules("q", &pipelines)
        .iter()
        .map(|r| {
            let mut pattern: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&r.pattern).expect("a JSON pattern");
            pattern.remove("region");
            pattern.remove("detail");
            serde_json::Value::Object(pattern)
        })
        .collect();
    assert_eq!(want.len(), 3, "CodeCommit, GitHub, switchyard.change/v1");
    let pattern = at(rule, &["Properties", "EventPattern"]);
    let routed: Vec<serde_json::Value> = match get(pattern, "$or") {
        Some(any) => items(any).iter().map(json_of).collect(),
        None => vec![json_of(pattern)],
    };
    for p in &want {
        assert!(
            routed.contains(p),
            "{rule_id} does not match {p}: {routed:?}"
        );
    }
    for p in &routed {
        assert!(
            want.contains(p),
            "{rule_id} matches {p}, which aws setup does not route"
        );
    }

    // The queue policy lets EventBridge send to the queue for this rule alone.
    let (_, policy) = only(&template, "AWS::SQS::QueuePolicy");
    let queues: Vec<&str> = items(at(policy, &["Properties", "Queues"]))
        .iter()
        .map(|q| text(q, &["Ref"]))
        .collect();
    assert!(queues.contains(&queue_id), "{queues:?}");
    let statements = items(at(policy, &["Properties", "PolicyDocument", "Statement"]));
    assert_eq!(statements.len(), 1, "{statements:?}");
    let statement = &statements[0];
    assert_eq!(text(statement, &["Effect"]), "Allow");
    assert_eq!(
        text(statement, &["Principal", "Service"]),
        "events.amazonaws.com"
    );
    assert_eq!(text(statement, &["Action"]), "sqs:SendMessage");
    let source = at(statement, &["Condition", "ArnEquals", "aws:SourceArn"]);
    assert_eq!(get_att(source, "Arn"), rule_id);
}

#[test]
fn the_function_sets_only_variables_switchyard_reads() {
    let template = yaml::parse(&read(TEMPLATE)).expect(TEMPLATE);
    let (_, function) = only(&template, "AWS::Serverless::Function");
    let props = at(function, &["Properties"]);
    let Value::Map(variables) = &at(props, &["Environment", "Variables"]).value else {
        panic!("Environment.Variables is not a mapping");
    };
    let secrets: Vec<&str> = switchyard::lambda::SECRET_VARIABLES
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let set: Vec<&str> = variables
        .iter()
        .map(|(k, _)| k.as_str().expect("a variable name"))
        .collect();
    for name in &set {
        assert!(
            secrets.contains(name)
                || [
                    "SWITCHYARD_CONFIG",
                    "SWITCHYARD_TRIGGERS",
                    "SWITCHYARD_LOG",
                    switchyard::lambda::TABLE_VARIABLE,
                    switchyard::lambda::TTL_VARIABLE,
                ]
                .contains(name),
            "{TEMPLATE} sets {name}, which switchyard lambda does not read"
        );
    }
    // Every provider can have a receiver, its secret read by CloudFormation from Secrets
    // Manager or SSM (a plain String: Lambda variables take no ssm-secure), or not be set.
    for name in &secrets {
        let value = variables
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{TEMPLATE} cannot set {name}"));
        let leaves = branches(value);
        assert!(
            leaves.iter().any(|v| is_no_value(v)),
            "{name} is always set"
        );
        for leaf in leaves.iter().filter(|v| !is_no_value(v)) {
            let sub = text(leaf, &["Fn::Sub"]);
            assert!(
                sub.starts_with("{{resolve:secretsmanager:") || sub.starts_with("{{resolve:ssm:"),
                "{name}: {sub}"
            );
        }
    }
    // A triggers layer lands under /opt, where SWITCHYARD_TRIGGERS then points; without the
    // layer the variable is unset and the package's triggers/ is read.
    let triggers = at(props, &["Environment", "Variables", "SWITCHYARD_TRIGGERS"]);
    let [condition, when, otherwise] = items(at(triggers, &["Fn::If"])) else {
        panic!("SWITCHYARD_TRIGGERS: Fn::If [CONDITION, PATH, NoValue]");
    };
    assert_eq!(when.as_str(), Some("/opt/triggers"));
    assert!(is_no_value(otherwise));
    let layers = items(at(props, &["Layers", "Fn::If"]));
    assert_eq!(layers[0].as_str(), condition.as_str());
    let layer_id = text(&items(&layers[1])[0], &["Ref"]);
    let (id, layer) = only(&template, "AWS::Serverless::LayerVersion");
    assert_eq!(id, layer_id);
    assert_eq!(
        text(layer, &["Condition"]),
        condition.as_str().expect("a name")
    );
    assert!(is_no_value(&layers[2]));
}

/// The `Statement`s of the function's `Policies`, each `Fn::If` branch followed.
fn policy_statements(function: &Node) -> Vec<&Node> {
    items(at(function, &["Properties", "Policies"]))
        .iter()
        .flat_map(branches)
        .filter(|p| !is_no_value(p))
        .flat_map(|p| items(at(p, &["Statement"])))
        .collect()
}

/// A scalar or a list of scalars, as a list.
fn scalars(node: &Node) -> Vec<&str> {
    match &node.value {
        Value::Seq(list) => list.iter().filter_map(Node::as_str).collect(),
        _ => node.as_str().into_iter().collect(),
    }
}

#[test]
fn the_claims_table_is_what_the_function_claims_in_and_all_it_may_touch() {
    use switchyard::aws::claims::{CLOCK_SLACK, EXPIRY, KEY, LEASE_MAX};
    let template = yaml::parse(&read(TEMPLATE)).expect(TEMPLATE);
    let (table_id, table) = only(&template, "AWS::DynamoDB::Table");
    let props = at(table, &["Properties"]);
    assert_eq!(text(props, &["BillingMode"]), "PAY_PER_REQUEST");

    // Keyed by the start id alone, a string; the TTL on the attribute the function writes.
    let keys = items(at(props, &["KeySchema"]));
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(text(&keys[0], &["AttributeName"]), KEY);
    assert_eq!(text(&keys[0], &["KeyType"]), "HASH");
    let attributes = items(at(props, &["AttributeDefinitions"]));
    assert_eq!(attributes.len(), 1, "only key attributes are declared");
    assert_eq!(text(&attributes[0], &["AttributeName"]), KEY);
    assert_eq!(text(&attributes[0], &["AttributeType"]), "S");
    assert_eq!(
        text(props, &["TimeToLiveSpecification", "AttributeName"]),
        EXPIRY
    );
    assert_eq!(text(props, &["TimeToLiveSpecification", "Enabled"]), "true");

    // The function claims in it...
    let (_, function) = only(&template, "AWS::Serverless::Function");
    let variable = at(
        function,
        &[
            "Properties",
            "Environment",
            "Variables",
            switchyard::lambda::TABLE_VARIABLE,
        ],
    );
    assert_eq!(text(variable, &["Ref"]), table_id);

    // ...and may do there what a claim needs, nowhere else.
    let want = [
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ];
    let mut granted = Vec::new();
    for statement in policy_statements(function) {
        let actions = scalars(at(statement, &["Action"]));
        if !actions.iter().any(|a| a.starts_with("dynamodb:")) {
            continue;
        }
        assert_eq!(text(statement, &["Effect"]), "Allow");
        assert_eq!(
            get_att(at(statement, &["Resource"]), "Arn"),
            table_id,
            "{statement:?}"
        );
        granted.extend(actions);
    }
    granted.sort_unstable();
    assert_eq!(granted, want);

    // A record that met another instance's claim comes back after the queue's visibility
    // timeout: by then that claim has completed, or been deleted, or lapsed.
    let timeout: u64 = text(
        &template,
        &["Resources", "Switchyard", "Properties", "Timeout"],
    )
    .parse()
    .expect("Timeout in seconds");
    let (_, queue) = resources_of(&template, "AWS::SQS::Queue")
        .into_iter()
        .find(|(_, q)| get(at(q, &["Properties"]), "RedrivePolicy").is_some())
        .expect("the queue the function reads");
    let visibility: u64 = text(queue, &["Properties", "VisibilityTimeout"])
        .parse()
        .expect("seconds");
    let longest_claim = Duration::from_secs(timeout).min(LEASE_MAX) + CLOCK_SLACK;
    assert!(
        Duration::from_secs(visibility) > longest_claim,
        "VisibilityTimeout {visibility} s is not longer than a claim ({longest_claim:?})"
    );
}

#[test]
fn the_function_may_start_only_the_pipelines_and_projects_it_is_given() {
    let template = yaml::parse(&read(TEMPLATE)).expect(TEMPLATE);
    let (_, function) = only(&template, "AWS::Serverless::Function");
    let policies = items(at(function, &["Properties", "Policies"]));
    for (action, parameter) in [
        ("codepipeline:StartPipelineExecution", "StartPipelineArns"),
        ("codebuild:StartBuild", "StartBuildProjectArns"),
    ] {
        // A list of ARNs, empty by default.
        let declared = at(&template, &["Parameters", parameter]);
        assert_eq!(text(declared, &["Type"]), "CommaDelimitedList");
        assert_eq!(text(declared, &["Default"]), "");

        // One policy grants the action: on exactly the ARNs given, and only when some are.
        let granting: Vec<&Node> = policies
            .iter()
            .filter(|p| {
                branches(p)
                    .iter()
                    .filter(|b| !is_no_value(b))
                    .flat_map(|b| items(at(b, &["Statement"])))
                    .any(|s| scalars(at(s, &["Action"])).contains(&action))
            })
            .collect();
        assert_eq!(granting.len(), 1, "{action}: {granting:?}");
        let choice = items(at(granting[0], &["Fn::If"]));
        assert!(
            is_no_value(&choice[2]),
            "{action}: nothing without {parameter}"
        );
        let condition = choice[0].as_str().expect("a condition name");
        assert_eq!(
            json_of(at(&template, &["Conditions", condition])),
            serde_json::json!({"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": parameter}]}, ""]}]}),
            "{condition}: true when {parameter} names something"
        );
        let statements = items(at(&choice[1], &["Statement"]));
        assert_eq!(statements.len(), 1, "{statements:?}");
        assert_eq!(text(&statements[0], &["Effect"]), "Allow");
        assert_eq!(scalars(at(&statements[0], &["Action"])), [action]);
        assert_eq!(text(&statements[0], &["Resource", "Ref"]), parameter);
    }
    // No statement of the function grants anything on a wildcard.
    for statement in policy_statements(function) {
        let resource = json_of(at(statement, &["Resource"])).to_string();
        let actions = scalars(at(statement, &["Action"]));
        assert!(
            !resource.contains('*') && actions.iter().all(|a| !a.contains('*')),
            "{statement:?}"
        );
    }
}

#[test]
fn the_lambda_example_pipelines_pass_check() {
    // As build.sh checks them: no switchyard.yaml, the receivers come from the variables.
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("check")
        .arg("--triggers")
        .arg(root().join("deploy/lambda/triggers"))
        .current_dir(dir.path())
        .output()
        .expect("run switchyard check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.starts_with("ok: ") && !stdout.contains("warning"),
        "deploy/lambda/triggers:\n{stdout}{stderr}"
    );
}

/// A container runs as the image's non-root user, on a read-only root, without privileges or
/// capabilities.
fn assert_hardened(container: &Node) {
    let security = at(container, &["securityContext"]);
    for (key, want) in [
        ("runAsNonRoot", "true"),
        ("runAsUser", UID),
        ("readOnlyRootFilesystem", "true"),
        ("allowPrivilegeEscalation", "false"),
    ] {
        assert_eq!(text(security, &[key]), want, "securityContext.{key}");
    }
    let dropped: Vec<&str> = items(at(security, &["capabilities", "drop"]))
        .iter()
        .filter_map(Node::as_str)
        .collect();
    assert_eq!(dropped, ["ALL"]);
}
