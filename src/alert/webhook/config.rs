//! The webhook sink's config.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::alert::route::Route;

/// `type: webhook`: a JSON POST of each notice (`alerts/webhook.json`), signed with
/// HMAC-SHA256 of the body in `X-Envdrift-Signature: sha256=<hex>`.
///
/// ```yaml
/// - type: webhook
///   name: incident-bridge
///   url: https://hooks.example.com/envdrift
///   secret_env: ENVDRIFT_WEBHOOK_SECRET
/// ```
///
/// The receiver verifies by computing HMAC-SHA256 over the raw body with the shared secret
/// and comparing (in constant time) with the header's hex. `X-Envdrift-Notice-Id` carries the
/// notice id, stable across retries, so a receiver can drop duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The sink's name, unique among sinks.
    pub name: String,
    /// Which notices go here. Default: all.
    #[serde(default)]
    pub route: Route,
    /// Keep retrying a failed delivery for this long after the alert was queued
    /// (`24h`, `30m`). Default: `alerts.retry_for`, else 24 h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_for: Option<String>,
    /// Where to POST: `https://…`, or `http://` to a loopback address only.
    pub url: String,
    /// Environment variable holding the signing secret (required unless `secret_file`).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File holding the signing secret; a trailing newline is ignored.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Extra request headers (not secret: they appear in logs of config check). Default none.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Time limit for one POST, in seconds. Default 10.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    10
}
