//! Patterns shared by the ignore rules, the severity rules, routes and source filters:
//! `*`/`?` wildcards ([`wildcard`]), JSON Pointer patterns over field paths
//! ([`PathPattern`], with `*` for one segment, `**` for any number, and keyed list items
//! matched by index or key) and object selectors ([`ObjectSelector`]).
//!
//! A leaf module: it knows only the model's [`ResourceKey`], so the engine (`diff`) and the
//! classifier (`classify`) both build on it without depending on each other's internals.

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

/// A Kubernetes label selector (`matchLabels`, `matchExpressions`), matched against an
/// object's `metadata.labels` with the API server's semantics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub match_labels: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelExpression>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelExpression {
    pub key: String,
    pub operator: LabelOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabelOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    /// Whether an object with these `metadata.labels` (absent: none) is selected.
    pub fn matches(&self, labels: Option<&serde_json::Map<String, serde_json::Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(|v| v.as_str());
        self.match_labels
            .iter()
            .all(|(k, v)| get(k) == Some(v.as_str()))
            && self.match_expressions.iter().all(|e| {
                let v = get(&e.key);
                match e.operator {
                    LabelOperator::In => v.is_some_and(|v| e.values.iter().any(|x| x == v)),
                    LabelOperator::NotIn => v.is_none_or(|v| e.values.iter().all(|x| x != v)),
                    LabelOperator::Exists => v.is_some(),
                    LabelOperator::DoesNotExist => v.is_none(),
                }
            })
    }

    /// The problem with an expression's values (`In`/`NotIn` need some, `Exists` and
    /// `DoesNotExist` none), as the API server checks them.
    pub fn problem(&self) -> Option<String> {
        self.match_expressions
            .iter()
            .find_map(|e| match e.operator {
                LabelOperator::In | LabelOperator::NotIn if e.values.is_empty() => Some(format!(
                    "matchExpressions key `{}`: {:?} needs values",
                    e.key, e.operator
                )),
                LabelOperator::Exists | LabelOperator::DoesNotExist if !e.values.is_empty() => {
                    Some(format!(
                        "matchExpressions key `{}`: {:?} takes no values",
                        e.key, e.operator
                    ))
                }
                _ => None,
            })
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
}
