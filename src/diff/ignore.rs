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

/// `*` (any run) and `?` (one character) wildcards.
pub fn wildcard(pattern: &str, s: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return pattern == s;
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// One segment of a path as the engine sees it: the JSON Pointer token (an index for
/// list items) and, for keyed list items, the key (`web` for a container named web).
#[derive(Debug, Clone, Copy)]
pub struct SegView<'a> {
    pub token: &'a str,
    pub alias: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatSeg {
    Lit(String),
    Glob(String),
    Any,
    AnyDeep,
}

/// A compiled JSON Pointer pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segs: Vec<PatSeg>,
    source: String,
}

/// A pattern that is not a JSON Pointer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "path pattern `{pattern}` must be a JSON Pointer starting with `/` or `**/` (e.g. /spec/replicas)"
)]
pub struct BadPattern {
    pub pattern: String,
}

impl PathPattern {
    pub fn parse(p: &str) -> Result<PathPattern, BadPattern> {
        let rooted = if p.starts_with("**") {
            format!("/{p}")
        } else if p.starts_with('/') {
            p.to_string()
        } else {
            return Err(BadPattern {
                pattern: p.to_string(),
            });
        };
        let segs = rooted
            .split('/')
            .skip(1)
            .map(|s| {
                let s = s.replace("~1", "/").replace("~0", "~");
                match s.as_str() {
                    "*" => PatSeg::Any,
                    "**" => PatSeg::AnyDeep,
                    _ if s.contains(['*', '?']) => PatSeg::Glob(s),
                    _ => PatSeg::Lit(s),
                }
            })
            .collect();
        Ok(PathPattern {
            segs,
            source: p.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern matches `path` exactly or one of its ancestors (an ignored
    /// `/spec/template` covers everything under it).
    pub fn covers(&self, path: &[SegView<'_>]) -> bool {
        Self::walk(&self.segs, path, true)
    }

    /// True when the pattern matches `path` exactly.
    pub fn matches(&self, path: &[SegView<'_>]) -> bool {
        Self::walk(&self.segs, path, false)
    }

    fn walk(pat: &[PatSeg], path: &[SegView<'_>], prefix_ok: bool) -> bool {
        match pat.split_first() {
            None => path.is_empty() || prefix_ok,
            Some((PatSeg::AnyDeep, rest)) => {
                (0..=path.len()).any(|skip| Self::walk(rest, &path[skip..], prefix_ok))
            }
            Some((seg, rest)) => {
                let Some((head, tail)) = path.split_first() else {
                    return false;
                };
                let ok = match seg {
                    PatSeg::Any => true,
                    PatSeg::Lit(l) => l == head.token || head.alias == Some(l.as_str()),
                    PatSeg::Glob(g) => {
                        wildcard(g, head.token) || head.alias.is_some_and(|a| wildcard(g, a))
                    }
                    PatSeg::AnyDeep => unreachable!("handled above"),
                };
                ok && Self::walk(rest, tail, prefix_ok)
            }
        }
    }
}

/// Which objects a rule applies to (all fields optional globs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSelector {
    /// API group (`apps`; `""` for core). Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind (`Deployment`). Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace glob. Default: any (cluster-scoped objects match only `*` or no namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name glob. Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ObjectSelector {
    pub fn selects(&self, key: &ResourceKey) -> bool {
        let m = |p: &Option<String>, v: &str| p.as_deref().is_none_or(|p| wildcard(p, v));
        m(&self.group, &key.group)
            && m(&self.kind, &key.kind)
            && m(&self.name, &key.name)
            && match (&self.namespace, &key.namespace) {
                (None, _) => true,
                (Some(p), Some(ns)) => wildcard(p, ns),
                (Some(p), None) => p == "*",
            }
    }
}

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
    /// JSON Pointer patterns of fields to ignore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Ignore every field whose last writer is one of these field managers (globs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managers: Vec<String>,
    /// Why (shown by `config check`, kept for people).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
struct Compiled {
    select: ObjectSelector,
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
                paths,
                managers: r.managers.clone(),
            });
        }
        Ok(IgnoreSet { rules: out })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when a rule ignores the whole object.
    pub(crate) fn ignores_object(&self, key: &ResourceKey) -> bool {
        self.rules
            .iter()
            .any(|r| r.paths.is_empty() && r.managers.is_empty() && r.select.selects(key))
    }

    /// True when a path rule covers `path` of the object.
    pub(crate) fn ignores_path(&self, key: &ResourceKey, path: &[SegView<'_>]) -> bool {
        self.rules
            .iter()
            .any(|r| r.select.selects(key) && r.paths.iter().any(|p| p.covers(path)))
    }

    /// True when a manager rule names `manager` for the object.
    pub(crate) fn ignores_manager(&self, key: &ResourceKey, manager: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.select.selects(key) && r.managers.iter().any(|m| wildcard(m, manager)))
    }

    /// Whether any rule can apply to this object at all (lets the engine skip checks).
    pub(crate) fn applies_to(&self, key: &ResourceKey) -> bool {
        self.rules.iter().any(|r| r.select.selects(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn wildcards() {
        assert!(wildcard("shop-*", "shop-prod"));
        assert!(wildcard("*", ""));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "ac"));
        assert!(wildcard("*-proxy", "istio-proxy"));
        assert!(!wildcard("shop", "shop-prod"));
    }

    #[test]
    fn pointer_patterns() {
        let image = [
            ("spec", None),
            ("template", None),
            ("spec", None),
            ("containers", None),
            ("1", Some("istio-proxy")),
            ("image", None),
        ];
        let path = segs(&image);
        let p = |s: &str| PathPattern::parse(s).unwrap();
        assert!(p("/spec/template/spec/containers/*/image").matches(&path));
        assert!(p("/spec/template/spec/containers/1/image").matches(&path));
        assert!(p("/spec/template/spec/containers/istio-proxy").covers(&path));
        assert!(!p("/spec/template/spec/containers/istio-proxy").matches(&path));
        assert!(p("/spec/template/spec/containers/istio-*").covers(&path));
        assert!(p("**/image").matches(&path));
        assert!(p("/spec/**").covers(&path));
        assert!(!p("/spec/replicas").covers(&path));
        assert!(PathPattern::parse("spec/replicas").is_err());
        let ann = [("metadata", None), ("annotations", None), ("a/b", None)];
        assert!(p("/metadata/annotations/a~1b").matches(&segs(&ann)));
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
