//! Each polled repository's last poll, as the status page shows it: when it ended, whether it
//! worked, the last error with its hint, and the failures in a row. The poller writes it after
//! every poll; anyone may read a copy. It lives in memory only: a restart begins blank.

use std::sync::Mutex;
use std::time::Duration;

use crate::diag::Hinted;

/// What the last polls of one repository did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoHealth {
    /// The repository id.
    pub repository: String,
    /// Its configured interval.
    pub interval: Duration,
    /// When the last poll ended (Unix ms); `None` before the first.
    pub last_poll_ms: Option<i64>,
    /// When a poll last worked (Unix ms).
    pub last_ok_ms: Option<i64>,
    /// The last poll's error and its hint; `None` when it worked.
    pub last_error: Option<String>,
    /// Failed polls in a row.
    pub failures: u32,
    /// The last poll found another replica holding the repository's lease: not polled here.
    pub elsewhere: bool,
}

/// The health of every polled repository, in configuration order.
#[derive(Debug, Default)]
pub struct PollHealth {
    repos: Mutex<Vec<RepoHealth>>,
}

/// How one poll ended, as [`PollHealth::record`] takes it.
#[derive(Clone, Copy, Debug)]
pub enum Polled<'a> {
    /// It worked (here, or another replica holds the lease: `elsewhere`).
    Ok { elsewhere: bool },
    /// It failed: the error and its hint.
    Failed(&'a Hinted),
}

impl PollHealth {
    /// Nothing polled yet, for `repos` (id and interval).
    pub fn new(repos: impl IntoIterator<Item = (String, Duration)>) -> PollHealth {
        let repos = repos
            .into_iter()
            .map(|(repository, interval)| RepoHealth {
                repository,
                interval,
                last_poll_ms: None,
                last_ok_ms: None,
                last_error: None,
                failures: 0,
                elsewhere: false,
            })
            .collect();
        PollHealth {
            repos: Mutex::new(repos),
        }
    }

    /// Records that the poll of repository `index` ended at `at_ms` as `polled` said.
    pub fn record(&self, index: usize, at_ms: i64, polled: Polled<'_>) {
        let Ok(mut repos) = self.repos.lock() else {
            return;
        };
        let Some(r) = repos.get_mut(index) else {
            return;
        };
        r.last_poll_ms = Some(at_ms);
        match polled {
            Polled::Ok { elsewhere } => {
                r.last_ok_ms = Some(at_ms);
                r.last_error = None;
                r.failures = 0;
                r.elsewhere = elsewhere;
            }
            Polled::Failed(error) => {
                r.last_error = Some(error.to_string());
                r.failures += 1;
                r.elsewhere = false;
            }
        }
    }

    /// A copy of every repository's health, in configuration order.
    pub fn snapshot(&self) -> Vec<RepoHealth> {
        self.repos.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_kept_until_a_poll_works_again() {
        let h = PollHealth::new([("github.com/acme/api".to_owned(), Duration::from_secs(30))]);
        assert_eq!(h.snapshot()[0].last_poll_ms, None);
        let error = Hinted::new("cannot connect", "check the URL");
        let failed = Polled::Failed(&error);
        h.record(0, 1_000, failed);
        h.record(0, 2_000, failed);
        let r = &h.snapshot()[0];
        assert_eq!(
            (r.last_poll_ms, r.last_ok_ms, r.failures),
            (Some(2_000), None, 2)
        );
        assert_eq!(
            r.last_error.as_deref(),
            Some("cannot connect\nhint: check the URL")
        );
        h.record(0, 3_000, Polled::Ok { elsewhere: false });
        let r = &h.snapshot()[0];
        assert_eq!((r.last_ok_ms, r.failures), (Some(3_000), 0));
        assert_eq!(r.last_error, None);
        h.record(7, 4_000, Polled::Ok { elsewhere: false });
        assert_eq!(
            h.snapshot().len(),
            1,
            "an index out of range changes nothing"
        );
    }
}
