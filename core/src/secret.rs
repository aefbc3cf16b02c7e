//! Secret references (`env:NAME`, `file:PATH`) and the detection of secrets written in clear.
//!
//! Configuration never holds a secret itself, only where to find it. Resolving reads the
//! environment or a file; the resolved value is kept out of `Debug` output and logs.

use std::fmt;
use std::path::PathBuf;

use crate::diag::{Diagnostics, Hint, scalar};
use crate::yaml::{Node, Value};

/// Where a secret is kept.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

/// Why a secret reference was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretRefError {
    #[error("a secret written in clear")]
    InClear,
    #[error("{0:?} is not a valid environment variable name")]
    BadEnvName(String),
    #[error("`file:` needs a path")]
    EmptyPath,
}

impl Hint for SecretRefError {
    /// What the user can do about it.
    fn hint(&self) -> String {
        let hint = match self {
            SecretRefError::InClear => {
                "keep secrets out of configuration files: write env:NAME or file:PATH, \
                 and rotate this secret since it was written down"
            }
            SecretRefError::BadEnvName(_) => {
                "use letters, digits and `_`, e.g. env:GITHUB_WEBHOOK_SECRET"
            }
            SecretRefError::EmptyPath => "write file:/run/secrets/NAME",
        };
        hint.to_owned()
    }
}

impl SecretRef {
    /// Parses `env:NAME` or `file:PATH`; anything else is a secret written in clear.
    pub fn parse(text: &str) -> Result<SecretRef, SecretRefError> {
        if let Some(name) = text.strip_prefix("env:") {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            return if valid {
                Ok(SecretRef::Env(name.to_owned()))
            } else {
                Err(SecretRefError::BadEnvName(name.to_owned()))
            };
        }
        if let Some(path) = text.strip_prefix("file:") {
            return if path.is_empty() {
                Err(SecretRefError::EmptyPath)
            } else {
                Ok(SecretRef::File(PathBuf::from(path)))
            };
        }
        Err(SecretRefError::InClear)
    }
}

/// Why a secret reference could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("{0}: the environment variable is not set")]
    EnvMissing(String),
    #[error("{reference}: cannot read the file: {message}")]
    File { reference: String, message: String },
    #[error("{0}: the secret is empty")]
    Empty(String),
}

impl SecretRef {
    /// Reads the secret: the variable's value, or the file's content without a trailing newline.
    pub fn resolve(&self) -> Result<String, ResolveError> {
        let value = match self {
            SecretRef::Env(name) => {
                std::env::var(name).map_err(|_| ResolveError::EnvMissing(self.to_string()))?
            }
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map_err(|e| ResolveError::File {
                    reference: self.to_string(),
                    message: e.to_string(),
                })?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        };
        if value.is_empty() {
            return Err(ResolveError::Empty(self.to_string()));
        }
        Ok(value)
    }
}

/// A URL as every message, log line and page shows it: without its query and fragment, which
/// may carry tokens (`?token=…`, `#access_token=…`), and without the user information before
/// the host, which may be one (`https://TOKEN@host`, `https://user:password@host`). Only an SSH
/// URL keeps a bare user name (`ssh://git@host/repo`), which names an account, not a secret.
/// Text that is no URL (a local path) is shown as it is, up to a `?`.
pub fn shown_url(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at)
            if scheme.to_ascii_lowercase().contains("ssh") && !authority[..at].contains(':') =>
        {
            url.to_owned()
        }
        Some(at) => format!("{scheme}://{}{path}", &authority[at + 1..]),
        None => url.to_owned(),
    }
}

/// If `text` looks like a credential written in clear, what kind it looks like.
///
/// Checks the shapes providers give their tokens (GitHub, GitLab, AWS, Slack, Standard Webhooks
/// secrets, private keys) and URLs with a password in them.
pub fn looks_like_secret(text: &str) -> Option<&'static str> {
    let token_after = |prefix: &str, min: usize| {
        text.find(prefix).is_some_and(|i| {
            text[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .count()
                >= min
        })
    };
    if ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]
        .iter()
        .any(|p| token_after(p, 30))
        || token_after("github_pat_", 30)
    {
        return Some("a GitHub token");
    }
    if token_after("glpat-", 20) {
        return Some("a GitLab token");
    }
    if token_after("whsec_", 16) {
        return Some("a webhook signing secret");
    }
    if ["xoxb-", "xoxp-", "xoxa-", "xoxr-"]
        .iter()
        .any(|p| token_after(p, 10))
    {
        return Some("a Slack token");
    }
    if text.contains("-----BEGIN") && text.contains("PRIVATE KEY") {
        return Some("a private key");
    }
    let aws_key = text.as_bytes().windows(20).any(|w| {
        (w.starts_with(b"AKIA") || w.starts_with(b"ASIA"))
            && w[4..]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    if aws_key {
        return Some("an AWS access key id");
    }
    if let Some((_, rest)) = text.split_once("://") {
        let authority = rest.split('/').next().unwrap_or(rest);
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && userinfo.contains(':')
        {
            return Some("a URL with a password");
        }
    }
    None
}

/// Reads a secret reference, reporting secrets written in clear.
pub fn read_ref(node: &Node, what: &str, d: &mut Diagnostics) -> Option<SecretRef> {
    let text = scalar(node, what, d)?;
    match SecretRef::parse(text) {
        Ok(r) => Some(r),
        Err(SecretRefError::InClear) if d.items.iter().any(|x| x.pos == node.pos) => None,
        Err(e) => {
            d.error(node.pos, format!("{what}: {e}"), e.hint());
            None
        }
    }
}

/// Reports every scalar in the document that looks like a credential written in clear.
pub fn scan_for_secrets(node: &Node, d: &mut Diagnostics) {
    match &node.value {
        Value::Scalar(text, _) => {
            if let Some(kind) = looks_like_secret(text) {
                d.error(
                    node.pos,
                    format!("this looks like {kind} written in clear"),
                    SecretRefError::InClear.hint(),
                );
            }
        }
        Value::Seq(items) => items.iter().for_each(|n| scan_for_secrets(n, d)),
        Value::Map(entries) => entries.iter().for_each(|(_, v)| scan_for_secrets(v, d)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_shown_url_has_no_query_fragment_or_credentials() {
        use super::shown_url;
        for (url, shown) in [
            (
                "https://ci.example.com/hook?token=s3cret",
                "https://ci.example.com/hook",
            ),
            (
                "https://ci.example.com/hook#access_token=x",
                "https://ci.example.com/hook",
            ),
            (
                "https://user:pw@ci.example.com:8443/a/b?x=1",
                "https://ci.example.com:8443/a/b",
            ),
            (
                "https://ghp_token@github.com/o/r.git",
                "https://github.com/o/r.git",
            ),
            ("http://a@b@host/p", "http://host/p"),
            (
                "ssh://git@github.com/o/r.git",
                "ssh://git@github.com/o/r.git",
            ),
            (
                "ssh://git:pw@github.com/o/r.git",
                "ssh://github.com/o/r.git",
            ),
            ("https://host/p@q", "https://host/p@q"),
            ("/srv/mirror.git", "/srv/mirror.git"),
            ("/srv/git/a@b", "/srv/git/a@b"),
            ("git@github.com:a/b.git", "git@github.com:a/b.git"),
            ("http://u:p@127.0.0.1:8080/a@b", "http://127.0.0.1:8080/a@b"),
            ("https://host", "https://host"),
        ] {
            assert_eq!(shown_url(url), shown, "{url}");
        }
    }

    use super::*;

    #[test]
    fn references_parse() {
        #[rustfmt::skip]
        let cases: &[(&str, Result<SecretRef, SecretRefError>)] = &[
            ("env:GITHUB_WEBHOOK_SECRET", Ok(SecretRef::Env("GITHUB_WEBHOOK_SECRET".into()))),
            ("file:/run/secrets/key", Ok(SecretRef::File("/run/secrets/key".into()))),
            ("env:1BAD", Err(SecretRefError::BadEnvName("1BAD".into()))),
            ("env:", Err(SecretRefError::BadEnvName(String::new()))),
            ("file:", Err(SecretRefError::EmptyPath)),
            ("hunter2", Err(SecretRefError::InClear)),
            ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Err(SecretRefError::InClear)),
        ];
        for (text, want) in cases {
            assert_eq!(&SecretRef::parse(text), want, "{text}");
        }
    }

    #[test]
    fn credentials_in_clear_are_recognised() {
        #[rustfmt::skip]
        let cases: &[(&str, Option<&str>)] = &[
            ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", Some("a GitHub token")),
            ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", Some("a GitHub token")),
            ("glpat-abcdefghijklmnopqrst", Some("a GitLab token")),
            ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Some("a webhook signing secret")),
            ("AKIAIOSFODNN7EXAMPLE", Some("an AWS access key id")),
            ("https://bob:s3cret@git.example.com/a.git", Some("a URL with a password")),
            ("https://bob@git.example.com/a.git", None),
            ("-----BEGIN OPENSSH PRIVATE KEY-----", Some("a private key")),
            ("refs/heads/ghp_x", None),
            ("services/api/**", None),
            ("./ci/run-pipeline", None),
        ];
        for (text, want) in cases {
            assert_eq!(looks_like_secret(text), *want, "{text}");
        }
    }

    #[test]
    fn debug_shows_the_reference_only() {
        let s = SecretRef::Env("TOKEN".into());
        assert_eq!(format!("{s:?}"), "env:TOKEN");
    }
}
