//! Fidelity of the Kubernetes API test server, proven with the real `kubectl`.

mod support;

use serde_json::Value;
use support::apiserver::ApiServer;
use support::kubectl::{Kubectl, require_kubectl};

fn setup() -> Option<(ApiServer, Kubectl, tempfile::TempDir)> {
    let bin = require_kubectl()?;
    let server = ApiServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig("test")).expect("write kubeconfig");
    Some((server, Kubectl { bin, kubeconfig }, dir))
}

#[test]
fn kubectl_version_and_discovery() {
    let Some((_server, k, _dir)) = setup() else { return };
    let out = k.run(&["version", "-o", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["serverVersion"]["gitVersion"], "v1.37.0-envdrift-test");
    let out = k.run(&["api-resources", "--no-headers"]);
    assert!(out.contains("deployments"), "{out}");
}

/// For manual exploration: `cargo test --test apiserver serve_forever -- --ignored` writes
/// `$TMPDIR/envdrift-apiserver.kubeconfig` and serves for 10 minutes.
#[test]
#[ignore = "manual: serves for 10 minutes"]
fn serve_forever() {
    let server = ApiServer::start();
    let path = std::env::temp_dir().join("envdrift-apiserver.kubeconfig");
    std::fs::write(&path, server.kubeconfig("test")).unwrap();
    eprintln!("kubeconfig: {}", path.display());
    std::thread::sleep(std::time::Duration::from_secs(600));
}
