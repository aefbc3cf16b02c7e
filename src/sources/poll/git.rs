//! The git side of polling, on blocking threads: the ref advertisement (`ls-remote`), the bare
//! mirror under the state directory, and the changed paths and commit count between two commits.
//!
//! Network timeouts: libgit2's socket timeouts can only be set through `unsafe` functions, which
//! this crate forbids. Instead each network operation runs on a thread of its own under a
//! watchdog (see [`set_timeouts`]): the caller gets [`GitError::Unreachable`] once the server has
//! been silent too long, and the abandoned thread aborts at libgit2's next callback or when the
//! operating system gives up on the socket (libgit2 turns on TCP keepalive).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use git2::{
    AutotagOption, Commit, Cred, CredentialType, DiffOptions, Direction, ErrorClass, ErrorCode,
    FetchOptions, FetchPrune, Oid, Reference, RemoteCallbacks, Repository,
};

use crate::diag::Hint;

/// At most this many changed paths are reported; beyond, the list is cut and marked incomplete.
pub const MAX_PATHS: usize = 10_000;

/// At most this many commits are counted; beyond, the count is unknown.
pub const MAX_COUNT: u64 = 100_000;

/// Credentials for a remote, secrets already resolved. `Debug` prints no secret.
#[derive(Clone)]
pub enum Credentials {
    /// A user name and token (or password), for http(s).
    Token { username: String, token: String },
    /// A private key in OpenSSH or PEM form, for ssh. The user name is the URL's, else this one,
    /// else `git`.
    SshKey {
        username: Option<String>,
        private_key: String,
        passphrase: Option<String>,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = format_args!("<redacted>");
        match self {
            Credentials::Token { username, .. } => f
                .debug_struct("Token")
                .field("username", username)
                .field("token", &redacted)
                .finish(),
            Credentials::SshKey { username, .. } => f
                .debug_struct("SshKey")
                .field("username", username)
                .field("private_key", &redacted)
                .field("passphrase", &redacted)
                .finish(),
        }
    }
}

/// A git server's repository as polling reaches it.
#[derive(Clone)]
pub struct Remote {
    /// `https://`, `http://`, `ssh://`, scp-like `user@host:path`, `git://`, `file://` or an
    /// absolute local path.
    pub url: String,
    /// What to answer when the server asks who we are.
    pub credentials: Option<Credentials>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("url", &crate::secret::shown_url(&self.url))
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl Remote {
    /// The error of a failed operation on this remote, classified, with no secret in it.
    fn error(&self, e: &git2::Error) -> GitError {
        let url = crate::secret::shown_url(&self.url);
        // libgit2 takes a path for a repository only when it exists ("unsupported URL protocol").
        if self.url.starts_with('/') && !Path::new(&self.url).is_dir() {
            let message = "there is no such directory".to_owned();
            return GitError::NotFound { url, message };
        }
        let mut message = e.message().replace(&self.url, &url);
        let secret = match &self.credentials {
            Some(Credentials::Token { token, .. }) => Some(token),
            Some(Credentials::SshKey { passphrase, .. }) => passphrase.as_ref(),
            None => None,
        };
        if let Some(secret) = secret.filter(|s| !s.is_empty()) {
            message = message.replace(secret.as_str(), "<redacted>");
        }
        classify(url, message, e)
    }
}

/// What a server advertises: its branches and tags, and where its HEAD points.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Advertisement {
    /// `refs/heads/*` and `refs/tags/*` only (no HEAD, no `refs/pull/*`, no peeled `^{}`
    /// entries), name to 40-hex sha; an annotated tag maps to the tag object, as the ref holds it.
    pub refs: BTreeMap<String, String>,
    /// The branch HEAD points at on the server (e.g. `refs/heads/main`), when the server says.
    pub default_branch: Option<String>,
}

/// What changed between two values of a ref.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diff {
    /// Changed paths, repository-relative with `/`, sorted, each once, at most [`MAX_PATHS`].
    pub paths: Vec<String>,
    /// False when `paths` was cut at [`MAX_PATHS`] or could not be computed.
    pub complete: bool,
    /// Commits new to the ref; `None` when unknown or beyond [`MAX_COUNT`].
    pub commit_count: Option<u64>,
}

impl Diff {
    /// The answer when the mirror lacks what the diff needs.
    const UNKNOWN: Diff = Diff {
        paths: Vec::new(),
        complete: false,
        commit_count: None,
    };
}

/// Why a git operation failed. Messages name the URL without its user info, never a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    /// Credentials missing or refused.
    #[error("cannot sign in to {url}: {message}")]
    Auth { url: String, message: String },
    /// Connection refused, unknown host, timeout, server down.
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    /// An ssh server whose host key is not trusted (not in `known_hosts`, or changed).
    #[error("{url}: the server's ssh host key is not trusted: {message}")]
    HostKey { url: String, message: String },
    /// The server has no such repository.
    #[error("no repository at {url}: {message}")]
    NotFound { url: String, message: String },
    /// The local mirror cannot be opened, read or written.
    #[error("the mirror at {path} cannot be used: {message}")]
    Mirror { path: String, message: String },
    /// Anything else.
    #[error("git failed on {url}: {message}")]
    Other { url: String, message: String },
}

impl Hint for GitError {
    /// What the user can do about it.
    fn hint(&self) -> String {
        let hint = match self {
            GitError::Auth { .. } => {
                "check the remote's credentials: a token that may read the repository for \
                 https, a private key the server knows for ssh"
            }
            GitError::Unreachable { .. } => {
                "check the host and port in the URL, the network, and that the server is up; \
                 the next poll tries again"
            }
            GitError::HostKey { .. } => {
                "add the server's host key to ~/.ssh/known_hosts of the user switchyard runs \
                 as (`ssh-keyscan -p PORT HOST`, then verify the fingerprint); a key that \
                 changed may mean the server was replaced"
            }
            GitError::NotFound { .. } => {
                "check the repository path in the URL; some servers also answer this way when \
                 the credentials may not read the repository"
            }
            GitError::Mirror { .. } => {
                "the mirror is only a cache: delete that directory and the next poll fetches \
                 it again"
            }
            GitError::Other { .. } => "run `git ls-remote URL` by hand to see what the server says",
        };
        hint.to_owned()
    }
}

/// Sorts a libgit2 error into a [`GitError`]; `url` and `message` are already redacted.
fn classify(url: String, message: String, e: &git2::Error) -> GitError {
    let http_status = |status: &str| e.class() == ErrorClass::Http && message.contains(status);
    let says = |words: &[&str]| words.iter().any(|w| message.contains(w));
    if e.code() == ErrorCode::Auth || http_status("401") || http_status("403") {
        GitError::Auth { url, message }
    } else if e.code() == ErrorCode::Certificate && e.class() == ErrorClass::Ssh {
        GitError::HostKey { url, message }
    } else if e.code() == ErrorCode::NotFound
        || http_status("404")
        // git daemon, GitHub over ssh, git over ssh, a local path.
        || says(&["not exported", "Repository not found", "does not appear to be a git", "failed to resolve path"])
    {
        GitError::NotFound { url, message }
    } else if e.code() == ErrorCode::Timeout
        || (matches!(e.class(), ErrorClass::Net | ErrorClass::Ssh)
            && e.code() != ErrorCode::Certificate)
        || says(&["failed to connect"])
    {
        GitError::Unreachable { url, message }
    } else {
        GitError::Other { url, message }
    }
}

static CONNECT_MS: AtomicU64 = AtomicU64::new(10_000);
static IO_MS: AtomicU64 = AtomicU64::new(60_000);

/// How long a network operation may wait for the server.
#[derive(Clone, Copy, Debug)]
struct Timeouts {
    connect: Duration,
    io: Duration,
}

/// Sets how long every later network operation of the process waits for a server: `connect`
/// plus `io` until the server first shows life (asks for credentials, reports progress), then
/// `io` after each sign of life. Until called: 10 s and 60 s.
pub fn set_timeouts(connect: Duration, io: Duration) {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    CONNECT_MS.store(millis(connect), Ordering::Relaxed);
    IO_MS.store(millis(io), Ordering::Relaxed);
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_millis(CONNECT_MS.load(Ordering::Relaxed)),
        io: Duration::from_millis(IO_MS.load(Ordering::Relaxed)),
    }
}

/// The signs of life of one network operation, shared by its thread and the caller waiting.
#[derive(Debug)]
struct Watch {
    started: Instant,
    /// Milliseconds from `started` to the last sign of life; `u64::MAX` before the first.
    last_ms: AtomicU64,
    abandoned: AtomicBool,
}

impl Watch {
    /// Records a sign of life; false once the caller gave up, which makes libgit2 abort.
    fn tick(&self) -> bool {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_ms.store(ms, Ordering::Relaxed);
        !self.abandoned.load(Ordering::Relaxed)
    }

    /// When the caller stops waiting: `connect + io` after the start until the first sign of
    /// life, then `io` after the last one.
    fn deadline(&self, limits: Timeouts) -> Instant {
        match self.last_ms.load(Ordering::Relaxed) {
            u64::MAX => self.started + limits.connect + limits.io,
            ms => self.started + Duration::from_millis(ms) + limits.io,
        }
    }

    /// Why the caller stopped waiting.
    fn silence(&self, limits: Timeouts) -> String {
        match self.last_ms.load(Ordering::Relaxed) {
            u64::MAX => format!("no answer within {:?}", limits.connect + limits.io),
            _ => format!("the server went silent for {:?}", limits.io),
        }
    }
}

/// Runs `op` on a thread of its own and waits for it while the server shows signs of life.
fn supervised<T, F>(url: &str, limits: Timeouts, op: F) -> Result<T, GitError>
where
    T: Send + 'static,
    F: FnOnce(&Watch) -> Result<T, GitError> + Send + 'static,
{
    let watch = Arc::new(Watch {
        started: Instant::now(),
        last_ms: AtomicU64::new(u64::MAX),
        abandoned: AtomicBool::new(false),
    });
    let (tx, rx) = mpsc::sync_channel(1);
    let theirs = Arc::clone(&watch);
    let other = |message: String| GitError::Other {
        url: crate::secret::shown_url(url),
        message,
    };
    std::thread::Builder::new()
        .name("switchyard-git".into())
        // The caller may have stopped waiting; then the result goes nowhere.
        .spawn(move || tx.send(op(&theirs)))
        .map_err(|e| other(format!("cannot start a thread: {e}")))?;
    loop {
        // Signs of life while waiting move the deadline.
        let wait = watch
            .deadline(limits)
            .saturating_duration_since(Instant::now());
        if wait.is_zero() {
            watch.abandoned.store(true, Ordering::Relaxed);
            let message = watch.silence(limits);
            return Err(GitError::Unreachable {
                url: crate::secret::shown_url(url),
                message,
            });
        }
        match rx.recv_timeout(wait) {
            Ok(result) => return result,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(other(
                    "git2 panicked (on a ref name that is not UTF-8?)".into(),
                ));
            }
        }
    }
}

/// Callbacks that answer each credential request at most once and report signs of life.
fn callbacks<'a>(credentials: Option<&'a Credentials>, watch: &'a Watch) -> RemoteCallbacks<'a> {
    let mut offered = Offered::default();
    let mut callbacks = RemoteCallbacks::new();
    callbacks
        .credentials(move |_url, url_user, allowed| {
            watch.tick();
            answer(credentials, url_user, allowed, &mut offered)
        })
        .transfer_progress(|_| watch.tick())
        .sideband_progress(|_| watch.tick())
        .update_tips(|_, _, _| watch.tick());
    callbacks
}

/// Which credentials were already given to the server.
#[derive(Debug, Default)]
struct Offered {
    username: bool,
    secret: bool,
}

/// The answer to libgit2 asking for credentials of the `allowed` kinds. A second request for
/// the same credential means the server refused it: then fail instead of asking forever.
fn answer(
    credentials: Option<&Credentials>,
    url_user: Option<&str>,
    allowed: CredentialType,
    offered: &mut Offered,
) -> Result<Cred, git2::Error> {
    let refuse = |message: &str| {
        Err(git2::Error::new(
            ErrorCode::Auth,
            ErrorClass::Callback,
            message,
        ))
    };
    match credentials {
        None if url_user.is_some() => {
            refuse("the server refused the credentials in the URL and the remote has no others")
        }
        None => refuse("the server asks for credentials and the remote has none"),
        Some(Credentials::Token { username, token }) => {
            if !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                refuse("the server does not take a token here (an ssh URL needs a private key)")
            } else if std::mem::replace(&mut offered.secret, true) {
                refuse("the server refused the user name and token")
            } else {
                Cred::userpass_plaintext(username, token)
            }
        }
        Some(Credentials::SshKey {
            username,
            private_key,
            passphrase,
        }) => {
            let user = url_user.or(username.as_deref()).unwrap_or("git");
            if allowed.contains(CredentialType::USERNAME) {
                if std::mem::replace(&mut offered.username, true) {
                    refuse("the server refused the user name")
                } else {
                    Cred::username(user)
                }
            } else if !allowed.contains(CredentialType::SSH_MEMORY) {
                refuse("the server does not take a private key here (an https URL needs a token)")
            } else if std::mem::replace(&mut offered.secret, true) {
                refuse("the server refused the private key")
            } else {
                Cred::ssh_key_from_memory(user, None, private_key, passphrase.as_deref())
            }
        }
    }
}

/// What `git ls-remote` does: connects, reads the ref advertisement and disconnects.
pub fn ls_remote(remote: &Remote) -> Result<Advertisement, GitError> {
    ls_remote_within(remote, timeouts())
}

fn ls_remote_within(remote: &Remote, limits: Timeouts) -> Result<Advertisement, GitError> {
    let url = remote.url.clone();
    let remote = remote.clone();
    supervised(&url, limits, move |watch| {
        let fail = |e: git2::Error| remote.error(&e);
        let mut detached = git2::Remote::create_detached(remote.url.as_str()).map_err(fail)?;
        let callbacks = callbacks(remote.credentials.as_ref(), watch);
        let connection = detached
            .connect_auth(Direction::Fetch, Some(callbacks), None)
            .map_err(fail)?;
        let heads = connection.list().map_err(fail)?;
        let listed = |name: &str| {
            (name.starts_with("refs/heads/") || name.starts_with("refs/tags/"))
                && !name.ends_with("^{}")
        };
        Ok(Advertisement {
            refs: heads
                .iter()
                .filter(|head| listed(head.name()))
                .map(|head| (head.name().to_owned(), head.oid().to_string()))
                .collect(),
            default_branch: heads
                .iter()
                .find(|head| head.name() == "HEAD")
                .and_then(|head| head.symref_target())
                .map(str::to_owned),
        })
    })
}

/// A bare mirror repository under the state directory.
pub struct Mirror {
    path: PathBuf,
    repo: Repository,
}

impl fmt::Debug for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mirror")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Mirror {
    /// Opens the bare repository at `path`, creating it when the directory is absent or empty.
    pub fn open(path: &Path) -> Result<Mirror, GitError> {
        let fresh = std::fs::read_dir(path).map_or(true, |mut entries| entries.next().is_none());
        let repo = if fresh {
            Repository::init_bare(path)
        } else {
            Repository::open_bare(path)
        };
        Ok(Mirror {
            repo: repo.map_err(|e| mirror_error(path, &e))?,
            path: path.to_owned(),
        })
    }

    /// Fetches these refs (full names such as `refs/heads/main`) from the remote into the same
    /// names here, forced, without following tags or pruning; only missing objects travel.
    pub fn fetch(&self, remote: &Remote, refs: &[String]) -> Result<(), GitError> {
        if let Some(bad) = refs
            .iter()
            .find(|name| !name.starts_with("refs/") || !Reference::is_valid_name(name))
        {
            return Err(GitError::Other {
                url: crate::secret::shown_url(&remote.url),
                message: format!("{bad:?} is not a ref name to fetch"),
            });
        }
        if refs.is_empty() {
            return Ok(());
        }
        let refspecs: Vec<String> = refs.iter().map(|name| format!("+{name}:{name}")).collect();
        let path = self.path.clone();
        let remote = remote.clone();
        supervised(&remote.url.clone(), timeouts(), move |watch| {
            let repo = Repository::open_bare(&path).map_err(|e| mirror_error(&path, &e))?;
            let mut anonymous = repo
                .remote_anonymous(&remote.url)
                .map_err(|e| remote.error(&e))?;
            let mut options = FetchOptions::new();
            options
                .remote_callbacks(callbacks(remote.credentials.as_ref(), watch))
                .download_tags(AutotagOption::None)
                .prune(FetchPrune::Off)
                .update_fetchhead(false);
            anonymous
                .fetch(&refspecs, Some(&mut options), None)
                .map_err(|e| remote.error(&e))
        })
    }

    /// Deletes a ref if present (a branch or tag deleted on the server).
    pub fn delete_ref(&self, name: &str) -> Result<(), GitError> {
        match self.repo.find_reference(name) {
            Ok(mut reference) => reference.delete(),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(()),
            Err(e) => Err(e),
        }
        .map_err(|e| mirror_error(&self.path, &e))
    }

    /// The sha ref `name` holds here (e.g. the default branch's), when the mirror has the ref.
    pub fn resolve(&self, name: &str) -> Option<String> {
        self.repo.refname_to_id(name).ok().map(|id| id.to_string())
    }

    /// True when the object exists here.
    pub fn has(&self, sha: &str) -> bool {
        oid(sha).is_ok_and(|oid| self.repo.odb().is_ok_and(|odb| odb.exists(oid)))
    }

    /// The changes of a ref that moved from `before` to `after` (`None`: absent).
    ///
    /// - Both set: the tree diff of the two commits (tags peeled), forced pushes included; the
    ///   commits reachable from `after` and not from `before`.
    /// - `before` absent (ref created): the tree diff from the merge base of `after` and `base`
    ///   (the default branch), or every file of `after` when there is no base or merge base;
    ///   the commits reachable from `after` and not from `base`.
    /// - `after` absent (ref deleted): no paths, no commits.
    ///
    /// When the mirror lacks an object or one does not lead to a commit, the diff is unknown:
    /// no paths, incomplete, no count. Renames are a deletion and an addition.
    pub fn diff(
        &self,
        before: Option<&str>,
        after: Option<&str>,
        base: Option<&str>,
    ) -> Result<Diff, GitError> {
        let Some(after) = after else {
            return Ok(Diff {
                paths: Vec::new(),
                complete: true,
                commit_count: Some(0),
            });
        };
        match self.diff_commits(before, after, base) {
            Err(e) if e.code() == ErrorCode::NotFound => Ok(Diff::UNKNOWN),
            result => result.map_err(|e| mirror_error(&self.path, &e)),
        }
    }

    fn diff_commits(
        &self,
        before: Option<&str>,
        after: &str,
        base: Option<&str>,
    ) -> Result<Diff, git2::Error> {
        let after = self.commit(after)?;
        let (from, hide) = match before {
            Some(before) => {
                let before = self.commit(before)?;
                let id = before.id();
                (Some(before), Some(id))
            }
            None => match base.filter(|sha| self.has(sha)) {
                Some(base) => {
                    let base = self.commit(base)?;
                    let from = match self.repo.merge_base(after.id(), base.id()) {
                        Ok(id) => Some(self.repo.find_commit(id)?),
                        Err(e) if e.code() == ErrorCode::NotFound => None,
                        Err(e) => return Err(e),
                    };
                    (from, Some(base.id()))
                }
                None => (None, None),
            },
        };
        let (paths, complete) = self.paths(from.as_ref(), &after)?;
        Ok(Diff {
            paths,
            complete,
            commit_count: self.count(after.id(), hide)?,
        })
    }

    /// The commit `sha` names, tags peeled; NotFound when missing or not leading to a commit.
    fn commit(&self, sha: &str) -> Result<Commit<'_>, git2::Error> {
        self.repo
            .find_object(oid(sha)?, None)?
            .peel_to_commit()
            .map_err(|e| git2::Error::new(ErrorCode::NotFound, e.class(), e.message()))
    }

    /// The paths of the tree diff `from..to` (every file of `to` without `from`), and whether
    /// they are all there.
    fn paths(
        &self,
        from: Option<&Commit>,
        to: &Commit,
    ) -> Result<(Vec<String>, bool), git2::Error> {
        let old = from.map(Commit::tree).transpose()?;
        let mut options = DiffOptions::new();
        options.skip_binary_check(true);
        let diff =
            self.repo
                .diff_tree_to_tree(old.as_ref(), Some(&to.tree()?), Some(&mut options))?;
        let mut paths = BTreeSet::new();
        for delta in diff.deltas() {
            for file in [delta.old_file(), delta.new_file()] {
                if let Some(path) = file.path_bytes() {
                    paths.insert(String::from_utf8_lossy(path).into_owned());
                }
            }
            if paths.len() > MAX_PATHS {
                break;
            }
        }
        let complete = paths.len() <= MAX_PATHS;
        Ok((paths.into_iter().take(MAX_PATHS).collect(), complete))
    }

    /// The commits reachable from `tip` and not from `hide`, up to [`MAX_COUNT`].
    fn count(&self, tip: Oid, hide: Option<Oid>) -> Result<Option<u64>, git2::Error> {
        let mut walk = self.repo.revwalk()?;
        walk.push(tip)?;
        if let Some(hide) = hide {
            walk.hide(hide)?;
        }
        let mut count = 0;
        for id in walk {
            id?;
            count += 1;
            if count > MAX_COUNT {
                return Ok(None);
            }
        }
        Ok(Some(count))
    }
}

/// A full 40-hex object id (`Oid::from_str` would take a prefix); anything else names nothing.
fn oid(sha: &str) -> Result<Oid, git2::Error> {
    match sha.len() {
        40 => Oid::from_str(sha),
        _ => Err(git2::Error::new(
            ErrorCode::NotFound,
            ErrorClass::Invalid,
            format!("{sha:?} is not a 40-hex object id"),
        )),
    }
}

fn mirror_error(path: &Path, e: &git2::Error) -> GitError {
    GitError::Mirror {
        path: path.display().to_string(),
        message: e.message().to_owned(),
    }
}

#[cfg(test)]
mod tests;
