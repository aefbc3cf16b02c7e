//! Which sources announced which changes lately, in memory. Polling reads it to act as the
//! backstop (its interval stretches while push sources deliver, and a change only polling found
//! counts as `missed` by them), and the intake reads it for the detection lag of each source.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::event::SourceKind;

/// How long a change's sightings are remembered.
const KEEP: Duration = Duration::from_secs(3600);
/// Changes remembered at most (the oldest are forgotten first).
const MAX_CHANGES: usize = 100_000;
/// How long a repository's last push is remembered: the longest window polling asks about.
const KEEP_PUSHES: Duration = Duration::from_secs(48 * 3600);
/// Repositories whose last push is remembered at most; beyond it the least recently pushed are
/// forgotten first (their polling then runs at its base interval until they push again).
const MAX_REPOSITORIES: usize = 10_000;

/// The push sources: those that announce a change without being asked.
pub const PUSH_SOURCES: [SourceKind; 2] = [SourceKind::Webhook, SourceKind::Eventbridge];

/// Recent sightings, shared by the intake and the poller.
#[derive(Debug, Default)]
pub struct Activity {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Change id → when it was first seen, and by which sources.
    changes: HashMap<String, Seen>,
    /// Change ids in the order first seen, for forgetting.
    order: VecDeque<(Instant, String)>,
    /// Repository → the last time each push source (in [`PUSH_SOURCES`] order) announced a
    /// change of it.
    pushes: HashMap<String, [Option<Instant>; PUSH_SOURCES.len()]>,
}

#[derive(Debug)]
struct Seen {
    first: Instant,
    sources: Vec<SourceKind>,
}

impl Activity {
    /// Records that `source` reported change `change_id` of `repository` now. Returns how long
    /// after the first report of the change this is, when it is this source's first report of
    /// it (zero for the first source), and `None` for a repeat.
    pub fn record(
        &self,
        repository: &str,
        change_id: &str,
        source: SourceKind,
    ) -> Option<Duration> {
        let now = Instant::now();
        let Ok(mut inner) = self.inner.lock() else {
            return None;
        };
        if let Some(i) = PUSH_SOURCES.iter().position(|s| *s == source) {
            match inner.pushes.get_mut(repository) {
                Some(seen) => seen[i] = Some(now),
                None => {
                    if inner.pushes.len() >= MAX_REPOSITORIES {
                        inner.forget_repositories(now);
                    }
                    let mut seen = [None; PUSH_SOURCES.len()];
                    seen[i] = Some(now);
                    inner.pushes.insert(repository.to_owned(), seen);
                }
            }
        }
        inner.forget_old(now);
        if let Some(seen) = inner.changes.get_mut(change_id) {
            if seen.sources.contains(&source) {
                return None;
            }
            seen.sources.push(source);
            return Some(now.saturating_duration_since(seen.first));
        }
        inner.changes.insert(
            change_id.to_owned(),
            Seen {
                first: now,
                sources: vec![source],
            },
        );
        inner.order.push_back((now, change_id.to_owned()));
        Some(Duration::ZERO)
    }

    /// The push sources that announced a change of `repository` within `within`.
    pub fn push_sources(&self, repository: &str, within: Duration) -> Vec<SourceKind> {
        let Ok(inner) = self.inner.lock() else {
            return Vec::new();
        };
        let seen = inner.pushes.get(repository);
        PUSH_SOURCES
            .into_iter()
            .enumerate()
            .filter(|(i, _)| {
                seen.and_then(|s| s[*i])
                    .is_some_and(|at| at.elapsed() <= within)
            })
            .map(|(_, s)| s)
            .collect()
    }

    /// Whether `source` reported `change_id` (as far as memory goes back).
    pub fn saw(&self, change_id: &str, source: SourceKind) -> bool {
        self.inner.lock().is_ok_and(|inner| {
            inner
                .changes
                .get(change_id)
                .is_some_and(|seen| seen.sources.contains(&source))
        })
    }
}

impl Inner {
    /// Makes room among the repositories: those not pushed within [`KEEP_PUSHES`] go, then the
    /// least recently pushed until a tenth of the room is free (so this runs once per that many
    /// new repositories, not at each).
    fn forget_repositories(&mut self, now: Instant) {
        let last =
            |seen: &[Option<Instant>; PUSH_SOURCES.len()]| seen.iter().flatten().max().copied();
        self.pushes.retain(|_, seen| {
            last(seen).is_some_and(|at| now.saturating_duration_since(at) <= KEEP_PUSHES)
        });
        let keep = MAX_REPOSITORIES - MAX_REPOSITORIES / 10;
        if self.pushes.len() > keep {
            let mut times: Vec<Instant> = self.pushes.values().filter_map(last).collect();
            let cut = self.pushes.len() - keep;
            times.select_nth_unstable(cut - 1);
            let oldest_kept = times[cut - 1];
            self.pushes
                .retain(|_, seen| last(seen).is_some_and(|at| at > oldest_kept));
        }
    }

    fn forget_old(&mut self, now: Instant) {
        while let Some((at, id)) = self.order.front() {
            if now.saturating_duration_since(*at) <= KEEP && self.order.len() < MAX_CHANGES {
                break;
            }
            self.changes.remove(id);
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_report_has_no_lag_and_repeats_none() {
        let a = Activity::default();
        assert_eq!(a.record("r", "c1", SourceKind::Poll), Some(Duration::ZERO));
        assert!(a.record("r", "c1", SourceKind::Webhook).is_some());
        assert_eq!(a.record("r", "c1", SourceKind::Webhook), None);
        assert!(a.saw("c1", SourceKind::Webhook));
        assert!(!a.saw("c1", SourceKind::Eventbridge));
        assert!(!a.saw("c2", SourceKind::Poll));
    }

    #[test]
    fn only_push_sources_make_a_repository_active() {
        let a = Activity::default();
        a.record("r", "c1", SourceKind::Poll);
        assert!(a.push_sources("r", KEEP).is_empty());
        a.record("r", "c2", SourceKind::Eventbridge);
        assert_eq!(a.push_sources("r", KEEP), [SourceKind::Eventbridge]);
        assert!(a.push_sources("other", KEEP).is_empty());
    }

    #[test]
    fn repositories_pushed_are_remembered_within_bounds() {
        let a = Activity::default();
        for n in 0..MAX_REPOSITORIES * 3 {
            a.record(
                &format!("https://example.com/r{n}"),
                &format!("c{n}"),
                SourceKind::Webhook,
            );
        }
        let remembered = a.inner.lock().map(|i| i.pushes.len()).unwrap_or(usize::MAX);
        assert!(
            remembered <= MAX_REPOSITORIES,
            "{remembered} repositories remembered"
        );
        let newest = format!("https://example.com/r{}", MAX_REPOSITORIES * 3 - 1);
        assert_eq!(a.push_sources(&newest, KEEP), [SourceKind::Webhook]);
        assert!(
            a.push_sources("https://example.com/r0", KEEP).is_empty(),
            "the oldest went first"
        );
    }
}
