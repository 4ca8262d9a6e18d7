//! Slack as people use it, through the daemon, its store and its API against the Slack
//! stand-in (crates/testkit/src/slack.rs): one message per drift that updates itself, thread
//! replies per event, digests with each drift's thread under them, signed button clicks,
//! and the restart window between a post and the store's record of its `ts`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use envdrift::alert::slack::interact::signature;
use envdrift::config::{ApiConfig, Config};
use envdrift::daemon::{Daemon, SinkSet};
use envdrift::store::{EventKind, Store};
use envdrift_testkit::Reply;
use envdrift_testkit::slack::{Call, SlackServer};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const TOKEN: &str = "xoxb-3333-4444-LIFECYCLEtoken";
const SIGNING: &str = "8f742231b10e8888abcd99SIGNINGsecret";
const CHANNEL: &str = "C0ALERTS";
const BOUND: Duration = Duration::from_secs(20);

const DESIRED: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: shop\ndata:\n  LOG_LEVEL: info\n  WORKERS: \"4\"\n";

fn live(items: &[(&str, &str, &str)]) -> String {
    let mut out = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for (name, level, workers) in items {
        out.push_str(&format!(
            "- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: {name}\n    namespace: shop\n  data:\n    LOG_LEVEL: {level}\n    WORKERS: \"{workers}\"\n"
        ));
    }
    out
}

fn setup(dir: &Path, slack: &SlackServer, desired: &[&str]) {
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

fn set_live(dir: &Path, items: &[(&str, &str, &str)]) {
    std::fs::write(dir.join("live/cms.yaml"), live(items)).unwrap();
}

/// A daemon on `dir` (a new one is a restart: the same store file, new sinks).
fn daemon(dir: &Path) -> Arc<Daemon> {
    daemon_with_backoff(dir, Duration::from_millis(20))
}

fn daemon_with_backoff(dir: &Path, backoff: Duration) -> Arc<Daemon> {
    let cfg = Config::load(&dir.join("envdrift.yaml")).unwrap();
    let store = Arc::new(Store::open(&dir.join("state/envdrift.db")).unwrap());
    let sinks = Arc::new(SinkSet::from_config(&cfg.alerts, dir).unwrap());
    let mut d = Daemon::new(cfg, dir.to_path_buf(), store, sinks).unwrap();
    d.base_backoff = backoff;
    Arc::new(d)
}

async fn scan(d: &Arc<Daemon>) {
    let target = d.targets().into_iter().next().unwrap();
    d.scan(&target).await.unwrap();
    d.drain_outbox(BOUND).await.unwrap();
}

fn drift_id(d: &Daemon, name: &str) -> i64 {
    d.store
        .list_drifts(&envdrift::store::DriftFilter::default())
        .unwrap()
        .into_iter()
        .find(|r| r.resource.ends_with(&format!("/{name}")))
        .unwrap_or_else(|| panic!("no drift for {name}"))
        .id
}

fn history(d: &Daemon, id: i64) -> Vec<EventKind> {
    d.store
        .drift(id)
        .unwrap()
        .1
        .into_iter()
        .map(|e| e.event)
        .collect()
}

fn count(calls: &[Call], method: &str) -> usize {
    calls.iter().filter(|c| c.method == method).count()
}

/// The posted/updated message without its volatile parts, for snapshots.
fn shown(v: &Value) -> Value {
    json!({"text": v["text"], "blocks": v["blocks"]})
}

fn snapshot(name: &str, v: &Value) {
    insta::with_settings!({filters => vec![
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]"),
        (r"open \d+[mhd]", "open [age]"),
    ]}, {
        insta::assert_json_snapshot!(name, shown(v));
    });
}

fn click_body(action: &str, value: &str, ts: &str) -> String {
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

async fn post(d: &Arc<Daemon>, body: &str, ts: Option<&str>, sig: Option<&str>) -> StatusCode {
    post_full(d, body, ts, sig).await.0
}

/// The status and body of a POST to the interactivity endpoint.
async fn post_full(
    d: &Arc<Daemon>,
    body: &str,
    ts: Option<&str>,
    sig: Option<&str>,
) -> (StatusCode, String) {
    post_with(d, &ApiConfig::default(), body, ts, sig).await
}

/// The status and body of a POST to the interactivity endpoint of an API with `api`.
async fn post_with(
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

fn now_ts() -> String {
    chrono::Utc::now().timestamp().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_changed_acknowledged_resolved_is_one_message_updated_in_place_with_a_thread() {
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir, &slack, &["app"]);
    let d = daemon(dir);

    // Open: one top-level message, the drift's card with its buttons.
    set_live(dir, &[("app", "debug", "4")]);
    scan(&d).await;
    let top = slack.top_level();
    assert_eq!(top.len(), 1, "{top:#?}");
    let card = &top[0];
    let id = drift_id(&d, "app");
    let r = d
        .store
        .slack_message("ops", id)
        .unwrap()
        .expect("ts stored");
    assert_eq!(
        (r.channel.as_str(), r.ts.as_str()),
        (CHANNEL, card.ts.as_str())
    );
    let text = card.content.to_string();
    assert!(text.contains("New drift: ConfigMap shop/app"), "{text}");
    assert!(text.contains("\"action_id\":\"envdrift_ack\""), "{text}");
    assert!(text.contains(&format!("\"value\":\"{id}\"")), "{text}");
    assert!(
        text.contains(&format!("https://envdrift.example.com/drifts/{id}")),
        "{text}"
    );
    snapshot("slack_lifecycle_1_opened", &card.content);

    // Changed: the same message updated, a reply in its thread; never "New drift".
    set_live(dir, &[("app", "trace", "4")]);
    scan(&d).await;
    let calls = slack.calls();
    assert_eq!(slack.top_level().len(), 1);
    assert_eq!(count(&calls, "chat.update"), 1);
    let updated = slack.messages()[0].clone();
    assert_eq!(updated.ts, card.ts);
    assert!(updated.content.to_string().contains("Drift changed"));
    assert!(!updated.content.to_string().contains("New drift"));
    snapshot("slack_lifecycle_2_changed", &updated.content);
    let replies = slack.replies(&card.ts);
    assert_eq!(replies.len(), 1);
    snapshot("slack_lifecycle_2_changed_reply", &replies[0].content);

    // Refused clicks change nothing.
    let before = (history(&d, id), slack.calls().len());
    let body = click_body("envdrift_ack", &id.to_string(), &card.ts);
    let ts = now_ts();
    let good = signature(SIGNING.as_bytes(), &ts, body.as_bytes());
    let wrong = signature(b"not-the-secret", &ts, body.as_bytes());
    let (status, text) = post_full(&d, &body, Some(&ts), Some(&wrong)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        text.contains("signature does not match") && !text.contains(SIGNING),
        "{text}"
    );
    assert_eq!(post(&d, &body, None, None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        post(&d, &body, Some(&ts), None).await,
        StatusCode::UNAUTHORIZED
    );
    let old = (chrono::Utc::now().timestamp() - 301).to_string();
    let old_sig = signature(SIGNING.as_bytes(), &old, body.as_bytes());
    assert_eq!(
        post(&d, &body, Some(&old), Some(&old_sig)).await,
        StatusCode::UNAUTHORIZED
    );
    let tampered = body.replace(
        &format!("%22value%22%3A%22{id}%22"),
        "%22value%22%3A%2299%22",
    );
    assert_ne!(tampered, body);
    assert_eq!(
        post(&d, &tampered, Some(&ts), Some(&good)).await,
        StatusCode::UNAUTHORIZED
    );
    let unknown = click_body("envdrift_ack", "999999", &card.ts);
    let sig = signature(SIGNING.as_bytes(), &ts, unknown.as_bytes());
    assert_eq!(
        post(&d, &unknown, Some(&ts), Some(&sig)).await,
        StatusCode::NOT_FOUND
    );
    let malformed = "payload=%7B%22type%22%3A%22block_actions%22";
    let sig = signature(SIGNING.as_bytes(), &ts, malformed.as_bytes());
    assert_eq!(
        post(&d, malformed, Some(&ts), Some(&sig)).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        (history(&d, id), slack.calls().len()),
        before,
        "nothing changed"
    );
    assert!(d.store.drift(id).unwrap().0.acked_at.is_none());

    // A signed click acknowledges, as the Slack user, in the drift's history, and is
    // answered well within Slack's 3 seconds (the message is rewritten after the answer).
    let started = std::time::Instant::now();
    assert_eq!(
        post(&d, &body, Some(&ts), Some(&good)).await,
        StatusCode::OK
    );
    let answered = started.elapsed();
    eprintln!("the signed click was answered in {answered:?}");
    assert!(answered < Duration::from_secs(3), "{answered:?}");
    let (row, events) = d.store.drift(id).unwrap();
    assert_eq!(row.acked_by.as_deref(), Some("slack:@alice (U0ALICE)"));
    assert_eq!(
        events.last().map(|e| e.event),
        Some(EventKind::Acknowledged)
    );
    slack
        .wait_for("the acknowledged update and reply", BOUND, |c| {
            count(c, "chat.update") == 2 && count(c, "chat.postMessage") == 3
        })
        .await;
    let acked = slack.messages()[0].clone();
    let shown_text = acked.content.to_string();
    assert!(
        shown_text.contains("Acknowledged by <@U0ALICE>"),
        "{shown_text}"
    );
    assert!(
        !shown_text.contains("envdrift_ack"),
        "buttons replaced: {shown_text}"
    );
    snapshot("slack_lifecycle_3_acknowledged", &acked.content);
    snapshot(
        "slack_lifecycle_3_acknowledged_reply",
        &slack.replies(&card.ts)[1].content,
    );
    // The same signed request again (Slack's retry, or a replay): nothing done twice.
    let n = history(&d, id).len();
    assert_eq!(
        post(&d, &body, Some(&ts), Some(&good)).await,
        StatusCode::OK
    );
    assert_eq!(history(&d, id).len(), n);
    assert_eq!(slack.calls().len(), 5);

    // Resolved: the message shows it, a last reply.
    set_live(dir, &[("app", "info", "4")]);
    scan(&d).await;
    let calls = slack.calls();
    assert_eq!(slack.top_level().len(), 1, "exactly one top-level message");
    assert_eq!(
        count(&calls, "chat.update"),
        3,
        "changed, acknowledged, resolved"
    );
    assert_eq!(slack.replies(&card.ts).len(), 3, "one reply per event");
    let resolved = slack.messages()[0].clone();
    assert!(resolved.content.to_string().contains("Drift resolved"));
    assert!(!resolved.content.to_string().contains("envdrift_silence"));
    snapshot("slack_lifecycle_4_resolved", &resolved.content);
    snapshot(
        "slack_lifecycle_4_resolved_reply",
        &slack.replies(&card.ts)[2].content,
    );
    // Every call carried the bot token; no secret in any message.
    for r in slack.accepted() {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        let b = String::from_utf8_lossy(&r.body).into_owned();
        assert!(!b.contains(TOKEN) && !b.contains(SIGNING), "{b}");
    }

    // Reopened: the same thread, never a second top-level message.
    set_live(dir, &[("app", "debug", "4")]);
    scan(&d).await;
    assert_eq!(slack.top_level().len(), 1);
    let replies = slack.replies(&card.ts);
    assert_eq!(replies.len(), 4);
    assert!(
        replies[3].content.to_string().contains("Reopened"),
        "{replies:#?}"
    );
    assert!(
        slack.messages()[0]
            .content
            .to_string()
            .contains("Drift reopened")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_from_slack_and_a_digest_keeps_each_drifts_thread_under_it() {
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir, &slack, &["app", "worker"]);
    let d = daemon(dir);
    set_live(dir, &[("app", "debug", "4"), ("worker", "info", "8")]);
    scan(&d).await;
    let top = slack.top_level();
    assert_eq!(top.len(), 1, "one digest: {top:#?}");
    let digest = &top[0];
    assert!(digest.content.to_string().contains("2 new drifts"));
    let cards = slack.replies(&digest.ts);
    assert_eq!(cards.len(), 2, "each drift's card in the digest's thread");
    let worker = drift_id(&d, "worker");
    let r = d.store.slack_message("ops", worker).unwrap().unwrap();
    assert_eq!(r.thread_ts, digest.ts);
    let card = cards
        .iter()
        .find(|c| c.ts == r.ts)
        .expect("the worker's card");
    snapshot("slack_digest_card", &card.content);

    // Silence 24h from the worker's card.
    let body = click_body("envdrift_silence", &worker.to_string(), &r.ts);
    let ts = now_ts();
    let sig = signature(SIGNING.as_bytes(), &ts, body.as_bytes());
    assert_eq!(post(&d, &body, Some(&ts), Some(&sig)).await, StatusCode::OK);
    let (row, events) = d.store.drift(worker).unwrap();
    let until = row.silenced_until.expect("silenced");
    let t = chrono::DateTime::parse_from_rfc3339(&until).unwrap();
    let hours = (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!((23 * 60..=24 * 60).contains(&hours), "{until}");
    assert_eq!(events.last().map(|e| e.event), Some(EventKind::Silenced));
    slack
        .wait_for("the silenced card", BOUND, |c| count(c, "chat.update") == 1)
        .await;
    let updated = slack.messages().into_iter().find(|m| m.ts == r.ts).unwrap();
    assert!(updated.content.to_string().contains("Silenced until"));
    snapshot("slack_digest_card_silenced", &updated.content);

    // The app drift changes: its card (under the digest) is updated, the reply goes to the
    // digest's thread; still one top-level message.
    set_live(dir, &[("app", "trace", "4"), ("worker", "info", "8")]);
    scan(&d).await;
    assert_eq!(slack.top_level().len(), 1);
    let app = d
        .store
        .slack_message("ops", drift_id(&d, "app"))
        .unwrap()
        .unwrap();
    let calls = slack.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.method == "chat.update" && c.ts == app.ts),
        "{calls:#?}"
    );
    let last = calls.last().unwrap();
    assert_eq!(last.thread_ts.as_deref(), Some(digest.ts.as_str()));
}

/// The answer to the first post is lost (as if the daemon stopped between Slack's answer
/// and the store's record of the ts): after a restart the retry finds the message in the
/// channel by its metadata and does not post a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_post_and_record_does_not_post_twice() {
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir, &slack, &["app"]);
    set_live(dir, &[("app", "debug", "4")]);
    slack.lose_answers(1);
    {
        // The retry is due after the "restart" only.
        let d = daemon_with_backoff(dir, Duration::from_millis(400));
        let target = d.targets().into_iter().next().unwrap();
        d.scan(&target).await.unwrap();
        d.drain_outbox(Duration::from_millis(50)).await.unwrap();
        assert_eq!(d.store.outbox(10).unwrap()[0].state.as_str(), "pending");
        assert_eq!(slack.top_level().len(), 1, "the post went through");
        let id = drift_id(&d, "app");
        assert!(
            d.store.slack_message("ops", id).unwrap().is_none(),
            "ts not recorded"
        );
    }
    let d = daemon(dir); // restart
    d.drain_outbox(BOUND).await.unwrap();
    let top = slack.top_level();
    assert_eq!(top.len(), 1, "no second top-level message: {top:#?}");
    let id = drift_id(&d, "app");
    let r = d
        .store
        .slack_message("ops", id)
        .unwrap()
        .expect("recorded now");
    assert_eq!(r.ts, top[0].ts);
    assert_eq!(d.store.outbox(10).unwrap()[0].state.as_str(), "sent");
}

/// Without the history scope the message cannot be found: the window documented in
/// docs/alerts.md, where a kill at that moment posts the drift's message a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_history_scope_the_documented_window_posts_again() {
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir, &slack, &["app"]);
    set_live(dir, &[("app", "debug", "4")]);
    slack.lose_answers(1);
    slack.fail_history(Some("missing_scope"));
    let d = daemon(dir);
    scan(&d).await;
    assert_eq!(
        slack.top_level().len(),
        2,
        "posted again: the documented window"
    );
    let id = drift_id(&d, "app");
    let r = d.store.slack_message("ops", id).unwrap().unwrap();
    assert_eq!(
        r.ts,
        slack.top_level()[1].ts,
        "later events go to the recorded one"
    );
}

/// What the stand-in checks, as Slack does: the bearer token, `channel` and an existing
/// `ts` on updates, a thread that exists, 50 blocks, 3,000 characters per text, buttons.
#[tokio::test]
async fn the_stand_in_refuses_what_slack_refuses() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    let addr = slack.addr;
    let call = |method: &'static str, token: &'static str, body: Value| async move {
        let body = body.to_string();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "POST /api/{method} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let json = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        serde_json::from_str::<Value>(&json).unwrap_or(Value::Null)
    };
    let ok = call(
        "chat.postMessage",
        TOKEN,
        json!({"channel": CHANNEL, "text": "hi"}),
    )
    .await;
    assert_eq!(ok["ok"], true, "{ok}");
    let ts = ok["ts"].as_str().unwrap().to_string();
    let refused = [
        (
            "chat.postMessage",
            "xoxb-wrong",
            json!({"channel": CHANNEL, "text": "hi"}),
            "invalid_auth",
        ),
        (
            "chat.update",
            TOKEN,
            json!({"channel": CHANNEL, "text": "x"}),
            "invalid_arguments",
        ),
        (
            "chat.update",
            TOKEN,
            json!({"ts": ts, "text": "x"}),
            "channel_not_found",
        ),
        (
            "chat.update",
            TOKEN,
            json!({"channel": CHANNEL, "ts": "1.000001", "text": "x"}),
            "message_not_found",
        ),
        (
            "chat.postMessage",
            TOKEN,
            json!({"channel": CHANNEL, "thread_ts": "1.000001", "text": "x"}),
            "thread_not_found",
        ),
        (
            "chat.postMessage",
            TOKEN,
            json!({"channel": CHANNEL, "text": "x", "blocks": vec![json!({"type": "divider"}); 51]}),
            "invalid_blocks",
        ),
        (
            "chat.update",
            TOKEN,
            json!({"channel": CHANNEL, "ts": ts, "text": "x", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "y".repeat(3001)}}]}),
            "invalid_blocks",
        ),
        (
            "chat.postMessage",
            TOKEN,
            json!({"channel": CHANNEL, "text": "x", "blocks": [{"type": "actions", "elements": [{"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "z".repeat(76)}}]}]}),
            "invalid_blocks",
        ),
    ];
    for (method, token, body, error) in refused {
        let got = call(method, token, body.clone()).await;
        assert_eq!(got["ok"], false, "{method} {body}: {got}");
        assert!(
            got["error"].as_str().unwrap_or("").starts_with(error),
            "{method} {body}: {got}"
        );
    }
    let updated = call(
        "chat.update",
        TOKEN,
        json!({"channel": CHANNEL, "ts": ts, "text": "edited"}),
    )
    .await;
    assert_eq!(updated["ok"], true, "{updated}");
    assert_eq!(slack.messages().len(), 1);
    assert_eq!(slack.messages()[0].updates, 1);
    assert_eq!(slack.messages()[0].content["text"], "edited");
}

/// A drift's message deleted in Slack: the next event posts a new one (and records it)
/// instead of failing for ever on `message_not_found`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_message_is_posted_anew() {
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir, &slack, &["app"]);
    let d = daemon(dir);
    set_live(dir, &[("app", "debug", "4")]);
    scan(&d).await;
    let first = slack.top_level()[0].ts.clone();
    slack.delete_message(&first);
    set_live(dir, &[("app", "trace", "4")]);
    scan(&d).await;
    let top = slack.top_level();
    assert_eq!(top.len(), 1, "{top:#?}");
    assert_ne!(top[0].ts, first);
    assert!(top[0].content.to_string().contains("Drift changed"));
    let id = drift_id(&d, "app");
    assert_eq!(
        d.store.slack_message("ops", id).unwrap().unwrap().ts,
        top[0].ts
    );
    assert_eq!(d.store.outbox(10).unwrap()[0].state.as_str(), "sent");
}

/// Slack rate-limits the third card of a digest (429, retryable): the retry posts that card
/// in the digest's thread, leaves the cards already posted alone (no update, no
/// "Reopened" reply) and posts no second top-level message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_retried_after_a_rate_limit_keeps_its_cards_fresh_and_threaded() {
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir, &slack, &["app", "worker", "web"]);
    let d = daemon(dir);
    set_live(
        dir,
        &[
            ("app", "debug", "4"),
            ("worker", "info", "8"),
            ("web", "warn", "4"),
        ],
    );
    // digest, card 1, card 2 go through; card 3 gets a 429.
    slack.queue_after(3, &[Reply::RateLimited(0)]);
    scan(&d).await;
    let top = slack.top_level();
    assert_eq!(top.len(), 1, "one top-level message: {top:#?}");
    let cards = slack.replies(&top[0].ts);
    assert_eq!(cards.len(), 3, "3 cards in the digest's thread: {cards:#?}");
    let calls = slack.calls();
    assert_eq!(count(&calls, "chat.update"), 0, "{calls:#?}");
    assert!(
        !slack
            .messages()
            .iter()
            .any(|m| m.content.to_string().contains("eopened")),
        "{:#?}",
        slack.messages()
    );
    for name in ["app", "worker", "web"] {
        let r = d
            .store
            .slack_message("ops", drift_id(&d, name))
            .unwrap()
            .unwrap();
        assert_eq!(r.thread_ts, top[0].ts, "{name}");
    }
    assert_eq!(d.store.outbox(10).unwrap()[0].state.as_str(), "sent");
}

/// With `api.tokens` configured, the Slack route needs no bearer token (its signature
/// decides: 200 signed, 401 not) while the other routes still do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slack_route_needs_no_bearer_token_when_tokens_are_configured() {
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir, &slack, &["app"]);
    std::fs::write(dir.join("operate.token"), "operate-token-0123456789abcdef").unwrap();
    let d = daemon(dir);
    set_live(dir, &[("app", "debug", "4")]);
    scan(&d).await;
    let id = drift_id(&d, "app");
    let r = d.store.slack_message("ops", id).unwrap().unwrap();
    let api = ApiConfig {
        tokens: vec![envdrift::config::TokenConfig {
            name: "oncall".into(),
            role: envdrift::config::Role::Operate,
            token_env: None,
            token_file: Some("operate.token".into()),
        }],
        ..ApiConfig::default()
    };

    // Another operate route without a token: 401.
    let state = Arc::new(envdrift::api::ApiState::new(d.clone(), &api, &d.base).unwrap());
    let app = envdrift::api::router(state, &api).unwrap();
    let res = app
        .oneshot(
            Request::post(format!("/api/v1/drifts/{id}/ack"))
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(d.store.drift(id).unwrap().0.acked_at.is_none());

    // The Slack route without a token: its signature decides.
    let body = click_body("envdrift_ack", &id.to_string(), &r.ts);
    let ts = now_ts();
    let bad = signature(b"not-the-secret", &ts, body.as_bytes());
    let (status, _) = post_with(&d, &api, &body, Some(&ts), Some(&bad)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(d.store.drift(id).unwrap().0.acked_at.is_none());
    let sig = signature(SIGNING.as_bytes(), &ts, body.as_bytes());
    let (status, text) = post_with(&d, &api, &body, Some(&ts), Some(&sig)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(d.store.drift(id).unwrap().0.acked_at.is_some());
}

/// No Slack sink with a signing secret: the route is off (404), even for a signed request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_signing_secret_the_route_is_off() {
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir, &slack, &["app"]);
    let cfg = std::fs::read_to_string(dir.join("envdrift.yaml")).unwrap();
    let off = cfg.replace(", signing_secret_file: slack.secret", "");
    assert_ne!(cfg, off);
    std::fs::write(dir.join("envdrift.yaml"), off).unwrap();
    let d = daemon(dir);
    set_live(dir, &[("app", "debug", "4")]);
    scan(&d).await;
    let id = drift_id(&d, "app");
    let body = click_body("envdrift_ack", &id.to_string(), "1.1");
    let ts = now_ts();
    let sig = signature(SIGNING.as_bytes(), &ts, body.as_bytes());
    let (status, text) = post_full(&d, &body, Some(&ts), Some(&sig)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    assert!(text.contains("signing_secret"), "{text}");
    assert!(d.store.drift(id).unwrap().0.acked_at.is_none());
}

/// A click on a resolved drift's card (a stale client): 200, the drift is not acknowledged
/// and its message is not redrawn as open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_on_a_resolved_drift_leaves_it_resolved() {
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir, &slack, &["app"]);
    let d = daemon(dir);
    set_live(dir, &[("app", "debug", "4")]);
    scan(&d).await;
    let id = drift_id(&d, "app");
    let r = d.store.slack_message("ops", id).unwrap().unwrap();
    set_live(dir, &[("app", "info", "4")]);
    scan(&d).await;
    assert_eq!(
        d.store.drift(id).unwrap().0.status,
        envdrift::store::DriftStatus::Resolved
    );
    let before = slack.calls().len();
    let resolved = slack.messages().into_iter().find(|m| m.ts == r.ts).unwrap();
    for action in ["envdrift_ack", "envdrift_silence"] {
        let body = click_body(action, &id.to_string(), &r.ts);
        let ts = now_ts();
        let sig = signature(SIGNING.as_bytes(), &ts, body.as_bytes());
        assert_eq!(post(&d, &body, Some(&ts), Some(&sig)).await, StatusCode::OK);
    }
    let (row, events) = d.store.drift(id).unwrap();
    assert!(
        row.acked_at.is_none() && row.silenced_until.is_none(),
        "{row:?}"
    );
    assert_eq!(events.last().map(|e| e.event), Some(EventKind::Resolved));
    // Nothing was acted on, so nothing was sent to Slack: the calls and the message are
    // as they were.
    assert_eq!(slack.calls().len(), before);
    let now = slack.messages().into_iter().find(|m| m.ts == r.ts).unwrap();
    assert_eq!(now, resolved);
}

/// A click as Slack sends it carries the whole clicked message form-encoded, well over a
/// lowered `api.max_body_bytes` (2048 here; this small card's click is about 3.5 KB): the
/// Slack route has its own limit (at least 128 KiB) while the other routes keep 2048.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slack_route_takes_a_full_click_under_a_low_api_body_limit() {
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir, &slack, &["app"]);
    let d = daemon(dir);
    set_live(dir, &[("app", "debug", "4")]);
    scan(&d).await;
    let id = drift_id(&d, "app");
    let r = d.store.slack_message("ops", id).unwrap().unwrap();
    let card = slack.messages().into_iter().find(|m| m.ts == r.ts).unwrap();
    let api = ApiConfig {
        max_body_bytes: Some(2048),
        ..ApiConfig::default()
    };
    // A block_actions payload as Slack sends it: the message with its blocks, the state,
    // the response URL, the trigger id.
    let mut message = card.content.clone();
    message["ts"] = json!(r.ts);
    message["type"] = json!("message");
    message["user"] = json!("U0ENVDRIFT");
    message["bot_id"] = json!("B0ENVDRIFT");
    let payload = json!({
        "type": "block_actions",
        "user": {"id": "U0ALICE", "username": "alice", "name": "alice", "team_id": "T0"},
        "api_app_id": "A0ENVDRIFT",
        "token": "verification-token-unused",
        "container": {"type": "message", "channel_id": CHANNEL, "message_ts": r.ts, "is_ephemeral": false},
        "trigger_id": "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
        "team": {"id": "T0", "domain": "envdrift"},
        "enterprise": null,
        "is_enterprise_install": false,
        "channel": {"id": CHANNEL, "name": "alerts"},
        "message": message,
        "state": {"values": {}},
        "response_url": "https://hooks.slack.com/actions/T0/1234567890/abcdefghijklmnopqrstuvwx",
        "actions": [{"type": "button", "action_id": "envdrift_ack", "value": id.to_string(), "block_id": "b", "action_ts": "1.2", "text": {"type": "plain_text", "text": "Acknowledge", "emoji": true}, "style": "primary"}]
    });
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish();
    assert!(body.len() > 2048, "a full click is {} bytes", body.len());
    let ts = now_ts();
    let sig = signature(SIGNING.as_bytes(), &ts, body.as_bytes());
    let (status, text) = post_with(&d, &api, &body, Some(&ts), Some(&sig)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(d.store.drift(id).unwrap().0.acked_at.is_some());

    // Past 128 KiB: 413, nothing done.
    let big = format!("{body}&pad={}", "x".repeat(128 * 1024));
    let sig = signature(SIGNING.as_bytes(), &ts, big.as_bytes());
    let (status, _) = post_with(&d, &api, &big, Some(&ts), Some(&sig)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Other routes keep api.max_body_bytes.
    let state = Arc::new(envdrift::api::ApiState::new(d.clone(), &api, &d.base).unwrap());
    let app = envdrift::api::router(state, &api).unwrap();
    let res = app
        .oneshot(
            Request::post(format!("/api/v1/drifts/{id}/silence"))
                .header("content-type", "application/json")
                .body(Body::from(format!(
                    "{{\"until\":\"2099-01-01T00:00:00Z\",\"reason\":\"{}\"}}",
                    "r".repeat(3000)
                )))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// The same signed click again with its headers spelled differently (whitespace around the
/// signature and the timestamp, which the signature check trims) is still a replay: 200,
/// acted on once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_with_its_headers_padded_is_not_acted_on_twice() {
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir, &slack, &["app"]);
    let d = daemon(dir);
    set_live(dir, &[("app", "debug", "4")]);
    scan(&d).await;
    let id = drift_id(&d, "app");
    let r = d.store.slack_message("ops", id).unwrap().unwrap();
    let body = click_body("envdrift_ack", &id.to_string(), &r.ts);
    let ts = now_ts();
    let sig = signature(SIGNING.as_bytes(), &ts, body.as_bytes());
    assert_eq!(post(&d, &body, Some(&ts), Some(&sig)).await, StatusCode::OK);
    let padded_sig = format!("{sig} ");
    let padded_ts = format!(" {ts}");
    for (t, s) in [
        (ts.as_str(), sig.as_str()),
        (ts.as_str(), padded_sig.as_str()),
        (padded_ts.as_str(), sig.as_str()),
    ] {
        assert_eq!(post(&d, &body, Some(t), Some(s)).await, StatusCode::OK);
    }
    let acks = history(&d, id)
        .into_iter()
        .filter(|e| *e == EventKind::Acknowledged)
        .count();
    assert_eq!(acks, 1, "{:?}", history(&d, id));
}

/// The answers to a digest card's post and to a thread reply are lost (Slack posted them):
/// the retries find them in their threads (`conversations.replies`, read page by page) and
/// post neither twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_in_threads_are_found_and_not_posted_twice() {
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir, &slack, &["app", "worker", "web"]);
    let d = daemon(dir);
    slack.page_size(1); // every lookup follows next_cursor
    set_live(
        dir,
        &[
            ("app", "debug", "4"),
            ("worker", "info", "8"),
            ("web", "warn", "4"),
        ],
    );
    // digest, card 1, card 2 answered; card 3 posted, its answer lost.
    slack.lose_answers_after(3, 1);
    scan(&d).await;
    let top = slack.top_level();
    assert_eq!(top.len(), 1, "{top:#?}");
    let cards = slack.replies(&top[0].ts);
    assert_eq!(cards.len(), 3, "card 3 once: {cards:#?}");
    let mut recorded: Vec<String> = ["app", "worker", "web"]
        .iter()
        .map(|n| {
            d.store
                .slack_message("ops", drift_id(&d, n))
                .unwrap()
                .unwrap()
                .ts
        })
        .collect();
    recorded.sort();
    let mut posted: Vec<String> = cards.iter().map(|c| c.ts.clone()).collect();
    posted.sort();
    assert_eq!(recorded, posted, "the found card is recorded");
    assert_eq!(d.store.outbox(10).unwrap()[0].state.as_str(), "sent");

    // The app drift changes: its card is updated, the reply's answer is lost.
    set_live(
        dir,
        &[
            ("app", "trace", "4"),
            ("worker", "info", "8"),
            ("web", "warn", "4"),
        ],
    );
    slack.lose_answers(1);
    scan(&d).await;
    assert_eq!(slack.top_level().len(), 1);
    let thread = slack.replies(&top[0].ts);
    assert_eq!(thread.len(), 4, "3 cards and one reply: {thread:#?}");
    let outbox = d.store.outbox(10).unwrap();
    assert!(
        outbox.iter().all(|o| o.state.as_str() == "sent"),
        "{outbox:#?}"
    );
}

/// The store's writer is held (as by a big scan being recorded) during a click: Slack
/// still gets its answer within 3 s, and the click is applied once the writer is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_while_the_store_is_busy_is_answered_in_time_and_applied_after() {
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    setup(dir, &slack, &["app"]);
    let d = daemon(dir);
    set_live(dir, &[("app", "debug", "4")]);
    scan(&d).await;
    let id = drift_id(&d, "app");
    let r = d.store.slack_message("ops", id).unwrap().unwrap();
    let updates = count(&slack.calls(), "chat.update");

    let holder = rusqlite::Connection::open(dir.join("state/envdrift.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let body = click_body("envdrift_ack", &id.to_string(), &r.ts);
    let ts = now_ts();
    let sig = signature(SIGNING.as_bytes(), &ts, body.as_bytes());
    let started = std::time::Instant::now();
    assert_eq!(post(&d, &body, Some(&ts), Some(&sig)).await, StatusCode::OK);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    slack
        .wait_for("the acknowledged card", BOUND, |c| {
            count(c, "chat.update") == updates + 1
        })
        .await;
    assert!(d.store.drift(id).unwrap().0.acked_at.is_some());
}
