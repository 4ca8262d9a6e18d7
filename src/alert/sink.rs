//! The sink registry: [`SinkConfig`] is the one place a sink type is wired in (the `sinks:`
//! list of the config file), [`SinkConfig::build`] validates it at start-up, and [`Sink`]
//! delivers notices.
//!
//! ```yaml
//! sinks:
//!   - type: slack
//!     name: ops-slack
//!     channel: "#platform-alerts"
//!     token_env: SLACK_BOT_TOKEN
//!     route: { min_severity: high, environments: [production] }
//!   - type: log
//!     name: log
//! ```
//!
//! Secrets (tokens, passwords, webhook URLs, signing keys) are never written in the config:
//! each is read from an environment variable (`*_env`) or a file (`*_file`) when the sink is
//! built, and an unset variable or unreadable file is an error naming the config key.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DeliveryError;
use super::desktop::{DesktopConfig, DesktopSink};
use super::email::{EmailConfig, EmailSink};
use super::log::{LogConfig, LogSink};
use super::notice::Notice;
use super::route::Route;
use super::slack::{SlackConfig, SlackSink};
use super::templates::{TemplateError, Templates};
use super::webhook::{WebhookConfig, WebhookSink};

/// One entry of the config's `sinks:` list, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    /// Slack: a bot token with `chat.postMessage`, or an incoming webhook.
    Slack(SlackConfig),
    /// Email over SMTP (STARTTLS, implicit TLS, or plain for a local relay).
    Email(EmailConfig),
    /// Desktop notifications over D-Bus (a workstation running envdrift).
    Desktop(DesktopConfig),
    /// A generic JSON POST, signed with HMAC-SHA256.
    Webhook(WebhookConfig),
    /// A tracing event (the daemon's log).
    Log(LogConfig),
}

impl SinkConfig {
    /// The sink's configured name.
    pub fn name(&self) -> &str {
        match self {
            SinkConfig::Slack(c) => &c.name,
            SinkConfig::Email(c) => &c.name,
            SinkConfig::Desktop(c) => &c.name,
            SinkConfig::Webhook(c) => &c.name,
            SinkConfig::Log(c) => &c.name,
        }
    }

    /// Makes the sink's relative file paths (`*_file`, `ca_file`) relative to `base` (the
    /// config file's directory).
    pub fn resolve_relative(&mut self, base: &std::path::Path) {
        let fix = |p: &mut Option<std::path::PathBuf>| {
            if let Some(f) = p
                && f.is_relative()
            {
                *f = base.join(&*f);
            }
        };
        match self {
            SinkConfig::Slack(c) => {
                fix(&mut c.token_file);
                fix(&mut c.webhook_url_file);
                fix(&mut c.signing_secret_file);
            }
            SinkConfig::Email(c) => {
                fix(&mut c.password_file);
                fix(&mut c.ca_file);
            }
            SinkConfig::Webhook(c) => fix(&mut c.secret_file),
            SinkConfig::Desktop(_) | SinkConfig::Log(_) => {}
        }
    }

    /// The sink's own `retry_for`, when it sets one.
    pub fn retry_for(&self) -> Option<&str> {
        match self {
            SinkConfig::Slack(c) => c.retry_for.as_deref(),
            SinkConfig::Email(c) => c.retry_for.as_deref(),
            SinkConfig::Desktop(c) => c.retry_for.as_deref(),
            SinkConfig::Webhook(c) => c.retry_for.as_deref(),
            SinkConfig::Log(c) => c.retry_for.as_deref(),
        }
    }

    /// Validates the config, resolves its secrets and builds the sink. No network traffic:
    /// use [`Sink::health`] for that.
    ///
    /// # Errors
    /// A missing or contradictory field, an unset `*_env` variable, an unreadable `*_file`,
    /// a bad URL or address: each names the sink and the config key.
    pub fn build(&self, templates: &Templates) -> Result<Sink, SinkError> {
        Ok(match self {
            SinkConfig::Slack(c) => Sink::Slack(SlackSink::new(c, templates)?),
            SinkConfig::Email(c) => Sink::Email(EmailSink::new(c, templates)?),
            SinkConfig::Desktop(c) => Sink::Desktop(DesktopSink::new(c, templates)?),
            SinkConfig::Webhook(c) => Sink::Webhook(WebhookSink::new(c, templates)?),
            SinkConfig::Log(c) => Sink::Log(LogSink::new(c, templates)?),
        })
    }
}

/// Builds every sink of the config's `sinks:` list, collecting every problem (for
/// `config check`, which prints them all) rather than stopping at the first.
///
/// # Errors
/// Every [`SinkError`] found, including [`SinkError::DuplicateName`] for a name used twice
/// (the outbox keys deliveries by sink name) and [`SinkError::Invalid`] for an empty name.
pub fn build_sinks(
    configs: &[SinkConfig],
    templates: &Templates,
) -> Result<Vec<Sink>, Vec<SinkError>> {
    let mut sinks = Vec::with_capacity(configs.len());
    let mut errors = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, cfg) in configs.iter().enumerate() {
        if cfg.name().trim().is_empty() {
            errors.push(SinkError::invalid(
                &format!("sinks[{i}]"),
                "name",
                "must not be empty",
            ));
            continue;
        }
        if !seen.insert(cfg.name()) {
            errors.push(SinkError::DuplicateName {
                sink: cfg.name().to_string(),
                index: i,
            });
            continue;
        }
        match cfg.build(templates) {
            Ok(s) => sinks.push(s),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(sinks)
    } else {
        Err(errors)
    }
}

/// A built, validated sink.
#[derive(Debug)]
pub enum Sink {
    Slack(SlackSink),
    Email(EmailSink),
    Desktop(DesktopSink),
    Webhook(WebhookSink),
    Log(LogSink),
}

impl Sink {
    /// The sink's configured name (the outbox keys deliveries by it).
    pub fn name(&self) -> &str {
        match self {
            Sink::Slack(s) => s.name(),
            Sink::Email(s) => s.name(),
            Sink::Desktop(s) => s.name(),
            Sink::Webhook(s) => s.name(),
            Sink::Log(s) => s.name(),
        }
    }

    /// Which notices this sink receives: call [`Route::select`] before [`Sink::deliver`].
    pub fn route(&self) -> &Route {
        match self {
            Sink::Slack(s) => s.route(),
            Sink::Email(s) => s.route(),
            Sink::Desktop(s) => s.route(),
            Sink::Webhook(s) => s.route(),
            Sink::Log(s) => s.route(),
        }
    }

    /// Renders and sends one notice (already passed through [`Sink::route`]).
    ///
    /// # Errors
    /// [`DeliveryError`] says whether to retry and, for rate limits, when. Its message never
    /// holds a token, password or webhook URL.
    pub async fn deliver(&self, notice: &Notice) -> Result<(), DeliveryError> {
        let res = match self {
            Sink::Slack(s) => s.deliver(notice).await,
            Sink::Email(s) => s.deliver(notice).await,
            Sink::Desktop(s) => s.deliver(notice).await,
            Sink::Webhook(s) => s.deliver(notice).await,
            Sink::Log(s) => s.deliver(notice).await,
        };
        match &res {
            Ok(()) => tracing::debug!(sink = self.name(), notice = %notice.id, "notice delivered"),
            // The daemon logs the failure with its retry decision; here only the detail.
            Err(e) => tracing::debug!(
                sink = self.name(),
                notice = %notice.id,
                retryable = e.retryable,
                retry_after_secs = e.retry_after.map(|d| d.as_secs()),
                "delivery failed: {}",
                e.message
            ),
        }
        res
    }

    /// Checks that the sink can deliver (credentials accepted, server reachable) without
    /// sending a notice: Slack `auth.test`, an SMTP connection with EHLO (and auth), the
    /// D-Bus notification service, a webhook `HEAD`-free check (see [`WebhookSink::health`]).
    ///
    /// # Errors
    /// As [`Sink::deliver`].
    pub async fn health(&self) -> Result<(), DeliveryError> {
        match self {
            Sink::Slack(s) => s.health().await,
            Sink::Email(s) => s.health().await,
            Sink::Desktop(s) => s.health().await,
            Sink::Webhook(s) => s.health().await,
            Sink::Log(_) => Ok(()),
        }
    }
}

/// Why a sink could not be built from its config.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A secret's environment variable is not set (or not valid UTF-8).
    #[error("sink `{sink}`: {key}: environment variable `{var}` is not set")]
    SecretEnvMissing {
        sink: String,
        key: String,
        var: String,
    },
    /// A secret's file cannot be read.
    #[error("sink `{sink}`: {key}: cannot read `{}`: {source}", path.display())]
    SecretFileUnreadable {
        sink: String,
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A secret is set but empty.
    #[error("sink `{sink}`: {key}: the secret is empty")]
    SecretEmpty { sink: String, key: String },
    /// Two sinks share a name.
    #[error("sinks[{index}]: the name `{sink}` is already used by another sink")]
    DuplicateName { sink: String, index: usize },
    /// A field is missing, contradicts another or does not parse.
    #[error("sink `{sink}`: {key}: {reason}")]
    Invalid {
        sink: String,
        key: String,
        reason: String,
    },
    /// The sink's templates could not be rendered (checked at build time).
    #[error("sink `{sink}`: template {source}")]
    Template {
        sink: String,
        #[source]
        source: TemplateError,
    },
}

impl SinkError {
    pub(crate) fn invalid(sink: &str, key: &str, reason: impl Into<String>) -> SinkError {
        SinkError::Invalid {
            sink: sink.to_string(),
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

/// A secret value: never printed (`Debug` shows `[redacted]`, there is no `Display`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that sends it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Reads a secret from `<key>_env` or `<key>_file` (exactly one may be set; `None` when
/// neither is). A file's trailing newline is dropped.
///
/// # Errors
/// Both set, the variable unset, the file unreadable, or the value empty: each names
/// `<key>_env` or `<key>_file`.
pub(crate) fn resolve_secret(
    sink: &str,
    key: &str,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<Secret>, SinkError> {
    let value = match (env, file) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(SinkError::invalid(
                sink,
                &format!("{key}_env"),
                format!("set only one of `{key}_env` and `{key}_file`"),
            ));
        }
        (Some(var), None) => std::env::var(var).map_err(|_| SinkError::SecretEnvMissing {
            sink: sink.to_string(),
            key: format!("{key}_env"),
            var: var.to_string(),
        })?,
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|source| SinkError::SecretFileUnreadable {
                sink: sink.to_string(),
                key: format!("{key}_file"),
                path: path.to_path_buf(),
                source,
            })?
            .trim_end_matches(['\r', '\n'])
            .to_string(),
    };
    if value.is_empty() {
        let which = if env.is_some() { "env" } else { "file" };
        return Err(SinkError::SecretEmpty {
            sink: sink.to_string(),
            key: format!("{key}_{which}"),
        });
    }
    Ok(Some(Secret(value)))
}

/// Like [`resolve_secret`], for a secret the sink cannot work without.
pub(crate) fn require_secret(
    sink: &str,
    key: &str,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Secret, SinkError> {
    resolve_secret(sink, key, env, file)?.ok_or_else(|| {
        SinkError::invalid(
            sink,
            &format!("{key}_env"),
            format!("required: set `{key}_env` (an environment variable) or `{key}_file`"),
        )
    })
}

/// A template failure met while building sink `sink` (each sink renders its templates once
/// with a sample notice at build time, so a broken one fails at start-up).
pub(crate) fn template_error(sink: &str, source: TemplateError) -> SinkError {
    SinkError::Template {
        sink: sink.to_string(),
        source,
    }
}

/// A [`DeliveryError`] for sink `sink`.
pub(crate) fn delivery_error(
    sink: &str,
    message: impl Into<String>,
    retryable: bool,
) -> DeliveryError {
    DeliveryError {
        sink: sink.to_string(),
        message: message.into(),
        retryable,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<SinkConfig, String> {
        serde_saphyr::from_str::<SinkConfig>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn internally_tagged_config_rejects_misspelt_keys() {
        let ok = parse("{type: slack, name: s, channel: C1, token_env: T}").expect("valid");
        assert_eq!(ok.name(), "s");
        for (yaml, bad) in [
            ("{type: slack, name: s, chanel: C1, token_env: T}", "chanel"),
            (
                "{type: email, name: m, host: h, from: a@b.c, to: [a@b.c], pasword_env: P}",
                "pasword_env",
            ),
            ("{type: desktop, name: d, urgency: low}", "urgency"),
            (
                "{type: webhook, name: w, url: 'https://x', secret: inline}",
                "secret",
            ),
            ("{type: log, name: l, levle: warn}", "levle"),
            (
                "{type: log, name: l, route: {min_severty: high}}",
                "min_severty",
            ),
        ] {
            let err = parse(yaml).expect_err(yaml);
            assert!(err.contains(bad), "{yaml}: {err}");
        }
    }

    #[test]
    fn unknown_sink_type_lists_the_choices() {
        let err = parse("{type: pagerduty, name: p}").expect_err("unknown type");
        assert!(err.contains("pagerduty"), "{err}");
        assert!(err.contains("slack") && err.contains("webhook"), "{err}");
    }

    #[test]
    fn build_sinks_reports_every_problem() {
        let cfgs: Vec<SinkConfig> = serde_saphyr::from_str(
            "- {type: log, name: a}\n- {type: log, name: a}\n- {type: webhook, name: w, url: 'http://example.com/x', secret_env: X}\n- {type: log, name: ''}\n",
        )
        .expect("valid YAML");
        let errs = build_sinks(&cfgs, &Templates::embedded().expect("templates"))
            .expect_err("three problems");
        let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert_eq!(
            msgs[0],
            "sinks[1]: the name `a` is already used by another sink"
        );
        assert!(msgs[1].starts_with("sink `w`: url: plain http"), "{msgs:?}");
        assert_eq!(msgs[2], "sink `sinks[3]`: name: must not be empty");
    }

    #[test]
    fn sinks_and_their_futures_can_move_between_tasks() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>(_: T) {}
        send_sync::<Sink>();
        send_sync::<Templates>();
        let sink = parse("{type: log, name: l}")
            .expect("valid")
            .build(&Templates::embedded().expect("templates"))
            .expect("builds");
        let notice =
            crate::alert::templates::sample_notice(crate::alert::notice::NoticeKind::Drift);
        send(sink.deliver(&notice));
        send(sink.health());
    }

    #[test]
    fn route_defaults_to_everything() {
        let cfg = parse("{type: log, name: l}").expect("valid");
        let sink = cfg
            .build(&Templates::embedded().expect("templates"))
            .expect("builds");
        assert_eq!(sink.route(), &Route::default());
        assert_eq!(sink.name(), "l");
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret("xoxb-1".into())), "[redacted]");
    }

    #[test]
    fn secret_from_file_drops_newline_and_missing_file_names_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cr3t\n").expect("write");
        let s = require_secret("s", "token", None, Some(&path)).expect("reads");
        assert_eq!(s.expose(), "s3cr3t");
        let err = require_secret("s", "token", None, Some(&dir.path().join("nope")))
            .expect_err("missing");
        assert!(
            err.to_string()
                .starts_with("sink `s`: token_file: cannot read"),
            "{err}"
        );
    }

    #[test]
    fn unset_env_names_key_and_variable() {
        let err = require_secret("ops", "token", Some("ENVDRIFT_TEST_SURELY_UNSET"), None)
            .expect_err("unset");
        assert_eq!(
            err.to_string(),
            "sink `ops`: token_env: environment variable `ENVDRIFT_TEST_SURELY_UNSET` is not set"
        );
    }

    #[test]
    fn neither_set_is_required_error() {
        let err = require_secret("ops", "password", None, None).expect_err("required");
        assert!(err.to_string().contains("password_env"), "{err}");
    }
}
