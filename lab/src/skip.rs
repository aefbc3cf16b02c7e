//! The skip policy: what a test does when an outside service (moto_server, sshd, git daemon,
//! git http-backend, PostgreSQL, Chromium) or program (a validator, a linter) is not installed
//! here.
//!
//! Under `SWITCHYARD_TEST_STRICT=1` (what `.ci/test` sets, after installing them all) a missing
//! service fails the test. Otherwise the test prints `skipped: …` with what is missing and how
//! to install it, and returns: a plain `cargo test` on a laptop without moto still runs the
//! rest.

use std::fmt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// An outside service that is not installed here, and how to install it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// What is missing: `moto_server`, `/usr/sbin/sshd`.
    pub what: String,
    /// How to install it.
    pub install: String,
}

impl Missing {
    pub fn new(what: impl Into<String>, install: impl Into<String>) -> Missing {
        Missing {
            what: what.into(),
            install: install.into(),
        }
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is missing\nhint: {}", self.what, self.install)
    }
}

impl std::error::Error for Missing {}

/// An outside program a test runs: the path in the environment variable `variable` when it is
/// set (what `.ci/test` installs, pinned), else `name` on the PATH; a [`Missing`] saying
/// `install` when it cannot be started (`PROGRAM --version`).
pub fn program(variable: &str, name: &str, install: &str) -> anyhow::Result<PathBuf> {
    let program = std::env::var_os(variable).map_or_else(|| PathBuf::from(name), PathBuf::from);
    match Command::new(&program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(_) => Ok(program),
        Err(e) => Err(Missing::new(
            format!("{} ({e}; {variable} names another)", program.display()),
            install,
        )
        .into()),
    }
}

/// Whether a missing service fails the test (`SWITCHYARD_TEST_STRICT` set) or skips it.
pub fn strict() -> bool {
    std::env::var_os("SWITCHYARD_TEST_STRICT").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The skip policy applied to a part's start: the part; `None` (the caller returns) when the
/// error is a [`Missing`] service outside strict mode, after printing `skipped: …`. Panics
/// under `SWITCHYARD_TEST_STRICT=1` when a service is missing, and on any other error.
pub fn or_skip<T>(started: anyhow::Result<T>) -> Option<T> {
    match started {
        Ok(part) => Some(part),
        Err(e) => match e.downcast_ref::<Missing>() {
            Some(missing) if !strict() => {
                eprintln!("skipped: {} is missing ({})", missing.what, missing.install);
                None
            }
            Some(missing) => panic!(
                "{missing}\n(SWITCHYARD_TEST_STRICT is set: a missing service fails the test)"
            ),
            None => panic!("{e:#}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_found_on_the_path_or_missing_with_how_to_install_it() {
        let unset = "SWITCHYARD_LAB_TEST_UNSET_PROGRAM";
        assert_eq!(
            program(unset, "true", "apt-get install coreutils").expect("true"),
            PathBuf::from("true")
        );
        let e = program(unset, "switchyard-no-such-program", "pip install it")
            .expect_err("no such program");
        let missing = e.downcast_ref::<Missing>().expect("a Missing");
        assert!(
            missing.what.contains("switchyard-no-such-program") && missing.what.contains(unset),
            "{missing}"
        );
        assert_eq!(missing.install, "pip install it");
    }
}
