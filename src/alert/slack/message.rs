//! Pure: one drift's Slack message (its "card") in each state, and the short thread replies
//! that say what changed. No network; pinned with insta in `tests.rs`.
//!
//! A card is what `chat.postMessage` posts for a drift's first event and what `chat.update`
//! rewrites for every later one: a header saying what happened ("New drift", "Drift
//! changed", "Drift resolved", …), severity, attribution, the fix, and the buttons
//! `Acknowledge` (`envdrift_ack`) and `Silence 24h` (`envdrift_silence`), whose `value` is the
//! drift id, plus a link to the drift's web page when `public_url` is configured. A resolved,
//! acknowledged or silenced card shows that instead of the buttons.

use serde_json::{Value, json};

use crate::alert::notice::{DriftEvent, NoticeDrift};
use crate::alert::templates::shorten;
use crate::model::Severity;

/// The `action_id` of the Acknowledge button.
pub const ACK_ACTION: &str = "envdrift_ack";
/// The `action_id` of the Silence 24h button.
pub const SILENCE_ACTION: &str = "envdrift_silence";
/// The `action_id` of the link button (Slack sends a click on it too; it is ignored).
pub const LINK_ACTION: &str = "envdrift_open";

/// Slack's limit on the characters of one section text.
pub const MAX_TEXT: usize = 3000;
/// Changes listed on a card; the rest are counted.
const MAX_CHANGES: usize = 20;
/// Characters of the changes section before the rest are counted instead.
const CHANGES_BUDGET: usize = 2700;

/// What a card shows below the drift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Open: the buttons.
    Open,
    /// Resolved at this time.
    Resolved { at: String },
    /// Acknowledged by this Slack user id (or API caller name when not from Slack).
    Acknowledged { by: String },
    /// Silenced until this time by this Slack user id.
    Silenced { by: String, until: String },
}

/// Everything a card is made of.
#[derive(Debug, Clone)]
pub struct Card<'a> {
    /// Environment or comparison name.
    pub env: &'a str,
    pub drift: &'a NoticeDrift,
    pub event: DriftEvent,
    pub status: Status,
    /// Base URL of envdrift's web page (`public_url`), for the link button.
    pub public_url: Option<&'a str>,
    /// RFC 3339: when this state was reached (the alert's time).
    pub at: &'a str,
}

/// Escapes Slack's mrkdwn control characters.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack user mention (`<@U123>`) for an id that looks like one, else the escaped text.
pub fn mention(user: &str) -> String {
    if !user.is_empty() && user.chars().all(|c| c.is_ascii_alphanumeric()) {
        format!("<@{user}>")
    } else {
        esc(user)
    }
}

fn emoji(s: Severity) -> &'static str {
    match s {
        Severity::Critical => ":red_circle:",
        Severity::High => ":large_orange_circle:",
        Severity::Medium => ":large_yellow_circle:",
        Severity::Low => ":large_blue_circle:",
        Severity::Info => ":white_circle:",
    }
}

/// The card's headline: what happened.
pub fn headline(event: DriftEvent, status: &Status) -> &'static str {
    match (status, event) {
        (Status::Acknowledged { .. }, _) => "Drift acknowledged",
        (Status::Silenced { .. }, _) => "Drift silenced",
        (Status::Resolved { .. }, _) | (_, DriftEvent::Resolved) => "Drift resolved",
        (_, DriftEvent::Opened) => "New drift",
        (_, DriftEvent::Reopened) => "Drift reopened",
        (_, DriftEvent::Changed) => "Drift changed",
        (_, DriftEvent::Escalated) => "Drift escalated",
        (_, DriftEvent::Reminder) => "Drift still open",
    }
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": shorten(&text, MAX_TEXT - 100)}})
}

fn context(text: String) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": shorten(&text, MAX_TEXT - 100)}]})
}

fn button(text: &str, action_id: &str, value: &str, style: Option<&str>) -> Value {
    let mut b = json!({
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": true},
        "action_id": action_id,
        "value": value,
    });
    if let Some(s) = style {
        b["style"] = json!(s);
    }
    b
}

/// The drift's web page: `{public_url}/drifts/{id}`.
pub fn drift_url(public_url: &str, drift_id: i64) -> String {
    format!("{}/drifts/{drift_id}", public_url.trim_end_matches('/'))
}

/// The card as a message: `{"text": fallback, "blocks": [...]}` (at most 8 blocks, each text
/// within Slack's limits).
pub fn card(c: &Card<'_>) -> Value {
    let d = c.drift;
    let resolved = matches!(c.status, Status::Resolved { .. });
    let head = headline(c.event, &c.status);
    let mark = if resolved {
        ":white_check_mark:"
    } else {
        emoji(d.severity)
    };
    let text = format!("{}: {head}: {} ({})", c.env, d.resource, d.severity);
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": shorten(&format!("{head}: {}", d.resource), 150), "emoji": true}
    })];
    let was = match d.previous_severity {
        Some(p) if p != d.severity => format!(" (was {p})"),
        _ => String::new(),
    };
    let age = if d.age.is_empty() {
        String::new()
    } else {
        format!(", open {}", d.age)
    };
    blocks.push(section(format!(
        "{mark} *{}*{was} · {} · environment `{}` · cause {}\nFirst seen {}{age}",
        d.severity.as_str().to_uppercase(),
        esc(&d.drift_type),
        esc(c.env),
        esc(&d.cause),
        esc(&d.first_seen),
    )));
    if !d.changes.is_empty() {
        let mut lines: Vec<String> = Vec::new();
        let mut used = 0usize;
        for ch in d.changes.iter().take(MAX_CHANGES) {
            let by = ch
                .manager
                .as_deref()
                .map(|m| format!(" by {}", esc(m)))
                .unwrap_or_default();
            let when = ch
                .time
                .as_deref()
                .map(|t| format!(" at {}", esc(t)))
                .unwrap_or_default();
            let line = if resolved {
                format!(
                    "• `{}`: ~`{}`~ → `{}` (back to desired)",
                    esc(&ch.field),
                    esc(&ch.live),
                    esc(&ch.desired)
                )
            } else {
                format!(
                    "• `{}`: `{}` → `{}`{by}{when}",
                    esc(&ch.field),
                    esc(&ch.desired),
                    esc(&ch.live)
                )
            };
            let line = shorten(&line, 600);
            let n = line.chars().count() + 1;
            if used + n > CHANGES_BUDGET {
                break;
            }
            used += n;
            lines.push(line);
        }
        if lines.len() < d.changes.len() {
            lines.push(format!(
                "…and {} more changes",
                d.changes.len() - lines.len()
            ));
        }
        blocks.push(section(lines.join("\n")));
    }
    if !resolved && !d.kubectl.is_empty() {
        blocks.push(context(format!("Fix: ```{}```", esc(&d.kubectl))));
    }
    let link = match (c.public_url, d.drift_id) {
        (Some(u), Some(id)) => Some(json!({
            "type": "button",
            "text": {"type": "plain_text", "text": "Open in envdrift", "emoji": true},
            "action_id": LINK_ACTION,
            "url": drift_url(u, id),
        })),
        _ => None,
    };
    let status_line = match &c.status {
        Status::Open => None,
        Status::Resolved { at } => Some(format!(
            ":white_check_mark: Resolved at {}: the live state matches again.",
            esc(at)
        )),
        Status::Acknowledged { by } => Some(format!(
            ":white_check_mark: Acknowledged by {}",
            mention(by)
        )),
        Status::Silenced { by, until } => Some(format!(
            ":zzz: Silenced until {} by {}",
            esc(until),
            mention(by)
        )),
    };
    if let Some(line) = status_line {
        blocks.push(context(line));
    }
    let mut elements = Vec::new();
    if let (Status::Open, Some(id)) = (&c.status, d.drift_id) {
        let v = id.to_string();
        elements.push(button("Acknowledge", ACK_ACTION, &v, Some("primary")));
        elements.push(button("Silence 24h", SILENCE_ACTION, &v, None));
    }
    elements.extend(link);
    if !elements.is_empty() {
        let block_id = format!("envdrift_drift_{}", d.drift_id.unwrap_or(0));
        blocks.push(json!({"type": "actions", "block_id": block_id, "elements": elements}));
    }
    blocks.push(context(format!(
        "envdrift · drift {} · {}",
        d.drift_id
            .map_or_else(|| "(no id)".to_string(), |i| i.to_string()),
        esc(c.at)
    )));
    json!({"text": text, "blocks": blocks})
}

/// The short thread reply for a drift's event.
pub fn reply(event: DriftEvent, d: &NoticeDrift) -> String {
    let first = d.changes.first().map(|ch| {
        format!(
            "`{}` is now `{}`{}",
            esc(&ch.field),
            esc(&ch.live),
            ch.manager
                .as_deref()
                .map(|m| format!(" (by {})", esc(m)))
                .unwrap_or_default()
        )
    });
    let more = match d.changes.len() {
        0 | 1 => String::new(),
        n => format!(
            " and {} more change{}",
            n - 1,
            if n == 2 { "" } else { "s" }
        ),
    };
    let what = first.map(|f| format!(": {f}{more}")).unwrap_or_default();
    match event {
        DriftEvent::Opened => format!("{} New drift{what}", emoji(d.severity)),
        DriftEvent::Reopened => {
            format!(":repeat: Reopened: seen again after it was resolved{what}")
        }
        DriftEvent::Changed => format!(":pencil2: Changed{what}"),
        DriftEvent::Escalated => format!(
            ":arrow_up: Escalated from {} to {}{what}",
            d.previous_severity.unwrap_or(d.severity),
            d.severity
        ),
        DriftEvent::Resolved => {
            ":white_check_mark: Resolved: the live state matches the desired state again."
                .to_string()
        }
        DriftEvent::Reminder => format!(
            ":alarm_clock: Still open{}",
            if d.age.is_empty() {
                String::new()
            } else {
                format!(" after {}", d.age)
            }
        ),
    }
}

/// The thread reply for a click: `Acknowledged by @user` / `Silenced until T by @user`.
pub fn action_reply(status: &Status) -> String {
    match status {
        Status::Acknowledged { by } => {
            format!(":white_check_mark: Acknowledged by {}", mention(by))
        }
        Status::Silenced { by, until } => {
            format!(":zzz: Silenced until {} by {}", esc(until), mention(by))
        }
        Status::Resolved { .. } | Status::Open => String::new(),
    }
}
