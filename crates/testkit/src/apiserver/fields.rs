//! Object semantics of the test API server: field sets (`fieldsV1`), strategic merge
//! patch, server-side apply merging, and the defaults a real API server adds.
//!
//! Keyed lists (containers by `name`, ports by `containerPort`+`protocol`, …) come from the
//! server's own table ([`super::schema`]), written from the Kubernetes API reference.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::schema::{ListNode as SchemaNode, ListType, schema_for};

/// `f:<name>`: a field of a map or struct (structured-merge-diff's `fieldsV1` encoding).
pub fn field_elem(name: &str) -> String {
    format!("f:{name}")
}

/// `k:<json>`: an item of a list-map by its key fields, compact JSON with sorted keys as the
/// API server writes it (serde_json's `Map` without `preserve_order` is sorted).
pub fn key_elem(fields: &Map<String, Value>) -> String {
    let sorted: std::collections::BTreeMap<&String, &Value> = fields.iter().collect();
    format!(
        "k:{}",
        serde_json::to_string(&sorted).expect("JSON of a key map")
    )
}

/// `v:<json>`: an item of a set list by its value.
pub fn value_elem(v: &Value) -> String {
    format!("v:{v}")
}

/// `i:<index>`: an item of an atomic list by position (the API server uses it only inside
/// lists it cannot key; kept for parsing managed fields written by others).
pub fn index_elem(i: usize) -> String {
    format!("i:{i}")
}

/// A field path in structured-merge-diff element syntax (`f:spec`, `k:{"name":"web"}`).
pub type FieldPath = Vec<String>;

/// Metadata fields the server never assigns to a manager.
const UNOWNED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "generateName",
];

/// Map-typed fields whose `fieldsV1` node carries a `.` (the map itself) marker.
const GRANULAR_MAPS: &[&str] = &[
    "labels",
    "annotations",
    "data",
    "matchLabels",
    "nodeSelector",
];

fn item_key_map(item: &Value, keys: &[(&str, Option<&str>)]) -> Option<Map<String, Value>> {
    let obj = item.as_object()?;
    let mut m = Map::new();
    for (k, default) in keys {
        match obj.get(*k) {
            Some(v) if !v.is_null() => {
                m.insert((*k).to_string(), v.clone());
            }
            _ => {
                m.insert((*k).to_string(), Value::String((*default)?.to_string()));
            }
        }
    }
    Some(m)
}

/// Every leaf field of `obj` (with `status` only when `with_status`), as paths.
pub fn leaf_paths(group: &str, kind: &str, obj: &Value, with_status: bool) -> BTreeSet<FieldPath> {
    let schema = schema_for(group, kind);
    let mut out = BTreeSet::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    for (k, v) in map {
        if k == "apiVersion" || k == "kind" || (k == "status" && !with_status) {
            continue;
        }
        let mut path = vec![field_elem(k)];
        if k == "metadata" {
            if let Some(m) = v.as_object() {
                for (mk, mv) in m {
                    if UNOWNED_META.contains(&mk.as_str()) {
                        continue;
                    }
                    path.push(field_elem(mk));
                    walk(
                        mv,
                        schema.child("metadata").and_then(|n| n.child(mk)),
                        &mut path,
                        &mut out,
                    );
                    path.pop();
                }
            }
            continue;
        }
        walk(v, schema.child(k), &mut path, &mut out);
    }
    out
}

fn walk(v: &Value, node: Option<&SchemaNode>, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                path.push(field_elem(k));
                walk(c, node.and_then(|n| n.child(k)), path, out);
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match node.map(|n| &n.list) {
            Some(ListType::Map(keys)) => {
                let keyed: Option<Vec<_>> = items.iter().map(|i| item_key_map(i, keys)).collect();
                match keyed {
                    Some(keyed) => {
                        for (item, key) in items.iter().zip(keyed) {
                            path.push(key_elem(&key));
                            out.insert(path.clone());
                            let mut with_keys = item.clone();
                            if let Some(obj) = with_keys.as_object_mut() {
                                for (kf, kv) in &key {
                                    obj.entry(kf.clone()).or_insert(kv.clone());
                                }
                            }
                            walk(&with_keys, node.and_then(|n| n.item()), path, out);
                            path.pop();
                        }
                    }
                    None => {
                        out.insert(path.clone());
                    }
                }
            }
            Some(ListType::Set) => {
                for item in items {
                    path.push(value_elem(item));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The `fieldsV1` JSON of a set of paths.
pub fn fields_v1(paths: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut node = &mut root;
        for (i, elem) in p.iter().enumerate() {
            let entry = node
                .entry(elem.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(child) = entry else { break };
            let is_last = i + 1 == p.len();
            let granular = elem
                .strip_prefix("f:")
                .is_some_and(|n| GRANULAR_MAPS.contains(&n));
            if (elem.starts_with("k:") || granular) && !is_last {
                child.entry(".").or_insert_with(|| json!({}));
            }
            node = child;
        }
    }
    Value::Object(root)
}

/// Parses a `fieldsV1` JSON back into leaf paths (`.` markers dropped).
pub fn parse_fields_v1(v: &Value) -> BTreeSet<FieldPath> {
    fn go(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        let Some(m) = v.as_object() else { return };
        let children: Vec<_> = m.iter().filter(|(k, _)| k.as_str() != ".").collect();
        if children.is_empty() && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, c) in children {
            path.push(k.clone());
            go(c, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    go(v, &mut Vec::new(), &mut out);
    out
}

/// The value at a field path, when present.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for elem in path {
        if let Some(name) = elem.strip_prefix("f:") {
            cur = cur.get(name)?;
        } else if let Some(key) = elem.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(key).ok()?;
            cur = cur.as_array()?.iter().find(|item| {
                key.iter().all(|(k, v)| match item.get(k) {
                    Some(x) => x == v,
                    None => k == "protocol" && v == "TCP",
                })
            })?;
        } else if let Some(val) = elem.strip_prefix("v:") {
            let val: Value = serde_json::from_str(val).ok()?;
            cur = cur.as_array()?.iter().find(|i| **i == val)?;
        } else {
            return None;
        }
    }
    Some(cur)
}

/// Removes the field at `path` (used by apply to drop fields a manager stopped applying).
pub fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for elem in parent_path {
        let next = if let Some(name) = elem.strip_prefix("f:") {
            cur.get_mut(name)
        } else if let Some(key) = elem.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(key) else {
                return;
            };
            cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|item| key.iter().all(|(k, v)| item.get(k).is_none_or(|x| x == v)))
            })
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(name) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(name);
        }
    } else if let Some(key) = last.strip_prefix("k:") {
        if let (Ok(key), Some(a)) = (
            serde_json::from_str::<Map<String, Value>>(key),
            cur.as_array_mut(),
        ) {
            a.retain(|item| !key.iter().all(|(k, v)| item.get(k).is_none_or(|x| x == v)));
        }
    } else if let Some(val) = last.strip_prefix("v:")
        && let (Ok(val), Some(a)) = (serde_json::from_str::<Value>(val), cur.as_array_mut())
    {
        a.retain(|i| *i != val);
    }
}

/// Strategic merge patch (the subset kubectl sends): maps merge, `null` deletes, keyed
/// lists merge by key (`$patch: delete` removes an item), primitive set lists union,
/// other lists are replaced; `$setElementOrder/…`, `$retainKeys` and
/// `$deleteFromPrimitiveList/…` directives are honoured or dropped.
pub fn strategic_merge(target: &mut Value, patch: &Value, node: Option<&SchemaNode>) {
    let Some(pm) = patch.as_object() else {
        *target = strip_directives(patch);
        return;
    };
    if pm.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    for (k, pv) in pm {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(arr), Some(del)) = (
                target.get_mut(field).and_then(Value::as_array_mut),
                pv.as_array(),
            ) {
                arr.retain(|v| !del.contains(v));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let Some(tm) = target.as_object_mut() else {
            return;
        };
        if pv.is_null() {
            tm.remove(k);
            continue;
        }
        let child = node.and_then(|n| n.child(k));
        match (tm.get_mut(k), pv) {
            (Some(tv @ Value::Object(_)), Value::Object(_)) => strategic_merge(tv, pv, child),
            (Some(Value::Array(ta)), Value::Array(pa)) => match child.map(|c| &c.list) {
                Some(ListType::Map(keys)) => {
                    merge_keyed(ta, pa, keys, child.and_then(|c| c.item()))
                }
                Some(ListType::Set) => {
                    for v in pa {
                        if !ta.contains(v) {
                            ta.push(v.clone());
                        }
                    }
                }
                _ => *ta = pa.iter().map(strip_directives).collect(),
            },
            _ => {
                tm.insert(k.clone(), strip_directives(pv));
            }
        }
    }
    // `$setElementOrder/field`: the order of a keyed list after the merge.
    for (k, order) in pm {
        let (Some(field), Some(order)) = (k.strip_prefix("$setElementOrder/"), order.as_array())
        else {
            continue;
        };
        let Some(ListType::Map(keys)) = node.and_then(|n| n.child(field)).map(|c| &c.list) else {
            continue;
        };
        let order: Vec<_> = order.iter().map(|o| item_key_map(o, keys)).collect();
        if let Some(list) = target.get_mut(field).and_then(Value::as_array_mut) {
            list.sort_by_key(|item| {
                let key = item_key_map(item, keys);
                order.iter().position(|o| *o == key).unwrap_or(usize::MAX)
            });
        }
    }
}

fn merge_keyed(
    target: &mut Vec<Value>,
    patch: &[Value],
    keys: &[(&str, Option<&str>)],
    item_node: Option<&SchemaNode>,
) {
    for item in patch {
        if item.get("$patch").and_then(Value::as_str) == Some("replace") {
            *target = patch
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .map(strip_directives)
                .collect();
            return;
        }
        let key = item_key_map(item, keys);
        let pos = key.as_ref().and_then(|key| {
            target
                .iter()
                .position(|t| item_key_map(t, keys).as_ref() == Some(key))
        });
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                target.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut target[i], item, item_node),
            (None, false) => target.push(strip_directives(item)),
        }
    }
}

/// A copy without `$…` directive keys.
pub fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// The schema node for a kind (for patch merging).
pub fn schema(group: &str, kind: &str) -> &'static SchemaNode {
    schema_for(group, kind)
}

fn set_default(m: &mut Map<String, Value>, k: &str, v: Value) {
    if m.get(k).is_none_or(Value::is_null) {
        m.insert(k.to_string(), v);
    }
}

/// Defaults of a pod spec, as the API server sets them.
fn default_pod_spec(spec: &mut Value) {
    let Some(s) = spec.as_object_mut() else {
        return;
    };
    set_default(s, "restartPolicy", json!("Always"));
    set_default(s, "terminationGracePeriodSeconds", json!(30));
    set_default(s, "dnsPolicy", json!("ClusterFirst"));
    set_default(s, "securityContext", json!({}));
    set_default(s, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                let image = c
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let last = image.rsplit('/').next().unwrap_or("");
                let latest = !last.contains(':') || last.ends_with(":latest");
                if !image.contains('@') {
                    set_default(
                        c,
                        "imagePullPolicy",
                        json!(if latest { "Always" } else { "IfNotPresent" }),
                    );
                } else {
                    set_default(c, "imagePullPolicy", json!("IfNotPresent"));
                }
                set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "terminationMessagePolicy", json!("File"));
                set_default(c, "resources", json!({}));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        set_default(p, "protocol", json!("TCP"));
                    }
                }
                for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                    if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
                        set_default(p, "timeoutSeconds", json!(1));
                        set_default(p, "periodSeconds", json!(10));
                        set_default(p, "successThreshold", json!(1));
                        set_default(p, "failureThreshold", json!(3));
                        if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                            set_default(h, "scheme", json!("HTTP"));
                        }
                    }
                }
            }
        }
    }
    if let Some(vols) = s.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols.iter_mut().filter_map(Value::as_object_mut) {
            for src in ["configMap", "secret"] {
                if let Some(x) = v.get_mut(src).and_then(Value::as_object_mut) {
                    set_default(x, "defaultMode", json!(420));
                }
            }
        }
    }
}

/// Applies the API server's defaults for the built-in workload kinds; `seq` makes a
/// Service's cluster IP unique.
pub fn apply_defaults(group: &str, kind: &str, obj: &mut Value, seq: u64) {
    match (group, kind) {
        ("apps", "Deployment") => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "progressDeadlineSeconds", json!(600));
                set_default(
                    spec,
                    "strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
                );
                if let Some(tpl) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    default_pod_spec(tpl);
                }
            }
        }
        ("apps", "StatefulSet" | "DaemonSet" | "ReplicaSet") | ("batch", "Job") => {
            if let Some(tpl) = obj.pointer_mut("/spec/template/spec") {
                default_pod_spec(tpl);
            }
        }
        ("batch", "CronJob") => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                set_default(spec, "concurrencyPolicy", json!("Allow"));
                set_default(spec, "suspend", json!(false));
                set_default(spec, "successfulJobsHistoryLimit", json!(3));
                set_default(spec, "failedJobsHistoryLimit", json!(1));
            }
            if let Some(tpl) = obj.pointer_mut("/spec/jobTemplate/spec/template/spec") {
                default_pod_spec(tpl);
            }
        }
        ("", "Pod") => {
            if let Some(spec) = obj.get_mut("spec") {
                default_pod_spec(spec);
            }
        }
        ("", "Service") => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                set_default(spec, "type", json!("ClusterIP"));
                set_default(spec, "sessionAffinity", json!("None"));
                let ip = format!("10.96.{}.{}", (seq / 250) % 250, seq % 250 + 2);
                if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
                    set_default(spec, "clusterIP", json!(ip));
                }
                let cip = spec.get("clusterIP").cloned().unwrap_or(json!(ip));
                set_default(spec, "clusterIPs", json!([cip]));
                set_default(spec, "ipFamilies", json!(["IPv4"]));
                set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
                set_default(spec, "internalTrafficPolicy", json!("Cluster"));
                if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        set_default(p, "protocol", json!("TCP"));
                        if let Some(port) = p.get("port").cloned() {
                            set_default(p, "targetPort", port);
                        }
                    }
                }
            }
        }
        ("", "Secret") => {
            // stringData is folded into data (base64), as the API server does.
            if let Some(m) = obj.as_object_mut() {
                if let Some(Value::Object(sd)) = m.remove("stringData") {
                    let data = m.entry("data").or_insert_with(|| json!({}));
                    if let Some(d) = data.as_object_mut() {
                        for (k, v) in sd {
                            let text = match v {
                                Value::String(s) => s,
                                other => other.to_string(),
                            };
                            d.insert(k, json!(b64(text.as_bytes())));
                        }
                    }
                }
                set_default(m, "type", json!("Opaque"));
            }
        }
        _ => {}
    }
}

/// Standard base64.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
