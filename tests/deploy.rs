//! The deployment: `helm lint` and `helm template` of the chart with default and all-options
//! values, `kubectl kustomize` of the plain manifests, least-privilege RBAC and container
//! hardening asserted on the rendered objects, the rendered config accepted by envdrift, and
//! envdrift itself finding no unintended difference between the chart and the manifests.
//!
//! helm and kubectl come from `.tools/` (installed by `.ci/run`, see ../shared/TOOLING.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool(name: &str) -> PathBuf {
    for dir in [".tools/bin", ".tools/venv/bin"] {
        let p = root().join(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed in .tools/: run `bash .ci/run` (it installs helm and kubectl)");
}

fn run(cmd: &Path, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(root())
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", cmd.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        cmd.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const CHART: &str = "deploy/helm/envdrift";
const ALL: &str = "deploy/helm/envdrift/ci/all-options-values.yaml";

fn objects(yaml: &str) -> Vec<Value> {
    let p = envdrift::source::manifest::parse_manifest_text(yaml, false);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    p.objects.into_iter().map(|o| o.value).collect()
}

fn template(values: Option<&str>) -> Vec<Value> {
    let helm = tool("helm");
    let mut args = vec!["template", "envdrift", CHART, "--namespace", "envdrift"];
    if let Some(v) = values {
        args.extend(["-f", v]);
    }
    objects(&run(&helm, &args))
}

fn find<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

fn assert_least_privilege(objs: &[Value], secrets_allowed: bool) {
    let roles = find(objs, "ClusterRole");
    assert_eq!(roles.len(), 1);
    let mut saw_secrets = false;
    for rule in roles[0]["rules"].as_array().unwrap() {
        let verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(verbs, ["get", "list", "watch"], "{rule}");
        let resources: Vec<&str> = rule["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(!resources.contains(&"*"), "no wildcard resources: {rule}");
        saw_secrets |= resources.contains(&"secrets");
    }
    assert_eq!(
        saw_secrets, secrets_allowed,
        "Secrets access only when rbac.readSecrets is on"
    );
    assert!(find(objs, "Role").is_empty() && find(objs, "RoleBinding").is_empty());
}

fn assert_hardened(objs: &[Value], persistence: bool) {
    let deps = find(objs, "Deployment");
    assert_eq!(deps.len(), 1);
    let d = deps[0];
    assert_eq!(d["spec"]["replicas"], 1);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(sc.get("privileged").is_none_or(|p| p == false));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(
        c["resources"]["requests"].is_object() && c["resources"]["limits"]["memory"].is_string()
    );
    let data = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "data")
        .unwrap();
    assert_eq!(
        data.get("persistentVolumeClaim").is_some(),
        persistence,
        "{data}"
    );
    assert_eq!(data.get("emptyDir").is_some(), !persistence, "{data}");
    assert_eq!(
        find(objs, "PersistentVolumeClaim").len(),
        usize::from(persistence)
    );
}

/// The config the chart renders is one envdrift accepts.
fn assert_config_valid(objs: &[Value]) {
    let cm = find(objs, "ConfigMap");
    let text = cm[0]["data"]["config.yaml"].as_str().unwrap();
    let cfg = envdrift::config::Config::parse(text, Path::new("configmap:config.yaml")).unwrap();
    let problems = cfg.validate(Path::new("configmap:config.yaml"));
    assert!(problems.is_empty(), "{problems:?}");
    assert!(
        !cfg.api.tokens.is_empty(),
        "the chart listens on the pod network, so it must set tokens"
    );
}

#[test]
fn helm_lint_default_and_all_options() {
    let helm = tool("helm");
    run(&helm, &["lint", CHART]);
    run(&helm, &["lint", CHART, "-f", ALL]);
}

#[test]
fn default_rendering_is_least_privilege_and_hardened() {
    let objs = template(None);
    assert_least_privilege(&objs, false);
    assert_hardened(&objs, true);
    assert_config_valid(&objs);
    assert!(find(&objs, "ServiceMonitor").is_empty() && find(&objs, "NetworkPolicy").is_empty());
}

#[test]
fn all_options_rendering() {
    let objs = template(Some(ALL));
    assert_least_privilege(&objs, true);
    assert_hardened(&objs, false);
    assert_config_valid(&objs);
    assert_eq!(find(&objs, "ServiceMonitor").len(), 1);
    assert_eq!(find(&objs, "NetworkPolicy").len(), 1);
    assert!(
        find(&objs, "Secret").is_empty(),
        "existingSecret: the chart creates no token Secret"
    );
    let sa = find(&objs, "ServiceAccount");
    assert_eq!(sa[0]["metadata"]["name"], "drift-reader");
    let extra = find(&objs, "ClusterRole")[0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["apiGroups"][0] == "cert-manager.io");
    assert!(extra);
}

#[test]
fn plain_manifests_match_the_chart_by_envdrifts_own_diff() {
    let kubectl = tool("kubectl");
    let plain = run(&kubectl, &["kustomize", "deploy/kubernetes"]);
    let plain_objs = objects(&plain);
    assert_least_privilege(&plain_objs, false);
    assert_hardened(&plain_objs, true);
    assert_config_valid(&plain_objs);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("plain.yaml");
    let h = dir.path().join("helm.yaml");
    std::fs::write(&p, plain).unwrap();
    std::fs::write(
        &h,
        run(
            &tool("helm"),
            &["template", "envdrift", CHART, "--namespace", "envdrift"],
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args([
            "diff",
            "--desired",
            p.to_str().unwrap(),
            "--live",
            h.to_str().unwrap(),
            "-c",
            "deploy/dogfood.yaml",
            "-f",
            "table",
            "--color",
            "never",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "unintended differences between the chart and deploy/kubernetes:\n{text}"
    );
    assert!(text.contains("No drift."), "{text}");
}

#[test]
fn dockerfile_runs_as_non_root_on_a_small_base() {
    let df = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    assert!(df.contains("AS build"), "multi-stage");
    assert!(df.contains("distroless") && df.contains("nonroot"));
    assert!(df.lines().any(|l| l.starts_with("USER 65532")));
    assert!(root().join(".dockerignore").exists());
}

/// The chart's values.schema.json: a typo'd or unknown value fails `helm template` (and
/// install) naming it, instead of rendering silently without it.
#[test]
fn a_mistyped_value_is_rejected_by_the_values_schema() {
    let helm = tool("helm");
    for (set, named) in [
        ("replicas=2", "replicas"),
        ("persistence.enable=false", "enable"),
        ("logFormat=yaml", "logFormat"),
        ("service.port=0", "port"),
    ] {
        let out = Command::new(&helm)
            .args(["template", "envdrift", CHART, "--set", set])
            .current_dir(root())
            .env("HOME", std::env::temp_dir())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} was accepted");
        assert!(err.contains(named), "{set}: {err}");
    }
}

const REPLICAS: &str = "deploy/helm/envdrift/ci/replicas-values.yaml";

/// `helm lint --strict` of a values file; `(success, output)`.
fn lint_strict(values: &Path) -> (bool, String) {
    let out = Command::new(tool("helm"))
        .args(["lint", "--strict", CHART, "-f"])
        .arg(values)
        .current_dir(root())
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// More than one replica needs the shared PostgreSQL store, and that one its DSN Secret:
/// values.schema.json says so (`helm lint --strict`, as `helm install` would).
#[test]
fn replicas_require_postgres_with_a_dsn_secret() {
    let (ok, out) = lint_strict(&root().join(REPLICAS));
    assert!(ok, "{out}");
    let dir = tempfile::tempdir().unwrap();
    for (name, values, named) in [
        ("sqlite", "replicaCount: 2\n", "/store/type"),
        (
            "explicit-sqlite",
            "replicaCount: 3\nstore: {type: sqlite}\n",
            "postgres",
        ),
        (
            "no-secret",
            "replicaCount: 2\nstore: {type: postgres}\n",
            "existingSecret",
        ),
        ("zero", "replicaCount: 0\n", "replicaCount"),
    ] {
        let f = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&f, values).unwrap();
        let (ok, out) = lint_strict(&f);
        assert!(!ok, "{name} passed: {out}");
        assert!(out.contains(named), "{name}: {out}");
    }
    // One replica on Postgres is fine too.
    let f = dir.path().join("one-pg.yaml");
    std::fs::write(
        &f,
        "store: {type: postgres, postgres: {existingSecret: pg}}\n",
    )
    .unwrap();
    let (ok, out) = lint_strict(&f);
    assert!(ok, "{out}");
}

/// Three replicas: Leases RBAC in the release's namespace only, POD_NAME as identity, the
/// DSN from the Secret, a PodDisruptionBudget, the coordination in the config.
#[test]
fn replicas_rendering() {
    let objs = template(Some(REPLICAS));
    let d = find(&objs, "Deployment")[0];
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    let env = c["env"].as_array().unwrap();
    let var = |n: &str| {
        env.iter()
            .find(|e| e["name"] == n)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        var("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        var("ENVDRIFT_DATABASE_URL")["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "envdrift-postgres", "key": "dsn"})
    );
    // No per-pod SQLite volume to share.
    assert!(find(&objs, "PersistentVolumeClaim").is_empty());
    let roles = find(&objs, "Role");
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["metadata"]["namespace"], "envdrift");
    assert_eq!(
        roles[0]["rules"],
        serde_json::json!([{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
            "verbs": ["get", "list", "watch", "create", "update"]}])
    );
    let rb = find(&objs, "RoleBinding");
    assert_eq!(rb.len(), 1);
    assert_eq!(rb[0]["roleRef"]["name"], roles[0]["metadata"]["name"]);
    assert_eq!(rb[0]["subjects"][0]["name"], "envdrift");
    assert_eq!(rb[0]["subjects"][0]["namespace"], "envdrift");
    // The cluster-wide role stays read-only.
    for rule in find(&objs, "ClusterRole")[0]["rules"].as_array().unwrap() {
        assert_eq!(rule["verbs"], serde_json::json!(["get", "list", "watch"]));
    }
    let pdb = find(&objs, "PodDisruptionBudget");
    assert_eq!(pdb.len(), 1);
    assert_eq!(pdb[0]["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb[0]["spec"]["selector"]["matchLabels"],
        d["spec"]["selector"]["matchLabels"]
    );
    let text = find(&objs, "ConfigMap")[0]["data"]["config.yaml"]
        .as_str()
        .unwrap();
    let v: Value = serde_saphyr::from_str(text).unwrap();
    assert_eq!(
        v["store"],
        serde_json::json!({"type": "postgres", "url_env": "ENVDRIFT_DATABASE_URL"})
    );
    // The whole rendered config, store block and coordination included, must validate.
    let cfg = envdrift::config::Config::parse(
        &serde_json::to_string(&v).unwrap(),
        Path::new("configmap:config.yaml"),
    )
    .unwrap();
    let problems = cfg.validate(Path::new("configmap:config.yaml"));
    assert!(problems.is_empty(), "{problems:?}");
    let Some(envdrift::config::coordination::CoordinationConfig::Kubernetes(k)) =
        &cfg.daemon.coordination
    else {
        panic!("no coordination: {text}")
    };
    assert!(k.in_cluster);
    assert_eq!(k.namespace.as_deref(), Some("envdrift"));
    assert_eq!(
        k.lease_duration().unwrap(),
        std::time::Duration::from_secs(20)
    );
    assert_eq!(k.identity, None, "the identity is POD_NAME");
}
