//! Desktop sink: notify-rust (zbus, pure Rust) to the session bus's
//! `org.freedesktop.Notifications` service.
//!
//! - [`config`]: [`DesktopConfig`], the `type: desktop` entry (read its caveat: it needs a
//!   D-Bus session bus with a notification server).
//! - [`payload`]: pure, notice → summary, body, urgency.
//! - [`sink`]: [`DesktopSink`], thin delivery and health (is the service on the bus?).

pub mod config;
pub mod payload;
pub mod sink;
#[cfg(test)]
mod tests;

pub use config::DesktopConfig;
pub use sink::DesktopSink;
