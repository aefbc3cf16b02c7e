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

use http::HeaderMap;
use http::header::HeaderValue;
use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::config::Provider;
use crate::diag::Hint;
use crate::event::{
    self, ChangeEvent, ChangeKind, EventError, PullRequest, SCHEMA, Source, SourceKind, ZERO_SHA,
};
use crate::providers::{self, NormalizeError, Normalized};
use crate::repo::RepoId;

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
}

impl Hint for EnvelopeError {
    /// How to fix the producer or the rule that sent such an event.
    fn hint(&self) -> String {
        let hint = match self.topic {
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
        };
        hint.to_owned()
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
mod tests;
