//! The Lambda shape: the SAM template (`deploy/template.yaml`) passes cfn-lint (pinned by
//! `.ci/test`), runs the package `deploy/lambda/build.sh` makes, and wires the function, its
//! URL, the rule, the queue and its dead-letter queue, the claims table and the policies as
//! `switchyard lambda` expects; the example pipelines pass `switchyard check` as build.sh
//! checks them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard::pipeline::Pipelines;
use switchyard::yaml::{self, Node, Value};

use super::{at, get, items, read, root, text, validate, validator};
use crate::support::Project;

const TEMPLATE: &str = "deploy/template.yaml";

#[test]
fn the_template_passes_cfn_lint() {
    let Some(program) = validator(
        "SWITCHYARD_CFN_LINT",
        "cfn-lint",
        "pip install cfn-lint==1.58.0 (what .ci/test installs into target/moto-venv)",
    ) else {
        return;
    };
    let cfn_lint = |template: &Path| validate(&program, &[&template.to_string_lossy()]);
    let (ok, said) = cfn_lint(&root().join(TEMPLATE));
    assert!(ok, "{} {TEMPLATE}:\n{said}", program.display());

    // What a mistake looks like to this cfn-lint, so that the check above can fail.
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("template.yaml");
    let text = read(TEMPLATE).replace("MemorySize:", "MemorySise:");
    std::fs::write(&broken, text).expect("write the broken template");
    let (ok, said) = cfn_lint(&broken);
    assert!(
        !ok && said.contains("MemorySise"),
        "a misspelt property goes unnoticed: {said:?}"
    );
}

/// The template's resources of one type, by logical id.
fn resources_of<'a>(template: &'a Node, kind: &str) -> Vec<(&'a str, &'a Node)> {
    let Value::Map(entries) = &at(template, &["Resources"]).value else {
        panic!("Resources is not a mapping");
    };
    entries
        .iter()
        .filter(|(_, r)| get(r, "Type").and_then(Node::as_str) == Some(kind))
        .map(|(id, r)| (id.as_str().expect("a logical id"), r))
        .collect()
}

/// The one resource of a type.
fn only<'a>(template: &'a Node, kind: &str) -> (&'a str, &'a Node) {
    let found = resources_of(template, kind);
    assert_eq!(found.len(), 1, "one {kind}: {found:?}");
    found[0]
}

/// The logical id in `Fn::GetAtt: [ID, ATTRIBUTE]`.
fn get_att<'a>(node: &'a Node, attribute: &str) -> &'a str {
    let pair = items(at(node, &["Fn::GetAtt"]));
    assert_eq!(pair.len(), 2, "Fn::GetAtt [ID, ATTRIBUTE]: {node:?}");
    assert_eq!(pair[1].as_str(), Some(attribute), "{node:?}");
    pair[0].as_str().expect("a logical id")
}

/// A node as JSON, scalars as strings.
fn json_of(node: &Node) -> serde_json::Value {
    match &node.value {
        Value::Scalar(s, _) => serde_json::Value::String(s.clone()),
        Value::Seq(list) => list.iter().map(json_of).collect(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| (k.as_str().expect("a scalar key").to_owned(), json_of(v)))
            .collect(),
    }
}

/// The values an `Fn::If` tree can take: its leaves, each branch followed.
fn branches(node: &Node) -> Vec<&Node> {
    match get(node, "Fn::If") {
        Some(args) => items(args)[1..].iter().flat_map(branches).collect(),
        None => vec![node],
    }
}

fn is_no_value(node: &Node) -> bool {
    get(node, "Ref").and_then(Node::as_str) == Some("AWS::NoValue")
}

#[test]
fn the_template_runs_the_package_build_sh_makes() {
    let template = yaml::parse(&read(TEMPLATE)).expect(TEMPLATE);
    assert_eq!(
        text(&template, &["Transform"]),
        "AWS::Serverless-2016-10-31"
    );
    let (_, function) = only(&template, "AWS::Serverless::Function");
    let props = at(function, &["Properties"]);
    assert_eq!(text(props, &["Runtime"]), "provided.al2023");
    assert_eq!(text(props, &["Handler"]), "bootstrap");
    // Webhooks reach the function URL unauthenticated: switchyard checks their signatures.
    assert_eq!(text(props, &["FunctionUrlConfig", "AuthType"]), "NONE");

    // CodeUri, relative to the template, is the directory build.sh fills.
    let code = Path::new(TEMPLATE)
        .parent()
        .expect("deploy/")
        .join(text(props, &["CodeUri"]));
    let code: PathBuf = code.components().fold(PathBuf::new(), |mut p, c| {
        match c {
            std::path::Component::ParentDir => assert!(p.pop(), "CodeUri leaves the repository"),
            other => p.push(other),
        }
        p
    });
    let build = read("deploy/lambda/build.sh");
    assert!(
        build.contains(&format!("out=\"$root/{}\"", code.display())),
        "build.sh does not make {}",
        code.display()
    );
    assert!(
        build.contains("install -m 0755 \"$bin\" \"$out/bootstrap\""),
        "build.sh does not install the binary as bootstrap"
    );
}

#[test]
fn the_queue_outlasts_the_function_and_drains_to_a_dead_letter_queue() {
    let template = yaml::parse(&read(TEMPLATE)).expect(TEMPLATE);
    let (function_id, function) = only(&template, "AWS::Serverless::Function");
    let props = at(function, &["Properties"]);
    let timeout: u64 = text(props, &["Timeout"])
        .parse()
        .expect("Timeout in seconds");

    // One SQS event source, which reports the failed messages of a batch.
    let Value::Map(events) = &at(props, &["Events"]).value else {
        panic!("Events is not a mapping");
    };
    let sqs: Vec<&Node> = events
        .iter()
        .map(|(_, e)| e)
        .filter(|e| get(e, "Type").and_then(Node::as_str) == Some("SQS"))
        .collect();
    assert_eq!(sqs.len(), 1, "one SQS event on {function_id}");
    let source = at(sqs[0], &["Properties"]);
    let responses: Vec<&str> = items(at(source, &["FunctionResponseTypes"]))
        .iter()
        .filter_map(Node::as_str)
        .collect();
    assert_eq!(responses, ["ReportBatchItemFailures"]);
    let window: u64 = get(source, "MaximumBatchingWindowInSeconds")
        .and_then(Node::as_str)
        .map_or(0, |s| s.parse().expect("seconds"));

    // The queue it reads: hidden while a batch may still be worked on, as Lambda advises.
    let queue_id = get_att(at(source, &["Queue"]), "Arn");
    let queue = at(&template, &["Resources", queue_id]);
    assert_eq!(text(queue, &["Type"]), "AWS::SQS::Queue");
    let visibility: u64 = text(queue, &["Properties", "VisibilityTimeout"])
        .parse()
        .expect("VisibilityTimeout in seconds");
    assert!(
        visibility >= 6 * timeout + window,
        "VisibilityTimeout {visibility} < 6 × Timeout {timeout} + batching window {window}"
    );

    // Redrive to a dead-letter queue after as many receives as `aws setup` allows.
    let redrive = at(queue, &["Properties", "RedrivePolicy"]);
    assert_eq!(
        text(redrive, &["maxReceiveCount"]),
        switchyard::aws::setup::MAX_RECEIVES.to_string()
    );
    let dlq_id = get_att(at(redrive, &["deadLetterTargetArn"]), "Arn");
    assert_ne!(dlq_id, queue_id);
    let dlq = at(&template, &["Resources", dlq_id]);
    assert_eq!(text(dlq, &["Type"]), "AWS::SQS::Queue");
    assert_eq!(
        text(dlq, &["Properties", "MessageRetentionPeriod"]),
        "1209600",
        "the dead-letter queue keeps messages 14 days"
    );
}

#[test]
fn the_rule_sends_what_aws_setup_routes_and_only_it_may_send() {
    let template = yaml::parse(&read(TEMPLATE)).expect(TEMPLATE);
    let (_, function) = only(&template, "AWS::Serverless::Function");
    let Value::Map(events) = &at(function, &["Properties", "Events"]).value else {
        panic!("Events is not a mapping");
    };
    let queue_id = events
        .iter()
        .find_map(|(_, e)| get(e, "Properties").and_then(|p| get(p, "Queue")))
        .map(|q| get_att(q, "Arn"))
        .expect("the SQS event's queue");

    // The rule's one target is the queue the function reads.
    let (rule_id, rule) = only(&template, "AWS::Events::Rule");
    let targets = items(at(rule, &["Properties", "Targets"]));
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert_eq!(get_att(at(&targets[0], &["Arn"]), "Arn"), queue_id);

    // Its pattern matches what the rules of `switchyard aws setup` match, less their narrowing
    // to the repositories of the pipelines (the function drops the changes no pipeline watches).
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
    let (pipelines, diags) = Pipelines::load_texts(&files, Path::new("/srv"));
    assert!(diags.is_empty(), "{diags:?}");
    let want: Vec<serde_json::Value> = switchyard::aws::setup::rules("q", &pipelines)
        .iter()
        .map(|r| {
            let mut pattern: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&r.pattern).expect("a JSON pattern");
            pattern.remove("region");
            pattern.remove("detail");
            serde_json::Value::Object(pattern)
        })
        .collect();
    assert_eq!(want.len(), 3, "CodeCommit, GitHub, switchyard.change/v1");
    let pattern = at(rule, &["Properties", "EventPattern"]);
    let routed: Vec<serde_json::Value> = match get(pattern, "$or") {
        Some(any) => items(any).iter().map(json_of).collect(),
        None => vec![json_of(pattern)],
    };
    for p in &want {
        assert!(
            routed.contains(p),
            "{rule_id} does not match {p}: {routed:?}"
        );
    }
    for p in &routed {
        assert!(
            want.contains(p),
            "{rule_id} matches {p}, which aws setup does not route"
        );
    }

    // The queue policy lets EventBridge send to the queue for this rule alone.
    let (_, policy) = only(&template, "AWS::SQS::QueuePolicy");
    let queues: Vec<&str> = items(at(policy, &["Properties", "Queues"]))
        .iter()
        .map(|q| text(q, &["Ref"]))
        .collect();
    assert!(queues.contains(&queue_id), "{queues:?}");
    let statements = items(at(policy, &["Properties", "PolicyDocument", "Statement"]));
    assert_eq!(statements.len(), 1, "{statements:?}");
    let statement = &statements[0];
    assert_eq!(text(statement, &["Effect"]), "Allow");
    assert_eq!(
        text(statement, &["Principal", "Service"]),
        "events.amazonaws.com"
    );
    assert_eq!(text(statement, &["Action"]), "sqs:SendMessage");
    let source = at(statement, &["Condition", "ArnEquals", "aws:SourceArn"]);
    assert_eq!(get_att(source, "Arn"), rule_id);
}

#[test]
fn the_function_sets_only_variables_switchyard_reads() {
    let template = yaml::parse(&read(TEMPLATE)).expect(TEMPLATE);
    let (_, function) = only(&template, "AWS::Serverless::Function");
    let props = at(function, &["Properties"]);
    let Value::Map(variables) = &at(props, &["Environment", "Variables"]).value else {
        panic!("Environment.Variables is not a mapping");
    };
    let secrets: Vec<&str> = switchyard::lambda::SECRET_VARIABLES
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let set: Vec<&str> = variables
        .iter()
        .map(|(k, _)| k.as_str().expect("a variable name"))
        .collect();
    for name in &set {
        assert!(
            secrets.contains(name)
                || [
                    "SWITCHYARD_CONFIG",
                    "SWITCHYARD_TRIGGERS",
                    "SWITCHYARD_LOG",
                    switchyard::lambda::TABLE_VARIABLE,
                    switchyard::lambda::TTL_VARIABLE,
                ]
                .contains(name),
            "{TEMPLATE} sets {name}, which switchyard lambda does not read"
        );
    }
    // Every provider can have a receiver, its secret read by CloudFormation from Secrets
    // Manager or SSM (a plain String: Lambda variables take no ssm-secure), or not be set.
    for name in &secrets {
        let value = variables
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{TEMPLATE} cannot set {name}"));
        let leaves = branches(value);
        assert!(
            leaves.iter().any(|v| is_no_value(v)),
            "{name} is always set"
        );
        for leaf in leaves.iter().filter(|v| !is_no_value(v)) {
            let sub = text(leaf, &["Fn::Sub"]);
            assert!(
                sub.starts_with("{{resolve:secretsmanager:") || sub.starts_with("{{resolve:ssm:"),
                "{name}: {sub}"
            );
        }
    }
    // A triggers layer lands under /opt, where SWITCHYARD_TRIGGERS then points; without the
    // layer the variable is unset and the package's triggers/ is read.
    let triggers = at(props, &["Environment", "Variables", "SWITCHYARD_TRIGGERS"]);
    let [condition, when, otherwise] = items(at(triggers, &["Fn::If"])) else {
        panic!("SWITCHYARD_TRIGGERS: Fn::If [CONDITION, PATH, NoValue]");
    };
    assert_eq!(when.as_str(), Some("/opt/triggers"));
    assert!(is_no_value(otherwise));
    let layers = items(at(props, &["Layers", "Fn::If"]));
    assert_eq!(layers[0].as_str(), condition.as_str());
    let layer_id = text(&items(&layers[1])[0], &["Ref"]);
    let (id, layer) = only(&template, "AWS::Serverless::LayerVersion");
    assert_eq!(id, layer_id);
    assert_eq!(
        text(layer, &["Condition"]),
        condition.as_str().expect("a name")
    );
    assert!(is_no_value(&layers[2]));
}

/// The `Statement`s of the function's `Policies`, each `Fn::If` branch followed.
fn policy_statements(function: &Node) -> Vec<&Node> {
    items(at(function, &["Properties", "Policies"]))
        .iter()
        .flat_map(branches)
        .filter(|p| !is_no_value(p))
        .flat_map(|p| items(at(p, &["Statement"])))
        .collect()
}

/// A scalar or a list of scalars, as a list.
fn scalars(node: &Node) -> Vec<&str> {
    match &node.value {
        Value::Seq(list) => list.iter().filter_map(Node::as_str).collect(),
        _ => node.as_str().into_iter().collect(),
    }
}

#[test]
fn the_claims_table_is_what_the_function_claims_in_and_all_it_may_touch() {
    use switchyard::aws::claims::{CLOCK_SLACK, EXPIRY, KEY, LEASE_MAX};
    let template = yaml::parse(&read(TEMPLATE)).expect(TEMPLATE);
    let (table_id, table) = only(&template, "AWS::DynamoDB::Table");
    let props = at(table, &["Properties"]);
    assert_eq!(text(props, &["BillingMode"]), "PAY_PER_REQUEST");

    // Keyed by the start id alone, a string; the TTL on the attribute the function writes.
    let keys = items(at(props, &["KeySchema"]));
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(text(&keys[0], &["AttributeName"]), KEY);
    assert_eq!(text(&keys[0], &["KeyType"]), "HASH");
    let attributes = items(at(props, &["AttributeDefinitions"]));
    assert_eq!(attributes.len(), 1, "only key attributes are declared");
    assert_eq!(text(&attributes[0], &["AttributeName"]), KEY);
    assert_eq!(text(&attributes[0], &["AttributeType"]), "S");
    assert_eq!(
        text(props, &["TimeToLiveSpecification", "AttributeName"]),
        EXPIRY
    );
    assert_eq!(text(props, &["TimeToLiveSpecification", "Enabled"]), "true");

    // The function claims in it...
    let (_, function) = only(&template, "AWS::Serverless::Function");
    let variable = at(
        function,
        &[
            "Properties",
            "Environment",
            "Variables",
            switchyard::lambda::TABLE_VARIABLE,
        ],
    );
    assert_eq!(text(variable, &["Ref"]), table_id);

    // ...and may do there what a claim needs, nowhere else.
    let want = [
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ];
    let mut granted = Vec::new();
    for statement in policy_statements(function) {
        let actions = scalars(at(statement, &["Action"]));
        if !actions.iter().any(|a| a.starts_with("dynamodb:")) {
            continue;
        }
        assert_eq!(text(statement, &["Effect"]), "Allow");
        assert_eq!(
            get_att(at(statement, &["Resource"]), "Arn"),
            table_id,
            "{statement:?}"
        );
        granted.extend(actions);
    }
    granted.sort_unstable();
    assert_eq!(granted, want);

    // A record that met another instance's claim comes back after the queue's visibility
    // timeout: by then that claim has completed, or been deleted, or lapsed.
    let timeout: u64 = text(
        &template,
        &["Resources", "Switchyard", "Properties", "Timeout"],
    )
    .parse()
    .expect("Timeout in seconds");
    let (_, queue) = resources_of(&template, "AWS::SQS::Queue")
        .into_iter()
        .find(|(_, q)| get(at(q, &["Properties"]), "RedrivePolicy").is_some())
        .expect("the queue the function reads");
    let visibility: u64 = text(queue, &["Properties", "VisibilityTimeout"])
        .parse()
        .expect("seconds");
    let longest_claim = Duration::from_secs(timeout).min(LEASE_MAX) + CLOCK_SLACK;
    assert!(
        Duration::from_secs(visibility) > longest_claim,
        "VisibilityTimeout {visibility} s is not longer than a claim ({longest_claim:?})"
    );
}

#[test]
fn the_function_may_start_only_the_pipelines_and_projects_it_is_given() {
    let template = yaml::parse(&read(TEMPLATE)).expect(TEMPLATE);
    let (_, function) = only(&template, "AWS::Serverless::Function");
    let policies = items(at(function, &["Properties", "Policies"]));
    for (action, parameter) in [
        ("codepipeline:StartPipelineExecution", "StartPipelineArns"),
        ("codebuild:StartBuild", "StartBuildProjectArns"),
    ] {
        // A list of ARNs, empty by default.
        let declared = at(&template, &["Parameters", parameter]);
        assert_eq!(text(declared, &["Type"]), "CommaDelimitedList");
        assert_eq!(text(declared, &["Default"]), "");

        // One policy grants the action: on exactly the ARNs given, and only when some are.
        let granting: Vec<&Node> = policies
            .iter()
            .filter(|p| {
                branches(p)
                    .iter()
                    .filter(|b| !is_no_value(b))
                    .flat_map(|b| items(at(b, &["Statement"])))
                    .any(|s| scalars(at(s, &["Action"])).contains(&action))
            })
            .collect();
        assert_eq!(granting.len(), 1, "{action}: {granting:?}");
        let choice = items(at(granting[0], &["Fn::If"]));
        assert!(
            is_no_value(&choice[2]),
            "{action}: nothing without {parameter}"
        );
        let condition = choice[0].as_str().expect("a condition name");
        assert_eq!(
            json_of(at(&template, &["Conditions", condition])),
            serde_json::json!({"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": parameter}]}, ""]}]}),
            "{condition}: true when {parameter} names something"
        );
        let statements = items(at(&choice[1], &["Statement"]));
        assert_eq!(statements.len(), 1, "{statements:?}");
        assert_eq!(text(&statements[0], &["Effect"]), "Allow");
        assert_eq!(scalars(at(&statements[0], &["Action"])), [action]);
        assert_eq!(text(&statements[0], &["Resource", "Ref"]), parameter);
    }
    // No statement of the function grants anything on a wildcard.
    for statement in policy_statements(function) {
        let resource = json_of(at(statement, &["Resource"])).to_string();
        let actions = scalars(at(statement, &["Action"]));
        assert!(
            !resource.contains('*') && actions.iter().all(|a| !a.contains('*')),
            "{statement:?}"
        );
    }
}

#[test]
fn the_lambda_example_pipelines_pass_check() {
    // As build.sh checks them: no switchyard.yaml, the receivers come from the variables.
    let package = Project::new();
    let triggers = root().join("deploy/lambda/triggers");
    let out = package.run(
        &["check", "--triggers", &triggers.to_string_lossy()],
        &[],
        "",
    );
    assert!(
        out.success() && out.stdout.starts_with("ok: ") && !out.stdout.contains("warning"),
        "deploy/lambda/triggers:\n{}{}",
        out.stdout,
        out.stderr
    );
}
