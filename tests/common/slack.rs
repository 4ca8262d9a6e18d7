//! The Slack lifecycle tests' shared setup (`slack_lifecycle.rs`): a Slack stand-in
//! (crates/testkit/src/slack.rs), a config directory with a dir-desired / dump-live
//! environment and one bot-token Slack sink with a signing secret, a daemon on it, and
//! signed button clicks through the API's router.

#![allow(dead_code, reason = "each test uses part of it")]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use envdrift::alert::slack::interact::signature;
use envdrift::alert::slack::refs::SlackMessageRef;
use envdrift::config::{ApiConfig, Config};
use envdrift::daemon::{Daemon, SinkSet};
use envdrift::store::{EventKind, Store};
use envdrift_testkit::slack::{Call, SlackServer};
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub const TOKEN: &str = "xoxb-3333-4444-LIFECYCLEtoken";
pub const SIGNING: &str = "8f742231b10e8888abcd99SIGNINGsecret";
pub const CHANNEL: &str = "C0ALERTS";
pub const BOUND: Duration = Duration::from_secs(20);

pub const DESIRED: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: shop\ndata:\n  LOG_LEVEL: info\n  WORKERS: \"4\"\n";

pub fn live(items: &[(&str, &str, &str)]) -> String {
    let mut out = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for (name, level, workers) in items {
        out.push_str(&format!(
            "- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: {name}\n    namespace: shop\n  data:\n    LOG_LEVEL: {level}\n    WORKERS: \"{workers}\"\n"
        ));
    }
    out
}

pub fn setup(dir: &Path, slack: &SlackServer, desired: &[&str]) {
    std::fs::create_dir_all(dir.join("git")).unwrap();
    std::fs::create_dir_all(dir.join("live")).unwrap();
    for name in desired {
        std::fs::write(
            dir.join(format!("git/{name}.yaml")),
            DESIRED.replace("name: app", &format!("name: {name}")),
        )
        .unwrap();
    }
    std::fs::write(dir.join("slack.token"), TOKEN).unwrap();
    std::fs::write(dir.join("slack.secret"), format!("{SIGNING}\n")).unwrap();
    std::fs::write(
        dir.join("envdrift.yaml"),
        format!(
            "data_dir: state\nenvironments:\n  production:\n    desired: {{type: dir, path: git}}\n    live: {{type: dump, path: live}}\n    interval: 1h\nalerts:\n  sinks:\n    - {{type: slack, name: ops, channel: {CHANNEL}, token_file: slack.token, signing_secret_file: slack.secret, public_url: 'https://envdrift.example.com/', api_url: '{}'}}\n",
            slack.api_url()
        ),
    )
    .unwrap();
}

pub fn set_live(dir: &Path, items: &[(&str, &str, &str)]) {
    std::fs::write(dir.join("live/cms.yaml"), live(items)).unwrap();
}

/// A daemon on `dir` (a new one is a restart: the same store file, new sinks).
pub fn daemon(dir: &Path) -> Arc<Daemon> {
    daemon_with_backoff(dir, Duration::from_millis(20))
}

pub fn daemon_with_backoff(dir: &Path, backoff: Duration) -> Arc<Daemon> {
    let cfg = Config::load(&dir.join("envdrift.yaml")).unwrap();
    let store = Arc::new(Store::open(&dir.join("state/envdrift.db")).unwrap());
    let sinks = Arc::new(SinkSet::from_config(&cfg.alerts, dir).unwrap());
    let mut d = Daemon::new(cfg, dir.to_path_buf(), store, sinks).unwrap();
    d.base_backoff = backoff;
    Arc::new(d)
}

pub async fn scan(d: &Arc<Daemon>) {
    let target = d.targets().into_iter().next().unwrap();
    d.scan(&target).await.unwrap();
    d.drain_outbox(BOUND).await.unwrap();
}

pub fn drift_id(d: &Daemon, name: &str) -> i64 {
    d.store
        .list_drifts(&envdrift::store::DriftFilter::default())
        .unwrap()
        .into_iter()
        .find(|r| r.resource.ends_with(&format!("/{name}")))
        .unwrap_or_else(|| panic!("no drift for {name}"))
        .id
}

pub fn history(d: &Daemon, id: i64) -> Vec<EventKind> {
    d.store
        .drift(id)
        .unwrap()
        .1
        .into_iter()
        .map(|e| e.event)
        .collect()
}

pub fn count(calls: &[Call], method: &str) -> usize {
    calls.iter().filter(|c| c.method == method).count()
}

/// The posted/updated message without its volatile parts, for snapshots.
pub fn shown(v: &Value) -> Value {
    json!({"text": v["text"], "blocks": v["blocks"]})
}

pub fn snapshot(name: &str, v: &Value) {
    // Kept where they were when this lived in slack_lifecycle.rs.
    insta::with_settings!({
        snapshot_path => "../snapshots",
        prepend_module_to_snapshot => false,
        filters => vec![
            (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]"),
            (r"open \d+[mhd]", "open [age]"),
        ],
    }, {
        insta::assert_json_snapshot!(format!("slack_lifecycle__{name}"), shown(v));
    });
}

pub fn click_body(action: &str, value: &str, ts: &str) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": "U0ALICE", "username": "alice", "team_id": "T0"},
        "api_app_id": "A0ENVDRIFT",
        "container": {"type": "message", "channel_id": CHANNEL, "message_ts": ts},
        "channel": {"id": CHANNEL, "name": "alerts"},
        "actions": [{"type": "button", "action_id": action, "value": value, "block_id": "b", "action_ts": "1.2"}]
    });
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

pub async fn post(d: &Arc<Daemon>, body: &str, ts: Option<&str>, sig: Option<&str>) -> StatusCode {
    post_full(d, body, ts, sig).await.0
}

/// The status and body of a POST to the interactivity endpoint.
pub async fn post_full(
    d: &Arc<Daemon>,
    body: &str,
    ts: Option<&str>,
    sig: Option<&str>,
) -> (StatusCode, String) {
    post_with(d, &ApiConfig::default(), body, ts, sig).await
}

/// The status and body of a POST to the interactivity endpoint of an API with `api`.
pub async fn post_with(
    d: &Arc<Daemon>,
    api: &ApiConfig,
    body: &str,
    ts: Option<&str>,
    sig: Option<&str>,
) -> (StatusCode, String) {
    let api = api.clone();
    let state = Arc::new(envdrift::api::ApiState::new(d.clone(), &api, &d.base).unwrap());
    let app = envdrift::api::router(state, &api).unwrap();
    let mut req = Request::post("/api/v1/slack/interactions")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(t) = ts {
        req = req.header("x-slack-request-timestamp", t);
    }
    if let Some(s) = sig {
        req = req.header("x-slack-signature", s);
    }
    let res = app
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

pub fn now_ts() -> String {
    chrono::Utc::now().timestamp().to_string()
}

/// A Slack stand-in, a config directory with one ConfigMap per name in `desired` and a
/// daemon on it: the setup every lifecycle test starts from.
pub struct Fixture {
    pub slack: SlackServer,
    pub tmp: tempfile::TempDir,
    pub d: Arc<Daemon>,
}

impl Fixture {
    pub async fn start(desired: &[&str]) -> Fixture {
        let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
        let tmp = tempfile::tempdir().unwrap();
        setup(tmp.path(), &slack, desired);
        let d = daemon(tmp.path());
        Fixture { slack, tmp, d }
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// One scan with drift `name` open (LOG_LEVEL debug): its id and Slack message.
    pub async fn open(&self, name: &str) -> (i64, SlackMessageRef) {
        set_live(self.dir(), &[(name, "debug", "4")]);
        scan(&self.d).await;
        let id = drift_id(&self.d, name);
        let r = self
            .d
            .store
            .slack_message("ops", id)
            .unwrap()
            .expect("the drift's message is recorded");
        (id, r)
    }

    /// A signed click on the button `action` of drift `id`'s message `ts`.
    pub async fn click(&self, action: &str, id: i64, ts: &str) -> StatusCode {
        let body = click_body(action, &id.to_string(), ts);
        let now = now_ts();
        let sig = signature(SIGNING.as_bytes(), &now, body.as_bytes());
        post(&self.d, &body, Some(&now), Some(&sig)).await
    }
}

/// `POST {path}` with a JSON body through the API's router (no tokens: loopback access).
pub async fn api_post(d: &Arc<Daemon>, path: &str, body: &str) -> (StatusCode, String) {
    let api = ApiConfig::default();
    let state = Arc::new(envdrift::api::ApiState::new(d.clone(), &api, &d.base).unwrap());
    let app = envdrift::api::router(state, &api).unwrap();
    let res = app
        .oneshot(
            Request::post(path)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Delivers the outbox until `done` holds for the stand-in's calls (an action applied in
/// the background is queued once the store is free), within [`BOUND`].
pub async fn deliver_until(
    d: &Arc<Daemon>,
    slack: &SlackServer,
    what: &str,
    done: impl Fn(&[Call]) -> bool,
) {
    let deadline = std::time::Instant::now() + BOUND;
    loop {
        d.drain_outbox(BOUND).await.unwrap();
        if done(&slack.calls()) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not delivered within {BOUND:?}: {:#?}",
            slack.calls()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
