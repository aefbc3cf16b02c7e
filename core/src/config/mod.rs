//! The service configuration, `switchyard.yaml`: read with unknown keys rejected, then held in
//! types where an invalid state cannot be written (parsed addresses, typed durations, secret
//! references). When the default file is absent the built-in defaults apply.

pub mod postgres;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::diag::{Diagnostic, Diagnostics, Hint, MapReader, did_you_mean, parse_duration, scalar};
use crate::repo::RepoId;
use crate::secret::{self, SecretRef};
use crate::yaml::{self, Node, Pos, Value};

/// The default configuration file.
pub const DEFAULT_PATH: &str = "switchyard.yaml";

/// The validated service configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub receivers: Vec<Receiver>,
    pub poll: Vec<PollRepo>,
    pub polling: Polling,
    pub eventbridge: Option<EventBridge>,
    pub dispatch: Dispatch,
    pub limits: Limits,
    /// How long `serve` waits for running starts after SIGINT/SIGTERM.
    pub shutdown_grace: Duration,
    /// How long delivery ids are remembered to recognise a redelivery.
    pub replay_window: Duration,
    /// A webhook secret `serve` creates when it is missing (the built-in defaults' receiver).
    pub generated_secret: Option<PathBuf>,
    /// Where changes and starts are stored.
    pub store: StoreConfig,
    /// How long changes are kept, with their decisions and finished starts.
    pub retention: Duration,
    /// The token that lets the status page retry, drop and replay (`operator_token: env:NAME`);
    /// without it the page is read-only.
    pub operator_token: Option<SecretRef>,
    /// Who may read the status page and its API (`status: {public, hosts}`).
    pub status: StatusAccess,
}

/// Who may read the status page and its API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusAccess {
    /// Anyone who reaches the listener may read (`public: true`); by default only a request to
    /// a loopback listener under a loopback name reads without the operator's session.
    pub public: bool,
    /// The host names the page answers for besides the loopback ones (`hosts: [ci.example.com]`,
    /// the name a proxy forwards); a request naming another is refused (DNS rebinding).
    pub hosts: Vec<String>,
}

impl Config {
    /// Where the store is: SQLite in `state_dir`, or the PostgreSQL database whose URL the
    /// secret reference holds (read now).
    pub fn store_location(&self) -> Result<Location, String> {
        match &self.store {
            StoreConfig::Sqlite => Ok(Location::Sqlite(self.state_dir.clone())),
            StoreConfig::Postgres(reference) => {
                let url = reference
                    .resolve()
                    .map_err(|e| format!("store.postgres: {e}"))?;
                postgres::parse(&url).map_err(|e| {
                    format!("store.postgres: {reference} does not hold a PostgreSQL URL: {e}")
                })?;
                Ok(Location::Postgres(url))
            }
        }
    }
}

/// The SQLite store's file inside the state directory.
pub const DB_FILE: &str = "switchyard.db";

/// Where a store lives, once `store:` is resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// SQLite, [`DB_FILE`] in this state directory.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its connection URL (a secret: never logged).
    Postgres(String),
}

impl Location {
    /// What to call the store in a message: the file, or the database without its
    /// credentials.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(dir) => dir.join(DB_FILE).display().to_string(),
            Location::Postgres(url) => postgres::describe(url),
        }
    }
}

/// Where the store lives: `store:` in `switchyard.yaml`.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum StoreConfig {
    /// The embedded default: SQLite in `state_dir`.
    #[default]
    Sqlite,
    /// `store: {postgres: env:NAME}`: a PostgreSQL database several replicas share; the
    /// reference holds its connection URL.
    Postgres(SecretRef),
}

/// A webhook endpoint, `POST /hooks/NAME`.
#[derive(Clone, Debug, PartialEq)]
pub struct Receiver {
    pub name: String,
    pub provider: Provider,
    /// Several at once while a secret is rotated.
    pub secrets: Vec<SecretRef>,
    /// GitHub only: also accept the legacy SHA-1 `X-Hub-Signature`.
    pub allow_sha1: bool,
}

/// Who signs the deliveries a receiver takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Bitbucket,
    Gitea,
    Standard,
}

impl Provider {
    /// Every provider, in the order they are listed to users.
    pub const ALL: [Provider; 5] = [
        Provider::GitHub,
        Provider::GitLab,
        Provider::Bitbucket,
        Provider::Gitea,
        Provider::Standard,
    ];

    /// The lowercase name a provider goes by: in `provider:`, `--provider`, `source.provider`
    /// and reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Bitbucket => "bitbucket",
            Provider::Gitea => "gitea",
            Provider::Standard => "standard",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider name that is none of [`Provider::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {0:?}")]
pub struct UnknownProvider(pub String);

impl Hint for UnknownProvider {
    /// The fix: the closest name, or the list.
    fn hint(&self) -> String {
        let names = Provider::ALL.map(Provider::as_str);
        match did_you_mean(&self.0, &names) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!("provider is one of {}", names.join(", ")),
        }
    }
}

impl std::str::FromStr for Provider {
    type Err = UnknownProvider;

    /// A provider's name; `forgejo` is Gitea's (Forgejo signs and sends as Gitea does).
    fn from_str(name: &str) -> Result<Provider, UnknownProvider> {
        if name == "forgejo" {
            return Ok(Provider::Gitea);
        }
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| UnknownProvider(name.to_owned()))
    }
}

/// A repository to poll.
#[derive(Clone, Debug, PartialEq)]
pub struct PollRepo {
    /// The URL as written; a local path is made absolute.
    pub url: String,
    /// The repository's identity: the URL's own, or `repository:` when the URL is a mirror.
    pub repository: RepoId,
    pub interval: Duration,
    /// The ceiling the interval stretches toward while push sources announce this
    /// repository's changes (polling is then only the backstop).
    pub max_interval: Duration,
    pub auth: Option<Auth>,
}

/// Credentials for polling.
#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    /// HTTPS: a token sent as the password of `username`.
    Token { username: String, token: SecretRef },
    /// SSH: a private key (PEM or OpenSSH format).
    SshKey(SecretRef),
}

/// Settings shared by every polled repository.
#[derive(Clone, Debug, PartialEq)]
pub struct Polling {
    /// Repositories polled at the same time at most.
    pub concurrency: usize,
    /// Network timeout of one exchange with a git server.
    pub timeout: Duration,
    /// How long a change from another source may wait for its changed paths to be completed
    /// from the mirror before it is dispatched with the paths unknown.
    pub complete_within: Duration,
    /// A change polling finds counts as missed by a push source that has not announced it
    /// within this window.
    pub missed_grace: Duration,
}

impl Default for Polling {
    fn default() -> Polling {
        Polling {
            concurrency: 8,
            timeout: Duration::from_secs(30),
            complete_within: Duration::from_secs(10),
            missed_grace: Duration::from_secs(60),
        }
    }
}

/// The file in the state directory holding the built-in receiver's generated secret.
pub const BUILTIN_SECRET: &str = "webhook-secret";

/// The interval of a polled repository when `interval` is not given.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// The interval of the clone `serve` polls with the built-in defaults.
pub const SELF_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// `max_interval` when not given, as a multiple of `interval`.
const DEFAULT_STRETCH: u32 = 10;

/// The SQS queue an EventBridge rule targets.
#[derive(Clone, Debug, PartialEq)]
pub struct EventBridge {
    pub queue_url: String,
    pub region: String,
    pub endpoint_url: Option<String>,
    /// Concurrent long-poll receives.
    pub consumers: usize,
    /// The long-poll wait of one receive (at most 20 s, SQS's limit).
    pub wait: Duration,
}

/// Dispatch settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Dispatch {
    /// Attempts before a start is dead-lettered.
    pub attempts: u32,
    /// The delay before the first retry; each further retry doubles it (with jitter).
    pub backoff: Duration,
    /// The longest delay between two attempts.
    pub backoff_max: Duration,
}

/// Limits that keep slow or large requests from holding the server.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_connections: usize,
    /// The most connections one address may hold at once (`None`: a quarter of
    /// `max_connections`); behind a proxy every connection is the proxy's.
    pub max_connections_per_peer: Option<usize>,
    /// Time allowed to read a request's headers, and then its body.
    pub read_timeout: Duration,
}

impl Limits {
    /// The most connections one address may hold at once.
    pub fn per_peer(&self) -> usize {
        self.max_connections_per_peer
            .unwrap_or((self.max_connections / 4).max(1))
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            state_dir: PathBuf::from(".switchyard"),
            receivers: Vec::new(),
            poll: Vec::new(),
            polling: Polling::default(),
            eventbridge: None,
            dispatch: Dispatch {
                attempts: 8,
                backoff: Duration::from_secs(1),
                backoff_max: Duration::from_secs(300),
            },
            limits: Limits {
                max_body_bytes: 1 << 20,
                max_connections: 1024,
                max_connections_per_peer: None,
                read_timeout: Duration::from_secs(10),
            },
            shutdown_grace: Duration::from_secs(10),
            replay_window: Duration::from_secs(7 * 24 * 3600),
            generated_secret: None,
            store: StoreConfig::Sqlite,
            retention: DEFAULT_RETENTION,
            operator_token: None,
            status: StatusAccess::default(),
        }
    }
}

const KEYS: &[&str] = &[
    "listen",
    "state_dir",
    "receivers",
    "poll",
    "polling",
    "eventbridge",
    "dispatch",
    "limits",
    "shutdown_grace",
    "replay_window",
    "store",
    "retention",
    "operator_token",
    "status",
];

/// Changes are kept this long unless `retention` says otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

impl Config {
    /// Loads the configuration. With `explicit` unset, a missing `./switchyard.yaml` means the
    /// defaults; a file named explicitly must exist. Relative paths in the file are taken from
    /// the file's directory.
    pub fn load(explicit: Option<&Path>) -> (Option<Config>, Vec<Diagnostic>) {
        let path = explicit.unwrap_or(Path::new(DEFAULT_PATH));
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if explicit.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
                return (Some(Config::builtin()), Vec::new());
            }
            Err(e) => {
                let mut d = Diagnostics::new(shown);
                d.error(
                    Pos::default(),
                    format!("cannot read the configuration: {e}"),
                    "pass an existing file to --config, or leave --config out for the defaults",
                );
                return (None, d.items);
            }
        };
        let base = std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let mut d = Diagnostics::new(shown);
        let config = Config::parse(&text, &base, &mut d);
        let config = if d.error_count() == 0 { config } else { None };
        (config, d.items)
    }

    /// The built-in defaults, used when `./switchyard.yaml` is absent: when the current
    /// directory is a git clone, it is polled every [`SELF_POLL_INTERVAL`], so that `serve`
    /// in a fresh clone starts the example pipeline on a commit; and a `standard` webhook
    /// receiver `local` takes signed change events, with a secret `serve` generates into
    /// the state directory ([`BUILTIN_SECRET`]).
    pub fn builtin() -> Config {
        let mut config = Config::default();
        let secret = config.state_dir.join(BUILTIN_SECRET);
        config.receivers.push(Receiver {
            name: "local".into(),
            provider: Provider::Standard,
            secrets: vec![SecretRef::File(secret.clone())],
            allow_sha1: false,
        });
        config.generated_secret = Some(secret);
        if let Ok(here) = std::env::current_dir()
            && here.join(".git").exists()
            && let Ok(repository) = RepoId::parse(".", Some(&here))
        {
            config.poll.push(PollRepo {
                url: here.display().to_string(),
                repository,
                interval: SELF_POLL_INTERVAL,
                max_interval: SELF_POLL_INTERVAL * DEFAULT_STRETCH,
                auth: None,
            });
        }
        config
    }

    /// Reads configuration text, reporting into `d`.
    pub fn parse(text: &str, base: &Path, d: &mut Diagnostics) -> Option<Config> {
        let root = match yaml::parse(text) {
            Ok(root) => root,
            Err(e) => {
                d.error(e.pos, e.message, e.hint);
                return None;
            }
        };
        let mut config = Config::default();
        if root.is_null() {
            return Some(config);
        }
        let map = MapReader::new(&root, "the configuration", d)?;
        map.deny_unknown(KEYS, "the configuration", d);
        secret::scan_for_secrets(&root, d);
        if let Some(node) = map.get("listen")
            && let Some(text) = scalar(node, "listen", d)
        {
            match text.parse() {
                Ok(addr) => config.listen = addr,
                Err(_) => d.error(
                    node.pos,
                    format!("listen {text:?} is not an address"),
                    "write IP:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080",
                ),
            }
        }
        if let Some(node) = map.get("state_dir")
            && let Some(text) = scalar(node, "state_dir", d)
        {
            config.state_dir = base.join(text);
        }
        if let Some(node) = map.get("receivers") {
            config.receivers = read_receivers(node, d);
        }
        if let Some(node) = map.get("poll") {
            config.poll = read_poll(node, base, d);
        }
        if let Some(node) = map.get("polling") {
            read_polling(node, &mut config.polling, d);
        }
        if let Some(node) = map.get("eventbridge") {
            config.eventbridge = read_eventbridge(node, d);
        }
        if let Some(node) = map.get("store") {
            config.store = read_store(node, d);
        }
        if let Some(node) = map.get("dispatch")
            && let Some(m) = MapReader::new(node, "dispatch", d)
        {
            m.deny_unknown(&["attempts", "backoff", "backoff_max"], "dispatch", d);
            if let Some(n) = m.get("attempts")
                && let Some(text) = scalar(n, "attempts", d)
            {
                match text.parse::<u32>() {
                    Ok(a) if (1..=100).contains(&a) => config.dispatch.attempts = a,
                    _ => d.error(
                        n.pos,
                        format!("attempts {text:?} is not a number from 1 to 100"),
                        "attempts counts tries before a start is dead-lettered, e.g. 8",
                    ),
                }
            }
            duration_key(&m, "backoff", &mut config.dispatch.backoff, d);
            duration_key(&m, "backoff_max", &mut config.dispatch.backoff_max, d);
        }
        if let Some(node) = map.get("limits")
            && let Some(m) = MapReader::new(node, "limits", d)
        {
            m.deny_unknown(
                &[
                    "max_body_bytes",
                    "max_connections",
                    "max_connections_per_peer",
                    "read_timeout",
                ],
                "limits",
                d,
            );
            number_key(
                &m,
                "max_body_bytes",
                &mut config.limits.max_body_bytes,
                1024,
                256 << 20,
                d,
            );
            number_key(
                &m,
                "max_connections",
                &mut config.limits.max_connections,
                1,
                1 << 20,
                d,
            );
            let mut per_peer = 0;
            number_key(&m, "max_connections_per_peer", &mut per_peer, 1, 1 << 20, d);
            if per_peer > 0 {
                config.limits.max_connections_per_peer = Some(per_peer);
            }
            duration_key(&m, "read_timeout", &mut config.limits.read_timeout, d);
        }
        duration_key(&map, "shutdown_grace", &mut config.shutdown_grace, d);
        duration_key(&map, "replay_window", &mut config.replay_window, d);
        duration_key(&map, "retention", &mut config.retention, d);
        if let Some(n) = map.get("retention")
            && config.retention < Duration::from_secs(3600)
        {
            d.error(
                n.pos,
                "retention must be at least 1h",
                "changes are kept so that an operator can ask why they started; 30d is the default",
            );
        }
        if let Some(n) = map.get("operator_token") {
            config.operator_token = secret::read_ref(n, "operator_token", d);
        }
        if let Some(node) = map.get("status") {
            config.status = read_status(node, d);
        }
        Some(config)
    }
}

/// Reads an optional duration key into `slot`.
fn duration_key(m: &MapReader<'_>, key: &str, slot: &mut Duration, d: &mut Diagnostics) {
    if let Some(n) = m.get(key)
        && let Some(text) = scalar(n, key, d)
    {
        match parse_duration(text) {
            Some(v) => *slot = v,
            None => d.error(
                n.pos,
                format!("{key} {text:?} is not a duration"),
                "write a number and a unit: 500ms, 30s, 5m, 1h",
            ),
        }
    }
}

/// Reads an optional whole number key within bounds into `slot`.
fn number_key(
    m: &MapReader<'_>,
    key: &str,
    slot: &mut usize,
    min: usize,
    max: usize,
    d: &mut Diagnostics,
) {
    if let Some(n) = m.get(key)
        && let Some(text) = scalar(n, key, d)
    {
        match text.parse::<usize>() {
            Ok(v) if (min..=max).contains(&v) => *slot = v,
            _ => d.error(
                n.pos,
                format!("{key} {text:?} is not a number from {min} to {max}"),
                format!("write a whole number, e.g. {}", (min + max) / 2),
            ),
        }
    }
}

fn items<'n>(node: &'n Node, what: &str, d: &mut Diagnostics) -> &'n [Node] {
    match &node.value {
        Value::Seq(items) => items,
        _ if node.is_null() => &[],
        _ => {
            d.error(
                node.pos,
                format!("{what} must be a list, found {}", node.kind_name()),
                format!("write `{what}:` followed by `- ...` items"),
            );
            &[]
        }
    }
}

/// `status: {public: true|false, hosts: [NAME, …]}`.
fn read_status(node: &Node, d: &mut Diagnostics) -> StatusAccess {
    let mut access = StatusAccess::default();
    let Some(m) = MapReader::new(node, "status", d) else {
        return access;
    };
    m.deny_unknown(&["public", "hosts"], "status", d);
    if let Some(n) = m.get("public") {
        match scalar(n, "public", d) {
            Some("true") => access.public = true,
            Some("false") => access.public = false,
            Some(other) => d.error(
                n.pos,
                format!("public {other:?} is not true or false"),
                "write `public: true` to let anyone who reaches the listener read the status page",
            ),
            None => {}
        }
    }
    if let Some(n) = m.get("hosts") {
        for item in items(n, "hosts", d) {
            let Some(text) = scalar(item, "hosts", d) else {
                continue;
            };
            let name = text.trim().to_ascii_lowercase();
            let valid = !name.is_empty()
                && name.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                });
            if valid {
                access.hosts.push(name);
            } else {
                d.error(
                    item.pos,
                    format!("hosts: {text:?} is not a host name"),
                    "write the name browsers use for the page, e.g. ci.example.com or ci.example.com:8443",
                );
            }
        }
    }
    access
}

fn read_receivers(node: &Node, d: &mut Diagnostics) -> Vec<Receiver> {
    let mut out: Vec<Receiver> = Vec::new();
    for item in items(node, "receivers", d) {
        let Some(m) = MapReader::new(item, "a receiver", d) else {
            continue;
        };
        m.deny_unknown(
            &["name", "provider", "secrets", "allow_sha1"],
            "a receiver",
            d,
        );
        let name = match m.get("name") {
            Some(n) => scalar(n, "name", d).and_then(|s| {
                let ok = !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !ok {
                    d.error(
                        n.pos,
                        format!("receiver name {s:?} is not valid"),
                        "it becomes the URL path /hooks/NAME: use letters, digits, `-` and `_`",
                    );
                    None
                } else if out.iter().any(|r| r.name == s) {
                    d.error(
                        n.pos,
                        format!("duplicate receiver name {s:?}"),
                        "each receiver needs its own name",
                    );
                    None
                } else {
                    Some(s.to_owned())
                }
            }),
            None => {
                d.error(
                    item.pos,
                    "a receiver needs `name`",
                    "the name becomes the URL path /hooks/NAME",
                );
                None
            }
        };
        let provider = match m.get("provider") {
            Some(n) => scalar(n, "provider", d).and_then(|p| match p.parse::<Provider>() {
                Ok(provider) => Some(provider),
                Err(e) => {
                    d.error(n.pos, e.to_string(), e.hint());
                    None
                }
            }),
            None => {
                d.error(
                    item.pos,
                    "a receiver needs `provider`",
                    format!(
                        "provider is one of {}",
                        Provider::ALL.map(Provider::as_str).join(", ")
                    ),
                );
                None
            }
        };
        let secrets = match m.get("secrets") {
            Some(n) => {
                let list = crate::diag::scalar_list(n, "secrets", d);
                if list.is_empty() {
                    d.error(
                        n.pos,
                        "`secrets` is empty",
                        "list at least one secret, e.g. [env:GITHUB_WEBHOOK_SECRET]",
                    );
                }
                list.into_iter()
                    .filter_map(|s| secret::read_ref(s, "secrets", d))
                    .collect()
            }
            None => {
                d.error(
                    item.pos,
                    "a receiver needs `secrets`",
                    "unsigned deliveries are never accepted: add `secrets: [env:NAME]`",
                );
                Vec::new()
            }
        };
        let allow_sha1 = match m.get("allow_sha1") {
            Some(n) => match (scalar(n, "allow_sha1", d), provider) {
                (Some("true"), Some(Provider::GitHub)) => true,
                (Some("true"), _) => {
                    d.error(
                        n.pos,
                        "allow_sha1 applies to GitHub receivers only",
                        "remove it: only GitHub sends SHA-1 signatures",
                    );
                    false
                }
                (Some("false"), _) => false,
                (Some(other), _) => {
                    d.error(
                        n.pos,
                        format!("allow_sha1 {other:?} is not true or false"),
                        "write `allow_sha1: true` to accept GitHub's legacy X-Hub-Signature",
                    );
                    false
                }
                (None, _) => false,
            },
            None => false,
        };
        if let (Some(name), Some(provider)) = (name, provider)
            && !secrets.is_empty()
        {
            out.push(Receiver {
                name,
                provider,
                allow_sha1,
                secrets,
            });
        }
    }
    out
}

fn read_poll(node: &Node, base: &Path, d: &mut Diagnostics) -> Vec<PollRepo> {
    let mut out: Vec<PollRepo> = Vec::new();
    for item in items(node, "poll", d) {
        let Some(m) = MapReader::new(item, "a polled repository", d) else {
            continue;
        };
        m.deny_unknown(
            &["url", "repository", "interval", "max_interval", "auth"],
            "a polled repository",
            d,
        );
        let url = match m.get("url") {
            Some(n) => scalar(n, "url", d).and_then(|u| match RepoId::parse(u, Some(base)) {
                // A local path is polled by its absolute path, whatever the working directory.
                Ok(id) if id.is_local() && !u.starts_with("file:") => Some((
                    crate::repo::absolute_path(Path::new(u), base)
                        .display()
                        .to_string(),
                    id,
                )),
                Ok(id) => Some((u.to_owned(), id)),
                Err(e) => {
                    d.error(n.pos, format!("url: {e}"), e.hint());
                    None
                }
            }),
            None => {
                d.error(
                    item.pos,
                    "a polled repository needs `url`",
                    "add the clone URL, e.g. `url: https://github.com/acme/api.git`",
                );
                None
            }
        };
        // A mirror or proxy polled for another repository: changes are that repository's, so
        // that its webhooks and events and this polling report the same changes.
        let alias = m.get("repository").and_then(|n| {
            scalar(n, "repository", d).and_then(|r| match RepoId::parse(r, Some(base)) {
                Ok(id) => Some(id),
                Err(e) => {
                    d.error(n.pos, format!("repository: {e}"), e.hint());
                    None
                }
            })
        });
        if m.get("repository").is_some() && alias.is_none() {
            continue;
        }
        let url = url.map(|(u, id)| (u, alias.unwrap_or(id)));
        if let Some((_, id)) = &url
            && out.iter().any(|p| p.repository == *id)
        {
            let pos = m
                .get("repository")
                .or_else(|| m.get("url"))
                .map_or(item.pos, |n| n.pos);
            d.error(
                pos,
                format!("repository {id} is polled twice"),
                "keep one entry per repository",
            );
            continue;
        }
        let interval = poll_interval(&m, "interval", d).unwrap_or(Some(DEFAULT_POLL_INTERVAL));
        let max_interval = poll_interval(&m, "max_interval", d);
        let auth = m.get("auth").and_then(|n| read_auth(n, d));
        if let (Some((url, repository)), Some(interval)) = (url, interval) {
            let max_interval = match max_interval {
                None => interval * DEFAULT_STRETCH,
                Some(Some(max)) if max >= interval => max,
                Some(Some(_)) => {
                    if let Some(n) = m.get("max_interval") {
                        d.error(
                            n.pos,
                            "max_interval is shorter than interval",
                            "max_interval is the ceiling the interval stretches toward; make it at least interval",
                        );
                    }
                    continue;
                }
                Some(None) => continue,
            };
            out.push(PollRepo {
                url,
                repository,
                interval,
                max_interval,
                auth,
            });
        }
    }
    out
}

/// An optional interval key: `None` when absent, `Some(None)` when invalid (reported).
fn poll_interval(m: &MapReader<'_>, key: &str, d: &mut Diagnostics) -> Option<Option<Duration>> {
    let n = m.get(key)?;
    let text = scalar(n, key, d)?;
    Some(match parse_duration(text) {
        Some(i) if i >= Duration::from_millis(100) => Some(i),
        _ => {
            d.error(
                n.pos,
                format!("{key} {text:?} is not a duration of at least 100ms"),
                "write a number and a unit: 500ms, 30s, 5m, 1h",
            );
            None
        }
    })
}

fn read_auth(node: &Node, d: &mut Diagnostics) -> Option<Auth> {
    let a = MapReader::new(node, "auth", d)?;
    a.deny_unknown(&["token", "username", "ssh_key"], "auth", d);
    match (a.get("token"), a.get("ssh_key")) {
        (Some(t), None) => {
            let username = match a.get("username") {
                Some(n) => scalar(n, "auth.username", d)?.to_owned(),
                None => "x-access-token".to_owned(),
            };
            let token = secret::read_ref(t, "auth.token", d)?;
            Some(Auth::Token { username, token })
        }
        (None, Some(k)) => {
            if let Some(n) = a.get("username") {
                d.error(
                    n.pos,
                    "auth.username goes with `token`",
                    "for ssh, write the user in the URL: ssh://git@host/repo.git",
                );
            }
            secret::read_ref(k, "auth.ssh_key", d).map(Auth::SshKey)
        }
        _ => {
            d.error(
                node.pos,
                "auth takes exactly one of `token` and `ssh_key`",
                "e.g. `auth: {token: env:GIT_TOKEN}`",
            );
            None
        }
    }
}

fn read_polling(node: &Node, polling: &mut Polling, d: &mut Diagnostics) {
    let Some(m) = MapReader::new(node, "polling", d) else {
        return;
    };
    m.deny_unknown(
        &["concurrency", "timeout", "complete_within", "missed_grace"],
        "polling",
        d,
    );
    number_key(&m, "concurrency", &mut polling.concurrency, 1, 1024, d);
    duration_key(&m, "timeout", &mut polling.timeout, d);
    duration_key(&m, "complete_within", &mut polling.complete_within, d);
    duration_key(&m, "missed_grace", &mut polling.missed_grace, d);
}

/// `store: {postgres: env:NAME | file:PATH}`. A URL that can be read now is checked too (its
/// form, never its reachability: `serve` checks that when it starts).
fn read_store(node: &Node, d: &mut Diagnostics) -> StoreConfig {
    let Some(m) = MapReader::new(node, "store", d) else {
        return StoreConfig::Sqlite;
    };
    m.deny_unknown(&["postgres"], "store", d);
    let Some(url) = m.get("postgres") else {
        d.error(
            node.pos,
            "store needs `postgres`",
            "write `store: {postgres: env:NAME}` with NAME holding a postgres:// URL, or leave `store` out for SQLite in state_dir",
        );
        return StoreConfig::Sqlite;
    };
    let Some(reference) = secret::read_ref(url, "store.postgres", d) else {
        return StoreConfig::Sqlite;
    };
    if let Ok(text) = reference.resolve()
        && let Err(e) = postgres::parse(&text)
    {
        d.error(
            url.pos,
            format!("store.postgres: {reference} does not hold a PostgreSQL URL: {e}"),
            "write postgres://USER:PASSWORD@HOST:PORT/DATABASE (add ?sslmode=require for TLS)",
        );
    }
    StoreConfig::Postgres(reference)
}

fn read_eventbridge(node: &Node, d: &mut Diagnostics) -> Option<EventBridge> {
    let m = MapReader::new(node, "eventbridge", d)?;
    m.deny_unknown(
        &["queue_url", "region", "endpoint_url", "consumers", "wait"],
        "eventbridge",
        d,
    );
    let mut get = |key: &str, required: bool| -> Option<String> {
        match m.get(key) {
            Some(n) => scalar(n, key, d).map(str::to_owned),
            None => {
                if required {
                    d.error(
                        node.pos,
                        format!("eventbridge needs `{key}`"),
                        "see switchyard.yaml in the README",
                    );
                }
                None
            }
        }
    };
    let queue_url = get("queue_url", true);
    let region = get("region", true);
    let endpoint_url = get("endpoint_url", false);
    let mut consumers = 2;
    number_key(&m, "consumers", &mut consumers, 1, 64, d);
    let mut wait = Duration::from_secs(20);
    duration_key(&m, "wait", &mut wait, d);
    if wait > Duration::from_secs(20)
        && let Some(n) = m.get("wait")
    {
        d.error(
            n.pos,
            "wait is longer than 20s, SQS's longest long poll",
            "write a duration from 0s to 20s",
        );
    }
    Some(EventBridge {
        queue_url: queue_url?,
        region: region?,
        endpoint_url,
        consumers,
        wait,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_example_reads() {
        let text = r#"
listen: 127.0.0.1:8080
state_dir: .switchyard
receivers:
  - name: github
    provider: github
    secrets: [env:GITHUB_WEBHOOK_SECRET]
poll:
  - url: https://github.com/acme/api.git
    interval: 30s
    auth: {token: env:GIT_TOKEN}
eventbridge:
  queue_url: https://sqs.us-east-1.amazonaws.com/123456789012/switchyard
  region: us-east-1
  endpoint_url: http://127.0.0.1:5000
dispatch:
  attempts: 8
"#;
        let mut d = Diagnostics::new("switchyard.yaml");
        let config = Config::parse(text, Path::new("/srv"), &mut d);
        assert!(d.items.is_empty(), "{:?}", d.items);
        let config = config.unwrap_or_default();
        assert_eq!(
            config.receivers[0].secrets,
            [SecretRef::Env("GITHUB_WEBHOOK_SECRET".into())]
        );
        assert_eq!(config.poll[0].repository.as_str(), "github.com/acme/api");
        assert_eq!(config.poll[0].interval, Duration::from_secs(30));
        assert_eq!(config.state_dir, Path::new("/srv/.switchyard"));
    }
}

#[cfg(test)]
mod poll_tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        let mut d = Diagnostics::new("switchyard.yaml");
        Config::parse(text, Path::new("/srv"), &mut d);
        d.items.iter().map(|i| i.message.clone()).collect()
    }

    #[test]
    fn poll_entries_read_with_their_defaults() {
        let text = "poll:\n  - url: git@github.com:acme/api.git\n  - url: ./mirror.git\n    interval: 5s\n    max_interval: 1m\n    auth: {token: env:T, username: oauth2}\npolling: {concurrency: 4, timeout: 5s, complete_within: 2s, missed_grace: 30s}\n";
        let mut d = Diagnostics::new("switchyard.yaml");
        let config = Config::parse(text, Path::new("/srv"), &mut d).unwrap_or_default();
        assert!(d.items.is_empty(), "{:?}", d.items);
        assert_eq!(config.poll[0].interval, DEFAULT_POLL_INTERVAL);
        assert_eq!(config.poll[0].max_interval, DEFAULT_POLL_INTERVAL * 10);
        assert_eq!(config.poll[1].url, "/srv/mirror.git");
        assert_eq!(config.poll[1].repository.as_str(), "/srv/mirror");
        assert_eq!(config.poll[1].max_interval, Duration::from_secs(60));
        assert_eq!(
            config.poll[1].auth,
            Some(Auth::Token {
                username: "oauth2".into(),
                token: SecretRef::Env("T".into())
            })
        );
        assert_eq!(config.polling.concurrency, 4);
        assert_eq!(config.polling.complete_within, Duration::from_secs(2));
    }

    #[test]
    fn who_reads_the_status_page_is_read_and_checked() {
        let mut d = Diagnostics::new("switchyard.yaml");
        let config = Config::parse(
            "status: {public: true, hosts: [CI.example.com, \"ci.example.com:8443\"]}\n",
            Path::new("/srv"),
            &mut d,
        )
        .unwrap_or_default();
        assert!(d.items.is_empty(), "{:?}", d.items);
        assert_eq!(
            config.status,
            StatusAccess {
                public: true,
                hosts: vec!["ci.example.com".into(), "ci.example.com:8443".into()]
            }
        );
        assert_eq!(Config::builtin().status, StatusAccess::default());
        assert_eq!(
            errors("status: {public: yes}\n"),
            ["public \"yes\" is not true or false"]
        );
        assert_eq!(
            errors("status: {hosts: [\"a b\"]}\n"),
            ["hosts: \"a b\" is not a host name"]
        );
        assert_eq!(errors("status: {open: true}\n").len(), 1);
    }

    #[test]
    fn retention_and_the_operator_token_are_read_and_checked() {
        let mut d = Diagnostics::new("switchyard.yaml");
        let config = Config::parse(
            "retention: 7d\noperator_token: env:OPS\n",
            Path::new("/srv"),
            &mut d,
        )
        .unwrap_or_default();
        assert!(d.items.is_empty(), "{:?}", d.items);
        assert_eq!(config.retention, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(config.operator_token, Some(SecretRef::Env("OPS".into())));
        assert_eq!(Config::builtin().retention, DEFAULT_RETENTION);
        assert_eq!(Config::builtin().operator_token, None);
        assert_eq!(
            errors("retention: 10m\n"),
            ["retention must be at least 1h"]
        );
        let clear = errors("operator_token: hunter2hunter2hunter2\n");
        assert!(
            clear.iter().any(|e| e.starts_with("operator_token:")),
            "{clear:?}"
        );
    }

    #[test]
    fn a_polled_mirror_takes_the_identity_of_its_repository() {
        let text = "poll:\n  - url: git://127.0.0.1:9418/api.git\n    repository: codecommit::us-east-1://api\n";
        let mut d = Diagnostics::new("switchyard.yaml");
        let config = Config::parse(text, Path::new("/srv"), &mut d).unwrap_or_default();
        assert!(d.items.is_empty(), "{:?}", d.items);
        assert_eq!(config.poll[0].url, "git://127.0.0.1:9418/api.git");
        assert_eq!(
            config.poll[0].repository.as_str(),
            "git-codecommit.us-east-1.amazonaws.com/v1/repos/api"
        );
    }

    #[test]
    fn poll_mistakes_are_named() {
        for (text, want) in [
            (
                "poll:\n  - interval: 5s\n",
                "a polled repository needs `url`",
            ),
            (
                "poll:\n  - url: https://h/a/b\n    interval: 5\n",
                "interval \"5\" is not a duration of at least 100ms",
            ),
            (
                "poll:\n  - url: https://h/a/b\n    interval: 10ms\n",
                "interval \"10ms\" is not a duration of at least 100ms",
            ),
            (
                "poll:\n  - url: https://h/a/b\n    interval: 1m\n    max_interval: 30s\n",
                "max_interval is shorter than interval",
            ),
            (
                "poll:\n  - url: https://h/a/b.git\n  - url: git@h:a/b\n",
                "repository h/a/b is polled twice",
            ),
            (
                "poll:\n  - url: https://h/a/b.git\n  - url: https://mirror/b.git\n    repository: https://h/a/b\n",
                "repository h/a/b is polled twice",
            ),
            (
                "poll:\n  - url: https://mirror/b.git\n    repository: ftp://h/a/b\n",
                "repository: unsupported scheme \"ftp\" in \"ftp://h/a/b\"",
            ),
            (
                "poll:\n  - url: https://h/a/b\n    auth: {ssh_key: env:K, username: git}\n",
                "auth.username goes with `token`",
            ),
            (
                "poll:\n  - url: https://h/a/b\n    auth: {}\n",
                "auth takes exactly one of `token` and `ssh_key`",
            ),
            (
                "polling: {concurrency: 0}\n",
                "concurrency \"0\" is not a number from 1 to 1024",
            ),
        ] {
            let got = errors(text);
            assert!(got.iter().any(|m| m == want), "{text:?}: {got:?}");
        }
    }
}
