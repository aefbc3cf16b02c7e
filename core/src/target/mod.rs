//! Targets: what a pipeline starts (`start:` in its definition). Each kind has one file here
//! holding its definition, how `start:` reads it (with a position and a hint for every
//! mistake), the request an attempt makes and what the answer means ([`Kind`]). The I/O is not
//! here: a kind's request goes through one of three transports ([`Via`]: a program, an HTTP
//! exchange, an AWS API call), which the `switchyard` crate carries out ([`Carrier`]).
//!
//! **Adding a target** is one new file here implementing [`Kind`] and one line in the
//! [`targets!`] list below (`name => Variant,`): the list declares the module, the variant of
//! [`Target`], its key in `start:` and its dispatch. A target reached over HTTP needs nothing
//! else; one that needs another AWS API adds its call to [`aws::Call`] and the transport.
//!
//! Pure, like the rest of the definitions: values that vary per start are
//! [`Template`](crate::template::Template)s, parsed when the definition is read so that `check`
//! reports an unknown `${name}`; credentials are [`SecretRef`](crate::secret::SecretRef)s,
//! resolved at each attempt.

mod read;

pub mod aws;
pub mod exchange;

use std::future::Future;
use std::time::Duration;

use crate::diag::{Diagnostics, MapReader, parse_duration, scalar};
use crate::event::ChangeEvent;
use crate::template::Context;
use crate::trace::TraceParent;
use crate::yaml::Node;

/// Every target kind: `module => Variant,`. The module's type is `module::Variant`; its key in
/// `start:` is the module's name.
macro_rules! targets {
    ($($module:ident => $variant:ident,)*) => {
        $(pub mod $module;)*

        /// How a pipeline is started: one of the kinds, as its definition says.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Target {
            $($variant($module::$variant),)*
        }

        /// The keys of `start:` that name a target, in the order hints list them.
        pub const KEYS: &[&str] = &[$(stringify!($module),)*];

        impl Target {
            /// The target's key in `start:`.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Target::$variant(_) => stringify!($module),)*
                }
            }

            /// Reads the definition under `key` (one of [`KEYS`]); `None` for another key, or
            /// when the definition has errors (they are in `d`).
            fn read(key: &str, node: &Node, d: &mut Diagnostics) -> Option<Target> {
                let what = format!("start.{key}");
                let before = d.error_count();
                let target = match key {
                    $(stringify!($module) => $module::$variant::read(node, &what, d).map(Target::$variant),)*
                    _ => None,
                };
                target.filter(|_| d.error_count() == before)
            }

            /// The credentials the target reads at each attempt.
            pub fn secrets(&self) -> Vec<&crate::secret::SecretRef> {
                match self {
                    $(Target::$variant(t) => t.secrets(),)*
                }
            }

            /// One attempt: the kind's request, carried by `carrier`, its answer judged.
            pub async fn attempt<C: Carrier>(
                &self,
                carrier: &C,
                attempt: &Attempt<'_>,
            ) -> Result<Run, Failure> {
                match self {
                    $(Target::$variant(t) => attempt_with(t, carrier, attempt).await,)*
                }
            }
        }
    };
}

targets! {
    exec => Exec,
    http => Http,
    eventbridge => EventBridge,
    sqs => Sqs,
    codepipeline => CodePipeline,
    codebuild => CodeBuild,
    github_actions => GithubActions,
    gitlab => Gitlab,
    buildkite => Buildkite,
    jenkins => Jenkins,
}

/// One kind of target.
pub trait Kind: Sized {
    /// How its requests travel.
    type Via: Via;

    /// Reads the definition (the value under `start.KEY`, named `what` in messages). Every
    /// mistake is an error in `d` with a position and a hint.
    fn read(node: &Node, what: &str, d: &mut Diagnostics) -> Option<Self>;

    /// The request of one attempt, its templates rendered and its credential read (at every
    /// attempt, so a rotated one applies without a restart).
    fn request(&self, attempt: &Attempt<'_>) -> Result<<Self::Via as Via>::Request, Failure>;

    /// What the answer means: the run it made, or why the attempt failed and whether another
    /// can help.
    fn judge(&self, answer: <Self::Via as Via>::Answer) -> Result<Run, Failure>;

    /// The credentials it reads at each attempt (none by default).
    fn secrets(&self) -> Vec<&crate::secret::SecretRef> {
        Vec::new()
    }
}

/// A way a request travels: the request and the answer it brings back.
pub trait Via {
    type Request: Send;
    type Answer;
}

/// Runs a program ([`exec::Command`] → [`exec::Exit`]).
#[derive(Debug)]
pub enum Program {}

/// One HTTP exchange ([`exchange::Request`] → [`exchange::Answer`]).
#[derive(Debug)]
pub enum Exchange {}

/// One AWS API call ([`aws::Call`] → [`aws::Answer`]).
#[derive(Debug)]
pub enum Api {}

impl Via for Program {
    type Request = exec::Command;
    type Answer = exec::Exit;
}

impl Via for Exchange {
    type Request = exchange::Request;
    type Answer = exchange::Answer;
}

impl Via for Api {
    type Request = aws::Call;
    type Answer = aws::Answer;
}

/// What carries a request of one [`Via`] and brings its answer back. A transport's own
/// failure (no connection, no answer in time, a program that cannot run) is a [`Failure`].
pub trait Carry<V: Via> {
    fn carry(
        &self,
        request: V::Request,
        attempt: &Attempt<'_>,
    ) -> impl Future<Output = Result<V::Answer, Failure>> + Send;
}

/// What carries every kind's requests: the `switchyard` crate's transports.
pub trait Carrier: Carry<Program> + Carry<Exchange> + Carry<Api> + Sync {}

impl<C: Carry<Program> + Carry<Exchange> + Carry<Api> + Sync> Carrier for C {}

async fn attempt_with<K, C>(kind: &K, carrier: &C, attempt: &Attempt<'_>) -> Result<Run, Failure>
where
    K: Kind,
    C: Carry<K::Via>,
{
    let request = kind.request(attempt)?;
    let answer = carrier.carry(request, attempt).await?;
    kind.judge(answer)
}

/// The inputs of one attempt of one start.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    pub pipeline: &'a str,
    /// The start id: the idempotency key a runner sees on every attempt.
    pub start_id: &'a str,
    /// 1 for the first attempt.
    pub number: u32,
    pub event: &'a ChangeEvent,
    /// The event's JSON as stored.
    pub event_json: &'a str,
    /// This attempt's `traceparent`: a new span in the change's trace.
    pub traceparent: &'a TraceParent,
    /// How long the attempt may take.
    pub timeout: Duration,
}

impl<'a> Attempt<'a> {
    /// What templates are rendered for.
    pub fn context(&self) -> Context<'a> {
        Context {
            event: self.event,
            pipeline: self.pipeline,
            start_id: self.start_id,
        }
    }

    /// `{"pipeline", "start_id", "event"}`: what the `http`, `eventbridge` and `sqs` targets
    /// send.
    pub fn body(&self) -> Result<String, Failure> {
        let body = serde_json::json!({
            "pipeline": self.pipeline,
            "start_id": self.start_id,
            "event": self.event,
        });
        serde_json::to_string(&body).map_err(|e| Failure::dead(e.to_string()))
    }
}

/// What a successful attempt started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Run {
    /// The runner's id or URL of the run, when it tells one.
    pub id: Option<String>,
}

impl Run {
    /// A run the runner does not name.
    pub fn unnamed() -> Run {
        Run { id: None }
    }

    /// The run `id`.
    pub fn named(id: impl Into<String>) -> Run {
        Run {
            id: Some(id.into()),
        }
    }
}

/// The longest a runner's `Retry-After` (or rate-limit reset) is waited for; a longer one is cut
/// to this, so that a wrong clock or a typo on the runner's side cannot park a start for days.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// Why one attempt failed, and whether trying again can help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub retry: bool,
    /// When the runner said when to try again (`Retry-After`, a rate limit's reset): how long
    /// to wait instead of the backoff.
    pub after: Option<Duration>,
}

impl Failure {
    /// A failure worth retrying.
    pub fn retry(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            retry: true,
            after: None,
        }
    }

    /// A failure worth retrying once `after` has passed, when the runner said so (throttling).
    pub fn throttled(message: impl Into<String>, after: Option<Duration>) -> Failure {
        Failure {
            message: message.into(),
            retry: true,
            after: after.map(|a| a.min(RETRY_AFTER_MAX)),
        }
    }

    /// A failure that another attempt would repeat.
    pub fn dead(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            retry: false,
            after: None,
        }
    }

    /// The failure with every appearance of `secrets` masked (each at least 4 characters):
    /// a runner may echo the credential it was sent.
    pub fn masked<S: AsRef<str>>(mut self, secrets: &[S]) -> Failure {
        for secret in secrets {
            let secret = secret.as_ref();
            if secret.len() >= 4 && self.message.contains(secret) {
                self.message = self.message.replace(secret, "[credential]");
            }
        }
        self
    }
}

/// Attempts time out after this long unless `start.timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Reads `start:`: exactly one target, and `timeout`.
pub fn read_start(node: &Node, d: &mut Diagnostics) -> Option<(Target, Duration)> {
    let map = MapReader::new(node, "start", d)?;
    let mut known = KEYS.to_vec();
    known.push("timeout");
    map.deny_unknown(&known, "start", d);
    let timeout = match map.get("timeout") {
        Some(n) => scalar(n, "start.timeout", d).and_then(|t| match parse_duration(t) {
            Some(dur) if dur >= Duration::from_millis(10) => Some(dur),
            _ => {
                d.error(
                    n.pos,
                    format!("start.timeout {t:?} is not a duration of at least 10ms"),
                    "write a number and a unit: 500ms, 30s, 5m, 1h",
                );
                None
            }
        }),
        None => Some(DEFAULT_TIMEOUT),
    };
    let named: Vec<(&Node, &Node)> = KEYS.iter().filter_map(|k| map.entry(k)).collect();
    let (key, value) = match named.as_slice() {
        [one] => *one,
        [] => {
            d.error(
                node.pos,
                "start names no target",
                format!("use one of {}", read::quoted(KEYS)),
            );
            return None;
        }
        [_, second, ..] => {
            d.error(
                second.0.pos,
                "start names more than one target",
                format!("keep exactly one of {}", read::quoted(KEYS)),
            );
            return None;
        }
    };
    let target = Target::read(key.as_str().unwrap_or_default(), value, d)?;
    Some((target, timeout?))
}

#[cfg(test)]
mod tests;
