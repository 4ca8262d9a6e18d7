//! The Slack sink's config.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::alert::route::Route;

/// `type: slack`. Set either a bot token (with `channel`) or an incoming webhook URL.
///
/// ```yaml
/// - type: slack
///   name: ops-slack
///   channel: "#platform-alerts"
///   token_env: SLACK_BOT_TOKEN        # xoxb-…, needs the chat:write scope
/// - type: slack
///   name: ops-slack-buttons
///   channel: C0123ABCD
///   token_env: SLACK_BOT_TOKEN
///   signing_secret_env: SLACK_SIGNING_SECRET   # Acknowledge / Silence buttons
///   public_url: https://envdrift.example.com   # "Open in envdrift" link
/// - type: slack
///   name: team-webhook
///   webhook_url_file: /run/secrets/slack-webhook
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The sink's name, unique among sinks (logs, metrics and the outbox use it).
    pub name: String,
    /// Which notices go here. Default: all.
    #[serde(default)]
    pub route: Route,
    /// Keep retrying a failed delivery for this long after the alert was queued
    /// (`24h`, `30m`). Default: `alerts.retry_for`, else 24 h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_for: Option<String>,
    /// Channel ID or name for `chat.postMessage` (`C0123ABCD`, `#alerts`). Required with a bot
    /// token; not allowed with a webhook (the webhook is bound to its channel).
    #[serde(default)]
    pub channel: Option<String>,
    /// Environment variable holding the bot token (`xoxb-…`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the bot token (a mounted Secret); a trailing newline is ignored.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding an incoming webhook URL (it is a secret: anyone with it
    /// can post).
    #[serde(default)]
    pub webhook_url_env: Option<String>,
    /// File holding an incoming webhook URL.
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    /// Slack Web API base URL. Default `https://slack.com/api` (as slack-morphism). Plain
    /// `http://` is accepted only for loopback (tests, a local proxy).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Bot display name override (needs `chat:write.customize`). Default: the app's name.
    #[serde(default)]
    pub username: Option<String>,
    /// Bot icon override, e.g. `:mag:`. Default: the app's icon.
    #[serde(default)]
    pub icon_emoji: Option<String>,
    /// Environment variable holding the Slack app's signing secret: turns on the buttons'
    /// endpoint `POST /api/v1/slack/interactions` for this sink (bot token only).
    #[serde(default)]
    pub signing_secret_env: Option<String>,
    /// File holding the signing secret.
    #[serde(default)]
    pub signing_secret_file: Option<PathBuf>,
    /// Base URL of envdrift's web page (`https://envdrift.example.com`): each drift message
    /// gets a link button to `{public_url}/drifts/{id}`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Time limit for one Slack API call, in seconds. Default 20.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_api_url() -> String {
    slack_morphism::SlackClientHttpApiUri::SLACK_API_URI_STR.to_string()
}

fn default_timeout() -> u64 {
    20
}
