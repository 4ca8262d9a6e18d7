//! Argo CD and Flux on the Kubernetes API test server: their real CRDs (`data/gitops/`,
//! copied from the projects' repositories; see its README for sources and licenses),
//! registered like any CRD, and builders of real-looking objects (the fields and status
//! the controllers write), stored as ordinary custom resources.
//!
//! Entry point: [`install`] registers the CRDs on a server.

use serde_json::{Value, json};

use crate::apiserver::ApiServer;

/// The CRD files, in `data/gitops/`.
pub const CRDS: &[&str] = &[
    "argocd-application-crd.yaml",
    "flux-kustomizations-crd.yaml",
    "flux-helmreleases-crd.yaml",
    "flux-gitrepositories-crd.yaml",
    "flux-helmrepositories-crd.yaml",
    "flux-ocirepositories-crd.yaml",
];

/// The `data/gitops` directory.
pub fn data_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/gitops")
}

/// One CRD file, parsed.
///
/// # Panics
/// When the file is missing or not YAML (test data).
pub fn crd(file: &str) -> Value {
    let p = data_dir().join(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Registers the Argo CD Application and the Flux CRDs on `server`.
pub fn install(server: &ApiServer) {
    for f in CRDS {
        server.register_crd(&crd(f));
    }
}

/// An Argo CD Application as the API holds it after a sync: `spec.source` (or `sources`
/// when `source` is an array), a destination, a sync policy, and the status Argo CD writes.
pub fn application(name: &str, source: Value, dest_namespace: &str) -> Value {
    let mut spec = json!({
        "project": "default",
        "destination": {"server": "https://kubernetes.default.svc", "namespace": dest_namespace},
        "syncPolicy": {"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]},
    });
    if source.is_array() {
        spec["sources"] = source;
    } else {
        spec["source"] = source;
    }
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": name,
            "namespace": "argocd",
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
            "labels": {"app.kubernetes.io/part-of": "shop"},
        },
        "spec": spec,
        "status": {
            "sync": {"status": "Synced", "revision": "0123456789abcdef0123456789abcdef01234567"},
            "health": {"status": "Healthy"},
            "sourceType": "Kustomize",
            "reconciledAt": "2026-12-01T10:00:00Z",
        },
    })
}

/// A Flux GitRepository (source.toolkit.fluxcd.io/v1) with a ready artifact status.
pub fn git_repository(namespace: &str, name: &str, url: &str, reference: Value) -> Value {
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"interval": "1m0s", "timeout": "60s", "url": url, "ref": reference},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                            "message": "stored artifact for revision 'main@sha1:0123'",
                            "lastTransitionTime": "2026-12-01T10:00:00Z"}],
            "artifact": {"path": format!("gitrepository/{namespace}/{name}/0123.tar.gz"),
                         "revision": "main@sha1:0123456789abcdef0123456789abcdef01234567",
                         "digest": "sha256:00", "lastUpdateTime": "2026-12-01T10:00:00Z", "size": 1024},
        },
    })
}

/// A Flux Kustomization (kustomize.toolkit.fluxcd.io/v1); `extra` is merged into `spec`.
pub fn kustomization(namespace: &str, name: &str, repo: &str, path: &str, extra: Value) -> Value {
    let mut spec = json!({
        "interval": "10m0s",
        "retryInterval": "2m0s",
        "prune": true,
        "wait": true,
        "timeout": "5m0s",
        "path": path,
        "sourceRef": {"kind": "GitRepository", "name": repo},
    });
    merge(&mut spec, extra);
    json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": namespace,
                     "finalizers": ["finalizers.fluxcd.io"]},
        "spec": spec,
        "status": {"lastAppliedRevision": "main@sha1:0123456789abcdef0123456789abcdef01234567",
                   "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                                   "message": "Applied revision: main@sha1:0123",
                                   "lastTransitionTime": "2026-12-01T10:00:00Z"}]},
    })
}

/// A Flux HelmRelease (helm.toolkit.fluxcd.io/v2) of a chart in a GitRepository; `extra`
/// is merged into `spec`.
pub fn helm_release(namespace: &str, name: &str, repo: &str, chart: &str, extra: Value) -> Value {
    let mut spec = json!({
        "interval": "5m0s",
        "chart": {"spec": {"chart": chart, "reconcileStrategy": "Revision",
                           "sourceRef": {"kind": "GitRepository", "name": repo}}},
        "install": {"remediation": {"retries": 3}},
    });
    merge(&mut spec, extra);
    json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": namespace,
                     "finalizers": ["finalizers.fluxcd.io"]},
        "spec": spec,
        "status": {"lastAttemptedRevision": "0.1.0",
                   "conditions": [{"type": "Ready", "status": "True", "reason": "InstallSucceeded",
                                   "message": "Helm install succeeded",
                                   "lastTransitionTime": "2026-12-01T10:00:00Z"}]},
    })
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(m), Value::Object(e)) = (into.as_object_mut(), extra) {
        for (k, v) in e {
            m.insert(k, v);
        }
    }
}
