//! Repository identity: every spelling of a repository reduces to one id.
//!
//! The id is the clone URL's host, lowercased, and its path without a trailing `.git` or `/`,
//! with user info, scheme and port dropped: `https://github.com/Acme/api.git`,
//! `git@github.com:Acme/api.git` and `ssh://git@github.com/Acme/api` are all
//! `github.com/Acme/api`. A CodeCommit repository is `git-codecommit.REGION.amazonaws.com/v1/repos/NAME`
//! whether it is named by region and name, by ARN, by `codecommit::REGION://NAME` or by its clone
//! URL. A local path or `file://` URL is the absolute path, cleaned lexically (no file system
//! access happens here).

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diag::Hint;

/// The normalized identity of a git repository.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RepoId(String);

/// Why a repository spelling could not be understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RepoIdError {
    #[error("the repository is empty")]
    Empty,
    #[error("{0:?} has no host")]
    NoHost(String),
    #[error("{0:?} has no repository path after the host")]
    NoPath(String),
    #[error("{0:?} is a relative path and no base directory is known")]
    Relative(String),
    #[error("{0:?} contains a control character or a space")]
    BadCharacter(String),
    #[error("unsupported scheme {scheme:?} in {spelling:?}")]
    Scheme { scheme: String, spelling: String },
}

impl Hint for RepoIdError {
    /// What the user can do about it.
    fn hint(&self) -> String {
        let hint = match self {
            RepoIdError::Scheme { .. } => {
                "use https://, http://, ssh://, git://, file://, user@host:path, a local path, \
                 codecommit::REGION://NAME or a CodeCommit ARN"
            }
            RepoIdError::Relative(_) => "write an absolute path",
            _ => {
                "write the clone URL, e.g. https://github.com/acme/api.git or git@github.com:acme/api.git"
            }
        };
        hint.to_owned()
    }
}

impl RepoId {
    /// Parses any supported spelling. Relative local paths are resolved against `base`.
    pub fn parse(spelling: &str, base: Option<&Path>) -> Result<RepoId, RepoIdError> {
        let s = spelling.trim();
        if s.is_empty() {
            return Err(RepoIdError::Empty);
        }
        if s.chars().any(|c| c.is_control() || c == ' ') {
            return Err(RepoIdError::BadCharacter(s.to_owned()));
        }
        if let Some(rest) = s.strip_prefix("arn:") {
            return Self::parse_arn(s, rest);
        }
        if let Some(rest) = s.strip_prefix("codecommit::") {
            // git-remote-codecommit: codecommit::REGION://[PROFILE@]NAME
            if let Some((region, name)) = rest.split_once("://") {
                let name = name.rsplit('@').next().unwrap_or(name);
                if region.is_empty() || name.is_empty() {
                    return Err(RepoIdError::NoPath(s.to_owned()));
                }
                return Ok(Self::codecommit(region, name));
            }
            return Err(RepoIdError::NoHost(s.to_owned()));
        }
        if let Some((scheme, rest)) = s.split_once("://") {
            let scheme_lc = scheme.to_ascii_lowercase();
            return match scheme_lc.as_str() {
                "file" => Self::from_path(rest, s, base),
                "https" | "http" | "ssh" | "git" | "git+ssh" | "ssh+git" => {
                    Self::from_authority_path(rest, s)
                }
                _ => Err(RepoIdError::Scheme {
                    scheme: scheme.to_owned(),
                    spelling: s.to_owned(),
                }),
            };
        }
        if let Some(colon) = s.find(':') {
            // scp-like `user@host:path`, but not a local path containing a colon after a slash.
            let slash = s.find('/');
            if slash.is_none_or(|sl| colon < sl) && colon > 0 {
                let (authority, path) = (&s[..colon], &s[colon + 1..]);
                let host = authority.rsplit('@').next().unwrap_or(authority);
                return Self::join(host, path, s);
            }
        }
        Self::from_path(s, s, base)
    }

    /// Reads a repository as a change event names it: an id (`github.com/acme/api`), or any
    /// absolute spelling [`RepoId::parse`] takes. A bare `host/path` is an id, never a
    /// relative path.
    pub fn parse_id(text: &str) -> Result<RepoId, RepoIdError> {
        let s = text.trim();
        let spelled = s.starts_with('/')
            || s.contains("://")
            || s.starts_with("arn:")
            || s.starts_with("codecommit::")
            || s.find(':')
                .is_some_and(|c| s.find('/').is_none_or(|sl| c < sl));
        if spelled {
            return RepoId::parse(s, None);
        }
        if s.chars().any(|c| c.is_control() || c == ' ') {
            return Err(RepoIdError::BadCharacter(s.to_owned()));
        }
        match s.split_once('/') {
            Some((host, path)) => Self::join(host, path, s),
            None if s.is_empty() => Err(RepoIdError::Empty),
            None => Err(RepoIdError::NoPath(s.to_owned())),
        }
    }

    /// The id of a CodeCommit repository named by region and repository name.
    pub fn codecommit(region: &str, name: &str) -> RepoId {
        RepoId(format!(
            "git-codecommit.{}.amazonaws.com/v1/repos/{}",
            region.to_ascii_lowercase(),
            name
        ))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the id names a local path rather than a host.
    pub fn is_local(&self) -> bool {
        self.0.starts_with('/')
    }

    fn parse_arn(spelling: &str, rest: &str) -> Result<RepoId, RepoIdError> {
        // arn:PARTITION:codecommit:REGION:ACCOUNT:NAME
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        match parts.as_slice() {
            [_, "codecommit", region, _, name] if !region.is_empty() && !name.is_empty() => {
                Ok(Self::codecommit(region, name))
            }
            _ => Err(RepoIdError::Scheme {
                scheme: "arn".into(),
                spelling: spelling.to_owned(),
            }),
        }
    }

    fn from_authority_path(rest: &str, spelling: &str) -> Result<RepoId, RepoIdError> {
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let host_port = authority.rsplit('@').next().unwrap_or(authority);
        let host = if let Some(v6) = host_port.strip_prefix('[') {
            // [::1]:8080
            v6.split(']').next().unwrap_or(v6)
        } else {
            host_port.split(':').next().unwrap_or(host_port)
        };
        Self::join(host, path, spelling)
    }

    fn join(host: &str, path: &str, spelling: &str) -> Result<RepoId, RepoIdError> {
        if host.is_empty() {
            return Err(RepoIdError::NoHost(spelling.to_owned()));
        }
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let mut segments: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if let Some(last) = segments.last_mut() {
            *last = last.strip_suffix(".git").unwrap_or(last);
            if last.is_empty() {
                segments.pop();
            }
        }
        if segments.is_empty() {
            return Err(RepoIdError::NoPath(spelling.to_owned()));
        }
        Ok(RepoId(format!(
            "{}/{}",
            host.to_ascii_lowercase(),
            segments.join("/")
        )))
    }

    fn from_path(path: &str, spelling: &str, base: Option<&Path>) -> Result<RepoId, RepoIdError> {
        let p = Path::new(path);
        let clean = match base {
            _ if p.is_absolute() => absolute_path(p, Path::new("/")),
            Some(base) => absolute_path(p, base),
            None => return Err(RepoIdError::Relative(spelling.to_owned())),
        };
        let mut text = clean.to_string_lossy().into_owned();
        if let Some(stripped) = text.strip_suffix(".git") {
            text = stripped.to_owned();
        }
        while text.len() > 1 && text.ends_with('/') {
            text.pop();
        }
        Ok(RepoId(text))
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `path` made absolute against `base` and cleaned lexically (`.` dropped, `..` applied), as
/// the repository identity spells a local path.
pub fn absolute_path(path: &Path, base: &Path) -> PathBuf {
    let mut clean = PathBuf::from("/");
    for component in base.join(path).components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::ParentDir => {
                clean.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_reduce_to_one_id() {
        let base = Path::new("/work/clones");
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("https://github.com/Acme/api.git", "github.com/Acme/api"),
            ("https://github.com/Acme/api", "github.com/Acme/api"),
            ("https://github.com/Acme/api/", "github.com/Acme/api"),
            ("https://GitHub.COM/Acme/api.git/", "github.com/Acme/api"),
            ("https://user:token@github.com:443/Acme/api.git", "github.com/Acme/api"),
            ("http://github.com/Acme/api", "github.com/Acme/api"),
            ("git@github.com:Acme/api.git", "github.com/Acme/api"),
            ("github.com:Acme/api", "github.com/Acme/api"),
            ("ssh://git@github.com/Acme/api", "github.com/Acme/api"),
            ("ssh://git@github.com:22/Acme/api.git", "github.com/Acme/api"),
            ("git+ssh://git@github.com/Acme/api.git", "github.com/Acme/api"),
            ("git://127.0.0.1:9418/api.git", "127.0.0.1/api"),
            ("https://gitlab.com/group/sub/project.git", "gitlab.com/group/sub/project"),
            ("https://[::1]:3000/org/repo.git", "::1/org/repo"),
            ("https://git-codecommit.us-east-1.amazonaws.com/v1/repos/api", "git-codecommit.us-east-1.amazonaws.com/v1/repos/api"),
            ("ssh://APKAEIBAERJR2EXAMPLE@git-codecommit.us-east-1.amazonaws.com/v1/repos/api", "git-codecommit.us-east-1.amazonaws.com/v1/repos/api"),
            ("codecommit::us-east-1://api", "git-codecommit.us-east-1.amazonaws.com/v1/repos/api"),
            ("codecommit::us-east-1://profile@api", "git-codecommit.us-east-1.amazonaws.com/v1/repos/api"),
            ("arn:aws:codecommit:us-east-1:123456789012:api", "git-codecommit.us-east-1.amazonaws.com/v1/repos/api"),
            ("/srv/git/api.git", "/srv/git/api"),
            ("/srv/git/api/", "/srv/git/api"),
            ("/work/main/.git", "/work/main"),
            ("/srv/git/./x/../api", "/srv/git/api"),
            ("file:///srv/git/api.git", "/srv/git/api"),
            ("file:///srv/git/api", "/srv/git/api"),
            ("api", "/work/clones/api"),
            ("./api.git", "/work/clones/api"),
            (".", "/work/clones"),
            ("../x", "/work/x"),
        ];
        for (spelling, want) in cases {
            let got = RepoId::parse(spelling, Some(base));
            assert_eq!(got.as_ref().map(RepoId::as_str), Ok(*want), "{spelling}");
        }
    }

    #[test]
    fn ids_read_back_as_themselves() {
        for spelling in [
            "https://github.com/Acme/api.git",
            "git@github.com:Acme/api.git",
            "arn:aws:codecommit:us-east-1:123456789012:api",
            "/srv/git/api",
            "git://127.0.0.1:9418/api.git",
        ] {
            let id = RepoId::parse(spelling, None).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                RepoId::parse_id(id.as_str()).as_ref(),
                Ok(&id),
                "{spelling}"
            );
            assert_eq!(RepoId::parse_id(spelling).as_ref(), Ok(&id), "{spelling}");
        }
        assert_eq!(
            RepoId::parse_id("GitHub.com/Acme/api.git").map(|r| r.0),
            Ok("github.com/Acme/api".into())
        );
        assert!(RepoId::parse_id("github.com").is_err());
    }

    #[test]
    fn codecommit_by_region_and_name_equals_clone_url() {
        let by_name = RepoId::codecommit("us-east-1", "api");
        let by_url = RepoId::parse(
            "https://git-codecommit.us-east-1.amazonaws.com/v1/repos/api",
            None,
        );
        assert_eq!(Ok(by_name), by_url);
    }

    #[test]
    fn bad_spellings_are_errors() {
        #[rustfmt::skip]
        let cases: &[(&str, RepoIdError)] = &[
            ("", RepoIdError::Empty),
            ("https://github.com", RepoIdError::NoPath("https://github.com".into())),
            ("https:///acme/api", RepoIdError::NoHost("https:///acme/api".into())),
            ("ftp://host/repo", RepoIdError::Scheme { scheme: "ftp".into(), spelling: "ftp://host/repo".into() }),
            ("relative/path", RepoIdError::Relative("relative/path".into())),
            ("https://host/a b", RepoIdError::BadCharacter("https://host/a b".into())),
            ("arn:aws:s3:::bucket", RepoIdError::Scheme { scheme: "arn".into(), spelling: "arn:aws:s3:::bucket".into() }),
        ];
        for (spelling, want) in cases {
            assert_eq!(
                RepoId::parse(spelling, None).as_ref(),
                Err(want),
                "{spelling:?}"
            );
        }
    }
}
