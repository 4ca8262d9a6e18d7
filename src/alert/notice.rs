//! [`Notice`]: what one alert says, independent of where it goes. The daemon builds
//! notices from drift lifecycle events (new, escalated, resolved, reminder, scan failed)
//! and scheduled reports; every sink renders the same notice through its templates
//! (`alerts/`). Notices hold no Secret value: drift values are already hashed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::Severity;

/// Why a notice is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// New drifts found by a scan (one notice per scan per environment).
    Drift,
    /// Open drifts whose severity rose.
    Escalated,
    /// Drifts gone in a later successful scan.
    Resolved,
    /// Drifts still open after the configured time.
    Reminder,
    /// A scan failed or was partial: nothing was resolved or reported missing because of it.
    ScanFailed,
    /// A scheduled or on-demand drift report.
    Report,
    /// A drift was acknowledged (API, web page or Slack button): one drift, `extra.by`.
    /// Sent to Slack sinks that have a message for the drift (updated in place, a thread
    /// reply) and to webhook sinks; not to email, desktop or log sinks.
    Acknowledged,
    /// A drift was silenced: one drift, `extra.by` and `extra.until`; sent as
    /// [`NoticeKind::Acknowledged`].
    Silenced,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Drift => "drift",
            NoticeKind::Escalated => "escalated",
            NoticeKind::Resolved => "resolved",
            NoticeKind::Reminder => "reminder",
            NoticeKind::ScanFailed => "scan_failed",
            NoticeKind::Report => "report",
            NoticeKind::Acknowledged => "acknowledged",
            NoticeKind::Silenced => "silenced",
        }
    }
}

/// One field change inside a notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeChange {
    /// Readable path: `spec.template.spec.containers[name=web].image`.
    pub field: String,
    /// JSON Pointer into the live object.
    pub path: String,
    /// `changed`, `added` (live only), `removed` (missing live).
    pub op: String,
    /// Desired value as short text (`(absent)`, Secret values as `sha256:ab12…`).
    pub desired: String,
    /// Live value as short text.
    pub live: String,
    pub severity: Severity,
    pub category: String,
    /// `manual`, `controller`, `gitops`, `unknown`, …
    pub cause: String,
    /// Field manager that wrote the live value, when known.
    pub manager: Option<String>,
    /// RFC 3339 time of that write, when known.
    pub time: Option<String>,
    /// The desired and live values as the engine's JSON output has them (typed; Secret
    /// values already hashed), for JSON renderings such as `report -f json`. Templates see
    /// the short texts above; this is not part of the template context.
    #[serde(skip)]
    pub values: Option<Box<(serde_json::Value, serde_json::Value)>>,
}

/// One drift inside a notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeDrift {
    pub fingerprint: String,
    /// `Deployment shop/web`.
    pub resource: String,
    /// `modified`, `missing`, `unmanaged` (`only-in-from`/`only-in-to` for comparisons).
    pub drift_type: String,
    pub severity: Severity,
    /// The previous severity, for escalations.
    pub previous_severity: Option<Severity>,
    pub cause: String,
    pub changes: Vec<NoticeChange>,
    /// The suggested command (`kubectl patch …`); empty when there is none.
    pub kubectl: String,
    /// RFC 3339: when the drift was first seen.
    pub first_seen: String,
    /// Human age: `3h`, `2d`.
    pub age: String,
    /// The drift's id in the store (the `id` of `GET /api/v1/drifts`): stable for a drift
    /// (type + resource) across changes, resolution and reopening. Filled when the alert is
    /// delivered (a drift opened by the scan has no id before the scan is recorded).
    #[serde(default)]
    pub drift_id: Option<i64>,
    /// The store's identity of the drift (`type|group|kind|namespace|name`).
    #[serde(default)]
    pub identity: String,
    /// What happened to this drift (`opened`, `reopened`, `changed`, `escalated`,
    /// `resolved`, `reminder`). `None` in alerts queued by an older envdrift: see
    /// [`NoticeDrift::event_in`].
    #[serde(default)]
    pub event: Option<DriftEvent>,
    /// The drift's state before this event: `None` for a new drift, else `open`,
    /// `acknowledged`, `silenced` or `resolved`.
    #[serde(default)]
    pub previous_state: Option<String>,
}

/// What happened to one drift, for receivers that keep one thread per drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftEvent {
    /// Seen for the first time.
    Opened,
    /// Seen again after it was resolved.
    Reopened,
    /// A new live value, same or lower severity.
    Changed,
    /// A new live value with a higher severity.
    Escalated,
    /// Gone in a later scan that could see it.
    Resolved,
    /// Still open after the reminder time.
    Reminder,
}

impl DriftEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftEvent::Opened => "opened",
            DriftEvent::Reopened => "reopened",
            DriftEvent::Changed => "changed",
            DriftEvent::Escalated => "escalated",
            DriftEvent::Resolved => "resolved",
            DriftEvent::Reminder => "reminder",
        }
    }
}

impl NoticeDrift {
    /// The drift's event, or for an alert queued before events were recorded the one its
    /// notice kind implies.
    pub fn event_in(&self, kind: NoticeKind) -> DriftEvent {
        self.event.unwrap_or(match kind {
            NoticeKind::Escalated => DriftEvent::Escalated,
            NoticeKind::Resolved => DriftEvent::Resolved,
            NoticeKind::Reminder => DriftEvent::Reminder,
            NoticeKind::Drift | NoticeKind::ScanFailed | NoticeKind::Report => DriftEvent::Opened,
            // The drift is as it was; its card shows the action instead of the buttons.
            NoticeKind::Acknowledged | NoticeKind::Silenced => DriftEvent::Changed,
        })
    }
}

/// Counts and lists of a drift report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ReportSection {
    /// Environment or comparison name.
    pub name: String,
    pub open_by_severity: Vec<(Severity, usize)>,
    pub open_by_category: Vec<(String, usize)>,
    pub new_since_last: usize,
    pub resolved_since_last: usize,
    /// The oldest open drifts, oldest first.
    pub oldest: Vec<NoticeDrift>,
    /// Failed or partial scans since the last report: `when: reason`.
    pub failed_scans: Vec<String>,
}

/// What one alert says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// Stable id (the outbox key): sinks use it as an idempotency key where they can.
    pub id: String,
    pub kind: NoticeKind,
    /// Environment or comparison name (`production`, `staging→production`).
    pub env: String,
    /// One line: `production: 3 new drifts (1 critical)`.
    pub title: String,
    /// Highest severity in the notice (`info` for resolved notices and reports without drift).
    pub severity: Severity,
    /// RFC 3339 time the notice was created.
    pub created_at: String,
    pub drifts: Vec<NoticeDrift>,
    /// For `scan_failed`: the reason (no credentials in it).
    pub error: Option<String>,
    /// For reports.
    pub report: Vec<ReportSection>,
    /// Links or extra context for templates (e.g. the API URL of each drift).
    pub extra: Value,
}

/// The title of a `drift` notice: `production: 2 new drifts (1 critical, 1 high)`,
/// `production: 1 drift changed (1 high)`, or both counts when it holds new and changed
/// drifts. A known drift is never called new.
pub fn drift_title(target: &str, drifts: &[NoticeDrift], by_severity: &[String]) -> String {
    let changed = drifts
        .iter()
        .filter(|d| d.event == Some(DriftEvent::Changed))
        .count();
    let new = drifts.len() - changed;
    let s = |n: usize| if n == 1 { "" } else { "s" };
    let sev = by_severity.join(", ");
    match (new, changed) {
        (_, 0) => format!("{target}: {new} new drift{} ({sev})", s(new)),
        (0, _) => format!("{target}: {changed} drift{} changed ({sev})", s(changed)),
        _ => format!(
            "{target}: {new} new drift{}, {changed} changed ({sev})",
            s(new)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::templates::sample_notice;

    #[test]
    fn a_known_drift_is_never_called_new() {
        let mut drifts = sample_notice(NoticeKind::Drift).drifts;
        let sev = ["1 high".to_string()];
        assert_eq!(
            drift_title("prod", &drifts[..1], &sev),
            "prod: 1 new drift (1 high)"
        );
        drifts[0].event = Some(DriftEvent::Changed);
        assert_eq!(
            drift_title("prod", &drifts[..1], &sev),
            "prod: 1 drift changed (1 high)"
        );
        assert_eq!(
            drift_title("prod", &drifts, &sev),
            "prod: 2 new drifts, 1 changed (1 high)"
        );
        drifts[1].event = None;
        assert_eq!(
            drifts[1].event_in(NoticeKind::Resolved),
            DriftEvent::Resolved
        );
    }
}
