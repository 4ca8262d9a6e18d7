//! Engine tests on realistic objects: live objects as an API server returns them
//! (defaults, managedFields, status, last-applied) against the minimal manifests they were
//! applied from; then one real change at a time, each with the managedFields entry the
//! real kubectl command leaves behind.

use envdrift::diff::{DiffResult, Options, compare};
use envdrift::model::{Category, Cause, ChangeOp, DriftType, ResourceKey, Severity, Snapshot};
use envdrift::source::dump::{LoadOptions, load_paths};
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/realistic");

fn load(file: &str, side: &str) -> Snapshot {
    let opts = LoadOptions {
        side: side.into(),
        default_namespace: if side == "desired" {
            Some("default".into())
        } else {
            None
        },
        ..LoadOptions::default()
    };
    let snap = load_paths(&[format!("{FIXTURES}/{file}").into()], &opts, &|_| {});
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    snap
}

fn key(group: &str, kind: &str, name: &str) -> ResourceKey {
    ResourceKey {
        group: group.into(),
        kind: kind.into(),
        namespace: Some("shop".into()),
        name: name.into(),
    }
}

fn obj<'a>(snap: &'a mut Snapshot, k: &ResourceKey) -> &'a mut Value {
    &mut snap.objects.get_mut(k).expect("fixture object").value
}

/// Adds a managedFields entry for `manager` owning `fields` and removes those leaves from
/// the other entries, as the API server does when ownership moves.
fn take_ownership(v: &mut Value, manager: &str, subresource: Option<&str>, fields: Value) {
    fn remove_leaves(entry: &mut Value, fields: &Value) {
        let (Some(e), Some(f)) = (entry.as_object_mut(), fields.as_object()) else {
            return;
        };
        for (k, sub) in f {
            let is_leaf = sub.as_object().is_none_or(serde_json::Map::is_empty);
            if is_leaf {
                e.remove(k);
            } else if let Some(child) = e.get_mut(k) {
                remove_leaves(child, sub);
            }
        }
    }
    let list = v["metadata"]["managedFields"]
        .as_array_mut()
        .expect("managedFields");
    for e in list.iter_mut() {
        remove_leaves(&mut e["fieldsV1"], &fields);
    }
    let mut entry = json!({"apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": fields,
        "manager": manager, "operation": "Update", "time": "2026-11-20T02:14:00Z"});
    if let Some(s) = subresource {
        entry["subresource"] = json!(s);
    }
    list.push(entry);
}

fn run(desired: &Snapshot, live: &Snapshot) -> DiffResult {
    compare(desired, live, &Options::default())
}

/// Applies every drift's patch to the live side and checks the result is clean.
fn assert_patches_fix(desired: &Snapshot, live: &Snapshot, result: &DiffResult) {
    let mut patched = live.clone();
    for d in &result.drifts {
        if d.drift_type != DriftType::Modified {
            continue;
        }
        assert!(
            d.remedy.verified,
            "{}: {:?}",
            d.resource, d.remedy.verification_error
        );
        let k = ResourceKey {
            group: ResourceKey::group_of(&d.resource.api_version).to_string(),
            kind: d.resource.kind.clone(),
            namespace: d.resource.namespace.clone(),
            name: d.resource.name.clone(),
        };
        if d.remedy.redacted {
            continue; // placeholders instead of Secret values: verified inside the engine
        }
        let p: json_patch::Patch = serde_json::from_value(d.remedy.patch.clone().unwrap()).unwrap();
        json_patch::patch(&mut patched.objects.get_mut(&k).unwrap().value, &p).unwrap();
    }
    let again = run(desired, &patched);
    let left: Vec<_> = again
        .drifts
        .iter()
        .filter(|d| d.drift_type == DriftType::Modified && !d.remedy.redacted)
        .collect();
    assert!(
        left.is_empty(),
        "still drifting after the patches: {left:#?}"
    );
}

struct Expect {
    path: &'static str,
    op: ChangeOp,
    category: Category,
    severity: Severity,
    manager: Option<&'static str>,
    cause: Cause,
}

fn assert_single_change(result: &DiffResult, k: &ResourceKey, e: Expect) {
    assert_eq!(result.drifts.len(), 1, "{:#?}", result.drifts);
    let d = &result.drifts[0];
    assert_eq!(d.resource.name, k.name);
    assert_eq!(d.resource.kind, k.kind);
    assert_eq!(d.drift_type, DriftType::Modified);
    assert_eq!(d.changes.len(), 1, "{:#?}", d.changes);
    let c = &d.changes[0];
    assert_eq!(c.path, e.path);
    assert_eq!(c.op, e.op);
    assert_eq!(c.category, e.category);
    assert_eq!(c.severity, e.severity);
    assert_eq!(d.severity, e.severity);
    assert_eq!(
        c.attribution.as_ref().map(|a| a.manager.as_str()),
        e.manager
    );
    assert_eq!(c.cause, e.cause);
    // Patches with Secret placeholders need the value first: never "verified".
    assert_eq!(
        d.remedy.verified, !d.remedy.redacted,
        "{:?}",
        d.remedy.verification_error
    );
    assert!(
        d.remedy.kubectl.starts_with("kubectl patch "),
        "{}",
        d.remedy.kubectl
    );
}

#[test]
fn realistic_live_objects_match_their_minimal_manifests() {
    let desired = load("desired.yaml", "desired");
    let live = load("live.yaml", "live");
    let result = run(&desired, &live);
    assert!(result.drifts.is_empty(), "{:#?}", result.drifts);
    assert_eq!(result.compared, desired.objects.len());
    assert!(result.suppressed.defaults > 20, "{:?}", result.suppressed);
}

#[test]
fn kubectl_edit_of_an_image() {
    let desired = load("desired.yaml", "desired");
    let mut live = load("live.yaml", "live");
    let k = key("apps", "Deployment", "web");
    let v = obj(&mut live, &k);
    v["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("registry.example.com/shop/web:2.3.2-debug");
    take_ownership(
        v,
        "kubectl-edit",
        None,
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
        "k:{\"name\":\"web\"}": {"f:image": {}}}}}}}),
    );
    let result = run(&desired, &live);
    assert_single_change(
        &result,
        &k,
        Expect {
            path: "/spec/template/spec/containers/0/image",
            op: ChangeOp::Changed,
            category: Category::Image,
            severity: Severity::High,
            manager: Some("kubectl-edit"),
            cause: Cause::Manual,
        },
    );
    let c = &result.drifts[0].changes[0];
    assert_eq!(c.field, "spec.template.spec.containers[name=web].image");
    assert_eq!(c.desired, json!("registry.example.com/shop/web:2.3.1"));
    assert_patches_fix(&desired, &live, &result);
}

#[test]
fn kubectl_scale_of_replicas() {
    let desired = load("desired.yaml", "desired");
    let mut live = load("live.yaml", "live");
    let k = key("apps", "Deployment", "web");
    let v = obj(&mut live, &k);
    v["spec"]["replicas"] = json!(5);
    take_ownership(
        v,
        "kubectl-scale",
        Some("scale"),
        json!({"f:spec": {"f:replicas": {}}}),
    );
    let result = run(&desired, &live);
    assert_single_change(
        &result,
        &k,
        Expect {
            path: "/spec/replicas",
            op: ChangeOp::Changed,
            category: Category::Scaling,
            severity: Severity::Medium,
            manager: Some("kubectl-scale"),
            cause: Cause::Manual,
        },
    );
    assert_patches_fix(&desired, &live, &result);
}

#[test]
fn hpa_scaling_is_not_drift() {
    let desired = load("desired.yaml", "desired");
    let mut live = load("live.yaml", "live");
    let k = key("apps", "Deployment", "web");
    let v = obj(&mut live, &k);
    v["spec"]["replicas"] = json!(7);
    take_ownership(
        v,
        "kube-controller-manager",
        Some("scale"),
        json!({"f:spec": {"f:replicas": {}}}),
    );
    let result = run(&desired, &live);
    assert!(result.drifts.is_empty(), "{:#?}", result.drifts);
    assert_eq!(result.suppressed.controller, 1);
}

#[test]
fn kubectl_edit_adds_an_env_var() {
    let desired = load("desired.yaml", "desired");
    let mut live = load("live.yaml", "live");
    let k = key("apps", "Deployment", "web");
    let v = obj(&mut live, &k);
    v["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "DEBUG", "value": "1"}));
    take_ownership(
        v,
        "kubectl-edit",
        None,
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
        "k:{\"name\":\"web\"}": {"f:env": {"k:{\"name\":\"DEBUG\"}": {".": {}, "f:name": {}, "f:value": {}}}}}}}}}),
    );
    let result = run(&desired, &live);
    assert_single_change(
        &result,
        &k,
        Expect {
            path: "/spec/template/spec/containers/0/env/2",
            op: ChangeOp::Added,
            category: Category::ConfigData,
            severity: Severity::Medium,
            manager: Some("kubectl-edit"),
            cause: Cause::Manual,
        },
    );
    let c = &result.drifts[0].changes[0];
    assert_eq!(c.live, json!({"name": "DEBUG", "value": "1"}));
    assert_eq!(
        c.field,
        "spec.template.spec.containers[name=web].env[name=DEBUG]"
    );
    // The removal is guarded by tests of the container's and of the item's key.
    let ops = result.drifts[0].remedy.patch.clone().unwrap();
    assert_eq!(
        ops,
        json!([
            {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "web"},
            {"op": "test", "path": "/spec/template/spec/containers/0/env/2/name", "value": "DEBUG"},
            {"op": "remove", "path": "/spec/template/spec/containers/0/env/2"}
        ])
    );
    assert_patches_fix(&desired, &live, &result);
}

#[test]
fn privileged_container() {
    let desired = load("desired.yaml", "desired");
    let mut live = load("live.yaml", "live");
    let k = key("apps", "Deployment", "web");
    let v = obj(&mut live, &k);
    v["spec"]["template"]["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    take_ownership(
        v,
        "kubectl-edit",
        None,
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
        "k:{\"name\":\"web\"}": {"f:securityContext": {".": {}, "f:privileged": {}}}}}}}}),
    );
    let result = run(&desired, &live);
    assert_single_change(
        &result,
        &k,
        Expect {
            path: "/spec/template/spec/containers/0/securityContext/privileged",
            op: ChangeOp::Added,
            category: Category::SecurityContext,
            severity: Severity::Critical,
            manager: Some("kubectl-edit"),
            cause: Cause::Manual,
        },
    );
    assert_patches_fix(&desired, &live, &result);
}

#[test]
fn removed_port() {
    let desired = load("desired.yaml", "desired");
    let mut live = load("live.yaml", "live");
    let k = key("apps", "Deployment", "web");
    let v = obj(&mut live, &k);
    v["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array_mut()
        .unwrap()
        .remove(1);
    // kubectl edit removing a port: ownership of the item goes away, kubectl-edit writes last.
    take_ownership(
        v,
        "kubectl-edit",
        None,
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
        "k:{\"name\":\"web\"}": {"f:ports": {"k:{\"containerPort\":9090,\"protocol\":\"TCP\"}": {}}}}}}}}),
    );
    // The edit entry owns nothing any more (the item is gone).
    let n = v["metadata"]["managedFields"].as_array().unwrap().len();
    v["metadata"]["managedFields"][n - 1]["fieldsV1"] = json!({});
    let result = run(&desired, &live);
    assert_single_change(
        &result,
        &k,
        Expect {
            path: "/spec/template/spec/containers/0/ports/1",
            op: ChangeOp::Removed,
            category: Category::Networking,
            severity: Severity::Medium,
            manager: Some("kubectl-edit"),
            cause: Cause::Manual,
        },
    );
    // Appended to the ports of the container found by name, which is tested first.
    let ops = result.drifts[0].remedy.patch.clone().unwrap();
    assert_eq!(
        ops[0],
        json!({"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "web"})
    );
    assert_eq!(ops[1]["op"], "add");
    assert_eq!(ops[1]["path"], "/spec/template/spec/containers/0/ports/-");
    assert_patches_fix(&desired, &live, &result);
}

#[test]
fn added_rbac_verb() {
    let desired = load("desired.yaml", "desired");
    let mut live = load("live.yaml", "live");
    let k = key("rbac.authorization.k8s.io", "Role", "web-reader");
    let v = obj(&mut live, &k);
    v["rules"][0]["verbs"]
        .as_array_mut()
        .unwrap()
        .push(json!("delete"));
    take_ownership(v, "kubectl-patch", None, json!({"f:rules": {}}));
    let result = run(&desired, &live);
    assert_single_change(
        &result,
        &k,
        Expect {
            path: "/rules/0/verbs",
            op: ChangeOp::Changed,
            category: Category::Rbac,
            severity: Severity::Critical,
            manager: Some("kubectl-patch"),
            cause: Cause::Manual,
        },
    );
    assert_patches_fix(&desired, &live, &result);
}

#[test]
fn reordered_rbac_verbs_are_not_drift() {
    let desired = load("desired.yaml", "desired");
    let mut live = load("live.yaml", "live");
    let k = key("rbac.authorization.k8s.io", "Role", "web-reader");
    obj(&mut live, &k)["rules"][0]["verbs"] = json!(["watch", "get", "list"]);
    assert!(run(&desired, &live).drifts.is_empty());
}

#[test]
fn secret_change_is_hashed_everywhere() {
    let desired = load("desired.yaml", "desired");
    let mut live = load("live.yaml", "live");
    let k = key("", "Secret", "web-db");
    // Live was changed to "leaked-new-value" (base64) by kubectl edit; re-redact as a load would.
    let v = obj(&mut live, &k);
    v["data"]["password"] = json!(envdrift::redact::hash_bytes(b"leaked-new-value"));
    take_ownership(
        v,
        "kubectl-edit",
        None,
        json!({"f:data": {"f:password": {}}}),
    );
    let result = run(&desired, &live);
    assert_single_change(
        &result,
        &k,
        Expect {
            path: "/data/password",
            op: ChangeOp::Changed,
            category: Category::SecretData,
            severity: Severity::High,
            manager: Some("kubectl-edit"),
            cause: Cause::Manual,
        },
    );
    let d = &result.drifts[0];
    assert!(d.remedy.redacted);
    assert!(
        !d.remedy.verified,
        "a patch with placeholders is never verified"
    );
    assert!(
        d.remedy
            .verification_error
            .as_deref()
            .is_some_and(|e| e.starts_with("needs the value")),
        "{:?}",
        d.remedy.verification_error
    );
    let c = &d.changes[0];
    assert!(c.desired.as_str().unwrap().starts_with("sha256:"));
    let everything = format!("{:?}", result.drifts);
    assert!(!everything.contains("s3cr3t-value"));
    assert!(!everything.contains("czNjcjN0LXZhbHVl"));
}

#[test]
fn deleted_service_is_missing_and_new_configmap_unmanaged() {
    let desired = load("desired.yaml", "desired");
    let mut live = load("live.yaml", "live");
    live.objects.remove(&key("", "Service", "web"));
    let extra = key("", "ConfigMap", "debug-flags");
    live.objects.insert(
        extra.clone(),
        envdrift::model::Object::new(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "debug-flags",
                "namespace": "shop", "managedFields": [{"manager": "kubectl-create", "operation": "Update",
                "time": "2026-11-20T02:00:00Z", "fieldsV1": {"f:data": {".": {}, "f:X": {}}}}]},
                "data": {"X": "1"}}),
            envdrift::model::Origin::Live { resource_version: None },
        ),
    );
    let result = run(&desired, &live);
    assert_eq!(result.drifts.len(), 2, "{:#?}", result.drifts);
    let missing = result
        .drifts
        .iter()
        .find(|d| d.drift_type == DriftType::Missing)
        .unwrap();
    assert_eq!(missing.resource.name, "web");
    assert_eq!(missing.severity, Severity::High);
    assert!(missing.remedy.kubectl.starts_with("kubectl apply -f "));
    let unmanaged = result
        .drifts
        .iter()
        .find(|d| d.drift_type == DriftType::Unmanaged)
        .unwrap();
    assert_eq!(unmanaged.resource.name, "debug-flags");
    assert_eq!(
        unmanaged.remedy.kubectl,
        "kubectl delete configmap debug-flags -n shop"
    );
    assert!(
        unmanaged
            .remedy
            .note
            .as_ref()
            .unwrap()
            .contains("kubectl-create")
    );
}

#[test]
fn unknown_scope_is_never_missing() {
    let desired = load("desired.yaml", "desired");
    let mut live = load("live.yaml", "live");
    live.objects.remove(&key("", "Service", "web"));
    live.unknown.push(envdrift::model::UnknownScope {
        group: String::new(),
        kind: "Service".into(),
        namespace: None,
        reason: "403 Forbidden".into(),
    });
    let result = run(&desired, &live);
    assert!(result.drifts.is_empty(), "{:#?}", result.drifts);
    assert_eq!(result.unknown.len(), 1);
}

#[test]
fn removed_from_git_but_not_pruned() {
    let mut desired = load("desired.yaml", "desired");
    let live = load("live.yaml", "live");
    let k = key("apps", "Deployment", "web");
    // Git dropped FEATURE_X; the cluster still has it and last-applied says it was applied.
    obj(&mut desired, &k)["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .remove(1);
    let result = run(&desired, &live);
    assert_single_change(
        &result,
        &k,
        Expect {
            path: "/spec/template/spec/containers/0/env/1",
            op: ChangeOp::Added,
            category: Category::ConfigData,
            severity: Severity::Medium,
            manager: Some("kubectl-client-side-apply"),
            cause: Cause::Gitops,
        },
    );
    assert!(
        result.drifts[0].changes[0]
            .note
            .as_ref()
            .unwrap()
            .contains("not pruned")
    );
    assert_patches_fix(&desired, &live, &result);
}

#[test]
fn git_changed_after_last_apply_is_pending_sync() {
    let mut desired = load("desired.yaml", "desired");
    let live = load("live.yaml", "live");
    let k = key("", "ConfigMap", "web-config");
    obj(&mut desired, &k)["data"]["RETRIES"] = json!("5");
    let result = run(&desired, &live);
    assert_single_change(
        &result,
        &k,
        Expect {
            path: "/data/RETRIES",
            op: ChangeOp::Changed,
            category: Category::ConfigData,
            severity: Severity::Medium,
            manager: Some("kubectl-client-side-apply"),
            cause: Cause::Gitops,
        },
    );
}

#[test]
fn ignore_rules_silence_paths_and_managers() {
    let desired = load("desired.yaml", "desired");
    let mut live = load("live.yaml", "live");
    let k = key("apps", "Deployment", "web");
    let v = obj(&mut live, &k);
    v["spec"]["replicas"] = json!(5);
    take_ownership(
        v,
        "kubectl-scale",
        Some("scale"),
        json!({"f:spec": {"f:replicas": {}}}),
    );
    v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("x:1");
    take_ownership(
        v,
        "vpa-hack",
        None,
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
        "k:{\"name\":\"web\"}": {"f:image": {}}}}}}}),
    );
    let cfg = envdrift::config::Config::parse(
        "ignore:\n  - kind: Deployment\n    paths: [/spec/replicas]\n  - managers: [vpa-*]\n",
        std::path::Path::new("t.yaml"),
    )
    .unwrap();
    let opts = cfg
        .compile()
        .unwrap()
        .options(envdrift::report::Mode::DesiredVsLive, ("desired", "live"));
    let result = compare(&desired, &live, &opts);
    assert!(result.drifts.is_empty(), "{:#?}", result.drifts);
    assert_eq!(result.suppressed.ignored, 2);
}

#[test]
fn fingerprints_are_stable_and_value_sensitive() {
    let desired = load("desired.yaml", "desired");
    let mut live = load("live.yaml", "live");
    let k = key("apps", "Deployment", "web");
    obj(&mut live, &k)["spec"]["replicas"] = json!(5);
    let a = run(&desired, &live).drifts[0].fingerprint.clone();
    let b = run(&desired, &live).drifts[0].fingerprint.clone();
    assert_eq!(a, b);
    obj(&mut live, &k)["spec"]["replicas"] = json!(6);
    let c = run(&desired, &live).drifts[0].fingerprint.clone();
    assert_ne!(a, c);
}

/// Ignore rules with a label selector apply to the objects whose (desired) labels match.
#[test]
fn ignore_rules_select_objects_by_label() {
    use envdrift::diff::ignore::{IgnoreRule, IgnoreSet};
    use envdrift::source::dump::{LoadOptions, load_text};
    let dep = |name: &str, labels: &str, replicas: u32| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: shop, labels: {{{labels}}}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: 'r/c:1'}}]}}\n---\n"
        )
    };
    let git = dep("pay", "team: payments", 2) + &dep("cart", "team: shop", 2) + &dep("web", "", 2);
    let live = dep("pay", "team: payments", 5) + &dep("cart", "team: shop", 5) + &dep("web", "", 5);
    let desired = load_text(&git, "git", &LoadOptions::default());
    let live = load_text(
        &live,
        "live",
        &LoadOptions {
            side: "live".into(),
            default_namespace: None,
            ..LoadOptions::default()
        },
    );
    let run = |selector: &str| {
        let rule: IgnoreRule = serde_json::from_value(serde_json::json!({
            "kind": "Deployment",
            "paths": ["/spec/replicas"],
            "selector": serde_json::from_str::<serde_json::Value>(selector).unwrap(),
        }))
        .unwrap();
        let opts = envdrift::diff::Options {
            ignore: std::sync::Arc::new(IgnoreSet::new(&[rule]).unwrap()),
            ..envdrift::diff::Options::default()
        };
        let mut names: Vec<String> = compare(&desired, &live, &opts)
            .drifts
            .iter()
            .map(|d| d.resource.name.clone())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        run(r#"{"matchLabels": {"team": "payments"}}"#),
        ["cart", "web"]
    );
    assert_eq!(
        run(
            r#"{"matchExpressions": [{"key": "team", "operator": "In", "values": ["payments", "shop"]}]}"#
        ),
        ["web"]
    );
    assert_eq!(
        run(r#"{"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}"#),
        ["cart", "pay"]
    );
    assert_eq!(
        run(r#"{"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["shop"]}]}"#),
        ["cart"]
    );
}

/// Severity rules with a label selector grade only the objects whose labels match.
#[test]
fn severity_rules_select_objects_by_label() {
    use envdrift::classify::{Classifier, ManagerClasses, SeverityRule};
    use envdrift::source::dump::{LoadOptions, load_text};
    let dep = |name: &str, labels: &str, image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: shop, labels: {{{labels}}}}}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: '{image}'}}]}}\n---\n"
        )
    };
    let git = dep("pay", "tier: critical", "r/c:1") + &dep("web", "tier: best-effort", "r/c:1");
    let live = dep("pay", "tier: critical", "r/c:2") + &dep("web", "tier: best-effort", "r/c:2");
    let desired = load_text(&git, "git", &LoadOptions::default());
    let live = load_text(
        &live,
        "live",
        &LoadOptions {
            side: "live".into(),
            default_namespace: None,
            ..LoadOptions::default()
        },
    );
    let rule: SeverityRule = serde_json::from_value(serde_json::json!({
        "kind": "Deployment",
        "path": "**/image",
        "selector": {"matchLabels": {"tier": "best-effort"}},
        "severity": "info",
    }))
    .unwrap();
    let opts = envdrift::diff::Options {
        classifier: std::sync::Arc::new(
            Classifier::new(&[rule], ManagerClasses::default()).unwrap(),
        ),
        ..envdrift::diff::Options::default()
    };
    let r = compare(&desired, &live, &opts);
    let sev = |name: &str| {
        r.drifts
            .iter()
            .find(|d| d.resource.name == name)
            .map(|d| d.changes[0].severity)
    };
    assert_eq!(sev("web"), Some(Severity::Info));
    assert_ne!(sev("pay"), Some(Severity::Info));
    assert!(sev("pay").is_some());
}
