//! Mapping one environment onto another before comparing them: namespace rewrites
//! (`shop-staging` → `shop-prod`), name prefix/suffix rewrites (`web-staging` → `web`) and
//! value rewrites (`*.staging.example.com` → `*.example.com`), so that renamed-but-same
//! objects are paired and environment-specific values do not speak.
//!
//! Rewrites apply once, from the `from` side into the `to` side's names
//! ([`Mapping::map_snapshot`]). A configuration whose rewrites would chain or loop
//! (`a` → `b` and `b` → `a`, a value rule whose output matches itself) is rejected by
//! [`Mapping::new`], and two objects mapped onto one name are an error naming both.
//!
//! ```yaml
//! compare:
//!   mapping:
//!     namespaces: {shop-staging: shop-prod}
//!     names:
//!       - {kind: "*", from_suffix: "-staging", to_suffix: ""}
//!     values:
//!       - {from: "*.staging.example.com", to: "*.example.com"}
//! ```
//!
//! Besides the explicit value rules, string values that are exactly a mapped namespace or
//! the old name of a renamed object are rewritten too, and so is a namespace inside a
//! Service DNS name (`api.shop-staging.svc` → `api.shop-prod.svc`).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{InputError, MappedFrom, ResourceKey, Snapshot};
use crate::pattern::wildcard;

/// A name rewrite: `from_prefix`/`from_suffix` are replaced by `to_prefix`/`to_suffix`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameRewrite {
    /// Kind glob the rule applies to. Default: every kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub from_prefix: String,
    #[serde(default)]
    pub to_prefix: String,
    #[serde(default)]
    pub from_suffix: String,
    #[serde(default)]
    pub to_suffix: String,
}

/// A value rewrite; `*` in `from` matches a run of host-name characters
/// (`[A-Za-z0-9_-]`), and the `*`s of `to` take the matched runs in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueRewrite {
    pub from: String,
    pub to: String,
}

/// The `compare.mapping` config section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// `from` namespace → `to` namespace.
    #[serde(default)]
    pub namespaces: BTreeMap<String, String>,
    #[serde(default)]
    pub names: Vec<NameRewrite>,
    #[serde(default)]
    pub values: Vec<ValueRewrite>,
}

/// A mapping that cannot be used; each variant names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error(
        "namespaces: `{a}` → `{b}` and `{b}` → `{c}` chain; rewrites apply once, so this would loop or depend on order (map `{a}` → `{c}` directly)"
    )]
    NamespaceChain { a: String, b: String, c: String },
    #[error("names[{index}]: the rule matches every name (set from_prefix or from_suffix)")]
    NameMatchesAll { index: usize },
    #[error("names[{index}]: the rule matches its own output, so it would loop (`{example}`)")]
    NameLoops { index: usize, example: String },
    #[error("values[{index}]: `{from}` → `{to}` matches its own output, so it would loop")]
    ValueLoops {
        index: usize,
        from: String,
        to: String,
    },
    #[error("values[{index}]: `from` is empty")]
    EmptyValue { index: usize },
    #[error("values[{index}]: `to` has more `*` than `from`")]
    StarCount { index: usize },
}

/// Compiled mapping.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    cfg: MappingConfig,
    /// `cfg.values`, compiled (same order).
    values: Vec<Rewrite>,
    /// `cfg.values` reversed (`to` → `from`), for [`Mapping::reverse_value`]; `None` for a
    /// rule with an empty `to`.
    reverse: Vec<Option<Rewrite>>,
}

/// The host-name characters a `*` matches a run of.
const HOST_RUN: &str = "([A-Za-z0-9_-]+)";

/// One value rewrite, compiled: a literal (`str::replace`) or one regex in which every `*`
/// is a greedy run of host-name characters. Matching is linear in the value's length (the
/// `regex` crate's automata); the old hand-written matcher was quadratic.
#[derive(Debug, Clone)]
struct Rewrite {
    from: String,
    to: String,
    /// `None` when `from` has no `*`.
    re: Option<regex::Regex>,
}

impl Rewrite {
    fn new(from: &str, to: &str) -> Rewrite {
        // Escaped literals joined by host runs always form a valid regex; should one not
        // compile, the rule matches its text literally.
        let re = from.contains('*').then(|| {
            let pattern: Vec<String> = from.split('*').map(regex::escape).collect();
            regex::Regex::new(&pattern.join(HOST_RUN)).ok()
        });
        let re = re.flatten();
        Rewrite {
            from: from.to_string(),
            to: to.to_string(),
            re,
        }
    }

    /// Every non-overlapping match (leftmost first; each `*` as long as the rest allows)
    /// replaced by `to`, whose `*`s take the matched runs in order (missing ones are empty);
    /// `None` when nothing matched.
    fn apply(&self, s: &str) -> Option<String> {
        let Some(re) = &self.re else {
            return s
                .contains(&self.from)
                .then(|| s.replace(&self.from, &self.to));
        };
        let out = re.replace_all(s, |caps: &regex::Captures<'_>| {
            let mut rep = String::new();
            for (n, piece) in self.to.split('*').enumerate() {
                if n > 0 {
                    rep.push_str(caps.get(n).map_or("", |m| m.as_str()));
                }
                rep.push_str(piece);
            }
            rep
        });
        match out {
            std::borrow::Cow::Borrowed(_) => None,
            std::borrow::Cow::Owned(o) => Some(o),
        }
    }
}

/// Finds every match of `pattern` in `s` and replaces it with `to` (captures in order).
#[cfg(test)]
fn replace_pattern(s: &str, pattern: &str, to: &str) -> Option<String> {
    Rewrite::new(pattern, to).apply(s)
}

impl Mapping {
    /// Validates and compiles a mapping.
    ///
    /// # Errors
    /// Every problem found, each naming its rule.
    pub fn new(cfg: &MappingConfig) -> Result<Mapping, Vec<MappingError>> {
        let mut errs = Vec::new();
        for (a, b) in &cfg.namespaces {
            // A swap (`a` → `b`, `b` → `a`) is reported once.
            if a != b
                && let Some(c) = cfg.namespaces.get(b)
                && (c != a || a < b)
            {
                errs.push(MappingError::NamespaceChain {
                    a: a.clone(),
                    b: b.clone(),
                    c: c.clone(),
                });
            }
        }
        for (index, r) in cfg.names.iter().enumerate() {
            if r.from_prefix.is_empty() && r.from_suffix.is_empty() {
                errs.push(MappingError::NameMatchesAll { index });
                continue;
            }
            let probe = format!("{}app{}", r.from_prefix, r.from_suffix);
            if let Some(once) = rename(r, &probe)
                && once != probe
                && let Some(twice) = rename(r, &once)
                && twice != once
            {
                errs.push(MappingError::NameLoops {
                    index,
                    example: format!("{probe} → {once} → {twice}"),
                });
            }
        }
        for (index, r) in cfg.values.iter().enumerate() {
            if r.from.is_empty() {
                errs.push(MappingError::EmptyValue { index });
                continue;
            }
            if r.to.matches('*').count() > r.from.matches('*').count() {
                errs.push(MappingError::StarCount { index });
                continue;
            }
            // Apply to a sample of its own output: a second application must change nothing.
            let sample = r.from.replace('*', "x1");
            let rw = Rewrite::new(&r.from, &r.to);
            if let Some(once) = rw.apply(&sample)
                && rw.apply(&once).is_some_and(|twice| twice != once)
            {
                errs.push(MappingError::ValueLoops {
                    index,
                    from: r.from.clone(),
                    to: r.to.clone(),
                });
            }
        }
        if errs.is_empty() {
            Ok(Mapping {
                cfg: cfg.clone(),
                values: cfg
                    .values
                    .iter()
                    .map(|r| Rewrite::new(&r.from, &r.to))
                    .collect(),
                reverse: cfg
                    .values
                    .iter()
                    .map(|r| (!r.to.is_empty()).then(|| Rewrite::new(&r.to, &r.from)))
                    .collect(),
            })
        } else {
            Err(errs)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.cfg.namespaces.is_empty() && self.cfg.names.is_empty() && self.cfg.values.is_empty()
    }

    fn map_key(&self, key: &ResourceKey) -> ResourceKey {
        let mut out = key.clone();
        if key.group.is_empty()
            && key.kind == "Namespace"
            && let Some(to) = self.cfg.namespaces.get(&key.name)
        {
            out.name = to.clone();
            return out;
        }
        if let Some(ns) = &key.namespace
            && let Some(to) = self.cfg.namespaces.get(ns)
        {
            out.namespace = Some(to.clone());
        }
        for r in &self.cfg.names {
            if r.kind.as_deref().is_some_and(|k| !wildcard(k, &key.kind)) {
                continue;
            }
            if let Some(n) = rename(r, &key.name) {
                out.name = n;
                break;
            }
        }
        out
    }

    /// Rewrites the `from` snapshot into the `to` side's names and values. Objects that
    /// collide on one key are reported (naming both) and the second is dropped.
    pub fn map_snapshot(&self, from: Snapshot, side: &str) -> Snapshot {
        if self.is_empty() {
            return from;
        }
        let mut renamed: HashMap<String, String> = HashMap::new();
        for k in from.objects.keys() {
            let m = self.map_key(k);
            if m.name != k.name {
                renamed.insert(k.name.clone(), m.name.clone());
            }
        }
        let mut out = Snapshot {
            source: from.source,
            taken_at: from.taken_at,
            errors: from.errors,
            skipped: from.skipped,
            unknown: from.unknown,
            objects: BTreeMap::new(),
        };
        let mut first_of: HashMap<ResourceKey, ResourceKey> = HashMap::new();
        for (key, mut obj) in from.objects {
            let mapped = self.map_key(&key);
            if let Some(first) = first_of.get(&mapped) {
                out.errors.push(InputError {
                    side: side.to_string(),
                    source: obj.origin.to_string(),
                    line: None,
                    column: None,
                    message: format!(
                        "mapping sends both {first} and {key} to {mapped}; keeping {first} (fix compare.mapping)"
                    ),
                });
                continue;
            }
            first_of.insert(mapped.clone(), key.clone());
            let mut rewritten = std::collections::BTreeSet::new();
            self.rewrite_values(&mut obj.value, &renamed, &mut String::new(), &mut rewritten);
            if let Some(meta) = obj.value.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("name".into(), Value::String(mapped.name.clone()));
                if let Some(ns) = &mapped.namespace {
                    meta.insert("namespace".into(), Value::String(ns.clone()));
                }
            }
            obj.mapped = Some(Box::new(MappedFrom { key, rewritten }));
            out.objects.insert(mapped, obj);
        }
        out
    }

    fn rewrite_values(
        &self,
        v: &mut Value,
        renamed: &HashMap<String, String>,
        path: &mut String,
        rewritten: &mut std::collections::BTreeSet<String>,
    ) {
        match v {
            Value::String(s) => {
                let before = s.clone();
                self.rewrite_string(s, renamed);
                if *s != before {
                    rewritten.insert(path.clone());
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("/{i}"));
                    self.rewrite_values(item, renamed, path, rewritten);
                    path.truncate(len);
                }
            }
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&super::compare::escape(k));
                    self.rewrite_values(x, renamed, path, rewritten);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }

    fn rewrite_string(&self, s: &mut String, renamed: &HashMap<String, String>) {
        if let Some(n) = renamed.get(s.as_str()) {
            *s = n.clone();
            return;
        }
        if let Some(ns) = self.cfg.namespaces.get(s.as_str()) {
            *s = ns.clone();
            return;
        }
        for (a, b) in &self.cfg.namespaces {
            let dns = format!(".{a}.svc");
            if s.contains(&dns) {
                *s = s.replace(&dns, &format!(".{b}.svc"));
            }
        }
        for r in &self.values {
            if let Some(n) = r.apply(s) {
                *s = n;
            }
        }
    }

    /// Rewrites a patch value (at JSON Pointer `path`) from the `to` side back into the
    /// `from` side's terms, for patches that make `from` match `to`. Only strings at paths
    /// the forward mapping rewrote in this object are reversed (`rewritten`): a value both
    /// environments share (`registry.example.com`) stays as it is.
    pub(crate) fn reverse_at(
        &self,
        v: &mut Value,
        path: &str,
        rewritten: &std::collections::BTreeSet<String>,
    ) {
        match v {
            Value::String(_) if rewritten.contains(path) => self.reverse_value(v),
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.reverse_at(item, &format!("{path}/{i}"), rewritten);
                }
            }
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    self.reverse_at(
                        x,
                        &format!("{path}/{}", super::compare::escape(k)),
                        rewritten,
                    );
                }
            }
            _ => {}
        }
    }

    /// Rewrites a value from the `to` side back into the `from` side's terms, everywhere.
    /// Wildcard rules are reversed by swapping their patterns; prefer [`Mapping::reverse_at`].
    pub(crate) fn reverse_value(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                for (a, b) in &self.cfg.namespaces {
                    if s == b {
                        *s = a.clone();
                        return;
                    }
                    let dns = format!(".{b}.svc");
                    if s.contains(&dns) {
                        *s = s.replace(&dns, &format!(".{a}.svc"));
                    }
                }
                for r in self.reverse.iter().flatten() {
                    if let Some(n) = r.apply(s) {
                        *s = n;
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.reverse_value(i)),
            Value::Object(m) => m.values_mut().for_each(|x| self.reverse_value(x)),
            _ => {}
        }
    }
}

fn rename(r: &NameRewrite, name: &str) -> Option<String> {
    let rest = name.strip_prefix(r.from_prefix.as_str())?;
    let core = rest.strip_suffix(r.from_suffix.as_str())?;
    if core.is_empty() {
        return None;
    }
    Some(format!("{}{core}{}", r.to_prefix, r.to_suffix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Object, Origin};
    use serde_json::json;

    fn cfg(yaml: &str) -> MappingConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn value_patterns() {
        assert_eq!(
            replace_pattern(
                "shop.staging.example.com",
                "*.staging.example.com",
                "*.example.com"
            )
            .as_deref(),
            Some("shop.example.com")
        );
        assert_eq!(
            replace_pattern(
                "https://api.staging.example.com/v1",
                "*.staging.example.com",
                "*.example.com"
            )
            .as_deref(),
            Some("https://api.example.com/v1")
        );
        assert_eq!(
            replace_pattern("nothing here", "*.staging.example.com", "*.example.com"),
            None
        );
        assert_eq!(
            replace_pattern("db-staging:5432", "db-staging", "db").as_deref(),
            Some("db:5432")
        );
    }

    #[test]
    fn megabyte_values_are_rewritten_in_one_pass() {
        // 1 MB of host-name characters with matches spread through it: the old matcher
        // rescanned the run at every position (quadratic: minutes); one regex pass is
        // linear.
        let unit = "abcdefgh-".repeat(100) + "shop.staging.example.com ";
        let value = unit.repeat(1_000_000 / unit.len() + 1);
        assert!(value.len() >= 1_000_000);
        let out = replace_pattern(&value, "*.staging.example.com", "*.example.com").unwrap();
        let want =
            ("abcdefgh-".repeat(100) + "shop.example.com ").repeat(1_000_000 / unit.len() + 1);
        // The star takes the whole host run before `.staging` (`abcdefgh-…shop`).
        assert_eq!(out, want);
        let none = "x".repeat(1_000_000);
        assert_eq!(
            replace_pattern(&none, "*.staging.example.com", "*.example.com"),
            None
        );
        // Two stars, captures in order.
        assert_eq!(
            replace_pattern("a-1.b-2.staging", "*.*.staging", "*.*.prod").as_deref(),
            Some("a-1.b-2.prod")
        );
    }

    #[test]
    fn loops_and_chains_are_rejected() {
        let errs = Mapping::new(&cfg("namespaces: {a: b, b: a}\n")).unwrap_err();
        assert!(
            matches!(errs[0], MappingError::NamespaceChain { .. }),
            "{errs:?}"
        );
        let errs = Mapping::new(&cfg(
            "values:\n  - {from: example.com, to: staging.example.com}\n",
        ))
        .unwrap_err();
        assert!(
            matches!(errs[0], MappingError::ValueLoops { .. }),
            "{errs:?}"
        );
        let errs = Mapping::new(&cfg("names:\n  - {to_suffix: -x}\n")).unwrap_err();
        assert!(matches!(errs[0], MappingError::NameMatchesAll { .. }));
        let errs = Mapping::new(&cfg("names:\n  - {from_prefix: a, to_prefix: aa}\n")).unwrap_err();
        assert!(
            matches!(errs[0], MappingError::NameLoops { .. }),
            "{errs:?}"
        );
        assert!(Mapping::new(&cfg("namespaces: {shop-staging: shop-prod}\nnames:\n  - {from_suffix: -staging}\nvalues:\n  - {from: \"*.staging.example.com\", to: \"*.example.com\"}\n")).is_ok());
    }

    fn obj(ns: &str, name: &str, extra: Value) -> (ResourceKey, Object) {
        let mut v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}});
        v["data"] = extra;
        (
            ResourceKey {
                group: String::new(),
                kind: "ConfigMap".into(),
                namespace: Some(ns.into()),
                name: name.into(),
            },
            Object::new(
                v,
                Origin::Live {
                    resource_version: None,
                },
            ),
        )
    }

    #[test]
    fn snapshot_is_mapped_and_collisions_named() {
        let m = Mapping::new(&cfg(
            "namespaces: {shop-staging: shop-prod}\nnames:\n  - {from_suffix: -staging}\nvalues:\n  - {from: \"*.staging.example.com\", to: \"*.example.com\"}\n",
        ))
        .unwrap();
        let mut snap = Snapshot::default();
        for (k, o) in [
            obj(
                "shop-staging",
                "web-staging",
                json!({"URL": "https://shop.staging.example.com", "NS": "shop-staging",
                "DB": "db.shop-staging.svc.cluster.local", "REF": "web-staging"}),
            ),
            obj("shop-staging", "web", json!({})),
            obj("shop-staging", "api", json!({})),
        ] {
            snap.objects.insert(k, o);
        }
        let out = m.map_snapshot(snap, "from");
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        assert!(
            out.errors[0].message.contains("web-staging")
                && out.errors[0].message.contains("ConfigMap shop-staging/web")
        );
        let web = out.objects.iter().find(|(k, _)| k.name == "web").unwrap().1;
        let api = out.objects.keys().find(|k| k.name == "api").unwrap();
        assert_eq!(api.namespace.as_deref(), Some("shop-prod"));
        // `web` (sorted first) is kept; `web-staging` collided. Check rewriting on a single object.
        assert_eq!(web.value["metadata"]["namespace"], "shop-prod");
        let mut single = Snapshot::default();
        let (k, o) = obj(
            "shop-staging",
            "web-staging",
            json!({"URL": "https://shop.staging.example.com",
            "NS": "shop-staging", "DB": "db.shop-staging.svc.cluster.local", "REF": "web-staging"}),
        );
        single.objects.insert(k, o);
        let out = m.map_snapshot(single, "from");
        let (k, o) = out.objects.iter().next().unwrap();
        assert_eq!(k.name, "web");
        assert_eq!(
            o.value["data"],
            json!({"URL": "https://shop.example.com", "NS": "shop-prod",
            "DB": "db.shop-prod.svc.cluster.local", "REF": "web"})
        );
        let mapped = o.mapped.as_ref().unwrap();
        assert_eq!(mapped.key.name, "web-staging");
        assert!(
            mapped.rewritten.contains("/data/URL") && !mapped.rewritten.contains("/apiVersion")
        );
        let mut back = o.value["data"].clone();
        m.reverse_value(&mut back);
        assert_eq!(back["URL"], "https://shop.staging.example.com");
        assert_eq!(back["NS"], "shop-staging");
    }
}
