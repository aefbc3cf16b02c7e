//! `SWITCHYARD_DYNAMODB_TABLE` on a real moto server: start ids claimed in the table before
//! the start, so that two `switchyard lambda` processes given the same SQS record start it once,
//! a failed start gives its claim up for the redelivery, and a claim that cannot be made starts
//! nothing. The start target is the lab's runner, which records every start that reaches it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use switchyard::aws::claims::{EXPIRY, IN_PROGRESS_EXPIRY, KEY, STATUS, TOKEN};
use switchyard::lambda::{TABLE_VARIABLE, TTL_VARIABLE};
use switchyard_lab::{Moto, Runner, or_skip};

use super::{CODECOMMIT, Function, Outcome, Runtime, reference_updated, sqs_batch};
use crate::support::Project;

/// The table the tests create on their moto.
const TABLE: &str = "switchyard-claims";

/// A package whose one pipeline, `runner`, starts through the runner at `runner` (an `http`
/// target), with `attempts` quick attempts per invocation.
fn package(runner: SocketAddr, attempts: u32) -> Project {
    let p = Project::new();
    p.file(
        "triggers/runner.yaml",
        &format!(
            "repository: {CODECOMMIT}\non: push\nstart:\n  http: {{url: \"http://{runner}/start\"}}\n"
        ),
    );
    p.file(
        "switchyard.yaml",
        &format!("dispatch:\n  attempts: {attempts}\n  backoff: 20ms\n  backoff_max: 50ms\n"),
    );
    p
}

/// The environment of a function that reaches moto, claiming in `table`.
fn env(moto: &Moto, table: &str) -> Vec<(&'static str, String)> {
    let mut env = moto.env();
    env.push(("AWS_ENDPOINT_URL", moto.endpoint.clone()));
    env.push((TABLE_VARIABLE, table.to_owned()));
    env
}

/// A function on its own fake Runtime API, with this environment.
async fn function(package: &Project, env: &[(&'static str, String)]) -> (Arc<Runtime>, Function) {
    let (runtime, api) = Runtime::start().await;
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    (runtime, Function::start(package.root(), api, &env))
}

/// One SQS record (message `message`) carrying a push to main, and the start id of the
/// pipeline `runner` for its change.
fn record(message: &str, n: u64) -> (Value, String) {
    let event = reference_updated(&format!("e-{n}"), "main", n);
    let body = event.to_string();
    let parsed =
        switchyard::sources::eventbridge::envelope::parse(body.as_bytes(), jiff::Timestamp::now())
            .expect("the fixture parses");
    let switchyard::sources::eventbridge::envelope::Envelope::Changes { changes, .. } = parsed
    else {
        panic!("the fixture is a change");
    };
    let id = switchyard::outcome::start_id(&changes[0].id, "runner");
    (sqs_batch(&[(message, body)]), id)
}

/// The item of start `id` in `table`, read consistently.
async fn item(moto: &Moto, table: &str, id: &str) -> Option<HashMap<String, AttributeValue>> {
    moto.dynamodb()
        .get_item()
        .table_name(table)
        .key(KEY, AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item()
        .cloned()
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number {name} in {item:?}"))
}

fn string<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> &'a str {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .unwrap_or_else(|| panic!("no string {name} in {item:?}"))
}

fn failures(outcome: &Outcome) -> Vec<String> {
    assert_eq!(outcome.kind, "response", "{outcome:?}");
    outcome.body["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a batch answer: {outcome:?}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The table's moto, or `None` when moto is not installed (and the test is skipped).
async fn moto_with_table() -> Option<Moto> {
    let moto = or_skip(Moto::start())?;
    moto.claims_table(TABLE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    Some(moto)
}

/// Two processes, the same record, both in flight at once: the first holds the claim while its
/// start waits at the runner, the second meets that claim. The second is handed the record once
/// the first's start has reached the runner, not at the same instant: moto serves requests on
/// threads without a lock, so two simultaneous conditional PutItems can both succeed there
/// (seen about once in twelve runs on a loaded machine), where DynamoDB makes them atomic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_given_one_record_start_it_once_and_the_loser_comes_back_to_success() {
    let Some(moto) = moto_with_table().await else {
        return;
    };
    let (runner, addr) = Runner::start().await.expect("runner");
    let package = package(addr, 3);
    let env = env(&moto, TABLE);
    let (runtime_a, function_a) = function(&package, &env).await;
    let (runtime_b, function_b) = function(&package, &env).await;
    let (record, start_id) = record("m-1", 1);

    // A's start is held at the runner: A holds its claim and is still at it.
    runner.hold();
    let mut winner = {
        let (runtime, record) = (Arc::clone(&runtime_a), record.clone());
        tokio::spawn(async move { runtime.invoke(record).await })
    };
    let arrived = runner
        .wait_for(Duration::from_secs(30), |a| {
            a.first().map(|a| a.start_id.clone())
        })
        .await;
    assert_eq!(arrived, Some(start_id.clone()), "{}", function_a.err());
    let claim = item(&moto, TABLE, &start_id).await.expect("A's claim");
    assert_eq!(string(&claim, STATUS), "INPROGRESS", "{claim:?}");
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let lease = number(&claim, IN_PROGRESS_EXPIRY) - now_ms;
    assert!(
        lease > 0 && lease <= 30_000,
        "the lease ends within the invocation's 30 s: {lease} ms"
    );
    assert_eq!(string(&claim, TOKEN).len(), 32);

    // B, given the same record meanwhile, starts nothing and reports the record.
    let lost = runtime_b.invoke(record.clone()).await;
    assert_eq!(failures(&lost), ["m-1"], "{}", function_b.err());
    assert_eq!(runner.arrivals().len(), 1, "B started nothing");
    function_b
        .logged("A's claim", |err| {
            err.contains("another instance is attempting this start")
        })
        .await;
    assert!(!winner.is_finished(), "A is still at its start");

    runner.release();
    let won = tokio::time::timeout(Duration::from_secs(30), &mut winner)
        .await
        .expect("A answers")
        .expect("the invocation");
    assert!(failures(&won).is_empty(), "{won:?}\n{}", function_a.err());
    let done = item(&moto, TABLE, &start_id).await.expect("the item");
    assert_eq!(string(&done, STATUS), "COMPLETED", "{done:?}");
    let ttl = number(&done, EXPIRY) - jiff::Timestamp::now().as_second();
    assert!(
        (14 * 24 * 3600 - 60..=14 * 24 * 3600).contains(&ttl),
        "the item counts 14 days: {ttl} s"
    );

    // SQS delivers B's record again: it finds the start done, and succeeds without starting
    // (B never started it, so this is the table's answer, not its memory).
    let again = runtime_b.invoke(record).await;
    assert!(
        failures(&again).is_empty(),
        "{again:?}\n{}",
        function_b.err()
    );
    assert_eq!(runner.arrivals().len(), 1, "no second start");
    function_b
        .logged("the start found done", |err| {
            err.contains("COMPLETED in DynamoDB")
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_gives_up_its_claim_so_that_the_redelivery_starts_it() {
    let Some(moto) = moto_with_table().await else {
        return;
    };
    let (runner, addr) = Runner::start().await.expect("runner");
    let package = package(addr, 2);
    let (runtime, function) = function(&package, &env(&moto, TABLE)).await;
    let (record, start_id) = record("m-2", 10);

    // The runner refuses both attempts of the invocation.
    runner.script(&[500, 500]);
    let outcome = runtime.invoke(record.clone()).await;
    assert_eq!(failures(&outcome), ["m-2"], "{}", function.err());
    let tried: Vec<String> = runner.drain().into_iter().map(|a| a.start_id).collect();
    assert_eq!(tried, [start_id.clone(), start_id.clone()]);
    assert_eq!(
        item(&moto, TABLE, &start_id).await,
        None,
        "the failed start's claim is deleted"
    );

    // The runner takes starts again; the record comes back and is started, once.
    let outcome = runtime.invoke(record.clone()).await;
    assert!(failures(&outcome).is_empty(), "{}", function.err());
    let started: Vec<String> = runner.drain().into_iter().map(|a| a.start_id).collect();
    assert_eq!(started, std::slice::from_ref(&start_id));
    let done = item(&moto, TABLE, &start_id).await.expect("the item");
    assert_eq!(string(&done, STATUS), "COMPLETED");

    // And once more (SQS delivers at least once): nothing starts again.
    let outcome = runtime.invoke(record).await;
    assert!(failures(&outcome).is_empty(), "{}", function.err());
    assert!(runner.arrivals().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_claim_is_taken_over_and_a_live_one_is_waited_for() {
    let Some(moto) = moto_with_table().await else {
        return;
    };
    let (runner, addr) = Runner::start().await.expect("runner");
    let package = package(addr, 1);
    let (runtime, function) = function(&package, &env(&moto, TABLE)).await;
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let put = |id: &str, until_ms: i64| {
        moto.dynamodb()
            .put_item()
            .table_name(TABLE)
            .item(KEY, AttributeValue::S(id.to_owned()))
            .item(STATUS, AttributeValue::S("INPROGRESS".into()))
            .item(IN_PROGRESS_EXPIRY, AttributeValue::N(until_ms.to_string()))
            .item(
                EXPIRY,
                AttributeValue::N((now_ms / 1000 + 3600).to_string()),
            )
            .item(TOKEN, AttributeValue::S("another-instance".into()))
            .send()
    };

    // An instance that died holding a claim: its lease lapsed, so the start is taken over.
    let (lapsed, lapsed_id) = record("m-lapsed", 20);
    put(&lapsed_id, now_ms - 1_000).await.expect("PutItem");
    let outcome = runtime.invoke(lapsed).await;
    assert!(failures(&outcome).is_empty(), "{}", function.err());
    assert_eq!(runner.drain().len(), 1);
    let item_now = item(&moto, TABLE, &lapsed_id).await.expect("the item");
    assert_eq!(string(&item_now, STATUS), "COMPLETED");
    assert_ne!(string(&item_now, TOKEN), "another-instance");

    // An instance that holds one now: nothing starts, the record comes back later.
    let (live, live_id) = record("m-live", 30);
    put(&live_id, now_ms + 60_000).await.expect("PutItem");
    let outcome = runtime.invoke(live).await;
    assert_eq!(failures(&outcome), ["m-live"], "{}", function.err());
    assert!(runner.arrivals().is_empty());
    let untouched = item(&moto, TABLE, &live_id).await.expect("the item");
    assert_eq!(string(&untouched, TOKEN), "another-instance");

    // A completed start whose item has expired (TTL deletes lazily) counts no more.
    let (expired, expired_id) = record("m-expired", 40);
    moto.dynamodb()
        .put_item()
        .table_name(TABLE)
        .item(KEY, AttributeValue::S(expired_id.clone()))
        .item(STATUS, AttributeValue::S("COMPLETED".into()))
        .item(EXPIRY, AttributeValue::N((now_ms / 1000 - 10).to_string()))
        .send()
        .await
        .expect("PutItem");
    let outcome = runtime.invoke(expired).await;
    assert!(failures(&outcome).is_empty(), "{}", function.err());
    assert_eq!(runner.drain().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_cannot_be_made_starts_nothing_and_fails_the_record() {
    let Some(moto) = or_skip(Moto::start()) else {
        return;
    };
    let (runner, addr) = Runner::start().await.expect("runner");
    let package = package(addr, 3);
    let (runtime, function) = function(&package, &env(&moto, "no-such-table")).await;
    let (record, _) = record("m-3", 50);
    let outcome = runtime.invoke(record).await;
    assert_eq!(failures(&outcome), ["m-3"], "{}", function.err());
    assert!(runner.arrivals().is_empty(), "nothing started");
    let err = function
        .logged("the claim's error", |err| err.contains("not attempted"))
        .await;
    assert!(
        err.contains("no-such-table") && err.contains("ResourceNotFoundException"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_that_is_no_duration_stops_the_function_at_its_start() {
    let (_runtime, api) = Runtime::start().await;
    let package = Project::new();
    package.file(
        "triggers/none.yaml",
        "repository: https://github.com/a/b.git\non: push\nstart: {exec: [\"/bin/true\"]}\n",
    );
    let mut function = Function::start(
        package.root(),
        api,
        &[(TABLE_VARIABLE, TABLE), (TTL_VARIABLE, "fourteen days")],
    );
    let status = crate::support::eventually(20, "the function to exit", || {
        function.child.try_wait().ok().flatten()
    })
    .await;
    assert_eq!(status.code(), Some(1));
    function
        .logged("the variable's error", |err| {
            err.contains("SWITCHYARD_DYNAMODB_TTL=\"fourteen days\" is not a duration")
                && err.contains("hint:")
        })
        .await;
}
