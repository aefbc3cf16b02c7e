//! Tests of the lab's pure parts.

use serde_json::json;

use super::serve::cpu_seconds;
use super::*;
use crate::config::Provider;
use crate::sources::providers::{self, Normalized};

fn push() -> Push {
    Push {
        repository: "r3".into(),
        branch: "dev".into(),
        before: "1".repeat(40),
        after: "2".repeat(40),
        path: "src/api/f1.txt".into(),
        added: true,
        at_ms: 0.0,
    }
}

#[test]
fn the_webhook_and_the_event_name_the_polled_identity() {
    let mut headers = hyper::HeaderMap::new();
    headers.insert(
        "x-github-event",
        hyper::header::HeaderValue::from_static("push"),
    );
    let body = serde_json::to_vec(&github_push(&push())).unwrap_or_default();
    let events =
        match providers::normalize(Provider::GitHub, &headers, &body, jiff::Timestamp::now()) {
            Ok(Normalized::Changes(events)) => events,
            other => panic!("{other:?}"),
        };
    assert_eq!(events[0].repository, identity("r3"));
    assert_eq!(events[0].git_ref, "refs/heads/dev");
    assert_eq!(events[0].changed_paths, ["src/api/f1.txt"]);
    assert!(events[0].changed_paths_complete);

    let event = json!({
        "version": "0", "id": "e-1", "detail-type": "CodeCommit Repository State Change",
        "source": "aws.codecommit", "account": ACCOUNT, "time": "2026-11-26T00:00:00Z",
        "region": REGION, "resources": [format!("arn:aws:codecommit:{REGION}:{ACCOUNT}:r3")],
        "detail": codecommit_detail(&push()),
    });
    let parsed = crate::sources::eventbridge::envelope::parse(
        event.to_string().as_bytes(),
        jiff::Timestamp::now(),
    );
    match parsed {
        Ok(crate::sources::eventbridge::envelope::Envelope::Changes { changes, .. }) => {
            assert_eq!(changes[0].repository, identity("r3"));
            assert_eq!(changes[0].id, events[0].id, "one change, whichever source");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn metric_sums_add_every_series_of_a_name_only() {
    let text = "# HELP x\nswitchyard_poll_requests_total{kind=\"ls_remote\",outcome=\"ok\"} 10\nswitchyard_poll_requests_total{kind=\"fetch\",outcome=\"ok\"} 3\nswitchyard_poll_requests_total_other 7\nswitchyard_poll_seconds_count 5\n";
    assert_eq!(metric_sum(text, "switchyard_poll_requests_total", ""), 13.0);
    assert_eq!(
        metric_sum(text, "switchyard_poll_requests_total", "kind=\"fetch\""),
        3.0
    );
    assert_eq!(metric_sum(text, "missing", ""), 0.0);
}

#[test]
fn cpu_time_of_this_process_is_read() {
    let cpu = cpu_seconds(std::process::id());
    assert!(cpu.is_some_and(|c| c >= 0.0), "{cpu:?}");
}
