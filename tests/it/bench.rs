//! `switchyard bench --quick`, the CI smoke run of the comparison: a real git daemon, a real
//! moto server and `switchyard serve` per scenario. It must lose nothing and start nothing twice,
//! and write its measurements and plots.

use std::process::Command;

use serde_json::Value;

#[test]
fn the_quick_bench_loses_nothing_starts_nothing_twice_and_reports() {
    let moto = std::env::var_os("SWITCHYARD_MOTO_SERVER")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/moto-venv/bin/moto_server");
            venv.exists().then_some(venv)
        });
    let Some(moto) = moto else {
        assert!(
            std::env::var_os("SWITCHYARD_TEST_STRICT").is_none(),
            "moto_server is missing: .ci/test installs moto[server]"
        );
        eprintln!("skipped: moto_server is missing (run .ci/test, which installs moto[server])");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("results.json");
    let plots = dir.path().join("plots");
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["bench", "--quick", "--output"])
        .arg(&json)
        .arg("--plots")
        .arg(&plots)
        .current_dir(dir.path())
        .env("SWITCHYARD_MOTO_SERVER", &moto)
        .output()
        .expect("run switchyard bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for name in ["webhook", "events", "poll", "all", "all+faults"] {
        assert!(stdout.contains(name), "the table names {name}:\n{stdout}");
    }
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON")).expect("JSON");
    let scenarios = results["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), 5);
    for s in scenarios {
        let name = s["name"].as_str().unwrap_or_default();
        assert_eq!(s["missed"], 0, "{name} missed a push");
        assert_eq!(s["started_twice"], 0, "{name} started a push twice");
        assert_eq!(s["started"], s["pushes"], "{name}");
        let samples = s["samples"].as_array().expect("samples");
        assert_eq!(samples.len() as u64, s["pushes"].as_u64().unwrap_or(0));
        assert!(
            samples
                .iter()
                .all(|x| x["trigger_ms"].as_f64().is_some_and(|t| t >= 0.0)),
            "{name}: every push has its latency"
        );
    }
    // Each source alone was the only reporter of its changes; together, every change had one.
    let by_name = |n: &str| scenarios.iter().find(|s| s["name"] == n).expect(n);
    assert_eq!(by_name("webhook")["by_source"][0]["source"], "webhook");
    assert_eq!(by_name("events")["by_source"][0]["source"], "eventbridge");
    assert_eq!(by_name("poll")["by_source"][0]["source"], "poll");
    let faults = by_name("all+faults");
    assert_eq!(faults["caught_by_poll"], faults["only_poll_could_find"]);
    // Polling alone made requests to the git host; the webhook alone made none.
    assert!(by_name("poll")["git_requests"].as_u64().unwrap_or(0) > 0);
    assert_eq!(by_name("webhook")["git_requests"], 0);
    assert_eq!(results["sweep"].as_array().map(Vec::len), Some(2));
    for plot in ["latency-cdf.svg", "cost-vs-latency.svg"] {
        let text = std::fs::read_to_string(plots.join(plot)).expect(plot);
        assert!(text.contains("<svg"), "{plot}");
    }
}
