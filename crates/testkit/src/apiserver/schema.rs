//! The test server's list semantics for the kinds it serves — which lists are maps keyed
//! by some of their items' fields, which are sets of scalars, and (everything else) which
//! are atomic — derived from the real Kubernetes OpenAPI v3 documents it also serves at
//! `/openapi/v3` (`crates/testkit/data/openapi/<release>/`, trimmed from the published
//! documents by `scripts/trim-openapi.py`), and for custom resources from the
//! `openAPIV3Schema` of the CRDs registered with [`register_crd_schema`].
//!
//! It is deliberately independent of envdrift's own schema code (`envdrift::diff::schema`):
//! a stand-in that shared envdrift's logic would mirror its bugs and hide them. The rules
//! are those of the API server's structured-merge-diff conversion of OpenAPI:
//! `x-kubernetes-list-type: map` with `x-kubernetes-list-map-keys` is a map keyed by those
//! fields; `set` a set; `atomic` atomic; a list without a list type but with
//! `x-kubernetes-patch-strategy: merge` and `x-kubernetes-patch-merge-key` is a map keyed by
//! the merge key; any other list is atomic. A key field with a `default` (`protocol: TCP`)
//! carries it, for items that omit it.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex, RwLock};

use serde_json::{Map, Value};

/// The keys of a list-map item: a field name and the default used when an item omits it.
pub type MapKeys = &'static [(&'static str, Option<&'static str>)];

/// How a list merges and how its items appear in `fieldsV1`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ListType {
    /// Replaced as a whole; owned as one field (`f:args`).
    #[default]
    Atomic,
    /// Items keyed by these fields (`k:{"name":"web"}`).
    Map(MapKeys),
    /// A set of scalars (`v:"foregroundDeletion"`).
    Set,
}

/// One node of a kind's field tree.
#[derive(Debug, Default)]
pub struct ListNode {
    children: HashMap<String, ListNode>,
    item: Option<Box<ListNode>>,
    /// The list semantics when the value here is a list.
    pub list: ListType,
}

impl ListNode {
    /// The node of a field (or of a list item / map value when no field is named so).
    pub fn child(&self, key: &str) -> Option<&ListNode> {
        self.children.get(key).or(self.item.as_deref())
    }

    /// The node of a list item.
    pub fn item(&self) -> Option<&ListNode> {
        self.item.as_deref()
    }
}

/// The release the bundled documents come from.
pub const RELEASE: &str = "v1.35";

/// The served documents: (`api/v1`, `apis/apps/v1`, …) → document text.
pub const DOCUMENTS: &[(&str, &str)] = &[
    (
        "api/v1",
        include_str!("../../data/openapi/v1.35/api__v1.json"),
    ),
    (
        "apis/apps/v1",
        include_str!("../../data/openapi/v1.35/apis__apps__v1.json"),
    ),
    (
        "apis/autoscaling/v2",
        include_str!("../../data/openapi/v1.35/apis__autoscaling__v2.json"),
    ),
    (
        "apis/batch/v1",
        include_str!("../../data/openapi/v1.35/apis__batch__v1.json"),
    ),
    (
        "apis/coordination.k8s.io/v1",
        include_str!("../../data/openapi/v1.35/apis__coordination.k8s.io__v1.json"),
    ),
    (
        "apis/discovery.k8s.io/v1",
        include_str!("../../data/openapi/v1.35/apis__discovery.k8s.io__v1.json"),
    ),
    (
        "apis/networking.k8s.io/v1",
        include_str!("../../data/openapi/v1.35/apis__networking.k8s.io__v1.json"),
    ),
    (
        "apis/policy/v1",
        include_str!("../../data/openapi/v1.35/apis__policy__v1.json"),
    ),
    (
        "apis/rbac.authorization.k8s.io/v1",
        include_str!("../../data/openapi/v1.35/apis__rbac.authorization.k8s.io__v1.json"),
    ),
];

const REF_PREFIX: &str = "#/components/schemas/";
/// Deeper than any built-in type nests; guards against recursive definitions.
const MAX_DEPTH: usize = 40;

fn leak(s: &str) -> &'static str {
    static STRS: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Default::default);
    let mut strs = STRS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(v) = strs.get(s) {
        return v;
    }
    let v: &'static str = Box::leak(s.to_string().into_boxed_str());
    strs.insert(v);
    v
}

/// The schema a node refers to (`$ref`, or the `allOf: [{$ref}]` the documents write for
/// properties with a default or extensions of their own).
fn referenced<'a>(node: &'a Value, schemas: &'a Map<String, Value>) -> Option<&'a Value> {
    let r = node.get("$ref").or_else(|| {
        node.get("allOf")?
            .as_array()?
            .iter()
            .find_map(|s| s.get("$ref"))
    })?;
    schemas.get(r.as_str()?.strip_prefix(REF_PREFIX)?)
}

/// The value of `field` on the node itself, else on the schema it refers to.
fn attr<'a>(node: &'a Value, schemas: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    node.get(field)
        .or_else(|| referenced(node, schemas).and_then(|r| r.get(field)))
}

fn list_type(node: &Value, schemas: &Map<String, Value>) -> ListType {
    let items = attr(node, schemas, "items");
    let key_default = |k: &str| -> Option<&'static str> {
        let props = attr(items?, schemas, "properties")?;
        // `default: ""` is the documents' zero-value marker, not a default the server sets.
        let d = attr(props.get(k)?, schemas, "default")?;
        d.as_str().filter(|s| !s.is_empty()).map(leak)
    };
    let keys = |names: Vec<&str>| -> ListType {
        let keys: Vec<(&'static str, Option<&'static str>)> = names
            .into_iter()
            .map(|k| (leak(k), key_default(k)))
            .collect();
        ListType::Map(Box::leak(keys.into_boxed_slice()))
    };
    match attr(node, schemas, "x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => {
            let names: Vec<&str> = attr(node, schemas, "x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if names.is_empty() {
                ListType::Atomic
            } else {
                keys(names)
            }
        }
        Some("set") => ListType::Set,
        Some(_) => ListType::Atomic,
        None => {
            let merge = attr(node, schemas, "x-kubernetes-patch-strategy")
                .and_then(Value::as_str)
                .is_some_and(|s| s.split(',').any(|p| p == "merge"));
            match attr(node, schemas, "x-kubernetes-patch-merge-key").and_then(Value::as_str) {
                Some(k) if merge => keys(vec![k]),
                _ => ListType::Atomic,
            }
        }
    }
}

/// The tree of one schema node.
fn build(node: &Value, schemas: &Map<String, Value>, depth: usize) -> ListNode {
    let mut out = ListNode::default();
    if depth > MAX_DEPTH {
        return out;
    }
    out.list = list_type(node, schemas);
    if let Some(props) = attr(node, schemas, "properties").and_then(Value::as_object) {
        for (k, v) in props {
            out.children.insert(k.clone(), build(v, schemas, depth + 1));
        }
    }
    let item = attr(node, schemas, "items")
        .or_else(|| attr(node, schemas, "additionalProperties").filter(|a| a.is_object()));
    if let Some(i) = item {
        out.item = Some(Box::new(build(i, schemas, depth + 1)));
    }
    out
}

/// Every kind the documents define: (group, kind) → its tree.
fn kinds_of(doc: &Value) -> Vec<((String, String), ListNode)> {
    let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in schemas.values() {
        for gvk in s
            .get("x-kubernetes-group-version-kind")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(g), Some(k)) = (
                gvk.get("group").and_then(Value::as_str),
                gvk.get("kind").and_then(Value::as_str),
            ) else {
                continue;
            };
            if k.ends_with("List") {
                continue;
            }
            out.push(((g.to_string(), k.to_string()), build(s, schemas, 0)));
        }
    }
    out
}

type Trees = HashMap<(String, String), &'static ListNode>;

static BUILTIN: LazyLock<Trees> = LazyLock::new(|| {
    let mut out = HashMap::new();
    for (name, text) in DOCUMENTS {
        // The documents are committed test data; one that does not parse is a broken
        // checkout, and the test that reads it says so (`documents_parse`).
        let Ok(doc) = serde_json::from_str::<Value>(text) else {
            eprintln!("testkit: {name}: not JSON");
            continue;
        };
        for (k, tree) in kinds_of(&doc) {
            out.entry(k).or_insert_with(|| &*Box::leak(Box::new(tree)));
        }
    }
    out
});

/// Custom resources' trees, from the CRDs registered with any server of this process.
static CRDS: LazyLock<RwLock<Trees>> = LazyLock::new(Default::default);

/// The tree of the object metadata alone (kinds no document describes).
static GENERIC: LazyLock<ListNode> = LazyLock::new(|| {
    BUILTIN
        .get(&(String::new(), "ConfigMap".to_string()))
        .and_then(|t| t.children.get("metadata"))
        .map(|meta| {
            let mut n = ListNode::default();
            n.children.insert("metadata".into(), clone_tree(meta));
            n
        })
        .unwrap_or_default()
});

fn clone_tree(n: &ListNode) -> ListNode {
    ListNode {
        children: n
            .children
            .iter()
            .map(|(k, c)| (k.clone(), clone_tree(c)))
            .collect(),
        item: n.item.as_deref().map(|i| Box::new(clone_tree(i))),
        list: n.list.clone(),
    }
}

/// Records a CRD's schema (its storage version's, else its first version's
/// `openAPIV3Schema`) as the tree of its kind, with the object metadata's rules.
pub fn register_crd_schema(crd: &Value) {
    let (Some(group), Some(kind)) = (
        crd.pointer("/spec/group").and_then(Value::as_str),
        crd.pointer("/spec/names/kind").and_then(Value::as_str),
    ) else {
        return;
    };
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let version = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .or(versions.first());
    let Some(schema) = version.and_then(|v| v.pointer("/schema/openAPIV3Schema")) else {
        return;
    };
    let mut tree = build(schema, &Map::new(), 0);
    if let Some(meta) = GENERIC.children.get("metadata") {
        tree.children.insert("metadata".into(), clone_tree(meta));
    }
    CRDS.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(
            (group.to_string(), kind.to_string()),
            Box::leak(Box::new(tree)),
        );
}

/// The list semantics of a kind; kinds no document or CRD describes get the metadata
/// rules only (every other list atomic).
pub fn schema_for(group: &str, kind: &str) -> &'static ListNode {
    let k = (group.to_string(), kind.to_string());
    if let Some(t) = BUILTIN.get(&k) {
        return t;
    }
    if let Some(t) = CRDS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&k)
    {
        return t;
    }
    &GENERIC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_parse() {
        for (name, text) in DOCUMENTS {
            let doc: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!kinds_of(&doc).is_empty(), "{name} defines no kind");
        }
    }

    #[test]
    fn list_semantics_come_from_the_documents() {
        let d = schema_for("apps", "Deployment");
        let spec = d
            .child("spec")
            .and_then(|s| s.child("template"))
            .and_then(|t| t.child("spec"))
            .expect("pod spec");
        let containers = spec.child("containers").expect("containers");
        assert_eq!(containers.list, ListType::Map(&[("name", None)]));
        let ports = containers
            .item()
            .and_then(|c| c.child("ports"))
            .expect("ports");
        assert_eq!(
            ports.list,
            ListType::Map(&[("containerPort", None), ("protocol", Some("TCP"))])
        );
        let args = containers
            .item()
            .and_then(|c| c.child("args"))
            .expect("args");
        assert_eq!(args.list, ListType::Atomic);
        let fin = d
            .child("metadata")
            .and_then(|m| m.child("finalizers"))
            .expect("finalizers");
        assert_eq!(fin.list, ListType::Set);
        let svc_ports = schema_for("", "Service")
            .child("spec")
            .and_then(|s| s.child("ports"))
            .expect("service ports");
        assert_eq!(
            svc_ports.list,
            ListType::Map(&[("port", None), ("protocol", Some("TCP"))])
        );
        // A kind no document describes: the metadata rules only.
        let owners = schema_for("example.com", "Nothing")
            .child("metadata")
            .and_then(|m| m.child("ownerReferences"))
            .expect("ownerReferences");
        assert_eq!(owners.list, ListType::Map(&[("uid", None)]));
    }

    #[test]
    fn crd_schemas_give_custom_kinds_their_lists() {
        let crd = serde_json::json!({
            "spec": {"group": "schema-test.example.com", "names": {"kind": "Widget"},
              "versions": [{"name": "v1", "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object", "properties": {"spec": {"type": "object", "properties": {
                  "ports": {"type": "array", "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}}}}}}}}}]}
        });
        register_crd_schema(&crd);
        let w = schema_for("schema-test.example.com", "Widget");
        let ports = w
            .child("spec")
            .and_then(|s| s.child("ports"))
            .expect("ports");
        assert_eq!(ports.list, ListType::Map(&[("name", None)]));
        assert!(
            w.child("metadata")
                .and_then(|m| m.child("finalizers"))
                .is_some()
        );
    }
}
