//! Ignore rules: differences people decided not to care about.
//!
//! Like Argo CD's `ignoreDifferences`: a rule selects objects by group, kind, namespace
//! and name (globs with `*` and `?`), then ignores fields by JSON Pointer pattern (`*`
//! matches one segment, `**` any number; a keyed list item matches by index or by its key,
//! so `/spec/template/spec/containers/istio-proxy` names the injected sidecar), or every
//! field last written by a field manager, or the fields Argo CD-style jq path expressions
//! select (deleted from both sides before comparing; see [`crate::diff::jq`]). Rules may
//! also select objects by label (`selector:` map or `labelSelector:` string). A rule with
//! neither paths, managers nor jq expressions ignores the whole object (it is never
//! missing, unmanaged or modified).
//!
//! ```yaml
//! ignore:
//!   - kind: Deployment
//!     paths: [/spec/replicas]                 # an HPA scales these
//!   - kind: "*"
//!     namespace: "istio-*"
//!     managers: [istio-operator]
//!   - kind: MutatingWebhookConfiguration
//!     paths: ["/webhooks/*/clientConfig/caBundle"]
//! ```

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::diff::jq::{JqPath, Limits};
use crate::model::ResourceKey;
use crate::pattern::{ObjectSelector, PathPattern, SegView, wildcard};
use serde_json::Value;

/// An ignore rule as written in the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgnoreRule {
    /// API group (`apps`; `""` for core). Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind glob (`Deployment`). Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace glob. Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name glob. Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only objects whose labels match (`matchLabels`, `matchExpressions`): the desired
    /// object's labels, or the live object's when there is no desired one (unmanaged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<crate::pattern::LabelSelector>,
    /// The same in the selector string syntax (`app=web,tier in (a,b),!legacy`); with
    /// `selector` too, an object must match both.
    #[serde(
        default,
        rename = "labelSelector",
        skip_serializing_if = "Option::is_none"
    )]
    pub label_selector: Option<String>,
    /// JSON Pointer patterns of fields to ignore (Argo CD's `jsonPointers` is the same).
    #[serde(default, alias = "jsonPointers", skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Ignore every field whose last writer is one of these field managers (globs; Argo
    /// CD's `managedFieldsManagers` is the same).
    #[serde(
        default,
        alias = "managedFieldsManagers",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub managers: Vec<String>,
    /// Argo CD's `jqPathExpressions`: jq path expressions whose selected fields are
    /// deleted from both sides before comparing (as Argo CD's `del(EXPR)`), evaluated with
    /// jaq under the bounds of [`crate::diff::jq`].
    #[serde(
        default,
        rename = "jqPathExpressions",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub jq_path_expressions: Vec<String>,
    /// Why (shown by `config check`, kept for people).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A compiled jq expression and its config key (`ignore[3].jqPathExpressions[0]`).
#[derive(Debug, Clone)]
pub(crate) struct JqRule {
    pub(crate) key: String,
    pub(crate) path: Arc<JqPath>,
}

#[derive(Debug, Clone)]
struct Compiled {
    select: ObjectSelector,
    /// A label selector still to be matched: such a rule applies only in a set narrowed to
    /// one object's labels ([`IgnoreSet::for_labels`]).
    labels: Option<crate::pattern::LabelSelector>,
    paths: Vec<PathPattern>,
    /// How people know the rule: `{list}[{n}]` (or `built-in`) and its reason.
    label: Arc<str>,
    managers: Vec<String>,
    jq: Vec<JqRule>,
}

/// Compiled ignore rules.
#[derive(Debug, Clone, Default)]
pub struct IgnoreSet {
    rules: Vec<Compiled>,
}

/// A rule that does not compile: the key names the rule and field
/// (`ignore[2].paths[0]`, `compare.expected.rules[0].labelSelector`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct RuleProblem {
    /// Index of the rule in the list given to [`IgnoreSet::compile`].
    pub index: usize,
    pub key: String,
    pub message: String,
}

impl IgnoreSet {
    /// Compiles rules listed under `ignore` with the default jq bounds; the error names the
    /// rule and field.
    ///
    /// # Errors
    /// Every problem of every rule.
    pub fn new(rules: &[IgnoreRule]) -> Result<IgnoreSet, Vec<RuleProblem>> {
        Self::compile(rules, "ignore", 0, Limits::default())
    }

    /// Compiles rules listed under `list` (for messages); the first `skip` rules are
    /// built-in ones, named from 0 after them.
    ///
    /// # Errors
    /// Every problem of every rule, each naming its key.
    pub fn compile(
        rules: &[IgnoreRule],
        list: &str,
        skip: usize,
        limits: Limits,
    ) -> Result<IgnoreSet, Vec<RuleProblem>> {
        let mut out = Vec::with_capacity(rules.len());
        let mut problems = Vec::new();
        for (index, r) in rules.iter().enumerate() {
            let n = index.saturating_sub(skip);
            let mut problem = |field: String, message: String| {
                problems.push(RuleProblem {
                    index,
                    key: format!("{list}[{n}].{field}"),
                    message,
                });
            };
            let mut paths = Vec::with_capacity(r.paths.len());
            for (j, p) in r.paths.iter().enumerate() {
                match PathPattern::parse(p) {
                    Ok(p) => paths.push(p),
                    Err(e) => problem(format!("paths[{j}]"), e.to_string()),
                }
            }
            let labels = match crate::pattern::LabelSelector::combine(
                r.selector.as_ref(),
                r.label_selector.as_deref(),
            ) {
                Ok(l) => l,
                Err((field, message)) => {
                    problem(field.to_string(), message);
                    None
                }
            };
            let mut jq = Vec::with_capacity(r.jq_path_expressions.len());
            for (j, e) in r.jq_path_expressions.iter().enumerate() {
                let key = format!("jqPathExpressions[{j}]");
                match JqPath::compile(e, limits) {
                    Ok(p) => jq.push(JqRule {
                        key: format!("{list}[{n}].{key}"),
                        path: Arc::new(p),
                    }),
                    Err(e) => problem(key, e.to_string()),
                }
            }
            out.push(Compiled {
                select: ObjectSelector {
                    group: r.group.clone(),
                    kind: r.kind.clone(),
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                },
                labels,
                paths,
                label: {
                    let name = if index < skip {
                        "built-in".to_string()
                    } else {
                        format!("{list}[{n}]")
                    };
                    match r.reason.as_deref() {
                        Some(why) if !why.trim().is_empty() => format!("{name}: {}", why.trim()),
                        _ => name,
                    }
                    .into()
                },
                managers: r.managers.clone(),
                jq,
            });
        }
        if problems.is_empty() {
            Ok(IgnoreSet { rules: out })
        } else {
            Err(problems)
        }
    }

    /// Whether some rule selects objects by label (then the engine narrows the set to each
    /// object's labels with [`IgnoreSet::for_labels`]).
    pub(crate) fn has_label_rules(&self) -> bool {
        self.rules.iter().any(|r| r.labels.is_some())
    }

    /// For each rule with a label selector, whether it matches these labels.
    pub(crate) fn label_matches(
        &self,
        labels: Option<&serde_json::Map<String, Value>>,
    ) -> Vec<bool> {
        self.rules
            .iter()
            .filter_map(|r| r.labels.as_ref().map(|l| l.matches(labels)))
            .collect()
    }

    /// The rules that apply to an object with these labels, label selectors resolved.
    pub(crate) fn for_labels(&self, labels: Option<&serde_json::Map<String, Value>>) -> IgnoreSet {
        IgnoreSet {
            rules: self
                .rules
                .iter()
                .filter(|r| r.labels.as_ref().is_none_or(|l| l.matches(labels)))
                .map(|r| Compiled {
                    labels: None,
                    ..r.clone()
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when a rule ignores the whole object.
    pub(crate) fn ignores_object(&self, key: &ResourceKey) -> bool {
        self.rules.iter().any(|r| {
            r.labels.is_none()
                && r.paths.is_empty()
                && r.managers.is_empty()
                && r.jq.is_empty()
                && r.select.selects(key)
        })
    }

    /// True when a path rule covers `path` of the object.
    pub(crate) fn ignores_path(&self, key: &ResourceKey, path: &[SegView<'_>]) -> bool {
        self.rules.iter().any(|r| {
            r.labels.is_none() && r.select.selects(key) && r.paths.iter().any(|p| p.covers(path))
        })
    }

    /// The first path rule that covers `path` of the object, by its label.
    pub(crate) fn path_rule(&self, key: &ResourceKey, path: &[SegView<'_>]) -> Option<Arc<str>> {
        self.rules
            .iter()
            .find(|r| {
                r.labels.is_none()
                    && r.select.selects(key)
                    && r.paths.iter().any(|p| p.covers(path))
            })
            .map(|r| Arc::clone(&r.label))
    }

    /// True when a manager rule names `manager` for the object.
    pub(crate) fn ignores_manager(&self, key: &ResourceKey, manager: &str) -> bool {
        self.rules.iter().any(|r| {
            r.labels.is_none()
                && r.select.selects(key)
                && r.managers.iter().any(|m| wildcard(m, manager))
        })
    }

    /// The jq expressions of the rules that select this object.
    pub(crate) fn jq_for(&self, key: &ResourceKey) -> impl Iterator<Item = &JqRule> {
        self.rules
            .iter()
            .filter(|r| r.labels.is_none() && !r.jq.is_empty() && r.select.selects(key))
            .flat_map(|r| r.jq.iter())
    }

    /// Whether any rule has jq expressions (lets the engine skip looking).
    pub(crate) fn has_jq(&self) -> bool {
        self.rules.iter().any(|r| !r.jq.is_empty())
    }

    /// Whether any rule can apply to this object at all (lets the engine skip checks).
    pub(crate) fn applies_to(&self, key: &ResourceKey) -> bool {
        self.rules
            .iter()
            .any(|r| r.labels.is_none() && r.select.selects(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::SegView;

    fn segs<'a>(parts: &'a [(&'a str, Option<&'a str>)]) -> Vec<SegView<'a>> {
        parts
            .iter()
            .map(|(t, a)| SegView {
                token: t,
                alias: *a,
            })
            .collect()
    }

    fn key(kind: &str, ns: Option<&str>, name: &str) -> ResourceKey {
        ResourceKey {
            group: "apps".into(),
            kind: kind.into(),
            namespace: ns.map(str::to_string),
            name: name.into(),
        }
    }

    #[test]
    fn rules_select_objects() {
        let rules = vec![
            IgnoreRule {
                kind: Some("Deployment".into()),
                paths: vec!["/spec/replicas".into()],
                ..Default::default()
            },
            IgnoreRule {
                namespace: Some("istio-*".into()),
                managers: vec!["istio-*".into()],
                ..Default::default()
            },
            IgnoreRule {
                name: Some("legacy-*".into()),
                ..Default::default()
            },
        ];
        let set = IgnoreSet::new(&rules).unwrap();
        let replicas = [("spec", None), ("replicas", None)];
        assert!(set.ignores_path(&key("Deployment", Some("a"), "web"), &segs(&replicas)));
        assert!(!set.ignores_path(&key("StatefulSet", Some("a"), "web"), &segs(&replicas)));
        assert!(set.ignores_manager(&key("X", Some("istio-system"), "x"), "istio-operator"));
        assert!(!set.ignores_manager(&key("X", Some("shop"), "x"), "istio-operator"));
        assert!(set.ignores_object(&key("X", None, "legacy-db")));
        assert!(!set.ignores_object(&key("X", None, "db")));
        let bad = IgnoreSet::new(&[IgnoreRule {
            paths: vec!["spec".into()],
            ..Default::default()
        }]);
        assert_eq!(bad.unwrap_err()[0].key, "ignore[0].paths[0]");
    }
}
