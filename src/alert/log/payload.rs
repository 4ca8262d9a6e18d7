//! Pure: a [`Notice`] → the log line and its level.

use super::config::LogLevel;
use crate::alert::notice::{Notice, NoticeKind};
use crate::alert::templates::{self, TemplateError, Templates};
use crate::model::Severity;

/// The level for `notice` when none is configured.
pub fn level(notice: &Notice) -> LogLevel {
    match (notice.kind, notice.severity) {
        (NoticeKind::ScanFailed, _) => LogLevel::Warn,
        (NoticeKind::Resolved | NoticeKind::Report, _) => LogLevel::Info,
        (_, Severity::Critical | Severity::High) => LogLevel::Warn,
        _ => LogLevel::Info,
    }
}

/// The message: `alerts/log.txt` with newlines folded to spaces.
///
/// # Errors
/// The template fails.
pub fn line(templates: &Templates, notice: &Notice) -> Result<String, TemplateError> {
    let out = templates.render(templates::LOG, notice)?;
    Ok(out.split_whitespace().collect::<Vec<_>>().join(" "))
}
