//! The daemon's `/metrics`, scraped from the API on a loopback port after a scan and a
//! comparison (so that counters and histograms have samples), passes Prometheus's own
//! linter, `promtool check metrics`. .ci/run installs promtool (Debian's `prometheus`
//! package); without it this test fails and says so.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use envdrift::config::Config;
use envdrift::daemon::{Daemon, Target};
use envdrift::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "common/api.rs"]
mod common_api;
use common_api::{NoSinks, serve_api};

/// Runs `promtool check metrics` on `text`: its exit status and everything it printed.
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot run promtool ({e}): install it with `apt-get install prometheus` (.ci/run does)"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (status, body.to_string())
}

/// The checker itself finds problems (so a clean result means something).
#[test]
fn promtool_reports_a_broken_exposition() {
    let (ok, printed) =
        promtool_check("# HELP requests Requests.\n# TYPE requests counter\nrequests 1\n");
    assert!(
        !ok || !printed.trim().is_empty(),
        "promtool accepted a counter without _total"
    );
    assert!(printed.contains("_total"), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_scan_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo");
    let cfg_text = format!(
        "data_dir: state\nenvironments:\n  staging:\n    desired: {{type: dir, path: {d}/git/staging}}\n    live: {{type: dump, path: {d}/live/staging}}\n  production:\n    desired: {{type: dir, path: {d}/git/production}}\n    live: {{type: dump, path: {d}/live/production}}\ncomparisons:\n  - {{from: staging, to: production}}\ncompare:\n  mapping:\n    namespaces: {{shop-staging: shop-prod}}\n",
        d = demo.display()
    );
    std::fs::write(dir.path().join("envdrift.yaml"), cfg_text).unwrap();
    let cfg = Config::load(&dir.path().join("envdrift.yaml")).unwrap();
    let api_cfg = cfg.api.clone();
    let store = Arc::new(Store::open(&dir.path().join("state/envdrift.db")).unwrap());
    let daemon =
        Arc::new(Daemon::new(cfg, dir.path().to_path_buf(), store, Arc::new(NoSinks)).unwrap());
    // The scale-out metrics (registered when `daemon.coordination` is set).
    let shard = envdrift::daemon::shard::ShardMetrics::default();
    shard.register(&daemon.metrics);
    shard.owned.set(2);
    shard.members.set(3);
    shard.renew_failures.inc();
    daemon
        .scan(&Target::Environment("production".into()))
        .await
        .unwrap();
    daemon
        .scan(&Target::Comparison("staging-vs-production".into()))
        .await
        .unwrap();
    let (addr, _stop) = serve_api(Arc::clone(&daemon), &api_cfg, dir.path()).await;
    // A request first, so that the request counter has a sample too.
    assert_eq!(get(addr, "/api/v1/drifts").await.0, 200);
    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    for needle in [
        "envdrift_scans_total{",
        "envdrift_scan_duration_seconds_bucket{",
        "envdrift_api_requests_total{",
        "envdrift_open_drifts{",
        "envdrift_owned_targets 2",
        "envdrift_coordination_members 3",
        "envdrift_lease_renew_failures_total 1",
    ] {
        assert!(text.contains(needle), "no sample {needle}:\n{text}");
    }
    let (ok, printed) = promtool_check(&text);
    assert!(
        ok && printed.trim().is_empty(),
        "promtool check metrics:\n{printed}\non:\n{text}"
    );
}
