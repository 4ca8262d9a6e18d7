//! Slack delivery: thin. Render with [`super::payload`], post, classify the error.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::{
    SlackApiChatPostMessageRequest, SlackApiPostWebhookMessageRequest, SlackClientHyperConnector,
};
use slack_morphism::{SlackApiToken, SlackApiTokenValue, SlackChannelId, SlackClient};

use super::config::SlackConfig;
use super::payload;
use super::refs::MessageStore;
use crate::alert::notice::{Notice, NoticeKind};
use crate::alert::route::Route;
use crate::alert::sink::{Secret, SinkError, delivery_error, resolve_secret};
use crate::alert::templates::{Templates, sample_notice, shorten};
use crate::alert::{DeliveryError, http};

pub(super) type Client = SlackClient<SlackClientHyperConnector<HttpsConnector<HttpConnector>>>;

pub(super) enum Target {
    Bot {
        token: SlackApiToken,
        channel: SlackChannelId,
    },
    Webhook {
        url: url::Url,
    },
}

/// A built Slack sink.
pub struct SlackSink {
    pub(super) name: String,
    route: Route,
    pub(super) templates: Templates,
    pub(super) target: Target,
    pub(super) client: Arc<Client>,
    pub(super) username: Option<String>,
    pub(super) icon_emoji: Option<String>,
    pub(super) timeout: Duration,
    /// The daemon's store (each drift's message): without it (one-off tools) every alert is
    /// a new message, as with an incoming webhook.
    pub(super) store: OnceLock<Arc<dyn MessageStore>>,
    /// The app's signing secret: the interactivity endpoint is on for this sink when set.
    pub(super) signing_secret: Option<Secret>,
    pub(super) public_url: Option<String>,
    /// Signatures of interactions already handled (replays within the 5-minute window are
    /// answered without acting again).
    pub(super) seen: Mutex<VecDeque<(i64, String)>>,
}

impl std::fmt::Debug for SlackSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = match &self.target {
            Target::Bot { channel, .. } => format!("bot token, channel {}", channel.0),
            Target::Webhook { .. } => "incoming webhook".to_string(),
        };
        f.debug_struct("SlackSink")
            .field("name", &self.name)
            .field("target", &target)
            .finish_non_exhaustive()
    }
}

impl SlackSink {
    /// Validates `cfg` and resolves its secret. See [`crate::alert::sink::SinkConfig::build`].
    pub fn new(cfg: &SlackConfig, templates: &Templates) -> Result<SlackSink, SinkError> {
        let name = cfg.name.as_str();
        let token = resolve_secret(
            name,
            "token",
            cfg.token_env.as_deref(),
            cfg.token_file.as_deref(),
        )?;
        let webhook = resolve_secret(
            name,
            "webhook_url",
            cfg.webhook_url_env.as_deref(),
            cfg.webhook_url_file.as_deref(),
        )?;
        let target = match (token, webhook) {
            (Some(_), Some(_)) => {
                return Err(SinkError::invalid(
                    name,
                    "token_env",
                    "set either a bot token (`token_env`/`token_file`) or an incoming webhook (`webhook_url_env`/`webhook_url_file`), not both",
                ));
            }
            (None, None) => {
                return Err(SinkError::invalid(
                    name,
                    "token_env",
                    "set a bot token (`token_env` or `token_file`, with `channel`) or an incoming webhook (`webhook_url_env` or `webhook_url_file`)",
                ));
            }
            (Some(token), None) => {
                let Some(channel) = cfg.channel.as_deref().filter(|c| !c.trim().is_empty()) else {
                    return Err(SinkError::invalid(
                        name,
                        "channel",
                        "required with a bot token (a channel ID like C0123ABCD or #name)",
                    ));
                };
                Target::Bot {
                    token: SlackApiToken::new(SlackApiTokenValue(token.expose().to_string())),
                    channel: SlackChannelId(channel.to_string()),
                }
            }
            (None, Some(url)) => {
                if cfg.channel.is_some() {
                    return Err(SinkError::invalid(
                        name,
                        "channel",
                        "not used with an incoming webhook (its channel is fixed when it is created)",
                    ));
                }
                // The URL is a secret: never echo it in errors.
                let key = if cfg.webhook_url_env.is_some() {
                    "webhook_url_env"
                } else {
                    "webhook_url_file"
                };
                http::check_url(name, key, url.expose()).map_err(|_| {
                    SinkError::invalid(
                        name,
                        key,
                        "the value is not an https:// URL (or http:// to loopback)",
                    )
                })?;
                let url = url::Url::parse(url.expose())
                    .map_err(|_| SinkError::invalid(name, key, "the value is not a URL"))?;
                Target::Webhook { url }
            }
        };
        let signing_secret = resolve_secret(
            name,
            "signing_secret",
            cfg.signing_secret_env.as_deref(),
            cfg.signing_secret_file.as_deref(),
        )?;
        if signing_secret.is_some() && matches!(target, Target::Webhook { .. }) {
            let key = if cfg.signing_secret_env.is_some() {
                "signing_secret_env"
            } else {
                "signing_secret_file"
            };
            return Err(SinkError::invalid(
                name,
                key,
                "the buttons need a bot token (`token_env`/`token_file`): an incoming webhook cannot update its messages",
            ));
        }
        let public_url = match cfg.public_url.as_deref() {
            Some(u) => {
                http::check_url(name, "public_url", u)?;
                Some(u.trim_end_matches('/').to_string())
            }
            None => None,
        };
        http::check_url(name, "api_url", &cfg.api_url)?;
        if cfg.timeout_secs == 0 {
            return Err(SinkError::invalid(
                name,
                "timeout_secs",
                "must be at least 1",
            ));
        }
        payload::message(
            templates,
            &sample_notice(crate::alert::notice::NoticeKind::Drift),
        )
        .map_err(|e| SinkError::invalid(name, "templates", e.to_string()))?;
        let connector = SlackClientHyperConnector::with_connector(http::connector(name)?)
            .with_slack_api_url(cfg.api_url.trim_end_matches('/'));
        Ok(SlackSink {
            name: cfg.name.clone(),
            route: cfg.route.clone(),
            templates: templates.clone(),
            target,
            client: Arc::new(SlackClient::new(connector)),
            username: cfg.username.clone(),
            icon_emoji: cfg.icon_emoji.clone(),
            timeout: Duration::from_secs(cfg.timeout_secs),
            store: OnceLock::new(),
            signing_secret,
            public_url,
            seen: Mutex::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn route(&self) -> &Route {
        &self.route
    }

    /// Gives the sink the daemon's store: drift alerts then keep one message per drift
    /// (see [`super::lifecycle`]). Set once; later calls are ignored.
    pub fn attach_store(&self, store: &Arc<dyn MessageStore>) {
        let _ = self.store.set(store.clone());
    }

    /// A bot token (not an incoming webhook): messages can be updated in place.
    pub fn has_bot_token(&self) -> bool {
        matches!(self.target, Target::Bot { .. })
    }

    /// The interactivity endpoint is on for this sink (a signing secret is configured).
    pub fn interactive(&self) -> bool {
        self.signing_secret.is_some()
    }

    /// Delivers the notice: with a bot token and the daemon's store, drift alerts keep one
    /// message per drift ([`super::lifecycle`]); everything else (reports, failed scans,
    /// incoming webhooks) is one new message, as [`Self::deliver_plain`].
    pub async fn deliver(&self, notice: &Notice) -> Result<(), DeliveryError> {
        let action = matches!(notice.kind, NoticeKind::Acknowledged | NoticeKind::Silenced);
        if let (Target::Bot { token, channel }, Some(store)) = (&self.target, self.store.get()) {
            if action {
                return super::lifecycle::deliver_action(
                    self,
                    store.as_ref(),
                    token,
                    channel,
                    notice,
                )
                .await;
            }
            if super::lifecycle::threaded(notice.kind) {
                return super::lifecycle::deliver(self, store.as_ref(), token, channel, notice)
                    .await;
            }
        }
        if action {
            // An action shows on the drift's message; without one (incoming webhook, no
            // store) there is nothing to update and it is no news to the channel.
            return Ok(());
        }
        self.deliver_plain(notice).await
    }

    /// Posts the notice as one new message: `chat.postMessage` to the channel, or the
    /// incoming webhook.
    pub async fn deliver_plain(&self, notice: &Notice) -> Result<(), DeliveryError> {
        let content = payload::message(&self.templates, notice)
            .map_err(|e| delivery_error(&self.name, e.to_string(), false))?;
        let send = async {
            match &self.target {
                Target::Bot { token, channel } => {
                    let mut req = SlackApiChatPostMessageRequest::new(channel.clone(), content);
                    req.username = self.username.clone();
                    req.icon_emoji = self.icon_emoji.clone();
                    req.unfurl_links = Some(false);
                    self.client
                        .open_session(token)
                        .chat_post_message(&req)
                        .await
                        .map(|_| ())
                }
                Target::Webhook { url } => self
                    .client
                    .post_webhook_message(url, &SlackApiPostWebhookMessageRequest::new(content))
                    .await
                    .map(|_| ()),
            }
        };
        match tokio::time::timeout(self.timeout, send).await {
            Ok(res) => res.map_err(|e| classify(&self.name, &e)),
            Err(_) => Err(delivery_error(
                &self.name,
                format!("no answer from Slack within {}s", self.timeout.as_secs()),
                true,
            )),
        }
    }

    /// Bot token: `auth.test` (token valid). Webhook: nothing to call without posting, so
    /// only the config is checked (done at build time).
    pub async fn health(&self) -> Result<(), DeliveryError> {
        let Target::Bot { token, .. } = &self.target else {
            return Ok(());
        };
        match tokio::time::timeout(self.timeout, self.client.open_session(token).auth_test()).await
        {
            Ok(res) => res.map(|_| ()).map_err(|e| classify(&self.name, &e)),
            Err(_) => Err(delivery_error(
                &self.name,
                format!("no answer from Slack within {}s", self.timeout.as_secs()),
                true,
            )),
        }
    }
}

/// Turns slack-morphism's error into a [`DeliveryError`]: built from the parts, never from
/// the request (which holds the token or the webhook URL).
pub(crate) fn classify(sink: &str, err: &SlackClientError) -> DeliveryError {
    let (message, retryable, retry_after) = match err {
        SlackClientError::RateLimitError(e) => (
            "rate limited by Slack (HTTP 429)".to_string(),
            true,
            // slack-morphism parses any integer: cap it (a huge value overflowed clocks).
            e.retry_after
                .map(|d| d.min(crate::alert::http::MAX_RETRY_AFTER)),
        ),
        SlackClientError::HttpError(e) => {
            let status = e.status_code;
            let body = e
                .http_response_body
                .as_deref()
                .map(|b| format!(": {}", shorten(b.trim(), 200)))
                .unwrap_or_default();
            (
                format!("HTTP {status}{body}"),
                status.is_server_error() || status.as_u16() == 408,
                None,
            )
        }
        SlackClientError::ApiError(e) => {
            let hint = match e.code.as_str() {
                "invalid_auth" | "not_authed" | "token_revoked" | "account_inactive" => {
                    " (check the bot token)"
                }
                "channel_not_found" | "not_in_channel" => {
                    " (check the channel, and invite the app to it)"
                }
                "missing_scope" => " (the app needs the chat:write scope)",
                _ => "",
            };
            let retryable = matches!(
                e.code.as_str(),
                "internal_error"
                    | "fatal_error"
                    | "service_unavailable"
                    | "request_timeout"
                    | "ratelimited"
            );
            (
                format!("Slack API error `{}`{hint}", e.code),
                retryable,
                None,
            )
        }
        SlackClientError::HttpProtocolError(_)
        | SlackClientError::EndOfStream(_)
        | SlackClientError::SystemError(_) => {
            (format!("cannot reach Slack: {}", chain(err)), true, None)
        }
        SlackClientError::ProtocolError(e) => (
            format!("unexpected answer from Slack: {}", e.json_error),
            false,
            None,
        ),
        SlackClientError::SocketModeProtocolError(e) => (e.message.clone(), false, None),
    };
    DeliveryError {
        sink: sink.to_string(),
        message,
        retryable,
        retry_after,
    }
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.is_empty() && parts.last() != Some(&s) {
            parts.push(s);
        }
        cur = e.source();
    }
    if parts.is_empty() {
        "connection failed".to_string()
    } else {
        parts.join(": ")
    }
}
