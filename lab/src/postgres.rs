//! A real PostgreSQL server (Debian's `postgresql`) on a free loopback port, in a temp dir of
//! its own: fresh databases for tests that share it, `psql` for their counts, fast and
//! immediate stops and a start again for outage tests; stopped and removed on drop, and by a
//! watchdog when the test process ends without dropping it.
//!
//! initdb, pg_ctl and postgres refuse to run as root: as root the lab runs them as Debian's
//! `postgres` user (else `nobody`) through `setpriv`, in a temp dir given to that user. The
//! client (`psql`) runs as whoever runs the tests, over TCP with trust authentication.
//!
//! Why a watchdog: the server is a daemon (`pg_ctl start` detaches it), so nothing kills it when
//! the test process ends, and [`Postgres::shared`] lives in a static, which is never dropped. So
//! each server gets a small `sh` in a process group of its own, holding the read end of a pipe
//! whose only write end this process holds. When the process ends, however it ends (a panic,
//! `exit`, SIGKILL), the kernel closes that end; `sh` reads end-of-file and runs `pg_ctl stop
//! -m immediate` and `rm -rf` on the temp dir. A drop says `stopped` down the pipe first, and
//! the watchdog leaves without doing anything. No polling of a pid, which could be reused.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context as _, bail};

use crate::process::{effective_uid, free_port, output};
use crate::skip::Missing;

/// How to get PostgreSQL's server binaries, for the error that says they are missing.
const INSTALL: &str = "apt-get install postgresql (.ci/test does it), which puts them in /usr/lib/postgresql/VERSION/bin, or set SWITCHYARD_PG_BIN to a directory holding initdb, pg_ctl and postgres";

/// The role every database belongs to (the superuser initdb makes), and the database
/// [`Postgres::url`] names.
pub const USER: &str = "switchyard";

/// The database made at start, the one [`Postgres::url`] names.
pub const DATABASE: &str = "switchyard";

/// How long `pg_ctl` waits for the server to start or stop, seconds.
const WAIT_SECS: &str = "60";

/// The watchdog: waits for `stopped` or end-of-file on stdin; at end-of-file runs the stop
/// command (`$2…`) and removes the temp dir (`$1`). Terminal signals do not end it.
const WATCHDOG: &str = r#"trap '' HUP INT
read -r said
[ "$said" = stopped ] && exit 0
dir=$1
shift
"$@" >/dev/null 2>&1
rm -rf -- "$dir"
"#;

/// Where PostgreSQL's server binaries are: `SWITCHYARD_PG_BIN`, the newest
/// `/usr/lib/postgresql/VERSION/bin` (Debian's layout), or the directory of the `initdb` on
/// PATH (Debian puts no server binary on PATH).
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SWITCHYARD_PG_BIN") {
        return Some(PathBuf::from(dir)).filter(|d| d.join("initdb").exists());
    }
    let versions: Vec<String> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("bin/initdb").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    if let Some(newest) = newest(&versions) {
        return Some(Path::new("/usr/lib/postgresql").join(newest).join("bin"));
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).find(|p| p.join("initdb").exists()))
}

/// The newest of Debian's version directories (`9.6`, `13`, `15`): compared as numbers, part by
/// part.
fn newest(versions: &[String]) -> Option<&str> {
    let key = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    versions.iter().max_by_key(|v| key(v)).map(String::as_str)
}

/// The server's settings beyond the lab's fixed ones (loopback, a free port, trust
/// authentication).
#[derive(Clone, Debug)]
pub struct Options {
    /// `fsync`: on by default, so that durability figures are honest; a benchmark that
    /// measures something else may turn it off.
    pub fsync: bool,
    /// `max_connections`: 200 by default.
    pub max_connections: u32,
    /// `shared_buffers`: `128MB` by default.
    pub shared_buffers: String,
    /// More `-c name=value` settings, in order.
    pub settings: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            fsync: true,
            max_connections: 200,
            shared_buffers: "128MB".into(),
            settings: Vec::new(),
        }
    }
}

/// Who runs the server's binaries.
#[derive(Clone, Debug)]
enum RunAs {
    /// This process's user (not root).
    Me,
    /// An unprivileged user, through `setpriv`, because this process runs as root.
    User { name: String, uid: u32, gid: u32 },
}

impl RunAs {
    /// This process's user, or when that is root: Debian's `postgres` user, else `nobody`.
    fn find() -> anyhow::Result<RunAs> {
        if effective_uid()? != 0 {
            return Ok(RunAs::Me);
        }
        for name in ["postgres", "nobody"] {
            let id = |flag: &str| -> Option<u32> {
                output(Command::new("id").args([flag, name]).stderr(Stdio::null()))
                    .ok()
                    .and_then(|s| s.parse().ok())
            };
            if let (Some(uid), Some(gid)) = (id("-u"), id("-g")) {
                return Ok(RunAs::User {
                    name: name.into(),
                    uid,
                    gid,
                });
            }
        }
        bail!(
            "running as root, and there is neither a postgres nor a nobody user to run PostgreSQL as (initdb and postgres refuse root)\nhint: run the tests as another user, or create user postgres"
        )
    }

    /// The command line that runs `program` as this user.
    fn argv(&self, program: &Path) -> Vec<OsString> {
        match self {
            RunAs::Me => vec![program.into()],
            RunAs::User { uid, gid, .. } => vec![
                "setpriv".into(),
                format!("--reuid={uid}").into(),
                format!("--regid={gid}").into(),
                "--clear-groups".into(),
                "--".into(),
                program.into(),
            ],
        }
    }
}

/// The watchdog of one server: its `sh`, and the write end of the pipe it reads.
#[derive(Debug)]
struct Watchdog {
    child: Child,
    stdin: ChildStdin,
}

/// A PostgreSQL server on `127.0.0.1:port`, its cluster in a temp dir (`data/`, the socket,
/// `postgres.log`); role [`USER`] with trust authentication, database [`DATABASE`]. Stopped
/// (immediate) and its dir removed on drop.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    run_as: RunAs,
    options: Options,
    watchdog: Mutex<Option<Watchdog>>,
    // Dropped last: removed once the server has stopped.
    dir: tempfile::TempDir,
}

impl Postgres {
    /// A fresh server with the default [`Options`] (fsync on). A [`Missing`] error when
    /// PostgreSQL's server binaries are not installed.
    pub fn start() -> anyhow::Result<Postgres> {
        Postgres::start_with(Options::default())
    }

    /// A fresh server with these options: initdb into a new temp dir, `pg_ctl start -w` on a
    /// free loopback port (another, up to five times, when the port was taken meanwhile), then
    /// database [`DATABASE`]. initdb runs with `--no-sync` (a new cluster, thrown away
    /// after); the server's own writes follow [`Options::fsync`].
    pub fn start_with(options: Options) -> anyhow::Result<Postgres> {
        let bin = bin_dir().ok_or_else(|| {
            let what = match std::env::var_os("SWITCHYARD_PG_BIN") {
                Some(dir) => format!("{}/initdb (SWITCHYARD_PG_BIN)", dir.to_string_lossy()),
                None => "PostgreSQL's initdb, pg_ctl and postgres".into(),
            };
            Missing::new(what, INSTALL)
        })?;
        let run_as = RunAs::find()?;
        let dir = tempfile::Builder::new()
            .prefix("switchyard-pg-")
            .tempdir()
            .context("cannot make a temp dir for PostgreSQL")?;
        if let RunAs::User { uid, gid, .. } = &run_as {
            std::os::unix::fs::chown(dir.path(), Some(*uid), Some(*gid)).with_context(|| {
                format!(
                    "cannot give {} to the user running PostgreSQL",
                    dir.path().display()
                )
            })?;
        }
        let mut pg = Postgres {
            port: 0,
            bin,
            run_as,
            options,
            watchdog: Mutex::new(None),
            dir,
        };
        // From here on the watchdog cleans up should this process end.
        pg.watch()?;
        let mut initdb = pg.as_user("initdb");
        initdb
            .arg("-D")
            .arg(pg.data())
            .args(["-U", USER, "--auth=trust", "--no-sync", "-E", "UTF8"])
            .arg("--locale=C");
        output(&mut initdb).map_err(|e| {
            let hint = match &pg.run_as {
                RunAs::User { name, .. } => format!(
                    "\nhint: initdb runs as user {name}, which must be able to reach {} (set TMPDIR to a directory it can)",
                    pg.dir.path().display()
                ),
                RunAs::Me => String::new(),
            };
            anyhow::anyhow!("initdb failed: {e:#}{hint}")
        })?;
        for _ in 0..5 {
            pg.port = free_port()?;
            let log_before = std::fs::metadata(pg.log_path()).map_or(0, |m| m.len());
            match pg.pg_ctl_start() {
                Ok(()) => {
                    pg.psql("postgres", &format!("CREATE DATABASE {}", quoted(DATABASE)))?;
                    return Ok(pg);
                }
                Err(e) => {
                    let log = pg.log();
                    let new = log.get(log_before as usize..).unwrap_or(&log);
                    if !new.contains("could not bind") && !new.contains("already in use") {
                        return Err(e);
                    }
                }
            }
        }
        bail!(
            "PostgreSQL did not start on any of five free ports:\n{}",
            pg.log()
        )
    }

    /// The one server of this test process, started on first use; each test makes a database
    /// of its own on it ([`Postgres::create_database`]). Never dropped: its watchdog stops it
    /// and removes its dir when the process ends. An error to every caller when it did not
    /// start (a [`Missing`] one when PostgreSQL is not installed).
    pub fn shared() -> anyhow::Result<&'static Postgres> {
        type Started = Result<Postgres, (Option<Missing>, String)>;
        static SHARED: OnceLock<Started> = OnceLock::new();
        let started = SHARED.get_or_init(|| {
            Postgres::start().map_err(|e| (e.downcast_ref::<Missing>().cloned(), format!("{e:#}")))
        });
        match started {
            Ok(pg) => Ok(pg),
            Err((Some(missing), _)) => Err(missing.clone().into()),
            Err((None, e)) => bail!("the shared PostgreSQL did not start: {e}"),
        }
    }

    /// The URL of database [`DATABASE`]: `postgres://switchyard@127.0.0.1:PORT/switchyard`.
    pub fn url(&self) -> String {
        self.url_of(DATABASE)
    }

    /// The URL of database `name` on this server.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// The server's loopback port (the same after [`Postgres::start_again`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temp dir holding the cluster (`data/`), the socket and `postgres.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far (empty when it cannot be read).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Makes database `name` (letters, digits and `_`, so that it needs no escaping in a URL);
    /// its URL.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        check_database_name(name)?;
        self.psql("postgres", &format!("CREATE DATABASE {}", quoted(name)))?;
        Ok(self.url_of(name))
    }

    /// Runs `sql` in database `db` with `psql -At` (stopping at the first error): what it
    /// printed, trimmed; rows one a line, columns separated by `|`.
    pub fn psql(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        let psql = self.bin.join("psql");
        let psql = if psql.exists() { psql } else { "psql".into() };
        output(
            Command::new(psql)
                .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                .args(["-d", db, "-c", sql])
                .env("LC_ALL", "C")
                .env("PGCONNECT_TIMEOUT", "10")
                .stdin(Stdio::null()),
        )
        .map_err(|e| e.context(format!("psql on database {db} of port {}", self.port)))
    }

    /// Stops the server as an administrator would (`pg_ctl stop -m fast`: sessions ended,
    /// a checkpoint written), for outage tests; [`Postgres::start_again`] brings it back.
    pub fn stop(&self) -> anyhow::Result<()> {
        self.pg_ctl_stop("fast")
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`: no checkpoint, the next
    /// start recovers from the WAL); its data stays for [`Postgres::start_again`].
    pub fn kill(&self) -> anyhow::Result<()> {
        self.pg_ctl_stop("immediate")
    }

    /// Starts the stopped server again, on the same port and data dir. An error when another
    /// process took the port meanwhile.
    pub fn start_again(&self) -> anyhow::Result<()> {
        self.pg_ctl_start()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The server binary `program` as the user that runs the server, in the temp dir.
    fn as_user(&self, program: &str) -> Command {
        let argv = self.run_as.argv(&self.bin.join(program));
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .current_dir(self.dir.path())
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        command
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let o = &self.options;
        let mut settings = format!(
            "-k {} -h 127.0.0.1 -p {} -c max_connections={} -c {}",
            quoted_for_shell(&self.dir.path().display().to_string()),
            self.port,
            o.max_connections,
            quoted_for_shell(&format!("shared_buffers={}", o.shared_buffers)),
        );
        if !o.fsync {
            settings.push_str(" -c fsync=off");
        }
        for (name, value) in &o.settings {
            settings.push_str(" -c ");
            settings.push_str(&quoted_for_shell(&format!("{name}={value}")));
        }
        let mut pg_ctl = self.as_user("pg_ctl");
        pg_ctl
            .args(["start", "-w", "-t", WAIT_SECS, "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(self.log_path())
            .args(["-o", &settings]);
        output(&mut pg_ctl).map_err(|e| {
            e.context(format!(
                "PostgreSQL did not start on port {}; its log:\n{}",
                self.port,
                self.log()
            ))
        })?;
        Ok(())
    }

    fn pg_ctl_stop(&self, mode: &str) -> anyhow::Result<()> {
        let mut pg_ctl = self.as_user("pg_ctl");
        pg_ctl
            .args(["stop", "-w", "-t", WAIT_SECS, "-m", mode, "-D"])
            .arg(self.data());
        output(&mut pg_ctl).map(drop)
    }

    /// Starts the watchdog (see the module's documentation).
    fn watch(&self) -> anyhow::Result<()> {
        let stop = self.as_user("pg_ctl");
        let mut child = Command::new("sh")
            .args(["-c", WATCHDOG, "sh"])
            .arg(self.dir.path())
            .arg(stop.get_program())
            .args(stop.get_args())
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.data())
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("cannot start the watchdog of PostgreSQL (sh)")?;
        let stdin = child.stdin.take().context("the watchdog has no stdin")?;
        *self.watchdog.lock().unwrap_or_else(|e| e.into_inner()) = Some(Watchdog { child, stdin });
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Stopped already (or never started) is fine.
        let _ = self.pg_ctl_stop("immediate");
        let watchdog = self.watchdog.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(Watchdog {
            mut child,
            mut stdin,
        }) = watchdog.take()
        {
            let _ = stdin.write_all(b"stopped\n");
            drop(stdin);
            let _ = child.wait();
        }
        // `dir` drops after this: the cluster is removed.
    }
}

/// A database name of letters, digits and `_`, which goes into a URL unescaped.
fn check_database_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!(
            "database name {name:?}: letters, digits and _ only\nhint: the name goes into a URL unescaped"
        );
    }
    Ok(())
}

/// An SQL identifier in double quotes.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A word in single quotes for the shell `pg_ctl` runs postgres through.
fn quoted_for_shell(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// What a PostgreSQL process is, from the title it sets (`postgres: walwriter`,
/// `postgres: USER DB 127.0.0.1(port) idle`): a session of database `db` is a replica's, of
/// another this benchmark's statistics. The postmaster (and a child that has not set its
/// title yet) keeps its command line.
pub fn role(cmdline: &str, db: &str) -> String {
    let Some(title) = cmdline.strip_prefix("postgres: ") else {
        return "postmaster".into();
    };
    let mut words = title.split([' ', '\0']);
    if words.next() == Some(USER) {
        return if words.next() == Some(db) {
            "replicas' sessions".into()
        } else {
            "this benchmark's sessions".into()
        };
    }
    let known = [
        "walwriter",
        "checkpointer",
        "background writer",
        "autovacuum launcher",
        "autovacuum worker",
        "logical replication launcher",
    ];
    known
        .iter()
        .find(|k| title.starts_with(**k))
        .map_or_else(|| "other".into(), |k| (*k).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::or_skip;

    fn accepts(port: u16) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }

    /// The value, or a panic with the whole cause chain.
    fn ok<T>(result: anyhow::Result<T>) -> T {
        result.unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// The whole cause chain of an error that must come.
    fn fails<T: std::fmt::Debug>(result: anyhow::Result<T>) -> String {
        format!("{:#}", result.expect_err("an error"))
    }

    #[test]
    fn a_server_starts_stops_starts_again_and_is_removed_on_drop() {
        let Some(pg) = or_skip(Postgres::start()) else {
            return;
        };
        let port = pg.port();
        assert_eq!(
            pg.url(),
            format!("postgres://switchyard@127.0.0.1:{port}/switchyard")
        );
        assert_eq!(ok(pg.psql(DATABASE, "SELECT current_user")), USER);
        assert_eq!(ok(pg.psql(DATABASE, "SHOW fsync")), "on");
        assert_eq!(ok(pg.psql(DATABASE, "SHOW max_connections")), "200");

        let url = ok(pg.create_database("lab_outage"));
        assert_eq!(
            url,
            format!("postgres://switchyard@127.0.0.1:{port}/lab_outage")
        );
        let create = "CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 3)";
        ok(pg.psql("lab_outage", create));

        // A fast stop: nobody gets in; the data is there after the start again.
        ok(pg.stop());
        assert!(!accepts(port));
        let refused = fails(pg.psql("lab_outage", "SELECT 1"));
        assert!(refused.contains("lab_outage"), "{refused}");
        ok(pg.start_again());
        assert_eq!(pg.port(), port);
        assert_eq!(ok(pg.psql("lab_outage", "SELECT count(*) FROM t")), "3");

        // A crash: what was committed survives (recovered from the WAL).
        ok(pg.psql("lab_outage", "INSERT INTO t VALUES (4)"));
        ok(pg.kill());
        assert!(!accepts(port));
        ok(pg.start_again());
        assert_eq!(ok(pg.psql("lab_outage", "SELECT sum(n) FROM t")), "10");

        let dir = pg.dir().to_owned();
        assert!(dir.join("data/PG_VERSION").exists());
        drop(pg);
        assert!(!dir.exists(), "{} is left after drop", dir.display());
        assert!(!accepts(port), "the server still listens after drop");
    }

    #[test]
    fn databases_on_one_server_are_apart() {
        let Some(pg) = or_skip(Postgres::shared()) else {
            return;
        };
        let again = ok(Postgres::shared());
        assert!(std::ptr::eq(pg, again), "shared started a second server");
        ok(pg.create_database("lab_apart_a"));
        ok(pg.create_database("lab_apart_b"));
        ok(pg.psql("lab_apart_a", "CREATE TABLE only_here (n int)"));
        let count = "SELECT count(*) FROM only_here";
        assert_eq!(ok(pg.psql("lab_apart_a", count)), "0");
        let missing = fails(pg.psql("lab_apart_b", count));
        assert!(missing.contains("does not exist"), "{missing}");
        let twice = fails(pg.create_database("lab_apart_a"));
        assert!(twice.contains("already exists"), "{twice}");
    }

    #[test]
    fn a_bench_may_turn_fsync_off() {
        let options = Options {
            fsync: false,
            settings: vec![("synchronous_commit".into(), "off".into())],
            ..Options::default()
        };
        let Some(pg) = or_skip(Postgres::start_with(options)) else {
            return;
        };
        assert_eq!(ok(pg.psql(DATABASE, "SHOW fsync")), "off");
        assert_eq!(ok(pg.psql(DATABASE, "SHOW synchronous_commit")), "off");
        assert_eq!(ok(pg.psql(DATABASE, "SHOW shared_buffers")), "128MB");
    }

    #[test]
    fn the_watchdog_stops_the_server_and_removes_it_when_the_process_is_gone() {
        let Some(mut pg) = or_skip(Postgres::start()) else {
            return;
        };
        let (port, dir) = (pg.port(), pg.dir().to_owned());
        // What the end of this process does: the write end of the pipe closes, unannounced.
        let watchdog = pg.watchdog.get_mut().map(Option::take);
        let Ok(Some(Watchdog { mut child, stdin })) = watchdog else {
            panic!("no watchdog");
        };
        drop(stdin);
        assert!(child.wait().is_ok_and(|s| s.success()));
        assert!(!accepts(port), "the server still listens");
        assert!(!dir.exists(), "{} is left", dir.display());
    }

    #[test]
    fn a_database_name_must_go_into_a_url_unescaped() {
        for (name, ok) in [
            ("lab_1", true),
            ("Tests", true),
            ("", false),
            ("a b", false),
            ("a/b", false),
            ("a-b", false),
            ("é", false),
            ("a\"b", false),
        ] {
            assert_eq!(check_database_name(name).is_ok(), ok, "{name:?}");
        }
    }

    #[test]
    fn the_newest_version_is_compared_as_numbers() {
        let v = |list: &[&str]| -> Vec<String> { list.iter().map(|s| s.to_string()).collect() };
        assert_eq!(newest(&v(&["9.6", "15", "13"])), Some("15"));
        assert_eq!(newest(&v(&["9.6", "10"])), Some("10"));
        assert_eq!(newest(&v(&["17", "16"])), Some("17"));
        assert_eq!(newest(&[]), None);
    }

    #[test]
    fn names_and_words_are_quoted() {
        assert_eq!(quoted("switchyard"), "\"switchyard\"");
        assert_eq!(quoted("a\"b"), "\"a\"\"b\"");
        assert_eq!(quoted_for_shell("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(quoted_for_shell("it's"), r"'it'\''s'");
    }
}
