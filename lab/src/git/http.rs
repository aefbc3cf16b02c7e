//! Smart HTTP: `git http-backend` (CGI) behind a small hyper server with Basic auth, on a
//! runtime of its own.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

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

/// `git http-backend` behind Basic auth over http://, on a runtime of its own.
#[derive(Debug)]
pub struct GitHttp {
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
    /// A [`Missing`](crate::Missing) error when `git http-backend` is not installed.
    pub fn start(base: &Path, user: &str, password: &str) -> anyhow::Result<GitHttp> {
        super::git_program(
            "git-http-backend",
            "install git (Debian: apt-get install git; Fedora: dnf install git-core)",
        )?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
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
        Ok(GitHttp {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The http:// URL of repository `name` under the base directory.
    pub fn url(&self, name: &str) -> String {
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
