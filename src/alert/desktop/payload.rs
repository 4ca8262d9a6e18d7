//! Pure: a [`Notice`] → the notification's summary, body and urgency. No D-Bus.

use crate::alert::notice::{Notice, NoticeKind};
use crate::alert::templates::{self, TemplateError, Templates, shorten};
use crate::model::Severity;

/// How urgent a notification is (the freedesktop urgency levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    Low,
    Normal,
    Critical,
}

/// What the notification shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesktopPayload {
    /// The title line: the notice's title, at most 120 characters.
    pub summary: String,
    /// From `alerts/desktop.txt`, at most 1000 characters.
    pub body: String,
    pub urgency: Urgency,
}

/// Urgency by severity: `critical` and `high` → critical, `medium` → normal, `low` and
/// `info` → low. Resolved notices are always low; a failed scan is normal (critical when
/// its severity says so).
pub fn urgency(notice: &Notice) -> Urgency {
    if notice.kind == NoticeKind::Resolved {
        return Urgency::Low;
    }
    match notice.severity {
        Severity::Critical | Severity::High => Urgency::Critical,
        Severity::Medium => Urgency::Normal,
        Severity::Low | Severity::Info if notice.kind == NoticeKind::ScanFailed => Urgency::Normal,
        Severity::Low | Severity::Info => Urgency::Low,
    }
}

/// Renders the notification.
///
/// # Errors
/// The template fails (file and line named).
pub fn payload(templates: &Templates, notice: &Notice) -> Result<DesktopPayload, TemplateError> {
    let body = templates.render(templates::DESKTOP, notice)?;
    Ok(DesktopPayload {
        summary: shorten(&notice.title, 120),
        body: shorten(body.trim_end(), 1000),
        urgency: urgency(notice),
    })
}
