//! Renderers: a comparison result as a terminal table, JSON (schema `envdrift.diff/v1`,
//! documented in docs/json-schema.md), Markdown, SARIF 2.1.0 (code scanning) or JUnit XML
//! (CI test reports; see docs/ci.md). Renderers consume drifts; they never compute them.

pub mod json;
pub mod junit;
pub mod markdown;
pub mod sarif;
pub mod table;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::diff::DiffResult;
use crate::model::{DriftType, InputError, Severity, SkippedInput, Snapshot};
use crate::redact::short_hash;

/// How the two sides are named in output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Git (or files) vs cluster: sides are `desired` and `live`.
    DesiredVsLive,
    /// Environment vs environment: sides are `from` and `to`.
    EnvVsEnv,
}

impl Mode {
    pub(crate) fn side_names(self) -> (&'static str, &'static str) {
        match self {
            Mode::DesiredVsLive => ("desired", "live"),
            Mode::EnvVsEnv => ("from", "to"),
        }
    }

    /// How a drift type is named in this mode: comparing environments, `missing` is
    /// `only-in-from` and `unmanaged` is `only-in-to`.
    pub(crate) fn type_name(self, t: DriftType) -> &'static str {
        match (self, t) {
            (Mode::EnvVsEnv, DriftType::Missing) => "only-in-from",
            (Mode::EnvVsEnv, DriftType::Unmanaged) => "only-in-to",
            (_, t) => t.as_str(),
        }
    }
}

/// One side's description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Side {
    pub name: String,
    pub source: String,
    pub commit: Option<String>,
    /// Why this side may be out of date (a failed Git fetch), when it is.
    pub stale: Option<String>,
    pub objects: usize,
}

impl Side {
    pub fn of(name: &str, snap: &Snapshot) -> Side {
        Side {
            name: name.to_string(),
            source: snap
                .source
                .as_ref()
                .map(|s| s.description.clone())
                .unwrap_or_default(),
            commit: snap.source.as_ref().and_then(|s| s.commit.clone()),
            stale: snap.source.as_ref().and_then(|s| s.stale.clone()),
            objects: snap.objects.len(),
        }
    }
}

/// Everything a renderer shows.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    pub mode: Mode,
    pub left: Side,
    pub right: Side,
    pub result: &'a DiffResult,
    pub errors: Vec<InputError>,
    pub skipped: Vec<SkippedInput>,
    /// Why some drift types were withheld (a side was read only in part); empty when the
    /// result is complete.
    pub notes: Vec<String>,
}

/// Counts for the summary line and the JSON `summary`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub drifts: usize,
    pub changes: usize,
    pub by_type: BTreeMap<&'static str, usize>,
    pub by_severity: BTreeMap<Severity, usize>,
}

impl Report<'_> {
    /// Every note: the run's (withheld drifts), then the engine's (schemas).
    pub(crate) fn all_notes(&self) -> Vec<&String> {
        self.notes.iter().chain(&self.result.notes).collect()
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for t in [
            DriftType::Missing,
            DriftType::Unmanaged,
            DriftType::Modified,
        ] {
            s.by_type.insert(self.mode.type_name(t), 0);
        }
        for sev in Severity::ALL {
            s.by_severity.insert(sev, 0);
        }
        for d in &self.result.drifts {
            s.drifts += 1;
            s.changes += d.changes.len();
            *s.by_type
                .entry(self.mode.type_name(d.drift_type))
                .or_default() += 1;
            *s.by_severity.entry(d.severity).or_default() += 1;
        }
        s
    }
}

/// A value shown inline: strings bare, Secret hashes shortened, long values cut.
pub fn inline_value(v: &Value, max: usize) -> String {
    let text = match v {
        Value::Null => "(absent)".to_string(),
        Value::String(s) => short_hash(s),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            let parts: Vec<String> = items
                .iter()
                .map(|i| match i {
                    Value::String(s) => short_hash(s),
                    other => other.to_string(),
                })
                .collect();
            format!("[{}]", parts.join(", "))
        }
        other => other.to_string(),
    };
    truncate(&text, max)
}

/// Cuts `s` to `max` characters with an ellipsis.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inline_values() {
        assert_eq!(inline_value(&json!(null), 20), "(absent)");
        assert_eq!(inline_value(&json!("abc"), 20), "abc");
        assert_eq!(inline_value(&json!(["get", "list"]), 20), "[get, list]");
        assert_eq!(inline_value(&json!("abcdefghij"), 5), "abcd…");
        let h = crate::redact::hash_bytes(b"x");
        assert!(inline_value(&json!(h), 40).ends_with('…'));
    }
}
