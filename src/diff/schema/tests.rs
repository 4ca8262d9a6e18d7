use serde_json::{Value, json};

use super::*;
use crate::diff::{Options, compare};
use crate::source::dump::{LoadOptions, load_text};

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gateways.edge.example.io}
spec:
  group: edge.example.io
  scope: Namespaced
  names: {kind: Gateway, plural: gateways}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              replicas: {type: integer, default: 2}
              tls:
                type: object
                default: {}
                properties:
                  mode: {type: string, default: SIMPLE}
              listeners:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  properties:
                    name: {type: string}
                    port: {x-kubernetes-int-or-string: true}
                    protocol: {type: string, default: HTTP}
              hosts:
                type: array
                x-kubernetes-list-type: set
                items: {type: string}
              memory:
                x-kubernetes-int-or-string: true
                pattern: '^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$'
              extra:
                type: object
                x-kubernetes-preserve-unknown-fields: true
"#;

const GIT: &str = r#"
apiVersion: edge.example.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  listeners:
  - {name: a, port: 80}
  - {name: b, port: "443"}
  hosts: [x.example.io, y.example.io]
  memory: 1Gi
  extra: {anything: [1, 2]}
"#;

fn live(body: &str) -> crate::model::Snapshot {
    load_text(
        body,
        "cluster",
        &LoadOptions {
            side: "live".into(),
            ..LoadOptions::default()
        },
    )
}

fn first(text: &str) -> Value {
    let s = load_text(text, "git", &LoadOptions::default());
    s.objects.values().next().expect("one object").value.clone()
}

fn desired() -> crate::model::Snapshot {
    load_text(
        &format!("{CRD}\n---\n{GIT}"),
        "git",
        &LoadOptions::default(),
    )
}

const LIVE_SAME: &str = r#"
apiVersion: edge.example.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  replicas: 2
  tls: {mode: SIMPLE}
  listeners:
  - {name: b, port: 443, protocol: HTTP}
  - {name: a, port: 80, protocol: HTTP}
  hosts: [y.example.io, x.example.io]
  memory: 1024Mi
  extra: {anything: [1, 2]}
"#;

fn with_crd(live_cr: &str) -> String {
    format!("{CRD}\n---\n{live_cr}")
}

#[test]
fn bundled_set_knows_built_in_lists_and_scope() {
    assert!(bundled_knows("apps", "Deployment"));
    assert!(!bundled_release().is_empty());
    let d = builtin("apps", "Deployment");
    assert_eq!(d.source, SchemaSource::Builtin);
    assert_eq!(d.namespaced, Some(true));
    let c = ["spec", "template", "spec", "containers"]
        .iter()
        .try_fold(&d.node, |n, k| n.child(k))
        .unwrap();
    assert!(matches!(c.list, ListType::Map([("name", None)])));
    // From OpenAPI only (not in the hand table): EndpointSlice ports, webhooks by name.
    let w = builtin(
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    );
    assert_eq!(w.namespaced, Some(false));
    assert!(matches!(
        w.node.child("webhooks").unwrap().list,
        ListType::Map([("name", None)])
    ));
    let ns = builtin("", "Namespace");
    assert_eq!(ns.namespaced, Some(false));
    assert_eq!(
        builtin("example.com", "Widget").source,
        SchemaSource::Unknown
    );
}

#[test]
fn crd_schema_features() {
    let crd = first(CRD);
    let (kinds, errors) = crd_schemas(&crd);
    assert!(errors.is_empty(), "{errors:?}");
    let (g, k, s) = &kinds[0];
    assert_eq!((g.as_str(), k.as_str()), ("edge.example.io", "Gateway"));
    assert_eq!(s.namespaced, Some(true));
    let spec = s.node.child("spec").unwrap();
    assert!(matches!(
        spec.child("listeners").unwrap().list,
        ListType::Map([("name", None)])
    ));
    assert_eq!(spec.child("hosts").unwrap().list, ListType::Set);
    assert_eq!(spec.child("memory").unwrap().scalar, ScalarType::Quantity);
    let port = spec
        .child("listeners")
        .unwrap()
        .item()
        .unwrap()
        .child("port");
    assert_eq!(port.unwrap().scalar, ScalarType::IntOrString);
    assert!(spec.child("extra").unwrap().preserve_unknown);
    // Nested defaults: the object default, then its children's.
    let mut v = json!({"spec": {"listeners": [{"name": "a"}]}});
    assert!(apply_defaults(&mut v, &s.node));
    assert_eq!(
        v,
        json!({"spec": {"replicas": 2, "tls": {"mode": "SIMPLE"},
                        "listeners": [{"name": "a", "protocol": "HTTP"}]}})
    );
}

#[test]
fn malformed_crd_schema_is_named_and_skipped() {
    let bad = CRD.replace("x-kubernetes-list-type: set", "x-kubernetes-list-type: bag");
    let crd = first(&bad);
    let (kinds, errors) = crd_schemas(&crd);
    assert!(kinds.is_empty());
    assert_eq!(errors[0].crd, "gateways.edge.example.io");
    assert_eq!(
        errors[0].path,
        "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/hosts/x-kubernetes-list-type"
    );
    let desired = load_text(
        &format!("{bad}\n---\n{GIT}"),
        "git",
        &LoadOptions::default(),
    );
    let r = compare(&desired, &live(LIVE_SAME), &Options::default());
    assert!(r.notes.iter().any(|n| n.contains("gateways.edge.example.io")
        && n.contains("x-kubernetes-list-type")), "{:?}", r.notes);
    assert!(
        r.notes
            .iter()
            .any(|n| n == "no schema for Gateway.edge.example.io: lists compared by position"),
        "{:?}",
        r.notes
    );
}

#[test]
fn defaulted_reordered_cr_is_no_drift() {
    let r = compare(&desired(), &live(&with_crd(LIVE_SAME)), &Options::default());
    let gw: Vec<_> = r
        .drifts
        .iter()
        .filter(|d| d.resource.kind == "Gateway")
        .collect();
    assert!(gw.is_empty(), "{:#?}", gw[0].changes);
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    // Live-only CRD (not in Git) is used too.
    let git_only_cr = load_text(GIT, "git", &LoadOptions::default());
    let r = compare(
        &git_only_cr,
        &live(&with_crd(LIVE_SAME)),
        &Options::default(),
    );
    assert!(r.drifts.iter().all(|d| d.resource.kind != "Gateway"));
}

#[test]
fn one_list_item_edit_is_one_change_with_verified_patch() {
    let edited = LIVE_SAME.replace(
        "{name: a, port: 80, protocol: HTTP}",
        "{name: a, port: 8080, protocol: HTTP}",
    );
    let r = compare(&desired(), &live(&with_crd(&edited)), &Options::default());
    let gw: Vec<_> = r
        .drifts
        .iter()
        .filter(|d| d.resource.kind == "Gateway")
        .collect();
    assert_eq!(gw.len(), 1);
    assert_eq!(gw[0].changes.len(), 1, "{:#?}", gw[0].changes);
    assert_eq!(gw[0].changes[0].path, "/spec/listeners/1/port");
    assert!(
        gw[0].remedy.verified,
        "{:?}",
        gw[0].remedy.verification_error
    );
    // A defaulted field changed live: the patch sets the default back, never removes it.
    let edited = LIVE_SAME.replace("tls: {mode: SIMPLE}", "tls: {mode: MUTUAL}");
    let r = compare(&desired(), &live(&with_crd(&edited)), &Options::default());
    let gw = r
        .drifts
        .iter()
        .find(|d| d.resource.kind == "Gateway")
        .unwrap();
    let patch: &Value = gw.remedy.patch.as_ref().unwrap();
    assert_eq!(
        patch,
        &json!([{"op": "replace", "path": "/spec/tls/mode", "value": "SIMPLE"}])
    );
    assert!(gw.remedy.verified);
}

#[test]
fn secret_and_configmap_blank_values() {
    let git = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\ndata: {A: '', B: x}\n";
    let lv = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\ndata: {A: null, B: x}\n";
    let r = compare(
        &load_text(git, "git", &LoadOptions::default()),
        &live(lv),
        &Options::default(),
    );
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
    let lv =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\ndata: {B: x}\n";
    let r = compare(
        &load_text(git, "git", &LoadOptions::default()),
        &live(lv),
        &Options::default(),
    );
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
}

#[test]
fn embedded_resource_metadata_follows_object_rules() {
    let crd = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: bundles.edge.example.io}
spec:
  group: edge.example.io
  scope: Namespaced
  names: {kind: Bundle, plural: bundles}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              object:
                type: object
                x-kubernetes-embedded-resource: true
                x-kubernetes-preserve-unknown-fields: true
"#;
    let git = r#"
apiVersion: edge.example.io/v1
kind: Bundle
metadata: {name: b, namespace: default}
spec:
  object:
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: settings}
    data: {mode: fast}
"#;
    // What controllers write back into embedded objects: server metadata.
    let lv = r#"
apiVersion: edge.example.io/v1
kind: Bundle
metadata: {name: b, namespace: default, resourceVersion: "9"}
spec:
  object:
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: settings
      creationTimestamp: null
      uid: 2f1e0c4a-8d3b-4c1e-9f7a-6b5d4c3b2a19
      resourceVersion: "118"
    data: {mode: fast}
"#;
    let desired = load_text(
        &format!("{crd}\n---\n{git}"),
        "git",
        &LoadOptions::default(),
    );
    let r = compare(
        &desired,
        &live(&format!("{crd}\n---\n{lv}")),
        &Options::default(),
    );
    let b: Vec<_> = r
        .drifts
        .iter()
        .filter(|d| d.resource.kind == "Bundle")
        .collect();
    assert!(b.is_empty(), "{:#?}", b[0].changes);
    // Without the marker the same metadata is compared as plain data.
    let plain = crd.replace("x-kubernetes-embedded-resource: true\n", "");
    let desired = load_text(
        &format!("{plain}\n---\n{git}"),
        "git",
        &LoadOptions::default(),
    );
    let r = compare(
        &desired,
        &live(&format!("{plain}\n---\n{lv}")),
        &Options::default(),
    );
    assert!(r.drifts.iter().any(|d| d.resource.kind == "Bundle"));
    // A change inside the embedded object is one change.
    let edited = lv.replace("data: {mode: fast}", "data: {mode: slow}");
    let desired = load_text(
        &format!("{crd}\n---\n{git}"),
        "git",
        &LoadOptions::default(),
    );
    let r = compare(
        &desired,
        &live(&format!("{crd}\n---\n{edited}")),
        &Options::default(),
    );
    let b: Vec<_> = r
        .drifts
        .iter()
        .filter(|d| d.resource.kind == "Bundle")
        .collect();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].changes.len(), 1, "{:#?}", b[0].changes);
    assert_eq!(b[0].changes[0].path, "/spec/object/data/mode");
}
