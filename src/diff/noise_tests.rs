//! Built-in kinds whose live form differs from Git by what the API server and its
//! controllers add: Go-code defaults, controller-owned fields, computed subtrees and
//! scope. Each case is the live object as a real API server returns it.

use crate::DiffResult;
use crate::diff::{Options, compare};
use crate::model::{Cause, Snapshot};
use crate::source::dump::{LoadOptions, load_text};

fn git(text: &str) -> Snapshot {
    load_text(text, "git", &LoadOptions::default())
}

fn live(text: &str) -> Snapshot {
    load_text(
        text,
        "cluster",
        &LoadOptions {
            side: "live".into(),
            ..LoadOptions::default()
        },
    )
}

fn run(desired: &str, live_text: &str) -> DiffResult {
    compare(&git(desired), &live(live_text), &Options::default())
}

#[test]
fn endpoints_and_slices_with_defaulted_protocol_are_no_drift() {
    let desired = r#"
apiVersion: v1
kind: Endpoints
metadata: {name: ext-db, namespace: default}
subsets:
- addresses: [{ip: 10.0.0.5}]
  ports: [{port: 5432, name: pg}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ext-db-1, namespace: default}
addressType: IPv4
endpoints: [{addresses: [10.0.0.5]}]
ports: [{port: 5432}]
"#;
    let lv = r#"
apiVersion: v1
kind: Endpoints
metadata: {name: ext-db, namespace: default, resourceVersion: "812", uid: 0b6c0e52-1f2a-4f43-9a51-2c7f0e1d9a10}
subsets:
- addresses: [{ip: 10.0.0.5}]
  ports: [{port: 5432, name: pg, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ext-db-1, namespace: default, resourceVersion: "813"}
addressType: IPv4
endpoints: [{addresses: [10.0.0.5]}]
ports: [{port: 5432, protocol: TCP, name: ""}]
"#;
    let r = run(desired, lv);
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
    // A real change still shows.
    let r = run(
        desired,
        &lv.replace("protocol: TCP}]\n---", "protocol: UDP}]\n---"),
    );
    assert_eq!(r.drifts.len(), 1, "{:#?}", r.drifts);
    assert_eq!(r.drifts[0].changes[0].path, "/subsets/0/ports/0/protocol");
}

const WEBHOOK_GIT: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: policy
  annotations: {cert-manager.io/inject-ca-from: policy/policy-tls}
webhooks:
- name: validate.policy.example.io
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig:
    service: {name: policy, namespace: policy, path: /validate}
  rules:
  - apiGroups: [apps]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [deployments]
"#;

fn webhook_live(ca_manager: &str, ca: &str) -> String {
    format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: policy
  annotations: {{cert-manager.io/inject-ca-from: policy/policy-tls}}
  resourceVersion: "4711"
  generation: 2
  managedFields:
  - manager: argocd-controller
    operation: Apply
    apiVersion: admissionregistration.k8s.io/v1
    time: "2026-11-30T10:00:00Z"
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata: {{f:annotations: {{f:cert-manager.io/inject-ca-from: {{}}}}}}
      f:webhooks:
        k:{{"name":"validate.policy.example.io"}}:
          .: {{}}
          f:admissionReviewVersions: {{}}
          f:clientConfig: {{f:service: {{f:name: {{}}, f:namespace: {{}}, f:path: {{}}}}}}
          f:name: {{}}
          f:rules: {{}}
          f:sideEffects: {{}}
  - manager: {ca_manager}
    operation: Update
    apiVersion: admissionregistration.k8s.io/v1
    time: "2026-12-01T02:13:00Z"
    fieldsType: FieldsV1
    fieldsV1:
      f:webhooks:
        k:{{"name":"validate.policy.example.io"}}:
          f:clientConfig: {{f:caBundle: {{}}}}
webhooks:
- name: validate.policy.example.io
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  matchPolicy: Equivalent
  namespaceSelector: {{}}
  objectSelector: {{}}
  timeoutSeconds: 10
  clientConfig:
    caBundle: {ca}
    service: {{name: policy, namespace: policy, path: /validate, port: 443}}
  rules:
  - apiGroups: [apps]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [deployments]
    scope: "*"
"#
    )
}

#[test]
fn webhook_defaults_and_injected_ca_bundle_are_no_drift() {
    let r = run(
        WEBHOOK_GIT,
        &webhook_live("cainjector", "LS0tLS1CRUdJTi0tLS0t"),
    );
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
    // The same field set by hand is drift, attributed to the person's tool.
    let r = run(
        WEBHOOK_GIT,
        &webhook_live("kubectl-edit", "LS0tLS1CRUdJTi0tLS0t"),
    );
    assert_eq!(r.drifts.len(), 1, "{:#?} {:?}", r.drifts, r.suppressed);
    let ch = &r.drifts[0].changes;
    assert_eq!(ch.len(), 1, "{ch:#?}");
    assert_eq!(ch[0].path, "/webhooks/0/clientConfig/caBundle");
    assert_eq!(ch[0].cause, Cause::Manual);
    let who = ch[0].attribution.as_ref().expect("attributed");
    assert_eq!(who.manager, "kubectl-edit");
    // A default changed by hand is drift; the defaults themselves never are.
    let by_hand = r#"  - manager: kubectl-edit
    operation: Update
    apiVersion: admissionregistration.k8s.io/v1
    time: "2026-12-02T02:00:00Z"
    fieldsType: FieldsV1
    fieldsV1:
      f:webhooks:
        k:{"name":"validate.policy.example.io"}:
          f:failurePolicy: {}
webhooks:
- name: validate"#;
    let lv = webhook_live("cainjector", "LS0t")
        .replace("failurePolicy: Fail", "failurePolicy: Ignore")
        .replace("webhooks:\n- name: validate", by_hand);
    let r = run(WEBHOOK_GIT, &lv);
    assert_eq!(r.drifts.len(), 1, "{:#?}", r.drifts);
    let ch = &r.drifts[0].changes;
    assert_eq!(ch.len(), 1, "{ch:#?}");
    assert_eq!(ch[0].path, "/webhooks/0/failurePolicy");
    assert_eq!(
        ch[0].attribution.as_ref().map(|a| a.manager.as_str()),
        Some("kubectl-edit")
    );
    // Without managedFields (`kubectl get -o yaml` hides them), the defaults alone decide.
    let bare = |t: String| {
        let start = t.find("  managedFields:").expect("managedFields");
        let end = t.find("webhooks:\n- name").expect("webhooks");
        format!("{}{}", &t[..start], &t[end..])
    };
    let r = run(
        WEBHOOK_GIT,
        &bare(webhook_live("cainjector", "LS0t")).replace("    caBundle: LS0t\n", ""),
    );
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
    let r = run(
        WEBHOOK_GIT,
        &bare(webhook_live("cainjector", "LS0t"))
            .replace("    caBundle: LS0t\n", "")
            .replace("timeoutSeconds: 10", "timeoutSeconds: 30"),
    );
    assert_eq!(r.drifts.len(), 1, "{:#?}", r.drifts);
    assert_eq!(r.drifts[0].changes.len(), 1, "{:#?}", r.drifts[0].changes);
    assert_eq!(r.drifts[0].changes[0].path, "/webhooks/0/timeoutSeconds");
}

#[test]
fn aggregated_cluster_role_rules_belong_to_the_controller() {
    let desired = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: monitoring}
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {rbac.example.com/aggregate-to-monitoring: "true"}
rules: []
"#;
    let lv = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: monitoring
  managedFields:
  - manager: clusterrole-aggregation-controller
    operation: Apply
    apiVersion: rbac.authorization.k8s.io/v1
    fieldsType: FieldsV1
    fieldsV1: {f:rules: {}}
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {rbac.example.com/aggregate-to-monitoring: "true"}
rules:
- apiGroups: [""]
  resources: [pods, services, endpoints]
  verbs: [get, list, watch]
"#;
    let r = run(desired, lv);
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
    // The selector itself is desired state.
    let r = run(
        desired,
        &lv.replace(
            "aggregate-to-monitoring: \"true\"}\nrules",
            "aggregate-to-admin: \"true\"}\nrules",
        ),
    );
    assert_eq!(r.drifts.len(), 1, "{:#?}", r.drifts);
    assert!(
        r.drifts[0]
            .changes
            .iter()
            .all(|c| c.path.starts_with("/aggregationRule/")),
        "{:#?}",
        r.drifts[0].changes
    );
    // Without an aggregationRule, rules are compared as usual.
    let plain = desired.replace(
        "aggregationRule:\n  clusterRoleSelectors:\n  - matchLabels: {rbac.example.com/aggregate-to-monitoring: \"true\"}\n",
        "",
    );
    let plain_live = lv
        .replace(
            "aggregationRule:\n  clusterRoleSelectors:\n  - matchLabels: {rbac.example.com/aggregate-to-monitoring: \"true\"}\n",
            "",
        )
        .replace("clusterrole-aggregation-controller", "kubectl-edit");
    let r = run(&plain, &plain_live);
    assert_eq!(r.drifts.len(), 1, "{:#?}", r.drifts);
}

#[test]
fn cluster_scoped_kind_with_namespace_in_git_matches_live() {
    let desired = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader, namespace: team-a}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get]}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast, namespace: team-a}
provisioner: ebs.csi.aws.com
"#;
    let lv = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader, resourceVersion: "77"}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get]}
"#;
    let r = run(desired, lv);
    // The ClusterRole matched (not missing, not unmanaged); the StorageClass is missing
    // under its real, namespace-less key.
    assert_eq!(r.drifts.len(), 1, "{:#?}", r.drifts);
    let d = &r.drifts[0];
    assert_eq!(d.resource.kind, "StorageClass");
    assert_eq!(d.resource.namespace, None);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("ClusterRole") && n.contains("team-a")),
        "{:?}",
        r.notes
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("StorageClass") && n.contains("team-a")),
        "{:?}",
        r.notes
    );
    // Scope defaults of StorageClass and PriorityClass are no drift.
    let desired = r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast}
provisioner: ebs.csi.aws.com
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
"#;
    let lv = r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast}
provisioner: ebs.csi.aws.com
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
preemptionPolicy: PreemptLowerPriority
"#;
    let r = run(desired, lv);
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
}
