//! Real git servers on loopback: `git daemon` (git://) and `git http-backend` behind a small
//! hyper server with Basic auth (http://), and repositories made with the git CLI.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt as _;

/// How long a server may take to start accepting connections.
const START_WITHIN: Duration = Duration::from_secs(10);

/// `git` run in `dir` without user or system configuration, with a fixed identity.
fn git_command(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .args(["-c", "init.defaultBranch=main"]);
    command
}

/// Runs `git ARGS` in `dir` with `stdin` as input; its trimmed output, or a panic with its
/// error output.
fn git_with_input(dir: &Path, args: &[&str], stdin: &str) -> String {
    let mut child = git_command(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn git");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write to git");
    let output = child.wait_with_output().expect("wait for git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Runs `git ARGS` in `dir`; its trimmed output.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    git_with_input(dir, args, "")
}

/// An empty bare repository `BASE/NAME`, HEAD at `main`.
pub(crate) fn bare(base: &Path, name: &str) -> PathBuf {
    git(base, &["init", "--quiet", "--bare", name]);
    base.join(name)
}

/// Creates `count` branches `refs/heads/bulk/NNNN` in `repo`, all at `sha`, in one command.
pub(crate) fn many_branches(repo: &Path, count: usize, sha: &str) {
    let commands: String = (0..count)
        .map(|i| format!("create refs/heads/bulk/{i:04} {sha}\n"))
        .collect();
    git_with_input(repo, &["update-ref", "--stdin"], &commands);
}

/// A working repository in a temp dir, on branch `main`.
#[derive(Debug)]
pub(crate) struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    /// An empty repository.
    pub(crate) fn new() -> Work {
        let dir = tempfile::tempdir().expect("temp dir");
        git(dir.path(), &["init", "--quiet"]);
        Work { dir }
    }

    /// The working tree.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `git ARGS` here; its trimmed output.
    pub(crate) fn git(&self, args: &[&str]) -> String {
        git(self.dir.path(), args)
    }

    /// Writes (`Some(text)`) or deletes (`None`) files, commits everything; the new commit.
    pub(crate) fn commit(&self, changes: &[(&str, Option<&str>)], message: &str) -> String {
        for (path, text) in changes {
            let path = self.dir.path().join(path);
            match text {
                Some(text) => {
                    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                    std::fs::write(path, text).expect("write file");
                }
                None => std::fs::remove_file(path).expect("remove file"),
            }
        }
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Starts branch `name` at `at` (a commit or ref) and checks it out.
    pub(crate) fn branch(&self, name: &str, at: &str) {
        self.git(&["checkout", "--quiet", "-b", name, at]);
    }

    /// Starts branch `name` with no history and no files, and checks it out.
    pub(crate) fn orphan(&self, name: &str) {
        self.git(&["checkout", "--quiet", "--orphan", name]);
        self.git(&["rm", "-r", "--quiet", "--force", "--ignore-unmatch", "."]);
    }

    /// Tags `at`: annotated with `message` when given, else lightweight. The tag's sha (the
    /// tag object's when annotated).
    pub(crate) fn tag(&self, name: &str, at: &str, message: Option<&str>) -> String {
        match message {
            Some(message) => self.git(&["tag", "-a", name, "-m", message, at]),
            None => self.git(&["tag", name, at]),
        };
        self.git(&["rev-parse", &format!("refs/tags/{name}")])
    }

    /// Pushes refspecs (`main`, `+main` to force, `:refs/tags/v1` to delete) to `to`.
    pub(crate) fn push(&self, to: &Path, refspecs: &[&str]) {
        let to = to.display().to_string();
        let mut args = vec!["push", "--quiet", to.as_str()];
        args.extend_from_slice(refspecs);
        self.git(&args);
    }

    /// Moves the checked-out branch back to `to`, as before a forced push.
    pub(crate) fn reset_hard(&self, to: &str) {
        self.git(&["reset", "--quiet", "--hard", to]);
    }
}

/// Waits until something accepts connections on `addr`, or `alive` says the server died.
fn await_accepting(addr: SocketAddr, mut alive: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + START_WITHIN;
    while alive() {
        if TcpStream::connect(addr).is_ok() {
            return true;
        }
        assert!(
            Instant::now() < deadline,
            "nothing accepted connections on {addr} within {START_WITHIN:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// `git daemon` serving every repository under a base directory over git://.
#[derive(Debug)]
pub(crate) struct GitDaemon {
    base: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl GitDaemon {
    /// Starts a daemon on a free loopback port and waits until it accepts connections.
    pub(crate) fn start(base: &Path) -> GitDaemon {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            if let Some(child) = spawn_daemon(base, port) {
                return GitDaemon {
                    base: base.to_path_buf(),
                    port,
                    child: Some(child),
                };
            }
            // Someone took the port in between: try another.
        }
        panic!("git daemon did not start on any of five free ports");
    }

    /// Starts the stopped daemon again on the same port (a server coming back).
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "the daemon is running");
        let deadline = Instant::now() + START_WITHIN;
        while self.child.is_none() {
            self.child = spawn_daemon(&self.base, self.port);
            assert!(
                Instant::now() < deadline,
                "git daemon did not restart on port {}",
                self.port
            );
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The git:// URL of repository `name` under the base directory.
    pub(crate) fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }

    /// Kills the daemon and the children it forked; returns once connections are refused.
    pub(crate) fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            kill_group(child);
            // A child it forked may hold the listening socket a moment longer.
            let deadline = Instant::now() + START_WITHIN;
            while TcpStream::connect(self.addr()).is_ok() {
                assert!(
                    Instant::now() < deadline,
                    "git daemon still accepts connections"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill_group(child);
        }
    }
}

/// Runs `git daemon` for `base` on `port`; `None` when it did not come up there.
fn spawn_daemon(base: &Path, port: u16) -> Option<Child> {
    let mut child = git_command(base)
        .args([
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--max-connections=64",
        ])
        .arg(format!("--base-path={}", base.display()))
        .args(["--listen=127.0.0.1", &format!("--port={port}")])
        .args(["--enable=receive-pack"])
        .arg(base)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so stopping it also ends the children it forks.
        .process_group(0)
        .spawn()
        .expect("spawn git daemon");
    let alive = || child.try_wait().expect("daemon status").is_none();
    if await_accepting(SocketAddr::from(([127, 0, 0, 1], port)), alive) {
        Some(child)
    } else {
        kill_group(child);
        None
    }
}

/// Kills the process group `child` leads and reaps `child`.
fn kill_group(mut child: Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = child.wait();
}

/// `git http-backend` behind Basic auth over http://, on a runtime of its own.
#[derive(Debug)]
pub(crate) struct GitHttp {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the http server answers with.
#[derive(Debug)]
struct Backend {
    root: PathBuf,
    user: String,
    authorization: String,
}

impl GitHttp {
    /// Starts serving every repository under `base` to `user` with `password`.
    pub(crate) fn start(base: &Path, user: &str, password: &str) -> GitHttp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let backend = Arc::new(Backend {
            root: base.to_owned(),
            user: user.to_owned(),
            authorization: format!("Basic {}", B64.encode(format!("{user}:{password}"))),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(backend.serve(listener, stopped));
        });
        GitHttp {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The http:// URL of repository `name` under the base directory.
    pub(crate) fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("http server thread");
        }
    }
}

impl Backend {
    async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut stopped: tokio::sync::oneshot::Receiver<()>,
    ) {
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        loop {
            let (stream, _) = tokio::select! {
                _ = &mut stopped => return,
                accepted = listener.accept() => accepted.expect("accept"),
            };
            let backend = Arc::clone(&self);
            tokio::spawn(async move {
                let service = service_fn(|request| Arc::clone(&backend).answer(request));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    /// 401 without the right credentials, else what `git http-backend` answers.
    async fn answer(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let given = request.headers().get(AUTHORIZATION);
        if given.is_none_or(|value| value.as_bytes() != self.authorization.as_bytes()) {
            let refusal = Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(WWW_AUTHENTICATE, "Basic realm=\"git\"")
                .body(Full::default())
                .expect("401 response");
            return Ok(refusal);
        }
        let (parts, body) = request.into_parts();
        let body = body.collect().await.expect("request body").to_bytes();
        let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let mut command = tokio::process::Command::new("git");
        command
            .arg("http-backend")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_PROJECT_ROOT", &self.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("REQUEST_METHOD", parts.method.as_str())
            .env("PATH_INFO", parts.uri.path())
            .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
            .env("CONTENT_TYPE", header(CONTENT_TYPE.as_str()).unwrap_or(""))
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("REMOTE_USER", &self.user)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(encoding) = header(CONTENT_ENCODING.as_str()) {
            command.env("HTTP_CONTENT_ENCODING", encoding);
        }
        if let Some(protocol) = header("git-protocol") {
            command.env("GIT_PROTOCOL", protocol);
        }
        let mut child = command.spawn().expect("spawn git http-backend");
        let mut stdin = child.stdin.take().expect("stdin");
        // Write the body while reading the answer: either may fill a pipe. A backend that
        // refuses the request may not read it; its answer says why.
        let write = async move {
            let _ = stdin.write_all(&body).await;
        };
        let ((), output) = tokio::join!(write, child.wait_with_output());
        Ok(cgi_response(
            &output.expect("git http-backend output").stdout,
        ))
    }
}

/// A CGI answer (header lines incl. `Status:`, a blank line, the body) as an HTTP response.
fn cgi_response(mut output: &[u8]) -> Response<Full<Bytes>> {
    let mut response = Response::builder();
    loop {
        let end = output
            .iter()
            .position(|&b| b == b'\n')
            .expect("CGI header line");
        let line = std::str::from_utf8(&output[..end]).expect("CGI header text");
        output = &output[end + 1..];
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("CGI header `name: value`");
        let value = value.trim();
        response = if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().expect("status code");
            response.status(code.parse::<u16>().expect("numeric status"))
        } else {
            response.header(name, value)
        };
    }
    response
        .body(Full::new(Bytes::copy_from_slice(output)))
        .expect("CGI response")
}

/// OpenSSH's `sshd` on a loopback port, letting in the current user with one key; git runs
/// over it as over any ssh server (`git-upload-pack '/path'`).
#[derive(Debug)]
pub(crate) struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    user: String,
    child: Option<Child>,
}

impl Sshd {
    /// Starts `sshd` (Debian's openssh-server) with a fresh host key and client key. `None`
    /// when sshd is not installed, which only a plain `cargo test` tolerates: under
    /// `.ci/test` (`SWITCHYARD_TEST_STRICT=1`) that fails the test.
    pub(crate) fn start() -> Option<Sshd> {
        if !Path::new("/usr/sbin/sshd").exists() {
            assert!(
                std::env::var_os("SWITCHYARD_TEST_STRICT").is_none(),
                "/usr/sbin/sshd is missing: .ci/test installs openssh-server"
            );
            eprintln!(
                "skipped: /usr/sbin/sshd is missing (install openssh-server, or run .ci/test, which does)"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let keygen = |args: &[&str]| {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-N", ""])
                .args(args)
                .status()
                .expect("ssh-keygen");
            assert!(status.success(), "ssh-keygen {args:?}");
        };
        let host = d.join("host_ed25519");
        keygen(&["-t", "ed25519", "-f", host.to_str().expect("utf-8")]);
        for name in ["client", "stranger"] {
            // PEM RSA keys: the format every libssh2 backend reads from memory.
            let path = d.join(name);
            keygen(&[
                "-t",
                "rsa",
                "-b",
                "2048",
                "-m",
                "PEM",
                "-f",
                path.to_str().expect("utf-8"),
            ]);
        }
        std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).expect("authorized keys");
        // sshd needs its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let user =
            String::from_utf8_lossy(&Command::new("id").arg("-un").output().expect("id").stdout)
                .trim()
                .to_owned();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {pid}\n",
                host = host.display(),
                keys = d.join("authorized_keys").display(),
                pid = d.join("sshd.pid").display(),
            );
            std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(d.join("sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("spawn /usr/sbin/sshd (Debian's openssh-server)");
            let alive = || child.try_wait().expect("sshd status").is_none();
            if await_accepting(SocketAddr::from(([127, 0, 0, 1], port)), alive) {
                return Some(Sshd {
                    dir,
                    port,
                    user,
                    child: Some(child),
                });
            }
            kill_group(child);
        }
        panic!("sshd did not start on any of five free ports");
    }

    /// The ssh:// URL of a repository at an absolute path.
    pub(crate) fn url(&self, path: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            path.display()
        )
    }

    /// The private key the server lets in (`client`) or one it does not (`stranger`).
    pub(crate) fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A known_hosts line trusting this server's host key.
    pub(crate) fn known_hosts(&self) -> String {
        let public =
            std::fs::read_to_string(self.dir.path().join("host_ed25519.pub")).expect("host key");
        let mut fields = public.split_whitespace();
        let (kind, key) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        format!("[127.0.0.1]:{} {kind} {key}\n", self.port)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill_group(child);
        }
    }
}
