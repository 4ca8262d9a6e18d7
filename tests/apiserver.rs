//! Fidelity of the Kubernetes API test server, proven with the real `kubectl`: each verb
//! leaves the object and its managedFields as a real API server would.
//!
//! kubectl runs with `--validate=false`: the test server serves no OpenAPI document, and
//! kubectl's client-side validation needs one (its patch computation falls back to the
//! compiled-in types, as with any server without OpenAPI).

use std::path::Path;

use envdrift_testkit::apiserver::{ApiServer, Faults};
use envdrift_testkit::kubectl::{Kubectl, require_kubectl};
use serde_json::Value;

pub fn setup() -> Option<(ApiServer, Kubectl, tempfile::TempDir)> {
    let bin = require_kubectl()?;
    let server = ApiServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig("test")).expect("write kubeconfig");
    Some((server, Kubectl { bin, kubeconfig }, dir))
}

fn demo(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/demo/git/production")
        .join(file)
        .display()
        .to_string()
}

/// `(manager, operation, subresource)` of each managedFields entry.
fn managers(obj: &Value) -> Vec<(String, String, Option<String>)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or("").to_string(),
                        e["operation"].as_str().unwrap_or("").to_string(),
                        e["subresource"].as_str().map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn fields_of<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["manager"] == manager))
        .map(|e| &e["fieldsV1"])
        .unwrap_or(&Value::Null)
}

/// A `KUBE_EDITOR` that adds `DEBUG=true` before the `DB_USER` env var.
pub const EDITOR_SCRIPT: &str = r#"#!/usr/bin/env python3
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("        - name: DB_USER\n", "        - name: DEBUG\n          value: \"true\"\n        - name: DB_USER\n", 1)
open(p, "w").write(s)
"#;

#[test]
fn kubectl_version_and_discovery() {
    let Some((_server, k, _dir)) = setup() else {
        return;
    };
    let out = k.run(&["version", "-o", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["serverVersion"]["gitVersion"], "v1.37.0-envdrift-test");
    let out = k.run(&["api-resources", "--no-headers"]);
    assert!(out.contains("deployments"), "{out}");
    assert!(out.contains("horizontalpodautoscalers"), "{out}");
}

#[test]
fn kubectl_verbs_leave_objects_and_managed_fields_like_a_real_server() {
    let Some((server, k, dir)) = setup() else {
        return;
    };
    for f in ["namespace.yaml", "api-deployment.yaml", "api-service.yaml"] {
        k.run(&["apply", "--validate=false", "-f", &demo(f)]);
    }
    let get = || k.get_json(&["deploy", "api", "-n", "shop-prod", "--show-managed-fields"]);
    let d = get();
    // Server-set metadata, defaults and status.
    assert!(d["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert_eq!(d["metadata"]["generation"], 1);
    assert!(d["metadata"]["creationTimestamp"].as_str().is_some());
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(d["status"]["observedGeneration"], 1);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert!(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    assert_eq!(
        managers(&d)[0],
        ("kubectl-client-side-apply".into(), "Update".into(), None)
    );
    let csa = fields_of(&d, "kubectl-client-side-apply");
    assert!(
        csa.pointer("/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"api\"}/f:image")
            .is_some(),
        "{csa}"
    );
    assert!(csa.pointer("/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"api\"}/f:ports/k:{\"containerPort\":8080,\"protocol\":\"TCP\"}/f:protocol").is_some(), "{csa}");
    let svc = k.get_json(&["svc", "api", "-n", "shop-prod"]);
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.96."))
    );

    // scale → the scale subresource, manager from the User-Agent (kubectl sends none).
    k.run(&["scale", "deploy/api", "-n", "shop-prod", "--replicas=5"]);
    // set image → strategic merge patch as kubectl-set.
    k.run(&[
        "set",
        "image",
        "deploy/api",
        "-n",
        "shop-prod",
        "api=registry.example.com/shop/api:1.4.3-hotfix",
    ]);
    // label → kubectl-label.
    k.run(&["label", "deploy/api", "-n", "shop-prod", "team=payments"]);
    // edit → kubectl-edit, adding an env var.
    let editor = dir.path().join("editor.sh");
    std::fs::write(&editor, EDITOR_SCRIPT).unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = k
        .command(&["edit", "--validate=false", "deploy/api", "-n", "shop-prod"])
        .env("KUBE_EDITOR", &editor)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // patch → kubectl-patch (JSON patch).
    k.run(&[
        "patch",
        "deploy",
        "api",
        "-n",
        "shop-prod",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/annotations/owner","value":"team-a"}]"#,
    ]);

    let d = get();
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["status"]["replicas"], 5);
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example.com/shop/api:1.4.3-hotfix");
    assert_eq!(c["env"][0]["name"], "DEBUG");
    assert_eq!(d["metadata"]["labels"]["team"], "payments");
    assert_eq!(d["metadata"]["annotations"]["owner"], "team-a");
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert!(d["metadata"]["generation"].as_i64().unwrap() >= 4);
    let m = managers(&d);
    for expected in [
        (
            "kubectl".to_string(),
            "Update".to_string(),
            Some("scale".to_string()),
        ),
        ("kubectl-set".into(), "Update".into(), None),
        ("kubectl-label".into(), "Update".into(), None),
        ("kubectl-edit".into(), "Update".into(), None),
        ("kubectl-patch".into(), "Update".into(), None),
        (
            "kube-controller-manager".into(),
            "Update".into(),
            Some("status".into()),
        ),
    ] {
        assert!(m.contains(&expected), "{expected:?} not in {m:?}");
    }
    assert_eq!(
        fields_of(&d, "kubectl"),
        &serde_json::json!({"f:spec": {"f:replicas": {}}})
    );
    assert!(
        fields_of(&d, "kubectl-set")
            .pointer("/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"api\"}/f:image")
            .is_some()
    );
    assert!(fields_of(&d, "kubectl-edit").pointer("/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"api\"}/f:env/k:{\"name\":\"DEBUG\"}/f:value").is_some());
    assert_eq!(
        fields_of(&d, "kubectl-label"),
        &serde_json::json!({"f:metadata": {"f:labels": {".": {}, "f:team": {}}}})
    );
    // Ownership moved: the client-side applier no longer owns replicas nor the image.
    let csa = fields_of(&d, "kubectl-client-side-apply");
    assert!(csa.pointer("/f:spec/f:replicas").is_none(), "{csa}");
    assert!(
        csa.pointer("/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"api\"}/f:image")
            .is_none()
    );

    // get -o yaml works and hides managedFields by default, like a real server + kubectl.
    let yaml = k.run(&["get", "deploy", "api", "-n", "shop-prod", "-o", "yaml"]);
    assert!(
        yaml.contains("image: registry.example.com/shop/api:1.4.3-hotfix")
            && !yaml.contains("managedFields")
    );

    // Server-side apply: conflicts without --force-conflicts, ownership with it.
    let out = k.run_output(&[
        "apply",
        "--server-side",
        "--validate=false",
        "-f",
        &demo("api-deployment.yaml"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("conflict with \"kubectl-set\""), "{err}");
    assert!(
        err.contains("conflict with \"kubectl\" with subresource \"scale\""),
        "{err}"
    );
    k.run(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--validate=false",
        "-f",
        &demo("api-deployment.yaml"),
    ]);
    let d = get();
    assert_eq!(d["spec"]["replicas"], 2);
    assert!(managers(&d).contains(&("kubectl".into(), "Apply".into(), None)));
    assert!(!managers(&d).iter().any(|(m, _, _)| m == "kubectl-set"));
    // The env var someone else added survives the apply (not owned by the applier).
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"],
        "DEBUG"
    );

    // delete
    k.run(&["delete", "svc", "api", "-n", "shop-prod"]);
    let out = k.run_output(&["get", "svc", "api", "-n", "shop-prod"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
    assert!(server.object("services", "shop-prod", "api").is_none());
}

#[test]
fn list_pagination_selectors_and_faults_through_kubectl() {
    let Some((server, k, _dir)) = setup() else {
        return;
    };
    for i in 0..25 {
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i:02}"), "namespace": "ns1", "labels": {"parity": if i % 2 == 0 {"even"} else {"odd"}}},
            "data": {"i": i.to_string()}});
        server.insert(cm, "test").unwrap();
    }
    // --chunk-size pages through limit/continue.
    let out = k.run(&["get", "cm", "-n", "ns1", "--chunk-size=7", "-o", "name"]);
    assert_eq!(out.lines().count(), 25);
    let lists = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/configmaps") && r.query.contains("continue="))
        .count();
    assert_eq!(lists, 3);
    let out = k.run(&["get", "cm", "-n", "ns1", "-l", "parity=even", "-o", "name"]);
    assert_eq!(out.lines().count(), 13);
    let out = k.run(&[
        "get",
        "cm",
        "-n",
        "ns1",
        "-l",
        "parity in (odd),parity!=even",
        "-o",
        "name",
    ]);
    assert_eq!(out.lines().count(), 12);
    // 410 Gone on continue reaches kubectl as Expired.
    server.faults(|f| {
        f.gone_on_continue.insert("configmaps".into(), 1);
    });
    let out = k.run_output(&["get", "cm", "-n", "ns1", "--chunk-size=7", "-o", "name"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("too old"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 403 and 5xx as kubectl shows them.
    server.set_faults(Faults {
        forbidden: ["configmaps".to_string()].into(),
        ..Default::default()
    });
    let out = k.run_output(&["get", "cm", "-n", "ns1", "-o", "name"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Forbidden"));
    server.set_faults(Faults::default());
    // watch streams events.
    let mut child = k
        .command(&["get", "cm", "-n", "ns1", "--watch-only", "-o", "name"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until kubectl's watch request reached the server (not a fixed sleep).
    let started = std::time::Instant::now();
    while !server
        .requests()
        .iter()
        .any(|r| r.path.ends_with("/configmaps") && r.query.contains("watch=true"))
    {
        assert!(
            started.elapsed().as_secs() < 20,
            "kubectl never started watching"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // (kubectl create sends protobuf, which this server does not speak: apply a file.)
    let file = _dir.path().join("watched.yaml");
    std::fs::write(&file, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n  namespace: ns1\ndata:\n  a: b\n").unwrap();
    k.run(&[
        "apply",
        "--validate=false",
        "-f",
        &file.display().to_string(),
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("configmap/watched"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let created = server.object("configmaps", "ns1", "watched").unwrap();
    assert_eq!(
        created["metadata"]["managedFields"][0]["manager"],
        "kubectl-client-side-apply"
    );
    // replace → PUT as kubectl-replace.
    std::fs::write(&file, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n  namespace: ns1\ndata:\n  a: c\n").unwrap();
    k.run(&[
        "replace",
        "--validate=false",
        "-f",
        &file.display().to_string(),
    ]);
    let replaced = server.object("configmaps", "ns1", "watched").unwrap();
    assert_eq!(replaced["data"]["a"], "c");
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.method == "PUT" && r.path.ends_with("/configmaps/watched"))
    );
    let m: Vec<&str> = replaced["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["manager"].as_str())
        .collect();
    // The replace dropped the last-applied annotation and changed the only data key: the
    // client-side applier owns nothing any more and its entry is gone, as on a real server.
    assert_eq!(m, vec!["kubectl-replace"], "{m:?}");
}

/// Leases (`coordination.k8s.io/v1`, what envdrift's replicas coordinate with): create,
/// get, apply, and the two 409s a real API server answers: `AlreadyExists` for a create of
/// an existing name, `Conflict` for a replace with a stale resourceVersion — in kubectl's
/// own words.
#[test]
fn kubectl_leases_with_already_exists_and_conflicts() {
    let Some((server, k, dir)) = setup() else {
        return;
    };
    let lease = |holder: &str, rv: Option<&str>| {
        format!(
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: envdrift-target-x\n  namespace: envdrift\n{}spec:\n  holderIdentity: {holder}\n  leaseDurationSeconds: 15\n  renewTime: \"2026-12-04T21:00:00.000000Z\"\n",
            rv.map(|r| format!("  resourceVersion: \"{r}\"\n"))
                .unwrap_or_default()
        )
    };
    let file = dir.path().join("lease.yaml");
    std::fs::write(&file, lease("replica-0", None)).unwrap();
    let f = file.display().to_string();
    k.run(&["create", "--validate=false", "-f", &f]);
    let got = k.get_json(&["lease", "envdrift-target-x", "-n", "envdrift"]);
    assert_eq!(got["spec"]["holderIdentity"], "replica-0");
    assert_eq!(got["spec"]["renewTime"], "2026-12-04T21:00:00.000000Z");
    let rv1 = got["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // Discovery lists it under its group.
    let out = k.run(&[
        "api-resources",
        "--api-group=coordination.k8s.io",
        "--no-headers",
    ]);
    assert!(out.contains("leases"), "{out}");

    // Create again: AlreadyExists.
    let out = k.run_output(&["create", "--validate=false", "-f", &f]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "Error from server (AlreadyExists): error when creating \"{f}\": leases.coordination.k8s.io \"envdrift-target-x\" already exists"
        )),
        "{err}"
    );
    // Through the API: the Status document a real server sends.
    let raw = k.run_output(&["create", "--validate=false", "-f", &f, "-v=8"]);
    let log = String::from_utf8_lossy(&raw.stderr);
    // kubectl prints the Status it got at -v=8 (its fields in the server's order).
    let status = log
        .split("server response object: ")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .map(|o| format!("{o}\n}}"))
        .unwrap_or_default();
    let v: Value = serde_json::from_str(&status).unwrap_or_else(|e| panic!("{e}: {log}"));
    assert_eq!(v["reason"], "AlreadyExists", "{v}");
    assert_eq!(v["code"], 409);
    assert_eq!(v["status"], "Failure");
    assert_eq!(
        v["details"],
        serde_json::json!({"name": "envdrift-target-x", "group": "coordination.k8s.io", "kind": "leases"})
    );

    // Replace with the current resourceVersion: accepted, and the version moves on.
    std::fs::write(&file, lease("replica-1", Some(&rv1))).unwrap();
    k.run(&["replace", "--validate=false", "-f", &f]);
    let got = k.get_json(&["lease", "envdrift-target-x", "-n", "envdrift"]);
    assert_eq!(got["spec"]["holderIdentity"], "replica-1");
    assert_ne!(got["metadata"]["resourceVersion"], rv1.as_str());
    // Replace with the stale one: Conflict, and the Lease keeps its holder.
    std::fs::write(&file, lease("replica-2", Some(&rv1))).unwrap();
    let out = k.run_output(&["replace", "--validate=false", "-f", &f]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "Error from server (Conflict): error when replacing \"{f}\": Operation cannot be fulfilled on leases.coordination.k8s.io \"envdrift-target-x\": the object has been modified; please apply your changes to the latest version and try again"
        )),
        "{err}"
    );
    let got = server
        .object(
            "leases.coordination.k8s.io",
            "envdrift",
            "envdrift-target-x",
        )
        .unwrap();
    assert_eq!(got["spec"]["holderIdentity"], "replica-1");

    // Apply (client-side) without a resourceVersion: a patch, accepted.
    std::fs::write(&file, lease("replica-3", None)).unwrap();
    k.run(&["apply", "--validate=false", "-f", &f]);
    let got = k.get_json(&["lease", "envdrift-target-x", "-n", "envdrift"]);
    assert_eq!(got["spec"]["holderIdentity"], "replica-3");
    k.run(&["delete", "lease", "envdrift-target-x", "-n", "envdrift"]);
    assert!(
        server
            .object(
                "leases.coordination.k8s.io",
                "envdrift",
                "envdrift-target-x"
            )
            .is_none()
    );
}
