//! `switchyard bench --quick`, the CI smoke run of the comparison, through the lab's library
//! against this build's binary: a real git daemon, a real moto server and `switchyard serve`
//! per scenario. It must lose nothing and start nothing twice, and write its measurements and
//! plots. And `switchyard bench` without the lab's program beside it says how to build it.

use serde_json::Value;
use switchyard_lab::bench::{self, Options, report};
use switchyard_lab::{Moto, or_skip};

use crate::support::Project;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_bench_loses_nothing_starts_nothing_twice_and_reports() {
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("results.json");
    let plots = dir.path().join("plots");
    let mut opts = Options::defaults(env!("CARGO_BIN_EXE_switchyard").into(), true);
    opts.moto = Some(moto.endpoint.clone());
    opts.quiet = true;
    let Some(run) = or_skip(bench::run(opts).await) else {
        return;
    };
    let table = report::table(&run);
    for name in ["webhook", "events", "poll", "all", "all+faults"] {
        assert!(table.contains(name), "the table names {name}:\n{table}");
    }
    let faults = bench::faults(&run);
    assert!(faults.is_empty(), "{faults:?}\n{table}");
    bench::write_json(&run, &json).expect("the JSON");
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
    let dropped = by_name("all+faults");
    assert_eq!(dropped["caught_by_poll"], dropped["only_poll_could_find"]);
    // Polling alone made requests to the git host; the webhook alone made none.
    assert!(by_name("poll")["git_requests"].as_u64().unwrap_or(0) > 0);
    assert_eq!(by_name("webhook")["git_requests"], 0);
    assert_eq!(results["sweep"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        results["machine"]["switchyard_version"],
        env!("CARGO_PKG_VERSION"),
        "the version of the binary measured"
    );
    report::plots(&run, &plots).expect("plots");
    for plot in ["latency-cdf.svg", "cost-vs-latency.svg"] {
        let text = std::fs::read_to_string(plots.join(plot)).expect(plot);
        assert!(text.contains("<svg"), "{plot}");
    }
}

#[test]
fn bench_without_the_lab_program_beside_it_says_how_to_build_it() {
    // This build's binary alone in a directory (a link when the file system allows one).
    let alone = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let bin = alone.path().join("switchyard");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_switchyard"), &bin).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_switchyard"), &bin).expect("copy the binary");
    }
    let project = Project::new();
    for args in [&["bench", "--quick"][..], &["bench", "--help"]] {
        let out = std::process::Command::new(&bin)
            .args(args)
            .current_dir(project.root())
            .output()
            .expect("run switchyard");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let missing = alone.path().join("switchyard-bench");
        assert!(
            stderr.contains(&format!("{}: no such file", missing.display())),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("hint: build both with `cargo build --release -p switchyard -p switchyard-lab`, or run `.ci/bench`"),
            "{args:?}: {stderr}"
        );
    }
    // The binary's own help still says what `bench` is and where its flags are.
    let help = project.run(&["help", "bench"], &[], "");
    assert_eq!(help.code, Some(0), "{}", help.stderr);
    assert!(
        help.stdout.contains("switchyard bench --help"),
        "{}",
        help.stdout
    );
}
