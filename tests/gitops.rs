//! Environments from GitOps objects, end to end: Argo CD Applications and Flux
//! Kustomizations / HelmReleases stored on the Kubernetes API test server (with the
//! projects' real CRDs, `crates/testkit/data/gitops`), rendered from a real local Git
//! repository (`file://`) with the real kustomize and helm (`.tools`), give the same
//! desired objects as the equivalent plain Git source; what cannot be applied is reported
//! naming the object and field; `envdrift discover` prints a config that loads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use envdrift::config::{Config, SourceConfig};
use envdrift::model::{ResourceKey, Snapshot};
use envdrift::source::git::{GitAuth, GitSpec, SyncOptions};
use envdrift::source::render::{HelmOptions, RenderOptions, Renderer};
use envdrift::source::{Ctx, GitSource, Loaded, SourceSpec, open};
use envdrift_testkit::apiserver::ApiServer;
use envdrift_testkit::gitops as kit;
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool_dirs() -> Vec<PathBuf> {
    vec![root().join(".tools/bin"), root().join(".tools/venv/bin")]
}

#[path = "common/git.rs"]
mod git_cmd;
use git_cmd::git;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: guestbook-ui\n  labels: {app: guestbook}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: guestbook}\n  template:\n    metadata:\n      labels: {app: guestbook}\n    spec:\n      containers:\n      - name: ui\n        image: nginx:1.24\n        ports:\n        - containerPort: 80\n";
const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: guestbook-ui\nspec:\n  selector: {app: guestbook}\n  ports:\n  - port: 80\n    targetPort: 80\n";
const CHART: &str = "apiVersion: v2\nname: web\nversion: 0.1.0\n";
const CHART_VALUES: &str =
    "replicas: 1\nimage:\n  repository: nginx\n  tag: \"1.0\"\nmessage: hello\n";
const CHART_DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n  namespace: {{ .Release.Namespace }}\nspec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels: {app: {{ .Release.Name }}}\n  template:\n    metadata:\n      labels: {app: {{ .Release.Name }}}\n    spec:\n      containers:\n      - name: web\n        image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"\n";
const CHART_CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n  namespace: {{ .Release.Namespace }}\ndata:\n  message: {{ .Values.message | quote }}\n";
const FLUX_CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  env: ${cluster_env}\n  region: ${region:=us}\n  literal: $${keep}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: script\n  annotations:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n  run: echo ${cluster_env}\n";

/// A repository with a Kustomize app, a chart, a directory for Flux, and the equivalent
/// plain sources (`equivalent/`) written by hand as the GitOps tools would render them.
fn make_repo(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    write(
        dir,
        "apps/guestbook/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\n",
    );
    write(dir, "apps/guestbook/deployment.yaml", DEPLOYMENT);
    write(dir, "apps/guestbook/service.yaml", SERVICE);
    write(dir, "charts/web/Chart.yaml", CHART);
    write(dir, "charts/web/values.yaml", CHART_VALUES);
    write(
        dir,
        "charts/web/templates/deployment.yaml",
        CHART_DEPLOYMENT,
    );
    write(dir, "charts/web/templates/configmap.yaml", CHART_CONFIGMAP);
    write(dir, "envs/prod-values.yaml", "replicas: 3\n");
    write(dir, "flux/apps/configmap.yaml", FLUX_CONFIGMAP);
    write(dir, "flux/apps/README.md", "not a manifest\n");
    // What Argo CD renders for the guestbook Application below.
    write(
        dir,
        "equivalent/guestbook/kustomization.yaml",
        "resources:\n- ../../apps/guestbook\nnamePrefix: prod-\nimages:\n- name: nginx\n  newTag: \"1.25\"\ncommonLabels:\n  team: shop\n",
    );
    // The inline values of the Helm Application / HelmRelease as a file.
    write(
        dir,
        "charts/web/inline-equivalent.yaml",
        "message: from-argo\n",
    );
    write(
        dir,
        "charts/web/flux-equivalent.yaml",
        "message: from-flux\nreplicas: 5\n",
    );
    // What Flux renders for the Kustomization below.
    write(
        dir,
        "equivalent/flux/kustomization.yaml",
        "namespace: shop-flux\nresources:\n- configmap.yaml\nlabels:\n- pairs: {team: shop}\n  includeSelectors: false\n",
    );
    write(
        dir,
        "equivalent/flux/configmap.yaml",
        &FLUX_CONFIGMAP
            .replacen("${cluster_env}", "prod", 1)
            .replace("${region:=us}", "eu")
            .replace("$${keep}", "${keep}"),
    );
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "apps"]);
    git(dir, &["tag", "v1.2.0"]);
    git(dir, &["tag", "v1.3.0-rc.1"]);
    format!("file://{}", dir.display())
}

struct World {
    _tmp: tempfile::TempDir,
    server: ApiServer,
    kubeconfig: PathBuf,
    dir: PathBuf,
    url: String,
}

fn objects(url: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut put = |v: Value| out.push(v);
    put(kit::application(
        "guestbook",
        json!({"repoURL": url, "path": "apps/guestbook", "targetRevision": "main",
               "kustomize": {"namePrefix": "prod-", "images": ["nginx:1.25"], "commonLabels": {"team": "shop"}}}),
        "guestbook",
    ));
    put(kit::application(
        "web-prod",
        json!({"repoURL": url, "path": "charts/web", "targetRevision": "v1.*",
               "helm": {"valueFiles": ["../../envs/prod-values.yaml"],
                        "valuesObject": {"message": "from-argo"},
                        "parameters": [{"name": "image.tag", "value": "2.0"}]}}),
        "shop",
    ));
    put(kit::application(
        "web-files",
        json!({"repoURL": url, "path": "charts/web", "targetRevision": "main",
               "helm": {"fileParameters": [{"name": "config", "path": "files/config.json"}],
                        "parameters": [{"name": "message", "value": "x", "forceString": true}]}}),
        "shop",
    ));
    put(kit::application(
        "remote-chart",
        json!({"repoURL": "https://charts.example.com", "chart": "web", "targetRevision": "1.2.3"}),
        "shop",
    ));
    put(kit::git_repository(
        "flux-system",
        "fleet",
        url,
        json!({"branch": "main"}),
    ));
    put(json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "cluster-vars", "namespace": "flux-system"},
               "data": {"region": "eu", "cluster_env": "staging"}}));
    put(json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "web-values", "namespace": "flux-system"},
               "data": {"values.yaml": "replicas: 5\n"}}));
    put(kit::kustomization(
        "flux-system",
        "apps",
        "fleet",
        "./flux/apps",
        json!({"targetNamespace": "shop-flux",
               "commonMetadata": {"labels": {"team": "shop"}},
               "postBuild": {"substitute": {"cluster_env": "prod"},
                             "substituteFrom": [{"kind": "ConfigMap", "name": "cluster-vars"},
                                                {"kind": "Secret", "name": "missing", "optional": true}]}}),
    ));
    put(kit::helm_release(
        "flux-system",
        "web",
        "fleet",
        "./charts/web",
        json!({"targetNamespace": "shop",
               "valuesFrom": [{"kind": "ConfigMap", "name": "web-values"}],
               "values": {"message": "from-flux"}}),
    ));
    out
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let url = make_repo(&dir.join("repo"));
    let server = ApiServer::start();
    kit::install(&server);
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig("gitops")).unwrap();
    for v in objects(&url) {
        server.insert(v, "kubectl-client-side-apply").unwrap();
    }
    World {
        _tmp: tmp,
        server,
        kubeconfig,
        dir,
        url,
    }
}

fn ctx<'a>(side: &'a str, ns: &'a str) -> Ctx<'a> {
    Ctx {
        side,
        default_namespace: ns,
        cluster_scoped_kinds: &[],
        caches: None,
        on_file: &|_| {},
    }
}

/// The spec of a config's desired block (the environment's live cluster inherited), with
/// the test's tools.
fn desired_spec(w: &World, desired: &str) -> SourceSpec {
    let text = format!(
        "environments:\n  e:\n    desired: {desired}\n    live:\n      type: cluster\n      kubeconfig: {}\n      context: gitops\n",
        w.kubeconfig.display()
    );
    let path = w.dir.join("envdrift.yaml");
    std::fs::write(&path, &text).unwrap();
    let cfg = Config::load(&path).unwrap_or_else(|p| panic!("{p:?}"));
    let env = &cfg.environments["e"];
    assert!(matches!(
        env.desired,
        SourceConfig::Argocd(_) | SourceConfig::Flux(_)
    ));
    let mut spec = env
        .desired
        .spec(&w.dir, &w.dir.join("data"), "desired")
        .unwrap();
    if let SourceSpec::GitOps(g) = &mut spec {
        g.extra_path = tool_dirs();
    }
    spec
}

fn plain_git(
    w: &World,
    reference: &str,
    path: &str,
    renderer: Renderer,
    helm: HelmOptions,
) -> SourceSpec {
    SourceSpec::Git(Box::new(GitSource {
        spec: GitSpec {
            repo: w.url.clone(),
            reference: reference.into(),
            path: path.into(),
        },
        auth: GitAuth::default(),
        sync: SyncOptions {
            cache_dir: w.dir.join("plain-cache"),
            ..SyncOptions::default()
        },
        render: RenderOptions {
            renderer: Some(renderer),
            helm,
            extra_path: tool_dirs(),
            ..RenderOptions::default()
        },
    }))
}

fn values(s: &Snapshot) -> BTreeMap<ResourceKey, Value> {
    s.objects
        .iter()
        .map(|(k, o)| (k.clone(), o.value.clone()))
        .collect()
}

fn load(spec: &SourceSpec, ns: &str) -> Loaded {
    open(spec, &ctx("desired", ns)).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_same(gitops: &Loaded, plain: &Loaded) {
    assert!(!gitops.snapshot.objects.is_empty());
    assert!(
        gitops.snapshot.errors.is_empty(),
        "{:?}",
        gitops.snapshot.errors
    );
    assert_eq!(values(&gitops.snapshot), values(&plain.snapshot));
}

#[test]
fn argocd_kustomize_application_renders_like_the_equivalent_git_source() {
    let w = world();
    let gitops = load(
        &desired_spec(&w, "{type: argocd, application: guestbook}"),
        "default",
    );
    let plain = load(
        &plain_git(
            &w,
            "main",
            "equivalent/guestbook",
            Renderer::Kustomize,
            HelmOptions::default(),
        ),
        "guestbook",
    );
    assert_same(&gitops, &plain);
    let d = &gitops.snapshot.objects;
    let names: Vec<String> = d
        .keys()
        .map(|k| {
            format!(
                "{} {}/{}",
                k.kind,
                k.namespace.as_deref().unwrap_or("-"),
                k.name
            )
        })
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    for want in [
        "Service guestbook/prod-guestbook-ui",
        "Deployment guestbook/prod-guestbook-ui",
    ] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }
    let dep = d
        .iter()
        .find(|(k, _)| k.kind == "Deployment")
        .map(|(_, o)| &o.value)
        .unwrap();
    assert_eq!(
        dep.pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("nginx:1.25"))
    );
    assert_eq!(dep.pointer("/metadata/labels/team"), Some(&json!("shop")));
    let desc = &gitops.snapshot.source.as_ref().unwrap().description;
    assert!(
        desc.starts_with("argocd:argocd/guestbook (cluster:gitops) → "),
        "{desc}"
    );
}

#[test]
fn argocd_helm_application_renders_like_the_equivalent_git_source() {
    let w = world();
    // `v1.*` is a semver range: the highest matching tag (v1.2.0; not the pre-release).
    let gitops = load(
        &desired_spec(&w, "{type: argocd, application: web-prod}"),
        "default",
    );
    let plain = load(
        &plain_git(
            &w,
            "v1.2.0",
            "charts/web",
            Renderer::Helm,
            HelmOptions {
                release: Some("web-prod".into()),
                namespace: Some("shop".into()),
                values: vec![
                    "../../envs/prod-values.yaml".into(),
                    "inline-equivalent.yaml".into(),
                ],
                set: vec!["image.tag=2.0".into()],
            },
        ),
        "shop",
    );
    assert_same(&gitops, &plain);
    let dep = gitops
        .snapshot
        .objects
        .iter()
        .find(|(k, _)| k.kind == "Deployment")
        .map(|(k, o)| (k.clone(), o.value.clone()))
        .unwrap();
    assert_eq!(dep.0.name, "web-prod");
    assert_eq!(dep.0.namespace.as_deref(), Some("shop"));
    assert_eq!(dep.1.pointer("/spec/replicas"), Some(&json!(3)));
    assert_eq!(
        dep.1.pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("nginx:2.0"))
    );
    assert_eq!(
        gitops.snapshot.source.as_ref().unwrap().commit,
        plain.snapshot.source.as_ref().unwrap().commit
    );
}

#[test]
fn flux_kustomization_renders_like_the_equivalent_git_source() {
    let w = world();
    let gitops = load(
        &desired_spec(&w, "{type: flux, kustomization: flux-system/apps}"),
        "default",
    );
    let plain = load(
        &plain_git(
            &w,
            "main",
            "equivalent/flux",
            Renderer::Kustomize,
            HelmOptions::default(),
        ),
        "default",
    );
    assert_same(&gitops, &plain);
    let settings = gitops
        .snapshot
        .objects
        .iter()
        .find(|(k, _)| k.name == "settings")
        .map(|(k, o)| (k.clone(), o.value.clone()))
        .unwrap();
    assert_eq!(settings.0.namespace.as_deref(), Some("shop-flux"));
    // Inline `substitute` wins over `substituteFrom`; `:=` defaults; `$${}` escapes.
    assert_eq!(
        settings.1["data"],
        json!({"env": "prod", "region": "eu", "literal": "${keep}"})
    );
    let script = gitops
        .snapshot
        .objects
        .iter()
        .find(|(k, _)| k.name == "script")
        .map(|(_, o)| o.value.clone())
        .unwrap();
    assert_eq!(script["data"]["run"], json!("echo ${cluster_env}"));
}

#[test]
fn flux_helmrelease_renders_like_the_equivalent_git_source() {
    let w = world();
    let gitops = load(
        &desired_spec(&w, "{type: flux, helmrelease: flux-system/web}"),
        "default",
    );
    let plain = load(
        &plain_git(
            &w,
            "main",
            "charts/web",
            Renderer::Helm,
            HelmOptions {
                release: Some("shop-web".into()),
                namespace: Some("shop".into()),
                values: vec!["flux-equivalent.yaml".into()],
                set: Vec::new(),
            },
        ),
        "shop",
    );
    assert_same(&gitops, &plain);
    assert!(
        gitops
            .snapshot
            .objects
            .keys()
            .any(|k| k.name == "shop-web-config" && k.namespace.as_deref() == Some("shop"))
    );
}

#[test]
fn unmappable_fields_are_reported_naming_the_object_and_field() {
    let w = world();
    let loaded = load(
        &desired_spec(&w, "{type: argocd, application: web-files}"),
        "default",
    );
    let errors: Vec<String> = loaded
        .snapshot
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("Application argocd/web-files")
            && errors[0].contains("spec.source.helm.parameters[0].forceString"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("spec.source.helm.fileParameters")
            && errors[1].contains("not applied by envdrift"),
        "{errors:?}"
    );
    // The objects are still rendered.
    assert!(!loaded.snapshot.objects.is_empty());
}

#[test]
fn errors_name_the_object_and_field() {
    let w = world();
    let err = |desired: &str| {
        open(&desired_spec(&w, desired), &ctx("desired", "default"))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let e = err("{type: argocd, application: remote-chart}");
    // A chart from an unreachable Helm repository: the error names the Application, the
    // chart and the repository.
    assert!(
        e.contains("Application argocd/remote-chart: chart `web` 1.2.3 from https://charts.example.com: reading the repository index"),
        "{e}"
    );
    let e = err("{type: argocd, application: nope}");
    assert!(e.contains("Application argocd/nope not found"), "{e}");
    let e = err("{type: flux, kustomization: flux-system/nope}");
    assert!(
        e.contains("Kustomization flux-system/nope not found"),
        "{e}"
    );
    // A bad block is a config error at its key.
    let path = w.dir.join("bad.yaml");
    std::fs::write(
        &path,
        "environments:\n  e:\n    desired: {type: flux, kustomization: apps}\n    live: {type: cluster, context: gitops}\n",
    )
    .unwrap();
    let problems: Vec<String> = Config::load(&path)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("environments.e.desired.kustomization")
            && problems[0].contains("NAMESPACE/NAME"),
        "{problems:?}"
    );
    let _ = &w.server;
}

#[test]
fn discover_lists_the_objects_and_prints_a_config_that_loads() {
    let w = world();
    let out = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args(["discover", "--live", "cluster:gitops", "--kubeconfig"])
        .arg(&w.kubeconfig)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("6 GitOps objects found"), "{stderr}");
    for line in [
        "#   Application argocd/guestbook -> ",
        "#   Kustomization flux-system/apps -> GitRepository fleet:./flux/apps (namespace shop-flux)",
        "#   HelmRelease flux-system/web -> GitRepository fleet chart ./charts/web (namespace shop)",
    ] {
        assert!(stdout.contains(line), "{line}\n{stdout}");
    }
    // What a person reads, pinned (the temporary paths and the server's port replaced).
    let pinned = stdout
        .replace(&w.dir.display().to_string(), "[tmp]")
        .replace(&w.server.addr.port().to_string(), "[port]");
    insta::assert_snapshot!("discover_config", pinned);
    let path = w.dir.join("discovered.yaml");
    std::fs::write(&path, &stdout).unwrap();
    let cfg = Config::load(&path).unwrap_or_else(|p| panic!("{p:?}\n{stdout}"));
    assert_eq!(cfg.environments.len(), 6, "{stdout}");
    let web = &cfg.environments["web"];
    assert!(
        matches!(&web.desired, SourceConfig::Flux(f) if f.helmrelease.as_deref() == Some("flux-system/web")),
        "{stdout}"
    );
    let gb = &cfg.environments["guestbook"];
    assert!(
        matches!(&gb.desired, SourceConfig::Argocd(a) if a.application == "guestbook"),
        "{stdout}"
    );
    match &gb.live {
        SourceConfig::Cluster(c) => {
            assert_eq!(c.context.as_deref(), Some("gitops"));
            assert_eq!(c.namespaces, ["guestbook"]);
        }
        other => panic!("{other:?}"),
    }
    // The printed config drives a scan: the guestbook's desired side renders.
    let spec = cfg.environments["apps"]
        .desired
        .spec(&w.dir, &w.dir.join("data"), "desired")
        .unwrap();
    let SourceSpec::GitOps(mut g) = spec else {
        panic!("not a GitOps source")
    };
    g.extra_path = tool_dirs();
    let loaded = load(&SourceSpec::GitOps(g), "default");
    assert!(loaded.snapshot.objects.keys().any(|k| k.name == "settings"));
}

#[test]
fn discover_on_a_cluster_without_gitops_tools_says_so() {
    let server = ApiServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let kc = tmp.path().join("kubeconfig");
    std::fs::write(&kc, server.kubeconfig("bare")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args(["discover", "--live", "cluster:bare", "--kubeconfig"])
        .arg(&kc)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("# No Argo CD Application, Flux Kustomization or HelmRelease was found."),
        "{stdout}"
    );
    assert!(
        stdout.contains("# Not served by the cluster: applications.argoproj.io"),
        "{stdout}"
    );
    let path = tmp.path().join("c.yaml");
    std::fs::write(&path, &stdout).unwrap();
    assert!(Config::load(&path).is_ok(), "{stdout}");
}

fn tool_path() -> std::ffi::OsString {
    let mut dirs = tool_dirs();
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

fn scan_config(w: &World, env: &str, desired: &str, namespaces: &str) -> PathBuf {
    let path = w.dir.join(format!("{env}.yaml"));
    std::fs::write(
        &path,
        format!(
            "data_dir: {data}\nenvironments:\n  {env}:\n    desired: {desired}\n    live:\n      type: cluster\n      kubeconfig: {kc}\n      context: gitops\n      namespaces: [{namespaces}]\n",
            data = w.dir.join("data").display(),
            kc = w.kubeconfig.display()
        ),
    )
    .unwrap();
    path
}

/// `envdrift scan` of an Argo CD environment whose cluster runs what the Application
/// renders: no drift; after a `kubectl edit`-like change of the image: that one drift.
#[test]
fn scan_of_an_argocd_environment_end_to_end() {
    let w = world();
    let rendered = load(
        &desired_spec(&w, "{type: argocd, application: guestbook}"),
        "default",
    );
    for obj in rendered.snapshot.objects.values() {
        w.server
            .insert(obj.value.clone(), "argocd-controller")
            .unwrap();
    }
    let cfg = scan_config(
        &w,
        "guestbook",
        "{type: argocd, application: guestbook}",
        "guestbook",
    );
    let scan = || {
        Command::new(env!("CARGO_BIN_EXE_envdrift"))
            .args(["scan", "--config"])
            .arg(&cfg)
            .args(["--env", "guestbook", "-f", "json"])
            .env("PATH", tool_path())
            .output()
            .unwrap()
    };
    let out = scan();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["drifts"], json!([]), "{stdout}");
    // Someone changes the image by hand.
    let mut dep = w
        .server
        .object("deployments.apps", "guestbook", "prod-guestbook-ui")
        .unwrap();
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    w.server
        .remove("deployments.apps", "guestbook", "prod-guestbook-ui");
    w.server.insert(dep, "kubectl-edit").unwrap();
    let out = scan();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("nginx:1.25") && stdout.contains("nginx:1.26"),
        "{stdout}"
    );
}

/// Secret values read for `substituteFrom` reach neither logs nor output.
#[test]
fn secrets_read_for_substitution_never_reach_logs_or_output() {
    let w = world();
    let secret = "hunter2-very-secret-value";
    use base64::Engine;
    w.server
        .insert(
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "db-creds", "namespace": "flux-system"},
                   "data": {"password": base64::engine::general_purpose::STANDARD.encode(secret)}}),
            "kubectl-client-side-apply",
        )
        .unwrap();
    w.server
        .insert(
            kit::kustomization(
                "flux-system",
                "db",
                "fleet",
                "./flux/db",
                json!({"targetNamespace": "db",
                       "postBuild": {"substituteFrom": [{"kind": "Secret", "name": "db-creds"}]}}),
            ),
            "kubectl-client-side-apply",
        )
        .unwrap();
    // The manifest is in the repository's next commit.
    let repo = w.dir.join("repo");
    write(
        &repo,
        "flux/db/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-password\nstringData:\n  password: ${password}\n",
    );
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "db"]);
    let cfg = scan_config(
        &w,
        "db",
        "{type: flux, kustomization: flux-system/db}",
        "db",
    );
    for args in [
        vec!["scan", "--env", "db", "-f", "json", "--log-level", "trace"],
        vec!["render", "--env", "db", "--log-level", "trace"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_envdrift"))
            .args(&args)
            .arg("--config")
            .arg(&cfg)
            .env("PATH", tool_path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            stdout.contains("db-password"),
            "{args:?}: {stdout}\n{stderr}"
        );
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{args:?}: the secret leaked\n{stdout}\n{stderr}"
        );
        // The substituted value is there, as its hash.
        use sha2::Digest;
        let hex: String = sha2::Sha256::digest(secret.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            stdout.contains(&format!("sha256:{}", &hex[..12])),
            "{args:?}: not substituted\n{stdout}"
        );
    }
}

/// The fields of `v` that `schema` (OpenAPI v3, structural) does not define.
fn unknown_fields(v: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true)) {
        return;
    }
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (k, child) in m {
                let p = format!("{path}.{k}");
                if let Some(s) = props.and_then(|ps| ps.get(k)) {
                    unknown_fields(child, s, &p, out);
                } else if let Some(a) = additional.filter(|a| a.is_object()) {
                    unknown_fields(child, a, &p, out);
                } else if additional != Some(&json!(true)) {
                    out.push(p);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, x) in items.iter().enumerate() {
                    unknown_fields(x, s, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// The test objects are real-looking: every field of their spec and status is one the
/// projects' CRDs define (for the served version).
#[test]
fn test_objects_match_the_real_crds() {
    let crds: Vec<Value> = kit::CRDS.iter().map(|f| kit::crd(f)).collect();
    let mut checked = 0;
    for obj in objects("file:///repo") {
        let api = obj["apiVersion"].as_str().unwrap();
        let Some((group, version)) = api.split_once('/') else {
            continue;
        };
        let kind = obj["kind"].as_str().unwrap();
        let crd = crds
            .iter()
            .find(|c| c["spec"]["group"] == group && c["spec"]["names"]["kind"] == kind)
            .unwrap_or_else(|| panic!("no CRD for {api} {kind}"));
        let schema = crd["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == version)
            .map(|v| v["schema"]["openAPIV3Schema"].clone())
            .unwrap_or_else(|| panic!("{kind}: no version {version}"));
        let mut unknown = Vec::new();
        for part in ["spec", "status"] {
            unknown_fields(&obj[part], &schema["properties"][part], part, &mut unknown);
        }
        assert!(
            unknown.is_empty(),
            "{kind} {}: {unknown:?}",
            obj["metadata"]["name"]
        );
        checked += 1;
    }
    assert_eq!(checked, 7);
}
