//! The Kubernetes examples (`deploy/kubernetes/`: one pod with its runner beside it;
//! `deploy/kubernetes-replicas/`: several replicas on PostgreSQL): every manifest passes
//! kubernetes-validate (pinned by `.ci/test`, with the API's schemas in its package: it runs
//! offline), and what the schemas cannot know is checked here: the pod probes, mounts, runs and
//! stops as its switchyard.yaml says, the replicas share the store and roll one at a time,
//! kustomize ships every pipeline file, and both configurations pass `switchyard check`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use switchyard::config::{Auth, Config};
use switchyard::pipeline::Pipelines;
use switchyard::secret::SecretRef;
use switchyard::yaml::{self, Node, Value};

use super::{
    UID, at, check, config, documents, get, items, kind, named, read, root, text, trigger_files,
    validate, validator,
};

/// The two examples.
const EXAMPLES: [&str; 2] = ["deploy/kubernetes", "deploy/kubernetes-replicas"];

/// The Kubernetes objects of an example: the resources its kustomization.yaml lists and the
/// Secret it asks you to create.
fn manifests(example: &str) -> Vec<String> {
    let kustomization =
        yaml::parse(&read(&format!("{example}/kustomization.yaml"))).expect("kustomization.yaml");
    items(at(&kustomization, &["resources"]))
        .iter()
        .map(|r| r.as_str().expect("a file"))
        .chain(["secret.example.yaml"])
        .map(|rel| {
            root()
                .join(example)
                .join(rel)
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// kubernetes-validate `--strict` (unknown fields are errors) on `files`: whether every object
/// passed, with no warning (a kind without a schema is one), and what it said.
fn kubernetes_validate(program: &Path, files: &[String]) -> (bool, String) {
    let mut args = vec!["--strict", "--quiet"];
    args.extend(files.iter().map(String::as_str));
    let (ok, said) = validate(program, &args);
    (ok && !said.contains("WARN"), said)
}

#[test]
fn the_manifests_pass_kubernetes_validate() {
    let Some(program) = validator(
        "SWITCHYARD_KUBERNETES_VALIDATE",
        "kubernetes-validate",
        "pip install kubernetes-validate==1.37.0 (what .ci/test installs into target/moto-venv)",
    ) else {
        return;
    };
    for example in EXAMPLES {
        let files = manifests(example);
        let (ok, said) = kubernetes_validate(&program, &files);
        assert!(ok, "kubernetes-validate {files:?}:\n{said}");
    }

    // What a mistake looks like to this validator, so that the check above can fail.
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("pod.yaml");
    let text = read("deploy/kubernetes/pod.yaml").replace("readinessProbe:", "readinesProbe:");
    std::fs::write(&broken, text).expect("write the broken pod.yaml");
    let (ok, said) = kubernetes_validate(&program, &[broken.to_string_lossy().into_owned()]);
    assert!(
        !ok && said.contains("readinesProbe"),
        "a misspelt field goes unnoticed: {said:?}"
    );
}

#[test]
fn the_kubernetes_configuration_passes_check() {
    check(
        "deploy/kubernetes/config/switchyard.yaml",
        Some("deploy/kubernetes/config/triggers"),
    );
    assert_eq!(
        config("deploy/kubernetes/config/switchyard.yaml").state_dir,
        Path::new("/var/lib/switchyard")
    );
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
    for example in EXAMPLES {
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
