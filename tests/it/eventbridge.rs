//! The EventBridge source and the AWS start targets against a real moto server: PutEvents →
//! rule → SQS → switchyard → start, with `switchyard serve` as a child process.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use switchyard_lab::announce::put_codecommit;
use switchyard_lab::moto::put_events;
use switchyard_lab::{Moto, REGION, Serve, codecommit_detail, or_skip};

use crate::support::{Project, counted, eventually, serve};

/// A pipeline on the CodeCommit repository that prints what started it.
const PRINTER: &str = "repository: codecommit::us-east-1://MyDemoRepo\non: push\nstart:\n  exec: [\"/bin/sh\", \"-c\", \"printf 'started %s %s %s\\\\n' \\\"$SWITCHYARD_REF\\\" \\\"$SWITCHYARD_SHA\\\" \\\"$SWITCHYARD_SOURCE\\\"\"]\n";

fn project(moto: &Moto, queue_url: &str, extra: &str) -> Project {
    let p = Project::new();
    p.file(
        "switchyard.yaml",
        &format!(
            "state_dir: state\neventbridge:\n  queue_url: {queue_url}\n  region: {REGION}\n  endpoint_url: {}\n  wait: 1s\n{extra}",
            moto.endpoint
        ),
    );
    p.file("triggers/printer.yaml", PRINTER);
    p
}

/// A CodeCommit "Repository State Change" detail: `main` of MyDemoRepo moved.
fn reference_updated(old: &str, new: &str) -> serde_json::Value {
    codecommit_detail("MyDemoRepo", "main", old, new)
}

/// The first line a start printed.
async fn first_start(served: &Serve) -> String {
    eventually(20, "the start", || {
        served
            .out()
            .lines()
            .find(|l| l.starts_with("started"))
            .map(str::to_owned)
    })
    .await
}

/// Waits until the queue holds no message; how many it still holds.
async fn drained(moto: &Moto, queue: &str) -> u64 {
    for _ in 0..100 {
        if moto.depth(queue).await == 0 {
            return 0;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    moto.depth(queue).await
}

/// Puts a CodeCommit event of MyDemoRepo with `detail`.
async fn put(moto: &Moto, detail: serde_json::Value) {
    let repository = detail["repositoryName"].as_str().unwrap_or_default();
    put_codecommit(&moto.events(), repository, &detail)
        .await
        .expect("put events");
}

/// How many starts of `sha` `serve` printed.
fn starts_of(served: &Serve, sha: &str) -> usize {
    served.out().lines().filter(|l| l.contains(sha)).count()
}

fn sha(n: u8) -> String {
    format!("{n:x}").repeat(40)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_events_start_a_pipeline_once_and_the_message_is_deleted() {
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    let (queue, arn, _) = moto.queue("changes", 30, 3).await;
    moto.rule_to_queue("aws.codecommit", &arn).await;
    let p = project(&moto, &queue, "");
    let served = serve(p.root(), &moto.env()).await;

    put(&moto, reference_updated(&sha(1), &sha(2))).await;
    let line = first_start(&served).await;
    assert_eq!(
        line,
        format!("started refs/heads/main {} eventbridge", sha(2))
    );
    assert_eq!(
        drained(&moto, &queue).await,
        0,
        "the message was deleted once stored"
    );

    // The same change announced again (a new EventBridge event): stored once, started once.
    // The fences: the intake counted it a duplicate, and a later change has started since.
    put(&moto, reference_updated(&sha(1), &sha(2))).await;
    let duplicate = [("outcome", "duplicate")];
    counted(served.addr(), "switchyard_intake_total", &duplicate, 1.0).await;
    put(&moto, reference_updated(&sha(2), &sha(3))).await;
    eventually(20, "the later change's start", || {
        (starts_of(&served, &sha(3)) == 1).then_some(())
    })
    .await;
    assert_eq!(starts_of(&served, &sha(2)), 1, "{}", served.out());
    assert_eq!(drained(&moto, &queue).await, 0);
    assert!(served.stop().await, "serve stops cleanly");
}

/// Any producer's change event, as the detail of a `switchyard.change/v1` event; with many
/// paths, so that storing it needs new pages.
async fn put_change(moto: &Moto, after: &str, paths: usize) {
    let detail = serde_json::json!({
        "schema": "switchyard.change/v1",
        "repository": "codecommit::us-east-1://MyDemoRepo",
        "kind": "push",
        "ref": "refs/heads/main",
        "before": sha(1),
        "after": after,
        "changed_paths": (0..paths).map(|i| format!("src/module_{i:05}/file.rs")).collect::<Vec<_>>(),
    });
    let entry = ("acme.ci", "switchyard.change/v1", None, detail.to_string());
    put_events(&moto.events(), &[entry])
        .await
        .expect("put events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_store_cannot_take_comes_back_and_starts_once() {
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    let (queue, arn, _) = moto.queue("changes", 2, 10).await;
    moto.rule_to_queue("acme.ci", &arn).await;
    let p = project(&moto, &queue, "");
    // A store that cannot grow beyond its empty schema (16 pages), like a full disk: a change
    // of 2,000 paths does not fit.
    let mut env = moto.env();
    env.push(("SWITCHYARD_STORE_MAX_PAGES", "16".into()));
    let full = serve(p.root(), &env).await;
    put_change(&moto, &sha(4), 2000).await;
    eventually(20, "a refused intake", || {
        full.err()
            .contains("the store cannot take the change")
            .then_some(())
    })
    .await;
    assert_eq!(moto.depth(&queue).await, 1, "not deleted");
    assert!(full.out().is_empty(), "nothing started");
    drop(full);

    // Disk space is back: the message returns after its visibility timeout and starts once.
    // The fences: the message is deleted (it cannot come back), and a later change has started.
    let served = serve(p.root(), &moto.env()).await;
    let line = first_start(&served).await;
    assert!(line.contains(&sha(4)), "{line}");
    assert_eq!(drained(&moto, &queue).await, 0, "deleted once stored");
    put_change(&moto, &sha(5), 1).await;
    eventually(20, "the later change's start", || {
        (starts_of(&served, &sha(5)) == 1).then_some(())
    })
    .await;
    assert_eq!(starts_of(&served, &sha(4)), 1, "{}", served.out());
    assert_eq!(served.out().lines().count(), 2, "{}", served.out());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_ends_in_the_dead_letter_queue_and_the_consumer_goes_on() {
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    let (queue, arn, dlq) = moto.queue("changes", 1, 2).await;
    moto.rule_to_queue("aws.codecommit", &arn).await;
    let p = project(&moto, &queue, "");
    let served = serve(p.root(), &moto.env()).await;
    moto.sqs()
        .send_message()
        .queue_url(&queue)
        .message_body("{ this is not an event")
        .send()
        .await
        .expect("send");
    for _ in 0..150 {
        if moto.depth(&dlq).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(moto.depth(&dlq).await, 1, "{}", served.err());
    assert!(served.err().contains("malformed"), "{}", served.err());
    put(&moto, reference_updated(&sha(5), &sha(6))).await;
    eventually(20, "a start after the poison", || {
        served.out().contains("started").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqs_target_on_a_fifo_queue_groups_by_pipeline_and_dedupes_by_start_id() {
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    let sqs = moto.sqs();
    let (fifo, _) = moto
        .create_queue(
            "starts.fifo",
            &[(QueueAttributeName::FifoQueue, "true".into())],
        )
        .await
        .expect("create FIFO queue");
    // The real target and transport: the group is the pipeline, the deduplication id the
    // start id.
    let transports = switchyard::transport::Transports::new(
        switchyard::transport::aws::Aws::from_config(&moto.sdk()),
        std::env::temp_dir(),
    );
    let target = switchyard::target::Target::Sqs(switchyard::target::sqs::Sqs {
        queue_url: fifo.clone(),
    });
    let source = switchyard::event::Source {
        kind: switchyard::event::SourceKind::Manual,
        provider: None,
        delivery_id: None,
    };
    let body = crate::support::change("refs/heads/main", &crate::support::sha(1));
    let event =
        switchyard::event::ChangeEvent::from_json(body.as_bytes(), source).expect("an event");
    let traceparent = switchyard::trace::TraceParent::root();
    let attempt = |start_id| switchyard::target::Attempt {
        pipeline: "api-build",
        start_id,
        number: 1,
        event: &event,
        event_json: &body,
        traceparent: &traceparent,
        timeout: Duration::from_secs(10),
    };
    let mut runs = Vec::new();
    for start_id in ["start-1", "start-1", "start-2"] {
        let run = transports
            .attempt(&target, &attempt(start_id))
            .await
            .unwrap_or_else(|f| panic!("send: {}", f.message));
        runs.push(run.id);
    }
    let out = sqs
        .receive_message()
        .queue_url(&fifo)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive");
    let messages = out.messages();
    let starts: Vec<String> = messages
        .iter()
        .filter_map(|m| m.body())
        .map(|b| {
            serde_json::from_str::<serde_json::Value>(b).expect("json")["start_id"].to_string()
        })
        .collect();
    assert_eq!(
        starts,
        ["\"start-1\"", "\"start-2\""],
        "the repeat was dropped"
    );
    assert_eq!(
        runs[0].as_deref(),
        messages[0].message_id(),
        "the run is the message id"
    );
    let attrs = messages[0].attributes().expect("attributes");
    use aws_sdk_sqs::types::MessageSystemAttributeName as A;
    assert_eq!(
        attrs.get(&A::MessageGroupId).map(String::as_str),
        Some("api-build")
    );
    assert_eq!(
        attrs.get(&A::MessageDeduplicationId).map(String::as_str),
        Some("start-1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_and_missing_credentials_are_named_and_retried() {
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    let closed = switchyard_lab::free_port().expect("port");
    let p = Project::new();
    p.file(
        "switchyard.yaml",
        &format!(
            "state_dir: state\neventbridge:\n  queue_url: http://127.0.0.1:{closed}/123456789012/q\n  region: {REGION}\n  endpoint_url: http://127.0.0.1:{closed}\n  wait: 1s\n"
        ),
    );
    let served = serve(p.root(), &moto.env()).await;
    eventually(20, "the error", || {
        let err = served.err();
        (err.matches("cannot receive from the queue").count() >= 2).then_some(())
    })
    .await;
    assert!(
        served.err().contains("cannot connect to the endpoint"),
        "{}",
        served.err()
    );
    assert!(served.stop().await, "still running, and stops cleanly");

    // No credentials anywhere: said so, and retried.
    let (queue, _, _) = moto.queue("changes", 30, 3).await;
    let p = project(&moto, &queue, "");
    let home = tempfile::tempdir().expect("home");
    let env = [
        ("HOME", home.path().display().to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_ACCESS_KEY_ID", String::new()),
        ("AWS_SECRET_ACCESS_KEY", String::new()),
    ];
    let served = serve(p.root(), &env).await;
    eventually(30, "the credentials error", || {
        served
            .err()
            .contains("cannot receive from the queue")
            .then_some(())
    })
    .await;
    assert!(
        served.err().to_lowercase().contains("credential"),
        "{}",
        served.err()
    );
    assert!(served.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_setup_makes_the_resources_once_and_they_carry_changes() {
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    let p = Project::new();
    let queue_url = format!("{}/123456789012/changes", moto.endpoint);
    p.file(
        "switchyard.yaml",
        &format!(
            "state_dir: state\neventbridge:\n  queue_url: {queue_url}\n  region: {REGION}\n  endpoint_url: {}\n  wait: 1s\n",
            moto.endpoint
        ),
    );
    p.file("triggers/printer.yaml", PRINTER);
    p.file(
        "triggers/web.yaml",
        "repository: https://github.com/acme/web.git\non: push\nstart: {exec: [\"/bin/true\"]}\n",
    );
    let moto_env = moto.env();
    let aws: Vec<(&str, &str)> = moto_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let setup = |args: &[&str]| {
        let args: Vec<&str> = ["aws", "setup", "--queue", "changes"]
            .iter()
            .chain(args)
            .copied()
            .collect();
        let out = p.run(&args, &aws, "");
        assert!(out.success(), "{}", out.stderr);
        out.stdout
    };
    let words = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split("  ").next().unwrap_or("").trim().to_owned())
            .collect()
    };

    let planned = setup(&["--dry-run"]);
    assert!(
        words(&planned).iter().all(|w| w == "would create"),
        "{planned}"
    );
    let queues = moto.sqs().list_queues().send().await.expect("list");
    assert!(queues.queue_urls().is_empty(), "a dry run makes nothing");

    let first = setup(&[]);
    assert_eq!(
        words(&first).iter().filter(|w| *w == "created").count(),
        8,
        "{first}"
    );
    let second = setup(&[]);
    assert!(words(&second).iter().all(|w| w == "unchanged"), "{second}");
    let queues = moto.sqs().list_queues().send().await.expect("list");
    assert_eq!(queues.queue_urls().len(), 2, "the queue and its DLQ, once");
    let rules = moto
        .events()
        .list_rules()
        .name_prefix("switchyard-")
        .send()
        .await
        .expect("rules");
    assert_eq!(rules.rules().len(), 3, "{first}");

    // What setup made carries a CodeCommit change to a start.
    let served = serve(p.root(), &moto.env()).await;
    put(&moto, reference_updated(&sha(7), &sha(8))).await;
    eventually(20, "the start", || {
        served.out().contains(&sha(8)).then_some(())
    })
    .await;
    // An event of a repository no pipeline watches does not reach the queue. The fence: a
    // watched change put after it has started, the queue is empty, and switchyard received
    // two messages in all (the first change and that one).
    let other = codecommit_detail("Unwatched", "main", &sha(7), &sha(9));
    put(&moto, other).await;
    put(&moto, reference_updated(&sha(8), &sha(10))).await;
    eventually(20, "the later change's start", || {
        served.out().contains(&sha(10)).then_some(())
    })
    .await;
    assert_eq!(drained(&moto, &queue_url).await, 0);
    let messages = served
        .metrics()
        .await
        .sum("switchyard_sqs_messages_total", &[]);
    assert_eq!(messages, 2.0, "{}", served.err());
    assert!(!served.out().contains(&sha(9)));
    assert!(served.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_intake_keeps_its_message_invisible_to_the_other_consumers() {
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    let (queue, arn, _) = moto.queue("changes", 2, 10).await;
    moto.rule_to_queue("aws.codecommit", &arn).await;
    let p = project(&moto, &queue, "  consumers: 2\n");
    let served = serve(p.root(), &moto.env()).await;
    // Hold the store's write lock: the intake waits. The consumer extends the batch's
    // visibility every half of the 2 s timeout; after the third extension the message has been
    // held well past the 2 s it would have been hidden without them.
    let db = p.root().join("state/switchyard.db");
    let blocker = rusqlite::Connection::open(&db).expect("open the store");
    blocker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    put(&moto, reference_updated(&sha(10), &sha(11))).await;
    let extended = [("api", "ChangeMessageVisibilityBatch"), ("outcome", "ok")];
    counted(
        served.addr(),
        "switchyard_aws_requests_total",
        &extended,
        3.0,
    )
    .await;
    blocker
        .execute_batch("COMMIT")
        .expect("release the write lock");
    eventually(20, "the start", || {
        served.out().contains(&sha(11)).then_some(())
    })
    .await;
    let metrics = served.metrics().await;
    assert_eq!(
        metrics.sum("switchyard_sqs_messages_total", &[("outcome", "stored")]),
        1.0,
        "received once: the other consumer never saw it\n{metrics}"
    );
    assert_eq!(served.out().lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_named_and_retried() {
    let Some(moto) = or_skip(Moto::start_checking_credentials()) else {
        return;
    };
    let queue = format!("{}/123456789012/changes", moto.endpoint);
    let p = project(&moto, &queue, "");
    let served = serve(p.root(), &moto.env()).await;
    eventually(20, "two refused receives", || {
        (served
            .err()
            .matches("cannot receive from the queue")
            .count()
            >= 2)
            .then_some(())
    })
    .await;
    let err = served.err();
    assert!(err.contains("HTTP 403 InvalidClientTokenId"), "{err}");
    assert!(err.contains("check the AWS credentials"), "{err}");
    assert!(served.stop().await, "still running, and stops cleanly");
}
