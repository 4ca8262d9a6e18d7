//! Ignore rules: differences people decided not to care about.
//!
//! Like Argo CD's `ignoreDifferences`: a rule selects objects by group, kind, namespace
//! and name (globs with `*` and `?`), then ignores fields by JSON Pointer pattern (`*`
//! matches one segment, `**` any number; a keyed list item matches by index or by its key,
//! so `/spec/template/spec/containers/istio-proxy` names the injected sidecar), or every
//! field last written by a field manager. A rule with neither paths nor managers ignores
//! the whole object (it is never missing, unmanaged or modified).
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

use serde::{Deserialize, Serialize};

use crate::model::ResourceKey;
use crate::pattern::{BadPattern, ObjectSelector, PathPattern, SegView, wildcard};
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
    /// Argo CD's `jqPathExpressions`: accepted so that a pasted `ignoreDifferences` block
    /// loads, and reported by the config check as not supported (with what to use instead).
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

#[derive(Debug, Clone)]
struct Compiled {
    select: ObjectSelector,
    /// A label selector still to be matched: such a rule applies only in a set narrowed to
    /// one object's labels ([`IgnoreSet::for_labels`]).
    labels: Option<crate::pattern::LabelSelector>,
    paths: Vec<PathPattern>,
    managers: Vec<String>,
}

/// Compiled ignore rules.
#[derive(Debug, Clone, Default)]
pub struct IgnoreSet {
    rules: Vec<Compiled>,
}

impl IgnoreSet {
    /// Compiles rules; the error names the rule index and the bad pattern.
    pub fn new(rules: &[IgnoreRule]) -> Result<IgnoreSet, (usize, BadPattern)> {
        let mut out = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let paths = r
                .paths
                .iter()
                .map(|p| PathPattern::parse(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| (i, e))?;
            out.push(Compiled {
                select: ObjectSelector {
                    group: r.group.clone(),
                    kind: r.kind.clone(),
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                },
                labels: r.selector.clone(),
                paths,
                managers: r.managers.clone(),
            });
        }
        Ok(IgnoreSet { rules: out })
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
                && r.select.selects(key)
        })
    }

    /// True when a path rule covers `path` of the object.
    pub(crate) fn ignores_path(&self, key: &ResourceKey, path: &[SegView<'_>]) -> bool {
        self.rules.iter().any(|r| {
            r.labels.is_none() && r.select.selects(key) && r.paths.iter().any(|p| p.covers(path))
        })
    }

    /// True when a manager rule names `manager` for the object.
    pub(crate) fn ignores_manager(&self, key: &ResourceKey, manager: &str) -> bool {
        self.rules.iter().any(|r| {
            r.labels.is_none()
                && r.select.selects(key)
                && r.managers.iter().any(|m| wildcard(m, manager))
        })
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
        assert_eq!(bad.unwrap_err().0, 0);
    }
}
