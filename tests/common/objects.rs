//! Proptest strategies for random Kubernetes-like objects, shared by the round-trip
//! property tests (`patch_roundtrip.rs`, `adopt_roundtrip.rs`).

#![allow(dead_code, reason = "each test binary uses part of the strategies")]

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

pub fn scalar() -> impl Strategy<Value = Value> {
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

pub fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-e]", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

pub fn custom_resource(spec: Value, extra: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "obj", "namespace": "ns"}, "spec": spec, "data": extra})
}

#[derive(Debug, Clone)]
pub struct Container {
    name: &'static str,
    image: String,
    env: Vec<(&'static str, String)>,
    ports: Vec<(u16, Option<&'static str>)>,
    privileged: Option<bool>,
}

pub fn container() -> impl Strategy<Value = Container> {
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

pub fn deployment(
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

pub fn deployment_strategy() -> impl Strategy<Value = Value> {
    (
        prop::option::of(0u8..5),
        prop::collection::btree_map("[a-c]", "[a-c]{0,2}", 0..3),
        prop::collection::vec(container(), 0..4),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(r, l, c, p)| deployment(r, l, c, p))
}
