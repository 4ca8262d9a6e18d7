//! The daemon with a live cluster as an environment's live source: the Kubernetes API test
//! server (crates/testkit/src/apiserver) holds the demo manifests as applied objects, the daemon
//! scans it through kube-rs, and a change made by a person shows up attributed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use envdrift::alert::DeliveryError;
use envdrift::alert::notice::Notice;
use envdrift::config::Config;
use envdrift::daemon::{Daemon, Deliver, Target};
use envdrift::store::Store;
use envdrift_testkit::apiserver::ApiServer;

#[derive(Default)]
struct Recorder(Mutex<Vec<Notice>>);

impl Deliver for Recorder {
    fn sinks(&self) -> Vec<String> {
        vec!["recorder".into()]
    }
    fn route(&self, _: &str, n: &Notice) -> Option<Notice> {
        Some(n.clone())
    }
    fn deliver<'a>(
        &'a self,
        _: &'a str,
        n: &'a Notice,
    ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>> {
        Box::pin(async move {
            self.0.lock().unwrap().push(n.clone());
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_live_source_in_the_daemon() {
    let server = ApiServer::start();
    let manifests = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/realistic/desired.yaml");
    let parsed = envdrift::source::manifest::parse_manifest_text(
        &std::fs::read_to_string(&manifests).unwrap(),
        false,
    );
    for o in parsed.objects {
        let mut v = o.value;
        if let Some(m) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.entry("namespace").or_insert_with(|| "shop".into());
        }
        server.insert(v, "kubectl-client-side-apply").unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kubeconfig"), server.kubeconfig("prod")).unwrap();
    std::fs::write(
        dir.path().join("envdrift.yaml"),
        format!(
            "data_dir: state\nenvironments:\n  production:\n    desired: {{type: dir, path: {}}}\n    live: {{type: cluster, kubeconfig: kubeconfig, context: prod, namespaces: [shop]}}\n",
            manifests.display()
        ),
    )
    .unwrap();
    let cfg = Config::load(&dir.path().join("envdrift.yaml")).unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state/envdrift.db")).unwrap());
    let rec = Arc::new(Recorder::default());
    let d = Arc::new(Daemon::new(cfg, dir.path().to_path_buf(), store, rec.clone()).unwrap());
    let t = Target::Environment("production".into());
    let first = d.scan(&t).await.unwrap();
    assert_eq!(first.outcome.as_str(), "ok", "{:?}", first.error);
    assert_eq!(
        first.drifts,
        0,
        "applied manifests match: {:?}",
        d.store.open_drifts("production").unwrap()
    );
    // Someone changes the image by hand, with the real kubectl.
    let Some(kubectl) = envdrift_testkit::kubectl::require_kubectl() else {
        return;
    };
    let out = std::process::Command::new(&kubectl)
        .args(["--kubeconfig"])
        .arg(dir.path().join("kubeconfig"))
        .args([
            "--context",
            "prod",
            "-n",
            "shop",
            "set",
            "image",
            "deployment/web",
            "web=registry.example.com/shop/web:9.9.9",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = d.scan(&t).await.unwrap();
    assert_eq!(second.drifts, 1);
    // The rescan reused every object that did not change (uid + resourceVersion).
    let reused = d.live_caches.sources.reused("production").unwrap();
    assert!(reused >= 7, "reused {reused}");
    d.drain_outbox(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let got = rec.0.lock().unwrap();
    let change = &got[0].drifts[0].changes[0];
    assert!(change.field.ends_with(".image"), "{change:?}");
    assert_eq!(change.manager.as_deref(), Some("kubectl-set"));
}
