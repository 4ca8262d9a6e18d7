//! Email sink: multipart HTML + text mail over SMTP via lettre (STARTTLS, implicit TLS, or
//! plain for a local relay; optional authentication).
//!
//! - [`config`]: [`EmailConfig`], the `type: email` entry.
//! - [`payload`]: pure, notice → subject, text and HTML → lettre message.
//! - [`sink`]: [`EmailSink`], thin delivery and health (connect, EHLO, NOOP).
//!
//! Retry classification: connection, TLS and timeout errors and SMTP 4xx replies are
//! retryable; SMTP 5xx replies (bad recipient, authentication refused) are not.

pub mod config;
pub mod payload;
pub mod sink;
#[cfg(test)]
mod tests;

pub use config::{EmailConfig, EmailTls};
pub use sink::EmailSink;
