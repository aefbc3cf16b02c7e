//! Load the configuration and the definitions; any error stops here. Every entry point that
//! needs them valid (`serve`, `lambda`, `aws setup`, `poll --once`, `explain`, `changes`,
//! `outbox`) reads them through these functions, so a mistake reads the same everywhere;
//! `check` alone collects every diagnostic instead (`crate::check`).

use std::path::{Path, PathBuf};

use crate::config::{Config, Location};
use crate::diag::{Diagnostic, Severity};
use crate::pipeline::Pipelines;

/// The variable that overrides `listen:` of the configuration (`IP:PORT`).
pub const LISTEN_VARIABLE: &str = "SWITCHYARD_LISTEN";

/// Why the configuration or the definitions cannot be used. The diagnostics are in the
/// message, each with its hint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("the configuration has errors:\n{}", .0.join("\n"))]
    Config(Vec<String>),
    #[error("SWITCHYARD_LISTEN={0:?} is not an address: write IP:PORT, e.g. 127.0.0.1:8080")]
    Listen(String),
    #[error("{} has errors (run `switchyard check`):\n{}", .dir.display(), .errors.join("\n"))]
    Pipelines { dir: PathBuf, errors: Vec<String> },
    /// `store:` names a database that cannot be reached from here (its reference, its URL).
    #[error("{0}")]
    Store(String),
}

/// The error diagnostics, one each.
fn errors(diags: &[Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect()
}

/// The configuration (the built-in defaults when `path` is `None` and `./switchyard.yaml` is
/// absent).
pub fn config(path: Option<&Path>) -> Result<Config, LoadError> {
    let (config, diags) = Config::load(path);
    let errors = errors(&diags);
    match config.filter(|_| errors.is_empty()) {
        Some(config) => Ok(config),
        None => Err(LoadError::Config(errors)),
    }
}

/// The pipeline definitions of `dir`.
pub fn pipelines(dir: &Path) -> Result<Pipelines, LoadError> {
    let (pipelines, diags) = Pipelines::load_dir(dir);
    let errors = errors(&diags);
    if errors.is_empty() {
        Ok(pipelines)
    } else {
        Err(LoadError::Pipelines {
            dir: dir.to_path_buf(),
            errors,
        })
    }
}

/// The configuration, with `listen:` overridden by [`LISTEN_VARIABLE`] when it is set, and the
/// definitions of `triggers`: what a process that runs the pipelines needs.
pub fn both(config_path: Option<&Path>, triggers: &Path) -> Result<(Config, Pipelines), LoadError> {
    let mut config = config(config_path)?;
    if let Ok(listen) = std::env::var(LISTEN_VARIABLE) {
        config.listen = listen.parse().map_err(|_| LoadError::Listen(listen))?;
    }
    Ok((config, pipelines(triggers)?))
}

/// Where the configuration's store is (SQLite or PostgreSQL), for the tools that work on it.
pub fn store_location(config_path: Option<&Path>) -> Result<Location, LoadError> {
    config(config_path)?
        .store_location()
        .map_err(LoadError::Store)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory of its own under the system's temp dir, removed at the end.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!(
                "switchyard-load-{name}-{}-{}",
                std::process::id(),
                fastrand::u64(..)
            ));
            std::fs::create_dir_all(dir.join("triggers")).expect("scratch dir");
            Scratch(dir)
        }

        fn file(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).expect("write");
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn errors_stop_here_with_every_diagnostic_and_its_hint() {
        let s = Scratch::new("errors");
        let config = s.file("switchyard.yaml", "bogus: 1\n");
        let e = super::config(Some(&config)).expect_err("an unknown key");
        let text = e.to_string();
        assert!(
            text.starts_with("the configuration has errors:\n")
                && text.contains("unknown key `bogus` in the configuration\nhint: "),
            "{text}"
        );

        s.file("triggers/a.yaml", "pipeline: [\n");
        let dir = s.0.join("triggers");
        let e = pipelines(&dir).expect_err("bad YAML");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "{} has errors (run `switchyard check`):\n",
                dir.display()
            )) && text.contains("a.yaml:")
                && text.contains("\nhint: "),
            "{text}"
        );
    }

    #[test]
    fn warnings_do_not_stop_and_the_store_is_where_the_configuration_says() {
        let s = Scratch::new("store");
        let config = s.file("switchyard.yaml", "state_dir: state\n");
        let (loaded, pipelines) = both(Some(&config), &s.0.join("triggers")).expect("valid");
        assert!(pipelines.list.is_empty());
        assert_eq!(
            store_location(Some(&config)),
            Ok(Location::Sqlite(loaded.state_dir))
        );
        let postgres = s.file(
            "postgres.yaml",
            "store: {postgres: env:SWITCHYARD_LOAD_TEST_UNSET_VARIABLE}\n",
        );
        let e = store_location(Some(&postgres)).expect_err("the variable is unset");
        assert!(
            matches!(&e, LoadError::Store(m) if m.starts_with("store.postgres: ")),
            "{e}"
        );
    }
}
