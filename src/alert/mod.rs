//! Alerts: [`notice::Notice`] is what an alert says; sinks (one folder each: Slack, email,
//! desktop, webhook, log) render it through templates and deliver it; the daemon's outbox
//! stores every notice before it is sent and marks it sent after, so none is lost or sent
//! twice across a restart.

pub mod desktop;
pub mod email;
mod http;
pub mod log;
pub mod notice;
pub mod route;
pub mod sink;
pub mod slack;
pub mod templates;
pub mod webhook;

/// `Retry-After` handling for the outbox driver: see [`clamp_retry_after`].
pub use http::MAX_RETRY_AFTER;
pub(crate) use http::clamp_retry_after;
pub use route::Route;
pub use sink::{Sink, SinkConfig, SinkError, build_sinks};
pub use templates::{TemplateError, Templates};

use std::time::Duration;

/// Why a delivery failed, and whether to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{sink}: {message}")]
pub struct DeliveryError {
    /// The sink's configured name.
    pub sink: String,
    /// What went wrong (never a token or password).
    pub message: String,
    /// Worth retrying (network error, 5xx, 429) or not (bad request, bad credentials).
    pub retryable: bool,
    /// The server asked to wait this long (Slack's 429 Retry-After).
    pub retry_after: Option<Duration>,
}
