//! Property tests: for random desired/live pairs, the suggested patch applied to live
//! leaves no drift (and the engine says it verified it).

use std::collections::BTreeMap;

use envdrift::diff::{Options, compare};
use envdrift::model::{DriftType, Object, Origin, ResourceKey, Snapshot};
use proptest::prelude::*;
use serde_json::Value;

fn snapshot(v: Value) -> Snapshot {
    let key = ResourceKey {
        group: ResourceKey::group_of(v["apiVersion"].as_str().unwrap()).to_string(),
        kind: v["kind"].as_str().unwrap().to_string(),
        namespace: Some("ns".into()),
        name: "obj".into(),
    };
    let mut objects = BTreeMap::new();
    objects.insert(
        key,
        Object::new(
            v,
            Origin::Live {
                resource_version: None,
            },
        ),
    );
    Snapshot {
        objects,
        ..Snapshot::default()
    }
}

fn check_roundtrip(desired: Value, live: Value) -> Result<(), TestCaseError> {
    let d = snapshot(desired);
    let mut l = snapshot(live);
    let opts = Options::default();
    let result = compare(&d, &l, &opts);
    for drift in &result.drifts {
        prop_assert_eq!(drift.drift_type, DriftType::Modified);
        prop_assert!(
            drift.remedy.verified,
            "not verified: {:?}\n{:#?}",
            drift.remedy.verification_error,
            drift
        );
        let patch: json_patch::Patch =
            serde_json::from_value(drift.remedy.patch.clone().unwrap()).unwrap();
        let obj = l.objects.values_mut().next().unwrap();
        prop_assert!(json_patch::patch(&mut obj.value, &patch).is_ok());
    }
    let again = compare(&d, &l, &opts);
    prop_assert!(again.drifts.is_empty(), "after patch: {:#?}", again.drifts);
    Ok(())
}

#[path = "common/objects.rs"]
mod objects;
use objects::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn random_custom_resources(ds in tree(), de in tree(), ls in tree(), le in tree()) {
        check_roundtrip(custom_resource(ds, de), custom_resource(ls, le))?;
    }

    #[test]
    fn random_deployments(d in deployment_strategy(), l in deployment_strategy()) {
        check_roundtrip(d, l)?;
    }

    #[test]
    fn reordered_keyed_lists_are_not_drift(d in deployment_strategy()) {
        let mut l = d.clone();
        if let Some(cs) = l["spec"]["template"]["spec"]["containers"].as_array_mut() {
            cs.reverse();
            for c in cs.iter_mut() {
                if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
                    env.reverse();
                }
            }
        }
        let result = compare(&snapshot(d), &snapshot(l), &Options::default());
        prop_assert!(result.drifts.is_empty(), "{:#?}", result.drifts);
    }
}
