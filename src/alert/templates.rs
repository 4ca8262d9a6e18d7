//! Message templates: every sink renders a [`Notice`] through a minijinja template from
//! `alerts/` (embedded in the binary), which a user directory can override file by file.
//!
//! Entry point: [`Templates::load`]. Every template, embedded or overriding, is parsed *and*
//! test-rendered against a sample notice of every [`NoticeKind`] when it is loaded, so a broken
//! user template fails at start-up with its file and line, not at 3 a.m. in the outbox.
//!
//! Templates see one context:
//!
//! | variable | what |
//! | --- | --- |
//! | `notice` | the [`Notice`] (fields as in its JSON form) |
//! | `kind` | `drift`, `escalated`, `resolved`, `reminder`, `scan_failed`, `report` |
//! | `groups` | drifts grouped by severity, highest first: `[{severity, drifts}]`, empty groups left out |
//! | `counts` | open drifts per severity in this notice: `{critical: 1, high: 0, …}` |
//! | `total_drifts`, `total_changes` | numbers |
//! | `changed_drifts` | drifts of a `drift` notice that were known and changed (the others are new) |
//!
//! Filters added to minijinja's builtins: `mrkdwn` (escapes `&`, `<`, `>` for Slack) and
//! `shorten(n)` (cuts to `n` characters, ending with `…`). Auto-escaping is HTML for
//! `*.html` files and off for the others; JSON templates use `|tojson` for every value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use serde::Serialize;

use super::notice::{Notice, NoticeChange, NoticeDrift, NoticeKind, ReportSection};
use crate::model::Severity;

/// The embedded templates, by file name (the same names a user directory overrides).
pub const EMBEDDED: &[(&str, &str)] = &[
    (SLACK, include_str!("../../alerts/slack.json")),
    (
        EMAIL_SUBJECT,
        include_str!("../../alerts/email_subject.txt"),
    ),
    (EMAIL_TEXT, include_str!("../../alerts/email.txt")),
    (EMAIL_HTML, include_str!("../../alerts/email.html")),
    (DESKTOP, include_str!("../../alerts/desktop.txt")),
    (WEBHOOK, include_str!("../../alerts/webhook.json")),
    (LOG, include_str!("../../alerts/log.txt")),
];

/// Slack message: a JSON object `{"text": …, "blocks": […]}` (Block Kit).
pub const SLACK: &str = "slack.json";
/// Email subject line (one line; newlines are folded).
pub const EMAIL_SUBJECT: &str = "email_subject.txt";
/// Email plain-text part.
pub const EMAIL_TEXT: &str = "email.txt";
/// Email HTML part.
pub const EMAIL_HTML: &str = "email.html";
/// Desktop notification body (the summary is the notice title).
pub const DESKTOP: &str = "desktop.txt";
/// Generic webhook body: any JSON value.
pub const WEBHOOK: &str = "webhook.json";
/// The log sink's message.
pub const LOG: &str = "log.txt";

/// Why templates could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The override directory or one of its files could not be read.
    #[error("{}: {source}", path.display())]
    ReadFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file in the override directory is not the name of any template.
    #[error("{}: not a template envdrift uses (choose from: {})", path.display(), names())]
    UnknownTemplate { path: PathBuf },
    /// A template does not parse.
    #[error("{file}: line {line}: {message}")]
    ParseFailed {
        file: String,
        line: usize,
        message: String,
    },
    /// A template failed while rendering (an unknown variable, a bad filter argument…).
    #[error("{file}: line {line}: {message}{}", kind.map(|k| format!(" (rendering a `{}` notice)", k.as_str())).unwrap_or_default())]
    RenderFailed {
        file: String,
        line: usize,
        message: String,
        kind: Option<NoticeKind>,
    },
}

fn names() -> String {
    EMBEDDED
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The loaded set of templates; cheap to clone.
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
    /// Where each template came from (`embedded` or the override file), for error messages.
    origin: Arc<BTreeMap<&'static str, String>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("origin", &self.origin)
            .finish()
    }
}

impl Templates {
    /// The embedded templates only.
    ///
    /// # Errors
    /// Only if an embedded template is broken, which the tests rule out.
    pub fn embedded() -> Result<Templates, TemplateError> {
        Templates::load(None)
    }

    /// The embedded templates, with any file of `dir` of the same name taking its place.
    ///
    /// # Errors
    /// The directory or a file cannot be read; a file has a name no sink uses; a template
    /// does not parse or fails to render a sample notice of some kind (file and line named).
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut sources: BTreeMap<&'static str, (String, String)> = EMBEDDED
            .iter()
            .map(|(n, s)| (*n, (format!("embedded alerts/{n}"), (*s).to_string())))
            .collect();
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).map_err(|source| TemplateError::ReadFailed {
                path: dir.to_path_buf(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| TemplateError::ReadFailed {
                    path: dir.to_path_buf(),
                    source,
                })?;
                let path = entry.path();
                if path.is_dir() {
                    continue;
                }
                let file_name = entry.file_name().to_string_lossy().into_owned();
                if file_name.starts_with('.') {
                    continue;
                }
                let Some((name, _)) = EMBEDDED.iter().find(|(n, _)| *n == file_name) else {
                    return Err(TemplateError::UnknownTemplate { path });
                };
                let text =
                    std::fs::read_to_string(&path).map_err(|source| TemplateError::ReadFailed {
                        path: path.clone(),
                        source,
                    })?;
                sources.insert(name, (path.display().to_string(), text));
            }
        }
        let mut env = new_env();
        let mut origin = BTreeMap::new();
        for (name, (from, text)) in sources {
            env.add_template_owned(name, text)
                .map_err(|e| TemplateError::ParseFailed {
                    file: from.clone(),
                    line: e.line().unwrap_or(0),
                    message: e.detail().unwrap_or("syntax error").to_string(),
                })?;
            origin.insert(name, from);
        }
        let templates = Templates {
            env: Arc::new(env),
            origin: Arc::new(origin),
        };
        for kind in ALL_KINDS {
            let notice = sample_notice(kind);
            for (name, _) in EMBEDDED {
                templates.render_kind(name, &notice, Some(kind))?;
            }
        }
        Ok(templates)
    }

    /// Renders template `name` (one of the constants of this module) for `notice`.
    ///
    /// # Errors
    /// [`TemplateError::RenderFailed`] naming the template's file and line.
    pub fn render(&self, name: &str, notice: &Notice) -> Result<String, TemplateError> {
        self.render_kind(name, notice, None)
    }

    /// Where template `name` comes from: `embedded alerts/slack.json` or the override path.
    pub fn origin(&self, name: &str) -> String {
        self.origin
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    fn render_kind(
        &self,
        name: &str,
        notice: &Notice,
        kind: Option<NoticeKind>,
    ) -> Result<String, TemplateError> {
        let fail = |e: minijinja::Error| TemplateError::RenderFailed {
            file: self.origin(name),
            line: e.line().unwrap_or(0),
            message: match e.detail() {
                Some(d) => format!("{}: {d}", e.kind()),
                None => e.kind().to_string(),
            },
            kind,
        };
        let template = self.env.get_template(name).map_err(fail)?;
        template.render(context(notice)).map_err(fail)
    }
}

fn new_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.add_filter("mrkdwn", |s: String| -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    });
    env.add_filter("shorten", |s: String, n: usize| -> String {
        shorten(&s, n)
    });
    env
}

/// Cuts `s` to at most `n` characters, the last one `…` when cut.
pub(crate) fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[derive(Serialize)]
struct Group<'a> {
    severity: Severity,
    drifts: Vec<&'a NoticeDrift>,
}

#[derive(Serialize)]
struct RenderContext<'a> {
    notice: &'a Notice,
    kind: &'static str,
    groups: Vec<Group<'a>>,
    counts: BTreeMap<&'static str, usize>,
    total_drifts: usize,
    total_changes: usize,
    changed_drifts: usize,
}

fn context(notice: &Notice) -> Value {
    let groups = Severity::ALL
        .iter()
        .map(|&severity| Group {
            severity,
            drifts: notice
                .drifts
                .iter()
                .filter(|d| d.severity == severity)
                .collect(),
        })
        .filter(|g| !g.drifts.is_empty())
        .collect();
    let counts = Severity::ALL
        .iter()
        .map(|&s| {
            (
                s.as_str(),
                notice.drifts.iter().filter(|d| d.severity == s).count(),
            )
        })
        .collect();
    Value::from(Serde(RenderContext {
        notice,
        kind: notice.kind.as_str(),
        groups,
        counts,
        total_drifts: notice.drifts.len(),
        total_changes: notice.drifts.iter().map(|d| d.changes.len()).sum(),
        changed_drifts: notice
            .drifts
            .iter()
            .filter(|d| d.event == Some(super::notice::DriftEvent::Changed))
            .count(),
    }))
}

/// Every notice kind, in the order templates are checked.
pub const ALL_KINDS: [NoticeKind; 8] = [
    NoticeKind::Drift,
    NoticeKind::Escalated,
    NoticeKind::Resolved,
    NoticeKind::Reminder,
    NoticeKind::ScanFailed,
    NoticeKind::Report,
    NoticeKind::Acknowledged,
    NoticeKind::Silenced,
];

fn change(
    field: &str,
    path: &str,
    desired: &str,
    live: &str,
    severity: Severity,
    category: &str,
    manager: Option<&str>,
) -> NoticeChange {
    NoticeChange {
        field: field.into(),
        path: path.into(),
        op: "changed".into(),
        desired: desired.into(),
        live: live.into(),
        severity,
        category: category.into(),
        cause: if manager.is_some() {
            "manual"
        } else {
            "unknown"
        }
        .into(),
        manager: manager.map(str::to_string),
        values: None,
        time: manager.map(|_| "2026-11-26T09:12:44Z".to_string()),
    }
}

/// A realistic notice of `kind` for environment `production`: an image changed with
/// `kubectl set image`, a container made privileged with `kubectl edit`, and a Secret whose
/// data changed (shown as sha256 hashes, as notices always show Secret values).
///
/// Used to check templates when they are loaded (every template must render every kind),
/// by `config check`, and by the tests' snapshots.
pub fn sample_notice(kind: NoticeKind) -> Notice {
    let image = NoticeDrift {
        fingerprint: "5f0c1e2d9a7b3c41".into(),
        resource: "Deployment shop/web".into(),
        drift_type: "modified".into(),
        severity: Severity::High,
        previous_severity: (kind == NoticeKind::Escalated).then_some(Severity::Medium),
        cause: "manual".into(),
        changes: vec![change(
            "spec.template.spec.containers[name=web].image",
            "/spec/template/spec/containers/0/image",
            "registry.example.com/shop/web:1.8.2",
            "registry.example.com/shop/web:1.9.0-rc1",
            Severity::High,
            "image",
            Some("kubectl-set"),
        )],
        kubectl: r#"kubectl patch deployment web -n shop --type=json -p '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"registry.example.com/shop/web:1.8.2"}]'"#.into(),
        first_seen: "2026-11-26T09:13:02Z".into(),
        age: "2h".into(),
        drift_id: Some(42),
        identity: "modified|apps|Deployment|shop|web".into(),
        event: None,
        previous_state: None,
    };
    let privileged = NoticeDrift {
        fingerprint: "a93b7710c2e4f655".into(),
        resource: "Deployment shop/api".into(),
        drift_type: "modified".into(),
        severity: Severity::Critical,
        previous_severity: None,
        cause: "manual".into(),
        changes: vec![change(
            "spec.template.spec.containers[name=api].securityContext.privileged",
            "/spec/template/spec/containers/0/securityContext/privileged",
            "(absent)",
            "true",
            Severity::Critical,
            "security-context",
            Some("kubectl-edit"),
        )],
        kubectl: r#"kubectl patch deployment api -n shop --type=json -p '[{"op":"remove","path":"/spec/template/spec/containers/0/securityContext/privileged"}]'"#.into(),
        first_seen: "2026-11-26T10:40:19Z".into(),
        age: "45m".into(),
        drift_id: Some(41),
        identity: "modified|apps|Deployment|shop|api".into(),
        event: None,
        previous_state: None,
    };
    let secret = NoticeDrift {
        fingerprint: "0d4e8c21b7f9a356".into(),
        resource: "Secret shop/api-credentials".into(),
        drift_type: "modified".into(),
        severity: Severity::Medium,
        previous_severity: None,
        cause: "unknown".into(),
        changes: vec![change(
            "data.DATABASE_PASSWORD",
            "/data/DATABASE_PASSWORD",
            "sha256:9f86d081884c7d65",
            "sha256:60303ae22b998861",
            Severity::Medium,
            "secret-data",
            None,
        )],
        kubectl: String::new(),
        first_seen: "2026-11-26T11:02:51Z".into(),
        age: "23m".into(),
        drift_id: Some(43),
        identity: "modified||Secret|shop|api-credentials".into(),
        event: None,
        previous_state: None,
    };
    let mut notice = Notice {
        id: format!("production-{}-20261126T112500Z", kind.as_str()),
        kind,
        env: "production".into(),
        title: String::new(),
        severity: Severity::Critical,
        created_at: "2026-11-26T11:25:00Z".into(),
        drifts: vec![privileged.clone(), image.clone(), secret],
        error: None,
        report: Vec::new(),
        extra: serde_json::json!({}),
    };
    match kind {
        NoticeKind::Drift => notice.title = "production: 3 new drifts (1 critical)".into(),
        NoticeKind::Escalated => {
            notice.title = "production: 1 drift escalated to high".into();
            notice.severity = Severity::High;
            notice.drifts = vec![image];
        }
        NoticeKind::Resolved => {
            notice.title = "production: 1 drift resolved".into();
            notice.severity = Severity::Info;
            notice.drifts = vec![privileged];
        }
        NoticeKind::Reminder => {
            notice.title = "production: 3 drifts still open".into();
        }
        NoticeKind::ScanFailed => {
            notice.title = "production: scan failed".into();
            notice.severity = Severity::High;
            notice.drifts = Vec::new();
            notice.error = Some(
                "live source: listing apps/v1 Deployment: connection refused (open drifts stay open)"
                    .into(),
            );
        }
        NoticeKind::Report => {
            notice.title = "Drift report: production".into();
            notice.report = vec![ReportSection {
                name: "production".into(),
                open_by_severity: vec![
                    (Severity::Critical, 1),
                    (Severity::High, 1),
                    (Severity::Medium, 1),
                    (Severity::Low, 0),
                    (Severity::Info, 0),
                ],
                open_by_category: vec![
                    ("image".into(), 1),
                    ("secret-data".into(), 1),
                    ("security-context".into(), 1),
                ],
                new_since_last: 2,
                resolved_since_last: 1,
                oldest: vec![image, privileged],
                failed_scans: vec!["2026-11-26T04:00:00Z: git fetch timed out".into()],
            }];
            notice.drifts = Vec::new();
        }
        NoticeKind::Acknowledged => {
            notice.title = "production: Deployment shop/web acknowledged by alice".into();
            notice.severity = Severity::High;
            notice.drifts = vec![image];
            notice.extra = serde_json::json!({"by": "alice"});
        }
        NoticeKind::Silenced => {
            notice.title =
                "production: Deployment shop/web silenced until 2026-11-27T11:25:00Z by alice"
                    .into();
            notice.severity = Severity::High;
            notice.drifts = vec![image];
            notice.extra = serde_json::json!({"by": "alice", "until": "2026-11-27T11:25:00Z"});
        }
    }
    for d in &mut notice.drifts {
        d.event = Some(d.event_in(kind));
        if kind != NoticeKind::Drift {
            d.previous_state = Some("open".into());
        }
    }
    notice
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_templates_render_every_kind() {
        let t = Templates::embedded().expect("embedded templates load");
        for kind in ALL_KINDS {
            let n = sample_notice(kind);
            for (name, _) in EMBEDDED {
                let out = t.render(name, &n).expect("renders");
                assert!(!out.trim().is_empty(), "{name} for {kind:?} is empty");
            }
        }
    }

    #[test]
    fn override_replaces_by_file_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(DESKTOP), "custom {{ notice.env }}").expect("write");
        let t = Templates::load(Some(dir.path())).expect("loads");
        let out = t
            .render(DESKTOP, &sample_notice(NoticeKind::Drift))
            .expect("renders");
        assert_eq!(out, "custom production");
        assert!(t.origin(DESKTOP).ends_with("desktop.txt"));
        assert_eq!(t.origin(SLACK), "embedded alerts/slack.json");
    }

    #[test]
    fn broken_override_names_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(EMAIL_TEXT);
        std::fs::write(&path, "line one\nline two\n{% if notice.env %}\nno endif\n")
            .expect("write");
        let err = Templates::load(Some(dir.path())).expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(matches!(err, TemplateError::ParseFailed { .. }), "{msg}");
        assert!(msg.contains("line "), "{msg}");
    }

    #[test]
    fn override_with_unknown_variable_fails_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DESKTOP);
        std::fs::write(&path, "Drift in {{ notice.env }}\n{{ notice.titel }}").expect("write");
        let err = Templates::load(Some(dir.path())).expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("desktop.txt: line 2:"), "{msg}");
        assert!(msg.contains("rendering a `drift` notice"), "{msg}");
    }

    #[test]
    fn unknown_file_is_rejected_with_choices() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("slak.json"), "{}").expect("write");
        let msg = Templates::load(Some(dir.path()))
            .expect_err("must fail")
            .to_string();
        assert!(msg.contains("slak.json: not a template"), "{msg}");
        assert!(msg.contains("slack.json"), "{msg}");
    }

    #[test]
    fn shorten_cuts_on_chars() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("äöü", 3), "äöü");
    }
}
