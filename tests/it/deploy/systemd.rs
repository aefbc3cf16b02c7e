//! The systemd unit (`deploy/systemd/switchyard.service`): hardened, run with the example
//! configuration (which passes `switchyard check`), stopped after the grace period, and
//! accepted by `systemd-analyze verify`.

use std::path::Path;
use std::time::Duration;

use super::{check, config, read, validate, validator};

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
fn verify(program: &Path, unit: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("switchyard.service");
    std::fs::write(&path, unit).expect("write the unit");
    let (ok, said) = validate(program, &["verify", "--man=no", &path.to_string_lossy()]);
    let said = said
        .lines()
        .filter(|l| l.contains("switchyard.service"))
        .collect::<Vec<_>>()
        .join("\n");
    (ok, said)
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let Some(program) = validator(
        "SWITCHYARD_SYSTEMD_ANALYZE",
        "systemd-analyze",
        "apt-get install systemd (what .ci/test installs)",
    ) else {
        return;
    };
    // The binary must exist for verify: the one built here stands in for /usr/local/bin's.
    let unit = read(UNIT).replace(
        "ExecStart=/usr/local/bin/switchyard ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_switchyard")),
    );
    assert!(
        unit.contains(env!("CARGO_BIN_EXE_switchyard")),
        "ExecStart was replaced"
    );
    let (ok, said) = verify(&program, &unit);
    assert!(
        ok && said.is_empty(),
        "systemd-analyze verify {UNIT}:\n{said}"
    );

    // What a mistake looks like to this systemd, so that the check above can fail.
    let (_, said) = verify(
        &program,
        &unit.replace("ProtectHome=yes", "ProtectHome=yes\nProtectHom=yes"),
    );
    assert!(
        said.contains("ProtectHom"),
        "a misspelt directive goes unnoticed: {said:?}"
    );
}

#[test]
fn the_unit_s_configuration_passes_check() {
    check("deploy/systemd/switchyard.yaml", None);
}
