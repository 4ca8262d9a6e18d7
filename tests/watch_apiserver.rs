//! Watch fidelity of the Kubernetes API test server (issue 15), proven with the real
//! `kubectl get --watch`: events after a resourceVersion come from the history (none lost
//! across a reconnection), a version older than the history answers 410 `Expired`, a
//! dropped connection ends kubectl's stream, a forbidden watch answers 403 while the list
//! still works. Bookmarks and `timeoutSeconds` are checked with kube-rs's raw watch.

use std::io::BufReader;
use std::sync::mpsc;
use std::time::Duration;

use envdrift_testkit::apiserver::{ApiServer, Faults};
use envdrift_testkit::kubectl::{Kubectl, require_kubectl};
use serde_json::{Value, json};

fn setup() -> Option<(ApiServer, Kubectl, tempfile::TempDir)> {
    let bin = require_kubectl()?;
    let server = ApiServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig("test")).expect("write kubeconfig");
    Some((server, Kubectl { bin, kubeconfig }, dir))
}

fn cm(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "ns1"}, "data": {"k": value}})
}

/// `kubectl get cm --watch --output-watch-events -o json ARGS`, its events on a channel.
fn watch_events(k: &Kubectl, extra: &[&str]) -> (std::process::Child, mpsc::Receiver<Value>) {
    let mut args = vec![
        "get",
        "configmaps",
        "-n",
        "ns1",
        "--output-watch-events",
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let mut child = k
        .command(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for v in serde_json::Deserializer::from_reader(BufReader::new(out)).into_iter::<Value>() {
            match v {
                Ok(v) => {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    (child, rx)
}

fn next(rx: &mpsc::Receiver<Value>) -> (String, String, String) {
    let v = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a watch event from kubectl");
    (
        v["type"].as_str().unwrap_or("").to_string(),
        v["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        v["object"]["data"]["k"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn kubectl_watch_sees_added_modified_deleted_and_resumes_from_history() {
    let Some((server, k, _dir)) = setup() else {
        return;
    };
    server.insert(cm("a", "1"), "test").unwrap();
    let (mut child, rx) = watch_events(&k, &["--watch"]);
    assert_eq!(next(&rx), ("ADDED".into(), "a".into(), "1".into()));
    assert!(server.wait_watches("configmaps", Duration::from_secs(20), |open, _| open >= 1));
    k.run(&[
        "-n",
        "ns1",
        "patch",
        "configmap",
        "a",
        "--type=merge",
        "-p",
        r#"{"data":{"k":"2"}}"#,
    ]);
    assert_eq!(next(&rx), ("MODIFIED".into(), "a".into(), "2".into()));
    k.run(&["-n", "ns1", "delete", "configmap", "a"]);
    let (t, n, _) = next(&rx);
    assert_eq!((t.as_str(), n.as_str()), ("DELETED", "a"));
    let _ = child.kill();
    let _ = child.wait();

    // A watch from a version sees exactly the events after it (from the history), even
    // though they happened while nobody watched.
    let from = server.resource_version();
    server.insert(cm("b", "1"), "test").unwrap();
    k.run(&[
        "-n",
        "ns1",
        "patch",
        "configmap",
        "b",
        "--type=merge",
        "-p",
        r#"{"data":{"k":"3"}}"#,
    ]);
    let events = raw_watch(&k, from);
    let got: Vec<(String, String, String)> = events
        .iter()
        .map(|v| {
            (
                v["type"].as_str().unwrap_or("").to_string(),
                v["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                v["object"]["data"]["k"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("ADDED".to_string(), "b".to_string(), "1".to_string()),
            ("MODIFIED".to_string(), "b".to_string(), "3".to_string())
        ]
    );

    // A dropped connection ends kubectl's watch (as a server-side timeout would).
    let (mut child, rx) = watch_events(&k, &["--watch-only"]);
    assert!(server.wait_watches("configmaps", Duration::from_secs(20), |open, _| open >= 1));
    assert_eq!(server.drop_watches("configmaps"), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kubectl still watching after the drop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "kubectl after the drop: {status}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(rx.try_recv().is_err(), "no event from a dropped stream");
}

/// `kubectl get --raw` of a watch from `rv` ending after 2 s (`timeoutSeconds`), its events.
fn raw_watch(k: &Kubectl, rv: u64) -> Vec<Value> {
    let url =
        format!("/api/v1/namespaces/ns1/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=2");
    let started = std::time::Instant::now();
    let out = k.run(&["get", "--raw", &url]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "timeoutSeconds ended the stream"
    );
    serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .map(|v| v.expect("a JSON event"))
        .collect()
}

#[test]
fn kubectl_watch_from_a_compacted_version_gets_410_expired() {
    let Some((server, k, _dir)) = setup() else {
        return;
    };
    server.insert(cm("a", "1"), "test").unwrap();
    let old = server.resource_version().to_string();
    server.insert(cm("b", "1"), "test").unwrap();
    server.compact();
    let events = raw_watch(&k, old.parse().unwrap());
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
    assert!(
        events[0]["object"]["message"]
            .as_str()
            .unwrap()
            .contains("too old resource version")
    );
    // A version at or after the compaction still works.
    let now = server.resource_version();
    server.insert(cm("c", "1"), "test").unwrap();
    let events = raw_watch(&k, now);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "c");
}

#[test]
fn a_forbidden_watch_answers_403_while_the_list_works() {
    let Some((server, k, _dir)) = setup() else {
        return;
    };
    server.insert(cm("a", "1"), "test").unwrap();
    let mut f = Faults::default();
    f.watch_forbidden.insert("configmaps".into());
    server.set_faults(f);
    assert!(
        k.run(&["get", "configmaps", "-n", "ns1", "-o", "name"])
            .contains("configmap/a")
    );
    let out = k.run_output(&[
        "get",
        "configmaps",
        "-n",
        "ns1",
        "--watch-only",
        "-o",
        "name",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot watch resource \"configmaps\""),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_and_timeout_seconds() {
    use futures::StreamExt as _;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, WatchEvent, WatchParams};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = ApiServer::start();
    server.set_bookmark_interval(Duration::from_millis(100));
    server.insert(cm("a", "1"), "test").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, server.kubeconfig("test")).unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "ns1");
    let rv = server.resource_version().to_string();
    let wp = WatchParams::default().timeout(2); // bookmarks are on by default
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
    // A bookmark at the version reached, then a change, then a bookmark past it.
    let mut saw_bookmark_at = None;
    let mut saw_modified = false;
    let started = std::time::Instant::now();
    while let Some(ev) = stream.next().await {
        match ev.unwrap() {
            WatchEvent::Bookmark(b) => {
                if saw_bookmark_at.is_none() {
                    assert_eq!(b.metadata.resource_version, rv);
                    server.insert(cm("b", "1"), "test").unwrap();
                }
                let at: u64 = b.metadata.resource_version.parse().unwrap();
                saw_bookmark_at = Some(at);
            }
            WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                assert_eq!(o.metadata.name.as_deref(), Some("b"));
                saw_modified = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_modified);
    assert!(saw_bookmark_at.unwrap() > rv.parse::<u64>().unwrap());
    // timeoutSeconds=2 ended the stream.
    assert!(started.elapsed() < Duration::from_secs(15));
}
