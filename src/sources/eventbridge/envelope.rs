//! EventBridge events, as the body of an SQS message a rule delivered, to change events.
//!
//! Pure functions of (body, time received): no I/O, no AWS SDK, no async, never a panic on any
//! input. Four kinds of event are understood:
//!
//! - `aws.codecommit` "CodeCommit Repository State Change", `referenceCreated`,
//!   `referenceUpdated` or `referenceDeleted` of a branch or tag: a push. CodeCommit names no
//!   paths, so `changed_paths` is empty and incomplete (the mirror completes it when it can).
//! - `aws.codecommit` "CodeCommit Pull Request State Change": a pull request.
//! - `source: github.com`, as AWS's GitHub inbound-webhook quick start re-publishes a delivery
//!   (detail-type = the GitHub event name, detail = the payload): normalized exactly as the GitHub
//!   receiver does, so the same push has the same id from both.
//! - detail-type `switchyard.change/v1` from any producer: the change event in `detail`.
//!
//! Any other well-formed event is [`Envelope::Unknown`]: the consumer counts, logs and deletes
//! it. A malformed one is an [`EnvelopeError`] naming the JSON path at fault: the consumer leaves
//! it to the queue's redrive policy.
//!
//! Decisions:
//! - **Region.** A CodeCommit repository is `RepoId::codecommit(region, name)`. The region is
//!   taken from the repository ARN in `resources[0]` when there is one, else from the event's
//!   `region`: the ARN names the repository's own region, while `region` is where the event was
//!   put on a bus (moto stamps its own region there: the captured body says `us-east-1` next to an
//!   ARN in `us-east-2`). An ARN that names another repository than `detail.repositoryName` is an
//!   error, not a guess.
//! - **Object ids** must be full (40 or 64 hex digits): the AWS documentation's samples carry
//!   placeholders such as `3e5983DESTINATION`, which are refused naming the field.
//! - **Pull-request actions**: `pullRequestCreated` → `opened`, `pullRequestSourceBranchUpdated`
//!   → `updated`, `pullRequestStatusChanged` → `closed` (status Closed, `merged` from
//!   `isMerged`) or `reopened` (status Open), `pullRequestMergeStatusUpdated` with `isMerged`
//!   True → `closed` and merged; any other activity passes through lowercased
//!   (`pullrequestapprovalstatechanged`). A merge that CodeCommit reports twice (status change
//!   and merge status) is one change: both derive the same id.
//! - **Source**: kind `eventbridge`, delivery id = the EventBridge event id; provider
//!   `codecommit`, `github` (as the webhook receiver says), or the event's `source` for
//!   `switchyard.change/v1` events. Like the standard webhook receiver, a change event's own
//!   `source` and `received_at` are replaced: this queue is what reported it, now.
//! - `time` is the CodeCommit events' `occurred_at`; an unreadable time is left out, never a
//!   reason to refuse an event.

use hyper::HeaderMap;
use hyper::header::HeaderValue;
use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::config::Provider;
use crate::event::{
    self, ChangeEvent, ChangeKind, EventError, PullRequest, SCHEMA, Source, SourceKind, ZERO_SHA,
};
use crate::repo::RepoId;
use crate::sources::providers::{self, NormalizeError, Normalized};

/// The `source` of events CodeCommit sends.
pub const CODECOMMIT_SOURCE: &str = "aws.codecommit";
/// The detail-type of CodeCommit's reference (branch and tag) events.
pub const REPOSITORY_STATE_CHANGE: &str = "CodeCommit Repository State Change";
/// The detail-type of CodeCommit's pull-request events.
pub const PULL_REQUEST_STATE_CHANGE: &str = "CodeCommit Pull Request State Change";
/// The `source` of GitHub deliveries re-published by AWS's inbound-webhook quick start.
pub const GITHUB_SOURCE: &str = "github.com";
/// The `source.provider` of change events made from CodeCommit events.
pub const CODECOMMIT_PROVIDER: &str = "codecommit";

/// The longest event id accepted (EventBridge's are 36-character UUIDs).
const MAX_ID_LEN: usize = 256;
/// The longest ref name git and the change event accept.
const MAX_REF_LEN: usize = 1024;

/// What one EventBridge event is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Envelope {
    /// Change events (usually one), source kind `eventbridge`, delivery id = the EventBridge
    /// event id.
    Changes {
        /// The EventBridge event id.
        event_id: String,
        /// The changes the event reports, sealed.
        changes: Vec<ChangeEvent>,
    },
    /// A well-formed EventBridge event that is no change switchyard knows (another source or
    /// detail-type, a CodeCommit comment, a GitHub `star`...): counted, logged and deleted by the
    /// caller.
    Unknown {
        /// The EventBridge event id, when known (always, from [`parse`], which requires one).
        event_id: Option<String>,
        /// Why it is no change, in a short sentence.
        reason: String,
    },
}

/// An EventBridge event that cannot be understood: names the JSON path at fault (`body` for the
/// message as a whole, `detail.commitId`, `resources[0]`) and what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EnvelopeError {
    /// Where in the event: `body`, or a JSON path such as `detail.commitId`.
    pub field: String,
    /// What is wrong there.
    pub message: String,
    topic: Topic,
}

/// What an error is about, which chooses its hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Topic {
    Envelope,
    CodeCommit,
    ObjectId,
    Ref,
    Repository,
    GitHub,
    Change,
}

impl EnvelopeError {
    fn new(field: impl Into<String>, topic: Topic, message: impl Into<String>) -> EnvelopeError {
        EnvelopeError {
            field: field.into(),
            message: message.into(),
            topic,
        }
    }

    /// How to fix the producer or the rule that sent such an event.
    pub fn hint(&self) -> &'static str {
        match self.topic {
            Topic::Envelope => {
                "the message body must be an EventBridge event as a rule delivers it (id, \
                 detail-type, source and an object as detail); a rule target with an input \
                 transformer changes that shape"
            }
            Topic::CodeCommit => {
                "CodeCommit events carry the detail fields the CodeCommit user guide shows \
                 (\"Monitoring CodeCommit events in Amazon EventBridge\")"
            }
            Topic::ObjectId => {
                "commit ids must be full 40 (or 64) character hex object ids; the AWS \
                 documentation's sample ids (\"3e5983DESTINATION\") are placeholders, not commits"
            }
            Topic::Ref => "refs must be full git ref names git accepts (refs/heads/…, refs/tags/…)",
            Topic::Repository => {
                "a CodeCommit event names its repository by name (detail) and by ARN \
                 (resources[0]), or by name and the event's region; the two must agree"
            }
            Topic::GitHub => {
                "a github.com event must carry the GitHub webhook payload as detail and the \
                 GitHub event name as detail-type, as the inbound-webhook quick start publishes"
            }
            Topic::Change => {
                "a switchyard.change/v1 event must carry a change event as detail (the schema is \
                 in PRODUCT.md); leave out `id` to have it derived"
            }
        }
    }
}

/// Reads one EventBridge event (the body of an SQS message a rule delivered). `received_at`
/// stamps every change event.
pub fn parse(body: &[u8], received_at: Timestamp) -> Result<Envelope, EnvelopeError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        EnvelopeError::new("body", Topic::Envelope, format!("is not valid JSON: {e}"))
    })?;
    let Value::Object(map) = &value else {
        return Err(EnvelopeError::new(
            "body",
            Topic::Envelope,
            format!(
                "must be a JSON object (an EventBridge event), not {}",
                kind(&value)
            ),
        ));
    };
    let root = Obj {
        path: "",
        map,
        topic: Topic::Envelope,
    };
    let id = event_id(&root)?;
    let detail_type = root.non_empty_str("detail-type")?;
    let source = root.non_empty_str("source")?;
    let detail_value = root
        .value("detail")
        .ok_or_else(|| root.error("detail", "is missing"))?;
    let Value::Object(detail_map) = detail_value else {
        return Err(root.error(
            "detail",
            format!("must be an object, not {}", kind(detail_value)),
        ));
    };
    root.opt_str("version")?;
    root.opt_str("account")?;
    let meta = Meta {
        id,
        source,
        detail_type,
        region: root.opt_str("region")?,
        resource: first_resource(&root)?,
        occurred_at: root.opt_str("time")?.and_then(|t| t.parse().ok()),
        received_at,
    };
    let detail = |topic| Obj {
        path: "detail",
        map: detail_map,
        topic,
    };
    match (source, detail_type) {
        (_, SCHEMA) => change_event(meta, detail_value),
        (CODECOMMIT_SOURCE, REPOSITORY_STATE_CHANGE) => {
            reference_change(meta, &detail(Topic::CodeCommit))
        }
        (CODECOMMIT_SOURCE, PULL_REQUEST_STATE_CHANGE) => {
            pull_request_change(meta, &detail(Topic::CodeCommit))
        }
        (GITHUB_SOURCE, _) => github(meta, detail_value),
        _ => {
            let reason = format!(
                "{} events of detail-type {} are not changes switchyard knows",
                quote(source),
                quote(detail_type)
            );
            Ok(meta.unknown(reason))
        }
    }
}

/// The envelope fields every kind of event uses.
#[derive(Debug)]
struct Meta<'a> {
    id: String,
    source: &'a str,
    detail_type: &'a str,
    region: Option<&'a str>,
    /// `resources[0]`, when there is one.
    resource: Option<&'a str>,
    occurred_at: Option<Timestamp>,
    received_at: Timestamp,
}

impl Meta<'_> {
    /// This event as the source of a change.
    fn source_as(&self, provider: &str) -> Source {
        Source {
            kind: SourceKind::Eventbridge,
            provider: Some(provider.to_owned()),
            delivery_id: Some(self.id.clone()),
        }
    }

    fn unknown(self, reason: String) -> Envelope {
        Envelope::Unknown {
            event_id: Some(self.id),
            reason,
        }
    }

    fn changes(self, changes: Vec<ChangeEvent>) -> Envelope {
        Envelope::Changes {
            event_id: self.id,
            changes,
        }
    }
}

/// The event id: a short printable string.
fn event_id(root: &Obj<'_>) -> Result<String, EnvelopeError> {
    let id = root.non_empty_str("id")?;
    if id.len() > MAX_ID_LEN {
        return Err(root.error("id", format!("is longer than {MAX_ID_LEN} bytes")));
    }
    if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(root.error(
            "id",
            format!("{} contains a space or control character", quote(id)),
        ));
    }
    Ok(id.to_owned())
}

/// `resources[0]`; `resources` must be an array of strings when present.
fn first_resource<'a>(root: &Obj<'a>) -> Result<Option<&'a str>, EnvelopeError> {
    let items = match root.value("resources") {
        None => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(root.error(
                "resources",
                format!("must be an array, not {}", kind(other)),
            ));
        }
    };
    for (i, item) in items.iter().enumerate() {
        if !item.is_string() {
            return Err(root.error(
                &format!("resources[{i}]"),
                format!("must be a string, not {}", kind(item)),
            ));
        }
    }
    Ok(items.first().and_then(Value::as_str))
}

// ---------------------------------------------------------------------------------------------
// CodeCommit.

/// A "CodeCommit Repository State Change": a branch or tag created, moved or deleted.
fn reference_change(meta: Meta<'_>, d: &Obj<'_>) -> Result<Envelope, EnvelopeError> {
    let event = d.str("event")?;
    let (moved_from, moved_to) = match event {
        "referenceCreated" => (false, true),
        "referenceUpdated" => (true, true),
        "referenceDeleted" => (true, false),
        other => {
            let reason = format!(
                "CodeCommit repository event {} is no ref change",
                quote(other)
            );
            return Ok(meta.unknown(reason));
        }
    };
    let reference_type = d.str("referenceType")?;
    let prefix = match reference_type {
        "branch" => "refs/heads/",
        "tag" => "refs/tags/",
        other => {
            let reason = format!(
                "CodeCommit reference type {} is neither a branch nor a tag",
                quote(other)
            );
            return Ok(meta.unknown(reason));
        }
    };
    let git_ref = reference_name(d, prefix, reference_type)?;
    let repository = codecommit_repository(&meta, d, "repositoryName")?;
    // `commitId` first: it is the one a created or moved ref always names.
    let after = if moved_to {
        d.commit("commitId")?
    } else {
        ZERO_SHA.to_owned()
    };
    let before = if moved_from {
        d.commit("oldCommitId")?
    } else {
        ZERO_SHA.to_owned()
    };
    let change = ChangeEvent {
        schema: SCHEMA.to_owned(),
        id: String::new(),
        repository,
        kind: ChangeKind::Push,
        git_ref,
        created: !moved_from,
        deleted: !moved_to,
        before,
        after,
        commit_count: None,
        changed_paths: Vec::new(),
        changed_paths_complete: false,
        completion: None,
        pull_request: None,
        source: meta.source_as(CODECOMMIT_PROVIDER),
        occurred_at: meta.occurred_at,
        received_at: meta.received_at,
    };
    let change = seal(change)?;
    Ok(meta.changes(vec![change]))
}

/// The full ref name: `referenceFullName`, or `referenceName` under `prefix` when the full name
/// is absent. It must be of the kind `referenceType` says.
fn reference_name(
    d: &Obj<'_>,
    prefix: &str,
    reference_type: &str,
) -> Result<String, EnvelopeError> {
    let (field, full) = match d.opt_str("referenceFullName")? {
        Some(full) => ("referenceFullName", full.to_owned()),
        None => match d.opt_str("referenceName")? {
            Some(name) => ("referenceName", format!("{prefix}{name}")),
            None => return Err(d.error("referenceFullName", "is missing")),
        },
    };
    check_ref(d, field, &full)?;
    if !full.starts_with(prefix) {
        return Err(d.error_about(
            field,
            Topic::Ref,
            format!(
                "{} is not a {reference_type} ref, but detail.referenceType is {}",
                quote(&full),
                quote(reference_type)
            ),
        ));
    }
    Ok(full)
}

/// A "CodeCommit Pull Request State Change": opened, new commits, closed, merged, reopened, or
/// another activity (approvals, approval rules) passed through by name.
fn pull_request_change(meta: Meta<'_>, d: &Obj<'_>) -> Result<Envelope, EnvelopeError> {
    let event = d.non_empty_str("event")?;
    let merged = is_merged(d)?;
    let action = match event {
        "pullRequestCreated" => "opened".to_owned(),
        "pullRequestSourceBranchUpdated" => "updated".to_owned(),
        "pullRequestStatusChanged" => {
            let status = d.str("pullRequestStatus")?;
            if status.eq_ignore_ascii_case("closed") {
                "closed".to_owned()
            } else if status.eq_ignore_ascii_case("open") {
                "reopened".to_owned()
            } else {
                return Err(d.error(
                    "pullRequestStatus",
                    format!("is {}, expected \"Open\" or \"Closed\"", quote(status)),
                ));
            }
        }
        "pullRequestMergeStatusUpdated" if merged => "closed".to_owned(),
        other => other.to_ascii_lowercase(),
    };
    let number = pull_request_id(d)?;
    let repository = codecommit_repository(&meta, d, "repositoryNames")?;
    let head_ref = d.full_ref("sourceReference")?;
    let base_ref = d.full_ref("destinationReference")?;
    let head_sha = d.commit("sourceCommit")?;
    let base_sha = match d.opt_str("destinationCommit")? {
        Some(_) => Some(d.commit("destinationCommit")?),
        None => None,
    };
    let change = ChangeEvent {
        schema: SCHEMA.to_owned(),
        id: String::new(),
        repository,
        kind: ChangeKind::PullRequest,
        git_ref: head_ref,
        before: ZERO_SHA.to_owned(),
        after: head_sha.clone(),
        created: false,
        deleted: false,
        commit_count: None,
        changed_paths: Vec::new(),
        changed_paths_complete: false,
        completion: None,
        pull_request: Some(PullRequest {
            number,
            action,
            merged,
            base_ref,
            base_sha,
            head_sha,
        }),
        source: meta.source_as(CODECOMMIT_PROVIDER),
        occurred_at: meta.occurred_at,
        received_at: meta.received_at,
    };
    let change = seal(change)?;
    Ok(meta.changes(vec![change]))
}

/// `isMerged`: CodeCommit writes `"True"`/`"False"`; a JSON boolean is taken too; absent is
/// false.
fn is_merged(d: &Obj<'_>) -> Result<bool, EnvelopeError> {
    match d.value("isMerged") {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(d.error(
            "isMerged",
            format!("must be \"True\" or \"False\", not {}", describe(other)),
        )),
    }
}

/// `pullRequestId`: a decimal number in a string (or a JSON number).
fn pull_request_id(d: &Obj<'_>) -> Result<u64, EnvelopeError> {
    let bad = |what: String| {
        d.error(
            "pullRequestId",
            format!("must be a pull request number, not {what}"),
        )
    };
    match d.value("pullRequestId") {
        None => Err(d.error("pullRequestId", "is missing")),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| bad(n.to_string())),
        Some(Value::String(s)) => {
            let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            digits
                .then(|| s.parse().ok())
                .flatten()
                .ok_or_else(|| bad(quote(s)))
        }
        Some(other) => Err(bad(kind(other).to_owned())),
    }
}

/// The repository of a CodeCommit event: named in `detail` (`repositoryName`, or the first of
/// `repositoryNames` in pull-request events), in the region of the ARN in `resources[0]`, or the
/// event's `region` when there is no ARN.
fn codecommit_repository(
    meta: &Meta<'_>,
    d: &Obj<'_>,
    name_field: &str,
) -> Result<RepoId, EnvelopeError> {
    let (field, name) = repository_name(d, name_field)?;
    if let Err(why) = check_repository_name(name) {
        return Err(d.error_about(&field, Topic::Repository, why));
    }
    let root_error =
        |field: &str, message: String| EnvelopeError::new(field, Topic::Repository, message);
    let region = match meta.resource {
        Some(arn) => {
            let (region, arn_name) =
                parse_arn(arn).map_err(|why| root_error("resources[0]", why))?;
            if arn_name != name {
                return Err(root_error(
                    "resources[0]",
                    format!(
                        "names the repository {}, but {} is {}",
                        quote(arn_name),
                        d.field(&field),
                        quote(name)
                    ),
                ));
            }
            region
        }
        None => {
            let region = meta.region.ok_or_else(|| {
                root_error(
                    "region",
                    "is missing, and no repository ARN in resources names it".to_owned(),
                )
            })?;
            check_region(region).map_err(|why| root_error("region", why))?;
            region
        }
    };
    Ok(RepoId::codecommit(region, name))
}

/// The repository name in `detail` and the path it stands at. `repositoryNames` (a list, in
/// pull-request events) falls back to `repositoryName`.
fn repository_name<'a>(d: &Obj<'a>, field: &str) -> Result<(String, &'a str), EnvelopeError> {
    if field != "repositoryNames" {
        return Ok((field.to_owned(), d.str(field)?));
    }
    match d.value(field) {
        None => match d.opt_str("repositoryName")? {
            Some(name) => Ok(("repositoryName".to_owned(), name)),
            None => Err(d.error(field, "is missing")),
        },
        Some(Value::Array(items)) => match items.first() {
            Some(Value::String(name)) => Ok((format!("{field}[0]"), name)),
            Some(other) => Err(d.error(
                &format!("{field}[0]"),
                format!("must be a string, not {}", kind(other)),
            )),
            None => Err(d.error(field, "is empty")),
        },
        Some(other) => Err(d.error(field, format!("must be an array, not {}", kind(other)))),
    }
}

/// CodeCommit's rule for repository names: 1 to 100 letters, digits, `_`, `.` and `-`; `.` and
/// `..` are refused too, as they would name a directory.
fn check_repository_name(name: &str) -> Result<(), String> {
    let ok = (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not a CodeCommit repository name (1 to 100 letters, digits, `_`, `.`, `-`)",
            quote(name)
        ))
    }
}

/// An AWS region name: letters, digits and dashes (`us-east-1`).
fn check_region(region: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not an AWS region (like us-east-1)",
            quote(region)
        ))
    }
}

/// The region and repository name of a CodeCommit repository ARN,
/// `arn:PARTITION:codecommit:REGION:ACCOUNT:NAME`.
fn parse_arn(arn: &str) -> Result<(&str, &str), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "codecommit", region, _, name] => {
            check_region(region)?;
            check_repository_name(name)?;
            Ok((region, name))
        }
        _ => Err(format!(
            "{} is not a CodeCommit repository ARN (arn:aws:codecommit:REGION:ACCOUNT:NAME)",
            quote(arn)
        )),
    }
}

/// Seals an event this module built. Every field was checked on the way in, so a failure here
/// means the event contradicts itself; it is reported against the whole detail.
fn seal(change: ChangeEvent) -> Result<ChangeEvent, EnvelopeError> {
    change.seal().map_err(|EventError { field, message }| {
        EnvelopeError::new(
            "detail",
            Topic::CodeCommit,
            format!("makes an invalid change event: {field}: {message}"),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// GitHub (inbound-webhook quick start) and switchyard.change/v1.

/// A GitHub delivery re-published by the quick start: the same normalization as the GitHub
/// receiver, then this event as the source.
fn github(meta: Meta<'_>, detail: &Value) -> Result<Envelope, EnvelopeError> {
    let github_error =
        |field: &str, message: String| EnvelopeError::new(field, Topic::GitHub, message);
    let event_name = HeaderValue::from_str(meta.detail_type).map_err(|_| {
        github_error(
            "detail-type",
            format!("{} is not a GitHub event name", quote(meta.detail_type)),
        )
    })?;
    let mut headers = HeaderMap::new();
    headers.insert("x-github-event", event_name);
    let body = to_bytes(detail)?;
    match providers::normalize(Provider::GitHub, &headers, &body, meta.received_at) {
        Ok(Normalized::Changes(mut changes)) => {
            // The id depends on the change alone, so setting the source keeps it valid.
            for change in &mut changes {
                change.source = meta.source_as("github");
            }
            Ok(meta.changes(changes))
        }
        Ok(Normalized::Ping) => {
            Ok(meta.unknown("a GitHub ping: the hook works, nothing changed".to_owned()))
        }
        Ok(Normalized::Ignored(reason)) => Ok(meta.unknown(reason)),
        Err(NormalizeError { field, message }) => {
            let field = match field.as_str() {
                "body" => "detail".to_owned(),
                f if f.eq_ignore_ascii_case("x-github-event") => "detail-type".to_owned(),
                f => format!("detail.{f}"),
            };
            Err(github_error(&field, message))
        }
    }
}

/// A change event published by any producer as the detail of a `switchyard.change/v1` event.
fn change_event(meta: Meta<'_>, detail: &Value) -> Result<Envelope, EnvelopeError> {
    let body = to_bytes(detail)?;
    let source = meta.source_as(meta.source);
    let mut change = ChangeEvent::from_json(&body, source.clone()).map_err(
        |EventError { field, message }| {
            let field = if field == "event" {
                "detail".to_owned()
            } else {
                format!("detail.{field}")
            };
            EnvelopeError::new(field, Topic::Change, message)
        },
    )?;
    // This queue is the source of this notice, whatever the producer wrote (as for the standard
    // webhook receiver); neither field is part of the id.
    change.source = source;
    change.received_at = meta.received_at;
    Ok(meta.changes(vec![change]))
}

/// The detail as bytes again, for the parsers that take a body.
fn to_bytes(detail: &Value) -> Result<Vec<u8>, EnvelopeError> {
    serde_json::to_vec(detail)
        .map_err(|e| EnvelopeError::new("detail", Topic::Envelope, format!("cannot be read: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Reading JSON with paths.

/// An object of the event and the JSON path it stands at (`""` for the event itself).
#[derive(Clone, Copy, Debug)]
struct Obj<'a> {
    path: &'static str,
    map: &'a Map<String, Value>,
    /// What errors about its fields are about, unless a check says better.
    topic: Topic,
}

impl<'a> Obj<'a> {
    /// The JSON path of the member `key`.
    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn error(&self, key: &str, message: impl Into<String>) -> EnvelopeError {
        self.error_about(key, self.topic, message)
    }

    fn error_about(&self, key: &str, topic: Topic, message: impl Into<String>) -> EnvelopeError {
        EnvelopeError::new(self.field(key), topic, message)
    }

    /// The member `key`; `null` counts as absent.
    fn value(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn opt_str(&self, key: &str) -> Result<Option<&'a str>, EnvelopeError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.error(key, format!("must be a string, not {}", kind(other)))),
        }
    }

    fn str(&self, key: &str) -> Result<&'a str, EnvelopeError> {
        self.opt_str(key)?
            .ok_or_else(|| self.error(key, "is missing"))
    }

    fn non_empty_str(&self, key: &str) -> Result<&'a str, EnvelopeError> {
        let s = self.str(key)?;
        if s.is_empty() {
            return Err(self.error(key, "must not be empty"));
        }
        Ok(s)
    }

    /// A commit: a full object id, lowercased, not all zeros.
    fn commit(&self, key: &str) -> Result<String, EnvelopeError> {
        let s = self.str(key)?;
        let sha = event::normalize_sha(s).ok_or_else(|| {
            self.error_about(
                key,
                Topic::ObjectId,
                format!("{} is not a 40 or 64 character hex object id", quote(s)),
            )
        })?;
        if event::is_zero(&sha) {
            return Err(self.error_about(
                key,
                Topic::ObjectId,
                "is all zeros, which names no commit",
            ));
        }
        Ok(sha)
    }

    /// A full ref name git accepts.
    fn full_ref(&self, key: &str) -> Result<String, EnvelopeError> {
        let s = self.str(key)?;
        check_ref(self, key, s)?;
        Ok(s.to_owned())
    }
}

/// Checks a ref name against git's rules, naming `key` of `obj`.
fn check_ref(obj: &Obj<'_>, key: &str, name: &str) -> Result<(), EnvelopeError> {
    if name.len() > MAX_REF_LEN {
        return Err(obj.error_about(
            key,
            Topic::Ref,
            format!("is longer than {MAX_REF_LEN} bytes"),
        ));
    }
    event::check_ref(name).map_err(|why| obj.error_about(key, Topic::Ref, why))
}

/// How a JSON value is named in an error.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A scalar as it stands in the event (quoted, cut short), anything else by its kind.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => kind(other).to_owned(),
    }
}

/// A value from the event, quoted and cut to 64 characters so that no error or log line carries
/// a whole payload.
fn quote(s: &str) -> String {
    const MAX_CHARS: usize = 64;
    match s.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

#[cfg(test)]
mod tests {
    //! A snapshot of every fixture, each mapping and each error in a table (one line a case), the
    //! ids shared with the other sources, and properties: no input panics.

    use proptest::prelude::{Just, ProptestConfig, any, prop_assert_eq, prop_oneof, proptest};
    use proptest::strategy::Strategy as Gen;
    use serde_json::{Value, json};

    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/aws");

    const REF_CREATED: &str = "codecommit_referenceCreated.derived.json";
    const REF_UPDATED: &str = "codecommit_referenceUpdated.derived.json";
    const REF_DELETED: &str = "codecommit_referenceDeleted.derived.json";
    const PR_CREATED: &str = "codecommit_pullRequestCreated.derived.json";
    const PR_UPDATED: &str = "codecommit_pullRequestSourceBranchUpdated.derived.json";
    const PR_CLOSED: &str = "codecommit_pullRequestStatusChanged-closed.derived.json";
    const PR_MERGED: &str = "codecommit_pullRequestMergeStatusUpdated.derived.json";
    const MOTO: &str = "moto_sqs_body_from_eventbridge.derived.json";
    const GH_PUSH: &str = "github-quickstart_push.derived.json";
    const GH_PR: &str = "github-quickstart_pull_request.derived.json";
    const CHANGE: &str = "switchyard-change.derived.json";

    /// The repository of every CodeCommit fixture.
    const REPO: &str = "git-codecommit.us-east-2.amazonaws.com/v1/repos/MyDemoRepo";
    // The (made-up) commits of the fixtures.
    const OLD: &str = "3e5983d1c0a1b2c3d4e5f60718293a4b5c6d7e8f";
    const MERGE: &str = "7f0103f2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e3";
    const SRC: &str = "26a8f2e4d6c8b0a2f4e6d8c0b2a4f6e8d0c2b4a6";
    const TAG: &str = "9c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d";
    const TAG2: &str = "b4e1c7a9d3f5e2b8c6a0d4f7e1b3c5a9d2f6e8b0";
    const PR_SRC1: &str = "2774290a5c3e1f7b9d0e2c4a6f8b1d3e5c7a9f0b";
    const PR_SRC2: &str = "64875001b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3";
    const PR_DST: &str = "12241970c2e4a6b8d0f2c4e6a8b0d2f4c6e8a0b2";
    const ZERO_JSON: &str = "\"0000000000000000000000000000000000000000\"";

    /// What a fixture gives.
    #[derive(Clone, Copy, Debug)]
    enum Outcome {
        Changes(usize),
        Unknown,
        Fails(&'static str),
    }
    use Outcome::{Changes, Fails};

    /// Every fixture and what it gives. The docs' samples and the moto capture carry
    /// placeholder ids, refused naming the field.
    #[rustfmt::skip]
    const CASES: &[(&str, Outcome)] = &[
        ("codecommit_referenceCreated.json", Fails("detail.commitId")),
        ("codecommit_referenceUpdated.json", Fails("detail.commitId")),
        ("moto_sqs_body_from_eventbridge.json", Fails("detail.commitId")),
        (REF_CREATED, Changes(1)),
        (REF_UPDATED, Changes(1)),
        (REF_DELETED, Changes(1)),
        ("codecommit_referenceCreated-tag.derived.json", Changes(1)),
        ("codecommit_referenceUpdated-tag.derived.json", Changes(1)),
        ("codecommit_referenceDeleted-tag.derived.json", Changes(1)),
        (MOTO, Changes(1)),
        (PR_CREATED, Changes(1)),
        (PR_UPDATED, Changes(1)),
        (PR_CLOSED, Changes(1)),
        (PR_MERGED, Changes(1)),
        (GH_PUSH, Changes(1)),
        (GH_PR, Changes(1)),
        ("github-quickstart_ping.derived.json", Outcome::Unknown),
        (CHANGE, Changes(1)),
    ];

    fn received() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ts(text: &str) -> Option<Timestamp> {
        Some(text.parse().unwrap_or_else(|e| panic!("{text}: {e}")))
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn fixture_json(name: &str) -> Value {
        serde_json::from_slice(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// An edit of a fixture: the JSON pointer of a member or element, and its new value as JSON
    /// (`None` removes it).
    type Edit<'a> = (&'a str, Option<&'a str>);

    /// A fixture with edits applied.
    fn edited(name: &str, edits: &[Edit<'_>]) -> Vec<u8> {
        let mut value = fixture_json(name);
        for &(pointer, new) in edits {
            let (parent, key) = pointer
                .rsplit_once('/')
                .unwrap_or_else(|| panic!("{pointer}"));
            let new: Option<Value> =
                new.map(|n| serde_json::from_str(n).unwrap_or_else(|e| panic!("{n}: {e}")));
            match value.pointer_mut(parent) {
                Some(Value::Object(map)) => match new {
                    Some(v) => {
                        map.insert(key.to_owned(), v);
                    }
                    None => {
                        map.remove(key);
                    }
                },
                Some(Value::Array(items)) => {
                    let i: usize = key.parse().unwrap_or_else(|e| panic!("{pointer}: {e}"));
                    match new {
                        Some(v) => items[i] = v,
                        None => {
                            items.remove(i);
                        }
                    }
                }
                _ => panic!("no {parent}"),
            }
        }
        serde_json::to_vec(&value).unwrap_or_else(|e| panic!("{e}"))
    }

    fn run(body: &[u8]) -> Result<Envelope, EnvelopeError> {
        parse(body, received())
    }

    /// The one change event of a body that must have one.
    fn one(body: &[u8]) -> ChangeEvent {
        match run(body) {
            Ok(Envelope::Changes { mut changes, .. }) if changes.len() == 1 => changes.remove(0),
            other => panic!("expected one change, got {other:?}"),
        }
    }

    fn snapshot_text(result: &Result<Envelope, EnvelopeError>) -> String {
        match result {
            Ok(Envelope::Changes { event_id, changes }) => format!(
                "changes of event {event_id}:\n{}",
                serde_json::to_string_pretty(changes).unwrap_or_else(|e| panic!("{e}"))
            ),
            Ok(Envelope::Unknown { event_id, reason }) => {
                format!("unknown (event {event_id:?}): {reason}")
            }
            Err(e) => format!("error: {e}\nhint: {}", e.hint()),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Fixtures.

    #[test]
    fn every_fixture_snapshot() {
        for &(name, outcome) in CASES {
            let result = run(&fixture(name));
            match (&result, outcome) {
                (Ok(Envelope::Changes { changes, .. }), Changes(n)) => {
                    assert_eq!(changes.len(), n, "{name}")
                }
                (Ok(Envelope::Unknown { .. }), Outcome::Unknown) => {}
                (Err(e), Fails(field)) => assert_eq!(e.field, field, "{name}"),
                _ => panic!("{name}: expected {outcome:?}, got {result:?}"),
            }
            let snapshot = name.trim_end_matches(".json").replace('.', "__");
            insta::assert_snapshot!(snapshot, snapshot_text(&result));
        }
    }

    #[test]
    fn every_fixture_is_a_case() {
        let dir = std::fs::read_dir(FIXTURES).unwrap_or_else(|e| panic!("{FIXTURES}: {e}"));
        for entry in dir {
            let name = entry.unwrap_or_else(|e| panic!("{e}")).file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".json") {
                assert!(
                    CASES.iter().any(|c| c.0 == name),
                    "{name} has no case in CASES"
                );
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // CodeCommit.

    #[test]
    fn codecommit_reference_changes_are_pushes_without_paths() {
        // (fixture, ref, before, after, created, deleted, the event's time)
        #[rustfmt::skip]
        let cases: &[(&str, &str, &str, &str, bool, bool, &str)] = &[
            (REF_CREATED, "refs/heads/myBranch", ZERO_SHA, OLD, true, false, "2019-06-12T10:23:43Z"),
            (REF_UPDATED, "refs/heads/myBranch", OLD, MERGE, false, false, "2019-06-12T10:23:43Z"),
            (REF_DELETED, "refs/heads/myBranch", SRC, ZERO_SHA, false, true, "2019-06-12T10:23:43Z"),
            ("codecommit_referenceCreated-tag.derived.json", "refs/tags/v1.0.0", ZERO_SHA, TAG, true, false, "2019-06-12T10:25:10Z"),
            ("codecommit_referenceUpdated-tag.derived.json", "refs/tags/v1.0.0", TAG, TAG2, false, false, "2019-06-12T10:26:02Z"),
            ("codecommit_referenceDeleted-tag.derived.json", "refs/tags/v1.0.0", TAG2, ZERO_SHA, false, true, "2019-06-12T10:27:31Z"),
            // No `account`; `referenceName` says "main" but the full name wins.
            (MOTO, "refs/heads/myBranch", OLD, MERGE, false, false, "2026-11-26T10:31:25Z"),
        ];
        for &(name, git_ref, before, after, created, deleted, time) in cases {
            let body = fixture(name);
            let e = one(&body);
            let got = (
                e.git_ref.as_str(),
                e.before.as_str(),
                e.after.as_str(),
                e.created,
                e.deleted,
            );
            assert_eq!(got, (git_ref, before, after, created, deleted), "{name}");
            assert_eq!(e.kind, ChangeKind::Push, "{name}");
            assert_eq!(e.repository.as_str(), REPO, "{name}");
            assert!(
                e.changed_paths.is_empty() && !e.changed_paths_complete,
                "{name}"
            );
            assert_eq!((e.commit_count, &e.pull_request), (None, &None), "{name}");
            assert_eq!(
                (e.occurred_at, e.received_at),
                (ts(time), received()),
                "{name}"
            );
            let id = fixture_json(name)["id"].as_str().map(str::to_owned);
            let want = Source {
                kind: SourceKind::Eventbridge,
                provider: Some("codecommit".to_owned()),
                delivery_id: id,
            };
            assert_eq!(e.source, want, "{name}");
            assert_eq!(e.id, e.derive_id(), "{name}");
        }
    }

    #[test]
    fn the_repository_region_is_the_arns_else_the_events() {
        // (fixture, edits, the repository id)
        #[rustfmt::skip]
        let cases: &[(&str, &[Edit<'_>], &str)] = &[
            // moto stamps its own region (us-east-1); the ARN names us-east-2.
            (MOTO, &[], REPO),
            (REF_CREATED, &[("/region", Some(r#""eu-west-1""#))], REPO),
            (REF_CREATED, &[("/resources", Some("[]")), ("/region", Some(r#""eu-west-1""#))], "git-codecommit.eu-west-1.amazonaws.com/v1/repos/MyDemoRepo"),
            (REF_CREATED, &[("/resources", None), ("/region", Some(r#""EU-West-1""#))], "git-codecommit.eu-west-1.amazonaws.com/v1/repos/MyDemoRepo"),
            (REF_CREATED, &[("/resources", Some(r#"["arn:aws-cn:codecommit:cn-north-1:123456789012:MyDemoRepo"]"#))], "git-codecommit.cn-north-1.amazonaws.com/v1/repos/MyDemoRepo"),
            (PR_CREATED, &[("/resources", None), ("/region", Some(r#""ap-south-1""#))], "git-codecommit.ap-south-1.amazonaws.com/v1/repos/MyDemoRepo"),
            (PR_CREATED, &[("/detail/repositoryNames", None), ("/detail/repositoryName", Some(r#""MyDemoRepo""#))], REPO),
        ];
        for (i, &(name, edits, repository)) in cases.iter().enumerate() {
            let e = one(&edited(name, edits));
            assert_eq!(e.repository.as_str(), repository, "case {i}: {name}");
        }
    }

    /// A pull-request case: fixture, edits, number, action, merged, head sha, base sha.
    type PullCase<'a> = (
        &'a str,
        &'a [Edit<'a>],
        u64,
        &'a str,
        bool,
        &'a str,
        Option<&'a str>,
    );

    #[test]
    fn codecommit_pull_requests() {
        #[rustfmt::skip]
        let cases: &[PullCase<'_>] = &[
            (PR_CREATED, &[], 1, "opened", false, PR_SRC1, Some(PR_DST)),
            (PR_UPDATED, &[], 1, "updated", false, PR_SRC2, Some(PR_DST)),
            (PR_CLOSED, &[], 1, "closed", false, PR_SRC2, Some(PR_DST)),
            (PR_MERGED, &[], 1, "closed", true, PR_SRC2, Some(PR_DST)),
            (PR_CLOSED, &[("/detail/pullRequestStatus", Some(r#""Open""#))], 1, "reopened", false, PR_SRC2, Some(PR_DST)),
            (PR_CLOSED, &[("/detail/pullRequestStatus", Some(r#""OPEN""#))], 1, "reopened", false, PR_SRC2, Some(PR_DST)),
            (PR_CLOSED, &[("/detail/pullRequestStatus", Some(r#""CLOSED""#))], 1, "closed", false, PR_SRC2, Some(PR_DST)),
            // The status change that comes with a merge.
            (PR_CLOSED, &[("/detail/isMerged", Some(r#""True""#))], 1, "closed", true, PR_SRC2, Some(PR_DST)),
            (PR_MERGED, &[("/detail/isMerged", Some(r#""False""#))], 1, "pullrequestmergestatusupdated", false, PR_SRC2, Some(PR_DST)),
            (PR_CREATED, &[("/detail/event", Some(r#""pullRequestApprovalStateChanged""#))], 1, "pullrequestapprovalstatechanged", false, PR_SRC1, Some(PR_DST)),
            (PR_CREATED, &[("/detail/event", Some(r#""pullRequestApprovalRuleCreated""#))], 1, "pullrequestapprovalrulecreated", false, PR_SRC1, Some(PR_DST)),
            (PR_MERGED, &[("/detail/isMerged", Some("true"))], 1, "closed", true, PR_SRC2, Some(PR_DST)),
            (PR_CREATED, &[("/detail/isMerged", None)], 1, "opened", false, PR_SRC1, Some(PR_DST)),
            (PR_CREATED, &[("/detail/pullRequestId", Some(r#""227""#))], 227, "opened", false, PR_SRC1, Some(PR_DST)),
            (PR_CREATED, &[("/detail/pullRequestId", Some("227"))], 227, "opened", false, PR_SRC1, Some(PR_DST)),
            (PR_CREATED, &[("/detail/destinationCommit", None)], 1, "opened", false, PR_SRC1, None),
            (PR_CREATED, &[("/detail/sourceCommit", Some(r#""2774290A5C3E1F7B9D0E2C4A6F8B1D3E5C7A9F0B""#))], 1, "opened", false, PR_SRC1, Some(PR_DST)),
        ];
        for (i, &(name, edits, number, action, merged, head, base)) in cases.iter().enumerate() {
            let e = one(&edited(name, edits));
            let pr = e
                .pull_request
                .as_ref()
                .unwrap_or_else(|| panic!("case {i}: no pull_request"));
            let got = (
                pr.number,
                pr.action.as_str(),
                pr.merged,
                pr.head_sha.as_str(),
                pr.base_sha.as_deref(),
            );
            assert_eq!(
                got,
                (number, action, merged, head, base),
                "case {i}: {name}"
            );
            assert_eq!(e.kind, ChangeKind::PullRequest, "case {i}");
            assert_eq!(
                (e.git_ref.as_str(), pr.base_ref.as_str()),
                ("refs/heads/test-branch", "refs/heads/master"),
                "case {i}"
            );
            assert_eq!(
                (e.before.as_str(), e.after.as_str()),
                (ZERO_SHA, head),
                "case {i}"
            );
            assert!(!e.created && !e.deleted, "case {i}");
            assert!(
                e.changed_paths.is_empty() && !e.changed_paths_complete,
                "case {i}"
            );
            assert_eq!(e.repository.as_str(), REPO, "case {i}");
            assert_eq!(e.source.provider.as_deref(), Some("codecommit"), "case {i}");
        }
    }

    #[test]
    fn a_merge_reported_twice_is_one_change() {
        let merge_status = one(&fixture(PR_MERGED));
        let status = one(&edited(
            PR_CLOSED,
            &[("/detail/isMerged", Some(r#""True""#))],
        ));
        assert_eq!(merge_status.id, status.id);
        let closed = one(&fixture(PR_CLOSED));
        let opened = one(&fixture(PR_CREATED));
        assert_eq!(closed.id, status.id, "closing is one change, merged or not");
        assert_ne!(opened.id, closed.id);
    }

    #[test]
    fn a_codecommit_push_and_the_same_push_polled_have_one_id() {
        let from_event = one(&fixture(REF_UPDATED));
        let polled = format!(
            r#"{{"schema":"switchyard.change/v1",
            "repository":"https://git-codecommit.us-east-2.amazonaws.com/v1/repos/MyDemoRepo",
            "kind":"push","ref":"refs/heads/myBranch","before":"{OLD}","after":"{MERGE}",
            "changed_paths":["a.txt"],"source":{{"kind":"poll"}}}}"#
        );
        let manual = Source {
            kind: SourceKind::Manual,
            provider: None,
            delivery_id: None,
        };
        let polled = ChangeEvent::from_json(polled.as_bytes(), manual);
        assert_eq!(polled.map(|e| e.id), Ok(from_event.id));
    }

    // -----------------------------------------------------------------------------------------
    // GitHub and switchyard.change/v1.

    #[test]
    fn github_quickstart_events_are_normalized_as_the_receiver_does() {
        // (envelope fixture, the GitHub payload it wraps, the event name)
        let cases = [
            (GH_PUSH, "push_payload.json", "push"),
            (GH_PR, "pull_request_opened.payload.json", "pull_request"),
        ];
        for (name, payload, event) in cases {
            let path = format!("{FIXTURES}/../github/{payload}");
            let payload = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let mut headers = HeaderMap::new();
            headers.insert("x-github-event", HeaderValue::from_static(event));
            let webhook = providers::normalize(Provider::GitHub, &headers, &payload, received());
            let Ok(Normalized::Changes(webhook)) = webhook else {
                panic!("{name}: {webhook:?}");
            };
            let Ok(Envelope::Changes { event_id, changes }) = run(&fixture(name)) else {
                panic!("{name}: no changes");
            };
            assert_eq!(changes.len(), webhook.len(), "{name}");
            for (mut ours, theirs) in changes.into_iter().zip(webhook) {
                let want = Source {
                    kind: SourceKind::Eventbridge,
                    provider: Some("github".to_owned()),
                    delivery_id: Some(event_id.clone()),
                };
                assert_eq!(ours.source, want, "{name}");
                assert_eq!(ours.id, ours.derive_id(), "{name}");
                ours.source = theirs.source.clone();
                assert_eq!(ours, theirs, "{name}: the same event as the webhook's");
            }
        }
    }

    #[test]
    fn switchyard_change_events_take_this_queue_as_their_source() {
        let body = edited(
            CHANGE,
            &[(
                "/detail/source",
                Some(r#"{"kind":"webhook","provider":"github","delivery_id":"x"}"#),
            )],
        );
        let e = one(&body);
        let want = Source {
            kind: SourceKind::Eventbridge,
            provider: Some("com.example.git-mirror".to_owned()),
            delivery_id: Some("6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b".to_owned()),
        };
        assert_eq!(e.source, want);
        assert_eq!(e.received_at, received());
        assert_eq!(e.occurred_at, ts("2026-11-26T10:00:00Z"));
        assert_eq!(e.repository.as_str(), "git.example.com/acme/api");
        assert_eq!((e.before.as_str(), e.after.as_str()), (OLD, MERGE));
        assert_eq!(e.changed_paths, ["src/lib.rs", "README.md"]);
        // A producer may give the id, if it is the derived one.
        let with_id = edited(CHANGE, &[("/detail/id", Some(&format!("{:?}", e.id)))]);
        assert_eq!(one(&with_id).id, e.id);
        // Any producer: the source does not matter.
        let other = edited(CHANGE, &[("/source", Some(r#""aws.codecommit""#))]);
        assert_eq!(one(&other).id, e.id);
    }

    // -----------------------------------------------------------------------------------------
    // Unknown events and errors.

    #[test]
    fn well_formed_events_that_are_no_change_are_unknown() {
        // (fixture, edits, words the reason has)
        #[rustfmt::skip]
        let cases: &[(&str, &[Edit<'_>], &str)] = &[
            (REF_CREATED, &[("/detail/event", Some(r#""unreferencedMergeCommitCreated""#))], "\"unreferencedMergeCommitCreated\" is no ref change"),
            (REF_CREATED, &[("/detail-type", Some(r#""CodeCommit Comment on Commit""#)), ("/detail/event", Some(r#""commentOnCommitCreated""#))], "\"CodeCommit Comment on Commit\" are not changes"),
            (REF_CREATED, &[("/detail-type", Some(r#""CodeCommit Approval Rule Template Change""#))], "are not changes switchyard knows"),
            (REF_CREATED, &[("/detail/referenceType", Some(r#""commit""#))], "\"commit\" is neither a branch nor a tag"),
            // The AWS docs' sample of pullRequestMergeStatusUpdated misspells the detail-type.
            (PR_MERGED, &[("/detail-type", Some(r#""CodeCommit PullRequest State Change""#))], "are not changes switchyard knows"),
            (REF_CREATED, &[("/source", Some(r#""aws.ec2""#))], "\"aws.ec2\" events"),
            (GH_PUSH, &[("/detail-type", Some(r#""star""#))], "github event \"star\" is not a change"),
            (GH_PUSH, &[("/detail-type", Some(r#""ping""#))], "GitHub ping"),
            (GH_PUSH, &[("/detail-type", Some(r#""create""#))], "duplicate the push"),
            (CHANGE, &[("/detail-type", Some(r#""switchyard.change/v2""#))], "\"switchyard.change/v2\" are not changes"),
            // Unknown events need no more than the envelope: no placeholder id is read.
            (REF_CREATED, &[("/detail/event", Some(r#""commentOnCommitCreated""#)), ("/detail/commitId", Some(r#""3e5983DESTINATION""#))], "is no ref change"),
        ];
        for (i, &(name, edits, words)) in cases.iter().enumerate() {
            let id = fixture_json(name)["id"].as_str().map(str::to_owned);
            match run(&edited(name, edits)) {
                Ok(Envelope::Unknown { event_id, reason }) => {
                    assert!(reason.contains(words), "case {i}: {reason:?}");
                    assert_eq!(event_id, id, "case {i}");
                }
                other => panic!("case {i}: {name}: expected unknown, got {other:?}"),
            }
        }
    }

    #[test]
    fn bad_fields_are_errors_naming_the_json_path() {
        // (fixture, edits, the field the error names)
        #[rustfmt::skip]
        let cases: &[(&str, &[Edit<'_>], &str)] = &[
            (REF_CREATED, &[("/detail/commitId", Some(r#""3e5983DESTINATION""#))], "detail.commitId"),
            (REF_CREATED, &[("/detail/commitId", Some(r#""3e5983d""#))], "detail.commitId"),
            (REF_CREATED, &[("/detail/commitId", None)], "detail.commitId"),
            (REF_CREATED, &[("/detail/commitId", Some(ZERO_JSON))], "detail.commitId"),
            (REF_CREATED, &[("/detail/commitId", Some("7"))], "detail.commitId"),
            (REF_UPDATED, &[("/detail/oldCommitId", Some(r#""3e5983DESTINATION""#))], "detail.oldCommitId"),
            (REF_UPDATED, &[("/detail/oldCommitId", Some(ZERO_JSON))], "detail.oldCommitId"),
            (REF_DELETED, &[("/detail/oldCommitId", None)], "detail.oldCommitId"),
            (REF_CREATED, &[("/detail/referenceFullName", Some(r#""refs/heads/a..b""#))], "detail.referenceFullName"),
            (REF_CREATED, &[("/detail/referenceFullName", Some(r#""refs/heads/$(touch pwned)""#))], "detail.referenceFullName"),
            (REF_CREATED, &[("/detail/referenceFullName", Some(r#""myBranch""#))], "detail.referenceFullName"),
            (REF_CREATED, &[("/detail/referenceFullName", Some(r#""refs/tags/v1""#))], "detail.referenceFullName"),
            (REF_CREATED, &[("/detail/referenceFullName", Some("[]"))], "detail.referenceFullName"),
            (REF_CREATED, &[("/detail/referenceFullName", None), ("/detail/referenceName", Some(r#""a~b""#))], "detail.referenceName"),
            (REF_CREATED, &[("/detail/referenceFullName", None), ("/detail/referenceName", None)], "detail.referenceFullName"),
            (REF_CREATED, &[("/detail/referenceType", None)], "detail.referenceType"),
            (REF_CREATED, &[("/detail/event", Some("1"))], "detail.event"),
            (REF_CREATED, &[("/detail/event", None)], "detail.event"),
            (REF_CREATED, &[("/detail/repositoryName", Some(r#""../etc""#))], "detail.repositoryName"),
            (REF_CREATED, &[("/detail/repositoryName", Some(r#""..""#))], "detail.repositoryName"),
            (REF_CREATED, &[("/detail/repositoryName", None)], "detail.repositoryName"),
            (REF_CREATED, &[("/detail/repositoryName", Some(r#""OtherRepo""#))], "resources[0]"),
            (REF_CREATED, &[("/resources/0", Some(r#""arn:aws:s3:::bucket""#))], "resources[0]"),
            (REF_CREATED, &[("/resources/0", Some(r#""arn:aws:codecommit:us east:1:MyDemoRepo""#))], "resources[0]"),
            (REF_CREATED, &[("/resources/0", Some("3"))], "resources[0]"),
            (REF_CREATED, &[("/resources", Some("{}"))], "resources"),
            (REF_CREATED, &[("/resources", Some("[]")), ("/region", None)], "region"),
            (REF_CREATED, &[("/resources", Some("[]")), ("/region", Some(r#""us east 1""#))], "region"),
            (REF_CREATED, &[("/region", Some("1"))], "region"),
            (REF_CREATED, &[("/time", Some("false"))], "time"),
            (REF_CREATED, &[("/account", Some("123456789012"))], "account"),
            (REF_CREATED, &[("/version", Some("0"))], "version"),
            (REF_CREATED, &[("/id", None)], "id"),
            (REF_CREATED, &[("/id", Some(r#""""#))], "id"),
            (REF_CREATED, &[("/id", Some(r#""a b""#))], "id"),
            (REF_CREATED, &[("/id", Some(r#""a\nb""#))], "id"),
            (REF_CREATED, &[("/id", Some("42"))], "id"),
            (REF_CREATED, &[("/detail-type", None)], "detail-type"),
            (REF_CREATED, &[("/detail-type", Some(r#""""#))], "detail-type"),
            (REF_CREATED, &[("/source", None)], "source"),
            (REF_CREATED, &[("/detail", None)], "detail"),
            (REF_CREATED, &[("/detail", Some(r#""{}""#))], "detail"),
            (PR_CREATED, &[("/detail/pullRequestId", Some(r#""1a""#))], "detail.pullRequestId"),
            (PR_CREATED, &[("/detail/pullRequestId", Some(r#""+1""#))], "detail.pullRequestId"),
            (PR_CREATED, &[("/detail/pullRequestId", Some(r#""""#))], "detail.pullRequestId"),
            (PR_CREATED, &[("/detail/pullRequestId", Some(r#""99999999999999999999""#))], "detail.pullRequestId"),
            (PR_CREATED, &[("/detail/pullRequestId", Some("-1"))], "detail.pullRequestId"),
            (PR_CREATED, &[("/detail/pullRequestId", Some("1.5"))], "detail.pullRequestId"),
            (PR_CREATED, &[("/detail/pullRequestId", None)], "detail.pullRequestId"),
            (PR_CREATED, &[("/detail/sourceCommit", Some(r#""2774290EXAMPLE""#))], "detail.sourceCommit"),
            (PR_CREATED, &[("/detail/sourceCommit", None)], "detail.sourceCommit"),
            (PR_CREATED, &[("/detail/destinationCommit", Some(r#""12241970EXAMPLE""#))], "detail.destinationCommit"),
            (PR_CREATED, &[("/detail/sourceReference", Some(r#""test-branch""#))], "detail.sourceReference"),
            (PR_CREATED, &[("/detail/destinationReference", None)], "detail.destinationReference"),
            (PR_CREATED, &[("/detail/isMerged", Some(r#""maybe""#))], "detail.isMerged"),
            (PR_CREATED, &[("/detail/isMerged", Some("1"))], "detail.isMerged"),
            (PR_CREATED, &[("/detail/event", Some(r#""""#))], "detail.event"),
            (PR_CLOSED, &[("/detail/pullRequestStatus", Some(r#""Merged""#))], "detail.pullRequestStatus"),
            (PR_CLOSED, &[("/detail/pullRequestStatus", None)], "detail.pullRequestStatus"),
            (PR_CREATED, &[("/detail/repositoryNames", Some("[]"))], "detail.repositoryNames"),
            (PR_CREATED, &[("/detail/repositoryNames", Some("[1]"))], "detail.repositoryNames[0]"),
            (PR_CREATED, &[("/detail/repositoryNames", Some(r#""MyDemoRepo""#))], "detail.repositoryNames"),
            (PR_CREATED, &[("/detail/repositoryNames", None)], "detail.repositoryNames"),
            (PR_CREATED, &[("/detail/repositoryNames", Some(r#"["Other"]"#))], "resources[0]"),
            (GH_PUSH, &[("/detail/ref", Some(r#""main""#))], "detail.ref"),
            (GH_PUSH, &[("/detail/repository/clone_url", Some(r#""/etc""#))], "detail.repository.clone_url"),
            (GH_PUSH, &[("/detail-type", Some(r#""push\n""#))], "detail-type"),
            (GH_PR, &[("/detail/pull_request/head/sha", Some("null"))], "detail.pull_request.head.sha"),
            (CHANGE, &[("/detail/schema", Some(r#""switchyard.change/v2""#))], "detail.schema"),
            (CHANGE, &[("/detail/ref", Some(r#""main""#))], "detail.ref"),
            (CHANGE, &[("/detail/before", Some(r#""3e5983DESTINATION""#))], "detail.before"),
            (CHANGE, &[("/detail/id", Some(r#""abc""#))], "detail.id"),
            (CHANGE, &[("/detail/extra", Some("1"))], "detail"),
            (CHANGE, &[("/detail/kind", None)], "detail"),
            (CHANGE, &[("/detail/changed_paths/0", Some(r#""../etc/passwd""#))], "detail.changed_paths[0]"),
        ];
        for (i, &(name, edits, field)) in cases.iter().enumerate() {
            match run(&edited(name, edits)) {
                Err(e) => {
                    assert_eq!(e.field, field, "case {i}: {name}: {e}");
                    assert!(!e.message.is_empty() && !e.hint().is_empty(), "case {i}");
                }
                Ok(other) => panic!("case {i}: {name}: expected an error, got {other:?}"),
            }
        }
    }

    #[test]
    fn placeholder_ids_of_the_aws_docs_are_refused_with_a_hint() {
        let Err(e) = run(&fixture("codecommit_referenceCreated.json")) else {
            panic!("the docs' sample was accepted");
        };
        assert_eq!(e.field, "detail.commitId");
        assert!(e.message.contains("\"3e5983DESTINATION\""), "{e}");
        assert!(e.hint().contains("placeholders"), "{}", e.hint());
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let whole = fixture(REF_CREATED);
        #[rustfmt::skip]
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "body"),
            (b"not json".to_vec(), "body"),
            (whole[..whole.len() / 2].to_vec(), "body"),
            (b"[1, 2]".to_vec(), "body"),
            (b"\"an event\"".to_vec(), "body"),
            (b"null".to_vec(), "body"),
            (b"\xff\xfe{}".to_vec(), "body"),
            ("[".repeat(10_000).into_bytes(), "body"),
            ("{\"a\":".repeat(10_000).into_bytes(), "body"),
            (b"{}".to_vec(), "id"),
        ];
        for (i, (body, field)) in cases.iter().enumerate() {
            let got = run(body).map_err(|e| e.field);
            assert_eq!(got, Err(field.to_string()), "case {i}");
        }
    }

    #[test]
    fn long_values_are_cut_short_in_errors() {
        let long = format!("\"{}\"", "x".repeat(10_000));
        let body = edited(REF_CREATED, &[("/detail/commitId", Some(&long))]);
        let Err(e) = run(&body) else {
            panic!("accepted");
        };
        assert!(e.message.len() < 200, "{}", e.message.len());
    }

    // -----------------------------------------------------------------------------------------
    // Properties: no input panics.

    /// The keys the parser reads, so that random JSON reaches its deeper paths.
    #[rustfmt::skip]
    const KEYS: &[&str] = &[
        "version", "id", "detail-type", "source", "account", "time", "region", "resources",
        "detail", "event", "repositoryName", "repositoryNames", "referenceType", "referenceName",
        "referenceFullName", "commitId", "oldCommitId", "pullRequestId", "pullRequestStatus",
        "isMerged", "sourceReference", "destinationReference", "sourceCommit",
        "destinationCommit", "schema", "repository", "kind", "ref", "before", "after",
    ];

    fn scalar() -> impl Gen<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            proptest::sample::select(vec![
                CODECOMMIT_SOURCE,
                REPOSITORY_STATE_CHANGE,
                PULL_REQUEST_STATE_CHANGE,
                GITHUB_SOURCE,
                SCHEMA,
                "push",
                "pull_request",
                "ping",
                "referenceCreated",
                "referenceUpdated",
                "referenceDeleted",
                "pullRequestCreated",
                "pullRequestStatusChanged",
                "pullRequestMergeStatusUpdated",
                "branch",
                "tag",
                "True",
                "False",
                "Open",
                "Closed",
                "1",
                "MyDemoRepo",
                "us-east-2",
                "arn:aws:codecommit:us-east-2:123456789012:MyDemoRepo",
                "refs/heads/main",
                OLD,
                MERGE,
                ZERO_SHA,
                "3e5983DESTINATION",
                "2019-06-12T10:23:43Z",
            ])
            .prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ]
    }

    fn json_value() -> impl Gen<Value = Value> {
        scalar().prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..10).prop_map(
                    |pairs| {
                        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                    }
                ),
            ]
        })
    }

    /// Replaces the node that `path` picks out (each step an index into an object's members or
    /// an array's elements, modulo their count) by `new`.
    fn replace_at(value: &mut Value, path: &[usize], new: Value) {
        let next = match (path.split_first(), &mut *value) {
            (Some((i, _)), Value::Object(map)) if !map.is_empty() => {
                let n = map.len();
                map.values_mut().nth(i % n)
            }
            (Some((i, _)), Value::Array(items)) if !items.is_empty() => {
                let n = items.len();
                items.get_mut(i % n)
            }
            (_, slot) => {
                *slot = new;
                return;
            }
        };
        if let Some(child) = next {
            replace_at(child, &path[1..], new);
        }
    }

    /// Whatever comes out as a change is a valid, sealed event with this queue as its source.
    fn check(
        result: Result<Envelope, EnvelopeError>,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        if let Ok(Envelope::Changes { event_id, changes }) = result {
            for e in changes {
                prop_assert_eq!(e.validate(), Ok(()));
                prop_assert_eq!(&e.id, &e.derive_id());
                prop_assert_eq!(e.source.kind, SourceKind::Eventbridge);
                prop_assert_eq!(e.source.delivery_id.as_deref(), Some(event_id.as_str()));
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = run(&body);
        }

        #[test]
        fn arbitrary_json_never_panics(value in json_value()) {
            let body = serde_json::to_vec(&value).unwrap_or_default();
            check(run(&body))?;
        }

        #[test]
        fn envelopes_with_arbitrary_details_never_panic(
            source in proptest::sample::select(vec![CODECOMMIT_SOURCE, GITHUB_SOURCE, "x"]),
            detail_type in proptest::sample::select(vec![
                REPOSITORY_STATE_CHANGE, PULL_REQUEST_STATE_CHANGE, SCHEMA, "push",
                "pull_request", "ping",
            ]),
            region in proptest::option::of(scalar()),
            resources in proptest::option::of(json_value()),
            detail in json_value(),
        ) {
            let mut event = json!({"id": "e-1", "source": source, "detail-type": detail_type, "detail": detail});
            if let Some(region) = region {
                event["region"] = region;
            }
            if let Some(resources) = resources {
                event["resources"] = resources;
            }
            let body = serde_json::to_vec(&event).unwrap_or_default();
            check(run(&body))?;
        }

        #[test]
        fn fixtures_with_a_replaced_node_never_panic(
            case in proptest::sample::select(CASES),
            path in proptest::collection::vec(any::<usize>(), 0..6),
            new in json_value(),
        ) {
            let mut value = fixture_json(case.0);
            replace_at(&mut value, &path, new);
            let body = serde_json::to_vec(&value).unwrap_or_default();
            check(run(&body))?;
        }
    }
}
