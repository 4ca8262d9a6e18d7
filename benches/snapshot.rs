//! Benchmark of snapshotting a cluster: the kube-rs live source against the Kubernetes API
//! test server (`envdrift_testkit::apiserver`) over TLS on loopback, holding the live side of a
//! synthetic environment ([`envdrift_testkit::synth`]: Deployments, Services, ConfigMaps, Secrets,
//! ServiceAccounts, Roles, as a real server returns them).
//!
//! For each size (default 20k objects; override with `ENVDRIFT_BENCH_OBJECTS=5000`) it
//! measures, `ENVDRIFT_BENCH_RUNS` times each (default 3), medians of:
//! - **full**: discovery + every list (500 per page) + conversion (Secrets hashed), no cache;
//! - **incremental, unchanged**: the same with the previous scan's [`ObjectCache`]: items
//!   whose uid and resourceVersion did not change are reused, not parsed;
//! - **incremental, 1 % changed**: after rewriting 1 % of the objects.
//!
//! Run: `cargo bench --bench snapshot` (Markdown table on stdout; docs/performance.md).

use std::time::{Duration, Instant};

use envdrift_testkit::apiserver;

use envdrift::source::kube::{ClusterTarget, KubeOptions, ObjectCache, connect, snapshot};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The floor: discovery and every list page downloaded as text, nothing parsed.
async fn list_calls_only(client: &kube::Client) {
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !caps.supports_operation(kube::discovery::verbs::LIST)
                || [
                    "Event",
                    "Endpoints",
                    "EndpointSlice",
                    "Lease",
                    "ControllerRevision",
                ]
                .contains(&ar.kind.as_str())
            {
                continue;
            }
            let url = if ar.group.is_empty() {
                format!("/api/{}/{}", ar.version, ar.plural)
            } else {
                format!("/apis/{}/{}/{}", ar.group, ar.version, ar.plural)
            };
            let mut token: Option<String> = None;
            loop {
                let mut lp = kube::api::ListParams::default().limit(500);
                if let Some(t) = &token {
                    lp = lp.continue_token(t);
                }
                let req = kube::core::Request::new(&url).list(&lp).expect("request");
                let text = client.request_text(req).await.expect("list");
                // Find the continue token without parsing the items.
                token = text
                    .find("\"continue\":\"")
                    .map(|i| &text[i + 12..])
                    .and_then(|rest| rest.split('"').next())
                    .filter(|t| !t.is_empty())
                    .map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
    }
}

fn main() {
    let objects: usize = std::env::var("ENVDRIFT_BENCH_OBJECTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let runs: usize = std::env::var("ENVDRIFT_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let server = apiserver::ApiServer::start();
    let pair = envdrift_testkit::synth::generate(&envdrift_testkit::synth::SynthOptions {
        objects,
        ..Default::default()
    });
    let t = Instant::now();
    let mut stored = 0;
    for obj in &pair.live {
        let mut o = obj.clone();
        if let Some(m) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            for k in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "generation",
                "managedFields",
            ] {
                m.remove(k);
            }
        }
        if server.insert(o, "kubectl-client-side-apply").is_ok() {
            stored += 1;
        }
    }
    eprintln!(
        "loaded {stored} objects into the test server in {:?}",
        t.elapsed()
    );
    let dir = std::env::temp_dir().join(format!("envdrift-bench-snapshot-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let kc = dir.join("kubeconfig");
    std::fs::write(&kc, server.kubeconfig("bench")).expect("kubeconfig");
    let target = ClusterTarget {
        kubeconfig: Some(kc),
        context: Some("bench".into()),
        in_cluster: false,
    };
    let opts = KubeOptions::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (baseline, full, unchanged, changed, stats) = rt.block_on(async {
        let cluster = connect(&target, opts.request_timeout)
            .await
            .expect("connect");
        let mut baseline = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            list_calls_only(&cluster.client).await;
            baseline.push(t.elapsed());
        }
        let mut full = Vec::new();
        let mut cache = ObjectCache::default();
        let mut read = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let s = snapshot(&cluster, &opts, &ObjectCache::default())
                .await
                .expect("snapshot");
            full.push(t.elapsed());
            read = s.snapshot.objects.len();
            cache = s.cache;
        }
        let mut unchanged = Vec::new();
        let mut last = None;
        for _ in 0..runs {
            let t = Instant::now();
            let s = snapshot(&cluster, &opts, &cache).await.expect("snapshot");
            unchanged.push(t.elapsed());
            last = Some(s.stats.clone());
            cache = s.cache;
        }
        // Rewrite 1 % of the ConfigMaps/other objects: remove and re-insert (new uid/rv).
        let mut changed = Vec::new();
        for run in 0..runs {
            for obj in pair.live.iter().skip(run).step_by(100) {
                let plural = match obj["kind"].as_str().unwrap_or("") {
                    "Deployment" => "deployments.apps",
                    "Service" => "services",
                    "ConfigMap" => "configmaps",
                    "Secret" => "secrets",
                    "ServiceAccount" => "serviceaccounts",
                    "Role" => "roles.rbac.authorization.k8s.io",
                    _ => continue,
                };
                let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
                let name = obj["metadata"]["name"].as_str().unwrap_or("");
                if let Some(o) = server.remove(plural, ns, name) {
                    let mut o = o;
                    if let Some(m) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                        for k in [
                            "uid",
                            "resourceVersion",
                            "creationTimestamp",
                            "generation",
                            "managedFields",
                        ] {
                            m.remove(k);
                        }
                    }
                    let _ = server.insert(o, "kubectl-edit");
                }
            }
            let t = Instant::now();
            let s = snapshot(&cluster, &opts, &cache).await.expect("snapshot");
            changed.push(t.elapsed());
            cache = s.cache;
        }
        eprintln!("read {read} objects per scan; last unchanged rescan: {last:?}");
        (
            median(baseline),
            median(full),
            median(unchanged),
            median(changed),
            last,
        )
    });
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| objects | list calls only | full snapshot | incremental, unchanged | incremental, 1 % changed | unchanged / full | unchanged / list calls |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {stored} | {} | {} | {} | {} | {:.2}× | {:.2}× |",
        ms(baseline),
        ms(full),
        ms(unchanged),
        ms(changed),
        unchanged.as_secs_f64() / full.as_secs_f64(),
        unchanged.as_secs_f64() / baseline.as_secs_f64()
    );
    if let Some(s) = stats {
        println!(
            "\nunchanged rescan: {} list requests, {} objects reused, {} parsed",
            s.requests, s.reused, s.parsed
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
