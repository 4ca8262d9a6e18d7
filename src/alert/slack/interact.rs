//! The buttons: Slack's interaction requests (`POST /api/v1/slack/interactions`,
//! `src/api/slack.rs`), verified with the app's signing secret, and what a click does.
//!
//! - [`verify`] (pure): `X-Slack-Signature` = `v0=` + hex HMAC-SHA256(signing secret,
//!   `v0:{X-Slack-Request-Timestamp}:{raw body}`), compared in constant time; a timestamp
//!   more than [`MAX_AGE_SECS`] from now is refused (replay).
//! - [`parse`] (pure): the form-encoded `payload` of a `block_actions` click.
//! - the API (`src/api/slack.rs`) acknowledges or silences (24 h) the drift through the
//!   daemon's one action path (`Daemon::acknowledge` / `Daemon::silence`, as the API and the
//!   web page do), `acked_by` the Slack user, and answers at once. That path queues an
//!   `acknowledged` / `silenced` alert in the same transaction; the outbox delivers it
//!   (retried, in order with the drift's other alerts): the drift's message rewritten
//!   ("Acknowledged by @user" instead of the buttons) and a reply in its thread
//!   (`super::lifecycle::deliver_action`).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::message::{self, ACK_ACTION, SILENCE_ACTION};
use super::sink::SlackSink;

/// Requests signed more than this long ago (or ahead) are refused.
pub const MAX_AGE_SECS: i64 = 300;
/// How long a click silences a drift.
pub const SILENCE_HOURS: i64 = 24;

/// Why a request was refused before anything was done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("missing X-Slack-Signature or X-Slack-Request-Timestamp header")]
    Missing,
    #[error("the request timestamp is more than 5 minutes from now (replay?)")]
    Stale,
    #[error("the signature does not match")]
    BadSignature,
}

/// `v0=` + hex HMAC-SHA256(secret, `v0:{timestamp}:{body}`).
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(3 + tag.len() * 2);
    out.push_str("v0=");
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Checks a request's signature and age (`now`: Unix seconds).
///
/// # Errors
/// [`Refused`]: a header missing, the timestamp not a number or too old, the signature wrong.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    sig: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Refused> {
    let (Some(ts), Some(sig)) = (timestamp, sig) else {
        return Err(Refused::Missing);
    };
    let t: i64 = ts.trim().parse().map_err(|_| Refused::Stale)?;
    if now.abs_diff(t) > MAX_AGE_SECS.unsigned_abs() {
        return Err(Refused::Stale);
    }
    let want = signature(secret, ts.trim(), body);
    if bool::from(want.as_bytes().ct_eq(sig.trim().as_bytes())) {
        Ok(())
    } else {
        Err(Refused::BadSignature)
    }
}

/// The replay cache's key of a request: `{timestamp}:{hex sha256(body)}`.
fn replay_key(timestamp: &str, body: &[u8]) -> String {
    use sha2::Digest as _;
    let mut out = format!("{}:", timestamp.trim());
    for b in Sha256::digest(body) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// What was clicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Acknowledge,
    Silence,
    /// The link button (Slack reports it too): nothing to do.
    Open,
}

/// A parsed click.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    pub action: Action,
    pub drift_id: i64,
    /// Slack user id (`U0123`).
    pub user_id: String,
    /// Slack user name, when sent.
    pub user_name: Option<String>,
    /// Where the clicked message is.
    pub channel: Option<String>,
    pub message_ts: Option<String>,
}

/// Parses Slack's form-encoded body (`payload=<JSON>`) of a `block_actions` request.
///
/// # Errors
/// A readable reason: no `payload`, not JSON, not `block_actions`, no user, no known action,
/// a drift id that is not a number.
pub fn parse(body: &[u8]) -> Result<Click, String> {
    let payload = url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
        .ok_or("no `payload` form field")?;
    let v: serde_json::Value =
        serde_json::from_str(&payload).map_err(|e| format!("`payload` is not JSON: {e}"))?;
    let ty = v["type"].as_str().unwrap_or("");
    if ty != "block_actions" {
        return Err(format!(
            "`payload.type` is `{ty}`; only block_actions (button clicks) are handled"
        ));
    }
    let user_id = v["user"]["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or("`payload.user.id` is missing")?
        .to_string();
    let user_name = v["user"]["username"]
        .as_str()
        .or_else(|| v["user"]["name"].as_str())
        .map(str::to_string);
    let actions = v["actions"]
        .as_array()
        .ok_or("`payload.actions` is missing")?;
    let a = actions
        .iter()
        .find(|a| {
            matches!(
                a["action_id"].as_str(),
                Some(ACK_ACTION | SILENCE_ACTION | message::LINK_ACTION)
            )
        })
        .ok_or("no envdrift action in `payload.actions`")?;
    let action = match a["action_id"].as_str() {
        Some(ACK_ACTION) => Action::Acknowledge,
        Some(SILENCE_ACTION) => Action::Silence,
        _ => Action::Open,
    };
    let drift_id = match action {
        Action::Open => 0,
        _ => a["value"]
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|i| *i > 0)
            .ok_or("the action's `value` is not a drift id")?,
    };
    let channel = v["container"]["channel_id"]
        .as_str()
        .or_else(|| v["channel"]["id"].as_str())
        .map(str::to_string);
    let message_ts = v["container"]["message_ts"]
        .as_str()
        .or_else(|| v["message"]["ts"].as_str())
        .map(str::to_string);
    Ok(Click {
        action,
        drift_id,
        user_id,
        user_name,
        channel,
        message_ts,
    })
}

impl SlackSink {
    /// Checks a request against this sink's signing secret (`Missing` when it has none).
    ///
    /// # Errors
    /// See [`verify`].
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        sig: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), Refused> {
        let Some(secret) = &self.signing_secret else {
            return Err(Refused::Missing);
        };
        verify(secret.expose().as_bytes(), timestamp, sig, body, now)
    }

    /// Remembers a verified request by what its signature covers (its timestamp, trimmed
    /// as [`verify`] reads it, and the SHA-256 of its body), so that the same request with
    /// its headers spelled differently is still a replay; `false` when it was seen within
    /// the replay window already.
    pub fn first_time(&self, timestamp: &str, body: &[u8], now: i64) -> bool {
        let sig = replay_key(timestamp, body);
        let sig = sig.as_str();
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while seen
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) > 2 * MAX_AGE_SECS)
        {
            seen.pop_front();
        }
        if seen.iter().any(|(_, s)| s == sig) {
            return false;
        }
        seen.push_back((now, sig.to_string()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's documented example (api.slack.com/authentication/verifying-requests-from-slack).
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slacks_documented_example_verifies() {
        assert_eq!(signature(SECRET.as_bytes(), TS, BODY.as_bytes()), SIG);
        let now = 1_531_420_618 + 10;
        assert_eq!(
            verify(SECRET.as_bytes(), Some(TS), Some(SIG), BODY.as_bytes(), now),
            Ok(())
        );
        assert_eq!(
            verify(SECRET.as_bytes(), Some(TS), Some(SIG), b"tampered", now),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            verify(b"other", Some(TS), Some(SIG), BODY.as_bytes(), now),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            verify(
                SECRET.as_bytes(),
                Some(TS),
                Some(SIG),
                BODY.as_bytes(),
                now + 301
            ),
            Err(Refused::Stale)
        );
        assert_eq!(
            verify(SECRET.as_bytes(), None, Some(SIG), BODY.as_bytes(), now),
            Err(Refused::Missing)
        );
        assert_eq!(
            verify(
                SECRET.as_bytes(),
                Some("soon"),
                Some(SIG),
                BODY.as_bytes(),
                now
            ),
            Err(Refused::Stale)
        );
    }

    #[test]
    fn the_timestamp_may_be_five_minutes_off_either_way() {
        let ts: i64 = 1_531_420_618;
        let check = |now: i64| verify(SECRET.as_bytes(), Some(TS), Some(SIG), BODY.as_bytes(), now);
        assert_eq!(check(ts + 300), Ok(()), "5 minutes old");
        assert_eq!(check(ts - 300), Ok(()), "5 minutes ahead");
        assert_eq!(check(ts + 301), Err(Refused::Stale), "past");
        assert_eq!(check(ts - 301), Err(Refused::Stale), "future");
        assert_eq!(check(i64::MIN), Err(Refused::Stale));
        assert_eq!(check(i64::MAX), Err(Refused::Stale));
    }

    fn form(payload: &serde_json::Value) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
            .into_bytes()
    }

    #[test]
    fn clicks_parse_and_bad_payloads_say_why() {
        let p = serde_json::json!({
            "type": "block_actions",
            "user": {"id": "U0ALICE", "username": "alice"},
            "container": {"type": "message", "channel_id": "C0ALERTS", "message_ts": "1.2"},
            "actions": [{"action_id": "envdrift_silence", "value": "17", "type": "button"}]
        });
        let c = parse(&form(&p)).expect("parses");
        assert_eq!(c.action, Action::Silence);
        assert_eq!(c.drift_id, 17);
        assert_eq!(c.user_name.as_deref(), Some("alice"));
        assert_eq!(c.channel.as_deref(), Some("C0ALERTS"));
        assert!(parse(b"nothing=1").unwrap_err().contains("payload"));
        assert!(parse(b"payload=%7Bnot").unwrap_err().contains("not JSON"));
        let mut bad = p.clone();
        bad["actions"][0]["value"] = "x".into();
        assert!(parse(&form(&bad)).unwrap_err().contains("drift id"));
        let mut bad = p.clone();
        bad["type"] = "view_submission".into();
        assert!(parse(&form(&bad)).unwrap_err().contains("block_actions"));
        let mut bad = p;
        bad["user"] = serde_json::json!({});
        assert!(parse(&form(&bad)).unwrap_err().contains("user.id"));
    }
}
