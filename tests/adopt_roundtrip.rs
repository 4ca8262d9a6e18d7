//! Property tests of adopt-into-Git edits: for random desired/live pairs, the desired
//! object written as YAML is edited by [`adopt_text`]; the edited text must parse, and when
//! every change was made as an edit (no notes), it must compare clean against live. The
//! editor must never panic, whatever the input.

use std::collections::BTreeMap;

use envdrift::diff::{Options, compare};
use envdrift::model::DriftType;
use envdrift::source::adopt::{adopt_text, to_block_yaml};
use envdrift::source::dump::{LoadOptions, load_text};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// `indented`: sequences indented under their key (as people write them, and as
/// [`to_block_yaml`] emits) instead of serde-saphyr's indentless style.
fn check_adopt(
    desired: Value,
    live: Value,
    comment: bool,
    indented: bool,
) -> Result<(), TestCaseError> {
    let mut text = if indented {
        to_block_yaml(&desired)
    } else {
        serde_saphyr::to_string(&desired).unwrap()
    };
    if comment {
        // comments before, inside and after the document must survive
        text = format!(
            "# head\n{}",
            text.replace("\nspec:", "\n# about spec\nspec:")
        );
        text.push_str("# tail\n");
    }
    let opts = LoadOptions::default();
    let d = load_text(&text, "m.yaml", &opts);
    prop_assert!(d.errors.is_empty(), "{:?}\n{}", d.errors, text);
    let live_opts = LoadOptions {
        side: "live".into(),
        default_namespace: None,
        ..LoadOptions::default()
    };
    let l = load_text(&serde_json::to_string(&live).unwrap(), "live", &live_opts);
    let result = compare(&d, &l, &Options::default());
    for drift in result
        .drifts
        .iter()
        .filter(|x| x.drift_type == DriftType::Modified)
    {
        let Ok((new, notes)) = adopt_text(&text, 1, drift) else {
            continue;
        };
        let d2 = load_text(&new, "m.yaml", &opts);
        prop_assert!(
            d2.errors.is_empty(),
            "edited text does not parse: {:?}\n--- before\n{}\n--- after\n{}",
            d2.errors,
            text,
            new
        );
        if comment {
            prop_assert!(
                new.starts_with("# head\n") && new.contains("# tail\n"),
                "{}",
                new
            );
        }
        if notes.is_empty() {
            let again = compare(&d2, &l, &Options::default());
            let left: Vec<_> = again
                .drifts
                .iter()
                .filter(|x| x.drift_type == DriftType::Modified)
                .collect();
            prop_assert!(
                left.is_empty(),
                "still drifting: {:#?}\n--- before\n{}\n--- after\n{}",
                left,
                text,
                new
            );
        }
    }
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
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn random_custom_resources(ds in tree(), de in tree(), ls in tree(), le in tree(), c in any::<bool>(), i in any::<bool>()) {
        check_adopt(custom_resource(ds, de), custom_resource(ls, le), c, i)?;
    }

    #[test]
    fn random_deployments(d in deployment_strategy(), l in deployment_strategy(), c in any::<bool>(), i in any::<bool>()) {
        check_adopt(d, l, c, i)?;
    }
}
