//! The log sink's config.

use serde::{Deserialize, Serialize};

use crate::alert::route::Route;

/// A tracing level for the log sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

/// `type: log`: each notice becomes one tracing event (target `envdrift::alert`) with the
/// notice's id, kind, environment and severity as fields and `alerts/log.txt` as message.
///
/// ```yaml
/// - type: log
///   name: log
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The sink's name, unique among sinks.
    pub name: String,
    /// Which notices go here. Default: all.
    #[serde(default)]
    pub route: Route,
    /// Keep retrying a failed delivery for this long after the alert was queued
    /// (`24h`, `30m`). Default: `alerts.retry_for`, else 24 h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_for: Option<String>,
    /// Level of every event. Default: by severity (`critical`, `high` → warn; a failed
    /// scan → warn; the rest → info).
    #[serde(default)]
    pub level: Option<LogLevel>,
}
