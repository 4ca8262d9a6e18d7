//! Property test of schema-aware comparison: for a random CRD (a generated structural
//! schema with defaults, map lists, set lists, nested objects, int-or-string fields) and a
//! random custom resource, the live object as the API server would store it (schema
//! defaults applied, map/set list items in another order) is no drift; a random edit of one
//! scalar field in the live object is exactly one change at that field, with a patch that
//! verifies and, applied, leaves no drift.
//!
//! The defaulting here is written from the Kubernetes documentation ("Defaulting" in
//! "Extend the Kubernetes API with CustomResourceDefinitions"), not taken from envdrift:
//! a default applies to an absent field whose parent object exists (also inside list
//! items), and an object default is itself defaulted further.

use envdrift::diff::{Options, compare};
use envdrift::model::{DriftType, Snapshot};
use envdrift::source::dump::{LoadOptions, load_text};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// A small deterministic generator driven by proptest's seed (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        // n is small (a few dozen at most): the modulo bias is irrelevant here.
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Scalar {
    Str,
    Int,
    Bool,
    IntOrString,
}

#[derive(Debug, Clone)]
enum Schema {
    Leaf(Scalar, Option<Value>),
    /// Properties, and whether the object has `default: {}`.
    Object(Vec<(String, Schema)>, bool),
    /// A map list keyed by `name`; the item's other properties.
    MapList(Vec<(String, Schema)>),
    SetList,
    /// A plain (atomic) list of integers, compared by position.
    Atomic,
}

const NAMES: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa",
];

fn scalar_value(rng: &mut Rng, s: Scalar) -> Value {
    match s {
        Scalar::Str => json!(format!("v{}", rng.below(50))),
        Scalar::Int | Scalar::IntOrString => json!(1 + rng.below(500)),
        Scalar::Bool => json!(rng.chance(50)),
    }
}

fn gen_leaf(rng: &mut Rng) -> Schema {
    let s = [Scalar::Str, Scalar::Int, Scalar::Bool, Scalar::IntOrString][rng.below(4)];
    let default = rng.chance(40).then(|| scalar_value(rng, s));
    Schema::Leaf(s, default)
}

fn gen_props(rng: &mut Rng, depth: usize, leaves_only: bool) -> Vec<(String, Schema)> {
    let n = 1 + rng.below(5);
    let mut names: Vec<&str> = NAMES.to_vec();
    let mut out = Vec::new();
    for _ in 0..n {
        let name = names.remove(rng.below(names.len())).to_string();
        let schema = if leaves_only || depth == 0 {
            gen_leaf(rng)
        } else {
            match rng.below(10) {
                0..=4 => gen_leaf(rng),
                5 | 6 => Schema::Object(gen_props(rng, depth - 1, false), rng.chance(50)),
                7 => Schema::MapList(gen_props(rng, 0, true)),
                8 => Schema::SetList,
                _ => Schema::Atomic,
            }
        };
        out.push((name, schema));
    }
    out
}

fn schema_json(s: &Schema) -> Value {
    match s {
        Schema::Leaf(t, d) => {
            let mut m = match t {
                Scalar::Str => json!({"type": "string"}),
                Scalar::Int => json!({"type": "integer"}),
                Scalar::Bool => json!({"type": "boolean"}),
                Scalar::IntOrString => json!({"x-kubernetes-int-or-string": true}),
            };
            if let Some(d) = d {
                m["default"] = d.clone();
            }
            m
        }
        Schema::Object(props, def) => {
            let mut m = json!({"type": "object", "properties": props_json(props)});
            if *def {
                m["default"] = json!({});
            }
            m
        }
        Schema::MapList(props) => {
            let mut p = props_json(props);
            p.insert("name".into(), json!({"type": "string"}));
            json!({
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "required": ["name"], "properties": p},
            })
        }
        Schema::SetList => json!({
            "type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}
        }),
        Schema::Atomic => json!({"type": "array", "items": {"type": "integer"}}),
    }
}

fn props_json(props: &[(String, Schema)]) -> Map<String, Value> {
    props
        .iter()
        .map(|(k, s)| (k.clone(), schema_json(s)))
        .collect()
}

/// A value as a user writes it in Git: each property present or not.
fn gen_value(rng: &mut Rng, s: &Schema) -> Value {
    match s {
        Schema::Leaf(t, _) => scalar_value(rng, *t),
        Schema::Object(props, _) => Value::Object(gen_object(rng, props)),
        Schema::MapList(props) => {
            let n = 1 + rng.below(4);
            let mut names: Vec<&str> = NAMES.to_vec();
            (0..n)
                .map(|_| {
                    let mut item = gen_object(rng, props);
                    let name = names.remove(rng.below(names.len()));
                    item.insert("name".into(), json!(name));
                    Value::Object(item)
                })
                .collect()
        }
        Schema::SetList => {
            let mut names: Vec<&str> = NAMES.to_vec();
            (0..1 + rng.below(4))
                .map(|_| json!(names.remove(rng.below(names.len()))))
                .collect()
        }
        Schema::Atomic => (0..1 + rng.below(4))
            .map(|_| json!(rng.below(100)))
            .collect(),
    }
}

fn gen_object(rng: &mut Rng, props: &[(String, Schema)]) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, s) in props {
        if rng.chance(65) {
            m.insert(k.clone(), gen_value(rng, s));
        }
    }
    m
}

/// The API server's defaulting of `v` (an object with `props`).
fn default_object(v: &mut Map<String, Value>, props: &[(String, Schema)]) {
    for (k, s) in props {
        if !v.contains_key(k) {
            match s {
                Schema::Leaf(_, Some(d)) => {
                    v.insert(k.clone(), d.clone());
                }
                Schema::Object(_, true) => {
                    v.insert(k.clone(), json!({}));
                }
                _ => {}
            }
        }
        match (s, v.get_mut(k)) {
            (Schema::Object(p, _), Some(Value::Object(child))) => default_object(child, p),
            (Schema::MapList(p), Some(Value::Array(items))) => {
                for item in items {
                    if let Value::Object(o) = item {
                        default_object(o, p);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Reorders map and set lists (rotates them by one), as another writer's order would.
fn reorder(v: &mut Value, s: &Schema) {
    match (s, v) {
        (Schema::Object(props, _), Value::Object(m)) => {
            for (k, cs) in props {
                if let Some(c) = m.get_mut(k) {
                    reorder(c, cs);
                }
            }
        }
        (Schema::MapList(props), Value::Array(items)) => {
            items.rotate_left(1);
            for item in items {
                if let Value::Object(o) = item {
                    for (k, cs) in props {
                        if let Some(c) = o.get_mut(k) {
                            reorder(c, cs);
                        }
                    }
                }
            }
        }
        (Schema::SetList, Value::Array(items)) => items.rotate_left(1),
        _ => {}
    }
}

/// JSON Pointers of the scalar leaves of `v` an edit may change (not map keys, not set or
/// atomic list items), with their type.
fn leaves(v: &Value, s: &Schema, at: &str, out: &mut Vec<(String, Scalar)>) {
    match (s, v) {
        (Schema::Leaf(t, _), _) => out.push((at.to_string(), *t)),
        (Schema::Object(props, _), Value::Object(m)) => {
            for (k, cs) in props {
                if let Some(c) = m.get(k) {
                    leaves(c, cs, &format!("{at}/{k}"), out);
                }
            }
        }
        (Schema::MapList(props), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Value::Object(o) = item {
                    for (k, cs) in props {
                        if let Some(c) = o.get(k) {
                            leaves(c, cs, &format!("{at}/{i}/{k}"), out);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

fn edited(v: &Value, t: Scalar) -> Value {
    match (t, v) {
        (Scalar::Bool, Value::Bool(b)) => json!(!b),
        (Scalar::Str, Value::String(s)) => json!(format!("{s}-edited")),
        (_, Value::Number(n)) => json!(n.as_u64().unwrap_or(0) + 1000),
        (_, other) => other.clone(),
    }
}

const CRD_NAME: &str = "widgets.prop.example.io";

fn crd(spec: &Schema) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": "prop.example.io",
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": schema_json(spec), "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                }},
            }],
        },
    })
}

fn cr(spec: Value, live: bool) -> Value {
    let mut metadata = json!({"name": "w", "namespace": "apps"});
    if live {
        metadata["uid"] = json!("6f1c2d7e-3b1a-4f7e-9a0e-5c1d2e3f4a5b");
        metadata["resourceVersion"] = json!("48213");
        metadata["generation"] = json!(1);
        metadata["creationTimestamp"] = json!("2026-12-01T09:00:00Z");
    }
    json!({"apiVersion": "prop.example.io/v1", "kind": "Widget", "metadata": metadata, "spec": spec})
}

fn snapshot(docs: &[Value], side: &str) -> Snapshot {
    let text = docs
        .iter()
        .map(|d| serde_json::to_string(d).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n---\n");
    load_text(
        &text,
        side,
        &LoadOptions {
            side: side.into(),
            default_namespace: (side == "desired").then(|| "default".to_string()),
            ..LoadOptions::default()
        },
    )
}

fn widget_drifts(desired: &Snapshot, live: &Snapshot) -> Vec<envdrift::model::Drift> {
    compare(desired, live, &Options::default())
        .drifts
        .into_iter()
        .filter(|d| d.resource.kind == "Widget")
        .collect()
}

fn check(seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng(seed | 1);
    let spec_schema = Schema::Object(gen_props(&mut rng, 2, false), false);
    let git_spec = gen_value(&mut rng, &spec_schema);
    let mut live_spec = git_spec.clone();
    if let (Schema::Object(props, _), Value::Object(m)) = (&spec_schema, &mut live_spec) {
        default_object(m, props);
    }
    reorder(&mut live_spec, &spec_schema);
    let crd = crd(&spec_schema);
    let desired = snapshot(&[crd.clone(), cr(git_spec.clone(), false)], "desired");
    let live = snapshot(&[crd.clone(), cr(live_spec.clone(), true)], "live");

    let drifts = widget_drifts(&desired, &live);
    prop_assert!(
        drifts.is_empty(),
        "defaulted, reordered live is drift\nschema: {}\ngit: {git_spec}\nlive: {live_spec}\n{:#?}",
        schema_json(&spec_schema),
        drifts[0].changes
    );

    let mut candidates = Vec::new();
    leaves(&live_spec, &spec_schema, "/spec", &mut candidates);
    if candidates.is_empty() {
        return Ok(());
    }
    let (path, t) = candidates[rng.below(candidates.len())].clone();
    let mut live_obj = cr(live_spec.clone(), true);
    let Some(slot) = live_obj.pointer_mut(&path) else {
        return Err(TestCaseError::fail(format!("no {path}")));
    };
    *slot = edited(slot, t);
    let edited_live = snapshot(&[crd, live_obj.clone()], "live");
    let drifts = widget_drifts(&desired, &edited_live);
    prop_assert_eq!(drifts.len(), 1, "edit of {} not found", path);
    let d = &drifts[0];
    prop_assert_eq!(d.drift_type, DriftType::Modified);
    prop_assert_eq!(d.changes.len(), 1, "edit of {}: {:#?}", path, d.changes);
    prop_assert_eq!(&d.changes[0].path, &path);
    prop_assert!(
        d.remedy.verified,
        "not verified: {:?}",
        d.remedy.verification_error
    );
    let patch: json_patch::Patch = serde_json::from_value(
        d.remedy
            .patch
            .clone()
            .ok_or_else(|| TestCaseError::fail("no patch"))?,
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    json_patch::patch(&mut live_obj, &patch).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let patched = snapshot(&[self::crd(&spec_schema), live_obj], "live");
    let after = widget_drifts(&desired, &patched);
    prop_assert!(after.is_empty(), "after patch: {:#?}", after[0].changes);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn defaulted_reordered_cr_is_no_drift_and_one_edit_is_one_change(seed in any::<u64>()) {
        check(seed)?;
    }
}
