//! Watch mode end to end (issue 15): the daemon watches the Kubernetes API test server
//! (crates/testkit/src/apiserver) holding the realistic fixture as applied objects, changes
//! are made with the real `kubectl`, and alerts arrive without waiting for the interval
//! (1 h: the default full resync in watch mode). Every wait is on an event (an alert, a
//! watch reconnection) with a bound, never a sleep.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use envdrift::alert::DeliveryError;
use envdrift::alert::notice::{Notice, NoticeKind};
use envdrift::config::Config;
use envdrift::daemon::{Daemon, Deliver};
use envdrift::store::Store;
use envdrift_testkit::apiserver::{ApiServer, Faults};
use envdrift_testkit::kubectl::{Kubectl, require_kubectl};

struct Recorder(Mutex<mpsc::Sender<Notice>>);

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
            let _ = self.0.lock().unwrap().send(n.clone());
            Ok(())
        })
    }
}

struct Fixture {
    server: ApiServer,
    kubectl: Kubectl,
    daemon: Arc<Daemon>,
    notices: mpsc::Receiver<Notice>,
    stop: tokio::sync::watch::Sender<bool>,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// The test server with the realistic fixture applied (namespace `shop`), the daemon
/// watching it. `None` when kubectl is not installed (outside CI).
fn start(faults: Faults) -> Option<Fixture> {
    start_with(faults, Duration::from_secs(1))
}

/// [`start`] with the server's bookmark interval.
fn start_with(faults: Faults, bookmarks: Duration) -> Option<Fixture> {
    let bin = require_kubectl()?;
    let server = ApiServer::start();
    server.set_bookmark_interval(bookmarks);
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
    server.set_faults(faults);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig("prod")).unwrap();
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
    let (tx, notices) = mpsc::channel();
    let rec = Arc::new(Recorder(Mutex::new(tx)));
    let daemon = Arc::new(Daemon::new(cfg, dir.path().to_path_buf(), store, rec).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    rt.spawn(Arc::clone(&daemon).run(stop_rx));
    Some(Fixture {
        server,
        kubectl: Kubectl { bin, kubeconfig },
        daemon,
        notices,
        stop,
        rt,
        _dir: dir,
    })
}

impl Fixture {
    fn kubectl(&self, args: &[&str]) -> Instant {
        let mut a = vec!["--context", "prod", "-n", "shop"];
        a.extend_from_slice(args);
        self.kubectl.run(&a);
        Instant::now()
    }

    /// The next notice (of any kind), within 20 s.
    fn next(&self) -> Notice {
        self.notices
            .recv_timeout(Duration::from_secs(20))
            .expect("a notice within 20 s")
    }

    /// The next `drift` notice; other kinds are returned in the second element.
    fn next_drift(&self) -> (Notice, Vec<Notice>) {
        let mut others = Vec::new();
        loop {
            let n = self.next();
            if n.kind == NoticeKind::Drift {
                return (n, others);
            }
            others.push(n);
        }
    }

    /// Waits until the deployments are watched (the initial lists are done).
    fn watching(&self) {
        assert!(
            self.server
                .wait_watches("deployments.apps", Duration::from_secs(30), |open, _| open
                    >= 1),
            "the daemon never watched deployments"
        );
    }

    fn open_drifts(&self) -> Vec<(String, String)> {
        self.daemon
            .store
            .open_drifts("production")
            .unwrap()
            .into_iter()
            .map(|r| (r.drift_type, r.resource))
            .collect()
    }

    fn stop(self) {
        let _ = self.stop.send(true);
        self.rt.shutdown_timeout(Duration::from_secs(10));
    }
}

fn changed_fields(n: &Notice) -> Vec<String> {
    n.drifts
        .iter()
        .flat_map(|d| d.changes.iter().map(|c| c.field.clone()))
        .collect()
}

#[test]
fn an_edit_is_alerted_without_waiting_for_the_interval() {
    let Some(f) = start(Faults::default()) else {
        return;
    };
    f.watching();
    let done = f.kubectl(&[
        "set",
        "image",
        "deployment/web",
        "web=registry.example.com/shop/web:9.9.9",
    ]);
    let (n, others) = f.next_drift();
    let latency = done.elapsed();
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(n.drifts.len(), 1, "{:?}", n.drifts);
    assert!(
        changed_fields(&n).iter().any(|p| p.ends_with(".image")),
        "{n:?}"
    );
    assert_eq!(
        n.drifts[0].changes[0].manager.as_deref(),
        Some("kubectl-set")
    );
    // Far below the 1 h interval (a generous bound for a shared 2-core machine).
    assert!(latency < Duration::from_secs(15), "{latency:?}");
    assert_eq!(f.open_drifts().len(), 1);
    // Putting it back resolves it, also at once.
    f.kubectl(&[
        "set",
        "image",
        "deployment/web",
        "web=registry.example.com/shop/web:2.3.1",
    ]);
    let n = f.next();
    assert_eq!(n.kind, NoticeKind::Resolved, "{n:?}");
    assert!(f.open_drifts().is_empty());
    f.stop();
}

#[test]
fn a_dropped_watch_resumes_without_losing_or_duplicating_alerts() {
    let Some(f) = start(Faults::default()) else {
        return;
    };
    f.watching();
    f.kubectl(&[
        "set",
        "image",
        "deployment/web",
        "web=registry.example.com/shop/web:9.9.9",
    ]);
    let (first, _) = f.next_drift();
    assert_eq!(first.drifts.len(), 1);
    let started = f.server.watches_started("deployments.apps");
    // The connection drops mid-stream; the change right after it must not be lost.
    assert!(f.server.drop_watches("deployments.apps") >= 1);
    f.kubectl(&["set", "env", "deployment/web", "EXTRA=1"]);
    let (second, _) = f.next_drift();
    assert!(
        changed_fields(&second).iter().any(|p| p.contains("EXTRA")),
        "{second:?}"
    );
    assert!(
        f.server
            .wait_watches("deployments.apps", Duration::from_secs(30), |open, s| open
                >= 1
                && s > started),
        "the watch reconnected"
    );
    // One more change: its alert comes after anything a duplicate would have sent.
    f.kubectl(&["label", "service/web", "extra=1"]);
    let (third, others) = f.next_drift();
    assert!(
        others.iter().all(|n| n.kind != NoticeKind::Drift),
        "{others:?}"
    );
    assert_eq!(third.drifts.len(), 1, "{third:?}");
    assert!(third.drifts[0].resource.contains("Service"), "{third:?}");
    // The image drift was not announced again, and it is still the one open drift of web.
    let open = f.open_drifts();
    assert_eq!(open.len(), 2, "{open:?}");
    f.stop();
}

#[test]
fn a_410_relists_with_no_false_missing() {
    // No bookmarks: the daemon's watches stay at the version of their list.
    let Some(f) = start_with(Faults::default(), Duration::from_secs(3600)) else {
        return;
    };
    f.watching();
    let lists = |f: &Fixture| {
        f.server
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/deployments") && !r.query.contains("watch"))
            .count()
    };
    let before = lists(&f);
    let started = f.server.watches_started("deployments.apps");
    // A write elsewhere, the history compacted, connections dropped: resuming from the
    // list's version answers 410 and the watcher lists again.
    f.server
        .insert(
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "elsewhere", "namespace": "other"}}),
            "test",
        )
        .unwrap();
    f.server.compact();
    f.server.drop_watches("*");
    let relisted = f
        .server
        .wait_watches("deployments.apps", Duration::from_secs(30), |open, s| {
            open >= 1 && s > started + 1
        });
    assert!(
        relisted,
        "the watch reconnected after the relist: {:#?}",
        f.server
            .requests()
            .iter()
            .filter(|r| r.path.contains("deployments"))
            .map(|r| r.query.clone())
            .collect::<Vec<_>>()
    );
    assert!(lists(&f) > before, "a relist after 410");
    // A change after the relist is seen, and nothing went missing meanwhile.
    f.kubectl(&[
        "set",
        "image",
        "deployment/web",
        "web=registry.example.com/shop/web:9.9.9",
    ]);
    let (n, others) = f.next_drift();
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(n.drifts.len(), 1, "{n:?}");
    assert_eq!(n.drifts[0].drift_type, "modified");
    assert!(f.open_drifts().iter().all(|(t, _)| t != "missing"));
    f.stop();
}

#[test]
fn a_forbidden_watch_makes_that_type_unknown_only() {
    let mut faults = Faults::default();
    faults.watch_forbidden.insert("configmaps".into());
    let Some(f) = start(faults) else {
        return;
    };
    f.watching();
    // The evaluation says that ConfigMaps are unknown (a partial result)...
    let mut partial = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while partial.is_none() && Instant::now() < deadline {
        let n = f.next();
        if n.kind == NoticeKind::ScanFailed {
            partial = n.error.clone();
        }
    }
    let partial = partial.expect("a partial-result notice");
    assert!(partial.contains("ConfigMap"), "{partial}");
    assert!(partial.contains("403"), "{partial}");
    // ...deleting one is not reported missing, while other types still alert.
    f.server.remove("configmaps", "shop", "web-config");
    f.kubectl(&[
        "set",
        "image",
        "deployment/web",
        "web=registry.example.com/shop/web:9.9.9",
    ]);
    let (n, _) = f.next_drift();
    assert_eq!(n.drifts.len(), 1, "{n:?}");
    assert!(n.drifts[0].resource.contains("Deployment"), "{n:?}");
    assert!(f.open_drifts().iter().all(|(t, _)| t != "missing"));
    f.stop();
}

#[test]
fn deleting_an_object_opens_a_missing_drift() {
    let Some(f) = start(Faults::default()) else {
        return;
    };
    f.watching();
    let done = f.kubectl(&["delete", "configmap", "web-config"]);
    let (n, others) = f.next_drift();
    assert!(done.elapsed() < Duration::from_secs(15));
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(n.drifts.len(), 1, "{n:?}");
    assert_eq!(n.drifts[0].drift_type, "missing");
    assert!(n.drifts[0].resource.contains("web-config"), "{n:?}");
    f.stop();
}

#[test]
fn a_rollout_status_churn_sends_nothing() {
    let Some(f) = start(Faults::default()) else {
        return;
    };
    f.watching();
    // A first change and its alert: the watches are evaluated from here on.
    f.kubectl(&[
        "set",
        "image",
        "deployment/web",
        "web=registry.example.com/shop/web:9.9.9",
    ]);
    let (first, _) = f.next_drift();
    assert_eq!(first.drifts.len(), 1);
    let scans = |f: &Fixture| {
        f.daemon
            .store
            .scans(Some("production"), 1000)
            .unwrap()
            .len()
    };
    let before = scans(&f);
    // A controller writing status, as during a rollout.
    for i in 0..10 {
        let patch = format!(
            r#"{{"status":{{"observedGeneration":{i},"readyReplicas":{i},"updatedReplicas":{i}}}}}"#
        );
        f.kubectl(&[
            "patch",
            "deployment",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ]);
    }
    // A real change afterwards: its alert is the first notice, and the churn cost no
    // evaluation (one more recorded scan: this change's).
    f.kubectl(&["label", "service/web", "extra=1"]);
    let n = f.next();
    assert_eq!(n.kind, NoticeKind::Drift, "{n:?}");
    assert!(n.drifts[0].resource.contains("Service"), "{n:?}");
    assert_eq!(scans(&f), before + 1);
    f.stop();
}

#[test]
fn a_secret_edit_is_alerted_by_hash_only() {
    let Some(f) = start(Faults::default()) else {
        return;
    };
    f.watching();
    // base64 of `hunter2-watch-mode`.
    f.kubectl(&[
        "patch",
        "secret",
        "web-db",
        "--type=merge",
        "-p",
        r#"{"data":{"password":"aHVudGVyMi13YXRjaC1tb2Rl"}}"#,
    ]);
    let (n, _) = f.next_drift();
    assert!(n.drifts[0].resource.contains("Secret"), "{n:?}");
    let text = format!("{n:?}");
    assert!(!text.contains("hunter2-watch-mode"), "{text}");
    assert!(!text.contains("aHVudGVyMi13YXRjaC1tb2Rl"), "{text}");
    assert!(!text.contains("s3cr3t-value"), "{text}");
    assert!(text.contains("sha256:"), "{text}");
    // The watch metrics are served, with the event-to-outbox latency observed.
    let metrics = f.daemon.metrics.encode_prometheus_text();
    assert!(
        metrics.contains(
            "envdrift_watch_connected{env=\"production\",kind=\"Deployment.apps\",namespace=\"shop\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("envdrift_watch_event_to_outbox_seconds_count 1"),
        "{metrics}"
    );
    f.stop();
}
