//! The route table on a real listener (loopback, a temp SQLite store): every path and method
//! gets the answer `serve` gave before the router, and a Lambda function URL answers its paths
//! as `serve` does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

use super::*;
use crate::pipeline::Pipelines;
use crate::shutdown;
use crate::sources::poll::health::PollHealth;
use crate::sources::webhook::Receivers;
use crate::status::access::Access;
use crate::store::Role;

/// A server of the route table over an empty project; stops when the trigger drops.
async fn server(dir: &std::path::Path) -> (SocketAddr, shutdown::Trigger) {
    let limits = crate::http::Limits {
        max_connections: 8,
        per_peer: 8,
        read_timeout: Duration::from_secs(5),
    };
    server_with(dir, limits).await
}

/// [`server`] with `limits`.
async fn server_with(
    dir: &std::path::Path,
    limits: crate::http::Limits,
) -> (SocketAddr, shutdown::Trigger) {
    let store = Store::open(dir, Role::Serve, Arc::new(Notify::new()));
    let pipelines = Arc::new(Pipelines::default());
    let metrics = Arc::new(Metrics::default());
    let status = StatusPage::new(
        store.clone(),
        Arc::clone(&pipelines),
        Arc::clone(&metrics),
        Arc::new(PollHealth::new([])),
        None,
        Access::public(),
    );
    let app = Arc::new(App {
        intake: Intake::new(pipelines, store.clone(), Arc::clone(&metrics)),
        hooks: Hooks::new(Receivers::default(), 1024),
        metrics,
        store,
        status,
        read_timeout: Duration::from_secs(5),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("an address");
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(crate::http::serve(
        listener,
        router(app),
        limits,
        shutdown,
        Duration::from_secs(1),
    ));
    (addr, trigger)
}

/// One answer: status, content type, `Allow`, body.
#[derive(Debug)]
struct Got {
    status: u16,
    content_type: String,
    allow: Option<String>,
    body: String,
}

async fn ask(addr: SocketAddr, method: &str, path: &str) -> Got {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .expect("a request");
    let response = sender
        .send_request(request)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (status, content_type, allow) = (
        response.status().as_u16(),
        header("content-type").unwrap_or_default(),
        header("allow"),
    );
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    Got {
        status,
        content_type,
        allow,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

#[tokio::test]
async fn every_path_and_method_gets_the_answer_it_had_before_the_router() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (addr, _stop) = server(dir.path()).await;
    let endpoints = format!("{{\"error\":\"{NO_SUCH_ENDPOINT}\",\"status\":\"rejected\"}}\n");
    let use_get = "{\"error\":\"use GET\",\"status\":\"rejected\"}\n";
    let use_post = "{\"error\":\"use POST\",\"status\":\"rejected\"}\n";
    /// method, path: status, content type, `Allow`, a part of the body.
    type Case<'a> = (&'a str, &'a str, u16, &'a str, Option<&'a str>, &'a str);
    #[rustfmt::skip]
    let cases: &[Case<'_>] = &[
        ("GET", "/healthz", 200, "text/plain", None, "ok\n"),
        ("POST", "/healthz", 405, JSON, Some("GET"), use_get),
        ("HEAD", "/healthz", 405, JSON, Some("GET"), ""),
        ("GET", "/readyz", 200, "text/plain", None, "ready\n"),
        ("DELETE", "/readyz", 405, JSON, Some("GET"), use_get),
        ("GET", "/metrics", 200, crate::metrics::CONTENT_TYPE, None, "# EOF"),
        ("POST", "/metrics", 405, JSON, Some("GET"), use_get),
        ("GET", "/hooks/github", 405, JSON, Some("POST"), use_post),
        ("PUT", "/hooks/", 405, JSON, Some("POST"), use_post),
        ("POST", "/hooks/nope", 404, JSON, None, "no receiver named \\\"nope\\\""),
        ("POST", "/hooks/", 404, JSON, None, "no receiver named \\\"\\\""),
        ("POST", "/hooks/a/b", 404, JSON, None, "no receiver named \\\"a/b\\\""),
        ("POST", "/hooks/a%20b", 404, JSON, None, "no receiver named \\\"a%20b\\\""),
        ("GET", "/nope", 404, JSON, None, &endpoints),
        ("POST", "/hooks", 404, JSON, None, &endpoints),
        ("GET", "/healthz/", 404, JSON, None, &endpoints),
        ("GET", "//healthz", 404, JSON, None, &endpoints),
        ("GET", "/api/other", 404, JSON, None, &endpoints),
        ("GET", "/login/x", 404, JSON, None, &endpoints),
        ("GET", "/", 200, HTML, None, "<h1>Recent changes</h1>"),
        ("POST", "/", 405, HTML, Some("GET"), "POST / is not served"),
        ("HEAD", "/", 405, HTML, Some("GET"), ""),
        ("GET", "/changes/", 404, HTML, None, "nothing at /changes/"),
        ("POST", "/changes/abcd/x", 404, HTML, None, "nothing at /changes/abcd/x"),
        ("GET", "/changes/ab", 400, HTML, None, "too short to name a change"),
        ("GET", "/changes/abcd%2F", 404, HTML, None, "no such change"),
        ("POST", "/changes/abcd", 405, HTML, Some("GET"), "use GET"),
        ("GET", "/changes/abcd/replay", 405, HTML, Some("POST"), "use POST"),
        ("GET", "/starts/ef01/retry", 405, HTML, Some("POST"), "GET /starts/ef01/retry is not served"),
        ("GET", "/starts/ef01/drop", 405, HTML, Some("POST"), "use POST"),
        ("POST", "/starts/ef01/launch", 404, HTML, None, "nothing at /starts/ef01/launch"),
        ("GET", "/starts/", 404, HTML, None, "nothing at /starts/"),
        ("GET", "/login", 405, HTML, Some("POST"), "use POST"),
        ("GET", "/logout", 405, HTML, Some("POST"), "use POST"),
        ("POST", "/login", 403, HTML, None, "actions are off"),
        ("POST", "/starts/ef01/retry", 403, HTML, None, "actions are off"),
        ("POST", "/changes/abcd/replay", 403, HTML, None, "actions are off"),
        ("POST", "/logout", 303, "text/plain; charset=utf-8", None, ""),
        ("GET", "/api/changes", 200, JSON, None, "{\"changes\":[]}\n"),
        ("POST", "/api/changes", 405, JSON, Some("GET"), "\"hint\":\"use GET\""),
        ("GET", "/api/changes/", 404, JSON, None, "\"error\":\"nothing at /api/changes/\""),
        ("GET", "/api/changes/abcd/x", 404, JSON, None, "nothing at /api/changes/abcd/x"),
        ("GET", "/api/changes/ab", 400, JSON, None, "at least 4"),
        ("GET", "/api/changes/abcd", 404, JSON, None, "\"error\":"),
        ("GET", "/api/changes?limt=5", 400, JSON, None, "unknown parameter \\\"limt\\\""),
    ];
    for &(method, path, status, content_type, allow, body) in cases {
        let got = ask(addr, method, path).await;
        assert_eq!(got.status, status, "{method} {path}: {got:?}");
        assert_eq!(got.content_type, content_type, "{method} {path}: {got:?}");
        assert_eq!(got.allow.as_deref(), allow, "{method} {path}: {got:?}");
        assert!(got.body.contains(body), "{method} {path}: {got:?}");
        if body == endpoints || body == use_get || body == use_post {
            assert_eq!(got.body, body, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn a_function_url_answers_its_paths_as_serve_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (addr, _stop) = server(dir.path()).await;
    let paths = [
        "/healthz", "/readyz", "/hooks/x", "/hooks/", "/hooks", "/metrics", "/", "/nope",
    ];
    for path in paths {
        for method in ["GET", "POST", "PUT"] {
            let served = ask(addr, method, path).await;
            let what = format!("{method} {path}: {served:?}");
            match function_url(method, path) {
                Route::Health => assert_eq!((served.status, served.body.as_str()), (200, "ok\n")),
                Route::Ready => assert_eq!(served.status, 200, "{what}"),
                Route::Hook(name) => {
                    assert_eq!(name, &path["/hooks/".len()..]);
                    assert!(served.body.contains("no receiver named"), "{what}");
                }
                // The paths serve has beyond a function URL's: a 404 there, not here.
                Route::Refused(a) if a.status == 404 => {
                    assert_eq!(
                        a.body["error"],
                        "no such endpoint: POST /hooks/NAME, GET /healthz, /readyz"
                    );
                    let extra = ["/metrics", "/"].contains(&path);
                    assert!(extra || served.status == 404, "{what}");
                }
                Route::Refused(a) => {
                    assert_eq!(served.status, a.status, "{what}");
                    let body: serde_json::Value = serde_json::from_str(&served.body).expect("JSON");
                    assert_eq!(body, a.body, "{what}");
                }
            }
        }
    }
}

/// A connection from `from` (a loopback address of its own) to `addr`.
async fn connect_from(from: &str, addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(format!("{from}:0").parse().expect("an address"))
        .expect("bind");
    socket.connect(addr).await.expect("connect")
}

/// `GET path` on `stream`: the status, or `None` when no answer comes within `within`.
async fn get_on(
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
    path: &str,
    within: Duration,
) -> Option<u16> {
    let exchange = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let request = hyper::Request::builder()
            .uri(path)
            .header("host", addr.to_string())
            .body(Full::new(Bytes::new()))
            .ok()?;
        let response = sender.send_request(request).await.ok()?;
        Some(response.status().as_u16())
    };
    tokio::time::timeout(within, exchange).await.ok().flatten()
}

/// Which of `streams` the server keeps open: a closed one reads its end at once.
async fn still_open(streams: Vec<tokio::net::TcpStream>) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncReadExt as _;
    let mut checks = tokio::task::JoinSet::new();
    for mut stream in streams {
        checks.spawn(async move {
            let mut byte = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(1500), stream.read(&mut byte)).await {
                Err(_) => Some(stream),
                Ok(_) => None,
            }
        });
    }
    checks.join_all().await.into_iter().flatten().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_its_share_and_health_answers_when_every_slot_is_held() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = crate::http::Limits {
        max_connections: 8,
        per_peer: 4,
        read_timeout: Duration::from_secs(60),
    };
    let (addr, _stop) = server_with(dir.path(), limits).await;
    // One address opens 20 idle connections, as a client reconnecting as fast as it is cut
    // would: it keeps 4.
    let mut greedy = Vec::new();
    for _ in 0..20 {
        greedy.push(connect_from("127.0.0.2", addr).await);
    }
    let greedy = still_open(greedy).await;
    assert_eq!(greedy.len(), 4, "one address keeps its share");
    // Another takes the other 4: every slot is held by an idle connection.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect_from("127.0.0.3", addr).await);
    }
    let mut idle = still_open(idle).await;
    assert_eq!(idle.len(), 4);
    // Health, readiness and metrics are answered at once all the same.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let stream = connect_from("127.0.0.4", addr).await;
        let got = get_on(stream, addr, path, Duration::from_secs(3)).await;
        assert_eq!(got, Some(200), "{path} while every slot is held");
    }
    // Anything else waits for a slot, and is answered once one frees.
    let stream = connect_from("127.0.0.4", addr).await;
    let waiting = tokio::spawn(get_on(stream, addr, "/nope", Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "answered without a slot");
    drop(idle.pop());
    let got = waiting.await.expect("the request");
    assert_eq!(got, Some(404), "answered once a slot freed");
    drop(greedy);
}
