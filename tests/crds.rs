//! Real CRDs from public projects (tests/fixtures/crds/, with their licenses and sources in
//! its README): a custom resource that matches Git is no drift although live carries the
//! schema's defaults, status, managedFields and map/set lists in another order; one
//! `kubectl edit` of one field is exactly one change, attributed to `kubectl-edit`, with a
//! patch that tests the keys of the keyed list items on its path, verifies and, applied,
//! leaves no drift.

use std::path::PathBuf;

use envdrift::diff::{Options, compare};
use envdrift::model::{Cause, Drift, DriftType, Snapshot};
use envdrift::source::dump::{LoadOptions, load_text};
use envdrift::source::manifest::parse_manifest_text;
use serde_json::{Map, Value, json};

const FIXTURES: &[(&str, &str)] = &[
    ("cert-manager-certificate", "Certificate"),
    ("argo-rollouts-rollout", "Rollout"),
    ("prometheus-operator-servicemonitor", "ServiceMonitor"),
    ("istio-virtualservice", "VirtualService"),
    ("gateway-api-httproute", "HTTPRoute"),
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/crds")
}

fn read(name: &str) -> String {
    let p = dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn desired(fixture: &str) -> Snapshot {
    let text = format!(
        "{}\n---\n{}",
        read(&format!("{fixture}.crd.yaml")),
        read(&format!("{fixture}.git.yaml"))
    );
    load_text(&text, "git", &LoadOptions::default())
}

fn live_text(fixture: &str, cr: &str) -> Snapshot {
    let text = format!("{}\n---\n{cr}", read(&format!("{fixture}.crd.yaml")));
    load_text(
        &text,
        "cluster",
        &LoadOptions {
            side: "live".into(),
            default_namespace: None,
            ..LoadOptions::default()
        },
    )
}

fn drifts_of(kind: &str, desired: &Snapshot, live: &Snapshot) -> (Vec<Drift>, Vec<String>) {
    let r = compare(desired, live, &Options::default());
    let notes = r.notes.clone();
    let d = r
        .drifts
        .into_iter()
        .filter(|d| d.resource.kind == kind)
        .collect();
    (d, notes)
}

fn live_object(fixture: &str) -> Value {
    let parsed = parse_manifest_text(&read(&format!("{fixture}.live.yaml")), false);
    assert!(
        parsed.problems.is_empty(),
        "{fixture}: {:?}",
        parsed.problems
    );
    assert_eq!(parsed.objects.len(), 1, "{fixture}: one object");
    parsed.objects[0].value.clone()
}

/// Removes `path` (FieldsV1 keys) from a fieldsV1 tree; true when it was there.
fn disown(fields: &mut Value, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let Some(m) = fields.as_object_mut() else {
        return false;
    };
    if rest.is_empty() {
        return m.remove(first).is_some();
    }
    m.get_mut(first).is_some_and(|c| disown(c, rest))
}

fn owned_tree(path: &[String]) -> Value {
    path.iter().rev().fold(json!({}), |inner, k| {
        Value::Object(Map::from_iter([(k.clone(), inner)]))
    })
}

#[test]
fn matching_custom_resources_are_no_drift() {
    for (fixture, kind) in FIXTURES {
        let live = live_text(fixture, &read(&format!("{fixture}.live.yaml")));
        let (drifts, notes) = drifts_of(kind, &desired(fixture), &live);
        assert!(
            drifts.is_empty(),
            "{fixture}: {:#?}",
            drifts.iter().map(|d| &d.changes).collect::<Vec<_>>()
        );
        assert!(
            !notes.iter().any(|n| n.contains("no schema")),
            "{fixture}: {notes:?}"
        );
        // Without its CRD the same pair cannot be compared by schema, and says so.
        let bare = load_text(
            &read(&format!("{fixture}.git.yaml")),
            "git",
            &LoadOptions::default(),
        );
        let r = compare(
            &bare,
            &load_text(
                &read(&format!("{fixture}.live.yaml")),
                "cluster",
                &LoadOptions {
                    side: "live".into(),
                    default_namespace: None,
                    ..LoadOptions::default()
                },
            ),
            &Options::default(),
        );
        // The live side's defaults and list order are noise only the schema explains.
        let noisy = !matches!(*kind, "Certificate" | "VirtualService");
        assert_eq!(
            r.drifts.iter().any(|d| d.resource.kind == *kind),
            noisy,
            "{fixture} without its CRD"
        );
        assert!(
            r.notes
                .iter()
                .any(|n| n.starts_with("no schema for ") && n.contains(kind)),
            "{fixture}: {:?}",
            r.notes
        );
    }
}

#[test]
fn one_kubectl_edit_is_one_attributed_change_with_a_verified_patch() {
    for (fixture, kind) in FIXTURES {
        let edit: Value = serde_json::from_str(&read(&format!("{fixture}.edit.json")))
            .unwrap_or_else(|e| panic!("{fixture}.edit.json: {e}"));
        let path = edit["live_path"].as_str().expect("live_path");
        let owned: Vec<String> = edit["owned"]
            .as_array()
            .expect("owned")
            .iter()
            .map(|v| v.as_str().expect("owned key").to_string())
            .collect();
        let mut obj = live_object(fixture);
        let slot = obj
            .pointer_mut(path)
            .unwrap_or_else(|| panic!("{fixture}: no {path}"));
        assert_eq!(*slot, edit["old"], "{fixture}: old value at {path}");
        *slot = edit["new"].clone();
        // What the API server records for the edit: kubectl-edit now owns the field, and
        // the applier no longer does.
        let api_version = obj["apiVersion"].clone();
        let mf = obj["metadata"]["managedFields"]
            .as_array_mut()
            .expect("managedFields");
        for e in mf.iter_mut() {
            if e["manager"] == "argocd-controller" {
                disown(&mut e["fieldsV1"], &owned);
            }
        }
        mf.push(json!({
            "apiVersion": api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": owned_tree(&owned),
            "manager": "kubectl-edit",
            "operation": "Update",
            "time": "2026-12-02T02:14:00Z",
        }));
        let text = serde_json::to_string(&obj).expect("json");
        let (drifts, _) = drifts_of(kind, &desired(fixture), &live_text(fixture, &text));
        assert_eq!(drifts.len(), 1, "{fixture}");
        let d = &drifts[0];
        assert_eq!(d.drift_type, DriftType::Modified, "{fixture}");
        assert_eq!(d.changes.len(), 1, "{fixture}: {:#?}", d.changes);
        let c = &d.changes[0];
        assert_eq!(c.path, path, "{fixture}");
        assert_eq!(
            c.field,
            edit["field"].as_str().unwrap_or_default(),
            "{fixture}"
        );
        assert_eq!(c.cause, Cause::Manual, "{fixture}");
        assert_eq!(
            c.attribution.as_ref().map(|a| a.manager.as_str()),
            Some("kubectl-edit"),
            "{fixture}"
        );
        assert!(
            d.remedy.verified,
            "{fixture}: {:?}",
            d.remedy.verification_error
        );
        // The edited item's index was found by key: the patch tests every keyed item's key
        // on the way (a list reordered since makes the patch fail, not edit another item).
        let ops = d.remedy.patch.clone().expect("patch");
        let tests: Vec<Value> = ops
            .as_array()
            .expect("ops")
            .iter()
            .filter(|o| o["op"] == "test")
            .map(|o| json!([o["path"], o["value"]]))
            .collect();
        assert_eq!(
            Value::Array(tests),
            edit["key_tests"],
            "{fixture}: key tests of {ops}"
        );
        let patch: json_patch::Patch = serde_json::from_value(ops).expect("RFC 6902");
        json_patch::patch(&mut obj, &patch).unwrap_or_else(|e| panic!("{fixture}: {e}"));
        let text = serde_json::to_string(&obj).expect("json");
        let (after, _) = drifts_of(kind, &desired(fixture), &live_text(fixture, &text));
        assert!(
            after.is_empty(),
            "{fixture}: after the patch {:#?}",
            after[0].changes
        );
    }
}
