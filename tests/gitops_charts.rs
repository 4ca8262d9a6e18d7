//! Charts from Helm repositories and OCI registries, and the repository credentials Argo CD
//! and Flux keep in Secrets, end to end: charts made with the real `helm package`, served
//! by the test kit's HTTP chart repository and OCI registry (filled with the real `helm
//! push`), both checking Basic credentials; Applications, HelmReleases, HelmRepositories,
//! OCIRepositories and Secrets on the Kubernetes API test server. The desired state must
//! equal what the real `helm template` renders for the same chart and values; a wrong
//! password is the environment's error; no credential reaches output, logs or helm's
//! command line.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use envdrift::config::Config;
use envdrift::model::Snapshot;
use envdrift::source::{Ctx, Loaded, SourceSpec, open};
use envdrift_testkit::apiserver::ApiServer;
use envdrift_testkit::charts::{self, BasicAuth, HelmRepoServer, OciRegistry};
use envdrift_testkit::gitops as kit;
use serde_json::{Value, json};

const HTTP_PW: &str = "http-pw-Qx81SECRET";
const OCI_PW: &str = "oci-pw-Zt42SECRET";
const WRONG_PW: &str = "wrong-pw-Kk07SECRET";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool_path() -> OsString {
    let mut dirs = vec![root().join(".tools/bin"), root().join(".tools/venv/bin")];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

fn real_helm() -> PathBuf {
    std::env::split_paths(&tool_path())
        .map(|d| d.join("helm"))
        .find(|p| p.is_file())
        .expect("helm on PATH or in .tools/bin")
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n  namespace: {{ .Release.Namespace }}\nspec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels: {app: {{ .Release.Name }}}\n  template:\n    metadata:\n      labels: {app: {{ .Release.Name }}}\n    spec:\n      containers:\n      - name: web\n        image: \"nginx:{{ .Values.tag }}\"\n";
const CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n  namespace: {{ .Release.Namespace }}\ndata:\n  message: {{ .Values.message | quote }}\n  chartVersion: {{ .Chart.Version | quote }}\n";

/// The chart `web` at `version`, as a directory.
fn chart_dir(base: &Path, version: &str) -> PathBuf {
    let d = base.join(format!("src-{version}/web"));
    write(
        &d,
        "Chart.yaml",
        &format!("apiVersion: v2\nname: web\nversion: {version}\n"),
    );
    write(
        &d,
        "values.yaml",
        "replicas: 1\ntag: \"1.25\"\nmessage: hello\n",
    );
    write(&d, "templates/deployment.yaml", DEPLOYMENT);
    write(&d, "templates/configmap.yaml", CONFIGMAP);
    d
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn secret(ns: &str, name: &str, labels: Value, data: &[(&str, &str)]) -> Value {
    let d: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::String(b64(v))))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": name, "namespace": ns, "labels": labels}, "data": d})
}

fn helm_repository(name: &str, url: &str, oci: bool, secret: &str) -> Value {
    let mut spec = json!({"interval": "10m0s", "url": url, "secretRef": {"name": secret}});
    if oci {
        spec["type"] = json!("oci");
    }
    json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
           "metadata": {"name": name, "namespace": "flux-system"}, "spec": spec,
           "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                                      "message": "stored artifact", "lastTransitionTime": "2026-12-01T10:00:00Z"}]}})
}

fn helm_release_from(name: &str, chart_spec: Value, values: Value) -> Value {
    let mut hr = kit::helm_release("flux-system", name, "unused", "web", json!({}));
    hr["spec"]["chart"]["spec"] = chart_spec;
    hr["spec"]["targetNamespace"] = json!("shop");
    hr["spec"]["values"] = values;
    hr
}

struct World {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    helm_home: PathBuf,
    server: ApiServer,
    kubeconfig: PathBuf,
    repo: HelmRepoServer,
    registry: OciRegistry,
    /// `helm` wrapper that logs its arguments, then runs the real one.
    wrapper_dir: PathBuf,
    args_log: PathBuf,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let path = tool_path();
    let helm_home = dir.join("helm-home");
    std::fs::create_dir_all(&helm_home).unwrap();
    // Two versions of the chart, packaged by the real helm, in an HTTP repository.
    let served = dir.join("served");
    let mut tgz = BTreeMap::new();
    for v in ["1.0.0", "1.1.0"] {
        let d = chart_dir(&dir, v);
        tgz.insert(v, charts::package(&path, &helm_home, &d, &served));
    }
    charts::index(&path, &helm_home, &served);
    let repo = HelmRepoServer::start(&served, Some(BasicAuth::new("reader", HTTP_PW)));
    // The same archives pushed to the OCI registry with the real helm.
    let registry = OciRegistry::start(Some(BasicAuth::new("pusher", OCI_PW)));
    let host = registry.host();
    charts::helm(
        &path,
        &helm_home,
        &[
            "registry",
            "login",
            &host,
            "--username",
            "pusher",
            "--password-stdin",
            "--plain-http",
        ],
        Some(OCI_PW),
    );
    for p in tgz.values() {
        charts::helm(
            &path,
            &helm_home,
            &[
                "push",
                &p.display().to_string(),
                &format!("oci://{host}/charts"),
                "--plain-http",
            ],
            None,
        );
    }
    let server = ApiServer::start();
    kit::install(&server);
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig("gitops")).unwrap();
    let put = |v: Value| {
        server.insert(v, "kubectl-client-side-apply").unwrap();
    };
    // Argo CD: a repository Secret for the HTTP repository, a credential template for
    // every repository of the registry.
    put(secret(
        "argocd",
        "repo-charts",
        json!({"argocd.argoproj.io/secret-type": "repository"}),
        &[
            ("type", "helm"),
            ("url", &repo.url()),
            ("username", "reader"),
            ("password", HTTP_PW),
        ],
    ));
    put(secret(
        "argocd",
        "creds-registry",
        json!({"argocd.argoproj.io/secret-type": "repo-creds"}),
        &[
            ("type", "helm"),
            ("url", &host),
            ("enableOCI", "true"),
            ("username", "pusher"),
            ("password", OCI_PW),
        ],
    ));
    put(kit::application(
        "web-http",
        json!({"repoURL": repo.url(), "chart": "web", "targetRevision": "1.0.0",
               "helm": {"valuesObject": {"replicas": 3},
                        "parameters": [{"name": "message", "value": "from-argo"}]}}),
        "shop",
    ));
    put(kit::application(
        "web-oci",
        json!({"repoURL": format!("{host}/charts"), "chart": "web", "targetRevision": "^1.0.0",
               "helm": {"releaseName": "web"}}),
        "shop",
    ));
    // Flux: Secrets named by the sources' secretRef.
    for (name, user, pw) in [
        ("http-auth", "reader", HTTP_PW),
        ("oci-auth", "pusher", OCI_PW),
        ("bad-auth", "reader", WRONG_PW),
    ] {
        put(secret(
            "flux-system",
            name,
            json!({}),
            &[("username", user), ("password", pw)],
        ));
    }
    put(helm_repository("charts", &repo.url(), false, "http-auth"));
    put(helm_repository(
        "charts-bad",
        &repo.url(),
        false,
        "bad-auth",
    ));
    put(helm_repository(
        "oci-charts",
        &format!("oci://{host}/charts"),
        true,
        "oci-auth",
    ));
    put(
        json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
               "metadata": {"name": "web-oci", "namespace": "flux-system"},
               "spec": {"interval": "10m0s", "url": format!("oci://{host}/charts/web"),
                        "ref": {"semver": ">=1.0.0 <1.1.0"}, "secretRef": {"name": "oci-auth"}}}),
    );
    let src = |repo: &str, version: &str| {
        json!({"chart": "web", "version": version, "reconcileStrategy": "ChartVersion",
               "sourceRef": {"kind": "HelmRepository", "name": repo}})
    };
    put(helm_release_from(
        "hr-http",
        src("charts", "1.0.0"),
        json!({"message": "from-flux"}),
    ));
    put(helm_release_from(
        "hr-oci",
        src("oci-charts", "1.1.x"),
        json!({"replicas": 2}),
    ));
    put(helm_release_from(
        "hr-bad",
        src("charts-bad", "1.0.0"),
        json!({}),
    ));
    let mut hr = kit::helm_release("flux-system", "hr-ref", "unused", "web", json!({}));
    hr["spec"].as_object_mut().unwrap().remove("chart").unwrap();
    hr["spec"]["chartRef"] = json!({"kind": "OCIRepository", "name": "web-oci"});
    hr["spec"]["targetNamespace"] = json!("shop");
    put(hr);
    let wrapper_dir = dir.join("wrapper");
    let args_log = dir.join("helm-args.log");
    write(
        &wrapper_dir,
        "helm",
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            args_log.display(),
            real_helm().display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        wrapper_dir.join("helm"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    World {
        _tmp: tmp,
        dir,
        helm_home,
        server,
        kubeconfig,
        repo,
        registry,
        wrapper_dir,
        args_log,
    }
}

fn ctx(ns: &str) -> Ctx<'_> {
    Ctx {
        side: "desired",
        default_namespace: ns,
        cluster_scoped_kinds: &[],
        caches: None,
        on_file: &|_| {},
    }
}

fn desired_spec(w: &World, desired: &str) -> SourceSpec {
    let text = format!(
        "environments:\n  e:\n    desired: {desired}\n    live:\n      type: cluster\n      kubeconfig: {}\n      context: gitops\n",
        w.kubeconfig.display()
    );
    let path = w.dir.join("envdrift.yaml");
    std::fs::write(&path, &text).unwrap();
    let cfg = Config::load(&path).unwrap_or_else(|p| panic!("{p:?}"));
    let mut spec = cfg.environments["e"]
        .desired
        .spec(&w.dir, &w.dir.join("data"), "desired")
        .unwrap();
    if let SourceSpec::GitOps(g) = &mut spec {
        g.extra_path = vec![w.wrapper_dir.clone()];
    }
    spec
}

fn load(w: &World, desired: &str) -> Result<Loaded, String> {
    open(&desired_spec(w, desired), &ctx("default")).map_err(|e| e.to_string())
}

/// What the real `helm template` renders: (kind, name) → object.
fn helm_template(
    w: &World,
    release: &str,
    version: &str,
    ns: &str,
    values: &str,
    set: &[&str],
) -> BTreeMap<(String, String), Value> {
    let vf = w.dir.join(format!("values-{release}-{version}.yaml"));
    std::fs::write(&vf, values).unwrap();
    let chart = w.dir.join(format!("src-{version}/web"));
    let mut args = vec![
        "template".to_string(),
        release.into(),
        chart.display().to_string(),
        "--namespace".into(),
        ns.into(),
        "--values".into(),
        vf.display().to_string(),
    ];
    for s in set {
        args.push("--set".into());
        args.push((*s).into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = charts::helm(&tool_path(), &w.helm_home, &args, None);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    docs.into_iter()
        .filter(Value::is_object)
        .map(|d| {
            (
                (
                    d["kind"].as_str().unwrap().to_string(),
                    d["metadata"]["name"].as_str().unwrap().to_string(),
                ),
                d,
            )
        })
        .collect()
}

/// The snapshot has exactly the objects `helm template` renders, in `ns`, with the same
/// spec and data.
fn assert_renders(s: &Snapshot, expected: &BTreeMap<(String, String), Value>, ns: &str) {
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.objects.len(), expected.len(), "{:?}", s.objects.keys());
    for ((kind, name), want) in expected {
        let (key, got) = s
            .objects
            .iter()
            .find(|(k, _)| &k.kind == kind && &k.name == name)
            .unwrap_or_else(|| panic!("{kind} {name} not rendered: {:?}", s.objects.keys()));
        assert_eq!(key.namespace.as_deref(), Some(ns));
        for field in ["spec", "data"] {
            assert_eq!(
                got.value.get(field),
                want.get(field),
                "{kind} {name} {field}"
            );
        }
    }
}

#[test]
fn oci_registry_speaks_helm_push_and_pull() {
    let w = world();
    let host = w.registry.host();
    // What the real helm push stored: an OCI manifest with Helm's media types.
    let m = w.registry.manifest("charts/web", "1.0.0").unwrap();
    assert_eq!(m["config"]["mediaType"], charts::HELM_CONFIG_MEDIA_TYPE);
    assert_eq!(m["layers"][0]["mediaType"], charts::HELM_CHART_MEDIA_TYPE);
    // A chart stored by the registry itself is pulled by the real helm.
    let tgz = std::fs::read(w.dir.join("served/web-1.1.0.tgz")).unwrap();
    let digest = w.registry.put_chart("mirror/web", "web", "1.1.0", &tgz);
    let out = w.dir.join("pulled");
    charts::helm(
        &tool_path(),
        &w.helm_home,
        &[
            "pull",
            &format!("oci://{host}/mirror/web"),
            "--version",
            "1.1.0",
            "--plain-http",
            "--untar",
            "--untardir",
            &out.display().to_string(),
        ],
        None,
    );
    assert!(
        std::fs::read_to_string(out.join("web/Chart.yaml"))
            .unwrap()
            .contains("1.1.0")
    );
    // By digest too.
    let out = w.dir.join("pulled-by-digest");
    charts::helm(
        &tool_path(),
        &w.helm_home,
        &[
            "pull",
            &format!("oci://{host}/mirror/web@{digest}"),
            "--plain-http",
            "--untar",
            "--untardir",
            &out.display().to_string(),
        ],
        None,
    );
    assert!(out.join("web/Chart.yaml").is_file());
    // Without credentials the registry refuses.
    let refused = w.registry.refused();
    let st = Command::new(real_helm())
        .args([
            "pull",
            &format!("oci://{host}/charts/web"),
            "--version",
            "1.0.0",
            "--plain-http",
        ])
        .env("HOME", w.dir.join("nobody"))
        .env("HELM_REGISTRY_CONFIG", w.dir.join("nobody/registry.json"))
        .current_dir(&w.dir)
        .output()
        .unwrap();
    assert!(!st.status.success());
    assert!(w.registry.refused() > refused);
}

#[test]
fn argocd_chart_from_an_http_repository_with_a_repository_secret() {
    let w = world();
    let l = load(&w, "{type: argocd, application: web-http}").unwrap();
    let expected = helm_template(
        &w,
        "web-http",
        "1.0.0",
        "shop",
        "replicas: 3\n",
        &["message=from-argo"],
    );
    assert_renders(&l.snapshot, &expected, "shop");
    let desc = &l.snapshot.source.as_ref().unwrap().description;
    assert!(desc.contains("chart `web` 1.0.0 from http://"), "{desc}");
    assert!(l.adopt.is_none());
    // An exact version is pulled once, then read from the cache.
    let served = w.repo.served().len();
    let again = load(&w, "{type: argocd, application: web-http}").unwrap();
    assert_eq!(again.snapshot.objects.len(), l.snapshot.objects.len());
    assert_eq!(w.repo.served().len(), served, "{:?}", w.repo.served());
    // The password went to helm's standard input only.
    let args = std::fs::read_to_string(&w.args_log).unwrap();
    assert!(args.contains("--password-stdin"), "{args}");
    assert!(!args.contains(HTTP_PW), "{args}");
}

#[test]
fn argocd_chart_from_an_oci_registry_with_a_credential_template() {
    let w = world();
    let l = load(&w, "{type: argocd, application: web-oci}").unwrap();
    // `^1.0.0` picks the highest matching version, as helm and Argo CD do.
    let expected = helm_template(&w, "web", "1.1.0", "shop", "{}\n", &[]);
    assert_renders(&l.snapshot, &expected, "shop");
    let args = std::fs::read_to_string(&w.args_log).unwrap();
    assert!(args.contains("registry login"), "{args}");
    assert!(!args.contains(OCI_PW), "{args}");
}

#[test]
fn flux_helmreleases_from_helm_and_oci_repositories_and_a_chart_ref() {
    let w = world();
    let l = load(&w, "{type: flux, helmrelease: flux-system/hr-http}").unwrap();
    let expected = helm_template(
        &w,
        "shop-hr-http",
        "1.0.0",
        "shop",
        "message: from-flux\n",
        &[],
    );
    assert_renders(&l.snapshot, &expected, "shop");
    let l = load(&w, "{type: flux, helmrelease: flux-system/hr-oci}").unwrap();
    let expected = helm_template(&w, "shop-hr-oci", "1.1.0", "shop", "replicas: 2\n", &[]);
    assert_renders(&l.snapshot, &expected, "shop");
    let l = load(&w, "{type: flux, helmrelease: flux-system/hr-ref}").unwrap();
    let expected = helm_template(&w, "shop-hr-ref", "1.0.0", "shop", "{}\n", &[]);
    assert_renders(&l.snapshot, &expected, "shop");
    // An OCIRepository pinned by digest (what `helm push` stored for 1.1.0).
    let digest = w.registry.digest("charts/web", "1.1.0").unwrap();
    w.server
        .insert(
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
                   "metadata": {"name": "web-pinned", "namespace": "flux-system"},
                   "spec": {"interval": "10m0s", "url": format!("oci://{}/charts/web", w.registry.host()),
                            "ref": {"digest": digest, "tag": "1.0.0"}, "secretRef": {"name": "oci-auth"}}}),
            "kubectl-client-side-apply",
        )
        .unwrap();
    let mut hr = kit::helm_release("flux-system", "hr-pinned", "unused", "web", json!({}));
    hr["spec"].as_object_mut().unwrap().remove("chart");
    hr["spec"]["chartRef"] = json!({"kind": "OCIRepository", "name": "web-pinned"});
    w.server.insert(hr, "kubectl-client-side-apply").unwrap();
    let l = load(&w, "{type: flux, helmrelease: flux-system/hr-pinned}").unwrap();
    let expected = helm_template(&w, "hr-pinned", "1.1.0", "flux-system", "{}\n", &[]);
    assert_renders(&l.snapshot, &expected, "flux-system");
    let desc = &l.snapshot.source.as_ref().unwrap().description;
    assert!(desc.contains(&digest), "{desc}");
}

#[test]
fn a_wrong_or_missing_credential_is_the_environments_error() {
    let w = world();
    let refused = w.repo.refused();
    let e = load(&w, "{type: flux, helmrelease: flux-system/hr-bad}").unwrap_err();
    assert!(e.contains("HelmRelease flux-system/hr-bad"), "{e}");
    assert!(e.contains("chart `web` 1.0.0 from http://127.0.0.1"), "{e}");
    assert!(e.contains("Secret flux-system/bad-auth"), "{e}");
    assert!(!e.contains(WRONG_PW), "{e}");
    assert!(w.repo.refused() > refused);
    // Without the repository Secrets the registry refuses too.
    let e = load(
        &w,
        "{type: argocd, application: web-oci, repository_secrets: false}",
    )
    .unwrap_err();
    assert!(e.contains("Application argocd/web-oci"), "{e}");
    // Secrets the service account may not read: a clear error naming the namespace.
    w.server.faults(|f| {
        f.forbidden.insert("secrets".into());
    });
    let e = load(&w, "{type: argocd, application: web-http}").unwrap_err();
    assert!(
        e.contains("Application argocd/web-http: reading the Argo CD `repository` Secrets in namespace `argocd`"),
        "{e}"
    );
    assert!(e.contains("403"), "{e}");
    assert!(e.contains("namespace `argocd`"), "{e}");
    assert!(e.contains("docs/gitops.md"), "{e}");
}

/// `envdrift render` and `scan` with trace logs: neither output nor logs show a password.
#[test]
fn credentials_never_reach_output_or_logs() {
    let w = world();
    let cfg = w.dir.join("scan.yaml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir: {data}\nenvironments:\n  http:\n    desired: {{type: argocd, application: web-http}}\n    live: {{type: cluster, kubeconfig: {kc}, context: gitops, namespaces: [shop]}}\n  bad:\n    desired: {{type: flux, helmrelease: flux-system/hr-bad}}\n    live: {{type: cluster, kubeconfig: {kc}, context: gitops, namespaces: [shop]}}\n  oci:\n    desired: {{type: flux, helmrelease: flux-system/hr-oci}}\n    live: {{type: cluster, kubeconfig: {kc}, context: gitops, namespaces: [shop]}}\n",
            data = w.dir.join("data").display(),
            kc = w.kubeconfig.display()
        ),
    )
    .unwrap();
    for args in [
        vec!["render", "--env", "http"],
        vec!["render", "--env", "oci"],
        vec!["render", "--env", "bad"],
        vec!["scan", "-f", "json"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_envdrift"))
            .args(&args)
            .args(["--log-level", "trace", "--config"])
            .arg(&cfg)
            .env("PATH", tool_path())
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for pw in [HTTP_PW, OCI_PW, WRONG_PW] {
            assert!(!all.contains(pw), "{args:?}: {pw} leaked\n{all}");
            assert!(
                !all.contains(&b64(pw)),
                "{args:?}: {pw} leaked (base64)\n{all}"
            );
        }
        if args[2] == "http" {
            assert!(all.contains("web-http-config"), "{args:?}: {all}");
        }
        if args[2] == "bad" {
            assert_ne!(out.status.code(), Some(0), "{all}");
            assert!(all.contains("hr-bad"), "{all}");
        }
    }
    // Nothing envdrift left in its data directory (chart cache, store) holds a password:
    // helm's private home with its registry login and repositories file is gone.
    let mut files = Vec::new();
    let mut dirs = vec![w.dir.join("data")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    assert!(
        files.iter().any(|f| f.ends_with("web/Chart.yaml")),
        "{files:?}"
    );
    for f in &files {
        let data = std::fs::read(f).unwrap();
        for pw in [HTTP_PW, OCI_PW, WRONG_PW] {
            let hit = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
            assert!(
                !hit(pw.as_bytes()) && !hit(b64(pw).as_bytes()),
                "{} holds {pw}",
                f.display()
            );
        }
        assert!(
            !f.ends_with("registry.json") && !f.ends_with("repositories.yaml"),
            "{}",
            f.display()
        );
    }
}

#[path = "common/git_https.rs"]
mod git_https;

#[path = "common/git.rs"]
mod git_cmd;
use git_cmd::git;

/// Git over HTTPS with Basic auth: the password of an Argo CD repository Secret and of a
/// Flux GitRepository's secretRef fetch the repository; a wrong one is the environment's
/// error; neither shows in output or trace logs.
#[test]
fn git_credentials_from_argocd_and_flux_secrets() {
    const GIT_PW: &str = "git-pw-Hh55SECRET";
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    write(
        &work,
        "apps/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: private-settings\ndata:\n  a: b\n",
    );
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "apps"]);
    let served = dir.join("served");
    std::fs::create_dir_all(&served).unwrap();
    git(
        dir,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            served.join("deploy.git").to_str().unwrap(),
        ],
    );
    let (port, ca) = git_https::https_git_server(served, "bot", GIT_PW, 200, dir);
    let url = format!("https://127.0.0.1:{port}/deploy.git");
    let server = ApiServer::start();
    kit::install(&server);
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig("gitops")).unwrap();
    let put = |v: Value| {
        server.insert(v, "kubectl-client-side-apply").unwrap();
    };
    put(secret(
        "argocd",
        "repo-deploy",
        json!({"argocd.argoproj.io/secret-type": "repository"}),
        &[
            ("type", "git"),
            ("url", &url),
            ("username", "bot"),
            ("password", GIT_PW),
        ],
    ));
    put(kit::application(
        "private",
        json!({"repoURL": url, "path": "apps", "targetRevision": "main"}),
        "shop",
    ));
    for (name, pw) in [("git-auth", GIT_PW), ("git-bad", WRONG_PW)] {
        put(secret(
            "flux-system",
            name,
            json!({}),
            &[("username", "bot"), ("password", pw)],
        ));
        let mut repo = kit::git_repository("flux-system", name, &url, json!({"branch": "main"}));
        repo["spec"]["secretRef"] = json!({"name": name});
        put(repo);
        put(kit::kustomization(
            "flux-system",
            name,
            name,
            "./apps",
            json!({"targetNamespace": "shop"}),
        ));
    }
    let cfg = dir.join("envdrift.yaml");
    let live = format!(
        "{{type: cluster, kubeconfig: {}, context: gitops, namespaces: [shop]}}",
        kubeconfig.display()
    );
    std::fs::write(
        &cfg,
        format!(
            "data_dir: {data}\nenvironments:\n  argo:\n    desired: {{type: argocd, application: private}}\n    live: {live}\n  flux:\n    desired: {{type: flux, kustomization: flux-system/git-auth}}\n    live: {live}\n  bad:\n    desired: {{type: flux, kustomization: flux-system/git-bad}}\n    live: {live}\n",
            data = dir.join("data").display()
        ),
    )
    .unwrap();
    // A wrong password with nothing fetched yet fails; once the repository is in the
    // cache, it is a stale fetch (warned about) like any failed fetch of a Git source.
    for (i, env) in ["bad", "argo", "flux", "bad"].into_iter().enumerate() {
        let out = Command::new(env!("CARGO_BIN_EXE_envdrift"))
            .args(["render", "--env", env, "--log-level", "trace", "--config"])
            .arg(&cfg)
            .env("PATH", tool_path())
            .env("SSL_CERT_FILE", &ca)
            .env("GIT_SSL_CAINFO", &ca)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for pw in [GIT_PW, WRONG_PW] {
            assert!(!all.contains(pw), "{env}: {pw} leaked\n{all}");
            assert!(!all.contains(&b64(pw)), "{env}: {pw} leaked\n{all}");
        }
        if env == "bad" && i > 0 {
            assert!(
                all.contains("fetch failed; using the last fetched commit"),
                "{all}"
            );
        } else if env == "bad" {
            assert_eq!(out.status.code(), Some(2), "{all}");
            assert!(all.contains("not accepted by the remote"), "{all}");
            assert!(
                all.contains("credentials from Secret flux-system/git-bad"),
                "{all}"
            );
            assert!(all.contains("kustomization:flux-system/git-bad"), "{all}");
        } else {
            assert_eq!(out.status.code(), Some(0), "{env}: {all}");
            assert!(all.contains("private-settings"), "{env}: {all}");
        }
    }
}
