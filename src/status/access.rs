//! Who may read the status page and its API, and which `Host` names it answers for.
//!
//! The page shows repository names, refs, changed paths, delivery ids and runners' error bodies:
//! nothing for whoever can send webhooks (often the whole internet) to read. So a read is open
//! only to a request that reached a loopback listener under a loopback name (`localhost`,
//! `127.0.0.1`, `[::1]`), or to anyone with `status: {public: true}`; every other read needs the
//! operator's session. A request naming a host the page does not answer for (not a loopback
//! name, not one of `status.hosts`) is refused outright, so that a page on loopback cannot be
//! read or driven through a name an attacker points at 127.0.0.1 (DNS rebinding).

use std::net::{IpAddr, SocketAddr};

use crate::config::StatusAccess;

/// The page's access rules for one listener.
#[derive(Clone, Debug)]
pub struct Access {
    /// The listener is on a loopback address.
    local_listener: bool,
    public: bool,
    /// Lowercased, as configured: a name (any port) or `name:port`.
    hosts: Vec<String>,
}

/// What a request's `Host` allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Reads are open; actions need the operator's session.
    Read,
    /// Reads and actions need the operator's session.
    Session,
    /// The page does not answer for this host.
    Refused,
}

impl Access {
    /// The rules for a server listening on `listen`.
    pub fn new(listen: SocketAddr, status: &StatusAccess) -> Access {
        Access {
            local_listener: listen.ip().is_loopback(),
            public: status.public,
            hosts: status.hosts.clone(),
        }
    }

    /// Anyone may read, under any name (the route table's tests).
    #[cfg(test)]
    pub fn public() -> Access {
        Access {
            local_listener: true,
            public: true,
            hosts: Vec::new(),
        }
    }

    /// What a request with this `Host` header may do.
    pub fn grant(&self, host: Option<&str>) -> Grant {
        let host = host
            .map(|h| h.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let loopback = is_loopback_name(name_of(&host));
        let listed = self.hosts.iter().any(|h| *h == host || h == name_of(&host));
        // A listener on a public address answers for names it cannot know unless they are
        // listed; there, reads need the session anyway.
        let answered =
            self.public || loopback || listed || (!self.local_listener && self.hosts.is_empty());
        if !answered {
            Grant::Refused
        } else if self.public || (self.local_listener && loopback) {
            Grant::Read
        } else {
            Grant::Session
        }
    }
}

/// The host name of a `Host` value, without its port: `[::1]:8080` → `[::1]`.
fn name_of(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// `localhost`, a name below it, or a loopback address.
fn is_loopback_name(name: &str) -> bool {
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(listen: &str, public: bool, hosts: &[&str]) -> Access {
        Access::new(
            listen.parse().unwrap_or_else(|e| panic!("{listen}: {e}")),
            &StatusAccess {
                public,
                hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            },
        )
    }

    #[test]
    fn a_loopback_listener_reads_openly_only_under_a_loopback_name() {
        let a = access("127.0.0.1:8080", false, &[]);
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "127.1.2.3",
            "app.localhost:8080",
        ] {
            assert_eq!(a.grant(Some(host)), Grant::Read, "{host}");
        }
        // DNS rebinding: a name that resolves to 127.0.0.1 is not one the page answers for.
        for host in [
            "evil.example:8080",
            "127.0.0.1.nip.io",
            "",
            "localhost.evil.example",
        ] {
            assert_eq!(a.grant(Some(host)), Grant::Refused, "{host}");
        }
        assert_eq!(a.grant(None), Grant::Refused);
        // The name a proxy forwards, once listed, needs the session.
        let a = access("127.0.0.1:8080", false, &["ci.example.com"]);
        assert_eq!(a.grant(Some("ci.example.com")), Grant::Session);
        assert_eq!(a.grant(Some("CI.example.com:443")), Grant::Session);
        assert_eq!(a.grant(Some("other.example.com")), Grant::Refused);
        let a = access("127.0.0.1:8080", false, &["ci.example.com:8443"]);
        assert_eq!(a.grant(Some("ci.example.com:8443")), Grant::Session);
        assert_eq!(a.grant(Some("ci.example.com:9999")), Grant::Refused);
    }

    #[test]
    fn a_public_listener_needs_the_session_unless_the_page_is_public() {
        let a = access("0.0.0.0:8080", false, &[]);
        for host in ["203.0.113.7:8080", "ci.example.com", "localhost:8080"] {
            assert_eq!(a.grant(Some(host)), Grant::Session, "{host}");
        }
        let a = access("0.0.0.0:8080", false, &["ci.example.com"]);
        assert_eq!(a.grant(Some("ci.example.com")), Grant::Session);
        assert_eq!(a.grant(Some("evil.example")), Grant::Refused);
        let a = access("[::]:8080", true, &[]);
        assert_eq!(a.grant(Some("anything.example")), Grant::Read);
        assert_eq!(Access::public().grant(None), Grant::Read);
    }
}
