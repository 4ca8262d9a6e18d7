//! Routing: which notices, and which of their drifts, a sink receives.
//!
//! Entry point: [`Route::select`]. A route with every field left out lets everything through.
//!
//! # How each notice kind is filtered
//!
//! | kind | `kinds`, `environments` | `min_severity`, `categories` |
//! | --- | --- | --- |
//! | `drift`, `escalated`, `reminder` | apply | apply per field change: a drift keeps only the changes that pass; a drift without field changes (missing, unmanaged) is judged by its own severity and the category `presence`; drifts left with nothing are dropped; the notice is dropped when no drift is left |
//! | `resolved` | apply | apply in the same way, to the severity and categories the drift had while open: a sink hears "resolved" for exactly the drifts it heard about |
//! | `acknowledged`, `silenced` | apply | apply as for `drift` (the one drift's changes); the daemon queues them only for Slack sinks with the drift's message and webhook sinks ([`crate::daemon::actions`]) |
//! | `scan_failed` | apply | do not apply: a failed scan is about the tool, not about a drift, and every sink that watches the environment must know its alerts have gone quiet. Leave `scan_failed` out of `kinds` to mute it |
//! | `report` | apply; `environments` also keeps only the report sections whose name matches | do not apply: a report counts everything |
//!
//! The notice's `severity` is recomputed as the highest left (except for `resolved`,
//! `scan_failed` and `report`, whose severity is kept as built).

use serde::{Deserialize, Serialize};

use super::notice::{Notice, NoticeDrift, NoticeKind};
use crate::model::Severity;

/// Which notices a sink receives. Every field is optional; the default lets everything through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Route {
    /// Lowest severity a field change must have to be sent (`info`, `low`, `medium`, `high`,
    /// `critical`). Default: none, every severity.
    pub min_severity: Option<Severity>,
    /// Environment (or comparison) names, as globs (`prod*`, `staging→production`; `*` any run
    /// of characters, `?` one). Default: empty, every environment.
    pub environments: Vec<String>,
    /// Categories a field change must be in (`image`, `scaling`, `resources`, `config-data`,
    /// `secret-data`, `rbac`, `networking`, `security-context`, `scheduling`, `metadata`,
    /// `presence`, `other`). Default: empty, every category.
    pub categories: Vec<String>,
    /// Notice kinds to send (`drift`, `escalated`, `resolved`, `reminder`, `scan_failed`,
    /// `report`, `acknowledged`, `silenced`). Default: empty, every kind.
    pub kinds: Vec<NoticeKind>,
}

impl Route {
    /// The notice as this sink should receive it, or `None` when nothing in it is for this sink.
    /// See the module doc for the rule of each notice kind.
    pub fn select(&self, notice: &Notice) -> Option<Notice> {
        if !self.kinds.is_empty() && !self.kinds.contains(&notice.kind) {
            return None;
        }
        let env_ok = self.env_matches(&notice.env);
        match notice.kind {
            NoticeKind::ScanFailed => env_ok.then(|| notice.clone()),
            NoticeKind::Report => {
                if env_ok {
                    return Some(notice.clone());
                }
                let report: Vec<_> = notice
                    .report
                    .iter()
                    .filter(|s| self.env_matches(&s.name))
                    .cloned()
                    .collect();
                (!report.is_empty()).then(|| Notice {
                    report,
                    ..notice.clone()
                })
            }
            NoticeKind::Drift
            | NoticeKind::Escalated
            | NoticeKind::Reminder
            | NoticeKind::Resolved
            | NoticeKind::Acknowledged
            | NoticeKind::Silenced => {
                if !env_ok {
                    return None;
                }
                let drifts: Vec<NoticeDrift> = notice
                    .drifts
                    .iter()
                    .filter_map(|d| self.select_drift(d))
                    .collect();
                if drifts.is_empty() {
                    return None;
                }
                let severity = if notice.kind == NoticeKind::Resolved {
                    notice.severity
                } else {
                    drifts
                        .iter()
                        .map(|d| d.severity)
                        .max()
                        .unwrap_or(notice.severity)
                };
                Some(Notice {
                    drifts,
                    severity,
                    ..notice.clone()
                })
            }
        }
    }

    fn env_matches(&self, env: &str) -> bool {
        self.environments.is_empty() || self.environments.iter().any(|g| glob(g, env))
    }

    fn passes(&self, severity: Severity, category: &str) -> bool {
        self.min_severity.is_none_or(|min| severity >= min)
            && (self.categories.is_empty() || self.categories.iter().any(|c| c == category))
    }

    fn select_drift(&self, drift: &NoticeDrift) -> Option<NoticeDrift> {
        if drift.changes.is_empty() {
            return self
                .passes(drift.severity, "presence")
                .then(|| drift.clone());
        }
        let changes: Vec<_> = drift
            .changes
            .iter()
            .filter(|c| self.passes(c.severity, &c.category))
            .cloned()
            .collect();
        if changes.is_empty() {
            return None;
        }
        let severity = changes
            .iter()
            .map(|c| c.severity)
            .max()
            .unwrap_or(drift.severity);
        Some(NoticeDrift {
            changes,
            severity,
            ..drift.clone()
        })
    }
}

/// Glob match: `*` any run of characters (also none), `?` exactly one, all else literal
/// (the same matcher the ignore rules use).
pub use crate::pattern::wildcard as glob;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::templates::sample_notice;

    fn route(yaml: &str) -> Route {
        serde_saphyr::from_str(yaml).expect("valid route")
    }

    #[test]
    fn default_route_passes_everything_unchanged() {
        for kind in crate::alert::templates::ALL_KINDS {
            let n = sample_notice(kind);
            assert_eq!(Route::default().select(&n).as_ref(), Some(&n));
        }
    }

    #[test]
    fn min_severity_keeps_only_passing_drifts_and_recomputes_severity() {
        let n = sample_notice(NoticeKind::Drift);
        let r = route("min_severity: high");
        let got = r.select(&n).expect("some drifts pass");
        let resources: Vec<_> = got.drifts.iter().map(|d| d.resource.as_str()).collect();
        assert_eq!(resources, ["Deployment shop/api", "Deployment shop/web"]);
        assert_eq!(got.severity, Severity::Critical);
        let only_critical = route("min_severity: critical")
            .select(&n)
            .expect("one passes");
        assert_eq!(only_critical.drifts.len(), 1);
        assert!(
            route("{min_severity: critical, categories: [image]}")
                .select(&n)
                .is_none()
        );
    }

    #[test]
    fn categories_filter_field_changes() {
        let n = sample_notice(NoticeKind::Drift);
        let got = route("categories: [secret-data]")
            .select(&n)
            .expect("passes");
        assert_eq!(got.drifts.len(), 1);
        assert_eq!(got.drifts[0].resource, "Secret shop/api-credentials");
        assert_eq!(got.severity, Severity::Medium);
    }

    #[test]
    fn drift_without_changes_is_judged_as_presence() {
        let mut n = sample_notice(NoticeKind::Drift);
        n.drifts[0].changes.clear();
        n.drifts[0].drift_type = "missing".into();
        let got = route("categories: [presence]").select(&n).expect("passes");
        assert_eq!(got.drifts.len(), 1);
        assert_eq!(got.drifts[0].drift_type, "missing");
    }

    #[test]
    fn environments_are_globs() {
        let n = sample_notice(NoticeKind::Drift);
        assert!(route("environments: [prod*]").select(&n).is_some());
        assert!(route("environments: [staging]").select(&n).is_none());
        assert!(route("environments: ['?roduction']").select(&n).is_some());
    }

    #[test]
    fn kinds_filter() {
        let r = route("kinds: [drift, resolved]");
        assert!(r.select(&sample_notice(NoticeKind::Drift)).is_some());
        assert!(r.select(&sample_notice(NoticeKind::Report)).is_none());
        assert!(r.select(&sample_notice(NoticeKind::ScanFailed)).is_none());
    }

    #[test]
    fn scan_failed_and_report_ignore_severity_and_categories() {
        let r = route("{min_severity: critical, categories: [rbac]}");
        assert!(r.select(&sample_notice(NoticeKind::ScanFailed)).is_some());
        assert!(r.select(&sample_notice(NoticeKind::Report)).is_some());
        assert!(
            route("environments: [staging]")
                .select(&sample_notice(NoticeKind::ScanFailed))
                .is_none()
        );
    }

    #[test]
    fn resolved_is_filtered_like_the_open_drift_and_keeps_its_severity() {
        let n = sample_notice(NoticeKind::Resolved);
        let got = route("min_severity: high")
            .select(&n)
            .expect("critical passes");
        assert_eq!(got.severity, Severity::Info);
        assert!(route("categories: [image]").select(&n).is_none());
    }

    #[test]
    fn report_sections_filtered_by_environment() {
        let mut n = sample_notice(NoticeKind::Report);
        n.env = "all".into();
        let mut staging = n.report[0].clone();
        staging.name = "staging".into();
        n.report.push(staging);
        let got = route("environments: [staging]")
            .select(&n)
            .expect("one section");
        assert_eq!(got.report.len(), 1);
        assert_eq!(got.report[0].name, "staging");
    }

    #[test]
    fn misspelt_route_key_is_rejected() {
        let err = serde_saphyr::from_str::<Route>("min_severty: high").expect_err("unknown key");
        assert!(err.to_string().contains("min_severty"), "{err}");
    }

    #[test]
    fn glob_cases() {
        assert!(glob("*", ""));
        assert!(glob("a*c", "abbbc"));
        assert!(!glob("a*c", "abbb"));
        assert!(glob("*-prod-*", "eu-prod-1"));
        assert!(!glob("prod", "production"));
    }
}
