//! The email sink's config.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::alert::route::Route;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTls {
    /// Plain connection upgraded with STARTTLS, which is required (port 587 by default).
    #[default]
    Starttls,
    /// TLS from the first byte, "SMTPS" (port 465 by default).
    Tls,
    /// No encryption (port 25 by default): only for a relay on the same host or pod. With
    /// `username` set it is refused unless the host is a loopback address, so a password
    /// never crosses a network in clear.
    None,
}

/// `type: email`: multipart (HTML + plain text) mail over SMTP via lettre.
///
/// ```yaml
/// - type: email
///   name: ops-mail
///   host: smtp.example.com
///   username: envdrift@example.com
///   password_env: SMTP_PASSWORD
///   from: "envdrift <envdrift@example.com>"
///   to: [platform@example.com, oncall@example.com]
///   route: { kinds: [drift, escalated, resolved, report] }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The sink's name, unique among sinks.
    pub name: String,
    /// Which notices go here. Default: all.
    #[serde(default)]
    pub route: Route,
    /// Keep retrying a failed delivery for this long after the alert was queued
    /// (`24h`, `30m`). Default: `alerts.retry_for`, else 24 h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_for: Option<String>,
    /// SMTP server host name (also the name its TLS certificate must carry).
    pub host: String,
    /// SMTP port. Default: 587 for `starttls`, 465 for `tls`, 25 for `none`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `none`.
    #[serde(default)]
    pub tls: EmailTls,
    /// SMTP user name. Default: none, no authentication.
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the SMTP password (required with `username`, unless
    /// `password_file` is set).
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the SMTP password; a trailing newline is ignored.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Sender: `envdrift@example.com` or `envdrift <envdrift@example.com>`.
    pub from: String,
    /// Recipients (at least one).
    pub to: Vec<String>,
    /// PEM file of extra root certificates to trust (a private CA of an internal relay), on
    /// top of the built-in webpki roots. Default: none. Not allowed with `tls: none`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Time limit for one SMTP exchange, in seconds. Default 30.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    30
}
