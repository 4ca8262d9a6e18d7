//! Generic webhook sink: a JSON POST of each notice, signed with HMAC-SHA256.
//!
//! - [`config`]: [`WebhookConfig`], the `type: webhook` entry.
//! - [`payload`]: pure, notice → body, signature (and [`payload::verify`] for receivers).
//! - [`sink`]: [`WebhookSink`], thin delivery (hyper + rustls) and health.
//!
//! Retry classification: network errors, timeouts, 5xx, 408 and 429 (with `Retry-After`)
//! are retryable; other 4xx are not.

pub mod config;
pub mod payload;
pub mod sink;
#[cfg(test)]
mod tests;

pub use config::WebhookConfig;
pub use sink::WebhookSink;
