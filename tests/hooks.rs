//! Desired-side changes in watch mode (issue 15), end to end: a real Git repository (a bare
//! remote that commits are pushed to with the real `git`), the daemon watching the
//! Kubernetes API test server, its API served on loopback; a push is announced with each
//! provider's webhook (GitHub, GitLab, Gitea: their header schemes and payload shapes) and
//! its drift is alerted although `desired_interval` and `interval` are one hour. A `dir`
//! desired side is watched with inotify: an edit is alerted likewise. Every wait is on an
//! event (a notice, a scan in the store) with a bound, never a fixed sleep.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use envdrift::alert::DeliveryError;
use envdrift::alert::notice::{Notice, NoticeKind};
use envdrift::config::Config;
use envdrift::daemon::{Daemon, Deliver};
use envdrift::store::{ScanOutcome, Store};
use envdrift_testkit::apiserver::ApiServer;
use envdrift_testkit::kubectl::require_kubectl;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "common/api.rs"]
mod common_api;

const SECRET: &str = "whsec-0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// Everything logged (debug and above) by every thread of this test binary.
fn logs() -> String {
    static BUF: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Buf(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    });
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

struct Recorder(Mutex<mpsc::Sender<Notice>>);

impl Deliver for Recorder {
    fn sinks(&self) -> Vec<String> {
        vec!["recorder".into()]
    }
    fn route(&self, _: &str, n: &Notice) -> Option<Notice> {
        Some(n.clone())
    }
    fn deliver<'a>(
        &'a self,
        _: &'a str,
        n: &'a Notice,
    ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>> {
        Box::pin(async move {
            let _ = self.0.lock().unwrap().send(n.clone());
            Ok(())
        })
    }
}

#[path = "common/git.rs"]
mod git_cmd;
use git_cmd::git;

fn fixture_text() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/realistic/desired.yaml"),
    )
    .unwrap()
}

fn with_image(tag: &str) -> String {
    let t = fixture_text();
    assert!(t.contains("registry.example.com/shop/web:2.3.1"));
    t.replace(
        "registry.example.com/shop/web:2.3.1",
        &format!("registry.example.com/shop/web:{tag}"),
    )
}

struct Fixture {
    _server: ApiServer,
    daemon: Arc<Daemon>,
    notices: mpsc::Receiver<Notice>,
    stop: tokio::sync::watch::Sender<bool>,
    _api_stop: tokio::sync::watch::Sender<bool>,
    api: std::net::SocketAddr,
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

/// The test server holding the realistic fixture (namespace `shop`), the daemon with the
/// environments of `envs` (YAML under `environments:`, `{kubeconfig}` and `{dir}` filled
/// in) and `api` (YAML under `api:`), and its API. `None` without kubectl (outside CI).
fn start(dir: tempfile::TempDir, envs: &str, api: &str) -> Option<Fixture> {
    require_kubectl()?;
    let server = ApiServer::start();
    let parsed = envdrift::source::manifest::parse_manifest_text(&fixture_text(), false);
    for o in parsed.objects {
        let mut v = o.value;
        if let Some(m) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.entry("namespace").or_insert_with(|| "shop".into());
        }
        server.insert(v, "kubectl-client-side-apply").unwrap();
    }
    std::fs::write(dir.path().join("kubeconfig"), server.kubeconfig("prod")).unwrap();
    let text = format!(
        "data_dir: state\nenvironments:\n{}\napi:\n{api}\n",
        envs.replace("{dir}", &dir.path().display().to_string())
    );
    std::fs::write(dir.path().join("envdrift.yaml"), text).unwrap();
    let cfg = Config::load(&dir.path().join("envdrift.yaml")).unwrap();
    let api_cfg = cfg.api.clone();
    let store = Arc::new(Store::open(&dir.path().join("state/envdrift.db")).unwrap());
    let (tx, notices) = mpsc::channel();
    let rec = Arc::new(Recorder(Mutex::new(tx)));
    let daemon = Arc::new(Daemon::new(cfg, dir.path().to_path_buf(), store, rec).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    rt.spawn(Arc::clone(&daemon).run(stop_rx));
    let (api, api_stop) = rt.block_on(common_api::serve_api(
        Arc::clone(&daemon),
        &api_cfg,
        dir.path(),
    ));
    Some(Fixture {
        _server: server,
        daemon,
        notices,
        stop,
        _api_stop: api_stop,
        api,
        rt,
        dir,
    })
}

impl Fixture {
    /// Posts a webhook; returns the status and the JSON body (`Null` when not JSON).
    fn post(&self, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
        let mut req = format!(
            "POST /api/v1/hooks/git HTTP/1.1\r\nHost: envdrift\r\nContent-Type: application/json\r\nUser-Agent: GitHub-Hookshot/0f1e2d3\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut raw = req.into_bytes();
        raw.extend_from_slice(body);
        let addr = self.api;
        let resp = self.rt.block_on(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(&raw).await.unwrap();
            let mut out = Vec::new();
            tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
                .await
                .expect("an answer within 20 s")
                .unwrap();
            out
        });
        let (status, _, body) = common_api::parse_response(&resp);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// The next notice of `production`, within 30 s.
    fn next(&self) -> Notice {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let n = self
                .notices
                .recv_timeout(left)
                .expect("a notice of production within 30 s");
            if n.env == "production" {
                return n;
            }
        }
    }

    /// Waits (bounded) until `env` has a finished scan accepted by `ok`; returns it.
    fn wait_scan(
        &self,
        env: &str,
        ok: impl Fn(&envdrift::store::ScanRecord) -> bool,
    ) -> envdrift::store::ScanRecord {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let scans = self.daemon.store.scans(Some(env), 50).unwrap();
            if let Some(s) = scans
                .into_iter()
                .find(|s| s.outcome != ScanOutcome::Running && ok(s))
            {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "no such scan of {env} within 60 s"
            );
            // Polling the store (there is no notification of a recorded scan).
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn scan_count(&self, env: &str) -> usize {
        self.daemon.store.scans(Some(env), 1000).unwrap().len()
    }

    fn metrics(&self) -> String {
        self.daemon.metrics.encode_prometheus_text()
    }

    fn stop(self) {
        let _ = self.stop.send(true);
        self.rt.shutdown_timeout(Duration::from_secs(10));
    }
}

fn image_fields(n: &Notice) -> Vec<(String, String)> {
    n.drifts
        .iter()
        .flat_map(|d| d.changes.iter())
        .filter(|c| c.field.ends_with(".image"))
        .map(|c| (c.field.clone(), c.desired.clone()))
        .collect()
}

fn hmac_hex(body: &[u8]) -> String {
    envdrift::api::hooks::hmac_hex(SECRET.as_bytes(), body)
}

/// GitHub's push payload (shape of docs.github.com "Webhook events and payloads: push"),
/// for the bare repository at `url`.
fn github_push(url: &str, before: &str, after: &str) -> Vec<u8> {
    json!({
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "created": false,
        "deleted": false,
        "forced": false,
        "base_ref": null,
        "compare": format!("https://github.com/acme/shop/compare/{}...{}", &before[..12], &after[..12]),
        "commits": [{
            "id": after,
            "tree_id": "0123456789abcdef0123456789abcdef01234567",
            "distinct": true,
            "message": "web 9.9.9",
            "timestamp": "2026-12-04T21:00:00Z",
            "url": format!("https://github.com/acme/shop/commit/{after}"),
            "author": {"name": "t", "email": "t@example.com", "username": "t"},
            "committer": {"name": "t", "email": "t@example.com", "username": "t"},
            "added": [], "removed": [], "modified": ["shop/desired.yaml"]
        }],
        "head_commit": {"id": after, "message": "web 9.9.9", "modified": ["shop/desired.yaml"]},
        "repository": {
            "id": 123456789,
            "node_id": "R_kgDOAbCdEf",
            "name": "shop",
            "full_name": "acme/shop",
            "private": true,
            "owner": {"name": "acme", "login": "acme", "id": 42, "type": "Organization"},
            "html_url": "https://github.com/acme/shop",
            "url": "https://api.github.com/repos/acme/shop",
            "git_url": "git://github.com/acme/shop.git",
            "ssh_url": "git@github.com:acme/shop.git",
            "clone_url": url,
            "default_branch": "main",
            "master_branch": "main"
        },
        "pusher": {"name": "t", "email": "t@example.com"},
        "organization": {"login": "acme", "id": 42},
        "sender": {"login": "t", "id": 7, "type": "User"}
    })
    .to_string()
    .into_bytes()
}

/// GitLab's push payload ("Webhook events: Push events"), for `url`.
fn gitlab_push(url: &str, before: &str, after: &str) -> Vec<u8> {
    json!({
        "object_kind": "push",
        "event_name": "push",
        "before": before,
        "after": after,
        "ref": "refs/heads/main",
        "ref_protected": true,
        "checkout_sha": after,
        "user_id": 4,
        "user_name": "T",
        "user_username": "t",
        "user_email": "",
        "project_id": 15,
        "project": {
            "id": 15,
            "name": "shop",
            "description": "",
            "web_url": "https://gitlab.example.com/acme/shop",
            "git_ssh_url": "git@gitlab.example.com:acme/shop.git",
            "git_http_url": url,
            "namespace": "acme",
            "visibility_level": 0,
            "path_with_namespace": "acme/shop",
            "default_branch": "main",
            "homepage": "https://gitlab.example.com/acme/shop",
            "url": "git@gitlab.example.com:acme/shop.git",
            "ssh_url": "git@gitlab.example.com:acme/shop.git",
            "http_url": url
        },
        "commits": [{
            "id": after,
            "message": "web 9.9.10",
            "title": "web 9.9.10",
            "timestamp": "2026-12-04T21:05:00+00:00",
            "url": format!("https://gitlab.example.com/acme/shop/-/commit/{after}"),
            "author": {"name": "T", "email": "t@example.com"},
            "added": [], "modified": ["shop/desired.yaml"], "removed": []
        }],
        "total_commits_count": 1,
        "push_options": {},
        "repository": {
            "name": "shop",
            "url": "git@gitlab.example.com:acme/shop.git",
            "description": "",
            "homepage": "https://gitlab.example.com/acme/shop",
            "git_http_url": url,
            "git_ssh_url": "git@gitlab.example.com:acme/shop.git",
            "visibility_level": 0
        }
    })
    .to_string()
    .into_bytes()
}

/// Gitea's push payload (docs.gitea.com "Webhooks": push event), for `url`.
fn gitea_push(url: &str, before: &str, after: &str) -> Vec<u8> {
    json!({
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "compare_url": format!("https://gitea.example.com/acme/shop/compare/{before}...{after}"),
        "commits": [{
            "id": after,
            "message": "web back to 2.3.1\n",
            "url": format!("https://gitea.example.com/acme/shop/commit/{after}"),
            "author": {"name": "t", "email": "t@example.com", "username": "t"},
            "committer": {"name": "t", "email": "t@example.com", "username": "t"},
            "verification": null,
            "timestamp": "2026-12-04T21:10:00Z",
            "added": [], "removed": [], "modified": ["shop/desired.yaml"]
        }],
        "total_commits": 1,
        "head_commit": {"id": after},
        "repository": {
            "id": 1,
            "owner": {"id": 1, "login": "acme", "full_name": "", "email": "acme@example.com", "username": "acme"},
            "name": "shop",
            "full_name": "acme/shop",
            "description": "",
            "private": false,
            "fork": false,
            "html_url": "https://gitea.example.com/acme/shop",
            "ssh_url": "git@gitea.example.com:acme/shop.git",
            "clone_url": url,
            "website": "",
            "default_branch": "main"
        },
        "pusher": {"id": 1, "login": "t", "username": "t"},
        "sender": {"id": 1, "login": "t", "username": "t"}
    })
    .to_string()
    .into_bytes()
}

struct Repo {
    bare: PathBuf,
    work: PathBuf,
}

impl Repo {
    fn new(root: &Path) -> Repo {
        let bare = root.join("remote/shop.git");
        let work = root.join("work");
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "-q", "--bare", "-b", "main"]);
        std::fs::create_dir_all(work.join("shop")).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        let r = Repo { bare, work };
        r.commit(&fixture_text(), "initial");
        r
    }

    /// Commits `desired` as `shop/desired.yaml` and pushes it; returns the commit.
    fn commit(&self, desired: &str, msg: &str) -> String {
        std::fs::write(self.work.join("shop/desired.yaml"), desired).unwrap();
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", msg]);
        git(&self.work, &["push", "-q", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// The URL the providers' payloads name: `file://` where the config says a path.
    fn url(&self) -> String {
        format!("file://{}/", self.bare.display())
    }
}

#[test]
fn pushes_announced_by_each_provider_are_alerted_without_waiting_for_the_interval() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new(dir.path());
    std::fs::write(dir.path().join("hook.secret"), format!("{SECRET}\n")).unwrap();
    let envs = format!(
        "  production:\n    desired: {{type: git, repo: {bare}, ref: main, path: shop}}\n    live: {{type: cluster, kubeconfig: kubeconfig, context: prod, namespaces: [shop]}}\n    desired_interval: 1h\n    interval: 1h\n  staging:\n    desired: {{type: git, repo: {bare}, ref: main, path: shop}}\n    live: {{type: cluster, kubeconfig: kubeconfig, context: prod, namespaces: [shop], watch: false}}\n    interval: 1h\n  other:\n    desired: {{type: git, repo: {bare}, ref: release, path: shop}}\n    live: {{type: cluster, kubeconfig: kubeconfig, context: prod, namespaces: [shop], watch: false}}\n    interval: 1h\n",
        bare = repo.bare.display()
    );
    let Some(f) = start(dir, &envs, "  hooks:\n    git: {secret_file: hook.secret}") else {
        return;
    };
    let first = git(&repo.work, &["rev-parse", "HEAD"]);
    // The first full evaluation of the watched environment: nothing drifts.
    let s = f.wait_scan("production", |s| s.outcome == ScanOutcome::Ok);
    assert_eq!((s.drifts, s.revision.as_deref()), (0, Some(first.as_str())));

    // A GitHub ping (sent when the webhook is created) is answered 200.
    let ping = json!({"zen": "Keep it logically awesome.", "hook_id": 1, "hook": {"type": "Organization", "events": ["push"]}}).to_string();
    let (st, body) = f.post(
        &[
            ("X-GitHub-Event", "ping".into()),
            (
                "X-GitHub-Delivery",
                "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
            ),
            (
                "X-Hub-Signature-256",
                format!("sha256={}", hmac_hex(ping.as_bytes())),
            ),
        ],
        ping.as_bytes(),
    );
    assert_eq!((st, body["event"].as_str()), (200, Some("ping")), "{body}");

    // A commit is pushed; a webhook with a wrong signature is refused and triggers nothing
    // (no scan of the interval-scanned environment is queued; the handler queues before
    // answering, so this is not a race).
    let second = repo.commit(&with_image("9.9.9"), "web 9.9.9");
    let payload = github_push(&repo.url(), &first, &second);
    let staging_scans = f.scan_count("staging");
    let forged = envdrift::api::hooks::hmac_hex(b"not the secret", &payload);
    let valid_sig = hmac_hex(&payload);
    for sig in [
        format!("sha256={forged}"),
        hmac_hex(&payload),
        String::new(),
    ] {
        let (st, body) = f.post(
            &[
                ("X-GitHub-Event", "push".into()),
                ("X-Hub-Signature-256", sig.clone()),
            ],
            &payload,
        );
        assert_eq!(st, 401, "{sig}: {body}");
        assert!(!body.to_string().contains(SECRET));
        if !sig.is_empty() {
            assert!(!body.to_string().contains(&sig));
        }
    }
    let (st, _) = f.post(&[("X-GitHub-Event", "push".into())], &payload);
    assert_eq!(st, 401);
    assert_eq!(f.scan_count("staging"), staging_scans);
    while let Ok(n) = f.notices.try_recv() {
        assert_ne!(n.env, "production", "nothing happened: {n:?}");
    }

    // GitHub, signed: the watched environment fetches and re-renders at once, the
    // interval-scanned one is scanned; the environment on another branch is not touched.
    let t0 = Instant::now();
    let (st, body) = f.post(
        &[
            ("X-GitHub-Event", "push".into()),
            (
                "X-GitHub-Delivery",
                "a1b2c3d4-0000-11ef-8000-000000000001".into(),
            ),
            (
                "X-Hub-Signature-256",
                format!("sha256={}", hmac_hex(&payload)),
            ),
        ],
        &payload,
    );
    assert_eq!(st, 202, "{body}");
    let envs: Vec<&str> = body["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["environment"].as_str().unwrap())
        .collect();
    assert_eq!(envs, ["production", "staging"], "{body}");
    assert_eq!(body["environments"][0]["how"], "watch");
    assert_eq!(body["environments"][1]["how"], "scan");
    let staging_id = body["environments"][1]["scan_id"].as_i64().unwrap();
    let n = f.next();
    assert_eq!(n.kind, NoticeKind::Drift, "{n:?}");
    let images = image_fields(&n);
    assert_eq!(images.len(), 1, "{n:?}");
    assert!(images[0].1.contains("9.9.9"), "{images:?}");
    // Far below the hour of desired_interval (generous for a shared 2-core machine).
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    let s = f.wait_scan("staging", |s| s.id == staging_id);
    assert_eq!(s.revision.as_deref(), Some(second.as_str()));
    assert!(s.drifts >= 1, "{s:?}");
    assert!(
        f.daemon
            .store
            .scans(Some("other"), 10)
            .unwrap()
            .iter()
            .all(|s| s.revision.as_deref() != Some(second.as_str()))
    );

    // GitLab: the token header.
    let third = repo.commit(&with_image("9.9.10"), "web 9.9.10");
    let payload = gitlab_push(&repo.url(), &second, &third);
    let (st, _) = f.post(
        &[
            ("X-Gitlab-Event", "Push Hook".into()),
            ("X-Gitlab-Token", "whsec-wrong".into()),
        ],
        &payload,
    );
    assert_eq!(st, 401);
    let (st, body) = f.post(
        &[
            ("X-Gitlab-Event", "Push Hook".into()),
            ("X-Gitlab-Instance", "https://gitlab.example.com".into()),
            (
                "X-Gitlab-Event-UUID",
                "13792a34-cac6-4fda-95a8-c58e00a3954e".into(),
            ),
            ("X-Gitlab-Token", SECRET.into()),
        ],
        &payload,
    );
    assert_eq!(st, 202, "{body}");
    let n = f.next();
    assert_eq!(n.kind, NoticeKind::Drift, "{n:?}");
    assert!(n.title.contains("changed"), "{}", n.title);
    assert!(image_fields(&n)[0].1.contains("9.9.10"), "{n:?}");

    // Gitea (which also sends GitHub's and Gogs' headers): back to the live image resolves.
    let fourth = repo.commit(&fixture_text(), "web back to 2.3.1");
    let payload = gitea_push(&repo.url(), &third, &fourth);
    let (st, _) = f.post(
        &[
            ("X-Gitea-Event", "push".into()),
            ("X-GitHub-Event", "push".into()),
            ("X-Gogs-Event", "push".into()),
            ("X-Gitea-Signature", "00".repeat(32)),
        ],
        &payload,
    );
    assert_eq!(st, 401);
    let sig = hmac_hex(&payload);
    let (st, body) = f.post(
        &[
            (
                "X-Gitea-Delivery",
                "f6266f16-1bf3-46a5-9ea4-602e06ead473".into(),
            ),
            ("X-Gitea-Event", "push".into()),
            ("X-Gitea-Event-Type", "push".into()),
            ("X-GitHub-Event", "push".into()),
            ("X-Gogs-Event", "push".into()),
            ("X-Gitea-Signature", sig.clone()),
            ("X-Gogs-Signature", sig.clone()),
            ("X-Hub-Signature-256", format!("sha256={sig}")),
        ],
        &payload,
    );
    assert_eq!(st, 202, "{body}");
    let n = f.next();
    assert_eq!(n.kind, NoticeKind::Resolved, "{n:?}");
    assert!(f.daemon.store.open_drifts("production").unwrap().is_empty());

    // Not a push payload: 400. Another event: 200, ignored.
    let junk = b"{\"zen\": 1}";
    let (st, _) = f.post(
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-Hub-Signature-256", format!("sha256={}", hmac_hex(junk))),
        ],
        junk,
    );
    assert_eq!(st, 400);
    let (st, body) = f.post(
        &[
            ("X-GitHub-Event", "issues".into()),
            ("X-Hub-Signature-256", format!("sha256={}", hmac_hex(junk))),
        ],
        junk,
    );
    assert_eq!((st, body["ignored"].as_bool()), (200, Some(true)));

    // The hook reads, counted by provider and result; neither secret nor signature logged
    // or served.
    let m = f.metrics();
    for line in [
        "envdrift_git_hooks_received_total{provider=\"github\",result=\"triggered\"} 1",
        "envdrift_git_hooks_received_total{provider=\"github\",result=\"unauthorized\"} 4",
        "envdrift_git_hooks_received_total{provider=\"github\",result=\"ping\"} 1",
        "envdrift_git_hooks_received_total{provider=\"gitlab\",result=\"triggered\"} 1",
        "envdrift_git_hooks_received_total{provider=\"gitea\",result=\"unauthorized\"} 1",
        "envdrift_watch_desired_reads_total{env=\"production\",trigger=\"hook\"} 3",
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
    assert!(!m.contains(SECRET));
    let log = logs();
    assert!(
        log.contains("Git webhook refused") && log.contains("Git push webhook"),
        "{log}"
    );
    for s in [SECRET, &forged, &valid_sig, "whsec-wrong"] {
        assert!(!log.contains(s), "{s} logged");
    }
    f.stop();
}

#[test]
fn an_edit_in_a_watched_dir_is_alerted_without_waiting_for_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let desired = dir.path().join("desired");
    std::fs::create_dir_all(desired.join("apps")).unwrap();
    std::fs::write(desired.join("apps/desired.yaml"), fixture_text()).unwrap();
    let envs = "  production:\n    desired: {type: dir, path: desired}\n    live: {type: cluster, kubeconfig: kubeconfig, context: prod, namespaces: [shop]}\n    desired_interval: 1h\n    interval: 1h\n";
    let Some(f) = start(dir, envs, "  {}") else {
        return;
    };
    // No secret: the webhook route is off.
    let (st, _) = f.post(&[("X-GitHub-Event", "ping".into())], b"{}");
    assert_eq!(st, 404);
    let s = f.wait_scan("production", |s| s.outcome == ScanOutcome::Ok);
    assert_eq!(s.drifts, 0);
    // An editor's save: a new file renamed over the old one.
    let file = f.dir.path().join("desired/apps/desired.yaml");
    let t0 = Instant::now();
    let tmp = f.dir.path().join("desired/apps/.desired.yaml.swp");
    std::fs::write(&tmp, with_image("9.9.9")).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let n = f.next();
    assert_eq!(n.kind, NoticeKind::Drift, "{n:?}");
    let images = image_fields(&n);
    assert_eq!(images.len(), 1, "{n:?}");
    assert!(images[0].1.contains("9.9.9"), "{images:?}");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    // In place, and in a new file in a new directory: each alerted.
    std::fs::write(&file, fixture_text()).unwrap();
    assert_eq!(f.next().kind, NoticeKind::Resolved);
    std::fs::create_dir_all(f.dir.path().join("desired/extra")).unwrap();
    std::fs::write(
        f.dir.path().join("desired/extra/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: added-in-git\n  namespace: shop\ndata:\n  a: \"1\"\n",
    )
    .unwrap();
    let n = f.next();
    assert_eq!(n.kind, NoticeKind::Drift, "{n:?}");
    assert!(
        n.drifts.iter().any(|d| d.resource.contains("added-in-git")),
        "{n:?}"
    );
    let m = f.metrics();
    let reads = m
        .lines()
        .find(|l| {
            l.starts_with("envdrift_watch_desired_reads_total{env=\"production\",trigger=\"dir\"}")
        })
        .unwrap_or_else(|| panic!("dir reads counted:\n{m}"));
    let count: u64 = reads.rsplit(' ').next().unwrap().parse().unwrap();
    // Coalesced: a handful of reads for three changes, not one per inotify event.
    assert!((3..=6).contains(&count), "{reads}");
    f.stop();
}
