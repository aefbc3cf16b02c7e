//! The refs that moved between the stored cursors and the advertisement, and the change
//! events they make: the moved refs fetched into the mirror (the deleted ones dropped), each
//! move diffed there for its changed paths (unknown when the mirror cannot give them).

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::git::{Diff, GitError, Remote};
use super::{Polled, Poller};
use crate::event::{ChangeEvent, ChangeKind, SCHEMA, Source, SourceKind, ZERO_SHA};

/// The cursor that marks a repository as polled once (its baseline is recorded).
pub(super) const BASELINE: &str = "";

/// A ref that moved between the cursors and the advertisement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Move {
    pub(super) git_ref: String,
    pub(super) before: Option<String>,
    pub(super) after: Option<String>,
}

/// The refs that differ between the cursors and the advertisement, in ref order.
pub(super) fn moved(
    cursors: &BTreeMap<String, String>,
    advertised: &BTreeMap<String, String>,
) -> Vec<Move> {
    let mut out = Vec::new();
    for (name, sha) in advertised {
        match cursors.get(name) {
            Some(old) if old == sha => {}
            old => out.push(Move {
                git_ref: name.clone(),
                before: old.cloned(),
                after: Some(sha.clone()),
            }),
        }
    }
    for (name, sha) in cursors {
        if name != BASELINE && !advertised.contains_key(name) {
            out.push(Move {
                git_ref: name.clone(),
                before: Some(sha.clone()),
                after: None,
            });
        }
    }
    out.sort_by(|a, b| a.git_ref.cmp(&b.git_ref));
    out
}

impl Poller {
    /// Fetches every moved ref into the mirror (and drops the deleted ones), and makes the
    /// change events of `report`, with their paths from the mirror.
    pub(super) async fn changes(
        &self,
        repo: &Arc<Polled>,
        remote: &Remote,
        moves: &[Move],
        report: &[Move],
        default_branch: Option<String>,
    ) -> Vec<ChangeEvent> {
        let mut wanted: Vec<String> = moves
            .iter()
            .filter(|m| m.after.is_some())
            .map(|m| m.git_ref.clone())
            .collect();
        if let Some(d) = &default_branch
            && report.iter().any(|m| m.before.is_none())
            && !wanted.contains(d)
        {
            wanted.push(d.clone());
        }
        let remote = remote.clone();
        let deleted: Vec<String> = moves
            .iter()
            .filter(|m| m.after.is_none())
            .map(|m| m.git_ref.clone())
            .collect();
        let moves_owned = report.to_vec();
        let moves = report;
        let computed = self
            .with_mirror(repo, move |mirror| {
                let fetched = mirror.fetch(&remote, &wanted);
                for git_ref in &deleted {
                    mirror.delete_ref(git_ref)?;
                }
                let base = default_branch.as_deref().and_then(|d| mirror.resolve(d));
                let diffs = moves_owned
                    .iter()
                    .map(|m| {
                        let base = base.as_deref().filter(|_| m.before.is_none());
                        mirror.diff(m.before.as_deref(), m.after.as_deref(), base)
                    })
                    .collect::<Result<Vec<Diff>, GitError>>()?;
                Ok((fetched, diffs))
            })
            .await;
        // Without the mirror the moves are still changes: their paths are unknown (and pass
        // path filters), so nothing is lost to a broken mirror.
        let diffs = match computed {
            Ok((fetched, diffs)) => {
                self.count_request("fetch", fetched.is_ok());
                if let Err(e) = fetched {
                    tracing::warn!(repository = %repo.spec.repository, error = %e, "fetch failed; the changes found carry no paths");
                }
                diffs
            }
            Err(e) => {
                tracing::warn!(repository = %repo.spec.repository, error = %e, "the mirror cannot give the changed paths; they are unknown");
                let unknown = Diff {
                    paths: Vec::new(),
                    complete: false,
                    commit_count: None,
                };
                vec![unknown; moves.len()]
            }
        };
        let received_at = Timestamp::now();
        let mut events = Vec::with_capacity(moves.len());
        for (m, diff) in moves.iter().zip(diffs) {
            let event = ChangeEvent {
                schema: SCHEMA.to_owned(),
                id: String::new(),
                repository: repo.spec.repository.clone(),
                kind: ChangeKind::Push,
                git_ref: m.git_ref.clone(),
                before: m.before.clone().unwrap_or_else(|| ZERO_SHA.to_owned()),
                after: m.after.clone().unwrap_or_else(|| ZERO_SHA.to_owned()),
                created: m.before.is_none(),
                deleted: m.after.is_none(),
                commit_count: diff.commit_count,
                changed_paths: diff.paths,
                changed_paths_complete: diff.complete,
                completion: None,
                pull_request: None,
                source: Source {
                    kind: SourceKind::Poll,
                    provider: None,
                    delivery_id: None,
                },
                occurred_at: None,
                received_at,
            };
            match event.seal() {
                Ok(e) => events.push(e),
                // A ref name git accepts but the schema does not: skip it, loudly.
                Err(e) => {
                    tracing::warn!(repository = %repo.spec.repository, git_ref = %m.git_ref, error = %e, "a moved ref cannot be described as a change; skipped")
                }
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn moves_are_created_updated_and_deleted_refs() {
        let cursors = map(&[
            ("", ""),
            ("refs/heads/main", "a"),
            ("refs/heads/gone", "b"),
            ("refs/tags/v1", "c"),
        ]);
        let advertised = map(&[
            ("refs/heads/main", "a2"),
            ("refs/heads/new", "d"),
            ("refs/tags/v1", "c"),
        ]);
        let moves = moved(&cursors, &advertised);
        let want = [
            ("refs/heads/gone", Some("b"), None),
            ("refs/heads/main", Some("a"), Some("a2")),
            ("refs/heads/new", None, Some("d")),
        ];
        assert_eq!(moves.len(), want.len());
        for (m, (r, b, a)) in moves.iter().zip(want) {
            assert_eq!(m.git_ref, r);
            assert_eq!(m.before.as_deref(), b);
            assert_eq!(m.after.as_deref(), a);
        }
    }
}
