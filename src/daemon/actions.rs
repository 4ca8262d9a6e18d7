//! Acknowledge and silence: the one path the API, the web page and Slack's buttons take.
//!
//! [`Daemon::acknowledge`] / [`Daemon::silence`] write the drift and its history and, in the
//! same store transaction, queue an `acknowledged` / `silenced` alert (one outbox row per
//! sink that wants it): every Slack sink with a bot token that has a message for the drift
//! (the message is rewritten with the action instead of the buttons, and a reply goes in its
//! thread), and every webhook sink (its route applied; a receiver keeping one thread per
//! drift hears of the action). Email, desktop and log sinks do not get them: an
//! acknowledgement is no news to an inbox. The alerts get the outbox's claim and complete,
//! retries with backoff and order with the drift's other alerts.
//!
//! Just before delivery ([`Daemon::action_outdated`]) the drift is read again: when it
//! changed since the action (resolved, a new live value, acknowledged or silenced again, the
//! acknowledgement cleared) the alert is done without sending, so a late retry never shows
//! "Acknowledged by" over a drift a newer alert changed. A resolved drift queues nothing.

use serde_json::{Value, json};

use super::Daemon;
use crate::alert::notice::{Notice, NoticeKind};
use crate::store::{DriftAction, DriftRecord, DriftStatus, OutboxWrite, StoreError, fmt_time};

/// Which action alerts a sink gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionSink {
    /// A Slack sink with a bot token: when it has a message for the drift.
    Slack,
    /// A webhook sink: always (its route applied).
    Webhook,
    /// Email, desktop, log, incoming-webhook Slack sinks: never.
    None,
}

impl Daemon {
    /// Acknowledges drift `id` as `by` (stored in `acked_by` and its history) and queues the
    /// alerts that show it; `shown_as` is how Slack and webhooks name who did it (a Slack
    /// user id is shown as a mention). Returns the drift as written.
    ///
    /// # Errors
    /// No such drift, or the store failed (nothing written, nothing queued).
    pub fn acknowledge(
        &self,
        id: i64,
        by: &str,
        shown_as: &str,
    ) -> Result<DriftRecord, StoreError> {
        self.act(
            id,
            DriftAction::Acknowledge { by },
            NoticeKind::Acknowledged,
            json!({"by": shown_as}),
        )
    }

    /// Silences drift `id` until `until` (RFC 3339; a past time ends a silence) for
    /// `reason`, and queues the alerts that show it (see [`Daemon::acknowledge`]).
    ///
    /// # Errors
    /// No such drift, or the store failed (nothing written, nothing queued).
    pub fn silence(
        &self,
        id: i64,
        until: &str,
        reason: &str,
        shown_as: &str,
    ) -> Result<DriftRecord, StoreError> {
        self.act(
            id,
            DriftAction::Silence { until, reason },
            NoticeKind::Silenced,
            json!({"by": shown_as, "until": until}),
        )
    }

    fn act(
        &self,
        id: i64,
        action: DriftAction<'_>,
        kind: NoticeKind,
        mut extra: Value,
    ) -> Result<DriftRecord, StoreError> {
        let now = chrono::Utc::now();
        let store_id = self.store.id().to_string();
        let row = self
            .store
            .act_on_drift(id, action, |row, event_id, slack| {
                if row.status != DriftStatus::Open {
                    return Vec::new(); // a resolved drift's messages stay resolved
                }
                extra["state"] = state_of(row);
                let notice = action_notice(&store_id, row, event_id, kind, extra, now);
                self.deliver
                    .sinks()
                    .into_iter()
                    .filter(|sink| match self.deliver.action_sink(sink) {
                        ActionSink::Slack => slack.contains(sink),
                        ActionSink::Webhook => true,
                        ActionSink::None => false,
                    })
                    .filter_map(|sink| {
                        let routed = self.deliver.route(&sink, &notice)?;
                        Some(OutboxWrite {
                            notice_id: notice.id.clone(),
                            kind: kind.as_str().to_string(),
                            target: notice.env.clone(),
                            body: serde_json::to_value(&routed).ok()?,
                            sink,
                        })
                    })
                    .collect()
            })?;
        self.wake_outbox();
        Ok(row)
    }

    /// Why an `acknowledged` / `silenced` alert is no longer true (the drift changed since
    /// the action), or `None` when it still is (and for every other alert).
    pub(crate) fn action_outdated(&self, notice: &Notice) -> Option<String> {
        if !matches!(notice.kind, NoticeKind::Acknowledged | NoticeKind::Silenced) {
            return None;
        }
        let id = notice.drifts.first()?.drift_id?;
        let row = match self.store.drift(id) {
            Ok((row, _)) => row,
            Err(StoreError::NotFound { .. }) => return Some("the drift is gone".into()),
            // Unreadable now: deliver (the action happened); the check is a guard.
            Err(_) => return None,
        };
        if row.status != DriftStatus::Open {
            return Some(format!("the drift is {} now", row.status.as_str()));
        }
        let then = &notice.extra["state"];
        let now = state_of(&row);
        if then["fingerprint"] != now["fingerprint"] {
            return Some("the drift changed since".into());
        }
        let key = match notice.kind {
            NoticeKind::Acknowledged => "acked_at",
            _ => "silenced_until",
        };
        (then[key] != now[key]).then(|| format!("the drift's {key} changed since"))
    }
}

/// What an action alert checks against the drift at delivery.
fn state_of(row: &DriftRecord) -> Value {
    json!({
        "fingerprint": row.fingerprint,
        "acked_at": row.acked_at,
        "silenced_until": row.silenced_until,
    })
}

fn action_notice(
    store_id: &str,
    row: &DriftRecord,
    event_id: i64,
    kind: NoticeKind,
    extra: Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Notice {
    let mut drift = super::lifecycle::notice_from_row(row, now);
    drift.drift_id = Some(row.id);
    drift.previous_state = Some("open".into());
    let by = extra["by"].as_str().unwrap_or("someone");
    let title = match kind {
        NoticeKind::Silenced => format!(
            "{}: {} silenced until {} by {by}",
            row.target,
            row.resource,
            extra["until"].as_str().unwrap_or("")
        ),
        _ => format!("{}: {} acknowledged by {by}", row.target, row.resource),
    };
    Notice {
        id: format!(
            "{store_id}/{}/drift-{}/event-{event_id}/{}",
            row.target,
            row.id,
            kind.as_str()
        ),
        kind,
        env: row.target.clone(),
        title,
        severity: row.severity,
        created_at: fmt_time(now),
        drifts: vec![drift],
        error: None,
        report: Vec::new(),
        extra,
    }
}
