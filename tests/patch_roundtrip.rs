//! Property tests: for random desired/live pairs, the suggested patch applied to live
//! leaves no drift (and the engine says it verified it).

use std::collections::BTreeMap;

use envdrift::diff::{Options, compare};
use envdrift::model::{DriftType, Object, Origin, ResourceKey, Snapshot};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

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

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..50).prop_map(|n| json!(n)),
        "[a-c]{0,3}".prop_map(Value::String),
        prop_oneof![
            Just("1"),
            Just("1000m"),
            Just("500m"),
            Just("1Gi"),
            Just("1024Mi")
        ]
        .prop_map(|s| json!(s)),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-e]", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn custom_resource(spec: Value, extra: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "obj", "namespace": "ns"}, "spec": spec, "data": extra})
}

#[derive(Debug, Clone)]
struct Container {
    name: &'static str,
    image: String,
    env: Vec<(&'static str, String)>,
    ports: Vec<(u16, Option<&'static str>)>,
    privileged: Option<bool>,
}

fn container() -> impl Strategy<Value = Container> {
    (
        prop::sample::select(vec!["web", "sidecar", "proxy", "init"]),
        "[a-c]:[0-2]",
        prop::collection::btree_map(
            prop::sample::select(vec!["A", "B", "C", "D"]),
            "[xy]{0,2}",
            0..4,
        ),
        prop::collection::btree_map(
            prop::sample::select(vec![80u16, 443, 8080, 9090]),
            prop::option::of(prop::sample::select(vec!["TCP", "UDP"])),
            0..3,
        ),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(name, image, env, ports, privileged)| Container {
            name,
            image,
            env: env.into_iter().collect(),
            ports: ports.into_iter().collect(),
            privileged,
        })
}

fn deployment(
    replicas: Option<u8>,
    labels: BTreeMap<String, String>,
    containers: Vec<Container>,
    paused: Option<bool>,
) -> Value {
    let mut seen = std::collections::BTreeSet::new();
    let cs: Vec<Value> = containers
        .into_iter()
        .filter(|c| seen.insert(c.name))
        .map(|c| {
            let mut v = json!({"name": c.name, "image": c.image});
            if !c.env.is_empty() {
                v["env"] = c
                    .env
                    .iter()
                    .map(|(n, val)| json!({"name": n, "value": val}))
                    .collect();
            }
            if !c.ports.is_empty() {
                v["ports"] = c
                    .ports
                    .iter()
                    .map(|(p, proto)| match proto {
                        Some(pr) => json!({"containerPort": p, "protocol": pr}),
                        None => json!({"containerPort": p}),
                    })
                    .collect();
            }
            if let Some(p) = c.privileged {
                v["securityContext"] = json!({"privileged": p});
            }
            v
        })
        .collect();
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "obj", "namespace": "ns", "labels": labels},
        "spec": {"selector": {"matchLabels": {"app": "x"}},
                 "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": cs}}}});
    if let Some(r) = replicas {
        d["spec"]["replicas"] = json!(r);
    }
    if let Some(p) = paused {
        d["spec"]["paused"] = json!(p);
    }
    d
}

fn deployment_strategy() -> impl Strategy<Value = Value> {
    (
        prop::option::of(0u8..5),
        prop::collection::btree_map("[a-c]", "[a-c]{0,2}", 0..3),
        prop::collection::vec(container(), 0..4),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(r, l, c, p)| deployment(r, l, c, p))
}

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
