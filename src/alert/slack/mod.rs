//! Slack sink: a bot token with `chat.postMessage` and Block Kit blocks, or an incoming
//! webhook, through slack-morphism.
//!
//! - [`config`]: [`SlackConfig`], the `type: slack` entry.
//! - [`payload`]: pure, notice → message.
//! - [`sink`]: [`SlackSink`], thin delivery and health (`auth.test`).
//! - [`lifecycle`]: with a bot token, one message per drift that updates itself
//!   (`chat.postMessage`, then `chat.update` and thread replies); digests for many drifts.
//! - [`message`]: pure, one drift's message ("card") in each state, and thread replies.
//! - [`interact`]: the buttons: signed interaction requests, acknowledge / silence.
//!
//! Retry classification: network errors, timeouts, HTTP 5xx and 429 are retryable (429 with
//! Slack's `Retry-After`); other 4xx and Slack API errors such as `invalid_auth` or
//! `channel_not_found` are not.

pub mod config;
pub mod interact;
pub mod lifecycle;
pub mod message;
pub mod payload;
pub mod refs;
pub mod sink;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use config::SlackConfig;
pub use sink::SlackSink;

use crate::alert::Sink;
pub use refs::MessageStore;

/// Gives every Slack sink of `sinks` the daemon's store.
pub fn attach_store(sinks: &[Arc<Sink>], store: &Arc<dyn MessageStore>) {
    for s in sinks {
        if let Sink::Slack(s) = &**s {
            s.attach_store(store);
        }
    }
}

/// The Slack sinks of `sinks`.
pub fn slack_sinks(sinks: &[Arc<Sink>]) -> Vec<Arc<Sink>> {
    sinks
        .iter()
        .filter(|s| matches!(&***s, Sink::Slack(_)))
        .cloned()
        .collect()
}
