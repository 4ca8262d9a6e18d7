//! A Slack Web API stand-in: `chat.postMessage`, `chat.update`, `conversations.history`,
//! `conversations.replies` (both paged by `limit` and `cursor`, see
//! [`SlackServer::page_size`]) and `auth.test` with bearer-token checks, and incoming webhooks under `/services/…`. It checks
//! the payload as Slack does (a channel, a `text` fallback or blocks, at most 50 blocks, each
//! of a known type with the fields that type needs, text objects of a valid type and length,
//! buttons with their limits; on updates a `channel` and the `ts` of a message that exists;
//! on thread replies a `thread_ts` of a message in that channel) and records every accepted
//! message. It keeps the channel's messages as Slack would (each post gets its own `ts`; an
//! update replaces the content, keeping `ts`), with their metadata for
//! `conversations.history`. Queue [`Reply`]s to answer 429 (with `Retry-After`) or 5xx on
//! demand; [`SlackServer::lose_answers`] makes posts go through with their answer lost.

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

/// A message in the stand-in's channels, as it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    /// The parent's `ts` for a thread reply.
    pub thread_ts: Option<String>,
    /// The posted (or last updated) message JSON: `text`, `blocks`, `metadata`.
    pub content: Value,
    /// How many times `chat.update` changed it.
    pub updates: usize,
}

/// One accepted Web API call, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `chat.postMessage` or `chat.update`.
    pub method: String,
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    token: String,
    webhook_path: String,
    queue: VecDeque<Reply>,
    accepted: Vec<Recorded>,
    requests: usize,
    messages: Vec<Message>,
    calls: Vec<Call>,
    next_ts: u64,
    lose_answers: usize,
    history_error: Option<String>,
    /// Requests answered normally before the queue is used.
    pass: usize,
    /// Posts answered normally before `lose_answers` applies.
    lose_skip: usize,
    /// At most this many messages per page of `conversations.history`/`.replies` (0: the
    /// request's `limit`).
    page_size: usize,
}

/// The running stand-in; stops when dropped.
pub struct SlackServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    changed: Arc<tokio::sync::Notify>,
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
        let changed = Arc::new(tokio::sync::Notify::new());
        let app = Router::new()
            .fallback(handle)
            .with_state((inner.clone(), changed.clone()));
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
            changed,
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

    /// Answers the next `n` requests normally, then the next ones with these replies.
    pub fn queue_after(&self, n: usize, replies: &[Reply]) {
        let mut g = self.inner.lock().expect("lock");
        g.pass = n;
        g.queue.extend(replies.iter().copied());
    }

    /// Messages accepted so far.
    pub fn accepted(&self) -> Vec<Recorded> {
        self.inner.lock().expect("lock").accepted.clone()
    }

    /// Requests received so far (accepted or not).
    pub fn requests(&self) -> usize {
        self.inner.lock().expect("lock").requests
    }

    /// The channels' messages as they are now, in posting order.
    pub fn messages(&self) -> Vec<Message> {
        self.inner.lock().expect("lock").messages.clone()
    }

    /// Top-level messages (not thread replies).
    pub fn top_level(&self) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.thread_ts.is_none())
            .collect()
    }

    /// Replies in the thread of `ts`.
    pub fn replies(&self, ts: &str) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.thread_ts.as_deref() == Some(ts))
            .collect()
    }

    /// Deletes a message (as a person in the channel can).
    pub fn delete_message(&self, ts: &str) {
        self.inner
            .lock()
            .expect("lock")
            .messages
            .retain(|m| m.ts != ts);
    }

    /// Accepted `chat.postMessage` and `chat.update` calls, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().expect("lock").calls.clone()
    }

    /// The next `n` `chat.postMessage` calls are carried out but answered with 500, as if
    /// the answer was lost on the way (or the client stopped before reading it).
    pub fn lose_answers(&self, n: usize) {
        self.inner.lock().expect("lock").lose_answers = n;
    }

    /// Like [`SlackServer::lose_answers`], after `skip` posts answered normally.
    pub fn lose_answers_after(&self, skip: usize, n: usize) {
        let mut g = self.inner.lock().expect("lock");
        g.lose_skip = skip;
        g.lose_answers = n;
    }

    /// Pages of `conversations.history` and `conversations.replies` hold at most `n`
    /// messages (with `has_more` and `response_metadata.next_cursor` for the next one).
    pub fn page_size(&self, n: usize) {
        self.inner.lock().expect("lock").page_size = n;
    }

    /// `conversations.history` answers `{"ok": false, "error": error}` (e.g.
    /// `missing_scope`); `None` answers normally.
    pub fn fail_history(&self, error: Option<&str>) {
        self.inner.lock().expect("lock").history_error = error.map(str::to_string);
    }

    /// Waits (at most `within`) until `done` holds for the accepted calls; panics with
    /// `what` when it does not. Woken by each accepted call, no polling.
    pub async fn wait_for(
        &self,
        what: &str,
        within: std::time::Duration,
        done: impl Fn(&[Call]) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.changed.notified();
            if done(&self.calls()) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "the Slack stand-in never saw {what}; calls: {:#?}",
                    self.calls()
                );
            }
        }
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

fn bearer_error(bearer: Option<&str>) -> Response {
    ok_false(if bearer.is_none() {
        "not_authed"
    } else {
        "invalid_auth"
    })
}

type AppState = (Arc<Mutex<Inner>>, Arc<tokio::sync::Notify>);

async fn handle(
    State((inner, changed)): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let res = handle_inner(&inner, &uri, &headers, &body).await;
    changed.notify_waiters();
    res
}

async fn handle_inner(
    inner: &Mutex<Inner>,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let path = uri.path().to_string();
    let (token, webhook_path, queued) = {
        let mut g = inner.lock().expect("lock");
        g.requests += 1;
        let queued = if g.pass > 0 {
            g.pass -= 1;
            None
        } else {
            g.queue.pop_front()
        };
        (g.token.clone(), g.webhook_path.clone(), queued)
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
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return ok_false("invalid_json");
            };
            let channel = v.get("channel").and_then(Value::as_str).unwrap_or("");
            if channel.is_empty() {
                return ok_false("channel_not_found");
            }
            if let Err(e) = check_message(&v) {
                return ok_false(&e);
            }
            // Slack answers with the channel's ID, also when posted to by name.
            let channel = channel_id(channel);
            let channel = channel.as_str();
            let text = v.get("text").cloned().unwrap_or(Value::Null);
            let thread_ts = v
                .get("thread_ts")
                .and_then(Value::as_str)
                .map(str::to_string);
            let mut g = inner.lock().expect("lock");
            if let Some(t) = &thread_ts
                && !g
                    .messages
                    .iter()
                    .any(|m| m.channel == channel && &m.ts == t && m.thread_ts.is_none())
            {
                return ok_false("thread_not_found");
            }
            g.next_ts += 1;
            // Slack's ts: Unix seconds of the post, then a sequence (unique per channel).
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let ts = format!("{secs}.{:06}", g.next_ts % 1_000_000);
            g.accepted.push(recorded);
            g.messages.push(Message {
                channel: channel.to_string(),
                ts: ts.clone(),
                thread_ts: thread_ts.clone(),
                content: content_of(&v),
                updates: 0,
            });
            g.calls.push(Call {
                method: "chat.postMessage".into(),
                channel: channel.to_string(),
                ts: ts.clone(),
                thread_ts,
                body: v.clone(),
            });
            if g.lose_answers > 0 && g.lose_skip > 0 {
                g.lose_skip -= 1;
            } else if g.lose_answers > 0 {
                g.lose_answers -= 1;
                return (StatusCode::INTERNAL_SERVER_ERROR, "answer lost").into_response();
            }
            axum::Json(json!({
                "ok": true, "channel": channel, "ts": ts,
                "message": {"type": "message", "user": "U0ENVDRIFT", "ts": ts, "text": text}
            }))
            .into_response()
        }
        "/api/chat.update" => {
            if bearer != Some(token.as_str()) {
                return bearer_error(bearer);
            }
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return ok_false("invalid_json");
            };
            let channel = v.get("channel").and_then(Value::as_str).unwrap_or("");
            if channel.is_empty() {
                return ok_false("channel_not_found");
            }
            let Some(ts) = v
                .get("ts")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            else {
                return ok_false("invalid_arguments: ts is required");
            };
            if let Err(e) = check_message(&v) {
                return ok_false(&e);
            }
            let mut g = inner.lock().expect("lock");
            let Some(m) = g
                .messages
                .iter_mut()
                .find(|m| m.channel == channel && m.ts == ts)
            else {
                return ok_false("message_not_found");
            };
            m.content = content_of(&v);
            m.updates += 1;
            let thread_ts = m.thread_ts.clone();
            let ts = ts.to_string();
            g.accepted.push(recorded);
            g.calls.push(Call {
                method: "chat.update".into(),
                channel: channel.to_string(),
                ts: ts.clone(),
                thread_ts: thread_ts.clone(),
                body: v.clone(),
            });
            axum::Json(json!({
                "ok": true, "channel": channel, "ts": ts, "thread_ts": thread_ts,
                "text": v.get("text").cloned().unwrap_or(Value::Null),
                "message": {"text": v.get("text").cloned().unwrap_or(Value::Null)}
            }))
            .into_response()
        }
        "/api/conversations.history" | "/api/conversations.replies" => {
            if bearer != Some(token.as_str()) {
                return bearer_error(bearer);
            }
            let q: Vec<(String, String)> = uri
                .query()
                .map(|q| {
                    q.split('&')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_string(), percent_decode(v)))
                        .collect()
                })
                .unwrap_or_default();
            let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let g = inner.lock().expect("lock");
            if let Some(e) = &g.history_error {
                return ok_false(e);
            }
            let Some(channel) = get("channel").filter(|c| !c.is_empty()) else {
                return ok_false("channel_not_found");
            };
            let oldest: f64 = get("oldest").and_then(|o| o.parse().ok()).unwrap_or(0.0);
            let metadata = get("include_all_metadata").as_deref() == Some("true");
            let in_channel = g.messages.iter().filter(|m| m.channel == channel);
            // History: top-level messages, newest first. Replies: the parent, then its
            // thread, oldest first.
            let listed: Vec<&Message> = if path == "/api/conversations.history" {
                in_channel.filter(|m| m.thread_ts.is_none()).rev().collect()
            } else {
                let Some(parent) = get("ts") else {
                    return ok_false("invalid_arguments");
                };
                let list: Vec<&Message> = in_channel
                    .filter(|m| {
                        (m.ts == parent && m.thread_ts.is_none())
                            || m.thread_ts.as_deref() == Some(parent.as_str())
                    })
                    .collect();
                if list.is_empty() {
                    return ok_false("thread_not_found");
                }
                list
            };
            let listed: Vec<&Message> = listed
                .into_iter()
                .filter(|m| m.ts.parse::<f64>().unwrap_or(0.0) >= oldest)
                .collect();
            let limit: usize = get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100)
                .clamp(1, 999);
            let limit = if g.page_size > 0 {
                limit.min(g.page_size)
            } else {
                limit
            };
            let from: usize = get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
            let page: Vec<Value> = listed
                .iter()
                .skip(from)
                .take(limit)
                .map(|m| {
                    let mut out = json!({"type": "message", "user": "U0ENVDRIFT", "ts": m.ts,
                        "text": m.content.get("text").cloned().unwrap_or(Value::Null)});
                    if let Some(t) = &m.thread_ts {
                        out["thread_ts"] = json!(t);
                    }
                    if metadata && let Some(md) = m.content.get("metadata") {
                        out["metadata"] = md.clone();
                    }
                    out
                })
                .collect();
            let next = from.saturating_add(limit);
            let has_more = next < listed.len();
            let cursor = if has_more {
                next.to_string()
            } else {
                String::new()
            };
            axum::Json(json!({"ok": true, "messages": page, "has_more": has_more,
                "response_metadata": {"next_cursor": cursor}}))
            .into_response()
        }
        p if p == webhook_path => {
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
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

/// A channel's ID: `#name` posts land in `C` + the name in capitals (`#drift` → `CDRIFT`);
/// every other method needs the ID, as Slack's do.
fn channel_id(c: &str) -> String {
    match c.strip_prefix('#') {
        Some(name) => format!(
            "C{}",
            name.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_uppercase()
        ),
        None => c.to_string(),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(x) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(x);
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parts of a posted message the channel keeps.
fn content_of(v: &Value) -> Value {
    let mut out = json!({});
    for k in ["text", "blocks", "metadata"] {
        if let Some(x) = v.get(k) {
            out[k] = x.clone();
        }
    }
    out
}

fn check_button(e: &Value) -> Result<(), String> {
    check_text(
        e.get("text").ok_or("invalid_blocks: button without text")?,
        75,
        true,
    )?;
    let action_id = e.get("action_id").and_then(Value::as_str).unwrap_or("");
    if action_id.chars().count() > 255 {
        return Err("invalid_blocks: action_id longer than 255".into());
    }
    if let Some(v) = e.get("value") {
        let v = v
            .as_str()
            .ok_or("invalid_blocks: button value not a string")?;
        if v.chars().count() > 2000 {
            return Err("invalid_blocks: button value longer than 2000".into());
        }
    }
    if let Some(u) = e.get("url") {
        let u = u
            .as_str()
            .ok_or("invalid_blocks: button url not a string")?;
        if u.chars().count() > 3000 || !(u.starts_with("https://") || u.starts_with("http://")) {
            return Err("invalid_blocks: bad button url".into());
        }
    }
    if let Some(s) = e.get("style")
        && !matches!(s.as_str(), Some("primary" | "danger"))
    {
        return Err("invalid_blocks: bad button style".into());
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
            "actions" => {
                let els = b
                    .get("elements")
                    .and_then(Value::as_array)
                    .ok_or("invalid_blocks: actions without elements")?;
                if els.is_empty() || els.len() > 25 {
                    return Err("invalid_blocks: actions elements".into());
                }
                let mut ids = std::collections::HashSet::new();
                for e in els {
                    if e.get("type").and_then(Value::as_str) == Some("button") {
                        check_button(e)?;
                    }
                    if let Some(id) = e.get("action_id").and_then(Value::as_str)
                        && !ids.insert(id)
                    {
                        return Err("invalid_blocks: duplicate action_id".into());
                    }
                }
            }
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
