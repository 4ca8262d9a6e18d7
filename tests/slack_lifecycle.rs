//! Slack as people use it, through the daemon, its store and its API against the Slack
//! stand-in (crates/testkit/src/slack.rs): one message per drift that updates itself, thread
//! replies per event, digests with each drift's thread under them, signed button clicks,
//! and the restart window between a post and the store's record of its `ts`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use envdrift::alert::slack::interact::signature;
use envdrift::config::ApiConfig;
use envdrift::daemon::Daemon;
use envdrift::store::EventKind;
use envdrift_testkit::Reply;
use envdrift_testkit::slack::SlackServer;
use serde_json::{Value, json};
use tower::ServiceExt as _;

#[path = "common/slack.rs"]
mod common_slack;
use common_slack::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_changed_acknowledged_resolved_is_one_message_updated_in_place_with_a_thread() {
    let f = Fixture::start(&["app"]).await;
    let (slack, dir, d) = (&f.slack, f.dir(), f.d.clone());

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
    // The message is rewritten by the outbox (the alert queued with the action).
    d.drain_outbox(BOUND).await.unwrap();
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
    let f = Fixture::start(&["app", "worker"]).await;
    let (slack, dir, d) = (&f.slack, f.dir(), f.d.clone());
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
    // The message is rewritten by the outbox (the alert queued with the action).
    d.drain_outbox(BOUND).await.unwrap();
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
    let f = Fixture::start(&["app"]).await;
    let (slack, dir, d) = (&f.slack, f.dir(), f.d.clone());
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
    let f = Fixture::start(&["app", "worker", "web"]).await;
    let (slack, dir, d) = (&f.slack, f.dir(), f.d.clone());
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
    let f = Fixture::start(&["app"]).await;
    let (slack, dir, d) = (&f.slack, f.dir(), f.d.clone());
    let (id, r) = f.open("app").await;
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
    let f = Fixture::start(&["app"]).await;
    let (slack, d) = (&f.slack, f.d.clone());
    let (id, r) = f.open("app").await;
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
    let f = Fixture::start(&["app"]).await;
    let d = f.d.clone();
    let (id, r) = f.open("app").await;
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
    let f = Fixture::start(&["app", "worker", "web"]).await;
    let (slack, dir, d) = (&f.slack, f.dir(), f.d.clone());
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
    let f = Fixture::start(&["app"]).await;
    let (slack, dir, d) = (&f.slack, f.dir(), f.d.clone());
    let (id, r) = f.open("app").await;
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
    // The message is rewritten by the outbox (the alert queued with the action, once the
    // store is free).
    deliver_until(&d, slack, "the acknowledged card", |c| {
        count(c, "chat.update") == updates + 1
    })
    .await;
    assert!(d.store.drift(id).unwrap().0.acked_at.is_some());
}

/// Acknowledge and silence from the API (as from the web page: the same path) reach Slack
/// through the outbox: the drift's message shows who did it instead of the buttons, and its
/// thread says so; a webhook sink gets the same events (`kind` `acknowledged` /
/// `silenced`), an email sink would not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_acknowledge_and_silence_update_the_slack_message_and_reply_in_its_thread() {
    let f = Fixture::start(&["app"]).await;
    let hook = envdrift_testkit::webhook::WebhookServer::start("hook-secret-0123456789").await;
    std::fs::write(f.dir().join("hook.secret"), "hook-secret-0123456789").unwrap();
    let cfg = std::fs::read_to_string(f.dir().join("envdrift.yaml")).unwrap();
    std::fs::write(
        f.dir().join("envdrift.yaml"),
        format!(
            "{cfg}    - {{type: webhook, name: hook, url: '{}', secret_file: hook.secret}}\n",
            hook.url()
        ),
    )
    .unwrap();
    let d = daemon(f.dir());
    let slack = &f.slack;
    set_live(f.dir(), &[("app", "debug", "4")]);
    scan(&d).await;
    let id = drift_id(&d, "app");
    let r = d.store.slack_message("ops", id).unwrap().unwrap();
    let before = slack.calls().len();
    let hooks_before = hook.accepted().len();

    let (status, text) = api_post(
        &d,
        &format!("/api/v1/drifts/{id}/ack"),
        r#"{"note": "looking"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    // Queued with the action, in its transaction: one row for Slack, one for the webhook.
    let queued: Vec<_> = d
        .store
        .outbox(10)
        .unwrap()
        .into_iter()
        .filter(|o| o.kind == "acknowledged")
        .map(|o| o.sink)
        .collect();
    assert_eq!(queued, ["hook", "ops"], "one row per sink, newest first");
    d.drain_outbox(BOUND).await.unwrap();
    let calls = slack.calls();
    let new = &calls[before..];
    assert_eq!(
        new.iter().map(|c| c.method.as_str()).collect::<Vec<_>>(),
        ["chat.update", "chat.postMessage"],
        "{new:#?}"
    );
    assert_eq!(new[0].ts, r.ts, "the drift's own message is updated");
    assert_eq!(new[1].thread_ts.as_deref(), Some(r.thread_ts.as_str()));
    let shown_text = slack.messages()[0].content.to_string();
    assert!(
        shown_text.contains("Acknowledged by loopback: looking"),
        "{shown_text}"
    );
    assert!(!shown_text.contains("envdrift_ack"), "buttons replaced");
    let reply = slack.replies(&r.ts).last().unwrap().content.to_string();
    assert!(
        reply.contains("Acknowledged by loopback: looking"),
        "{reply}"
    );
    let sent = hook.accepted();
    assert_eq!(sent.len(), hooks_before + 1);
    let event: Value = serde_json::from_slice(&sent.last().unwrap().body).unwrap();
    assert_eq!(event["kind"], "acknowledged");
    assert_eq!(event["extra"]["by"], "loopback: looking");
    assert_eq!(event["groups"][0]["drifts"][0]["drift_id"], id);

    // Silence from the API: the same, with its time.
    let (status, text) = api_post(
        &d,
        &format!("/api/v1/drifts/{id}/silence"),
        r#"{"until": "2099-01-01T00:00:00Z", "reason": "known"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    d.drain_outbox(BOUND).await.unwrap();
    let shown_text = slack.messages()[0].content.to_string();
    assert!(
        shown_text.contains("Silenced until 2099-01-01"),
        "{shown_text}"
    );
    assert_eq!(slack.replies(&r.ts).len(), 2, "one reply per action");
    let event: Value = serde_json::from_slice(&hook.accepted().last().unwrap().body).unwrap();
    assert_eq!(event["kind"], "silenced");
    assert_eq!(event["extra"]["until"], "2099-01-01T00:00:00.000Z");
    assert!(
        d.store
            .outbox(20)
            .unwrap()
            .iter()
            .all(|o| o.state.as_str() == "sent"),
        "every alert delivered"
    );
}

/// Slack fails the first calls of the update (503 twice): the outbox retries with backoff
/// and the action shows once (one update that stuck, one thread reply).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_is_retried_when_slack_fails_and_shown_once() {
    let f = Fixture::start(&["app"]).await;
    let (slack, d) = (&f.slack, f.d.clone());
    let (id, r) = f.open("app").await;
    let before = slack.calls().len();
    slack.queue(&[Reply::Unavailable, Reply::Unavailable]);
    assert_eq!(f.click("envdrift_ack", id, &r.ts).await, StatusCode::OK);
    d.drain_outbox(BOUND).await.unwrap();
    let row = d
        .store
        .outbox(10)
        .unwrap()
        .into_iter()
        .find(|o| o.kind == "acknowledged")
        .expect("queued");
    assert_eq!(row.state.as_str(), "sent");
    assert_eq!(row.attempts, 3, "two failures, then delivered");
    let calls = slack.calls();
    let new = &calls[before..];
    assert_eq!(count(new, "chat.update"), 1, "{new:#?}");
    assert_eq!(count(new, "chat.postMessage"), 1, "one reply: {new:#?}");
    assert_eq!(slack.replies(&r.ts).len(), 1);
    assert!(
        slack.messages()[0]
            .content
            .to_string()
            .contains("Acknowledged by <@U0ALICE>")
    );
}

/// A click whose update keeps failing until a newer "changed" alert went out: the late
/// retry finds the drift changed (its acknowledgement cleared) and is done without sending,
/// so the message ends showing the change with its buttons, never "Acknowledged by" over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_action_never_overwrites_a_newer_change() {
    let f = Fixture::start(&["app"]).await;
    // Retries after a second: the change is queued and sent while the ack waits.
    let d = daemon_with_backoff(f.dir(), Duration::from_secs(1));
    let slack = &f.slack;
    set_live(f.dir(), &[("app", "debug", "4")]);
    scan(&d).await;
    let id = drift_id(&d, "app");
    let r = d.store.slack_message("ops", id).unwrap().unwrap();
    slack.queue(&[Reply::Unavailable]);
    let body = click_body("envdrift_ack", &id.to_string(), &r.ts);
    let ts = now_ts();
    let sig = signature(SIGNING.as_bytes(), &ts, body.as_bytes());
    assert_eq!(post(&d, &body, Some(&ts), Some(&sig)).await, StatusCode::OK);
    assert!(d.store.drift(id).unwrap().0.acked_at.is_some());
    d.drain_outbox(Duration::from_millis(100)).await.unwrap();
    let ack = |d: &Daemon| {
        d.store
            .outbox(10)
            .unwrap()
            .into_iter()
            .find(|o| o.kind == "acknowledged")
            .expect("queued")
    };
    let first = ack(&d);
    assert_eq!(
        (first.state.as_str(), first.attempts),
        ("pending", 1),
        "{first:?}"
    );
    // A newer change: sent at once; the ack's retry comes after it and is done unsent.
    set_live(f.dir(), &[("app", "trace", "4")]);
    scan(&d).await;
    let (row, _) = d.store.drift(id).unwrap();
    assert!(
        row.acked_at.is_none(),
        "a change clears the acknowledgement"
    );
    let late = ack(&d);
    assert_eq!(
        (late.state.as_str(), late.attempts),
        ("sent", 2),
        "{late:?}"
    );
    assert_eq!(
        count(&slack.calls(), "chat.update"),
        1,
        "only the change's update: {:#?}",
        slack.calls()
    );
    let shown_text = slack.messages()[0].content.to_string();
    assert!(shown_text.contains("Drift changed"), "{shown_text}");
    assert!(shown_text.contains("trace"), "{shown_text}");
    assert!(!shown_text.contains("Acknowledged by"), "{shown_text}");
    assert!(
        shown_text.contains("envdrift_ack"),
        "buttons back: {shown_text}"
    );
    let replies: Vec<String> = slack
        .replies(&r.ts)
        .iter()
        .map(|m| m.content.to_string())
        .collect();
    assert!(
        replies.iter().all(|t| !t.contains("Acknowledged by")),
        "{replies:#?}"
    );
}
