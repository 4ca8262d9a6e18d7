//! The HTTP API against a running server on a loopback port: every endpoint, role and error
//! path, TLS, the OpenAPI document in sync with the routes, no Secret value in any response.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use envdrift::api::{ApiState, OPENAPI, ROUTES, serve};
use envdrift::config::Config;
use envdrift::daemon::{Daemon, Target};
use envdrift::store::Store;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[path = "common/api.rs"]
mod common_api;
use common_api::{NoSinks, serve_api};

const READ: &str = "read-token-0123456789";
const OPERATE: &str = "operate-token-9876543210";
const SECRET_B64: &str = "cHJvZC1kZW1vLXBhc3N3b3Jk";
const SECRET: &str = "prod-demo-password";

struct Server {
    addr: SocketAddr,
    daemon: Arc<Daemon>,
    stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn start(extra: &str, tls: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    std::fs::write(dir.path().join("read.token"), READ).unwrap();
    std::fs::write(dir.path().join("operate.token"), format!("{OPERATE}\n")).unwrap();
    let mut tls_cfg = String::new();
    if tls {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        tls_cfg = "  tls: {cert_file: cert.pem, key_file: key.pem}\n".into();
    }
    let cfg_text = format!(
        "data_dir: state\nenvironments:\n  staging:\n    desired: {{type: dir, path: {d}/demo/git/staging}}\n    live: {{type: dump, path: {d}/demo/live/staging}}\n  production:\n    desired: {{type: dir, path: {d}/demo/git/production}}\n    live: {{type: dump, path: {d}/demo/live/production}}\ncomparisons:\n  - {{from: staging, to: production}}\ncompare:\n  mapping:\n    namespaces: {{shop-staging: shop-prod}}\napi:\n  tokens:\n    - {{name: ci, role: read, token_file: read.token}}\n    - {{name: oncall, role: operate, token_file: operate.token}}\n  max_body_bytes: 4096\n{tls_cfg}{extra}",
        d = demo.display()
    );
    std::fs::write(dir.path().join("envdrift.yaml"), cfg_text).unwrap();
    let srv = serve_config(dir).await;
    srv.daemon
        .scan(&Target::Environment("production".into()))
        .await
        .unwrap();
    srv
}

/// Serves the API of `dir/envdrift.yaml` (store in `dir`, no sinks) on a loopback port.
async fn serve_config(dir: tempfile::TempDir) -> Server {
    let cfg = Config::load(&dir.path().join("envdrift.yaml")).unwrap();
    let api_cfg = cfg.api.clone();
    let store = Arc::new(Store::open(&dir.path().join("state/envdrift.db")).unwrap());
    let daemon =
        Arc::new(Daemon::new(cfg, dir.path().to_path_buf(), store, Arc::new(NoSinks)).unwrap());
    let (addr, stop) = serve_api(Arc::clone(&daemon), &api_cfg, dir.path()).await;
    Server {
        addr,
        daemon,
        stop,
        _dir: dir,
    }
}

struct Resp {
    status: u16,
    headers: String,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let (status, head, body) = common_api::parse_response(&raw);
    Resp {
        status,
        headers: head,
        body,
    }
}

async fn call(
    srv: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Resp {
    let s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let r = exchange(s, method, path, token, body).await;
    assert!(
        !r.body.contains(SECRET) && !r.body.contains(SECRET_B64),
        "{path} leaks a Secret value"
    );
    assert!(
        !r.body.contains(READ) && !r.body.contains(OPERATE),
        "{path} echoes a token"
    );
    r
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let srv = start("", false).await;
    assert_eq!(
        call(&srv, "GET", "/healthz", None, None).await.json(),
        json!({"status": "ok"})
    );
    let r = call(&srv, "GET", "/readyz", None, None).await;
    assert_eq!((r.status, r.json()["ready"].clone()), (200, json!(true)));
    let _ = call(&srv, "GET", "/api/v1/drifts", Some(READ), None).await;
    let m = call(&srv, "GET", "/metrics", None, None).await;
    assert_eq!(m.status, 200);
    // Without an Accept header: the Prometheus text format (what promtool reads), every
    // counter's HELP and TYPE under its samples' `_total` name.
    assert!(
        m.headers.contains("text/plain; version=0.0.4"),
        "{}",
        m.headers
    );
    assert!(
        m.body.contains("# HELP envdrift_scans_total ") && !m.body.contains("# EOF"),
        "{}",
        m.body
    );
    // Asked for OpenMetrics (as Prometheus does): OpenMetrics.
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let om = String::from_utf8_lossy(&raw);
    assert!(
        om.contains("content-type: application/openmetrics-text") && om.contains("# EOF"),
        "{om}"
    );
    for needle in [
        "envdrift_scans_total{target=\"production\",outcome=\"ok\"} 1",
        "envdrift_open_drifts{",
        "envdrift_api_requests_total{route=\"/api/v1/drifts\",status=\"200\"}",
        "envdrift_scan_duration_seconds_bucket",
    ] {
        assert!(
            m.body.contains(needle),
            "metrics lack {needle}:\n{}",
            m.body
        );
    }
    let _ = srv.stop.send(true);
    let closed = start("  metrics_public: false\n", false).await;
    assert_eq!(
        call(&closed, "GET", "/metrics", None, None).await.status,
        401
    );
    assert_eq!(
        call(&closed, "GET", "/metrics", Some(READ), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn roles_and_auth_errors() {
    let srv = start("", false).await;
    let r = call(&srv, "GET", "/api/v1/drifts", None, None).await;
    assert_eq!(r.status, 401);
    assert!(
        r.headers.contains("www-authenticate: Bearer"),
        "{}",
        r.headers
    );
    assert_eq!(r.json()["error"], "unauthorized");
    assert_eq!(
        call(&srv, "GET", "/api/v1/drifts", Some("nope"), None)
            .await
            .status,
        401
    );
    let d = call(&srv, "GET", "/api/v1/drifts", Some(READ), None).await;
    assert_eq!(d.status, 200);
    let id = d.json()["drifts"][0]["id"].as_i64().unwrap();
    let r = call(
        &srv,
        "POST",
        &format!("/api/v1/drifts/{id}/ack"),
        Some(READ),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (403, json!("forbidden"))
    );
    let r = call(
        &srv,
        "POST",
        &format!("/api/v1/drifts/{id}/ack"),
        Some(OPERATE),
        Some("{\"note\": \"known hotfix\"}"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["drift"]["acked_by"]
            .as_str()
            .unwrap()
            .starts_with("oncall")
    );
    let h = call(
        &srv,
        "GET",
        &format!("/api/v1/drifts/{id}"),
        Some(OPERATE),
        None,
    )
    .await
    .json();
    let events: Vec<&str> = h["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["opened", "acknowledged"]);
}

#[tokio::test]
async fn drift_queries_and_their_errors() {
    let srv = start("", false).await;
    let all = call(
        &srv,
        "GET",
        "/api/v1/drifts?env=production&status=all",
        Some(READ),
        None,
    )
    .await
    .json();
    assert_eq!(all["drifts"].as_array().unwrap().len(), 6);
    let crit = call(
        &srv,
        "GET",
        "/api/v1/drifts?severity=critical",
        Some(READ),
        None,
    )
    .await
    .json();
    assert_eq!(crit["drifts"].as_array().unwrap().len(), 2);
    let rbac = call(
        &srv,
        "GET",
        "/api/v1/drifts?category=rbac",
        Some(READ),
        None,
    )
    .await
    .json();
    assert_eq!(rbac["drifts"].as_array().unwrap().len(), 1);
    let p1 = call(&srv, "GET", "/api/v1/drifts?limit=4", Some(READ), None)
        .await
        .json();
    let cursor = p1["next_cursor"].as_str().unwrap().to_string();
    let p2 = call(
        &srv,
        "GET",
        &format!("/api/v1/drifts?limit=4&cursor={cursor}"),
        Some(READ),
        None,
    )
    .await
    .json();
    assert_eq!(p2["drifts"].as_array().unwrap().len(), 2);
    assert!(p2["next_cursor"].is_null());
    for (q, param) in [
        ("severity=urgent", "severity"),
        ("category=colour", "category"),
        ("status=closed", "status"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("cursor=zzz", "cursor"),
        ("env=nowhere", "env"),
        ("bogus=1", "query"),
    ] {
        let r = call(
            &srv,
            "GET",
            &format!("/api/v1/drifts?{q}"),
            Some(READ),
            None,
        )
        .await;
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert_eq!(r.json()["param"], param, "{q}");
    }
    assert_eq!(
        call(&srv, "GET", "/api/v1/drifts/99999", Some(READ), None)
            .await
            .status,
        404
    );
    assert_eq!(
        call(&srv, "GET", "/api/v1/drifts/abc", Some(READ), None)
            .await
            .json()["param"],
        "id"
    );
    assert_eq!(
        call(&srv, "GET", "/api/v1/nothing", Some(READ), None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn silence_scans_environments_reports() {
    let srv = start("", false).await;
    let id = call(&srv, "GET", "/api/v1/drifts", Some(READ), None)
        .await
        .json()["drifts"][0]["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/drifts/{id}/silence");
    for (body, param) in [
        ("{\"until\": \"tomorrow\"}", "until"),
        ("{\"reason\": \"x\"}", "until"),
        ("not json", "body"),
        ("", "body"),
    ] {
        let r = call(&srv, "POST", &path, Some(OPERATE), Some(body)).await;
        assert_eq!(
            (r.status, r.json()["param"].clone()),
            (400, json!(param)),
            "{body}"
        );
    }
    let r = call(
        &srv,
        "POST",
        &path,
        Some(OPERATE),
        Some("{\"until\": \"2099-01-01T00:00:00Z\", \"reason\": \"planned\"}"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["drift"]["silence_reason"], "planned");
    let r = call(
        &srv,
        "POST",
        "/api/v1/scans",
        Some(OPERATE),
        Some("{\"env\": \"mars\"}"),
    )
    .await;
    assert_eq!((r.status, r.json()["param"].clone()), (400, json!("env")));
    let r = call(
        &srv,
        "POST",
        "/api/v1/scans",
        Some(OPERATE),
        Some("{\"env\": \"staging-vs-production\"}"),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let scan_id = r.json()["id"].as_i64().unwrap();
    let mut outcome = String::new();
    for _ in 0..100 {
        let s = call(
            &srv,
            "GET",
            &format!("/api/v1/scans/{scan_id}"),
            Some(READ),
            None,
        )
        .await
        .json();
        outcome = s["scan"]["outcome"].as_str().unwrap().to_string();
        if outcome != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(outcome, "ok");
    let envs = call(&srv, "GET", "/api/v1/environments", Some(READ), None)
        .await
        .json();
    let names: Vec<&str> = envs["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["production", "staging", "staging-vs-production"]);
    assert_eq!(envs["environments"][0]["open_drifts"]["critical"], 2);
    let rep = call(&srv, "GET", "/api/v1/reports/latest", Some(READ), None)
        .await
        .json();
    assert!(
        rep["title"]
            .as_str()
            .unwrap()
            .starts_with("envdrift report")
    );
    let html = call(
        &srv,
        "GET",
        "/api/v1/reports/latest?format=html",
        Some(READ),
        None,
    )
    .await;
    assert!(html.headers.contains("text/html") && html.body.contains("<table"));
    let md = call(
        &srv,
        "GET",
        "/api/v1/reports/latest?format=markdown",
        Some(READ),
        None,
    )
    .await;
    assert!(md.body.starts_with("# envdrift report"));
    assert_eq!(
        call(
            &srv,
            "GET",
            "/api/v1/reports/latest?format=pdf",
            Some(READ),
            None
        )
        .await
        .json()["param"],
        "format"
    );
    let big = format!("{{\"env\": \"{}\"}}", "x".repeat(10_000));
    assert_eq!(
        call(&srv, "POST", "/api/v1/scans", Some(OPERATE), Some(&big))
            .await
            .status,
        413
    );
}

#[tokio::test]
async fn on_demand_compare() {
    let srv = start("", false).await;
    let r = call(
        &srv,
        "GET",
        "/api/v1/compare?from=git:production&to=production",
        Some(READ),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["schema"], "envdrift.diff/v1");
    assert_eq!(v["summary"]["drifts"], 6);
    let v = call(
        &srv,
        "GET",
        "/api/v1/compare?from=staging&to=live:production&kind=Deployment",
        Some(READ),
        None,
    )
    .await
    .json();
    assert!(
        v["drifts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["resource"]["kind"] == "Deployment")
    );
    assert!(v["from"].is_object() && v["to"].is_object());
    let v = call(
        &srv,
        "GET",
        "/api/v1/compare?from=git:production&to=production&severity=critical&namespace=shop-prod",
        Some(READ),
        None,
    )
    .await
    .json();
    assert_eq!(v["drifts"].as_array().unwrap().len(), 2);
    let md = call(
        &srv,
        "GET",
        "/api/v1/compare?from=git:production&to=production&format=markdown",
        Some(READ),
        None,
    )
    .await;
    assert!(md.body.starts_with("## envdrift:"));
    let p = call(
        &srv,
        "GET",
        "/api/v1/compare?from=git:production&to=production&format=patch",
        Some(READ),
        None,
    )
    .await;
    assert!(
        p.body
            .contains("kubectl patch deployment.apps api -n shop-prod")
    );
    for (q, param) in [
        ("to=production", "from"),
        ("from=production", "to"),
        ("from=git:moon&to=production", "from"),
        ("from=staging&to=staging-vs-production", "to"),
        ("from=staging&to=production&format=xml", "format"),
        ("from=staging&to=production&severity=x", "severity"),
    ] {
        let r = call(
            &srv,
            "GET",
            &format!("/api/v1/compare?{q}"),
            Some(READ),
            None,
        )
        .await;
        assert_eq!(
            (r.status, r.json()["param"].clone()),
            (400, json!(param)),
            "{q}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let srv = start("", false).await;
    let served = call(&srv, "GET", "/api/v1/openapi.json", Some(READ), None)
        .await
        .json();
    let file: Value = serde_json::from_str(OPENAPI).unwrap();
    let keys = |v: &Value| {
        v["paths"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&served), keys(&file));
    let env_param = served["paths"]["/api/v1/drifts"]["get"]["parameters"][0].clone();
    assert_eq!(
        env_param["schema"]["enum"],
        json!(["production", "staging", "staging-vs-production"])
    );
    let from = served["paths"]["/api/v1/compare"]["get"]["parameters"][0].clone();
    assert!(
        from["schema"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("git:production"))
    );
    assert!(!served.to_string().contains("x-envdrift-enum"));
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in file["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let mut routes: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    routes.sort();
    assert_eq!(documented, routes);
}

#[tokio::test]
async fn tls_and_loopback_rules() {
    let srv = start("", true).await;
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(srv._dir.path().join("cert.pem")).unwrap();
    for c in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let r = exchange(tls, "GET", "/api/v1/environments", Some(READ), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Plain HTTP to the TLS port gets no answer.
    let plain = tokio::time::timeout(Duration::from_secs(10), async {
        let s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        exchange(s, "GET", "/healthz", None, None).await
    })
    .await
    .map(|r| r.status)
    .unwrap_or(0);
    assert_ne!(plain, 200);
    // No tokens + a non-loopback address: refused with the reason.
    let d = Arc::clone(&srv.daemon);
    let open = envdrift::config::ApiConfig::default();
    let state = Arc::new(ApiState::new(d, &open, Path::new(".")).unwrap());
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let err = serve(
        state,
        &open,
        "0.0.0.0:0".parse().unwrap(),
        Path::new("."),
        rx,
        None,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("without api.tokens"), "{err}");
}

#[tokio::test]
async fn delivery_state_is_visible() {
    let srv = start("", false).await;
    let v = call(&srv, "GET", "/api/v1/environments", Some(READ), None)
        .await
        .json();
    assert!(v["alerts"]["outbox"].is_object(), "{v}");
    assert!(v["alerts"]["recent_failures"].is_array());
}

/// Reads until the server closes the connection (or `bound` passes): true when it closed.
async fn closed_by_server(s: &mut tokio::net::TcpStream, bound: Duration) -> bool {
    let mut buf = [0u8; 512];
    tokio::time::timeout(bound, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Slowloris: connections that send part of a request's headers and then nothing are
/// closed after `header_read_timeout`, while other clients are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_cut_off() {
    let srv = start("  header_read_timeout: 500ms\n", false).await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(b"GET /api/v1/drifts HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    let r = call(&srv, "GET", "/healthz", None, None).await;
    assert_eq!(r.status, 200);
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(
            closed_by_server(s, Duration::from_secs(10)).await,
            "slow connection {i} still open"
        );
    }
    let _ = srv.stop.send(true);
}

/// A connection flood: past `max_connections`, new connections wait (in the backlog)
/// until a slot frees; idle connections are closed by the header-read timeout, so the
/// waiting client is served, and nothing uses more than the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_limited_and_idle_ones_freed() {
    let srv = start("  max_connections: 8\n  header_read_timeout: 1s\n", false).await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(tokio::net::TcpStream::connect(srv.addr).await.unwrap());
    }
    // The ninth waits for a slot: it is served once the idle ones are cut off.
    let served = tokio::time::timeout(
        Duration::from_secs(15),
        call(&srv, "GET", "/healthz", None, None),
    )
    .await
    .expect("served once a slot freed");
    assert_eq!(served.status, 200);
    // Served only after a slot freed: by now an idle connection has been closed (without
    // the limit the ninth would be served at once, a second before any is).
    let mut already = 0;
    for s in &mut idle {
        if closed_by_server(s, Duration::from_millis(100)).await {
            already += 1;
        }
    }
    assert!(
        already >= 1,
        "the ninth connection was served while 8 were open"
    );
    for (i, s) in idle.iter_mut().enumerate() {
        assert!(
            closed_by_server(s, Duration::from_secs(10)).await,
            "idle connection {i} still open"
        );
    }
    let _ = srv.stop.send(true);
}

/// A comparison whose request timed out stops (cooperative cancellation) instead of
/// computing for nobody: counted in `envdrift_api_compare_cancelled_total`. Reading the
/// sources is not cancelled (other requests wait for the same read), so requests are sent
/// until one finds the sources read and starts, then drops, a comparison.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comparison_whose_request_ended_stops() {
    let dir = tempfile::tempdir().unwrap();
    let pair = envdrift_testkit::synth::generate(&envdrift_testkit::synth::SynthOptions {
        objects: 5000,
        ..Default::default()
    });
    envdrift_testkit::synth::write_pair(&pair, dir.path()).unwrap();
    std::fs::write(
        dir.path().join("envdrift.yaml"),
        "data_dir: state\nenvironments:\n  big:\n    desired: {type: dir, path: desired}\n    live: {type: dump, path: live}\napi:\n  request_timeout: 100ms\n  compare_max_age: 1h\n",
    )
    .unwrap();
    let srv = serve_config(dir).await;
    let addr = srv.addr;
    let cancelled = || srv.daemon.metrics.compare_cancelled.get();
    let seen = tokio::time::timeout(Duration::from_secs(120), async {
        while cancelled() == 0 {
            let s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let r = exchange(
                s,
                "GET",
                "/api/v1/compare?from=git:big&to=live:big",
                None,
                None,
            )
            .await;
            assert_eq!(r.status, 503, "{}", r.body);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(seen.is_ok(), "no comparison stopped");
    assert_eq!(
        srv.daemon.metrics.compare_computed.get(),
        0,
        "none completed"
    );
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let m = exchange(s, "GET", "/metrics", None, None).await;
    assert!(
        m.body.contains("envdrift_api_compare_cancelled_total "),
        "{}",
        m.body
    );
    let _ = srv.stop.send(true);
}

/// `/readyz` is 503 while the store cannot be written (here: locked by another writer
/// beyond the busy timeout), naming why, and ready again once a scan is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_store_cannot_be_written() {
    let srv = start("", false).await;
    let db = srv._dir.path().join("state/envdrift.db");
    srv.daemon
        .store
        .set_busy_timeout(Duration::from_millis(50))
        .unwrap();
    let target = Target::Environment("production".into());
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let mut conn = rusqlite::Connection::open(&db).unwrap();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
            .unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv_timeout(Duration::from_secs(60)).ok();
        tx.commit().unwrap();
    });
    locked_rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        srv.daemon.scan(&target).await.is_err(),
        "the store is locked"
    );
    let r = call(&srv, "GET", "/readyz", None, None).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let body = r.json();
    assert_eq!(body["store"], "failed", "{body}");
    assert!(
        body["store_error"]
            .as_str()
            .unwrap_or("")
            .contains("locked"),
        "{body}"
    );
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    srv.daemon.scan(&target).await.unwrap();
    let r = call(&srv, "GET", "/readyz", None, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["store_error"], Value::Null);
    let _ = srv.stop.send(true);
}

/// Copies a directory tree (the demo's production sides, to edit them).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The compare endpoint computes once per distinct input: identical requests (also
/// concurrent ones, also after the sources were re-read) are served from cache, and one
/// changed byte in one live file is seen at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_results_come_from_cache_until_an_input_changes() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo");
    copy_tree(&demo.join("git/production"), &dir.path().join("git"));
    copy_tree(&demo.join("live/production"), &dir.path().join("live"));
    std::fs::write(dir.path().join("read.token"), READ).unwrap();
    // compare_max_age 0s: the sources are re-read for every request; only the content
    // hash can tell that nothing changed.
    std::fs::write(
        dir.path().join("envdrift.yaml"),
        "data_dir: state\nenvironments:\n  production:\n    desired: {type: dir, path: git}\n    live: {type: dump, path: live}\napi:\n  tokens:\n    - {name: ci, role: read, token_file: read.token}\n  compare_max_age: 0s\n",
    )
    .unwrap();
    let srv = serve_config(dir).await;
    let computed = || srv.daemon.metrics.compare_computed.get();
    let q = "/api/v1/compare?from=git:production&to=production";
    let first = call(&srv, "GET", q, Some(READ), None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(computed(), 1);
    let again = call(&srv, "GET", q, Some(READ), None).await;
    assert_eq!(again.body, first.body);
    assert_eq!(computed(), 1, "same content: served from cache");
    // Another filter of the same outcome: no new comparison either.
    let narrowed = call(
        &srv,
        "GET",
        &format!("{q}&kind=Deployment"),
        Some(READ),
        None,
    )
    .await;
    assert_eq!(narrowed.status, 200);
    assert_ne!(narrowed.body, first.body);
    assert_eq!(computed(), 1);

    // One byte of one live file changes: the next answer is computed from it, once, however
    // many identical requests arrive together.
    let live = srv._dir.path().join("live/deployments.yaml");
    let text = std::fs::read_to_string(&live).unwrap();
    let changed = text.replacen("api:1.4.3-hotfix", "api:1.4.4-hotfix", 1);
    assert_ne!(
        changed, text,
        "the demo's hotfix image is where the test expects it"
    );
    std::fs::write(&live, changed).unwrap();
    let requests = (0..8).map(|_| call(&srv, "GET", q, Some(READ), None));
    let answers = futures::future::join_all(requests).await;
    for a in &answers {
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body, answers[0].body);
    }
    assert!(
        answers[0].body.contains("1.4.4-hotfix"),
        "{}",
        answers[0].body
    );
    assert!(!answers[0].body.contains("1.4.3-hotfix"));
    assert_eq!(
        computed(),
        2,
        "one computation for eight identical requests"
    );
}
