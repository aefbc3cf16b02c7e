//! The rules both backends keep, written once: the states a start moves through, what an
//! operator may do to one, what a replay adds, how an id's prefix names a start or a change, how
//! far polling reaches back over stored pushes, and the decision log's stored form. The backends
//! hold only their statements.

use crate::outcome::Decision;
use crate::store::{Replayed, StoreError};

/// The state of a start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StartState {
    /// Not tried yet.
    Pending,
    /// Being attempted now.
    Running,
    /// Failed, waiting for a retry at `next_attempt_ms`.
    Failed,
    Succeeded,
    /// Out of attempts, or refused for good; `outbox retry` reopens it.
    Dead,
    /// A newer change of the same pipeline and ref replaced it before it started.
    Superseded,
    /// Dropped by `outbox drop`.
    Dropped,
}

impl StartState {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            StartState::Pending => "pending",
            StartState::Running => "running",
            StartState::Failed => "failed",
            StartState::Succeeded => "succeeded",
            StartState::Dead => "dead",
            StartState::Superseded => "superseded",
            StartState::Dropped => "dropped",
        }
    }

    /// Parses the stored word.
    pub fn parse(s: &str) -> Option<StartState> {
        Some(match s {
            "pending" => StartState::Pending,
            "running" => StartState::Running,
            "failed" => StartState::Failed,
            "succeeded" => StartState::Succeeded,
            "dead" => StartState::Dead,
            "superseded" => StartState::Superseded,
            "dropped" => StartState::Dropped,
            _ => return None,
        })
    }

    /// A stored word, a state that is not one read as dead (never attempted again).
    pub fn read(s: &str) -> StartState {
        StartState::parse(s).unwrap_or(StartState::Dead)
    }

    /// Pending or failed: the dispatcher may still start it.
    pub fn is_open(self) -> bool {
        matches!(self, StartState::Pending | StartState::Failed)
    }

    /// Pending, failed or running: not finished.
    pub fn is_unfinished(self) -> bool {
        self.is_open() || self == StartState::Running
    }
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Started; `run` is the runner's id or URL of what it started, when it tells one.
    Succeeded { run: Option<String> },
    /// Failed; retry at this time (Unix ms).
    Retry { at_ms: i64, error: String },
    /// Failed for good.
    Dead { error: String },
}

/// What recording an outcome writes into a start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome<'a> {
    pub state: StartState,
    pub next_attempt_ms: i64,
    /// The error to record; `None` keeps what is stored.
    pub error: Option<&'a str>,
    /// The run to record; `None` keeps what is stored.
    pub run: Option<&'a str>,
}

impl Finish {
    /// What this outcome writes at `now`.
    pub(crate) fn outcome(&self, now: i64) -> Outcome<'_> {
        match self {
            Finish::Succeeded { run } => Outcome {
                state: StartState::Succeeded,
                next_attempt_ms: now,
                error: None,
                run: run.as_deref(),
            },
            Finish::Retry { at_ms, error } => Outcome {
                state: StartState::Failed,
                next_attempt_ms: *at_ms,
                error: Some(error),
                run: None,
            },
            Finish::Dead { error } => Outcome {
                state: StartState::Dead,
                next_attempt_ms: now,
                error: Some(error),
                run: None,
            },
        }
    }
}

/// What `outbox` (and the status page) may do to one start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Reopen a dead, failed, dropped or superseded start with a fresh set of attempts.
    Retry,
    /// Drop an open or dead start: it will not be started. A running one cannot be dropped.
    Drop,
}

impl Transition {
    /// The states a start may be in for this transition.
    pub fn from(self) -> &'static [StartState] {
        match self {
            Transition::Retry => &[
                StartState::Dead,
                StartState::Failed,
                StartState::Dropped,
                StartState::Superseded,
            ],
            Transition::Drop => &[StartState::Pending, StartState::Failed, StartState::Dead],
        }
    }

    /// The state a start is in afterwards.
    pub fn to(self) -> StartState {
        match self {
            Transition::Retry => StartState::Pending,
            Transition::Drop => StartState::Dropped,
        }
    }

    /// Whether the start's attempts start over (a fresh set, due now).
    pub fn resets_attempts(self) -> bool {
        self == Transition::Retry
    }

    /// The past participle an error or a report uses.
    pub fn done(self) -> &'static str {
        match self {
            Transition::Retry => "retried",
            Transition::Drop => "dropped",
        }
    }

    /// `row` if it may make this transition, else the error that says why not.
    pub(crate) fn check(
        self,
        row: crate::store::StartRow,
    ) -> Result<crate::store::StartRow, StoreError> {
        if self.from().contains(&row.state) {
            Ok(row)
        } else {
            Err(self.refused(row))
        }
    }

    /// The error for a start, as it is now, that this transition did not move.
    pub(crate) fn refused(self, row: crate::store::StartRow) -> StoreError {
        StoreError::WrongState {
            id: row.id,
            state: row.state.as_str().into(),
            action: self.done(),
        }
    }
}

/// What replaying `pipeline` does, given its starts of the change (id, state, replay; newest
/// replay first): a duplicate of a start that is waiting, running or succeeded, else a new
/// start numbered after the last, which the backend inserts.
pub(crate) fn replayed(
    change_id: &str,
    pipeline: &str,
    rows: &[(String, String, u32)],
) -> Replayed {
    let live = rows.iter().find_map(|(id, state, _)| {
        let state = StartState::parse(state)?;
        (state.is_unfinished() || state == StartState::Succeeded).then(|| (id.clone(), state))
    });
    if let Some((start_id, state)) = live {
        return Replayed {
            pipeline: pipeline.to_owned(),
            start_id,
            replay: None,
            state,
        };
    }
    let n = rows.iter().map(|(_, _, n)| *n).max().unwrap_or(0) + 1;
    Replayed {
        pipeline: pipeline.to_owned(),
        start_id: crate::outcome::replay_start_id(change_id, pipeline, n),
        replay: Some(n),
        state: StartState::Pending,
    }
}

/// The shortest prefix of an id that names a start or a change.
pub(crate) const MIN_PREFIX: usize = 4;

/// The most candidates an ambiguous change prefix names.
pub(crate) const CANDIDATES: usize = 10;

/// Whether `prefix` can name a start or a change: at least [`MIN_PREFIX`] letters and digits,
/// the alphabet of every id. Anything else (`%`, `_`, `\\`: `LIKE`'s own characters) names none,
/// so that no prefix becomes a pattern.
fn id_prefix(prefix: &str) -> bool {
    prefix.len() >= MIN_PREFIX && prefix.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The `LIKE` pattern of a start prefix, `None` when it cannot name one ([`id_prefix`]).
pub(crate) fn start_pattern(prefix: &str) -> Option<String> {
    id_prefix(prefix).then(|| format!("{prefix}%"))
}

/// The start a prefix names, from the (at most two) starts whose ids begin with it.
pub(crate) fn one_start<T>(prefix: &str, mut found: Vec<T>) -> Result<T, StoreError> {
    match found.len() {
        1 => found
            .pop()
            .ok_or_else(|| StoreError::NoSuchStart(prefix.to_owned())),
        _ => Err(StoreError::NoSuchStart(prefix.to_owned())),
    }
}

/// Whether `prefix` can name a change ([`id_prefix`]).
pub(crate) fn change_prefix(prefix: &str) -> Result<(), StoreError> {
    if id_prefix(prefix) {
        Ok(())
    } else {
        Err(StoreError::NoSuchChange(prefix.to_owned()))
    }
}

/// The change a prefix names, from the changes (at most [`CANDIDATES`] + 1) whose ids equal it
/// or begin with it, the exact match first: that one, or the only one, else the candidates.
pub(crate) fn one_change<T>(
    prefix: &str,
    mut found: Vec<T>,
    id: impl Fn(&T) -> &str,
) -> Result<T, StoreError> {
    if found.len() > 1 && id(&found[0]) != prefix {
        return Err(StoreError::AmbiguousChange {
            prefix: prefix.to_owned(),
            candidates: found
                .iter()
                .take(CANDIDATES)
                .map(|c| id(c).to_owned())
                .collect(),
        });
    }
    found.truncate(1);
    found
        .pop()
        .ok_or_else(|| StoreError::NoSuchChange(prefix.to_owned()))
}

/// How many stored pushes of a ref polling follows back at most.
pub(crate) const CHAIN: u32 = 256;

/// Which part of a move (`from` → `to`) polling found is not reported yet, given the ref's
/// newest stored pushes (before, after), newest first: they are followed back from `to` while
/// each ends where the next began; `None` when they reach `from`, else the ref state where
/// they stop.
pub(crate) fn unreported<S: AsRef<str>>(from: &str, to: &str, pushes: &[(S, S)]) -> Option<String> {
    let mut expected = to;
    for (before, after) in pushes {
        if after.as_ref() != expected {
            break;
        }
        expected = before.as_ref();
        if expected == from {
            return None;
        }
    }
    Some(expected.to_owned())
}

/// The decision log as stored: `[[pipeline, start, reason], …]`, JSON without key names (it
/// is in every change's row).
pub fn encode_decisions(decisions: &[Decision]) -> String {
    let rows: Vec<(&str, bool, &str)> = decisions
        .iter()
        .map(|d| (d.pipeline.as_str(), d.start, d.reason.as_str()))
        .collect();
    serde_json::to_string(&rows).unwrap_or_else(|_| "[]".to_owned())
}

/// The decision log from its stored form; `None` when it does not read.
pub(crate) fn decode_decisions(text: &str) -> Option<Vec<Decision>> {
    let rows: Vec<(String, bool, String)> = serde_json::from_str(text).ok()?;
    Some(
        rows.into_iter()
            .map(|(pipeline, start, reason)| Decision {
                pipeline,
                start,
                reason,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_reports_only_what_the_stored_pushes_do_not_reach_back_over() {
        let pushes = [("b", "c"), ("a", "b")];
        assert_eq!(unreported("a", "c", &pushes), None);
        assert_eq!(unreported("z", "c", &pushes), Some("a".into()));
        assert_eq!(unreported("a", "d", &pushes), Some("d".into()));
        assert_eq!(unreported::<&str>("a", "c", &[]), Some("c".into()));
    }

    #[test]
    fn a_prefix_names_one_change_or_says_which_it_could_be() {
        fn id<'x>(s: &'x &str) -> &'x str {
            s
        }
        assert_eq!(one_change("abcd", vec!["abcd", "abcdef"], id), Ok("abcd"));
        assert_eq!(one_change("abcd", vec!["abcdef"], id), Ok("abcdef"));
        assert_eq!(
            one_change("abcd", Vec::<&str>::new(), id),
            Err(StoreError::NoSuchChange("abcd".into()))
        );
        assert!(matches!(
            one_change("abcd", vec!["abcd1", "abcd2"], id),
            Err(StoreError::AmbiguousChange { candidates, .. }) if candidates == ["abcd1", "abcd2"]
        ));
        assert!(change_prefix("abc").is_err());
        assert!(change_prefix("ab%d").is_err());
        assert_eq!(start_pattern("abcd").as_deref(), Some("abcd%"));
        for wild in ["____", "%%%%", "ab_c%d", "abc\\\\"] {
            assert_eq!(start_pattern(wild), None, "{wild}");
        }
        assert_eq!(start_pattern("abc"), None);
        assert!(one_start("abcd", vec![1, 2]).is_err());
    }

    #[test]
    fn a_replay_is_a_duplicate_of_a_live_start_else_the_next_number() {
        let rows = vec![("s2".to_owned(), "dead".to_owned(), 1)];
        let r = replayed("c", "p", &rows);
        assert_eq!((r.replay, r.state), (Some(2), StartState::Pending));
        let rows = vec![("s1".to_owned(), "succeeded".to_owned(), 0)];
        let r = replayed("c", "p", &rows);
        assert_eq!((r.replay, r.start_id.as_str()), (None, "s1"));
    }
}
