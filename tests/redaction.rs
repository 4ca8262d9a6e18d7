//! A Git token in a URL's query string never shows (issue 12, item 11): not in `diff`'s
//! JSON or table output, not on stderr with debug logs, not in the Git cache's file names.

use std::process::{Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

const SECRET: &str = "glpat-Zq7SECRETtoken42";

/// Runs `envdrift diff` against an http Git remote that refuses connections, with the token
/// in the URL's query; returns (exit code, stdout + stderr).
fn diff_with_token_url(
    format: &str,
    cache: &std::path::Path,
    live: &std::path::Path,
) -> (Option<i32>, String) {
    // A port nobody listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let desired =
        format!("git:http://127.0.0.1:{port}/acme/deploy.git?ref=x&access_token={SECRET}@main");
    let dir = tempfile::tempdir().unwrap();
    let (so, se) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args([
            "--log-level",
            "debug",
            "diff",
            "--desired",
            &desired,
            "--live",
        ])
        .arg(live)
        .arg("--git-cache")
        .arg(cache)
        .args(["-f", format])
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&so).unwrap())
        .stderr(std::fs::File::create(&se).unwrap())
        .spawn()
        .unwrap();
    let Some(status) = child.wait_timeout(Duration::from_secs(60)).unwrap() else {
        child.kill().ok();
        child.wait().ok();
        panic!("envdrift diff did not finish in 60 s");
    };
    let all = std::fs::read_to_string(&so).unwrap() + &std::fs::read_to_string(&se).unwrap();
    (status.code(), all)
}

#[test]
fn query_token_never_printed_logged_or_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    std::fs::create_dir(&live).unwrap();
    std::fs::write(
        live.join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: default\n",
    )
    .unwrap();
    let cache = tmp.path().join("cache");
    for format in ["json", "table"] {
        let (code, all) = diff_with_token_url(format, &cache, &live);
        assert_eq!(code, Some(2), "the fetch fails: {all}");
        assert!(!all.contains(SECRET), "{format}: token shown:\n{all}");
        // The URL itself is named, with the token masked.
        assert!(all.contains("access_token=***"), "{format}:\n{all}");
        assert!(
            all.contains("debug") || all.contains("DEBUG"),
            "debug logs on: {all}"
        );
    }
    // Nothing under the cache directory is named after the token.
    let mut stack = vec![cache];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.contains("SECRET"), "cache entry {name}");
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
}

/// The daemon with a Git source whose URL carries the token in its query: the token is in
/// no log line (debug), no API response and nowhere in the store file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_token_never_in_daemon_logs_api_or_store() {
    use std::sync::Arc;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    std::fs::write(
        live.join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: default\n",
    )
    .unwrap();
    let cfg_path = dir.path().join("envdrift.yaml");
    std::fs::write(
        &cfg_path,
        format!(
            "data_dir: state\nenvironments:\n  prod:\n    desired: {{type: git, repo: \"http://127.0.0.1:{port}/acme/deploy.git?access_token={SECRET}\", ref: main}}\n    live: {{type: dump, path: live}}\n"
        ),
    )
    .unwrap();
    // Logs: one daemon cycle with debug logs.
    let out = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args(["--log-level", "debug", "daemon", "--once", "--config"])
        .arg(&cfg_path)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let logs =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !logs.contains(SECRET),
        "token in the daemon's output:\n{logs}"
    );
    assert!(logs.contains("access_token=***"), "{logs}");
    // The API, in process, over the same store.
    let cfg = envdrift::config::Config::load(&cfg_path).unwrap();
    let api_cfg = cfg.api.clone();
    let store =
        Arc::new(envdrift::store::Store::open(&dir.path().join("state/envdrift.db")).unwrap());
    let sinks = Arc::new(envdrift::daemon::SinkSet::from_config(&cfg.alerts, dir.path()).unwrap());
    let daemon = Arc::new(
        envdrift::daemon::Daemon::new(cfg, dir.path().to_path_buf(), store, sinks).unwrap(),
    );
    let summary = daemon
        .scan(&envdrift::daemon::Target::Environment("prod".into()))
        .await
        .unwrap();
    let state =
        Arc::new(envdrift::api::ApiState::new(Arc::clone(&daemon), &api_cfg, dir.path()).unwrap());
    let (stop, rx) = tokio::sync::watch::channel(false);
    let (tx, bound) = tokio::sync::oneshot::channel();
    let base = dir.path().to_path_buf();
    tokio::spawn(async move {
        envdrift::api::serve(
            state,
            &api_cfg,
            "127.0.0.1:0".parse().unwrap(),
            &base,
            rx,
            Some(tx),
        )
        .await
        .unwrap();
    });
    let addr = bound.await.unwrap();
    for path in [
        "/api/v1/environments".to_string(),
        format!("/api/v1/scans/{}", summary.scan_id),
        "/api/v1/drifts?status=all".to_string(),
        "/readyz".to_string(),
    ] {
        let body = get(addr, &path).await;
        assert!(!body.contains(SECRET), "token in {path}: {body}");
    }
    let envs = get(addr, "/api/v1/environments").await;
    assert!(envs.contains("access_token=***"), "{envs}");
    let _ = stop.send(true);
    drop(daemon);
    // The store file and its WAL, byte for byte.
    for entry in std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .flatten()
    {
        if entry.file_type().unwrap().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "token in {}",
                entry.path().display()
            );
        }
    }
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    String::from_utf8_lossy(&raw).into_owned()
}
