//! Kill the daemon (SIGKILL) while it is delivering an alert that is already stored; after a
//! restart the alert is sent exactly once. Real process, real store, the Slack stand-in.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use envdrift_testkit::Reply;
use envdrift_testkit::slack::SlackServer;

const TOKEN: &str = "xoxb-test-token-restart";

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_store_and_send_then_sent_exactly_once() {
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    // The first delivery attempt hangs: the daemon is killed while it waits.
    slack.queue(&[Reply::Stall]);
    let dir = tempfile::tempdir().unwrap();
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo");
    copy_dir(&demo.join("git/production"), &dir.path().join("git"));
    copy_dir(&demo.join("live/production"), &dir.path().join("live"));
    std::fs::write(dir.path().join("slack.token"), TOKEN).unwrap();
    let cfg = dir.path().join("envdrift.yaml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir: state\nlisten: 127.0.0.1:0\nenvironments:\n  production:\n    desired: {{type: dir, path: git}}\n    live: {{type: dump, path: live}}\n    interval: 2s\nalerts:\n  sinks:\n    - {{type: slack, name: ops, channel: \"#drift\", token_file: {}, api_url: \"{}\"}}\n",
            dir.path().join("slack.token").display(),
            slack.api_url()
        ),
    )
    .unwrap();
    let bin = envdrift_testkit::envdrift_bin(env!("CARGO_BIN_EXE_envdrift"));
    let mut child = Command::new(&bin)
        .args(["daemon", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the stored alert's delivery is in flight (the stand-in got the request).
    let start = Instant::now();
    while slack.requests() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the daemon never tried to deliver"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        slack.accepted().is_empty(),
        "nothing was accepted before the kill"
    );
    // Restart: one full cycle. The rescan finds nothing new; the stored alert is delivered.
    for _ in 0..2 {
        let out = Command::new(&bin)
            .args(["daemon", "--once", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // One digest for the scan's six new drifts, each drift's own message once in its thread.
    let top = slack.top_level();
    assert_eq!(top.len(), 1, "sent exactly once");
    assert_eq!(slack.replies(&top[0].ts).len(), 6);
    let accepted = slack.accepted();
    assert_eq!(accepted.len(), 7, "every part exactly once");
    let body = accepted[0].json();
    assert_eq!(body["channel"], "#drift");
    assert!(
        body.to_string().contains("production: 6 new drifts"),
        "{body}"
    );
    assert_eq!(
        accepted[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

/// A daemon with the demo's production environment and a Slack sink, in `dir`.
fn setup(dir: &std::path::Path, api_url: &str) -> std::path::PathBuf {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo");
    copy_dir(&demo.join("git/production"), &dir.join("git"));
    copy_dir(&demo.join("live/production"), &dir.join("live"));
    std::fs::write(dir.join("slack.token"), TOKEN).unwrap();
    let cfg = dir.join("envdrift.yaml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir: state\nlisten: 127.0.0.1:0\nenvironments:\n  production:\n    desired: {{type: dir, path: git}}\n    live: {{type: dump, path: live}}\n    interval: 2s\nalerts:\n  sinks:\n    - {{type: slack, name: ops, channel: \"#drift\", token_file: {}, api_url: \"{api_url}\"}}\n",
            dir.join("slack.token").display(),
        ),
    )
    .unwrap();
    cfg
}

/// The outbox rows' states, read from the store file as another process would.
fn outbox_states(dir: &std::path::Path) -> Vec<String> {
    let Ok(conn) = rusqlite::Connection::open_with_flags(
        dir.join("state/envdrift.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return Vec::new();
    };
    let Ok(mut st) = conn.prepare("SELECT state FROM outbox ORDER BY id") else {
        return Vec::new();
    };
    st.query_map([], |r| r.get::<_, String>(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// Runs the daemon until `ready` holds (bounded), then kills it with SIGKILL.
async fn run_until_then_kill(cfg: &std::path::Path, ready: impl Fn() -> bool) {
    let bin = envdrift_testkit::envdrift_bin(env!("CARGO_BIN_EXE_envdrift"));
    let mut child = Command::new(&bin)
        .args(["daemon", "--config"])
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the daemon never reached the kill point"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

fn once_twice(cfg: &std::path::Path) {
    let bin = envdrift_testkit::envdrift_bin(env!("CARGO_BIN_EXE_envdrift"));
    for _ in 0..2 {
        let out = Command::new(&bin)
            .args(["daemon", "--once", "--config"])
            .arg(cfg)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Killed after the alert was delivered and recorded: never sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_a_recorded_delivery_then_not_sent_again() {
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), &slack.api_url());
    let d = dir.path().to_path_buf();
    run_until_then_kill(&cfg, || outbox_states(&d) == ["sent"]).await;
    // The digest and the six drifts' messages in its thread.
    assert_eq!(slack.accepted().len(), 7);
    once_twice(&cfg);
    assert_eq!(slack.accepted().len(), 7, "sent exactly once");
    assert_eq!(slack.top_level().len(), 1);
}

/// Killed while the alert waits for a retry (the sink answered 500): after the restart it
/// is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_an_alert_waits_for_a_retry_then_sent_once() {
    let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
    slack.queue(&[Reply::ServerError]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), &slack.api_url());
    run_until_then_kill(&cfg, || slack.requests() >= 1).await;
    assert!(slack.accepted().is_empty());
    once_twice(&cfg);
    assert_eq!(slack.top_level().len(), 1, "sent exactly once");
    assert_eq!(
        slack.accepted().len(),
        7,
        "the digest and six drift messages, once each"
    );
    assert_eq!(outbox_states(dir.path()), ["sent"]);
}
