//! The desktop sink's config.

use serde::{Deserialize, Serialize};

use crate::alert::route::Route;

/// `type: desktop`: a desktop notification through the freedesktop notification service
/// (D-Bus `org.freedesktop.Notifications`), for envdrift running on a workstation.
///
/// # Caveats
/// Needs a D-Bus *session* bus (`DBUS_SESSION_BUS_ADDRESS`) with a notification server on it
/// (any desktop environment has one). In a container or on a server there is no session
/// bus: delivery then fails with a non-retryable error that says so, and `config check`'s
/// health check reports it. A bus whose notification server has not started yet is retried
/// like any sink (within `retry_for`).
///
/// ```yaml
/// - type: desktop
///   name: my-desktop
///   route: { min_severity: high }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesktopConfig {
    /// The sink's name, unique among sinks.
    pub name: String,
    /// Which notices go here. Default: all.
    #[serde(default)]
    pub route: Route,
    /// Keep retrying a failed delivery for this long after the alert was queued
    /// (`24h`, `30m`). Default: `alerts.retry_for`, else 24 h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_for: Option<String>,
    /// Application name shown by the notification server. Default `envdrift`.
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// Freedesktop icon name. Default `dialog-warning`.
    #[serde(default = "default_icon")]
    pub icon: String,
    /// How long the notification stays, in seconds; 0 means until dismissed. Default: the
    /// server's choice (critical notices stay until dismissed on most servers).
    #[serde(default)]
    pub timeout_secs: Option<u32>,
}

fn default_app_name() -> String {
    "envdrift".into()
}

fn default_icon() -> String {
    "dialog-warning".into()
}
