//! Kubernetes OpenAPI v3 documents (one per group-version, as `/openapi/v3` serves them)
//! trimmed into the compact schema form of [`super`], and schema sets made of them.
//!
//! The trimming is the one `scripts/gen-schemas.py` does for the bundled set, so that a
//! cluster's own documents and the bundled ones mean the same: per schema, list types and
//! map keys, strategic-merge keys, int-or-string, quantities, preserve-unknown-fields,
//! embedded resources and non-trivial defaults; per kind (`x-kubernetes-group-version-kind`)
//! its root schema and its scope (namespaced when a path of the kind has `{namespace}`),
//! the most stable version winning when a group serves several.
//!
//! Pure: the documents come in as values, the caller fetches them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};

use super::{KindSchema, SchemaSource};

const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
/// Metadata semantics come from envdrift's own metadata rules (strip, user maps).
const SKIP: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
];
const PREFIXES: &[&str] = &[
    "io.k8s.api.",
    "io.k8s.apimachinery.pkg.apis.",
    "io.k8s.apimachinery.pkg.",
    "io.k8s.",
];
/// Kinds that are not objects anyone keeps in Git.
const NOT_OBJECTS: &[&str] = &[
    "Status",
    "WatchEvent",
    "DeleteOptions",
    "APIResourceList",
    "APIGroup",
    "APIGroupList",
    "APIVersions",
    "Eviction",
];

/// A document, or a schema in it, that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("OpenAPI document {url}: {path}: {message}")]
pub struct OpenApiError {
    /// The document's URL (`https://…/openapi/v3/apis/apps/v1`, no hash or credentials).
    pub url: String,
    /// JSON Pointer in the document (`/components/schemas/io.k8s.api.apps.v1.Deployment/…`).
    pub path: String,
    pub message: String,
}

/// One kind a document defines.
#[derive(Debug, Clone, PartialEq)]
pub struct DocKind {
    pub group: String,
    pub kind: String,
    pub version: String,
    /// The definition of its root schema (short name).
    pub root: String,
    pub namespaced: bool,
}

/// One trimmed document: its kinds and definitions. Cached by the document's URL with hash.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrimmedDoc {
    pub kinds: Vec<DocKind>,
    pub defs: Map<String, Value>,
    /// Schemas that could not be trimmed (left out; the rest of the document counts).
    pub errors: Vec<OpenApiError>,
}

fn short(name: &str) -> &str {
    PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name)
}

fn ref_name(node: &Map<String, Value>) -> Option<&str> {
    let r = node.get("$ref").and_then(Value::as_str).or_else(|| {
        node.get("allOf")?
            .as_array()?
            .iter()
            .find_map(|s| s.get("$ref").and_then(Value::as_str))
    })?;
    Some(r.rsplit('/').next().unwrap_or(r))
}

fn trivial_default(d: &Value) -> bool {
    match d {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Trims one schema node; `path` is its pointer in the document, for errors.
fn trim_node(node: &Value, path: &str) -> Result<Map<String, Value>, (String, String)> {
    let Some(n) = node.as_object() else {
        return Err((path.to_string(), "a schema must be an object".into()));
    };
    let mut out = Map::new();
    match ref_name(n) {
        Some(QUANTITY) => {
            out.insert("t".into(), "q".into());
        }
        r if r == Some(INT_OR_STRING)
            || n.get("format").and_then(Value::as_str) == Some("int-or-string")
            || n.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) =>
        {
            out.insert("t".into(), "ios".into());
        }
        Some(r) if !SKIP.contains(&r) => {
            out.insert("r".into(), short(r).into());
        }
        _ => {}
    }
    if let Some(d) = n.get("default")
        && !trivial_default(d)
    {
        out.insert("d".into(), d.clone());
    }
    match n.get("x-kubernetes-list-type") {
        None => {}
        Some(Value::String(t)) if matches!(t.as_str(), "map" | "set" | "atomic") => {
            out.insert("lt".into(), t.as_str().into());
        }
        Some(other) => {
            return Err((
                format!("{path}/x-kubernetes-list-type"),
                format!("must be map, set or atomic, found {other}"),
            ));
        }
    }
    match n.get("x-kubernetes-list-map-keys") {
        None => {}
        Some(Value::Array(k)) if !k.is_empty() && k.iter().all(Value::is_string) => {
            out.insert("lk".into(), Value::Array(k.clone()));
        }
        Some(other) => {
            return Err((
                format!("{path}/x-kubernetes-list-map-keys"),
                format!("must be a non-empty list of field names, found {other}"),
            ));
        }
    }
    if out.get("lt").and_then(Value::as_str) == Some("map") && !out.contains_key("lk") {
        return Err((
            path.to_string(),
            "x-kubernetes-list-type: map needs x-kubernetes-list-map-keys".into(),
        ));
    }
    let merge = n
        .get("x-kubernetes-patch-strategy")
        .and_then(Value::as_str)
        .is_some_and(|s| s.split(',').any(|p| p == "merge"));
    if merge
        && let Some(k) = n
            .get("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
    {
        out.insert("mk".into(), k.into());
    }
    for (flag, key) in [
        ("x-kubernetes-preserve-unknown-fields", "pu"),
        ("x-kubernetes-embedded-resource", "er"),
    ] {
        if n.get(flag).and_then(Value::as_bool) == Some(true) {
            out.insert(key.into(), Value::Bool(true));
        }
    }
    match n.get("properties") {
        None => {}
        Some(Value::Object(props)) => {
            let mut p = Map::new();
            for (k, v) in props {
                let t = trim_node(v, &format!("{path}/properties/{}", escape(k)))?;
                if !t.is_empty() {
                    p.insert(k.clone(), Value::Object(t));
                }
            }
            if !p.is_empty() {
                out.insert("p".into(), Value::Object(p));
            }
        }
        Some(_) => {
            return Err((format!("{path}/properties"), "must be an object".into()));
        }
    }
    for (field, key) in [("items", "i"), ("additionalProperties", "a")] {
        match n.get(field) {
            Some(v @ Value::Object(_)) => {
                let t = trim_node(v, &format!("{path}/{field}"))?;
                if !t.is_empty() {
                    out.insert(key.into(), Value::Object(t));
                }
            }
            Some(Value::Bool(_)) | None => {}
            Some(_) => {
                return Err((format!("{path}/{field}"), "must be a schema object".into()));
            }
        }
    }
    Ok(out)
}

/// Trims one group-version document. `url` names it in errors.
///
/// # Errors
/// The document is not an OpenAPI v3 document (no `components.schemas` object). Single
/// schemas that cannot be read are left out and listed in [`TrimmedDoc::errors`].
pub fn trim_document(doc: &Value, url: &str) -> Result<TrimmedDoc, OpenApiError> {
    let err = |path: &str, message: &str| OpenApiError {
        url: url.to_string(),
        path: path.to_string(),
        message: message.to_string(),
    };
    let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    else {
        return Err(err(
            "/components/schemas",
            "not an OpenAPI v3 document (no components.schemas object)",
        ));
    };
    let mut namespaced = std::collections::HashSet::new();
    for (p, item) in doc
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        for op in item.as_object().into_iter().flat_map(|m| m.values()) {
            if let Some(gvk) = op.get("x-kubernetes-group-version-kind")
                && p.contains("{namespace}")
            {
                let g = gvk.get("group").and_then(Value::as_str).unwrap_or("");
                let k = gvk.get("kind").and_then(Value::as_str).unwrap_or("");
                namespaced.insert((g.to_string(), k.to_string()));
            }
        }
    }
    let mut out = TrimmedDoc::default();
    for (name, s) in schemas {
        if SKIP.contains(&name.as_str()) {
            continue;
        }
        let path = format!("/components/schemas/{}", escape(name));
        match trim_node(s, &path) {
            Ok(t) => {
                out.defs.insert(short(name).to_string(), Value::Object(t));
            }
            Err((p, m)) => {
                out.errors.push(err(&p, &m));
                continue;
            }
        }
        let props_beyond_meta = s
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| {
                p.keys()
                    .any(|k| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
            });
        for gvk in s
            .get("x-kubernetes-group-version-kind")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let field = |f: &str| gvk.get(f).and_then(Value::as_str).unwrap_or("").to_string();
            let (group, kind, version) = (field("group"), field("kind"), field("version"));
            if kind.is_empty()
                || kind.ends_with("List")
                || NOT_OBJECTS.contains(&kind.as_str())
                || !props_beyond_meta
            {
                continue;
            }
            out.kinds.push(DocKind {
                namespaced: namespaced.contains(&(group.clone(), kind.clone())),
                group,
                kind,
                version,
                root: short(name).to_string(),
            });
        }
    }
    Ok(out)
}

/// How stable an API version is: GA over beta over alpha, then by number.
fn version_rank(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let Ok(major) = rest[..digits].parse::<u32>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits..];
    let (level, minor) = if tail.is_empty() {
        (3, "0")
    } else if let Some(m) = tail.strip_prefix("beta") {
        (2, m)
    } else if let Some(m) = tail.strip_prefix("alpha") {
        (1, m)
    } else {
        return (0, 0, 0);
    };
    match minor.parse::<u32>() {
        Ok(n) => (level, major, n),
        Err(_) => (0, 0, 0),
    }
}

/// A set of trimmed schemas: the bundled one, or a cluster's documents merged.
pub struct SchemaSet {
    /// (group, kind) → (root node, namespaced).
    pub(super) kinds: HashMap<(String, String), (Value, bool)>,
    pub(super) defs: Map<String, Value>,
    /// Where the set comes from (`cluster prod (https://…)`), for notes.
    pub origin: String,
    /// What could not be read (documents, schemas, the index), each said once per result.
    pub notes: Vec<String>,
    /// Kinds' trees, built on first use.
    pub(super) trees: RwLock<HashMap<(String, String), Arc<KindSchema>>>,
    /// See [`SchemaSet::fingerprint`], computed on first use.
    fingerprint: std::sync::OnceLock<[u8; 32]>,
}

impl std::fmt::Debug for SchemaSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaSet")
            .field("origin", &self.origin)
            .field("kinds", &self.kinds.len())
            .field("notes", &self.notes)
            .finish_non_exhaustive()
    }
}

impl SchemaSet {
    /// A hash of what the set says (its kinds' roots, definitions, origin and notes):
    /// equal fingerprints, equal comparisons (result reuse, [`crate::run::reuse`]).
    pub fn fingerprint(&self) -> [u8; 32] {
        *self.fingerprint.get_or_init(|| {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(self.origin.as_bytes());
            h.update([0]);
            for n in &self.notes {
                h.update(n.as_bytes());
                h.update([0]);
            }
            let mut kinds: Vec<_> = self.kinds.iter().collect();
            kinds.sort_by(|a, b| a.0.cmp(b.0));
            for ((g, k), (root, namespaced)) in kinds {
                h.update(format!("{g}\u{0}{k}\u{0}{namespaced}\u{0}{root}\u{0}").as_bytes());
            }
            for (name, def) in &self.defs {
                h.update(format!("{name}\u{0}{def}\u{0}").as_bytes());
            }
            h.finalize().into()
        })
    }

    /// A set of no kinds that only says something (a cluster that serves no documents).
    pub fn note_only(origin: &str, note: String) -> SchemaSet {
        SchemaSet::merge(origin, &[], vec![note])
    }

    /// Merges trimmed documents (a cluster's): per kind the most stable version's root.
    pub fn merge(origin: &str, docs: &[Arc<TrimmedDoc>], mut notes: Vec<String>) -> SchemaSet {
        let mut defs = Map::new();
        type Rank = (u8, u32, u32);
        let mut picked: HashMap<(String, String), (Rank, &DocKind)> = HashMap::new();
        for d in docs {
            for (k, v) in &d.defs {
                if !defs.contains_key(k) {
                    defs.insert(k.clone(), v.clone());
                }
            }
            for k in &d.kinds {
                let rank = version_rank(&k.version);
                let key = (k.group.clone(), k.kind.clone());
                if picked.get(&key).is_none_or(|(r, _)| *r < rank) {
                    picked.insert(key, (rank, k));
                }
            }
            notes.extend(
                d.errors
                    .iter()
                    .map(|e| format!("{e}: that schema is not used")),
            );
        }
        let mut kinds = HashMap::new();
        for (key, (_, k)) in picked {
            // Status is never compared: the kind's root without it.
            let mut root = defs
                .get(&k.root)
                .cloned()
                .unwrap_or(Value::Object(Map::new()));
            if let Some(p) = root.get_mut("p").and_then(Value::as_object_mut) {
                p.remove("status");
            }
            kinds.insert(key, (root, k.namespaced));
        }
        SchemaSet {
            kinds,
            defs,
            origin: origin.to_string(),
            notes,
            trees: RwLock::default(),
            fingerprint: std::sync::OnceLock::new(),
        }
    }

    /// Reads a set in the bundled file's format (`{"kinds": {"group/Kind": {"r", "s"}},
    /// "defs": {…}}`).
    pub(super) fn from_bundled(doc: &Value, origin: &str) -> SchemaSet {
        let mut kinds = HashMap::new();
        for (gk, e) in doc
            .get("kinds")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let (g, kind) = gk.split_once('/').unwrap_or(("", gk));
            let root = e
                .get("r")
                .map(|r| serde_json::json!({"r": r}))
                .unwrap_or(Value::Object(Map::new()));
            let namespaced = e.get("s").and_then(Value::as_str) == Some("N");
            kinds.insert((g.to_string(), kind.to_string()), (root, namespaced));
        }
        SchemaSet {
            kinds,
            defs: doc
                .get("defs")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            origin: origin.to_string(),
            notes: Vec::new(),
            trees: RwLock::default(),
            fingerprint: std::sync::OnceLock::new(),
        }
    }

    /// Whether the set defines a kind.
    pub fn knows(&self, group: &str, kind: &str) -> bool {
        self.kinds
            .contains_key(&(group.to_string(), kind.to_string()))
    }

    /// The kind's tree (built once), when the set defines the kind.
    pub(super) fn tree(
        &self,
        group: &str,
        kind: &str,
        source: impl FnOnce() -> SchemaSource,
        apply_defaults: bool,
    ) -> Option<Arc<KindSchema>> {
        let k = (group.to_string(), kind.to_string());
        if let Some(t) = self
            .trees
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&k)
        {
            return Some(t.clone());
        }
        let (root, namespaced) = self.kinds.get(&k)?;
        let built = Arc::new(super::build_kind(
            root,
            &self.defs,
            group,
            kind,
            source(),
            Some(*namespaced),
            apply_defaults,
        ));
        Some(
            self.trees
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(k)
                .or_insert(built)
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_rank_by_stability() {
        assert!(version_rank("v1") > version_rank("v1beta1"));
        assert!(version_rank("v2") > version_rank("v1"));
        assert!(version_rank("v1beta2") > version_rank("v1beta1"));
        assert!(version_rank("v1beta1") > version_rank("v1alpha3"));
        assert_eq!(version_rank("vX"), (0, 0, 0));
        assert_eq!(version_rank("v99999999999999"), (0, 0, 0));
    }

    #[test]
    fn a_document_is_trimmed_like_the_bundled_set() {
        let doc = json!({
            "paths": {"/apis/example.com/v1/namespaces/{namespace}/widgets": {"get": {
                "x-kubernetes-group-version-kind": {"group": "example.com", "version": "v1", "kind": "Widget"}}}},
            "components": {"schemas": {
                "com.example.v1.Widget": {
                    "x-kubernetes-group-version-kind": [{"group": "example.com", "version": "v1", "kind": "Widget"}],
                    "properties": {
                        "metadata": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]},
                        "spec": {"properties": {
                            "ports": {"type": "array", "x-kubernetes-list-type": "map",
                                "x-kubernetes-list-map-keys": ["name"],
                                "items": {"properties": {"protocol": {"type": "string", "default": "TCP"}, "name": {"default": ""}}}},
                            "size": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"},
                            "port": {"x-kubernetes-int-or-string": true}}},
                        "status": {"properties": {"ready": {"type": "boolean"}}}}},
                "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {"properties": {"name": {"type": "string"}}}}}
        });
        let t = trim_document(&doc, "https://127.0.0.1/openapi/v3/apis/example.com/v1")
            .expect("trimmed");
        assert!(t.errors.is_empty(), "{:?}", t.errors);
        assert_eq!(t.kinds.len(), 1);
        assert!(t.kinds[0].namespaced);
        assert_eq!(t.kinds[0].root, "com.example.v1.Widget");
        let spec = &t.defs["com.example.v1.Widget"]["p"]["spec"]["p"];
        assert_eq!(spec["ports"]["lt"], "map");
        assert_eq!(spec["ports"]["i"]["p"]["protocol"]["d"], "TCP");
        assert!(
            spec["ports"]["i"]["p"].get("name").is_none(),
            "trivial default kept"
        );
        assert_eq!(spec["size"]["t"], "q");
        assert_eq!(spec["port"]["t"], "ios");
        assert!(!t.defs.contains_key("apis.meta.v1.ObjectMeta"));
        let set = SchemaSet::merge("test", &[Arc::new(t)], Vec::new());
        let (root, namespaced) = &set.kinds[&("example.com".to_string(), "Widget".to_string())];
        assert!(*namespaced);
        assert!(root["p"].get("status").is_none(), "status is not compared");
    }

    #[test]
    fn a_bad_schema_is_named_by_its_path_and_left_out() {
        let doc = json!({"components": {"schemas": {
            "com.example.v1.Bad": {"properties": {"spec": {"properties": {
                "items": {"x-kubernetes-list-type": "dictionary"}}}}},
            "com.example.v1.Good": {"properties": {"a": {"x-kubernetes-list-type": "set"}}}}}});
        let t = trim_document(&doc, "https://h/openapi/v3/apis/example.com/v1").expect("doc");
        assert_eq!(t.errors.len(), 1);
        assert_eq!(
            t.errors[0].to_string(),
            "OpenAPI document https://h/openapi/v3/apis/example.com/v1: \
             /components/schemas/com.example.v1.Bad/properties/spec/properties/items/x-kubernetes-list-type: \
             must be map, set or atomic, found \"dictionary\""
        );
        assert!(t.defs.contains_key("com.example.v1.Good"));
        let e = trim_document(&json!({"openapi": "3.0.0"}), "u").expect_err("no schemas");
        assert!(e.to_string().contains("not an OpenAPI v3 document"), "{e}");
    }
}
