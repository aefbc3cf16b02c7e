//! `switchyard aws setup`: makes, idempotently, what the EventBridge source needs: the queue
//! with a dead-letter queue and redrive policy, the queue policy that lets the rules send, one
//! rule per kind of change event of the repositories in `triggers/` (CodeCommit state changes,
//! GitHub events re-published by AWS's quick start, any producer's `switchyard.change/v1`),
//! and each rule's target. A second run changes nothing and says so; `--dry-run` only reads.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use aws_sdk_sqs::types::QueueAttributeName;

use crate::pipeline::Pipelines;

/// Receives of one message before the queue moves it to its dead-letter queue.
pub const MAX_RECEIVES: u32 = 5;
/// The queue's visibility timeout: longer than an intake, shorter than a redelivery wait.
pub const VISIBILITY_SECS: u32 = 60;
/// How long the dead-letter queue keeps a message (14 days, SQS's longest).
const DLQ_RETENTION_SECS: u32 = 1_209_600;
/// The target id switchyard gives its rules' queue target.
const TARGET_ID: &str = "switchyard-queue";

/// What `aws setup` was asked for.
#[derive(Clone, Debug)]
pub struct Request {
    pub queue: String,
    pub bus: String,
    pub dry_run: bool,
}

/// One rule and the event pattern it should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub pattern: String,
}

/// The rules for the repositories the pipelines watch.
pub fn rules(queue: &str, pipelines: &Pipelines) -> Vec<Rule> {
    let mut codecommit = BTreeSet::new();
    let mut github = BTreeSet::new();
    for p in &pipelines.list {
        let id = p.repository.as_str();
        if let Some(rest) = id.strip_prefix("git-codecommit.")
            && let Some((region, name)) = rest.split_once(".amazonaws.com/v1/repos/")
        {
            codecommit.insert((region.to_owned(), name.to_owned()));
        } else if let Some(full_name) = id.strip_prefix("github.com/") {
            github.insert(full_name.to_owned());
        }
    }
    let mut out = Vec::new();
    if !codecommit.is_empty() {
        let names: Vec<&str> = codecommit.iter().map(|(_, n)| n.as_str()).collect();
        let regions: BTreeSet<&str> = codecommit.iter().map(|(r, _)| r.as_str()).collect();
        out.push(Rule {
            name: format!("switchyard-{queue}-codecommit"),
            pattern: serde_json::json!({
                "source": ["aws.codecommit"],
                "detail-type": ["CodeCommit Repository State Change", "CodeCommit Pull Request State Change"],
                "region": regions,
                "detail": {"repositoryName": names},
            })
            .to_string(),
        });
    }
    if !github.is_empty() {
        out.push(Rule {
            name: format!("switchyard-{queue}-github"),
            pattern: serde_json::json!({
                "source": ["github.com"],
                "detail": {"repository": {"full_name": github}},
            })
            .to_string(),
        });
    }
    out.push(Rule {
        name: format!("switchyard-{queue}-changes"),
        pattern: serde_json::json!({"detail-type": ["switchyard.change/v1"]}).to_string(),
    });
    out
}

/// What was (or would be) done to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Unchanged,
}

impl Action {
    fn word(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Action::Created, false) => "created",
            (Action::Created, true) => "would create",
            (Action::Updated, false) => "updated",
            (Action::Updated, true) => "would update",
            (Action::Unchanged, _) => "unchanged",
        }
    }
}

/// The report: one line per resource.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<(Action, String)>,
    pub dry_run: bool,
}

impl Report {
    fn add(&mut self, action: Action, what: String) {
        self.lines.push((action, what));
    }

    /// One line per resource: `created  queue switchyard (…)`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (action, what) in &self.lines {
            let _ = writeln!(out, "{:<13} {what}", action.word(self.dry_run));
        }
        out
    }
}

/// Why setup stopped.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub struct SetupError {
    pub step: String,
    pub message: String,
}

fn fail(step: impl Into<String>) -> impl FnOnce(String) -> SetupError {
    let step = step.into();
    move |message| SetupError { step, message }
}

/// Makes (or with `dry_run`, plans) the resources for `request`, with the pipelines in
/// `triggers/` deciding the rules.
pub async fn run(
    sdk: &aws_config::SdkConfig,
    request: &Request,
    pipelines: &Pipelines,
) -> Result<Report, SetupError> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let region = sdk
        .region()
        .map(ToString::to_string)
        .ok_or_else(|| SetupError {
            step: "region".into(),
            message: "no region: set eventbridge.region in switchyard.yaml or AWS_REGION".into(),
        })?;
    let mut report = Report {
        dry_run: request.dry_run,
        ..Report::default()
    };
    let dlq_name = format!("{}-dlq", request.queue);
    let dlq = ensure_queue(
        &sqs,
        &dlq_name,
        &[(
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION_SECS.to_string(),
        )],
        request.dry_run,
        &mut report,
    )
    .await?;
    let rules = rules(&request.queue, pipelines);
    // The rules' ARNs are known before they exist: arn:PARTITION:events:REGION:ACCOUNT:rule/...;
    // the account is the queue's (from its ARN), or unknown in a dry run of a new queue.
    let account = dlq
        .as_ref()
        .and_then(|(_, arn)| arn.split(':').nth(4).map(str::to_owned))
        .unwrap_or_else(|| "ACCOUNT".into());
    let partition = dlq
        .as_ref()
        .and_then(|(_, arn)| arn.split(':').nth(1).map(str::to_owned))
        .unwrap_or_else(|| "aws".into());
    let rule_arn = |name: &str| {
        if request.bus == "default" {
            format!("arn:{partition}:events:{region}:{account}:rule/{name}")
        } else {
            format!(
                "arn:{partition}:events:{region}:{account}:rule/{}/{name}",
                request.bus
            )
        }
    };
    let queue_arn = format!("arn:{partition}:sqs:{region}:{account}:{}", request.queue);
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "switchyard-rules-send",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rules.iter().map(|r| rule_arn(&r.name)).collect::<Vec<_>>()}},
        }],
    })
    .to_string();
    let mut attributes = vec![
        (
            QueueAttributeName::VisibilityTimeout,
            VISIBILITY_SECS.to_string(),
        ),
        (
            QueueAttributeName::ReceiveMessageWaitTimeSeconds,
            "20".to_owned(),
        ),
        (QueueAttributeName::Policy, policy),
    ];
    if let Some((_, dlq_arn)) = &dlq {
        attributes.push((
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES.to_string()})
                .to_string(),
        ));
    }
    let queue = ensure_queue(
        &sqs,
        &request.queue,
        &attributes,
        request.dry_run,
        &mut report,
    )
    .await?;
    let queue_arn = queue.map(|(_, arn)| arn).unwrap_or(queue_arn);
    for rule in &rules {
        ensure_rule(&events, &request.bus, rule, request.dry_run, &mut report).await?;
        ensure_target(
            &events,
            &request.bus,
            &rule.name,
            &queue_arn,
            request.dry_run,
            &mut report,
        )
        .await?;
    }
    Ok(report)
}

/// Creates the queue or brings its attributes to `want`; (URL, ARN) unless a dry run of a new
/// queue.
async fn ensure_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    want: &[(QueueAttributeName, String)],
    dry_run: bool,
    report: &mut Report,
) -> Result<Option<(String, String)>, SetupError> {
    let step = format!("queue {name}");
    let existing = sqs.get_queue_url().queue_name(name).send().await;
    let url = match existing {
        Ok(out) => out.queue_url().map(str::to_owned),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_does_not_exist()) =>
        {
            None
        }
        Err(e) => return Err(fail(step)(super::describe(&e))),
    };
    let Some(url) = url else {
        report.add(Action::Created, format!("queue {name}"));
        if dry_run {
            return Ok(None);
        }
        let mut create = sqs.create_queue().queue_name(name);
        for (k, v) in want {
            create = create.attributes(k.clone(), v);
        }
        let url = create
            .send()
            .await
            .map_err(|e| fail(step.clone())(super::describe(&e)))?
            .queue_url()
            .map(str::to_owned)
            .ok_or_else(|| fail(step.clone())("no URL in the answer".into()))?;
        let arn = queue_arn(sqs, &url).await.map_err(fail(step))?;
        return Ok(Some((url, arn)));
    };
    let current = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map_err(|e| fail(step.clone())(super::describe(&e)))?;
    let current = current.attributes().cloned().unwrap_or_default();
    let differs: Vec<&(QueueAttributeName, String)> = want
        .iter()
        .filter(|(k, v)| !same_attribute(current.get(k).map(String::as_str), v))
        .collect();
    if differs.is_empty() {
        report.add(Action::Unchanged, format!("queue {name}"));
    } else {
        let names: Vec<&str> = differs.iter().map(|(k, _)| k.as_str()).collect();
        report.add(
            Action::Updated,
            format!("queue {name} ({})", names.join(", ")),
        );
        if !dry_run {
            let mut set = sqs.set_queue_attributes().queue_url(&url);
            for (k, v) in differs {
                set = set.attributes(k.clone(), v);
            }
            set.send()
                .await
                .map_err(|e| fail(step.clone())(super::describe(&e)))?;
        }
    }
    let arn = current
        .get(&QueueAttributeName::QueueArn)
        .cloned()
        .ok_or_else(|| fail(step)("the queue has no ARN".into()))?;
    Ok(Some((url, arn)))
}

/// Attribute values compared as SQS returns them: JSON documents by value.
fn same_attribute(current: Option<&str>, want: &str) -> bool {
    let Some(current) = current else { return false };
    if current == want {
        return true;
    }
    match (
        serde_json::from_str::<serde_json::Value>(current),
        serde_json::from_str::<serde_json::Value>(want),
    ) {
        (Ok(a), Ok(b)) if a.is_object() => normalize_json(a) == normalize_json(b),
        _ => false,
    }
}

/// Numbers written as strings (`"5"`) and as numbers (`5`) are the same to SQS.
fn normalize_json(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize_json).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, normalize_json(v)))
                .collect(),
        ),
        other => other,
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| super::describe(&e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| "the queue has no ARN".into())
}

async fn ensure_rule(
    events: &aws_sdk_eventbridge::Client,
    bus: &str,
    rule: &Rule,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), SetupError> {
    let step = format!("rule {}", rule.name);
    let current = events
        .describe_rule()
        .name(&rule.name)
        .event_bus_name(bus)
        .send()
        .await;
    let action = match current {
        Ok(out)
            if out
                .event_pattern()
                .is_some_and(|p| same_pattern(p, &rule.pattern)) =>
        {
            Action::Unchanged
        }
        Ok(_) => Action::Updated,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Action::Created
        }
        Err(e) => return Err(fail(step)(super::describe(&e))),
    };
    report.add(
        action,
        format!("rule {} on bus {bus}: {}", rule.name, rule.pattern),
    );
    if action != Action::Unchanged && !dry_run {
        events
            .put_rule()
            .name(&rule.name)
            .event_bus_name(bus)
            .event_pattern(&rule.pattern)
            .description("switchyard: repository change events for its queue")
            .send()
            .await
            .map_err(|e| fail(step)(super::describe(&e)))?;
    }
    Ok(())
}

fn same_pattern(a: &str, b: &str) -> bool {
    matches!(
        (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)),
        (Ok(x), Ok(y)) if x == y
    )
}

async fn ensure_target(
    events: &aws_sdk_eventbridge::Client,
    bus: &str,
    rule: &str,
    queue_arn: &str,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), SetupError> {
    let step = format!("target of rule {rule}");
    let current = if dry_run {
        // The rule may not exist yet in a dry run: then neither does its target.
        events
            .list_targets_by_rule()
            .rule(rule)
            .event_bus_name(bus)
            .send()
            .await
            .ok()
    } else {
        Some(
            events
                .list_targets_by_rule()
                .rule(rule)
                .event_bus_name(bus)
                .send()
                .await
                .map_err(|e| fail(step.clone())(super::describe(&e)))?,
        )
    };
    let existing = current.as_ref().and_then(|out| {
        out.targets()
            .iter()
            .find(|t| t.id() == TARGET_ID)
            .map(|t| t.arn().to_owned())
    });
    let action = match existing {
        Some(arn) if arn == queue_arn => Action::Unchanged,
        Some(_) => Action::Updated,
        None => Action::Created,
    };
    report.add(
        action,
        format!("target {TARGET_ID} of rule {rule}: {queue_arn}"),
    );
    if action != Action::Unchanged && !dry_run {
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id(TARGET_ID)
            .arn(queue_arn)
            .build()
            .map_err(|e| fail(step.clone())(e.to_string()))?;
        let out = events
            .put_targets()
            .rule(rule)
            .event_bus_name(bus)
            .targets(target)
            .send()
            .await
            .map_err(|e| fail(step.clone())(super::describe(&e)))?;
        if out.failed_entry_count() > 0 {
            return Err(fail(step)("the target was refused".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_the_repositories_of_the_pipelines() {
        let files = [
            (
                "cc.yaml",
                "repository: codecommit::eu-west-1://api\nstart: {exec: [\"/bin/true\"]}\n",
            ),
            (
                "gh.yaml",
                "repository: https://github.com/acme/web.git\nstart: {exec: [\"/bin/true\"]}\n",
            ),
        ]
        .map(|(name, text)| (name.to_owned(), text.to_owned()));
        let (pipelines, diags) = Pipelines::load_texts(&files, std::path::Path::new("/srv"));
        assert!(diags.is_empty(), "{diags:?}");
        let rules = rules("q", &pipelines);
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "switchyard-q-codecommit",
                "switchyard-q-github",
                "switchyard-q-changes"
            ]
        );
        assert!(
            rules[0].pattern.contains(r#""repositoryName":["api"]"#),
            "{}",
            rules[0].pattern
        );
        assert!(rules[0].pattern.contains(r#""region":["eu-west-1"]"#));
        assert!(rules[1].pattern.contains(r#""full_name":["acme/web"]"#));
    }

    #[test]
    fn attributes_compare_as_sqs_returns_them() {
        assert!(same_attribute(Some("60"), "60"));
        assert!(!same_attribute(Some("30"), "60"));
        assert!(!same_attribute(None, "60"));
        assert!(same_attribute(
            Some(r#"{"deadLetterTargetArn":"a","maxReceiveCount":5}"#),
            r#"{"maxReceiveCount":"5","deadLetterTargetArn":"a"}"#
        ));
    }
}
