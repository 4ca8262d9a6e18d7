//! `metadata.managedFields`: who owns which field of a live object.
//!
//! [`ManagedIndex::from_object`] turns the `fieldsV1` sets of every manager into one trie;
//! [`ManagedIndex::owners`] answers "which managers own this path (or anything under it)".
//! Paths are given as [`FieldElem`]s, the element syntax of structured-merge-diff:
//! `f:name` for a field, `k:{"name":"web"}` for a keyed list item, `v:"get"` for a set item.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// One manager's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedEntry {
    pub manager: String,
    pub operation: Option<String>,
    pub time: Option<String>,
    pub subresource: Option<String>,
}

impl ManagedEntry {
    pub(crate) fn is_apply(&self) -> bool {
        self.operation.as_deref() == Some("Apply")
    }
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<String, Node>,
    owners: Vec<u16>,
}

impl Node {
    fn collect(&self, out: &mut Vec<u16>) {
        out.extend_from_slice(&self.owners);
        for c in self.children.values() {
            c.collect(out);
        }
    }
}

/// All managers of one object and the fields they own.
#[derive(Debug, Default)]
pub struct ManagedIndex {
    pub entries: Vec<ManagedEntry>,
    root: Node,
}

/// A path element in structured-merge-diff syntax (already canonical).
pub type FieldElem = String;

/// `f:name`.
pub fn field_elem(name: &str) -> FieldElem {
    format!("f:{name}")
}

/// `k:{…}` with keys sorted and compact JSON, as the API server writes them.
pub fn key_elem(fields: &Map<String, Value>) -> FieldElem {
    // serde_json's Map is a BTreeMap (no preserve_order): keys come out sorted.
    format!("k:{}", Value::Object(fields.clone()))
}

/// `v:<json>` for an item of a set list.
pub fn value_elem(v: &Value) -> FieldElem {
    format!("v:{v}")
}

fn canonical_elem(raw: &str) -> String {
    if let Some(json) = raw.strip_prefix("k:").or_else(|| raw.strip_prefix("v:"))
        && let Ok(v) = serde_json::from_str::<Value>(json)
    {
        return format!("{}:{v}", &raw[..1]);
    }
    raw.to_string()
}

impl ManagedIndex {
    /// Reads `metadata.managedFields` of a live object; `None` when it has none.
    pub(crate) fn from_object(obj: &Value) -> Option<ManagedIndex> {
        let list = obj.pointer("/metadata/managedFields")?.as_array()?;
        if list.is_empty() {
            return None;
        }
        let mut idx = ManagedIndex::default();
        for entry in list {
            let Some(manager) = entry.get("manager").and_then(Value::as_str) else {
                continue;
            };
            let s = |k: &str| entry.get(k).and_then(Value::as_str).map(str::to_string);
            let id = idx.entries.len() as u16;
            idx.entries.push(ManagedEntry {
                manager: manager.to_string(),
                operation: s("operation"),
                time: s("time"),
                subresource: s("subresource"),
            });
            if let Some(Value::Object(fields)) = entry.get("fieldsV1") {
                insert(&mut idx.root, fields, id);
            }
            if idx.entries.len() >= u16::MAX as usize {
                break;
            }
        }
        Some(idx)
    }

    /// Managers owning `path`: the ones that own it or (when `subtree`) anything under it;
    /// when the path goes below a leaf that someone owns as a whole (an atomic list), that
    /// leaf's owners. Sorted by time, most recent first.
    pub(crate) fn owners(&self, path: &[FieldElem], subtree: bool) -> Vec<&ManagedEntry> {
        let mut node = &self.root;
        let mut ids = Vec::new();
        let mut complete = true;
        for elem in path {
            match node.children.get(elem) {
                Some(n) => node = n,
                None => {
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            if subtree {
                node.collect(&mut ids);
            } else {
                ids.extend_from_slice(&node.owners);
            }
        } else if node.children.is_empty() {
            ids.extend_from_slice(&node.owners);
        }
        ids.sort_unstable();
        ids.dedup();
        let mut out: Vec<&ManagedEntry> = ids.iter().map(|&i| &self.entries[i as usize]).collect();
        out.sort_by(|a, b| b.time.cmp(&a.time));
        out
    }

    /// The most recent entry overall (who touched the object last).
    pub fn latest(&self) -> Option<&ManagedEntry> {
        self.entries.iter().max_by(|a, b| a.time.cmp(&b.time))
    }
}

fn insert(node: &mut Node, fields: &Map<String, Value>, id: u16) {
    for (raw, sub) in fields {
        if raw == "." {
            node.owners.push(id);
            continue;
        }
        let child = node.children.entry(canonical_elem(raw)).or_default();
        match sub {
            Value::Object(m) if !m.is_empty() => insert(child, m, id),
            _ => child.owners.push(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({"metadata": {"managedFields": [
            {"manager": "kubectl-client-side-apply", "operation": "Update", "time": "2026-01-01T00:00:00Z",
             "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}, "f:args": {}}}}}}}},
            {"manager": "kubectl-edit", "operation": "Update", "time": "2026-02-01T00:00:00Z",
             "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"web\"}": {"f:env": {".": {}, "k:{\"name\":\"DEBUG\"}": {".": {}, "f:name": {}, "f:value": {}}}}}}}}}}
        ]}})
    }

    fn path(parts: &[&str]) -> Vec<FieldElem> {
        parts.iter().map(std::string::ToString::to_string).collect()
    }

    #[test]
    fn owners_of_leaves_and_subtrees() {
        let idx = ManagedIndex::from_object(&obj()).unwrap();
        let c = [
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"web\"}",
        ];
        let mut image = path(&c);
        image.push("f:image".into());
        assert_eq!(
            idx.owners(&image, false)[0].manager,
            "kubectl-client-side-apply"
        );
        let mut debug = path(&c);
        debug.extend(["f:env".to_string(), "k:{\"name\":\"DEBUG\"}".to_string()]);
        let o = idx.owners(&debug, true);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].manager, "kubectl-edit");
        // Below an atomic leaf: the leaf's owner.
        let mut arg = path(&c);
        arg.extend(["f:args".to_string(), "i:0".to_string()]);
        assert_eq!(
            idx.owners(&arg, false)[0].manager,
            "kubectl-client-side-apply"
        );
        // An unknown field under a non-leaf: nobody.
        let mut other = path(&c);
        other.push("f:unknown".into());
        assert!(idx.owners(&other, false).is_empty());
        // Whole container: both managers, most recent first.
        let all = idx.owners(&path(&c), true);
        assert_eq!(all[0].manager, "kubectl-edit");
        assert_eq!(all.len(), 2);
        assert_eq!(idx.latest().unwrap().manager, "kubectl-edit");
    }

    #[test]
    fn key_elements_are_canonical() {
        let m: Map<String, Value> =
            serde_json::from_value(json!({"protocol": "TCP", "containerPort": 80})).unwrap();
        assert_eq!(
            key_elem(&m),
            "k:{\"containerPort\":80,\"protocol\":\"TCP\"}"
        );
        assert_eq!(
            canonical_elem("k:{\"protocol\": \"TCP\", \"containerPort\": 80}"),
            key_elem(&m)
        );
        assert_eq!(value_elem(&json!("get")), "v:\"get\"");
    }
}
