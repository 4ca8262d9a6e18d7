//! Schemas from the cluster's own OpenAPI v3 documents (`/openapi/v3`), against the API
//! test server, which serves the real Kubernetes documents and, for the real CRDs of
//! tests/fixtures/crds/ registered with it, documents built from their schemas the way
//! kube-apiserver builds them. No CRD object is on either side here: the cluster's
//! documents alone must explain the live side's defaults and list order.

use std::path::PathBuf;
use std::time::Duration;

use envdrift::diff::{Comparison, DiffResult, Options};
use envdrift::model::{Drift, Snapshot};
use envdrift::source::dump::{LoadOptions, load_text};
use envdrift::source::kube::{
    ClusterTarget, KubeOptions, LiveSnapshot, ObjectCache, connect, snapshot,
};
use envdrift::source::manifest::parse_manifest_text;
use envdrift_testkit::apiserver::{ApiServer, Faults};
use serde_json::Value;

/// (fixture, kind, group, whether the pair differs when no schema explains it).
const FIXTURES: &[(&str, &str, &str, bool)] = &[
    ("argo-rollouts-rollout", "Rollout", "argoproj.io", true),
    (
        "prometheus-operator-servicemonitor",
        "ServiceMonitor",
        "monitoring.coreos.com",
        true,
    ),
    (
        "gateway-api-httproute",
        "HTTPRoute",
        "gateway.networking.k8s.io",
        true,
    ),
    (
        "cert-manager-certificate",
        "Certificate",
        "cert-manager.io",
        false,
    ),
    (
        "istio-virtualservice",
        "VirtualService",
        "networking.istio.io",
        false,
    ),
];

fn read(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/crds")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn one_object(name: &str) -> Value {
    let parsed = parse_manifest_text(&read(name), false);
    assert!(parsed.problems.is_empty(), "{name}: {:?}", parsed.problems);
    parsed.objects[0].value.clone()
}

/// A server with every fixture's CRD registered and its live custom resource stored.
fn server() -> ApiServer {
    let server = ApiServer::start();
    for (fixture, ..) in FIXTURES {
        server.register_crd(&one_object(&format!("{fixture}.crd.yaml")));
        server
            .insert(
                one_object(&format!("{fixture}.live.yaml")),
                "kubectl-client-side-apply",
            )
            .unwrap_or_else(|e| panic!("{fixture}: {e}"));
    }
    server
}

fn opts() -> KubeOptions {
    KubeOptions {
        include: FIXTURES
            .iter()
            .map(|(_, k, g, _)| format!("{k}.{g}"))
            .collect(),
        request_timeout: Duration::from_secs(5),
        backoff: Duration::from_millis(10),
        retries: 1,
        ..Default::default()
    }
}

async fn scan(server: &ApiServer, cache: &ObjectCache) -> LiveSnapshot {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, server.kubeconfig("test")).unwrap();
    let target = ClusterTarget {
        kubeconfig: Some(kc),
        context: Some("test".into()),
        in_cluster: false,
    };
    let o = opts();
    let cluster = connect(&target, o.request_timeout).await.unwrap();
    snapshot(&cluster, &o, cache).await.unwrap()
}

/// Git: the fixtures' custom resources only (no CRD).
fn git() -> Snapshot {
    let text: Vec<String> = FIXTURES
        .iter()
        .map(|(f, ..)| read(&format!("{f}.git.yaml")))
        .collect();
    load_text(&text.join("\n---\n"), "git", &LoadOptions::default())
}

/// Compares as `envdrift diff --live cluster:…` does: with the cluster's schemas.
fn compare(desired: &Snapshot, live: &LiveSnapshot, opts: &Options) -> DiffResult {
    let c = Comparison::with_schemas(desired, opts, vec![live.schemas.clone()]);
    let items: Vec<_> = live.snapshot.objects.iter().collect();
    let p = c.batch(&items);
    c.finish(vec![p], &live.snapshot.unknown)
}

fn drifts_of<'a>(drifts: &'a [Drift], kind: &str) -> Vec<&'a Drift> {
    drifts.iter().filter(|d| d.resource.kind == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clusters_documents_explain_custom_resources_without_their_crds() {
    let server = server();
    let live = scan(&server, &ObjectCache::default()).await;
    assert_eq!(
        live.snapshot.objects.len(),
        FIXTURES.len(),
        "{:?}",
        live.snapshot.unknown
    );
    let set = live.schemas.clone();
    assert!(set.notes.is_empty(), "{:?}", set.notes);
    for (_, kind, group, _) in FIXTURES {
        assert!(
            set.knows(group, kind),
            "{kind}.{group} not in the cluster's documents"
        );
    }
    let r = compare(&git(), &live, &Options::default());
    for (fixture, kind, ..) in FIXTURES {
        let d = drifts_of(&r.drifts, kind);
        assert!(
            d.is_empty(),
            "{fixture}: {:#?}",
            d.iter().map(|d| &d.changes).collect::<Vec<_>>()
        );
    }
    assert!(
        !r.notes.iter().any(|n| n.contains("no schema")),
        "{:?}",
        r.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_openapi_v3_falls_back_to_the_bundled_set_and_says_so_once() {
    let server = server();
    server.set_faults(Faults {
        openapi_status: Some(404),
        ..Faults::default()
    });
    let live = scan(&server, &ObjectCache::default()).await;
    let r = compare(&git(), &live, &Options::default());
    let fallback: Vec<&String> = r
        .notes
        .iter()
        .filter(|n| n.contains("/openapi/v3 not read"))
        .collect();
    assert_eq!(fallback.len(), 1, "{:?}", r.notes);
    assert!(
        fallback[0].contains("the bundled Kubernetes v1.35 schemas"),
        "{}",
        fallback[0]
    );
    // Without any schema for them, the noisy pairs differ and are said to lack one.
    for (fixture, kind, _, noisy) in FIXTURES {
        assert_eq!(!drifts_of(&r.drifts, kind).is_empty(), *noisy, "{fixture}");
        assert!(
            r.notes
                .iter()
                .any(|n| n.starts_with("no schema for ") && n.contains(kind)),
            "{fixture}: {:?}",
            r.notes
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_document_is_named_and_only_its_kinds_lose_their_schema() {
    let server = server();
    server.set_openapi_document("apis/argoproj.io/v1alpha1", "{\"components\": [");
    let live = scan(&server, &ObjectCache::default()).await;
    let r = compare(&git(), &live, &Options::default());
    let bad: Vec<&String> = r
        .notes
        .iter()
        .filter(|n| n.contains("/openapi/v3/apis/argoproj.io/v1alpha1"))
        .collect();
    assert_eq!(bad.len(), 1, "{:?}", r.notes);
    assert!(bad[0].contains("not JSON"), "{}", bad[0]);
    assert!(!bad[0].contains("hash="), "{}", bad[0]);
    assert!(!drifts_of(&r.drifts, "Rollout").is_empty());
    for (fixture, kind, ..) in FIXTURES.iter().filter(|f| f.1 != "Rollout") {
        assert!(drifts_of(&r.drifts, kind).is_empty(), "{fixture}");
    }
    // A document that parses but whose schema breaks the rules: named with its path.
    server.set_openapi_document(
        "apis/argoproj.io/v1alpha1",
        r#"{"components": {"schemas": {"io.argoproj.v1alpha1.Rollout": {
            "x-kubernetes-group-version-kind": [{"group": "argoproj.io", "version": "v1alpha1", "kind": "Rollout"}],
            "properties": {"spec": {"properties": {"steps": {"x-kubernetes-list-type": "map"}}}}}}}}"#,
    );
    let live = scan(&server, &ObjectCache::default()).await;
    let r = compare(&git(), &live, &Options::default());
    assert!(
        r.notes.iter().any(|n| n.contains(
            "/components/schemas/io.argoproj.v1alpha1.Rollout/properties/spec/properties/steps: x-kubernetes-list-type: map needs x-kubernetes-list-map-keys"
        )),
        "{:?}",
        r.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_fetched_again_only_when_their_hash_changes() {
    let server = server();
    let doc_requests = |server: &ApiServer| -> Vec<String> {
        server
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/openapi/v3/"))
            .map(|r| r.path)
            .collect()
    };
    let first = scan(&server, &ObjectCache::default()).await;
    let fetched = doc_requests(&server);
    assert_eq!(fetched.len(), FIXTURES.len(), "{fetched:?}");
    let second = scan(&server, &first.cache).await;
    assert_eq!(
        doc_requests(&server).len(),
        FIXTURES.len(),
        "nothing changed, nothing fetched"
    );
    assert!(
        std::sync::Arc::ptr_eq(&first.schemas, &second.schemas),
        "the same documents give the same set"
    );
    assert!(
        server
            .requests()
            .iter()
            .filter(|r| r.path == "/openapi/v3")
            .count()
            >= 2,
        "the index is read on every scan"
    );
    // One document changes: only it is fetched again.
    let current = server
        .openapi_document("apis/cert-manager.io/v1")
        .expect("cert-manager's document");
    let mut doc: Value = serde_json::from_str(&current).unwrap();
    doc["info"]["title"] = Value::from("changed");
    server.set_openapi_document("apis/cert-manager.io/v1", &doc.to_string());
    let _third = scan(&server, &second.cache).await;
    let after = doc_requests(&server);
    assert_eq!(after.len(), FIXTURES.len() + 1, "{after:?}");
    assert_eq!(
        after.last().map(String::as_str),
        Some("/openapi/v3/apis/cert-manager.io/v1")
    );
}

/// `envdrift diff --live cluster:CTX` (the one run path of the CLI, daemon and API) uses the
/// cluster's documents too.
#[test]
fn envdrift_diff_against_the_cluster_uses_its_documents() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, server.kubeconfig("test")).unwrap();
    let git_file = dir.path().join("git.yaml");
    let text: Vec<String> = FIXTURES
        .iter()
        .map(|(f, ..)| read(&format!("{f}.git.yaml")))
        .collect();
    std::fs::write(&git_file, text.join("\n---\n")).unwrap();
    let mut args: Vec<String> = vec![
        "diff".into(),
        "--desired".into(),
        git_file.display().to_string(),
        "--live".into(),
        "cluster:test".into(),
        "--kubeconfig".into(),
        kc.display().to_string(),
        "-f".into(),
        "json".into(),
    ];
    for (_, k, g, _) in FIXTURES {
        args.push("--include-kind".into());
        args.push(format!("{k}.{g}"));
    }
    let out = std::process::Command::new(envdrift_testkit::envdrift_bin(env!(
        "CARGO_BIN_EXE_envdrift"
    )))
    .args(&args)
    .env_remove("KUBECONFIG")
    .output()
    .expect("running envdrift");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(v["summary"]["drifts"], 0, "{stdout}");
    assert!(!stdout.contains("no schema for"), "{stdout}");
}
