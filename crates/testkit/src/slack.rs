//! A Slack Web API stand-in: `chat.postMessage` and `auth.test` with bearer-token checks,
//! and incoming webhooks under `/services/…`. It checks the payload as Slack does (a
//! channel, a `text` fallback or blocks, at most 50 blocks, each of a known type with the
//! fields that type needs, text objects of a valid type and length) and records every
//! accepted message. Queue [`Reply`]s to answer 429 (with `Retry-After`) or 5xx on demand.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Recorded, Reply};

#[derive(Default)]
struct Inner {
    token: String,
    webhook_path: String,
    queue: VecDeque<Reply>,
    accepted: Vec<Recorded>,
    requests: usize,
}

/// The running stand-in; stops when dropped.
pub struct SlackServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl SlackServer {
    /// Starts on 127.0.0.1:0, accepting bot token `token` and the incoming webhook at
    /// `webhook_path` (e.g. `/services/T000/B000/XXXX`).
    pub async fn start(token: &str, webhook_path: &str) -> SlackServer {
        let inner = Arc::new(Mutex::new(Inner {
            token: token.to_string(),
            webhook_path: webhook_path.to_string(),
            ..Inner::default()
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        SlackServer {
            addr,
            inner,
            stop: Some(tx),
        }
    }

    /// The Web API base URL to configure as `api_url`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// The incoming webhook URL.
    pub fn webhook_url(&self) -> String {
        let path = self.inner.lock().expect("lock").webhook_path.clone();
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests with these replies, in order.
    pub fn queue(&self, replies: &[Reply]) {
        self.inner
            .lock()
            .expect("lock")
            .queue
            .extend(replies.iter().copied());
    }

    /// Messages accepted so far.
    pub fn accepted(&self) -> Vec<Recorded> {
        self.inner.lock().expect("lock").accepted.clone()
    }

    /// Requests received so far (accepted or not).
    pub fn requests(&self) -> usize {
        self.inner.lock().expect("lock").requests
    }
}

impl Drop for SlackServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn ok_false(error: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"ok": false, "error": error})),
    )
        .into_response()
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let (token, webhook_path, queued) = {
        let mut g = inner.lock().expect("lock");
        g.requests += 1;
        (g.token.clone(), g.webhook_path.clone(), g.queue.pop_front())
    };
    match queued {
        Some(Reply::RateLimited(secs)) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.to_string())],
                axum::Json(json!({"ok": false, "error": "ratelimited"})),
            )
                .into_response();
        }
        Some(Reply::ServerError) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
        Some(Reply::Unavailable) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "unavailable").into_response();
        }
        Some(Reply::BadRequest) => {
            return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
        }
        Some(Reply::Forbidden) => {
            return (StatusCode::FORBIDDEN, "action_prohibited").into_response();
        }
        Some(Reply::Stall) => {
            tokio::time::sleep(std::time::Duration::from_secs(120)).await;
            return (StatusCode::SERVICE_UNAVAILABLE, "stalled").into_response();
        }
        None => {}
    }
    let recorded = Recorded {
        path: path.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.to_vec(),
    };
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match path.as_str() {
        "/api/auth.test" => {
            if bearer != Some(token.as_str()) {
                return ok_false(if bearer.is_none() {
                    "not_authed"
                } else {
                    "invalid_auth"
                });
            }
            axum::Json(json!({
                "ok": true, "url": "https://envdrift-test.slack.com/", "team": "envdrift",
                "user": "envdrift", "team_id": "T0ENVDRIFT", "user_id": "U0ENVDRIFT", "bot_id": "B0ENVDRIFT"
            }))
            .into_response()
        }
        "/api/chat.postMessage" => {
            if bearer != Some(token.as_str()) {
                return ok_false(if bearer.is_none() {
                    "not_authed"
                } else {
                    "invalid_auth"
                });
            }
            let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                return ok_false("invalid_json");
            };
            let channel = v.get("channel").and_then(Value::as_str).unwrap_or("");
            if channel.is_empty() {
                return ok_false("channel_not_found");
            }
            if let Err(e) = check_message(&v) {
                return ok_false(&e);
            }
            let text = v.get("text").cloned().unwrap_or(Value::Null);
            inner.lock().expect("lock").accepted.push(recorded);
            axum::Json(json!({
                "ok": true, "channel": channel, "ts": "1764150300.000100",
                "message": {"type": "message", "user": "U0ENVDRIFT", "ts": "1764150300.000100", "text": text}
            }))
            .into_response()
        }
        p if p == webhook_path => {
            let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
            };
            if v.get("channel").is_some() {
                return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
            }
            if let Err(e) = check_message(&v) {
                return (StatusCode::BAD_REQUEST, e).into_response();
            }
            inner.lock().expect("lock").accepted.push(recorded);
            (StatusCode::OK, [("content-type", "text/html")], "ok").into_response()
        }
        p if p.starts_with("/services/") => (StatusCode::NOT_FOUND, "no_service").into_response(),
        _ => ok_false("unknown_method"),
    }
}

const BLOCK_TYPES: &[&str] = &[
    "section",
    "header",
    "divider",
    "context",
    "actions",
    "image",
    "rich_text",
    "markdown",
];

fn check_text(t: &Value, max: usize, plain_only: bool) -> Result<(), String> {
    let ty = t.get("type").and_then(Value::as_str).unwrap_or("");
    if plain_only && ty != "plain_text" || !matches!(ty, "plain_text" | "mrkdwn") {
        return Err("invalid_blocks: bad text object type".into());
    }
    let s = t
        .get("text")
        .and_then(Value::as_str)
        .ok_or("invalid_blocks: text object without text")?;
    if s.is_empty() || s.chars().count() > max {
        return Err(format!(
            "invalid_blocks: text length {} (1..={max})",
            s.chars().count()
        ));
    }
    Ok(())
}

/// What Slack checks of a message's shape (a subset, enough to catch broken templates).
fn check_message(v: &Value) -> Result<(), String> {
    let text = v.get("text").and_then(Value::as_str).unwrap_or("");
    let blocks = v.get("blocks");
    if text.is_empty() && blocks.is_none() {
        return Err("no_text".into());
    }
    let Some(blocks) = blocks else { return Ok(()) };
    let blocks = blocks.as_array().ok_or("invalid_blocks_format")?;
    if blocks.is_empty() || blocks.len() > 50 {
        return Err(format!("invalid_blocks: {} blocks", blocks.len()));
    }
    for b in blocks {
        let ty = b
            .get("type")
            .and_then(Value::as_str)
            .ok_or("invalid_blocks: block without type")?;
        if !BLOCK_TYPES.contains(&ty) {
            return Err(format!("invalid_blocks: unknown block type {ty}"));
        }
        match ty {
            "header" => check_text(
                b.get("text").ok_or("invalid_blocks: header without text")?,
                150,
                true,
            )?,
            "section" => match (b.get("text"), b.get("fields")) {
                (Some(t), _) => check_text(t, 3000, false)?,
                (None, Some(f)) if f.as_array().is_some_and(|a| !a.is_empty() && a.len() <= 10) => {
                }
                _ => return Err("invalid_blocks: section needs text or fields".into()),
            },
            "context" => {
                let els = b
                    .get("elements")
                    .and_then(Value::as_array)
                    .ok_or("invalid_blocks: context without elements")?;
                if els.is_empty() || els.len() > 10 {
                    return Err("invalid_blocks: context elements".into());
                }
                for e in els {
                    check_text(e, 3000, false)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}
