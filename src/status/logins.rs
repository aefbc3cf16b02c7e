//! How often one address may guess the operator token. A few wrong tokens are free; then each
//! wrong one doubles the wait before the next may be tried (1 s, 2 s, 4 s, … at most 5 min),
//! and a login within the wait is a `429` with `Retry-After`, its token not even compared. The
//! right token clears the address. What is logged is a summary: the first wrong token of an
//! address, then the count at each doubling, with how many logins were refused meanwhile.
//!
//! Behind a proxy every login comes from the proxy's address, so one guesser slows everyone's
//! logins there; the proxy's own per-client limits are the place to tell them apart.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong tokens an address may give before it waits.
const FREE: u32 = 5;
/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Addresses remembered at most; the least recently wrong are forgotten first.
const MAX_PEERS: usize = 10_000;
/// An address not wrong for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// The wrong tokens of each address.
#[derive(Debug, Default)]
pub struct Logins {
    peers: Mutex<HashMap<Option<IpAddr>, Tries>>,
}

#[derive(Clone, Copy, Debug)]
struct Tries {
    wrong: u32,
    last: Instant,
    /// Logins refused since the last wrong token, unheard.
    refused: u32,
}

impl Tries {
    /// When the next login may be tried.
    fn next_at(&self) -> Instant {
        match self.wrong.checked_sub(FREE) {
            None => self.last,
            Some(n) => self.last + wait(n),
        }
    }
}

/// The wait after the `n`-th wrong token beyond the free ones (from 0).
fn wait(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.min(16)).min(MAX_WAIT)
}

/// A wrong token, as it should be logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wrong {
    /// Wrong tokens from this address so far.
    pub count: u32,
    /// Logins refused (429) since the one before.
    pub refused: u32,
    /// How long the address now waits, once it waits.
    pub wait: Option<Duration>,
    /// Whether this one is worth a log line (the first, and at each doubling).
    pub log: bool,
}

impl Logins {
    /// Whether `peer` may try a token now; else how long it must wait (and the refusal counts).
    pub fn check(&self, peer: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let Ok(mut peers) = self.peers.lock() else {
            return Ok(());
        };
        let Some(tries) = peers.get_mut(&peer) else {
            return Ok(());
        };
        let next = tries.next_at();
        if now >= next {
            return Ok(());
        }
        tries.refused += 1;
        Err(next - now)
    }

    /// `peer` gave a wrong token at `now`.
    pub fn wrong(&self, peer: Option<IpAddr>, now: Instant) -> Wrong {
        let Ok(mut peers) = self.peers.lock() else {
            return Wrong {
                count: 0,
                refused: 0,
                wait: None,
                log: true,
            };
        };
        if !peers.contains_key(&peer) && peers.len() >= MAX_PEERS {
            forget(&mut peers, now);
        }
        let tries = peers.entry(peer).or_insert(Tries {
            wrong: 0,
            last: now,
            refused: 0,
        });
        if now.saturating_duration_since(tries.last) >= FORGET_AFTER {
            tries.wrong = 0;
        }
        tries.wrong += 1;
        tries.last = now;
        let refused = std::mem::take(&mut tries.refused);
        let count = tries.wrong;
        Wrong {
            count,
            refused,
            wait: count.checked_sub(FREE).map(wait),
            log: count == 1 || count == FREE || (count > FREE && (count - FREE).is_power_of_two()),
        }
    }

    /// `peer` gave the right token: it starts afresh.
    pub fn right(&self, peer: Option<IpAddr>) {
        if let Ok(mut peers) = self.peers.lock() {
            peers.remove(&peer);
        }
    }
}

/// Makes room: addresses not wrong for [`FORGET_AFTER`] go, then the least recently wrong.
fn forget(peers: &mut HashMap<Option<IpAddr>, Tries>, now: Instant) {
    peers.retain(|_, t| now.saturating_duration_since(t.last) < FORGET_AFTER);
    while peers.len() >= MAX_PEERS {
        let Some(oldest) = peers.iter().min_by_key(|(_, t)| t.last).map(|(k, _)| *k) else {
            break;
        };
        peers.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 8)));

    #[test]
    fn a_few_wrong_tokens_are_free_then_each_doubles_the_wait() {
        let l = Logins::default();
        let t0 = Instant::now();
        for n in 1..FREE {
            assert_eq!(l.check(A, t0), Ok(()));
            let w = l.wrong(A, t0);
            assert_eq!((w.count, w.wait), (n, None));
        }
        assert_eq!(l.check(A, t0), Ok(()));
        let w = l.wrong(A, t0);
        assert_eq!(w.wait, Some(Duration::from_secs(1)));
        assert_eq!(l.check(A, t0), Err(Duration::from_secs(1)));
        assert_eq!(l.check(B, t0), Ok(()), "another address is not held up");
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(l.check(A, t1), Ok(()));
        let w = l.wrong(A, t1);
        assert_eq!((w.wait, w.refused), (Some(Duration::from_secs(2)), 1));
        assert_eq!(
            l.check(A, t1 + Duration::from_secs(1)),
            Err(Duration::from_secs(1))
        );
        // The waits stop growing at five minutes.
        let mut t = t1;
        for _ in 0..30 {
            t += MAX_WAIT;
            assert_eq!(l.check(A, t), Ok(()));
            l.wrong(A, t);
        }
        assert_eq!(l.check(A, t), Err(MAX_WAIT));
        // The right token clears the address.
        l.right(A);
        assert_eq!(l.check(A, t), Ok(()));
    }

    #[test]
    fn the_log_hears_the_first_and_each_doubling() {
        let l = Logins::default();
        let mut t = Instant::now();
        let mut logged = Vec::new();
        for _ in 0..40 {
            t += MAX_WAIT;
            let w = l.wrong(A, t);
            if w.log {
                logged.push(w.count);
            }
        }
        assert_eq!(
            logged,
            [
                1,
                FREE,
                FREE + 1,
                FREE + 2,
                FREE + 4,
                FREE + 8,
                FREE + 16,
                FREE + 32
            ]
        );
    }

    #[test]
    fn the_addresses_remembered_are_bounded() {
        let l = Logins::default();
        let t = Instant::now();
        for n in 0..(MAX_PEERS as u32 + 50) {
            l.wrong(
                Some(IpAddr::V4(n.into())),
                t + Duration::from_millis(u64::from(n)),
            );
        }
        let len = l.peers.lock().map(|p| p.len()).unwrap_or(usize::MAX);
        assert!(len <= MAX_PEERS, "{len}");
    }
}
