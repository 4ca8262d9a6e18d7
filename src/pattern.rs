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

impl LabelSelector {
    /// Parses the selector string syntax of `kubectl -l` and the API's `labelSelector`
    /// query parameter: comma-separated requirements `key`, `!key`, `key=value`,
    /// `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`. The empty string
    /// selects everything. Keys and values are checked as the API server checks them.
    ///
    /// # Errors
    /// What is wrong and where (the requirement, or the column).
    pub fn parse_str(s: &str) -> Result<LabelSelector, String> {
        let mut out = LabelSelector::default();
        let mut rest = s.trim();
        while !rest.is_empty() {
            let (req, tail) = split_requirement(rest)?;
            out.match_expressions.push(parse_requirement(req.trim())?);
            rest = tail.trim_start();
            if let Some(t) = rest.strip_prefix(',') {
                rest = t.trim_start();
                if rest.is_empty() {
                    return Err(format!(
                        "`{s}`: a requirement is missing after the last `,`"
                    ));
                }
            } else if !rest.is_empty() {
                return Err(format!("`{s}`: expected `,` before `{rest}`"));
            }
        }
        Ok(out)
    }

    /// Both selectors (a rule's `selector` map and its `labelSelector` string): an object
    /// must match each.
    pub fn and(mut self, other: LabelSelector) -> LabelSelector {
        for (k, v) in other.match_labels {
            self.match_expressions.push(LabelExpression {
                key: k,
                operator: LabelOperator::In,
                values: vec![v],
            });
        }
        self.match_expressions.extend(other.match_expressions);
        self
    }

    /// A rule's `selector` and `labelSelector` combined (see [`LabelSelector::and`]).
    ///
    /// # Errors
    /// The string does not parse, or the map's expressions are malformed.
    pub fn combine(
        map: Option<&LabelSelector>,
        string: Option<&str>,
    ) -> Result<Option<LabelSelector>, (&'static str, String)> {
        if let Some(p) = map.and_then(LabelSelector::problem) {
            return Err(("selector", p));
        }
        let parsed = string
            .map(LabelSelector::parse_str)
            .transpose()
            .map_err(|e| ("labelSelector", e))?;
        Ok(match (map.cloned(), parsed) {
            (None, None) => None,
            (Some(m), None) => Some(m),
            (None, Some(p)) => Some(p),
            (Some(m), Some(p)) => Some(m.and(p)),
        })
    }
}

/// The next requirement (up to a `,` outside parentheses) and what follows it.
fn split_requirement(s: &str) -> Result<(&str, &str), String> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("`{s}`: `)` without `(`"))?;
            }
            ',' if depth == 0 => return Ok((&s[..i], &s[i..])),
            _ => {}
        }
    }
    if depth > 0 {
        return Err(format!("`{s}`: `(` is not closed"));
    }
    Ok((s, ""))
}

fn parse_requirement(req: &str) -> Result<LabelExpression, String> {
    if req.is_empty() {
        return Err("an empty requirement (two `,` in a row?)".into());
    }
    let expr = |key: &str, operator, values: Vec<String>| -> Result<LabelExpression, String> {
        check_label_key(key).map_err(|e| format!("`{req}`: {e}"))?;
        for v in &values {
            check_label_value(v).map_err(|e| format!("`{req}`: {e}"))?;
        }
        Ok(LabelExpression {
            key: key.to_string(),
            operator,
            values,
        })
    };
    if let Some(key) = req.strip_prefix('!') {
        return expr(key.trim(), LabelOperator::DoesNotExist, Vec::new());
    }
    for (op, operator) in [
        ("!=", LabelOperator::NotIn),
        ("==", LabelOperator::In),
        ("=", LabelOperator::In),
    ] {
        if let Some((k, v)) = req.split_once(op) {
            return expr(k.trim(), operator, vec![v.trim().to_string()]);
        }
    }
    if req.contains(['<', '>']) {
        return Err(format!(
            "`{req}`: `<` and `>` compare numbers (node selectors); a label selector here uses =, !=, in, notin, exists or !"
        ));
    }
    // `key in (a,b)`, `key notin (a,b)`, or `key`.
    let Some(open) = req.find('(') else {
        if req.contains(char::is_whitespace) {
            return Err(format!(
                "`{req}`: expected `key`, `!key`, `key=value`, `key!=value`, `key in (a,b)` or `key notin (a,b)`"
            ));
        }
        return expr(req, LabelOperator::Exists, Vec::new());
    };
    let Some(inner) = req[open..]
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
    else {
        return Err(format!("`{req}`: the value list must end with `)`"));
    };
    let head = req[..open].trim();
    let (key, op) = head
        .rsplit_once(char::is_whitespace)
        .ok_or_else(|| format!("`{req}`: expected `in` or `notin` before `(`"))?;
    let operator = match op {
        "in" => LabelOperator::In,
        "notin" => LabelOperator::NotIn,
        other => {
            return Err(format!(
                "`{req}`: unknown operator `{other}` (expected `in` or `notin`)"
            ));
        }
    };
    let values: Vec<String> = inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err(format!("`{req}`: `{op}` needs at least one value"));
    }
    expr(key.trim(), operator, values)
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name of at most 63
/// characters (alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric).
fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(format!("key prefix `{p}` is not a DNS subdomain"));
        }
    }
    if name.is_empty() {
        return Err("a key is missing".into());
    }
    if !is_label_name(name) {
        return Err(format!(
            "key `{key}`: a label name is at most 63 alphanumerics, `-`, `_` or `.`, starting and ending alphanumeric"
        ));
    }
    Ok(())
}

fn check_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_label_name(v) {
        Ok(())
    } else {
        Err(format!(
            "value `{v}`: a label value is at most 63 alphanumerics, `-`, `_` or `.`, starting and ending alphanumeric"
        ))
    }
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
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

    fn labels(pairs: &[(&str, &str)]) -> serde_json::Map<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), serde_json::Value::from(*v)))
            .collect()
    }

    #[test]
    fn selector_strings_parse_as_kubectl_reads_them() {
        let s = LabelSelector::parse_str("app=web,tier in (a, b),!legacy,env!=prod").unwrap();
        let ops: Vec<(&str, LabelOperator, usize)> = s
            .match_expressions
            .iter()
            .map(|e| (e.key.as_str(), e.operator, e.values.len()))
            .collect();
        assert_eq!(
            ops,
            [
                ("app", LabelOperator::In, 1),
                ("tier", LabelOperator::In, 2),
                ("legacy", LabelOperator::DoesNotExist, 0),
                ("env", LabelOperator::NotIn, 1),
            ]
        );
        let m = |pairs: &[(&str, &str)]| s.matches(Some(&labels(pairs)));
        assert!(m(&[("app", "web"), ("tier", "b")]));
        assert!(m(&[("app", "web"), ("tier", "a"), ("env", "staging")]));
        assert!(!m(&[("app", "web"), ("tier", "a"), ("env", "prod")]));
        assert!(!m(&[("app", "web"), ("tier", "c")]));
        assert!(!m(&[("app", "web"), ("tier", "a"), ("legacy", "")]));
        assert!(!m(&[("tier", "a")]));
        // More forms.
        let t = LabelSelector::parse_str("app.kubernetes.io/name==web, team, x notin (y)").unwrap();
        assert!(t.matches(Some(&labels(&[
            ("app.kubernetes.io/name", "web"),
            ("team", "")
        ]))));
        assert!(!t.matches(Some(&labels(&[("app.kubernetes.io/name", "web")]))));
        assert!(!t.matches(Some(&labels(&[
            ("app.kubernetes.io/name", "web"),
            ("team", "a"),
            ("x", "y")
        ]))));
        // The empty selector selects everything.
        assert!(LabelSelector::parse_str("").unwrap().matches(None));
        // Combined with a map selector: both must match.
        let map = LabelSelector {
            match_labels: [("app".to_string(), "db".to_string())].into(),
            ..LabelSelector::default()
        };
        let both = LabelSelector::combine(Some(&map), Some("tier=a"))
            .unwrap()
            .unwrap();
        assert!(both.matches(Some(&labels(&[("app", "db"), ("tier", "a")]))));
        assert!(!both.matches(Some(&labels(&[("app", "web"), ("tier", "a")]))));
    }

    #[test]
    fn bad_selector_strings_say_what_is_wrong() {
        for (s, want) in [
            ("app=web,", "missing after the last `,`"),
            ("app=web,,tier=a", "empty requirement"),
            ("tier in (a,b", "not closed"),
            ("tier in ()", "needs at least one value"),
            ("tier within (a)", "unknown operator `within`"),
            ("tier (a)", "expected `in` or `notin`"),
            ("replicas>3", "`<` and `>`"),
            ("app = bad value", "value `bad value`"),
            ("-app=x", "key `-app`"),
            ("Bad_Prefix/app=x", "key prefix `Bad_Prefix`"),
            ("app web", "expected `key`"),
            ("=web", "a key is missing"),
        ] {
            let e = LabelSelector::parse_str(s).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }
}
