//! A freedesktop notification server (`org.freedesktop.Notifications`) written with zbus,
//! for the desktop sink's test. It runs on whatever session bus `DBUS_SESSION_BUS_ADDRESS`
//! names; the test starts itself under `dbus-run-session` so that bus is a private one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zbus::OwnedVariant;

/// One `Notify` call as the server received it.
#[derive(Debug, Clone)]
pub struct Shown {
    pub app_name: String,
    pub icon: String,
    pub summary: String,
    pub body: String,
    /// The `urgency` hint: 0 low, 1 normal, 2 critical.
    pub urgency: Option<u8>,
    pub expire_timeout: i32,
}

struct Server {
    shown: Arc<Mutex<Vec<Shown>>>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Server {
    #[allow(clippy::too_many_arguments, reason = "the D-Bus method's signature")]
    async fn notify(
        &self,
        app_name: String,
        _replaces_id: u32,
        app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        hints: HashMap<String, OwnedVariant>,
        expire_timeout: i32,
    ) -> u32 {
        let urgency = hints.get("urgency").and_then(|v| u8::try_from(v).ok());
        let mut shown = self.shown.lock().expect("lock");
        shown.push(Shown {
            app_name,
            icon: app_icon,
            summary,
            body,
            urgency,
            expire_timeout,
        });
        u32::try_from(shown.len()).unwrap_or(u32::MAX)
    }

    async fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into(), "persistence".into()]
    }

    async fn get_server_information(&self) -> (String, String, String, String) {
        (
            "envdrift-test".into(),
            "envdrift".into(),
            "0.1".into(),
            "1.2".into(),
        )
    }

    async fn close_notification(&self, _id: u32) {}
}

/// The running server; it leaves the bus when dropped.
pub struct NotificationServer {
    shown: Arc<Mutex<Vec<Shown>>>,
    _conn: zbus::Connection,
}

impl NotificationServer {
    /// Registers on the session bus.
    pub async fn start() -> NotificationServer {
        let shown = Arc::new(Mutex::new(Vec::new()));
        let conn = zbus::connection::Builder::session()
            .name("org.freedesktop.Notifications")
            .serve_at(
                "/org/freedesktop/Notifications",
                Server {
                    shown: shown.clone(),
                },
            )
            .build()
            .await
            .expect("connect to the session bus");
        NotificationServer { shown, _conn: conn }
    }

    pub fn shown(&self) -> Vec<Shown> {
        self.shown.lock().expect("lock").clone()
    }
}
