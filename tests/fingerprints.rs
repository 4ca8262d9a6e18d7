//! One fingerprint per drift, whichever entry point found it: `envdrift diff -f json` on the
//! demo's production files (relative paths), `GET /api/v1/compare?from=git:production&
//! to=live:production` and `GET /api/v1/drifts?env=production` after a daemon scan of the
//! same files agree drift for drift.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use envdrift::config::Config;
use envdrift::daemon::{Daemon, Target};
use envdrift::store::Store;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "common/api.rs"]
mod common_api;
use common_api::{NoSinks, serve_api};

/// `kind namespace/name` → fingerprint.
type Prints = BTreeMap<String, String>;

fn prints(drifts: &Value, resource_at: &str) -> Prints {
    drifts
        .as_array()
        .expect("a drift list")
        .iter()
        .map(|d| {
            let r = d.pointer(resource_at).expect("a resource");
            let key = format!(
                "{} {}/{}",
                r["kind"].as_str().unwrap_or_default(),
                r["namespace"].as_str().unwrap_or_default(),
                r["name"].as_str().unwrap_or_default()
            );
            (
                key,
                d["fingerprint"]
                    .as_str()
                    .expect("a fingerprint")
                    .to_string(),
            )
        })
        .collect()
}

fn cli_prints(root: &Path) -> Prints {
    let out = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .current_dir(root)
        .args([
            "diff",
            "--desired",
            "config/demo/git/production",
            "--live",
            "config/demo/live/production",
            "-f",
            "json",
        ])
        .output()
        .expect("envdrift runs");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    prints(&v["drifts"], "/resource")
}

async fn get(addr: std::net::SocketAddr, path: &str) -> Value {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}\n{body}");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((len, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n.min(after.len())]);
            rest = after.get(n + 2..).unwrap_or("");
        }
        out
    } else {
        body.to_string()
    };
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
}

#[tokio::test]
async fn diff_api_compare_and_store_agree_on_fingerprints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let from_cli = cli_prints(root);
    assert_eq!(from_cli.len(), 6, "{from_cli:#?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let demo = root.join("config/demo");
    std::fs::write(
        dir.path().join("envdrift.yaml"),
        format!(
            "data_dir: state\nenvironments:\n  production:\n    desired: {{type: dir, path: {d}/git/production}}\n    live: {{type: dump, path: {d}/live/production}}\n",
            d = demo.display()
        ),
    )
    .expect("config written");
    let cfg = Config::load(&dir.path().join("envdrift.yaml")).expect("valid config");
    let api_cfg = cfg.api.clone();
    let store = Arc::new(Store::open(&dir.path().join("state/envdrift.db")).expect("store"));
    let daemon = Arc::new(
        Daemon::new(cfg, dir.path().to_path_buf(), store, Arc::new(NoSinks)).expect("daemon"),
    );
    daemon
        .scan(&Target::Environment("production".into()))
        .await
        .expect("scan");
    let (addr, _stop) = serve_api(Arc::clone(&daemon), &api_cfg, dir.path()).await;

    let compared = get(
        addr,
        "/api/v1/compare?from=git:production&to=live:production",
    )
    .await;
    let from_compare = prints(&compared["drifts"], "/resource");
    assert_eq!(
        from_compare, from_cli,
        "GET /api/v1/compare vs envdrift diff"
    );

    let stored = get(addr, "/api/v1/drifts?env=production").await;
    let from_store = prints(&stored["drifts"], "/body/resource");
    assert_eq!(from_store, from_cli, "GET /api/v1/drifts vs envdrift diff");
}
