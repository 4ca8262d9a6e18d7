//! `/openapi/v3` as kube-apiserver serves it: an index of group-version documents, each
//! with a `serverRelativeURL` carrying the document's hash, and the documents themselves
//! (the real Kubernetes documents of [`super::schema::DOCUMENTS`] for built-in groups the
//! server serves, and for registered CRDs a document built the way the API server builds
//! one from a CRD's `openAPIV3Schema`).
//!
//! Like the real server, a request whose `hash` does not match the current document is
//! answered with the document anyway (the real one redirects to the current hash); a
//! matching one gets `Cache-Control: public, immutable`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use super::ResourceDef;
use super::schema::DOCUMENTS;

/// The hash the index gives for a document (the API server's: SHA-512 of the body, hex,
/// upper case).
pub fn document_hash(text: &str) -> String {
    Sha512::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// `api/v1` or `apis/GROUP/VERSION`.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The schemas every CRD document carries beside its kind (ObjectMeta and what it uses),
/// from the core document.
fn meta_schemas() -> Map<String, Value> {
    let core: Value = DOCUMENTS
        .iter()
        .find(|(n, _)| *n == "api/v1")
        .and_then(|(_, t)| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let all = core
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut out = Map::new();
    let mut stack = vec!["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".to_string()];
    while let Some(n) = stack.pop() {
        if out.contains_key(&n) {
            continue;
        }
        let Some(s) = all.get(&n) else { continue };
        collect_refs(s, &mut stack);
        out.insert(n, s.clone());
    }
    out
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                match (k.as_str(), c.as_str()) {
                    ("$ref", Some(r)) => {
                        if let Some(n) = r.strip_prefix("#/components/schemas/") {
                            out.push(n.to_string());
                        }
                    }
                    _ => collect_refs(c, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|c| collect_refs(c, out)),
        _ => {}
    }
}

/// The schema name the API server gives a custom kind: the group's labels reversed, then
/// version and kind (`io.cert-manager.v1.Certificate`).
fn crd_schema_name(group: &str, version: &str, kind: &str) -> String {
    let rev: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", rev.join("."))
}

/// The group-version documents of registered CRDs: `apis/GROUP/VERSION` → document.
pub fn crd_documents(crds: &[Value]) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    for crd in crds {
        let spec = crd.get("spec").cloned().unwrap_or_default();
        let (Some(group), Some(kind), Some(plural)) = (
            spec.get("group").and_then(Value::as_str),
            spec.pointer("/names/kind").and_then(Value::as_str),
            spec.pointer("/names/plural").and_then(Value::as_str),
        ) else {
            continue;
        };
        let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
        for v in spec
            .get("versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if v.get("served").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let Some(version) = v.get("name").and_then(Value::as_str) else {
                continue;
            };
            let mut schema = v
                .pointer("/schema/openAPIV3Schema")
                .cloned()
                .unwrap_or_else(
                    || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
                );
            if let Some(m) = schema.as_object_mut() {
                let props = m
                    .entry("properties")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(p) = props.as_object_mut() {
                    p.insert("apiVersion".into(), json!({"type": "string"}));
                    p.insert("kind".into(), json!({"type": "string"}));
                    p.insert(
                        "metadata".into(),
                        json!({"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]}),
                    );
                }
                m.insert(
                    "x-kubernetes-group-version-kind".into(),
                    json!([{"group": group, "kind": kind, "version": version}]),
                );
            }
            let path = gv_path(group, version);
            let doc = out.entry(path).or_insert_with(|| {
                json!({"openapi": "3.0.0", "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
                       "paths": {}, "components": {"schemas": meta_schemas()}})
            });
            let gvk = json!({"group": group, "kind": kind, "version": version});
            let op = |action: &str| json!({"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk});
            if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
                let base = format!("/apis/{group}/{version}");
                if namespaced {
                    paths.insert(
                        format!("{base}/namespaces/{{namespace}}/{plural}"),
                        json!({"get": op("list")}),
                    );
                    paths.insert(
                        format!("{base}/namespaces/{{namespace}}/{plural}/{{name}}"),
                        json!({"get": op("get")}),
                    );
                    paths.insert(format!("{base}/{plural}"), json!({"get": op("list")}));
                } else {
                    paths.insert(format!("{base}/{plural}"), json!({"get": op("list")}));
                    paths.insert(
                        format!("{base}/{plural}/{{name}}"),
                        json!({"get": op("get")}),
                    );
                }
            }
            if let Some(s) = doc
                .pointer_mut("/components/schemas")
                .and_then(Value::as_object_mut)
            {
                s.insert(crd_schema_name(group, version, kind), schema);
            }
        }
    }
    out
}

/// Every document the server serves now: path → body text. Built-in documents only for
/// group-versions it serves; `overrides` replace bodies (fault tests: a malformed one).
pub fn documents(
    defs: &[ResourceDef],
    crds: &[Value],
    overrides: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (path, text) in DOCUMENTS {
        if defs.iter().any(|d| gv_path(&d.group, &d.version) == *path) {
            out.insert((*path).to_string(), (*text).to_string());
        }
    }
    for (path, doc) in crd_documents(crds) {
        out.insert(path, doc.to_string());
    }
    for (path, text) in overrides {
        out.insert(path.clone(), text.clone());
    }
    out
}

/// The index (`GET /openapi/v3`).
pub fn index(docs: &BTreeMap<String, String>) -> Value {
    let paths: Map<String, Value> = docs
        .iter()
        .map(|(p, text)| {
            (
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", document_hash(text))}),
            )
        })
        .collect();
    json!({ "paths": paths })
}
