//! Slack sink: a bot token with `chat.postMessage` and Block Kit blocks, or an incoming
//! webhook, through slack-morphism.
//!
//! - [`config`]: [`SlackConfig`], the `type: slack` entry.
//! - [`payload`]: pure, notice → message.
//! - [`sink`]: [`SlackSink`], thin delivery and health (`auth.test`).
//!
//! Retry classification: network errors, timeouts, HTTP 5xx and 429 are retryable (429 with
//! Slack's `Retry-After`); other 4xx and Slack API errors such as `invalid_auth` or
//! `channel_not_found` are not.

pub mod config;
pub mod payload;
pub mod sink;
#[cfg(test)]
mod tests;

pub use config::SlackConfig;
pub use sink::SlackSink;
