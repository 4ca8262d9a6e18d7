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
