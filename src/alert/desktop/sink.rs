//! Desktop delivery: thin. Render with [`super::payload`], show with notify-rust.

use notify_rust::{Notification, Timeout};

use super::config::DesktopConfig;
use super::payload::{self, Urgency};
use crate::alert::DeliveryError;
use crate::alert::notice::{Notice, NoticeKind};
use crate::alert::route::Route;
use crate::alert::sink::{SinkError, delivery_error, template_error};
use crate::alert::templates::{Templates, sample_notice};

/// The D-Bus name of the freedesktop notification service.
pub const SERVICE: &str = "org.freedesktop.Notifications";

/// A built desktop sink.
#[derive(Debug)]
pub struct DesktopSink {
    name: String,
    route: Route,
    templates: Templates,
    app_name: String,
    icon: String,
    timeout: Option<u32>,
}

impl DesktopSink {
    /// Validates `cfg`. No D-Bus connection is made (see [`DesktopSink::health`]).
    pub fn new(cfg: &DesktopConfig, templates: &Templates) -> Result<DesktopSink, SinkError> {
        if cfg.app_name.trim().is_empty() {
            return Err(SinkError::invalid(
                &cfg.name,
                "app_name",
                "must not be empty",
            ));
        }
        payload::payload(templates, &sample_notice(NoticeKind::Drift))
            .map_err(|e| template_error(&cfg.name, e))?;
        Ok(DesktopSink {
            name: cfg.name.clone(),
            route: cfg.route.clone(),
            templates: templates.clone(),
            app_name: cfg.app_name.clone(),
            icon: cfg.icon.clone(),
            timeout: cfg.timeout_secs,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The notification notify-rust will send for `notice` (exposed for tests).
    ///
    /// # Errors
    /// The template fails.
    pub fn notification(&self, notice: &Notice) -> Result<Notification, DeliveryError> {
        let p = payload::payload(&self.templates, notice)
            .map_err(|e| delivery_error(&self.name, e.to_string(), false))?;
        let mut n = Notification::new();
        n.appname(&self.app_name)
            .summary(&p.summary)
            .body(&p.body)
            .icon(&self.icon)
            .urgency(match p.urgency {
                Urgency::Low => notify_rust::Urgency::Low,
                Urgency::Normal => notify_rust::Urgency::Normal,
                Urgency::Critical => notify_rust::Urgency::Critical,
            });
        match self.timeout {
            Some(0) => {
                n.timeout(Timeout::Never);
            }
            Some(s) => {
                n.timeout(Timeout::Milliseconds(s.saturating_mul(1000)));
            }
            None => {}
        }
        Ok(n)
    }

    /// Shows the notification on the session bus.
    ///
    /// # Errors
    /// No session bus: not retryable (a machine without a desktop session will not grow
    /// one). No notification server on the bus yet, or another D-Bus error: retryable (the
    /// desktop's notification daemon often starts after login), like any sink, within
    /// `retry_for`. notify-rust's error kind is
    /// private, so a failed call is classified by asking the bus (as [`DesktopSink::health`]
    /// does), never by parsing the message.
    pub async fn deliver(&self, notice: &Notice) -> Result<(), DeliveryError> {
        let n = self.notification(notice)?;
        match n.show_async().await {
            Ok(_) => Ok(()),
            Err(e) => match self.health().await {
                Err(h) => Err(delivery_error(
                    &self.name,
                    format!("D-Bus: {e}; {}", h.message),
                    h.retryable,
                )),
                Ok(()) => Err(delivery_error(&self.name, format!("D-Bus: {e}"), true)),
            },
        }
    }

    /// Connects to the session bus and checks that a notification server is running there
    /// or can be activated.
    ///
    /// # Errors
    /// No session bus: not retryable. No notification server on it (it may start later) or
    /// a failing D-Bus call: retryable.
    pub async fn health(&self) -> Result<(), DeliveryError> {
        let conn = zbus::Connection::session().await.map_err(|e| {
            delivery_error(
                &self.name,
                format!("no D-Bus session bus ({e}); desktop notifications need a desktop session"),
                false,
            )
        })?;
        let call = |e: zbus::fdo::Error| delivery_error(&self.name, format!("D-Bus: {e}"), true);
        let dbus = zbus::fdo::DBusProxy::new(&conn)
            .await
            .map_err(|e| delivery_error(&self.name, format!("D-Bus: {e}"), true))?;
        let service = zbus::names::BusName::try_from(SERVICE)
            .map_err(|e| delivery_error(&self.name, e.to_string(), false))?;
        if dbus.name_has_owner(service).await.map_err(call)? {
            return Ok(());
        }
        let activatable = dbus.list_activatable_names().await.map_err(call)?;
        if activatable.iter().any(|n| n.as_str() == SERVICE) {
            return Ok(());
        }
        Err(delivery_error(
            &self.name,
            format!("no notification server ({SERVICE}) on the D-Bus session bus"),
            true,
        ))
    }
}
