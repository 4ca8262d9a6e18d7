//! The page templates (`web/*.html`, minijinja, HTML auto-escaping) and static files
//! (`web/style.css`, `web/copy.js`), embedded in the binary; a directory overrides any of
//! them by file name. Every template is parsed when loaded, so a broken override fails at
//! start-up naming its file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

/// The embedded templates, by file name.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../web/base.html")),
    ("overview.html", include_str!("../../web/overview.html")),
    (
        "environment.html",
        include_str!("../../web/environment.html"),
    ),
    ("comparison.html", include_str!("../../web/comparison.html")),
    ("drift.html", include_str!("../../web/drift.html")),
    ("trends.html", include_str!("../../web/trends.html")),
    ("login.html", include_str!("../../web/login.html")),
];

/// The embedded static files, by file name, with their content type.
pub const STATIC: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../web/style.css"),
    ),
    (
        "copy.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/copy.js"),
    ),
];

/// Why the web templates could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("api.web_templates_dir: {}: {source}", path.display())]
    ReadFailed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("api.web_templates_dir: {}: not a file the web page uses (choose from: {})", path.display(), names())]
    UnknownFile { path: PathBuf },
    #[error("{file}: line {line}: {message}")]
    ParseFailed {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}: line {line}: {message}")]
    RenderFailed {
        file: String,
        line: usize,
        message: String,
    },
}

fn names() -> String {
    TEMPLATES
        .iter()
        .map(|(n, _)| *n)
        .chain(STATIC.iter().map(|(n, _, _)| *n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An RFC 3339 time as the pages show it: `2026-12-04 18:32 UTC` (other text unchanged).
pub(crate) fn when(s: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M UTC")
            .to_string(),
        Err(_) => s.to_string(),
    }
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

/// The loaded templates and static files; cheap to clone.
#[derive(Clone)]
pub struct WebTemplates {
    env: Arc<Environment<'static>>,
    origin: Arc<BTreeMap<String, String>>,
    statics: Arc<BTreeMap<String, (&'static str, String)>>,
}

impl std::fmt::Debug for WebTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebTemplates")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl WebTemplates {
    /// The embedded files, each replaced by the file of the same name in `dir` if any.
    ///
    /// # Errors
    /// The directory or a file cannot be read, a file is not one the page uses, or a
    /// template does not parse (file and line named).
    pub fn load(dir: Option<&Path>) -> Result<WebTemplates, TemplateError> {
        let mut sources: BTreeMap<String, (String, String)> = TEMPLATES
            .iter()
            .map(|(n, s)| {
                (
                    (*n).to_string(),
                    (format!("embedded web/{n}"), (*s).to_string()),
                )
            })
            .collect();
        let mut statics: BTreeMap<String, (&'static str, String)> = STATIC
            .iter()
            .map(|(n, t, s)| ((*n).to_string(), (*t, (*s).to_string())))
            .collect();
        if let Some(dir) = dir {
            let read_failed = |path: &Path| {
                let path = path.to_path_buf();
                move |source| TemplateError::ReadFailed { path, source }
            };
            for entry in std::fs::read_dir(dir).map_err(read_failed(dir))? {
                let entry = entry.map_err(read_failed(dir))?;
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if path.is_dir() || name.starts_with('.') {
                    continue;
                }
                let text = std::fs::read_to_string(&path).map_err(read_failed(&path))?;
                if let Some(slot) = sources.get_mut(&name) {
                    *slot = (path.display().to_string(), text);
                } else if let Some(slot) = statics.get_mut(&name) {
                    slot.1 = text;
                } else {
                    return Err(TemplateError::UnknownFile { path });
                }
            }
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        // Block tags on their own lines leave no blank lines in the page.
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        // HTML escaping of `& < > " '` only: minijinja's own also escapes `/`, which would
        // turn every path and JSON Pointer into `&#x2f;…` in the page's source.
        env.set_formatter(|out, state, value| {
            if value.is_safe()
                || value.is_undefined()
                || value.is_none()
                || !matches!(state.auto_escape(), AutoEscape::Html)
            {
                return minijinja::escape_formatter(out, state, value);
            }
            out.write_str(&crate::web::svg::escape(&value.to_string()))
                .map_err(|_| {
                    minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "writing a page")
                })
        });
        env.add_filter("shorten", |s: String, n: usize| -> String {
            shorten(&s, n)
        });
        env.add_filter("when", |s: String| -> String { when(&s) });
        let mut origin = BTreeMap::new();
        for (name, (from, text)) in sources {
            env.add_template_owned(name.clone(), text)
                .map_err(|e| TemplateError::ParseFailed {
                    file: from.clone(),
                    line: e.line().unwrap_or(0),
                    message: e.detail().unwrap_or("syntax error").to_string(),
                })?;
            origin.insert(name, from);
        }
        Ok(WebTemplates {
            env: Arc::new(env),
            origin: Arc::new(origin),
            statics: Arc::new(statics),
        })
    }

    /// Renders template `name` with `ctx`.
    ///
    /// # Errors
    /// [`TemplateError::RenderFailed`] naming the template's file and line.
    pub fn render<S: Serialize>(&self, name: &str, ctx: &S) -> Result<String, TemplateError> {
        let file = || {
            self.origin
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.to_string())
        };
        let fail = |e: minijinja::Error| TemplateError::RenderFailed {
            file: file(),
            line: e.line().unwrap_or(0),
            message: match e.detail() {
                Some(d) => format!("{}: {d}", e.kind()),
                None => e.kind().to_string(),
            },
        };
        self.env
            .get_template(name)
            .map_err(fail)?
            .render(minijinja::Value::from(minijinja::value::Serde(ctx)))
            .map_err(fail)
    }

    /// A static file's content type and text.
    pub fn static_file(&self, name: &str) -> Option<(&'static str, &str)> {
        self.statics.get(name).map(|(t, s)| (*t, s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_templates_parse_and_overrides_replace_by_name() {
        let t = WebTemplates::load(None).unwrap();
        assert!(t.static_file("copy.js").is_some());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("login.html"), "custom {{ message }}").unwrap();
        std::fs::write(dir.path().join("style.css"), "body{}").unwrap();
        let t = WebTemplates::load(Some(dir.path())).unwrap();
        let out = t
            .render("login.html", &serde_json::json!({"message": "<b>"}))
            .unwrap();
        assert_eq!(out, "custom &lt;b&gt;");
        assert_eq!(t.static_file("style.css").map(|s| s.1), Some("body{}"));

        std::fs::write(dir.path().join("drift.html"), "{% if %}").unwrap();
        match WebTemplates::load(Some(dir.path())) {
            Err(TemplateError::ParseFailed { file, line, .. }) => {
                assert!(file.ends_with("drift.html"), "{file}");
                assert_eq!(line, 1);
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_file(dir.path().join("drift.html")).unwrap();
        std::fs::write(dir.path().join("nope.html"), "").unwrap();
        let e = WebTemplates::load(Some(dir.path())).unwrap_err();
        assert!(
            e.to_string()
                .contains("nope.html: not a file the web page uses"),
            "{e}"
        );
    }
}
