//! Log sink: each notice as one tracing event.
//!
//! - [`config`]: [`LogConfig`], the `type: log` entry.
//! - [`payload`]: pure, notice → line and level.
//! - [`LogSink`]: delivery (cannot fail once rendered).

pub mod config;
pub mod payload;

pub use config::{LogConfig, LogLevel};

use crate::alert::DeliveryError;
use crate::alert::notice::{Notice, NoticeKind};
use crate::alert::route::Route;
use crate::alert::sink::{SinkError, delivery_error, template_error};
use crate::alert::templates::{Templates, sample_notice};

/// A built log sink.
#[derive(Debug)]
pub struct LogSink {
    name: String,
    route: Route,
    templates: Templates,
    level: Option<LogLevel>,
}

impl LogSink {
    /// Validates `cfg` (renders the template once).
    pub fn new(cfg: &LogConfig, templates: &Templates) -> Result<LogSink, SinkError> {
        payload::line(templates, &sample_notice(NoticeKind::Drift))
            .map_err(|e| template_error(&cfg.name, e))?;
        Ok(LogSink {
            name: cfg.name.clone(),
            route: cfg.route.clone(),
            templates: templates.clone(),
            level: cfg.level,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn route(&self) -> &Route {
        &self.route
    }

    /// Emits the event.
    pub async fn deliver(&self, notice: &Notice) -> Result<(), DeliveryError> {
        let line = payload::line(&self.templates, notice)
            .map_err(|e| delivery_error(&self.name, e.to_string(), false))?;
        let level = self.level.unwrap_or_else(|| payload::level(notice));
        macro_rules! event {
            ($lvl:ident) => {
                tracing::$lvl!(
                    target: "envdrift::alert",
                    sink = %self.name,
                    notice = %notice.id,
                    kind = notice.kind.as_str(),
                    env = %notice.env,
                    severity = notice.severity.as_str(),
                    drifts = notice.drifts.len(),
                    "{line}"
                )
            };
        }
        match level {
            LogLevel::Error => event!(error),
            LogLevel::Warn => event!(warn),
            LogLevel::Info => event!(info),
            LogLevel::Debug => event!(debug),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_is_one_line_with_every_drift() {
        let t = Templates::embedded().expect("templates");
        let line = payload::line(&t, &sample_notice(NoticeKind::Drift)).expect("renders");
        assert!(!line.contains('\n'));
        assert!(
            line.starts_with("production: 3 new drifts (1 critical)"),
            "{line}"
        );
        assert!(line.contains("Secret shop/api-credentials data.DATABASE_PASSWORD: sha256:9f86d081884c7d65 -> sha256:60303ae22b998861"), "{line}");
    }

    #[test]
    fn levels_by_kind_and_severity() {
        assert_eq!(
            payload::level(&sample_notice(NoticeKind::Drift)),
            LogLevel::Warn
        );
        assert_eq!(
            payload::level(&sample_notice(NoticeKind::Resolved)),
            LogLevel::Info
        );
        assert_eq!(
            payload::level(&sample_notice(NoticeKind::ScanFailed)),
            LogLevel::Warn
        );
    }
}
